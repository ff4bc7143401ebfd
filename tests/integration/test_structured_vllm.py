"""Structured-output detection against the real embedded vLLM server.

Run with ``PERSONAE_TEST_BASE_URL=http://127.0.0.1:8765/v1`` to use a server
that is already up (the ``vllm_server`` fixture starts one otherwise).
"""

from __future__ import annotations

from typing import Any

import pytest

from personae.llm.base import Choice, Message, Sampling
from personae.llm.openai import OpenAIChatModel

pytestmark = pytest.mark.integration

QUESTION: list[Message] = [
    {"role": "system", "content": "You are Sam, a second-year student. Answer briefly."},
    {"role": "user", "content": "'I worry a lot.' Do you agree?"},
]


async def test_auto_detects_vllm_and_a_choice_is_honoured(vllm_server: Any) -> None:
    choices = ["agree", "neutral", "disagree"]
    model = OpenAIChatModel(vllm_server.base_url, vllm_server.model)
    try:
        replies = [
            await model.complete(
                QUESTION,
                Sampling(max_tokens=8, temperature=1.0, seed=seed, response_format=Choice(choices)),
            )
            for seed in range(3)
        ]
        mode = await model.structured_mode()
    finally:
        await model.aclose()

    assert model.structured == "auto"
    assert mode == "vllm"
    for reply in replies:
        assert reply.text in choices
        assert reply.extensions["structured"] == "structured_outputs"
        assert reply.params["structured_outputs"] == {"choice": choices}
