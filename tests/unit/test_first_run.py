"""What a newcomer meets first: a package that builds without warnings, error hints,
help that uses the terminal, and a demo whose headline query runs on the real schema."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import tomllib
import warnings
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from personae import FunctionModel
from personae.cli import app
from personae.demo import HEADLINE, MODEL_NOTE, TEMPERATURES, compare, demo_experiment
from personae.errors import ModelError
from personae.llm.base import Sampling
from personae.llm.openai import OpenAIChatModel, list_models

ROOT = Path(__file__).resolve().parents[2]


def test_package_metadata_builds_without_warnings() -> None:
    """pyproject.toml as setuptools reads it: an SPDX licence, no deprecation warning."""
    import setuptools  # noqa: F401  (its import-time distutils notice is not ours)
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    assert all((ROOT / name).is_file() for name in project["license-files"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "Apache-2.0"


def _not_found(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"detail": "Not Found"})


def test_a_base_url_without_v1_gets_a_hint() -> None:
    async def go(base_url: str) -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(_not_found)) as http:
            with pytest.raises(ModelError) as caught:
                await list_models(base_url, http_client=http)
        return str(caught.value)

    assert "did you mean http://gpu-box:8000/v1?" in asyncio.run(go("http://gpu-box:8000/"))
    assert "did you mean" not in asyncio.run(go("http://gpu-box:8000/v1"))


def test_a_chat_request_answered_404_gets_the_same_hint() -> None:
    async def go() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(_not_found)) as http:
            model = OpenAIChatModel("http://gpu-box:8000", "m", http_client=http)
            with pytest.raises(ModelError) as caught:
                await model.complete([{"role": "user", "content": "hi"}], Sampling(max_tokens=4))
        return str(caught.value)

    message = asyncio.run(go())
    assert "HTTP 404" in message and "did you mean http://gpu-box:8000/v1?" in message


def test_help_paragraphs_use_the_terminal_width() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    # One line at 200 columns, where the docstring's source breaks it after "some".
    assert "3 some episodes failed (the rest are kept" in result.output


_calls = itertools.count()


def _loops_when_cold(messages, call) -> str:
    """The small model's measured habit: at a low temperature it says one line over and over."""
    if call.temperature < 0.5:
        return "I'm glad you're here."
    return f"Something new, call {next(_calls)}."


def test_demo_headline_query_tells_the_temperatures_apart(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    experiment = demo_experiment(replicates=2)
    summary = asyncio.run(experiment.arun(db, FunctionModel(_loops_when_cold), progress=False))
    assert summary.complete == 4
    con = sqlite3.connect(db)
    try:
        cursor = con.execute(HEADLINE)
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
    # Ten utterances: the scripted opening, then nine replies; at 0.2 all but the first
    # repeat an earlier line, at 0.8 none does.
    assert [row["temperature"] for row in rows] == list(TEMPERATURES) == [0.2, 0.8]
    cold, default = rows
    assert (cold["episodes"], cold["replies"]) == (2, 18)
    assert (cold["share_repeated"], cold["lowest"], cold["highest"]) == (0.89, 0.89, 0.89)
    assert (default["share_repeated"], default["lowest"], default["highest"]) == (0.0, 0.0, 0.0)
    assert compare(db).startswith("0.2 vs 0.8: difference 0.89 (95% CI 0.89 to 0.89")
    assert "2 vs 2 conversations" in compare(db)
    assert "--base-url" in MODEL_NOTE
