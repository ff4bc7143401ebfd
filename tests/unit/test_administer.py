"""Questionnaires and the judge as probes, on the recording fakes."""

from __future__ import annotations

import json
import re

import pytest

from personae import Episode, Probe
from personae.llm.fake import FunctionModel
from personae.measures.administer import (
    PROMPT_VARIANTS,
    complete_statement,
    parse_answer,
    parse_batch,
    split_stem,
)
from personae.measures.judge import DOMAINS, Judge, parse_ratings

LABELS = [
    "Very inaccurate",
    "Moderately inaccurate",
    "Neither",
    "Moderately accurate",
    "Very accurate",
]


def answering(value_for):
    """A fake that answers questionnaire items with ``value_for(prompt)`` and talks otherwise."""

    def reply(messages, call):
        prompt = messages[-1]["content"]
        if call.response_format and call.response_format.get("type") == "choice":
            return value_for(prompt)
        if "Statement" in prompt or "Item:" in prompt or "how often" in prompt:
            return value_for(prompt)
        return f"line {call.seed}"

    return FunctionModel(reply)


def measurements(episode):
    return episode.log.rows["measurements"]


def scores(episode):
    return episode.log.rows["scores"]


async def test_probe_is_side_effect_free_and_recorded(dialogue):
    model = answering(lambda prompt: "4")
    probe = Probe("ipip-neo-120", who="Sam", at=["start", "end"], domains=["N"])
    plain = Episode(dialogue, answering(lambda p: "4"), seed=5)
    probed = Episode(dialogue.model_copy(update={"probes": (probe,)}), model, seed=5)
    base = await plain.run()
    result = await probed.run()
    # The conversation and every agent's memory are exactly what they are without the probe.
    assert result.transcript == base.transcript
    for name in ("Lee", "Sam"):
        assert probed.agents[name].memory.entries == plain.agents[name].memory.entries
    rows = measurements(probed)
    assert len(rows) == 2 * 24  # neuroticism's 24 items, at start and at the end
    assert {r["occasion"] for r in rows} == {0, 1}
    assert {r["point"] for r in rows} == {"start", "end"}
    assert all(r["valid"] == 1 and r["llm_call_id"] for r in rows)
    # Each item was asked in its own request carrying the persona, never as a turn.
    asked = [c for c in model.calls if c.response_format]
    assert len(asked) == 48
    assert all(
        c.messages[0]["role"] == "system" and "Sam" in c.messages[0]["content"] for c in asked
    )


async def test_answers_map_back_through_the_option_order(dialogue):
    # The agent always picks the first option shown: value 1 forward, value 5 reversed.
    model = answering(lambda prompt: "1")
    probe = Probe(
        "ipip-neo-120", who="client", at="start", items=["1", "2"], design="cross", shuffle=False
    )
    episode = Episode(dialogue.model_copy(update={"probes": (probe,)}), model, seed=1)
    await episode.run()
    rows = measurements(episode)
    assert len(rows) == 2 * len(PROMPT_VARIANTS) * 2  # items x variants x orders
    for row in rows:
        assert row["value"] == (1.0 if row["option_order"] == "forward" else 5.0)
    assert {r["prompt_variant"] for r in rows} == {0, 1, 2}
    # One score per form, tagged with its form.
    forms = {(s["prompt_variant"], s["option_order"]) for s in scores(episode)}
    assert len(forms) == 6


async def test_rotation_picks_one_form_per_administration_by_seed(dialogue):
    probe = Probe("gad-7", who="Sam", at=["start", "end"])
    sc = dialogue.model_copy(update={"probes": (probe,)})

    async def forms(seed):
        episode = Episode(sc, answering(lambda p: "2"), seed=seed)
        await episode.run()
        return [
            (r["occasion"], r["prompt_variant"], r["option_order"]) for r in measurements(episode)
        ]

    first = await forms(11)
    assert first == await forms(11)
    for occasion in (0, 1):
        assert len({f[1:] for f in first if f[0] == occasion}) == 1
    seen = set()
    for seed in range(12):
        seen |= {f[1:] for f in await forms(seed)}
    assert len(seen) > 3


async def test_item_order_is_a_seeded_shuffle(dialogue):
    order = []
    probe = Probe("phq-9", who="Sam", at="start", variants=[0], option_orders=["forward"])

    def reply(messages, call):
        if call.response_format:
            order.append(messages[-1]["content"])
        return "1"

    episode = Episode(
        dialogue.model_copy(update={"probes": (probe,)}), FunctionModel(reply), seed=3
    )
    await episode.run()
    rows = sorted(measurements(episode), key=lambda r: r["position"])
    assert sorted(r["item"] for r in rows) == [str(i) for i in range(1, 10)]
    assert [r["item"] for r in rows] != [str(i) for i in range(1, 10)]
    assert len(order) == 9


async def test_malformed_answers_are_stored_invalid_with_raw_text(dialogue):
    answers = iter(["", "As an AI, I cannot rate myself.", "9", "I feel fine, thanks", "2"])
    probe = Probe(
        "gad-7",
        who="Sam",
        at="start",
        items=["1", "2", "3", "4", "5"],
        shuffle=False,
        constrain=False,
        option_orders=["forward"],
    )

    def reply(messages, call):
        if "how often" in messages[-1]["content"]:
            return next(answers)
        return "hello"

    episode = Episode(
        dialogue.model_copy(update={"probes": (probe,)}), FunctionModel(reply), seed=2
    )
    await episode.run()  # never raises
    rows = sorted(measurements(episode), key=lambda r: r["item"])
    assert [r["reason"] for r in rows] == ["empty", "refusal", "out_of_range", "unparseable", None]
    assert [r["valid"] for r in rows] == [0, 0, 0, 0, 1]
    assert rows[1]["raw"] == "As an AI, I cannot rate myself."
    assert rows[4]["value"] == 1.0  # option 2 shown forward is "Several days" = 1
    total = [s for s in scores(episode) if s["scale"] == "gad-7"]
    assert total[0]["n_missing"] == 4


async def test_batches_send_several_items_per_request(dialogue):
    def reply(messages, call):
        prompt = messages[-1]["content"]
        if call.response_format and call.response_format["type"] == "json":
            count = len(re.findall(r"^\d+\. You", prompt, re.M))
            return json.dumps({str(i): 5 for i in range(1, count + 1)})
        return "hi"

    probe = Probe("ipip-neo-120", who="Sam", at="start", batch_size=10, option_orders=["forward"])
    model = FunctionModel(reply)
    episode = Episode(dialogue.model_copy(update={"probes": (probe,)}), model, seed=4)
    await episode.run()
    rows = measurements(episode)
    assert len(rows) == 120
    assert len({r["llm_call_id"] for r in rows}) == 12
    assert {r["batch"] for r in rows} == set(range(12))
    assert all(r["value"] == 5.0 for r in rows)
    domains = {s["scale"]: s["value"] for s in scores(episode) if s["level"] == "domain"}
    # All answered "Very accurate": + keyed items score 5, - keyed 1, so each domain lies between.
    assert set(domains) == {
        "neuroticism",
        "extraversion",
        "openness",
        "agreeableness",
        "conscientiousness",
    }
    assert all(1.0 < v < 5.0 for v in domains.values())


def test_unknown_respondent_or_facet_fails_at_definition(dialogue):
    with pytest.raises(ValueError, match="Robin"):
        dialogue.model_copy(update={"probes": ()}).__class__(
            **{**dict(dialogue), "probes": (Probe("phq-9", who="Robin", at="start"),)}
        )
    with pytest.raises(ValueError, match="Bravery"):
        Probe("ipip-neo-120", facets=["Bravery"], at="start")
    with pytest.raises(ValueError, match="ipip-neo-999"):
        Probe("ipip-neo-999", at="start")


def test_parser_reads_numbers_labels_and_refusals():
    assert parse_answer("4", LABELS).position == 4
    assert parse_answer("  2 - Moderately inaccurate", LABELS).position == 2
    assert parse_answer("I'd say 3.", LABELS).position == 3
    assert parse_answer("Moderately accurate, I think", LABELS).position == 4
    assert parse_answer("Very inaccurate", LABELS).position == 1
    assert parse_answer("7", LABELS).reason == "out_of_range"
    assert parse_answer("0", LABELS).reason == "out_of_range"
    assert parse_answer("I can't answer that", LABELS).reason == "refusal"
    assert parse_answer("hmm", LABELS).reason == "unparseable"
    assert parse_answer("   ", LABELS).reason == "empty"
    batch = parse_batch('{"1": 4, "2": 9}', 3, LABELS)
    assert [b.position for b in batch] == [4, None, None]
    assert [b.reason for b in batch] == [None, "out_of_range", "unparseable"]
    assert [b.position for b in parse_batch("1: 2\n2: 5", 2, LABELS)] == [2, 5]


def test_stems_and_statements():
    stem, lead = split_stem("How accurately does the following statement describe you? You ...")
    assert (stem, lead) == ("How accurately does the following statement describe you?", "You")
    assert complete_statement(lead, "Worry about things") == "You worry about things."
    assert complete_statement("", "Trouble relaxing") == "Trouble relaxing"
    assert split_stem("Over the last 2 weeks?") == ("Over the last 2 weeks?", "")


def test_questionnaire_describes_itself_in_the_experiment_config(dialogue):
    sc = dialogue.model_copy(
        update={"probes": (Probe("phq-9", who="Sam", at=["start", "end"], batch_size=3),)}
    )
    probes = sc.describe()["probes"]
    assert probes[0]["fn"]["instrument"] == "phq-9"
    assert probes[0]["fn"]["batch_size"] == 3
    json.dumps(probes)


async def test_judge_rates_what_the_agent_said_and_stores_scores(dialogue):
    seen = []

    def reply(messages, call):
        if messages[0]["content"].startswith("You are a personality psychologist"):
            seen.append(messages[-1]["content"])
            return json.dumps({d: i + 1 for i, d in enumerate(DOMAINS)})
        return f"Sam line {call.seed}" if "Sam" in messages[0]["content"] else "Lee line"

    probe = Probe(Judge(who="client", window=2), at="end")
    model = FunctionModel(reply)
    episode = Episode(dialogue.model_copy(update={"probes": (probe,)}), model, seed=9)
    result = await episode.run()
    assert len(seen) == 1
    said = [u.text for u in result.transcript if u.speaker == "Sam"]
    assert all(line in seen[0] for line in said[-2:]) and said[0] not in seen[0]
    judged = {s["scale"]: s["value"] for s in scores(episode)}
    assert judged == {d: float(i + 1) for i, d in enumerate(DOMAINS)}
    assert {s["source"] for s in scores(episode)} == {"judge"}
    # The judge never spoke: the transcript is untouched.
    assert all("personality" not in u.text for u in result.transcript)


async def test_judge_skips_an_agent_that_has_not_spoken(dialogue):
    probe = Probe(Judge(who="Sam"), at="start")
    episode = Episode(
        dialogue.model_copy(update={"probes": (probe,)}), FunctionModel.echo(), seed=1
    )
    await episode.run()
    assert scores(episode) == []


def test_judge_parser_is_tolerant():
    assert parse_ratings('{"openness": 4, "extraversion": 9}') == {
        "openness": 4.0,
        "conscientiousness": None,
        "extraversion": None,
        "agreeableness": None,
        "neuroticism": None,
    }
    prose = parse_ratings("Openness: 3, Conscientiousness - 2; neuroticism 5")
    assert prose["openness"] == 3.0 and prose["conscientiousness"] == 2.0
    assert prose["neuroticism"] == 5.0
