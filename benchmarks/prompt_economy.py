"""What each built-in study spends in prompt and generated tokens, in both replay modes.

For each mode (``exact``: the server's prefix cache off; ``fast``: on), one
embedded vLLM server is started in that mode (one at a time; or give
``--url-exact``/``--url-fast`` for servers already running), and each built-in
is run with the command a user types::

    personae run <built-in> --base-url URL --replay MODE --db DIR/MODE-<built-in>.db

Its wall time is measured around that command (server start-up excluded: the
server is up before; each embedded server's start-up is reported apart), and its tokens are read back from ``llm_calls``: prompt
tokens, the share the server took from its prefix cache
(``llm_calls.cached_tokens``), and generated tokens, per study and per call
purpose. Prints a Markdown table and writes everything as JSON::

    .venv/bin/python benchmarks/prompt_economy.py --out /tmp/economy
    .venv/bin/python benchmarks/prompt_economy.py --builtins student-cohort --modes fast \\
        --set student-cohort:n_students=48 --set student-cohort:days=70 --replicates student-cohort:1

Both modes run the same seeds: the designs (parameters, episode seeds, who
talks and answers when) are the same, so the token counts differ only where
the transcripts do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from personae.runner.replay import REPLAY_MODES, prefix_caching_for
from personae.studies import BUILTINS

#: Replicates per built-in unless --replicates says otherwise: the built-ins' own
#: defaults, except the cohort, whose target is measured at 2.
DEFAULT_REPLICATES = {"student-cohort": 2}


def run_builtin(
    name: str, url: str, mode: str, db: Path, replicates: int | None, sets: list[str]
) -> dict[str, Any]:
    """Run one built-in with ``personae run`` and read its tokens back."""
    db.unlink(missing_ok=True)
    command = [sys.executable, "-m", "personae.cli", "run", name, "--base-url", url]
    command += ["--replay", mode, "--db", str(db), "--no-progress"]
    if replicates is not None:
        command += ["--replicates", str(replicates)]
    for item in sets:
        command += ["--set", item]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return {"wall_s": round(wall, 1), **tokens(db)}


def tokens(db: Path) -> dict[str, Any]:
    """Calls and tokens of a run, in all and per purpose, from ``llm_calls``."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT purpose, COUNT(*), SUM(prompt_tokens), SUM(COALESCE(cached_tokens, 0)), "
            "SUM(completion_tokens) FROM llm_calls WHERE error IS NULL GROUP BY purpose"
        ).fetchall()
        episodes = con.execute("SELECT COUNT(*) FROM episodes WHERE status = 'complete'").fetchone()
    finally:
        con.close()
    purposes = {
        p: {"calls": n, "prompt": pt or 0, "cached": c or 0, "generated": g or 0}
        for p, n, pt, c, g in rows
    }
    total = {
        k: sum(v[k] for v in purposes.values()) for k in ("calls", "prompt", "cached", "generated")
    }
    return {"episodes": episodes[0], **total, "by_purpose": purposes}


@contextlib.contextmanager
def server_for(mode: str, url: str | None, started: dict[str, float]) -> Iterator[str]:
    """The URL of a server in ``mode``: the one given, or an embedded one started now.

    The seconds an embedded server took to answer go into ``started[mode]``.
    """
    if url is not None:
        yield url
        return
    from personae.llm.server import EmbeddedServer

    begin = time.perf_counter()
    with EmbeddedServer(prefix_caching=prefix_caching_for(mode)) as server:
        started[mode] = round(time.perf_counter() - begin, 1)
        print(f"{mode}: embedded server ready in {started[mode]} s", flush=True)
        yield server.base_url


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| built-in | mode | episodes | wall (s) | prompt tokens | from cache | generated | prompt / generated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, modes in results.items():
        for mode, r in modes.items():
            share = r["cached"] / r["prompt"] if r["prompt"] else 0.0
            ratio = r["prompt"] / r["generated"] if r["generated"] else float("nan")
            lines.append(
                f"| {name} | {mode} | {r['episodes']} | {r['wall_s']:.0f} | {r['prompt']:,} | "
                f"{share:.0%} | {r['generated']:,} | {ratio:.1f} |"
            )
        if {"exact", "fast"} <= set(modes):
            speed = modes["exact"]["wall_s"] / modes["fast"]["wall_s"]
            lines.append(f"| {name} | fast vs exact | | {speed:.2f}x faster | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builtins", default=",".join(BUILTINS))
    parser.add_argument("--modes", default=",".join(REPLAY_MODES))
    parser.add_argument("--url-exact", default=None, help="a running server with the cache off")
    parser.add_argument("--url-fast", default=None, help="a running server with the cache on")
    parser.add_argument(
        "--set", action="append", default=[], help="BUILTIN:KEY=VALUE, passed as --set"
    )
    parser.add_argument(
        "--replicates", action="append", default=[], help="BUILTIN:N (default: its own)"
    )
    parser.add_argument("--out", type=Path, default=Path("prompt-economy"))
    args = parser.parse_args()
    names = [n for n in args.builtins.split(",") if n]
    unknown = [n for n in names if n not in BUILTINS]
    if unknown:
        parser.error(f"unknown built-in(s) {unknown}; built-ins: {', '.join(BUILTINS)}")
    replicates: dict[str, int | None] = {**DEFAULT_REPLICATES}
    for item in args.replicates:
        key, _, value = item.partition(":")
        replicates[key] = int(value)
    sets: dict[str, list[str]] = {}
    for item in args.set:
        key, _, value = item.partition(":")
        sets.setdefault(key, []).append(value)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in names}
    started: dict[str, float] = {}
    for mode in args.modes.split(","):
        with server_for(mode, getattr(args, f"url_{mode}"), started) as url:
            for name in names:
                db = args.out / f"{mode}-{name}.db"
                results[name][mode] = run_builtin(
                    name, url, mode, db, replicates.get(name), sets.get(name, [])
                )
                print(
                    f"{name} {mode}: {json.dumps({k: v for k, v in results[name][mode].items() if k != 'by_purpose'})}",
                    flush=True,
                )
    report = {"server_start_s": started, "builtins": results}
    (args.out / "results.json").write_text(json.dumps(report, indent=2))
    print(table(results))
    if started:
        print("embedded server start-up (s): " + json.dumps(started))


if __name__ == "__main__":
    main()
