"""The fault server of :mod:`tests.support.fault_server` as a separate process.

A test or benchmark that must kill the server the way a crash would (SIGKILL)
and start it again on the same port runs it in its own process::

    handle = start_process(faults=[Fault("surrogate", match="[desk 7]")], delay_s=0.05)
    handle.base_url        # "http://127.0.0.1:<port>/v1"
    handle.kill()          # SIGKILL, waits for the exit
    handle.restart()       # a new process on the same port, last configuration
    handle.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tests.support.fault_server import DEFAULT_MODEL, HOST, Fault, as_fault

__all__ = ["ServerProcess", "start_process"]


def _process_args(config: Mapping[str, Any]) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).with_name("fault_server.py").resolve()),
        "--config",
        json.dumps(config),
    ]


class ServerProcess:
    """A fault server in its own process; see :func:`start_process`."""

    def __init__(
        self, config: dict[str, Any], port: int, *, stderr: Any = None, ready_timeout: float = 20
    ) -> None:
        self.config = config
        self.port = port
        self.stderr = stderr
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:<port>/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def start(self) -> ServerProcess:
        """Start the process and wait until it listens (on ``port``, or a free one if 0)."""
        if self.alive():
            return self
        proc = subprocess.Popen(
            [*_process_args(self.config), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        line = b""
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
            elif proc.poll() is not None:
                break
        try:
            self.port = int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError):
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"the fault server process did not start (exit {proc.returncode}): {line!r}"
            ) from None
        self.proc = proc
        return self

    def kill(self) -> None:
        """SIGKILL the process and wait for it to go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        """Ask the process to exit (SIGTERM), SIGKILL after 5 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        self.kill()

    def restart(self) -> ServerProcess:
        """Kill the process if running, then start a new one on the same port.

        The new process starts with :attr:`config`, which :meth:`configure`
        keeps up to date, so faults set through this handle survive a restart.
        """
        self.kill()
        return self.start()

    def _control(self, method: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        import urllib.request

        request = urllib.request.Request(
            f"{self.root_url}/_control",
            data=None if data is None else json.dumps(data).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(json.loads(response.read()))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """``POST /_control`` with ``changes`` (see :meth:`FaultServer.configure`)."""
        data = dict(changes)
        if data.get("faults") is not None:
            data["faults"] = [as_fault(f).to_dict() for f in data["faults"]]
        snapshot = self._control("POST", data)
        self.config.update({k: v for k, v in data.items() if k != "reset"})
        return snapshot

    def snapshot(self) -> dict[str, Any]:
        """``GET /_control``: configuration and statistics of the running process."""
        return self._control("GET")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_process(
    port: int = 0,
    *,
    model: str = DEFAULT_MODEL,
    faults: Iterable[Fault | Mapping[str, Any]] = (),
    delay_s: float = 0.0,
    die_after: int | None = None,
    strict: bool = False,
    seed: int = 0,
    stderr: Any = None,
) -> ServerProcess:
    """Start the fault server as a separate process and wait until it listens.

    Args:
        port: The port on 127.0.0.1 (0: a free one, reused by ``restart``).
        model, faults, delay_s, die_after, strict, seed: As for :class:`FaultServer`.
        stderr: Where the process's stderr goes (None: inherited).

    Returns:
        A started :class:`ServerProcess` (``base_url``, ``kill``, ``restart``,
        ``configure``, ``snapshot``, ``stop``; a context manager).
    """
    config = {
        "model": model,
        "faults": [as_fault(f).to_dict() for f in faults],
        "delay_s": delay_s,
        "die_after": die_after,
        "strict": strict,
        "seed": seed,
    }
    return ServerProcess(config, port, stderr=stderr).start()
