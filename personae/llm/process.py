"""Child process groups that die with their owner, and stop signals taken as Ctrl-C.

The embedded vLLM server runs in its own session, so that Ctrl-C in the
terminal reaches personae (which then stops the server cleanly) and one
``killpg`` ends vLLM's API server and the engine processes it spawns. The
price of its own session is that nothing ends the server when personae dies
without cleaning up (``kill -9``, the out-of-memory killer, a crash): the
server, holding gigabytes of memory and its port, would run on for good.
:class:`ProcessGroup` closes that gap twice over:

* **A lifeline pipe.** The command is started through a tiny Python wrapper
  that forks a watcher and then ``exec``\\ s the command (which keeps the pid,
  the process group and so its exit status). The watcher holds the read end of
  a pipe whose only write end stays in the owner; when the owner dies, for any
  reason, the kernel closes that end and the watcher reads EOF at once. It then
  sends SIGTERM to the group and, after ``grace`` seconds, SIGKILL. The watcher
  also ends the group when the command itself exits, so that no engine process
  outlives the server it belonged to. Portable to any POSIX system.
* **PR_SET_PDEATHSIG** (Linux): the command gets SIGTERM from the kernel the
  moment its parent dies. The kernel ties this to the parent *thread*, so it is
  only set when the group is spawned from the main thread: spawned from a worker
  thread (``asyncio.to_thread``), the server would be killed when that thread
  ends. :meth:`EmbeddedServer.astart <personae.llm.vllm.server.EmbeddedServer.astart>`
  therefore spawns on the event loop's thread.

:func:`signals_as_interrupt` makes SIGTERM (``kill``) and SIGHUP (a closed
terminal) stop a program the way Ctrl-C does, so that its clean-up runs.

Nothing here imports anything outside the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["ProcessGroup", "signals_as_interrupt", "sigterm_as_interrupt"]

# argv: lifeline fd, "1" to set PR_SET_PDEATHSIG, grace seconds, the command.
_WRAPPER = """\
import os, select, signal, sys, time
lifeline, tie, grace, command = int(sys.argv[1]), sys.argv[2] == "1", float(sys.argv[3]), sys.argv[4:]
if tie and sys.platform.startswith("linux"):
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG, kept across exec
    except (OSError, AttributeError):
        pass
leader = os.getpid()
if os.fork():  # the leader becomes the command: same pid, same process group
    os.close(lifeline)
    try:
        os.execvp(command[0], command)
    except OSError as error:
        sys.stderr.write(f"personae: cannot run {command[0]}: {error}\\n")
        os._exit(127)
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, signal.SIG_IGN)  # the watcher outlives the group's SIGTERM
while os.getppid() == leader:
    if select.select([lifeline], [], [], 0.5)[0] and not os.read(lifeline, 64):
        sys.stderr.write("personae: the process that started this server is gone; stopping it\\n")
        break
os.killpg(0, signal.SIGTERM)
deadline = time.monotonic() + grace
while os.getppid() == leader and time.monotonic() < deadline:
    time.sleep(0.1)
os.killpg(0, signal.SIGKILL)
"""

#: Seconds the watcher waits after SIGTERM before it sends SIGKILL.
DEFAULT_GRACE = 5.0


class ProcessGroup:
    """A command run as the leader of its own session, ended with its owner.

    Create one with :meth:`spawn`. The command is the group's leader, so
    :attr:`pid` is also the process group id and :attr:`returncode` is the
    command's own exit status (negative: killed by that signal). If the process
    that spawned it dies, the whole group is ended within about
    ``grace`` seconds, ``kill -9`` included (see the module docstring).

    Example::

        group = ProcessGroup.spawn(["sleep", "600"])
        group.end(timeout=5.0)
    """

    def __init__(self, process: subprocess.Popen[bytes], lifeline: int) -> None:
        """Wrap a spawned wrapper process; use :meth:`spawn` instead."""
        self._process = process
        self._lifeline: int | None = lifeline

    @classmethod
    def spawn(
        cls,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: IO[bytes] | int | None = None,
        grace: float = DEFAULT_GRACE,
    ) -> ProcessGroup:
        """Start ``command`` in a new session, tied to this process.

        Args:
            command: The program and its arguments (found on ``PATH`` if bare).
            env: Its whole environment; this process's if omitted.
            stdout: Where its output and errors go; this process's if omitted.
            grace: Seconds between SIGTERM and SIGKILL when the owner is gone.

        Returns:
            The running group.

        Raises:
            OSError: The wrapper could not be started.
        """
        read_end, write_end = os.pipe()  # neither end is inherited unless passed
        main_thread = threading.current_thread() is threading.main_thread()
        wrapper = [sys.executable, "-I", "-c", _WRAPPER, str(read_end), "1" if main_thread else "0"]
        try:
            process = subprocess.Popen(
                [*wrapper, str(grace), *command],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT if stdout is not None else None,
                env=env,
                start_new_session=True,
                pass_fds=(read_end,),
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end)

    @property
    def pid(self) -> int:
        """The command's pid, which is also its process group id."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The command's exit status once it has ended; None while it runs."""
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the command to end and return its exit status.

        Raises:
            subprocess.TimeoutExpired: It still runs after ``timeout`` seconds.
        """
        return self._process.wait(timeout=timeout)

    def end(self, timeout: float = 20.0) -> int:
        """End the whole group: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Waits for the leader and for every other process of the group (such as
        vLLM's engine core). Safe to call on a group that already ended.

        Returns:
            The command's exit status.
        """
        group = self._process.pid  # the leader of its own session, so also the group id
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            self._process.wait()
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(group):
            _signal_group(group, signal.SIGKILL)
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        return self._process.wait()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    """Whether any live (non-zombie) process is left in the group."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            return True
    return False


# --------------------------------------------------------------------------- signals


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP stop the program the way Ctrl-C does.

    The SIGINT handler in force is called (inside ``asyncio.run`` that cancels
    the main task, so a run keeps what is complete and marks the rest).

    Python's default for both signals ends the process at once: no ``finally``
    runs, so an embedded server would be left to its watcher and nothing would
    mark unfinished episodes. SIGTERM is what ``kill`` sends; SIGHUP is what a
    closed terminal or a dropped SSH session sends. A SIGHUP that is ignored on
    entry (``nohup``) stays ignored. On SIGHUP the standard output and error
    streams that were a terminal are pointed at ``/dev/null`` first: the
    terminal is gone, and writing to it would fail in the middle of clean-up.
    Outside the main thread, signals are left alone.
    """
    terminals = [fd for fd in (1, 2) if _isatty(fd)]

    def handler(signum: int, frame: Any) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            _silence(terminals)
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):  # e.g. asyncio.run's: cancel the main task, then stop
            on_interrupt(signal.SIGINT, frame)
        else:  # Ctrl-C is ignored here (a background job): stop anyway
            raise KeyboardInterrupt

    signums: list[int] = [signal.SIGTERM]
    hangup = getattr(signal, "SIGHUP", None)  # not on Windows
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        signums.append(hangup)
    previous: dict[int, Any] = {}
    try:
        for signum in signums:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


sigterm_as_interrupt = signals_as_interrupt
"""The former name of :func:`signals_as_interrupt` (which now also handles SIGHUP)."""


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _silence(fds: list[int]) -> None:
    """Point the given descriptors at /dev/null (after a hang-up, a terminal only fails)."""
    if not fds:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in fds:
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)
