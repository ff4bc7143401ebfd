"""Chaos benchmark: does a run keep its promises while the server dies and the file locks?

``python benchmarks/chaos.py [--episodes 200] [--out runs/chaos]`` (from the repository root).

One invocation runs the same experiment twice against the fault server
(``tests/support/fault_server.py``) started as a separate process:

1. a clean run, to ``OUT/clean.db``: no faults, the baseline time;
2. a chaos run, to ``OUT/chaos.db``, during which the server is SIGKILLed three
   times (down 20, 30 and 40 s, then restarted on the same port), another
   program holds the database's write lock for 15 s once
   (``tests/support/lock_holder.py``), and rows SQLite cannot store are
   injected: a probe records a dict as ``text`` in a few chosen episodes, and
   the server answers with a lone surrogate (``"\\ud800"``) in a few others.

Faults are triggered by progress (the share of expected ``turns`` rows
committed), so they land mid-run however fast the machine is. Then the chaos
database is checked from the outside with ``sqlite3``: complete and failed
episodes, failed episodes against the injected ones, complete episodes missing
rows, duplicated rows, ``PRAGMA integrity_check`` and foreign keys. It prints a
short table on stderr and one JSON object on stdout (also written to
``OUT/report.json``), and exits 1 when an invariant is broken:

- every episode ends complete or failed, and the run itself returns;
- no episode fails without an injected unstorable row;
- no complete episode lacks a row (turns = n_turns = max_turns, one successful
  ``llm_calls`` row per generated turn, both agents, both probe rows);
- no duplicated row; ``integrity_check`` is ``ok``; no foreign-key violation;
- every planned fault actually happened, mid-run.

Run options the runner does not know (``server_wait``, ``timeout``, ``retries``
on an older personae) are left out and named in the report.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support lives next to the package, not in it
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from personae import Experiment, Opening, Persona, Probe, Scenario  # noqa: E402
from tests.support.fault_process import ServerProcess, start_process  # noqa: E402
from tests.support.fault_server import DEFAULT_MODEL, Fault  # noqa: E402
from tests.support.lock_holder import hold_lock  # noqa: E402

MAX_TURNS = 6  # the opening plus five generated turns
GENERATED_TURNS = MAX_TURNS - 1
PROBE_VARIABLE = "chaos_probe"
PROBE_ROWS = 2  # at "start" and at "end"
OK_STATUSES = ("complete", "failed")
KILL_POINTS = (0.15, 0.35, 0.55)  # shares of the expected turns rows at which the server dies
LOCK_POINT = 0.75  # last: rows made during a lock are committed at once after it
# Episodes (desks, as shares of --episodes) given an unstorable row: a dict-valued probe
# state, or lone-surrogate replies from the server to every request of Ann's.
PROBE_DICT_AT = (0.07, 0.43, 0.81)
SURROGATE_AT = (0.23, 0.62, 0.94)


# -- the experiment ---------------------------------------------------------------------------


def desk_tag(desk: int) -> str:
    """The text that makes an episode's requests recognisable to the fault server."""
    return f"[desk {desk:03d}]"


def seat_at_desk(scenario: Scenario, params: Mapping[str, Any]) -> Scenario:
    """``configure``: Ann's background names her desk, so her requests carry the tag."""
    ann, ben = scenario.agents
    background = f"Ann is an office manager at {desk_tag(int(params['desk']))}."
    return scenario.model_copy(
        update={"agents": (ann.model_copy(update={"background": background}), ben)}
    )


def chaos_probe(unstorable: frozenset[int]) -> Callable[[Any, Any], None]:
    """A probe that records one state row, a dict where text belongs in ``unstorable`` desks."""

    def record(episode: Any, point: Any) -> None:
        bad = point.moment == "end" and int(episode.params["desk"]) in unstorable
        episode.record_state(
            "Ann", PROBE_VARIABLE, 1.0, text={"a": 1} if bad else point.moment, source="probe"
        )

    return record


def build_experiment(episodes: int, unstorable: frozenset[int]) -> Experiment:
    """Two people, six short turns, one episode per desk."""
    ann = Persona(name="Ann", role="host", big_five={"E": 4.0}, background="Office manager.")
    ben = Persona(name="Ben", role="guest", big_five={"N": 3.5}, background="New colleague.")
    scenario = Scenario(
        name="chaos",
        agents=(ann, ben),
        rules={"host": "Answer in one sentence.", "guest": "Answer in one sentence."},
        opening=Opening(speaker="Ann", text="Morning Ben, how was the commute?"),
        max_turns=MAX_TURNS,
        max_tokens=24,
        carry_memory="none",
        params={"desk": 0},
        configure=seat_at_desk,
        probes=(Probe(chaos_probe(unstorable), at=("start", "end"), name=PROBE_VARIABLE),),
    )
    return Experiment(scenario=scenario, grid={"desk": list(range(episodes))}, seed=11)


def run_options(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The reliability options this personae's runner accepts, and those it does not."""
    from personae.runner.run import run_experiment, run_sync

    known = set(inspect.signature(run_sync).parameters) | set(
        inspect.signature(run_experiment).parameters
    )
    wanted = {
        "server_wait": args.server_wait,
        "timeout": args.timeout,
        "retries": args.retries,
        "max_in_flight": args.in_flight,
    }
    return {k: v for k, v in wanted.items() if k in known}, sorted(set(wanted) - known)


# -- running and disturbing ---------------------------------------------------------------------


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def committed_turns(db: Path) -> int:
    """Turns rows committed so far, read from the file as any other reader would."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            return int(con.execute("SELECT count(*) FROM turns").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def run_experiment_once(
    experiment: Experiment, db: Path, server: ServerProcess, options: Mapping[str, Any]
) -> dict[str, Any]:
    """One run through the public API; an exception is recorded, not raised."""
    remove_db(db)
    started = time.monotonic()
    outcome: dict[str, Any] = {"error": None}
    try:
        summary = experiment.run(
            db,
            base_url=server.base_url,
            model_name=DEFAULT_MODEL,
            console=Console(stderr=True),
            **options,
        )
    except BaseException as exc:  # the benchmark reports whatever the run does
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    else:
        outcome.update(
            completed=summary.completed,
            failed=summary.failed,
            interrupted=summary.interrupted,
            errors=list(summary.errors)[:5],
            server_outages=getattr(summary, "server_outages", None),
            server_wait_s=getattr(summary, "server_wait_s", None),
            lock_waits=getattr(summary, "lock_waits", None),
        )
    outcome["elapsed_s"] = round(time.monotonic() - started, 2)
    return outcome


class Disturber(threading.Thread):
    """Kills the server and locks the database at planned points of a run's progress.

    Args:
        server: The fault server process.
        db: The database the run writes.
        expected_turns: Turns rows of a complete run (progress is measured against it).
        plan: ``("kill", fraction, seconds down)`` or ``("lock", fraction, seconds)`` steps,
            done one after the other.
        max_wait: Longest wait for one step's progress point, in seconds.
    """

    def __init__(
        self,
        server: ServerProcess,
        db: Path,
        expected_turns: int,
        plan: list[tuple[str, float, float]],
        max_wait: float,
    ) -> None:
        super().__init__(name="chaos-disturber", daemon=True)
        self.server = server
        self.db = db
        self.expected_turns = expected_turns
        self.plan = plan
        self.max_wait = max_wait
        self.run_over = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def progress(self) -> float:
        return committed_turns(self.db) / self.expected_turns

    def run(self) -> None:
        for action, fraction, seconds in self.plan:
            event: dict[str, Any] = {"action": action, "at": fraction, "seconds": seconds}
            self.events.append(event)
            deadline = time.monotonic() + self.max_wait
            while (
                self.progress() < fraction
                and not self.run_over.is_set()
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            if self.run_over.is_set() or self.progress() < fraction:
                event["done"] = False
                continue
            event["progress"] = round(self.progress(), 3)
            event["t_s"] = round(time.monotonic() - self.t0, 1)
            if action == "kill":
                self._kill(event, seconds)
            else:
                self._lock(event, seconds)

    def _kill(self, event: dict[str, Any], down_s: float) -> None:
        self.server.kill()
        # Down for down_s, unless the run ended meanwhile (it gave up on the server).
        event["mid_run"] = not self.run_over.wait(down_s)
        self.server.restart()
        event["done"] = True

    def _lock(self, event: dict[str, Any], seconds: float) -> None:
        try:
            with hold_lock(self.db, seconds) as holder:
                event["mid_run"] = not self.run_over.is_set()
            event["done"] = holder.proc.returncode == 0
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            event.update(done=False, error=str(exc))


# -- checking the database from outside -----------------------------------------------------------


def inspect_db(db: Path) -> dict[str, Any]:
    """Statuses, failures by desk, missing and duplicated rows, and SQLite's own checks."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        q = con.execute
        statuses = dict(q("SELECT status, count(*) FROM episodes GROUP BY status").fetchall())
        desks = {
            row[0]: (json.loads(row[1])["desk"], row[2], row[3])
            for row in q("SELECT id, params_json, status, error FROM episodes")
        }
        failed = {eid: d for eid, (d, status, _) in desks.items() if status == "failed"}
        missing = q(
            """
            SELECT e.id FROM episodes e WHERE e.status = 'complete' AND (
                e.n_turns IS NOT ? OR
                (SELECT count(*) FROM turns t WHERE t.episode_id = e.id) != e.n_turns OR
                (SELECT count(*) FROM turns t WHERE t.episode_id = e.id AND t.scripted = 0)
                    != ? OR
                (SELECT count(*) FROM turns t JOIN llm_calls c ON c.id = t.llm_call_id
                    WHERE t.episode_id = e.id AND t.scripted = 0
                    AND c.episode_id = e.id AND c.error IS NULL) != ? OR
                (SELECT count(*) FROM llm_calls c WHERE c.episode_id = e.id
                    AND c.error IS NULL) != ? OR
                (SELECT count(*) FROM agents a WHERE a.episode_id = e.id) != 2 OR
                (SELECT count(*) FROM states s WHERE s.episode_id = e.id
                    AND s.variable = ?) != ?)
            """,
            (
                MAX_TURNS,
                GENERATED_TURNS,
                GENERATED_TURNS,
                GENERATED_TURNS,
                PROBE_VARIABLE,
                PROBE_ROWS,
            ),
        ).fetchall()
        duplicates = {
            "turns": q(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM turns "
                "GROUP BY episode_id, session, step HAVING n > 1)"
            ).fetchone()[0],
            "llm_calls": q(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM llm_calls "
                "WHERE error IS NULL GROUP BY episode_id, agent_id, purpose, step HAVING n > 1)"
            ).fetchone()[0],
            "states": q(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM states "
                "GROUP BY episode_id, agent_id, variable, t HAVING n > 1)"
            ).fetchone()[0],
            "episodes": q(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM episodes "
                "GROUP BY experiment_id, params_json, replicate HAVING n > 1)"
            ).fetchone()[0],
        }
        repaired = {
            d
            for (d,) in q(
                "SELECT DISTINCT json_extract(e.params_json, '$.desk') FROM turns t "
                "JOIN episodes e ON e.id = t.episode_id WHERE instr(t.content, char(65533)) > 0"
            )
        }
        integrity = [r[0] for r in q("PRAGMA integrity_check")]
        foreign = q("PRAGMA foreign_key_check").fetchall()
        experiments = q("SELECT count(*) FROM experiments").fetchone()[0]
    finally:
        con.close()
    return {
        "statuses": statuses,
        "failed_desks": sorted(failed.values()),
        "failed_errors": sorted({(desks[e][2] or "")[:160] for e in failed})[:5],
        "complete_desks": sorted(d for d, s, _ in desks.values() if s == "complete"),
        "complete_missing_rows": [r[0] for r in missing],
        "duplicated_rows": duplicates,
        "repaired_desks": sorted(repaired),
        "integrity_check": "ok" if integrity == ["ok"] else "; ".join(integrity[:5]),
        "foreign_key_violations": len(foreign),
        "experiments": experiments,
    }


# -- the report ---------------------------------------------------------------------------------------


def build_report(
    args: argparse.Namespace,
    clean: dict[str, Any],
    chaos: dict[str, Any],
    found: dict[str, Any],
    events: list[dict[str, Any]],
    probe_desks: frozenset[int],
    surrogate_desks: frozenset[int],
    options: Mapping[str, Any],
    unsupported: list[str],
) -> dict[str, Any]:
    injected = probe_desks | surrogate_desks
    failed = set(found["failed_desks"])
    complete = set(found["complete_desks"])
    repaired = surrogate_desks & complete & set(found["repaired_desks"])
    # A surrogate can be repaired (stored as U+FFFD) instead of failing its episode; a
    # dict cannot. Unstorable, then: the dict episodes and the surrogate ones not repaired.
    unstorable = probe_desks | (surrogate_desks - repaired)
    pauses = sum(e["seconds"] for e in events if e.get("done"))
    overhead = chaos["elapsed_s"] - clean["elapsed_s"]
    unfinished = {s: n for s, n in found["statuses"].items() if s not in OK_STATUSES}
    invariants = {
        "run_returned": chaos["error"] is None,
        "every_episode_finished": not unfinished
        and sum(found["statuses"].values()) == args.episodes,
        "no_failure_without_injection": failed <= injected,
        "no_complete_episode_missing_rows": not found["complete_missing_rows"],
        "no_duplicated_rows": not any(found["duplicated_rows"].values()),
        "integrity_ok": found["integrity_check"] == "ok",
        "foreign_keys_ok": found["foreign_key_violations"] == 0,
        "complete_surrogates_repaired": (surrogate_desks & complete)
        <= set(found["repaired_desks"]),
        "all_faults_injected_mid_run": all(e.get("done") and e.get("mid_run") for e in events),
        "clean_run_complete": clean["error"] is None and clean.get("completed") == args.episodes,
    }
    return {
        "episodes": args.episodes,
        "server": "tests/support/fault_server.py, separate process",
        "server_delay_s": args.delay,
        "run_options": dict(options),
        "run_options_unsupported": unsupported,
        "clean": clean,
        "chaos": chaos,
        "faults": events,
        "complete_episodes": len(complete),
        "failed_episodes": len(failed),
        "failed_desks": sorted(failed),
        "injected": {
            "probe_dict_desks": sorted(probe_desks),
            "surrogate_desks": sorted(surrogate_desks),
        },
        "failed_exactly_injected": failed == injected,
        "failed_exactly_unstorable": failed == unstorable,
        "probe_dict_episodes_failed": sorted(probe_desks & failed),
        "surrogate_episodes_failed": sorted(surrogate_desks & failed),
        "surrogate_episodes_complete_repaired": sorted(repaired),
        "failed_errors": found["failed_errors"],
        "unfinished_statuses": unfinished,
        "complete_missing_rows": len(found["complete_missing_rows"]),
        "duplicated_rows": sum(found["duplicated_rows"].values()),
        "duplicated_rows_by_table": found["duplicated_rows"],
        "integrity_check": found["integrity_check"],
        "foreign_key_violations": found["foreign_key_violations"],
        "clean_s": clean["elapsed_s"],
        "chaos_s": chaos["elapsed_s"],
        "overhead_s": round(overhead, 1),
        "injected_pauses_s": pauses,
        "overhead_beyond_pauses_s": round(overhead - pauses, 1),
        "invariants": invariants,
        "ok": all(invariants.values()),
    }


def table(report: dict[str, Any]) -> str:
    rows = [
        ("episodes", report["episodes"]),
        ("complete", report["complete_episodes"]),
        ("failed", report["failed_episodes"]),
        ("failed = every injected episode", report["failed_exactly_injected"]),
        ("failed = the unstorable ones", report["failed_exactly_unstorable"]),
        ("surrogate episodes repaired", len(report["surrogate_episodes_complete_repaired"])),
        ("complete missing rows", report["complete_missing_rows"]),
        ("duplicated rows", report["duplicated_rows"]),
        ("integrity_check", report["integrity_check"]),
        ("clean run (s)", report["clean_s"]),
        ("chaos run (s)", report["chaos_s"]),
        ("overhead (s)", report["overhead_s"]),
        ("of which injected pauses (s)", report["injected_pauses_s"]),
        ("invariants hold", report["ok"]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    broken = [k for k, v in report["invariants"].items() if not v]
    if broken:
        lines.append(f"{'broken':<{width}}  {', '.join(broken)}")
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "chaos")
    parser.add_argument("--delay", type=float, default=0.05, help="server seconds per reply")
    parser.add_argument("--downtimes", default="20,30,40", help="seconds down for each kill")
    parser.add_argument("--lock-seconds", type=float, default=15.0)
    parser.add_argument("--server-wait", type=float, default=600.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--max-wait", type=float, default=1200.0, help="per fault step")
    parser.add_argument("--embedded", action="store_true", help="not supported yet")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.embedded:
        print(
            "--embedded is not supported: the embedded vLLM server cannot be killed and "
            "restarted on the same port from here; the fault server stands in for it.",
            file=sys.stderr,
        )
        return 2
    if args.episodes < 20:
        print("--episodes must be at least 20 (faults are spread over the run)", file=sys.stderr)
        return 2
    downtimes = [float(s) for s in args.downtimes.split(",") if s]
    if len(downtimes) > len(KILL_POINTS):
        print(f"--downtimes takes at most {len(KILL_POINTS)} values", file=sys.stderr)
        return 2
    probe_desks = frozenset(int(args.episodes * f) for f in PROBE_DICT_AT)
    surrogate_desks = frozenset(int(args.episodes * f) for f in SURROGATE_AT)
    # Faults at these shares of the expected turns, one after the other.
    plan = [("kill", at, down) for at, down in zip(KILL_POINTS, downtimes, strict=False)]
    plan.append(("lock", LOCK_POINT, args.lock_seconds))
    plan.sort(key=lambda step: step[1])

    args.out.mkdir(parents=True, exist_ok=True)
    options, unsupported = run_options(args)
    surrogates = [Fault("surrogate", match=desk_tag(d)) for d in sorted(surrogate_desks)]
    with (args.out / "fault_server.log").open("ab") as log:
        server = start_process(delay_s=args.delay, stderr=log)
        try:
            clean = run_experiment_once(
                build_experiment(args.episodes, frozenset()), args.out / "clean.db", server, options
            )
            print(f"clean run: {clean}", file=sys.stderr)
            server.configure(faults=surrogates, reset=True)
            chaos_db = args.out / "chaos.db"
            remove_db(chaos_db)
            disturber = Disturber(
                server, chaos_db, args.episodes * MAX_TURNS, plan, max_wait=args.max_wait
            )
            disturber.start()
            chaos = run_experiment_once(
                build_experiment(args.episodes, probe_desks), chaos_db, server, options
            )
            disturber.run_over.set()
            disturber.join(timeout=max([*downtimes, args.lock_seconds]) + 60)
        finally:
            with contextlib.suppress(Exception):
                server.stop()
    print(f"chaos run: {chaos}", file=sys.stderr)
    found = inspect_db(chaos_db)
    report = build_report(
        args,
        clean,
        chaos,
        found,
        disturber.events,
        probe_desks,
        surrogate_desks,
        options,
        unsupported,
    )
    text = json.dumps(report, indent=2, default=str)
    (args.out / "report.json").write_text(text + "\n")
    print(table(report), file=sys.stderr)
    print(text)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
