"""benchmarks/gpu_check.py in its CI-sized form, against the loopback fault server.

The script must run against any OpenAI-compatible server and print one JSON
object: the bench ratio (framework against the raw SDK on the same requests)
and one entry per level of the concurrency sweep.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from tests.support.fault_server import FaultServer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def load() -> ModuleType:
    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = module
        spec.loader.exec_module(module)
    return sys.modules["gpu_check"]


def test_the_ci_sized_check_prints_the_bench_ratio_and_the_sweep(capsys):
    with FaultServer(model="served") as server:
        argv = "--sweep 4,8 --requests 16 --max-tokens 16 --max-turns 2 --fake-episodes 2 --quiet"
        load().main(["--base-url", server.base_url, *argv.split()])
        received = server.count
    out = capsys.readouterr().out
    report = json.loads(out)  # stdout holds the one JSON object and nothing else
    assert report["model"] == "served" and report["server"]["model"] == "served"
    bench = report["bench"]
    # 8 episodes (the top of the sweep) of 2 turns: 1 model call each after the opening
    assert bench["requests"] == 8 and bench["peak_in_flight"] <= 8
    assert bench["framework_completion_tokens"] == bench["raw_completion_tokens"] > 0
    assert bench["ratio"] > 0 and bench["fake_turns_per_s"] > 0
    assert [level["in_flight"] for level in report["sweep"]] == [4, 8]
    for level in report["sweep"]:
        assert (level["requests"], level["ok"], level["errors"]) == (16, 16, {})
        assert level["completion_tokens"] > 0 and level["tokens_per_s"] > 0
        assert 0 < level["mean_in_flight"] <= level["in_flight"]
        assert level["latency_p50_s"] <= level["latency_p95_s"]
    assert report["best"]["in_flight"] in (4, 8)
    # warm-up (8), two framework passes and the raw replay (3 x 8), the sweep (2 x 16)
    assert received == 8 + 3 * 8 + 32


def test_errors_are_counted_by_kind_not_raised():
    with FaultServer() as server:
        server.configure(faults=[{"kind": "status", "status": 503, "count": 3}])
        figures = asyncio.run(load().level(server.base_url, "fault-model", 4, 10, 8, 30.0))
    assert figures["ok"] == 7 and figures["errors"] == {"InternalServerError": 3}
