"""A second program that holds an SQLite write lock: ``python -m tests.support.lock_holder DB``.

It opens the file with the ``sqlite3`` module, takes the write lock (``BEGIN
IMMEDIATE``, or ``BEGIN EXCLUSIVE`` with ``--mode exclusive``), prints
``locked`` once it holds it, keeps it for ``--seconds``, rolls back, prints
``released`` and exits 0. Every other writer of the file waits (or fails with
"database is locked") meanwhile; readers of a WAL database still read.

From a test, :func:`hold_lock` starts it and returns once the lock is held::

    with hold_lock(db_path, seconds=15) as holder:
        ...  # writers are blocked here until holder.released_at
    # leaving the block waits for the program to release the lock and exit

Only the standard library, so it also runs as a plain script.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["LockHolder", "hold_lock", "main"]

LOCKED = "locked"
RELEASED = "released"


class LockHolder:
    """The lock-holding program running as a subprocess (see :func:`hold_lock`).

    Attributes:
        proc: The process.
        seconds: How long it holds the lock once it has it.
        locked_at: ``time.monotonic()`` when the lock was reported held.
    """

    def __init__(self, proc: subprocess.Popen[bytes], seconds: float, locked_at: float) -> None:
        self.proc = proc
        self.seconds = seconds
        self.locked_at = locked_at

    @property
    def released_at(self) -> float:
        """About when the lock is released (``time.monotonic()`` clock)."""
        return self.locked_at + self.seconds

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to release the lock and exit; its exit status.

        Raises:
            subprocess.TimeoutExpired: It is still running after ``timeout`` seconds
                (default: the remaining hold time plus 30 s).
        """
        if timeout is None:
            timeout = max(0.0, self.released_at - time.monotonic()) + 30.0
        code = self.proc.wait(timeout=timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def kill(self) -> None:
        """SIGKILL the program: the operating system drops its lock at once."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.wait(timeout=10)

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.kill()
        else:
            self.wait()


def hold_lock(
    db: str | Path,
    seconds: float,
    *,
    mode: str = "immediate",
    timeout: float = 30.0,
) -> LockHolder:
    """Start the lock holder on ``db`` and return once it holds the write lock.

    Args:
        db: The SQLite file.
        seconds: How long to hold the lock once taken.
        mode: ``"immediate"`` (``BEGIN IMMEDIATE``) or ``"exclusive"``.
        timeout: Seconds to wait for the lock to be taken (the program itself
            waits as long for a writer that holds it already).

    Returns:
        The running :class:`LockHolder`.

    Raises:
        RuntimeError: The program exited or did not report the lock in time.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            str(db),
            "--seconds",
            str(seconds),
            "--mode",
            mode,
            "--wait",
            str(timeout),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + timeout + 10.0
    while LOCKED.encode() not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    if LOCKED.encode() not in out:
        proc.kill()
        proc.wait()
        raise RuntimeError(
            f"the lock holder did not lock {db} (exit {proc.returncode}): {out.decode()!r}"
        )
    return LockHolder(proc, seconds, time.monotonic())


def main(argv: list[str] | None = None) -> int:
    """Take the write lock on DB, say ``locked``, hold it, roll back, say ``released``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.lock_holder",
        description="Hold an SQLite write lock for a while.",
    )
    parser.add_argument("db", help="the SQLite file")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to hold the lock")
    parser.add_argument("--mode", choices=("immediate", "exclusive"), default="immediate")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for another writer first"
    )
    args = parser.parse_args(argv)
    con = sqlite3.connect(args.db, timeout=args.wait, isolation_level=None)
    try:
        con.execute(f"BEGIN {args.mode.upper()}")
        print(LOCKED, flush=True)
        time.sleep(max(0.0, args.seconds))
        con.execute("ROLLBACK")
    finally:
        con.close()
    print(RELEASED, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
