"""The transformers backend on a tiny random-weight model: hooks, steering, seeds, registry."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
import torch

from personae.errors import ConfigError
from personae.llm.backends import get_backend
from personae.llm.base import Completion, Message, Sampling
from personae.llm.hf import TransformersModel, open_transformers
from tests.support.tiny_hf import tiny_model

CHAT: list[Message] = [
    {"role": "system", "content": "You are Sam, a calm gardener."},
    {"role": "user", "content": "How was your day?"},
]
SHORT: list[Message] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def model() -> TransformersModel:
    hf, tokenizer = tiny_model(layers=3)
    return TransformersModel(model=hf, tokenizer=tokenizer, name="tiny", device="cpu")


def _reference_hidden(
    model: TransformersModel, messages: list[Message]
) -> tuple[torch.Tensor, ...]:
    """hidden_states straight from transformers, for the same prompt."""
    text = model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.hf_model(input_ids=ids, output_hidden_states=True)
    return tuple(h[0] for h in out.hidden_states)


@pytest.mark.parametrize("layer", [1, 2])
def test_encode_reads_the_residual_stream_after_the_named_block(
    model: TransformersModel, layer: int
) -> None:
    reference = _reference_hidden(model, CHAT)[layer]

    everything = model.encode([CHAT, SHORT], [layer], positions="all")[0][layer]
    last = model.encode([CHAT, SHORT], [layer], positions="last")[0][layer]
    mean = model.encode([CHAT], [layer], positions="prompt_mean")[0][layer]

    np.testing.assert_allclose(everything, reference.numpy(), atol=1e-5)
    np.testing.assert_allclose(last, reference[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(mean, reference.mean(0).numpy(), atol=1e-5)


async def test_a_completion_returns_the_activations_it_asked_for(model: TransformersModel) -> None:
    ask = {"activations": {"layers": [1, 3], "positions": "last"}}

    reply = await model.complete(CHAT, Sampling(max_tokens=4, seed=1, extensions=ask))
    plain = await model.complete(CHAT, Sampling(max_tokens=4, seed=1))

    found = reply.extensions["activations"]
    assert found["layers"] == [1, 3] and found["positions"] == "last"
    assert set(found["values"]) == {"1", "3"}
    np.testing.assert_allclose(
        found["values"]["1"], _reference_hidden(model, CHAT)[1][-1].numpy(), atol=1e-5
    )
    assert "activations" not in plain.extensions
    assert reply.text == plain.text  # reading activations changes nothing


async def test_response_mean_averages_over_generated_tokens(model: TransformersModel) -> None:
    ask = {"activations": {"layers": [2], "positions": "response_mean"}}
    reply = await model.complete(CHAT, Sampling(max_tokens=6, temperature=0, extensions=ask))

    full = [*CHAT, {"role": "assistant", "content": reply.text}]
    text = model.tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    prompt_len = len(model.tokenizer(text, add_special_tokens=False)["input_ids"])
    generated = model.tokenizer(reply.text, add_special_tokens=False)["input_ids"]
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"] + generated
    with torch.inference_mode():
        hidden = model.hf_model(
            input_ids=torch.tensor([ids]), output_hidden_states=True
        ).hidden_states[2][0]
    fed = hidden[prompt_len : prompt_len + reply.completion_tokens - 1]
    assert full[-1]["content"] == reply.text
    np.testing.assert_allclose(
        reply.extensions["activations"]["values"]["2"], fed.mean(0).numpy(), atol=1e-4
    )


def test_steering_moves_the_residual_stream_by_exactly_alpha_v(model: TransformersModel) -> None:
    vector = np.random.default_rng(0).normal(size=model.hidden_size)
    steer = [{"layer": 2, "vector": vector.tolist(), "alpha": 2.5}]

    before = model.encode([CHAT], [1, 2, 3], positions="all")[0]
    after = model.encode([CHAT], [1, 2, 3], positions="all", steering=steer)[0]

    np.testing.assert_allclose(after[1], before[1], atol=1e-6)  # earlier layers untouched
    np.testing.assert_allclose(
        after[2] - before[2], np.tile(2.5 * vector, (len(after[2]), 1)), atol=1e-5
    )
    assert not np.allclose(after[3], before[3], atol=1e-3)  # later layers see the shift


async def test_steering_applies_to_its_own_request_only(model: TransformersModel) -> None:
    vector = np.random.default_rng(1).normal(size=model.hidden_size)
    read = {"activations": {"layers": [1], "positions": "all"}}
    steer = {"steer": [{"layer": 1, "vector": vector.tolist(), "alpha": 3.0}]}
    steered = Sampling(max_tokens=1, seed=4, extensions={**read, **steer})
    plain = Sampling(max_tokens=1, seed=4, extensions=read)

    alone = await model.complete(CHAT, plain)
    together = await asyncio.gather(model.complete(CHAT, steered), model.complete(SHORT, plain))
    short_alone = await model.complete(SHORT, plain)

    def values(reply: Completion) -> np.ndarray:
        return np.array(reply.extensions["activations"]["values"]["1"])

    np.testing.assert_allclose(
        values(together[0]) - values(alone),
        np.tile(3.0 * vector, (len(values(alone)), 1)),
        atol=1e-4,
    )
    np.testing.assert_allclose(values(together[1]), values(short_alone), atol=1e-4)
    assert together[0].extensions["steer"] == [
        {"layer": 1, "alpha": 3.0, "norm": pytest.approx(float(np.linalg.norm(vector)))}
    ]


async def test_a_vector_for_another_model_is_refused(model: TransformersModel) -> None:
    wrong = [{"layer": 1, "vector": [0.1] * 576, "alpha": 1.0}]
    with pytest.raises(ConfigError, match="another model"):
        await model.complete(CHAT, Sampling(max_tokens=2, extensions={"steer": wrong}))
    with pytest.raises(ConfigError, match="layer"):
        model.encode([CHAT], [4])


async def test_a_seed_gives_the_same_text_and_counts_are_reported(model: TransformersModel) -> None:
    first = await model.complete(CHAT, Sampling(max_tokens=12, seed=11))
    again = await model.complete(CHAT, Sampling(max_tokens=12, seed=11))
    other = await model.complete(CHAT, Sampling(max_tokens=12, seed=12))
    short = [await model.complete(CHAT, Sampling(max_tokens=3, seed=s)) for s in range(6)]

    assert first.text == again.text != other.text
    assert first.prompt_tokens == len(_reference_hidden(model, CHAT)[0])
    ended = first.finish_reason == "stop"  # the end-of-turn token counts, as on vLLM
    assert first.completion_tokens == len(model.tokenizer(first.text)["input_ids"]) + ended
    assert any(r.finish_reason == "length" for r in short)
    assert all(r.completion_tokens == 3 for r in short if r.finish_reason == "length")


async def test_stop_strings_cut_the_reply(model: TransformersModel) -> None:
    full = await model.complete(CHAT, Sampling(max_tokens=12, temperature=0))
    stop = full.text[3:5]
    cut = await model.complete(CHAT, Sampling(max_tokens=12, temperature=0, stop=[stop]))
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop"


def test_identity_changes_with_the_weights() -> None:
    one = _built(0)
    same = _built(0)
    other = _built(1)
    assert one.identity().fingerprint == same.identity().fingerprint
    assert one.identity().fingerprint != other.identity().fingerprint
    assert one.identity().hidden_size == 32


def test_the_backend_is_registered_without_importing_torch() -> None:
    assert get_backend("transformers") is open_transformers
    code = (
        "import sys, personae.llm.backends as b; "
        "assert 'transformers' in b.backend_names(); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_folder_without_a_model_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"config\.json"):
        TransformersModel(tmp_path)


def _built(seed: int) -> TransformersModel:
    hf, tokenizer = tiny_model(seed=seed)
    return TransformersModel(model=hf, tokenizer=tokenizer, device="cpu")


def test_option_logprobs_are_the_models_own_token_probabilities(model: TransformersModel) -> None:
    options = ["1", "2", "yes"]
    found = model.option_logprobs(CHAT, options)

    text = model.tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    prompt = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    for option, value in zip(options, found, strict=True):
        tail = model.tokenizer(option, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = model.hf_model(input_ids=torch.tensor([prompt + tail])).logits[0]
        logprobs = torch.log_softmax(logits.float(), -1)
        expected = sum(float(logprobs[len(prompt) + k - 1, t]) for k, t in enumerate(tail))
        assert value == pytest.approx(expected, abs=1e-4)
    steer = [{"layer": 1, "vector": [1.0] * model.hidden_size, "alpha": 5.0}]
    assert model.option_logprobs(CHAT, options, steering=steer) != pytest.approx(found)
