"""Notebooks: ``experiment.run`` inside a running event loop, ``await experiment.arun``, a real kernel.

The example notebook (``examples/notebook.ipynb``) is executed by nbclient in
an ipykernel started from this virtual environment's Python, through a
kernelspec made in a temporary folder (no global Jupyter install is used).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from personae import Experiment, FunctionModel, ModelUnreachable
from personae.studies import counseling

ROOT = Path(__file__).parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def small(replicates: int = 2) -> Experiment:
    return Experiment(scenario=counseling(max_turns=4, min_turns=2), replicates=replicates)


def statuses(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT status, COUNT(*) FROM episodes GROUP BY 1").fetchall())
    finally:
        con.close()


def kernel_manager(folder: Path) -> KernelManager:
    """A kernel running this environment's Python, from a kernelspec in ``folder``."""
    spec = folder / "kernels" / "personae-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "personae (test)",
                "language": "python",
                "env": {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"},
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")])
    return KernelManager(kernel_name="personae-test", kernel_spec_manager=specs)


def texts(cell: nbformat.NotebookNode) -> str:
    """Everything a cell showed: streams, results and displays, as plain text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def test_the_example_notebook_runs_in_a_real_kernel(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = NotebookClient(
        nb,
        km=kernel_manager(tmp_path),
        timeout=45,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    code = [c for c in nb.cells if c.cell_type == "code"]
    shown = [texts(c) for c in code]
    everything = "\n".join(shown)
    assert "never awaited" not in everything and "running event loop" not in everything
    # experiment.run in the kernel's running loop: the bar shows its final state in the cell
    run_cell = shown[1]
    assert "4/4 episodes" in run_cell and "turns/s" in run_cell
    assert "completed=4" in run_cell and "interrupted=False" in run_cell
    # await experiment.arun: the grown experiment ran only its new replicates
    assert "2 new episodes, 4 already complete" in shown[2]
    # read back with polars, then the stored prompts with SQL
    assert "reserved" in shown[3] and "verbose" in shown[3]
    assert "--- client, reserved ---" in shown[4] and "say little" in shown[4]
    db = work / "runs" / "notebook.db"
    assert statuses(db) == {"complete": 6}


def test_run_inside_a_running_event_loop(tmp_path):
    db = tmp_path / "x.db"

    async def cell():
        return small().run(db, FunctionModel.echo())

    summary = asyncio.run(cell())
    assert (summary.completed, summary.failed, summary.interrupted) == (2, 0, False)
    assert statuses(db) == {"complete": 2}


def test_arun_is_the_async_entry_point(tmp_path):
    db = tmp_path / "x.db"
    summary = asyncio.run(small().arun(db, FunctionModel.echo()))
    assert summary.completed == 2 and statuses(db) == {"complete": 2}


@pytest.mark.parametrize("in_loop", [False, True])
def test_a_run_that_fails_before_any_episode_leaves_no_file(tmp_path, in_loop):
    db = tmp_path / "new" / "folder" / "x.db"

    def run():
        return small().run(db, base_url="http://127.0.0.1:9/v1", server_wait=0)

    async def cell():
        return run()

    with pytest.raises(ModelUnreachable):
        asyncio.run(cell()) if in_loop else run()
    assert not (tmp_path / "new").exists()
    assert os.listdir(tmp_path) == []


def test_a_failed_run_leaves_a_file_that_was_there_alone(tmp_path):
    db = tmp_path / "x.db"
    small(1).run(db, FunctionModel.echo())
    with pytest.raises(ModelUnreachable):
        small(3).run(db, base_url="http://127.0.0.1:9/v1", server_wait=0)
    assert statuses(db) == {"complete": 1}


def test_arun_that_fails_before_any_episode_leaves_no_file(tmp_path):
    db = tmp_path / "x.db"

    class NoWorkers:
        """An executor whose workers cannot be reached (e.g. a cluster that is down)."""

        async def map(self, jobs, run, report):
            raise RuntimeError("no workers")

    with pytest.raises(RuntimeError, match="no workers"):
        asyncio.run(small().arun(db, FunctionModel.echo(), executor=NoWorkers()))
    assert os.listdir(tmp_path) == []


def test_interrupting_a_run_in_a_running_loop_keeps_complete_and_marks_the_rest(tmp_path):
    """What "interrupt kernel" does: SIGINT, KeyboardInterrupt in the thread that waits."""
    db = tmp_path / "x.db"
    started = threading.Event()

    async def slow(messages, call):
        started.set()
        await asyncio.sleep(0.05 if call.seed % 2 else 30)
        return "still here"

    async def cell():
        # ipykernel runs a cell with Python's own SIGINT handler (KeyboardInterrupt)
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return small(6).run(db, FunctionModel(slow), max_episodes=6)
        finally:
            signal.signal(signal.SIGINT, previous)

    def interrupt():
        started.wait(30)
        threading.Event().wait(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    summary = asyncio.run(cell())
    assert summary.interrupted
    assert summary.completed < 6
    stored = statuses(db)
    assert stored.get("interrupted", 0) >= 1
    assert stored.get("complete", 0) == summary.completed
    assert not Path(f"{db}.lock").exists()
    # the next run finishes the rest
    again = small(6).run(db, FunctionModel(lambda messages, call: "fine"))
    assert again.complete == 6 and statuses(db) == {"complete": 6}


def running(db: Path) -> int:
    """Episodes running in ``db`` now (0 while the file or its tables are still being made)."""
    if not db.exists():  # connecting would create it
        return 0
    try:
        return statuses(db).get("running", 0)
    except sqlite3.Error:
        return 0


def wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def quiet(message: dict) -> None:
    """An output hook that shows nothing (the default prints the cell's outputs)."""


def test_interrupting_the_kernel_stops_a_run_and_the_cell_again_finishes_it(tmp_path):
    """The stop button: ``experiment.run`` and ``await experiment.arun`` return interrupted."""
    km = kernel_manager(tmp_path)
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        setup = (
            "import asyncio\n"
            "from personae import Experiment, FunctionModel\n"
            "from personae.studies import counseling\n"
            "async def stuck(messages, call):\n"
            "    await asyncio.sleep(60)\n"
            "exp = Experiment(scenario=counseling(max_turns=4, min_turns=2), replicates=3)\n"
        )
        assert (
            kc.execute_interactive(setup, timeout=60, output_hook=quiet)["content"]["status"]
            == "ok"
        )
        for db, call in (
            ("a.db", "exp.run('a.db', FunctionModel(stuck))"),
            ("b.db", "await exp.arun('b.db', FunctionModel(stuck))"),
        ):
            msg_id = kc.execute(f"summary = {call}")
            wait_until(lambda db=db: running(tmp_path / db) == 3)
            km.interrupt_kernel()
            reply = kc.get_shell_msg(timeout=30)
            assert reply["parent_header"]["msg_id"] == msg_id
            assert reply["content"]["status"] == "ok"  # the cell ends with the summary
            shown: list[str] = []
            kc.execute_interactive(
                "print(summary.interrupted, summary.complete)",
                timeout=30,
                output_hook=lambda m, shown=shown: shown.append(m["content"].get("text", "")),
            )
            assert "True 0" in "".join(shown)
            assert statuses(tmp_path / db) == {"interrupted": 3}
        # running the cell again (here with a model that answers) finishes the episodes
        again = "summary = exp.run('a.db', FunctionModel(lambda m, c: 'fine'))\n"
        assert (
            kc.execute_interactive(again, timeout=60, output_hook=quiet)["content"]["status"]
            == "ok"
        )
        assert statuses(tmp_path / "a.db") == {"complete": 3}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
