"""The backend registry, connected_model's choice of backend, and the moved modules' old paths."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from personae.errors import ConfigError
from personae.llm import backends
from personae.llm.backends import (
    BackendOptions,
    backend_names,
    connected_model,
    get_backend,
    register_backend,
)
from personae.llm.base import ChatModel, Sampling
from personae.llm.fake import FunctionModel
from tests.support.fault_server import FaultServer


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register backends without leaving them behind."""
    monkeypatch.setattr(backends, "_BACKENDS", dict(backends._BACKENDS))


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    with FaultServer(model="served-model") as running:
        yield running


def test_the_built_in_backends_are_registered() -> None:
    assert {"openai", "embedded"} <= set(backend_names())
    assert get_backend("openai") is backends.open_openai
    assert get_backend("embedded") is backends.open_embedded


def test_an_unknown_backend_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown model backend 'llama'.*embedded, openai"):
        get_backend("llama")


async def test_connected_model_refuses_an_unknown_backend_before_starting_anything() -> None:
    with pytest.raises(ConfigError, match="known backends"):
        async with connected_model(backend="llama"):
            pass


async def test_a_registered_backend_is_opened_by_name_with_the_runs_options(
    registry: None,
) -> None:
    seen: list[BackendOptions] = []
    closed: list[bool] = []

    @contextlib.asynccontextmanager
    async def open_fake(options: BackendOptions) -> AsyncIterator[tuple[ChatModel, dict[str, Any]]]:
        seen.append(options)
        try:
            yield FunctionModel.echo(name="local"), {"software": "fake"}
        finally:
            closed.append(True)

    register_backend("fake", open_fake)
    async with connected_model(backend="fake", model_name="m", max_in_flight=3) as (model, info):
        reply = await model.complete([{"role": "user", "content": "hi"}], Sampling(seed=4))

    assert (reply.text, info) == ("reply 4", {"software": "fake"})
    assert (seen[0].model_name, seen[0].max_in_flight) == ("m", 3)
    assert seen[0].client_options()["max_in_flight"] == 3
    assert closed == [True]


def test_a_name_is_registered_once_unless_replaced(registry: None) -> None:
    register_backend("twice", backends.open_openai)
    with pytest.raises(ConfigError, match="already registered"):
        register_backend("twice", backends.open_openai)
    register_backend("twice", backends.open_embedded, replace=True)
    assert get_backend("twice") is backends.open_embedded
    with pytest.raises(ConfigError, match="non-empty"):
        register_backend("", backends.open_openai)


async def test_a_base_url_picks_the_openai_backend(fault_server: FaultServer) -> None:
    async with connected_model(base_url=fault_server.base_url) as (model, info):
        reply = await model.complete([{"role": "user", "content": "hi"}], Sampling(seed=1))

    assert info["software"] == "openai-compatible"
    assert info["model"] == "served-model" == model.name
    assert info["version"] == "fault-0"
    assert reply.text.startswith("Reply ")


async def test_the_openai_backend_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="base URL"):
        async with connected_model(backend="openai"):
            pass


async def test_a_given_model_is_used_as_it_is() -> None:
    fake = FunctionModel.echo(name="given")
    async with connected_model(fake) as (model, info):
        assert model is fake
    assert info == {"software": "in-process", "model": "given"}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("personae.llm.connect", "personae.llm.backends"),
        ("personae.llm.server", "personae.llm.vllm.server"),
        ("personae.llm._convert", "personae.llm.vllm.convert"),
        ("personae.llm.vllm_setup", "personae.llm.vllm.flags"),
    ],
)
def test_old_module_paths_are_the_moved_modules_themselves(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def test_names_imported_from_the_old_paths_still_resolve() -> None:
    from personae.llm.connect import DEFAULT_MAX_RESTARTS, watch_server
    from personae.llm.server import (
        DEFAULT_SERVED_MODEL_NAME,
        EmbeddedServer,
        _vllm_flags,
        prepare_default_model,
        sigterm_as_interrupt,
    )
    from personae.llm.vllm.watchdog import watch_server as moved_watch_server

    assert watch_server is moved_watch_server and DEFAULT_MAX_RESTARTS == 3
    assert DEFAULT_SERVED_MODEL_NAME == "smollm2"
    assert EmbeddedServer.__module__ == "personae.llm.vllm.server"
    assert callable(_vllm_flags) and callable(prepare_default_model)
    assert callable(sigterm_as_interrupt)


def test_monkeypatching_through_an_old_path_reaches_the_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("personae.llm.server.DEFAULT_SERVED_MODEL_NAME", "patched")
    from personae.llm.vllm import server

    assert server.DEFAULT_SERVED_MODEL_NAME == "patched"
