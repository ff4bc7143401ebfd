"""Ctrl-C or kill mid-run: every completed episode is kept, nothing half-done counts, a rerun finishes."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    from personae import Experiment, FunctionModel, Persona, Scenario
    from personae.llm.server import sigterm_as_interrupt

    sc = Scenario(name="slow", agents=[Persona(name="A"), Persona(name="B")], max_turns=6)
    exp = Experiment(scenario=sc, replicates=40, seed=5)
    model = FunctionModel(lambda m, c: "ok", latency=float(sys.argv[2]))
    with sigterm_as_interrupt():  # what the personae command does
        summary = exp.run(sys.argv[1], model, max_episodes=4)
    print("interrupted" if summary.interrupted else "finished", summary.complete, flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupt_keeps_completed_episodes_and_rerun_finishes(tmp_path, signum):
    script = tmp_path / "slow.py"
    script.write_text(SCRIPT)
    db = tmp_path / "slow.db"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), "0.05"], stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            con = sqlite3.connect(db)
            done = con.execute(
                "SELECT COUNT(*) FROM episodes WHERE status = 'complete'"
            ).fetchone()[0]
            con.close()
        except sqlite3.Error:
            continue
        if done >= 4:
            break
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    word, complete = out.split()
    assert word == "interrupted"
    con = sqlite3.connect(db)
    statuses = dict(con.execute("SELECT status, COUNT(*) FROM episodes GROUP BY 1").fetchall())
    assert statuses["complete"] == int(complete)
    assert 4 <= int(complete) < 40
    assert "running" not in statuses  # the episodes in flight are marked interrupted
    complete_turns = con.execute(
        "SELECT COUNT(*) FROM turns t JOIN episodes e ON e.id = t.episode_id WHERE e.status = 'complete'"
    ).fetchone()[0]
    assert complete_turns == 6 * int(complete)
    con.close()

    rerun = subprocess.run(
        [sys.executable, str(script), str(db), "0"], capture_output=True, text=True, timeout=120
    )
    assert rerun.stdout.split() == ["finished", "40"]
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM turns").fetchone() == (240,)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
