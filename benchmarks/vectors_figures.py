"""Reproduce the figures of docs/vectors.md on the bundled SmolLM2-135M (CPU).

Parts (each writes ``<out>/<part>.json`` and prints a summary):

* ``build``: Big Five vectors from the default recipe; per trait the chosen
  layer and its held-out separation (leave-one-prompt-pair-out Cohen's d and
  AUC, and d on new questions under the same prompts).
* ``steer``: the IPIP-NEO-120 domain scores of the model under a neutral
  system prompt, item by item as the expected rating under the model's
  probabilities of answering 1 to 5 (greedy answers are all "1" on this
  model), and a greedy reply to "Tell me about your weekend.", with the
  steered trait's raw difference-of-means vector added ``--coefficients``
  times at its layer: the effect on the steered trait versus the other four.
* ``monitor``: the time to monitor 1,000 turns: a counseling database of
  63 sixteen-turn episodes written with a fake model (replies of 30 to 60
  words), replayed through the model.
* ``views``: counseling episodes from an OpenAI-compatible server
  (``--base-url``) whose client has Big Five targets set low or high,
  questionnaire and judge at the end, then monitored: the three views'
  correlations across respondents.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/vectors_figures.py build steer monitor --out runs/vf
    HF_HUB_OFFLINE=1 python benchmarks/vectors_figures.py views --out runs/vf \\
        --base-url http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from personae.llm.base import Message, Sampling
from personae.llm.hf import TransformersModel
from personae.vectors import (
    BIG_FIVE_DOMAINS,
    Recipe,
    TraitVectors,
    big_five_traits,
    build_vectors,
    load_vectors,
    save_vectors,
)

NEUTRAL = "You are a person answering a personality questionnaire about yourself."
ITEM = (
    'How accurately does this describe you: "I {text}"? Answer with one number: '
    "1 very inaccurate, 2 moderately inaccurate, 3 neither, 4 moderately accurate, "
    "5 very accurate."
)


def _write(out: Path, part: str, data: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{part}.json").write_text(json.dumps(data, indent=2))
    print(json.dumps(data, indent=2)[:4000])


def part_build(model: TransformersModel, out: Path, questions: int) -> TraitVectors:
    started = time.perf_counter()
    vectors = build_vectors(model, big_five_traits(), Recipe(questions=questions), say=print)
    path = save_vectors(vectors, out / "big5.safetensors")
    rows = {}
    for name, trait in vectors.traits.items():
        chosen = next(s for s in trait.separation if s["layer"] == trait.layer)
        rows[name] = {
            "layer": trait.layer,
            "cohen_d": round(chosen["cohen_d"], 2),
            "auc": round(chosen["auc"], 2),
            "cohen_d_new_questions": round(chosen["cohen_d_questions"], 2),
            "best_d_new_questions": round(max(s["cohen_d_questions"] for s in trait.separation), 2),
        }
    _write(
        out,
        "build",
        {
            "seconds": round(time.perf_counter() - started, 1),
            "questions": questions,
            "traits": rows,
        },
    )
    return load_vectors(path)


def _questionnaire(
    model: TransformersModel, steer: list[dict[str, Any]] | None
) -> dict[str, float]:
    """IPIP-NEO-120 domain scores: per item the expected rating under the model's 1-5 probabilities."""
    from personae.measures.instruments import load_instrument

    items = load_instrument("ipip-neo-120").items
    options = ["1", "2", "3", "4", "5"]
    scores: dict[str, list[float]] = {d: [] for d in BIG_FIVE_DOMAINS}
    for item in items:
        chat: list[Message] = [
            {"role": "system", "content": NEUTRAL},
            {"role": "user", "content": ITEM.format(text=item.text[0].lower() + item.text[1:])},
        ]
        logprobs = np.array(model.option_logprobs(chat, options, steering=steer))
        probs = np.exp(logprobs - logprobs.max())
        expected = float((probs / probs.sum()) @ np.arange(1, 6))
        if item.domain in scores:
            scores[item.domain].append(expected if item.keyed == "+" else 6 - expected)
    return {d: round(float(np.mean(v)), 3) for d, v in scores.items()}


async def _sample(model: TransformersModel, steer: list[dict[str, Any]] | None) -> str:
    chat: list[Message] = [{"role": "user", "content": "Tell me about your weekend."}]
    extensions = {"steer": steer} if steer else {}
    reply = await model.complete(
        chat, Sampling(max_tokens=40, temperature=0, extensions=extensions)
    )
    return reply.text


def part_steer(
    model: TransformersModel,
    vectors: TraitVectors,
    out: Path,
    traits: list[str],
    coefficients: list[float],
    layer: int | None,
) -> None:
    started = time.perf_counter()
    baseline = _questionnaire(model, None)
    results: dict[str, Any] = {
        "baseline": baseline,
        "baseline_sample": asyncio.run(_sample(model, None)),
        "steered": {},
    }
    for trait in traits:
        per_alpha = {}
        at = layer or vectors[trait].layer
        norm = float(np.linalg.norm(vectors[trait].vector(at)))
        for coefficient in coefficients:
            # A multiple of the raw difference-of-means vector, as in the persona-vector paper.
            alpha = coefficient * norm
            steer = [vectors[trait].steer(alpha, at)]
            scores = _questionnaire(model, steer)
            per_alpha[str(coefficient)] = {
                "alpha": round(alpha, 2),
                "sample": asyncio.run(_sample(model, steer)),
                "scores": scores,
                "steered_trait_change": round(scores[trait] - baseline[trait], 3),
                "other_traits_mean_abs_change": round(
                    float(np.mean([abs(scores[d] - baseline[d]) for d in scores if d != trait])), 3
                ),
            }
        results["steered"][trait] = {
            "layer": at,
            "vector_norm": round(norm, 2),
            "by_coefficient": per_alpha,
        }
    results["seconds"] = round(time.perf_counter() - started, 1)
    _write(out, "steer", results)


_TEXT = (
    "I have been feeling tired and worried about work lately and I do not sleep well. "
    "My sister says I should talk to someone, so here I am, though I am not sure it helps. "
    "Sometimes I think things will get better, and sometimes I just want to stay in bed. "
    "What would you suggest I try first when the evenings get hard and the thoughts come back? "
    "That sounds reasonable, I can try writing things down before I go to sleep tonight."
)
_WORDS = _TEXT.split()


def _reply(messages: list[Message], call: Any) -> str:
    rng = random.Random(call.seed)
    start = rng.randrange(len(_WORDS) - 60)
    return " ".join(_WORDS[start : start + rng.randint(30, 60)])


def part_monitor(model: TransformersModel, vectors: TraitVectors, out: Path) -> None:
    from personae import Experiment
    from personae.llm.fake import FunctionModel
    from personae.scenarios.builtin import counseling
    from personae.store.database import Database
    from personae.vectors.monitor import monitor_database

    db = out / "monitor.db"
    db.unlink(missing_ok=True)
    scenario = counseling(max_turns=16, min_turns=17)
    Experiment(scenario=scenario, replicates=63, seed=1).run(db, model=FunctionModel(_reply))
    database = Database(db)
    try:
        summary = monitor_database(database, model, vectors)
    finally:
        database.close()
    _write(
        out,
        "monitor",
        {
            "turns": summary.turns,
            "episodes": summary.episodes,
            "seconds": round(summary.seconds, 1),
            "seconds_per_1000_turns": round(summary.seconds / summary.turns * 1000, 1),
            "traits": len(vectors.traits),
            "device": model.device,
        },
    )


def part_views(model: TransformersModel, vectors: TraitVectors, out: Path, base_url: str) -> None:
    from personae import Experiment, Judge, Probe
    from personae.scenarios.builtin import counseling
    from personae.store.database import Database
    from personae.vectors.monitor import monitor_database
    from personae.vectors.views import three_views, view_correlations

    db = out / "views.db"
    db.unlink(missing_ok=True)
    probes = (
        Probe("ipip-neo-120", who="client", at="end"),
        Probe(Judge(who="client", window=8), at="end"),
    )
    scenario = counseling(max_turns=8, min_turns=9).model_copy(update={"probes": probes})
    grid = {"client.big_five.N": [1.5, 4.5], "client.big_five.E": [1.5, 4.5]}
    started = time.perf_counter()
    Experiment(scenario=scenario, grid=grid, replicates=3, seed=2).run(
        db, base_url=base_url, max_in_flight=32
    )
    database = Database(db)
    try:
        monitor_database(database, model, vectors)
    finally:
        database.close()
    views = three_views(db)
    clients = views.filter(views["agent"] == "Maya")
    table = view_correlations(clients)
    _write(
        out,
        "views",
        {
            "respondents": clients.select("episode_id").n_unique(),
            "seconds": round(time.perf_counter() - started, 1),
            "correlations": table.to_dicts(),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="+", choices=["build", "steer", "monitor", "views"])
    parser.add_argument("--out", type=Path, default=Path("runs/vectors-figures"))
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--steer-traits", default="neuroticism,extraversion")
    parser.add_argument(
        "--coefficients", default="-4,4", help="multiples of the raw vector added when steering"
    )
    parser.add_argument("--steer-layer", type=int, default=None, help="default: the chosen layer")
    parser.add_argument("--base-url", default=None)
    args = parser.parse_args()
    model = TransformersModel(max_batch=16)
    vectors_file = args.out / "big5.safetensors"
    if "build" in args.parts:
        vectors = part_build(model, args.out, args.questions)
    else:
        vectors = load_vectors(vectors_file, model=model.identity().as_dict())
    if "steer" in args.parts:
        coefficients = [float(a) for a in args.coefficients.split(",")]
        part_steer(
            model, vectors, args.out, args.steer_traits.split(","), coefficients, args.steer_layer
        )
    if "monitor" in args.parts:
        part_monitor(model, vectors, args.out)
    if "views" in args.parts:
        if not args.base_url:
            parser.error("views needs --base-url")
        part_views(model, vectors, args.out, args.base_url)


if __name__ == "__main__":
    main()
