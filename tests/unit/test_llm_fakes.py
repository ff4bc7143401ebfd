"""The in-package fakes: scripted order, recorded calls, function replies, speed."""

from __future__ import annotations

import asyncio
import time
import warnings

import pytest

from personae.errors import ConfigError, ModelError
from personae.llm import base
from personae.llm.base import ChatModel, Choice, Completion, JsonSchema, Message, Sampling
from personae.llm.fake import FunctionModel, RecordedCall, ScriptedModel, ScriptExhausted


def chat(*contents: str) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": "You are Sam."}]
    for content in contents:
        messages.append({"role": "user", "content": content})
    return messages


def test_fakes_implement_the_chat_model_protocol() -> None:
    assert isinstance(ScriptedModel(), ChatModel)
    assert isinstance(FunctionModel.echo(), ChatModel)


async def test_scripted_replies_come_back_in_order() -> None:
    model = ScriptedModel(["first", "second"])
    model.enqueue("third")

    texts = [(await model.complete(chat(f"turn {i}"))).text for i in range(3)]

    assert texts == ["first", "second", "third"]
    assert model.remaining == 0


async def test_empty_script_raises_a_clear_error() -> None:
    model = ScriptedModel(["only"], name="counselor")
    await model.complete(chat("hello"))

    with pytest.raises(ScriptExhausted) as caught:
        await model.complete(chat("are you there?"))

    message = str(caught.value)
    assert "counselor" in message
    assert "call #2" in message
    assert "are you there?" in message
    assert "enqueue" in message
    assert not isinstance(caught.value, ModelError), "retry wrappers must not swallow it"


async def test_scripted_exceptions_and_completions_are_replayed_as_given() -> None:
    ready = Completion(text="canned", model="m", prompt_tokens=99)
    model = ScriptedModel([ModelError("boom", retryable=True), ready])

    with pytest.raises(ModelError, match="boom"):
        await model.complete(chat("a"))
    assert await model.complete(chat("b")) is ready
    assert len(model.calls) == 2


async def test_calls_are_recorded_with_every_argument() -> None:
    model = ScriptedModel(["ok"])
    messages = chat("What brings you in?")
    sampling = Sampling(
        max_tokens=64,
        temperature=0.3,
        top_p=0.9,
        seed=11,
        stop=["\n"],
        response_format=Choice(["yes", "no"]),
        extensions={"logprobs": 2},
    )

    await model.complete(messages, sampling)

    (call,) = model.calls
    assert call == RecordedCall(messages=chat("What brings you in?"), sampling=sampling)
    assert call.sampling is sampling
    assert (call.max_tokens, call.temperature, call.top_p, call.seed) == (64, 0.3, 0.9, 11)
    assert call.stop == ["\n"]
    assert call.extensions == {"logprobs": 2}
    assert call.sampling.response_format == Choice(["yes", "no"])
    assert call.last_content == "What brings you in?"


async def test_the_constraint_is_also_readable_in_its_personae_0_2_dict_form() -> None:
    model = FunctionModel(lambda messages, call: "{}")
    schema = {"type": "object", "properties": {"mood": {"type": "integer"}}}

    await model.complete(chat("a"), Sampling(response_format=Choice([1, 2])))
    await model.complete(chat("b"), Sampling(response_format=JsonSchema(schema)))
    await model.complete(chat("c"))

    forms = [call.response_format for call in model.calls]
    assert forms == [
        {"type": "choice", "choices": ["1", "2"]},
        {"type": "json", "schema": schema},
        None,
    ]


async def test_the_personae_0_2_keyword_form_still_works_and_warns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "_WARNED", set())
    model = ScriptedModel(["ok", "again"])

    with pytest.warns(DeprecationWarning, match=r"ScriptedModel\.complete.*Sampling"):
        await model.complete(
            chat("x"),
            max_tokens=64,
            seed=11,
            stop=["\n"],
            response_format={"type": "choice", "choices": ["yes", "no"]},
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await model.complete(chat("y"), seed=12)  # warned once already

    first, second = model.calls
    assert first.sampling == Sampling(
        max_tokens=64, seed=11, stop=["\n"], response_format=Choice(["yes", "no"])
    )
    assert first.response_format == {"type": "choice", "choices": ["yes", "no"]}
    assert second.seed == 12
    with pytest.raises(TypeError, match="temprature"):
        await model.complete(chat("z"), temprature=0.2)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="max_tokens"):
        await model.complete(chat("z"), max_tokens=0)


async def test_recorded_messages_do_not_change_when_the_caller_mutates_its_list() -> None:
    model = FunctionModel.echo()
    messages = chat("one")
    await model.complete(messages, Sampling(seed=1))

    messages.append({"role": "assistant", "content": "two"})
    messages[0]["content"] = "edited"

    assert model.calls[0].messages == chat("one")


async def test_completion_carries_seed_params_and_word_token_counts() -> None:
    model = ScriptedModel(["I have been sleeping badly"])

    reply = await model.complete(chat("How are you doing"), Sampling(seed=5, max_tokens=32))

    assert reply.text == "I have been sleeping badly"
    assert reply.model == "scripted"
    assert reply.finish_reason == "stop"
    assert reply.prompt_tokens == 3 + 4  # "You are Sam." + "How are you doing"
    assert reply.completion_tokens == 5
    assert reply.seed == 5
    assert reply.params == {"max_tokens": 32, "temperature": 0.8, "top_p": 1.0, "seed": 5}


async def test_echo_reply_is_deterministic_in_the_seed() -> None:
    model = FunctionModel.echo()

    assert (await model.complete(chat("x"), Sampling(seed=42))).text == "reply 42"
    assert (await model.complete(chat("y"), Sampling(seed=42))).text == "reply 42"
    assert (await model.complete(chat("z"))).text == "reply None"
    assert [call.seed for call in model.calls] == [42, 42, None]


async def test_function_model_accepts_sync_and_async_functions() -> None:
    def shout(messages: list[Message], call: RecordedCall) -> str:
        return messages[-1]["content"].upper()

    async def whisper(messages: list[Message], call: RecordedCall) -> str:
        await asyncio.sleep(0)
        return messages[-1]["content"].lower()

    assert (await FunctionModel(shout).complete(chat("Hi there"))).text == "HI THERE"
    assert (await FunctionModel(whisper).complete(chat("Hi There"))).text == "hi there"


async def test_function_model_passes_completions_and_errors_through() -> None:
    ready = Completion(text="x", model="custom", finish_reason="length")

    def fail(messages: list[Message], call: RecordedCall) -> str:
        raise ModelError("server down", retryable=True)

    assert await FunctionModel(lambda m, c: ready).complete(chat("a")) is ready
    failing = FunctionModel(fail)
    with pytest.raises(ModelError, match="server down"):
        await failing.complete(chat("a"))
    assert len(failing.calls) == 1, "a failed call is still recorded"


async def test_function_model_rejects_a_reply_of_the_wrong_type() -> None:
    model = FunctionModel(lambda m, c: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="str or Completion"):
        await model.complete(chat("a"))


async def test_latency_is_an_asyncio_sleep_so_calls_overlap() -> None:
    model = FunctionModel.echo(latency=0.05)
    started = time.perf_counter()

    replies = await asyncio.gather(
        *(model.complete(chat("x"), Sampling(seed=i)) for i in range(20))
    )

    elapsed = time.perf_counter() - started
    assert [r.text for r in replies] == [f"reply {i}" for i in range(20)]
    assert elapsed < 0.5, f"20 calls of 50 ms took {elapsed:.2f} s: they did not overlap"


async def test_calls_after_aclose_are_an_error() -> None:
    model = ScriptedModel(["a", "b"])
    await model.aclose()
    with pytest.raises(RuntimeError, match="after aclose"):
        await model.complete(chat("x"))


async def test_recording_can_be_turned_off_but_calls_are_still_counted() -> None:
    model = FunctionModel.echo(record=False)
    for seed in range(3):
        await model.complete(chat("x"), Sampling(seed=seed))
    assert model.calls == []
    assert model.call_count == 3


async def test_zero_latency_fake_is_fast_enough_for_benchmarks() -> None:
    model = FunctionModel.echo()
    history = chat("start")
    turns = 3000
    started = time.perf_counter()
    for turn in range(turns):
        reply = await model.complete(history, Sampling(seed=turn))
        history.append({"role": "assistant", "content": reply.text})
        if len(history) > 40:  # a bounded window, like an agent with memory limits
            del history[1:3]
    rate = turns / (time.perf_counter() - started)
    assert rate > 2000, f"only {rate:.0f} fake calls/s"
