"""Build trait vectors from contrastive prompts, and choose each trait's layer on held-out prompts.

For each trait (a :class:`~personae.vectors.traits.TraitSpec`), every question
is asked under every high-pole and every low-pole system prompt, and the
residual stream is read at every layer:

* ``source="prompt"`` (default, fast on a CPU): the activation at the last
  prompt token, the position that produces the reply (the position the
  persona-vector paper monitors with), with no generation;
* ``source="response"``: the mean over the tokens of a generated reply (the
  paper's extraction setting; ``rollouts`` replies per prompt, much slower).

The questions are split once (seeded) into extraction and held-out ones. The
vector at each layer is ``mean(high) - mean(low)`` over every prompt pair and
the extraction questions. Each layer is scored leave-one-pair-out: for each
prompt pair, a vector is built from the *other* pairs' extraction questions,
and the held-out pair's activations on the held-out questions are projected
on its unit vector, so every scored activation shares neither its system
prompt nor its question with the vector that scores it (with a single pair,
only the questions are held out). The pooled projections' separation of high
from low is measured as Cohen's d (pooled SD) and as the AUC (probability that
a high projection exceeds a low one, from the Mann-Whitney U statistic).
For comparison, ``cohen_d_questions`` is the separation on the held-out
questions under the *same* prompts as the vector (new questions only), an
easier test. **The chosen layer is the one with the largest
held-out Cohen's d** (the earliest on ties); every layer's scores are kept in
the file, so a user can choose another (e.g. by steering effect).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from personae.errors import ConfigError
from personae.llm.base import ChatModel, Message, Sampling
from personae.vectors.traits import TraitSpec
from personae.vectors.vectorfile import TraitVector, TraitVectors

if TYPE_CHECKING:
    from personae.llm.hf import TransformersModel

__all__ = ["Recipe", "build_vectors", "separation"]


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How vectors are built; recorded in the vectors file.

    Args:
        source: ``"prompt"`` (last prompt token) or ``"response"`` (mean over a reply).
        questions: Questions used per trait (the first ones after a seeded shuffle).
        held_out: Share of those questions held out for choosing the layer.
        rollouts: Replies per prompt and question (``source="response"`` only).
        max_tokens: Reply length (``source="response"`` only).
        seed: Shuffle and sampling seed.
        judge: Filter the rollouts by a judge (``source="response"`` only): each
            reply is rated 1 (the opposite of the trait) to 5 (strongly shows it),
            and only high-pole replies rated ``keep_high`` or more and low-pole
            replies rated ``keep_low`` or less build and score the vectors.
        keep_high: The least rating a high-pole reply needs to be kept.
        keep_low: The most rating a low-pole reply may have to be kept.
    """

    source: Literal["prompt", "response"] = "prompt"
    questions: int = 12
    held_out: float = 1 / 3
    rollouts: int = 1
    max_tokens: int = 48
    seed: int = 0
    judge: bool = False
    keep_high: int = 4
    keep_low: int = 2

    def __post_init__(self) -> None:
        if self.source not in ("prompt", "response"):
            raise ConfigError(f"recipe source must be 'prompt' or 'response', got {self.source!r}")
        if self.questions < 3:
            raise ConfigError(f"a recipe needs 3 questions per trait or more, got {self.questions}")
        if not 0 < self.held_out < 1:
            raise ConfigError(f"held_out must be a share between 0 and 1, got {self.held_out}")
        if self.rollouts < 1 or self.max_tokens < 1:
            raise ConfigError("rollouts and max_tokens must be 1 or more")
        if self.judge and self.source != "response":
            raise ConfigError(
                "judge filtering rates generated replies: use it with source='response'"
            )
        if not 1 <= self.keep_low < self.keep_high <= 5:
            raise ConfigError(
                f"keep_low ({self.keep_low}) and keep_high ({self.keep_high}) must be ratings "
                "from 1 to 5 with keep_low below keep_high"
            )


def separation(high: np.ndarray, low: np.ndarray) -> tuple[float, float]:
    """Cohen's d (pooled SD) and AUC of two samples of projections.

    Returns:
        ``(d, auc)``; d is positive when ``high`` lies above ``low``.
    """
    from scipy.stats import mannwhitneyu

    n1, n2 = len(high), len(low)
    if n1 < 2 or n2 < 2:
        return 0.0, 0.5  # too few kept to separate
    pooled = np.sqrt(
        ((n1 - 1) * np.var(high, ddof=1) + (n2 - 1) * np.var(low, ddof=1)) / (n1 + n2 - 2)
    )
    d = float((np.mean(high) - np.mean(low)) / pooled) if pooled > 0 else 0.0
    u = mannwhitneyu(high, low, alternative="two-sided").statistic
    return d, float(u / (n1 * n2))


def _split(spec: TraitSpec, recipe: Recipe) -> tuple[list[str], list[str]]:
    questions = list(spec.questions)
    random.Random(f"{recipe.seed}:{spec.name}").shuffle(questions)
    questions = questions[: recipe.questions]
    held = max(1, round(len(questions) * recipe.held_out))
    return questions[:-held], questions[-held:]


def _chats(prompt: str, questions: list[str]) -> list[list[Message]]:
    return [
        [{"role": "system", "content": prompt}, {"role": "user", "content": q}] for q in questions
    ]


def _mean(acts: np.ndarray) -> np.ndarray:
    """The mean over pairs and questions of ``[pairs, questions, hidden]``, skipping filtered rows.

    Rows a judge filtered out are NaN; with none left the mean is zero (no direction).
    """
    flat = acts.reshape(-1, acts.shape[-1])
    kept = flat[~np.isnan(flat).any(axis=1)]
    return kept.mean(0) if len(kept) else np.zeros(acts.shape[-1], dtype=acts.dtype)


def _kept(projections: np.ndarray) -> np.ndarray:
    return projections[~np.isnan(projections)]


def _held_out_scores(
    high: np.ndarray, low: np.ndarray, n_train: int, layers: list[int]
) -> list[dict[str, float]]:
    """Leave-one-pair-out separation per layer; ``high``/``low``: [pairs, questions, layers, hidden]."""
    pairs = high.shape[0]
    folds = range(pairs) if pairs >= 2 else [None]
    scores = []
    for index, layer in enumerate(layers):
        proj_high: list[np.ndarray] = []
        proj_low: list[np.ndarray] = []
        for held in folds:
            train = [p for p in range(pairs) if p != held] if held is not None else [0]
            test = [held] if held is not None else [0]
            v = _mean(high[train, :n_train, index]) - _mean(low[train, :n_train, index])
            unit = v / (np.linalg.norm(v) or 1.0)
            proj_high.append(high[test, n_train:, index].reshape(-1, v.shape[0]) @ unit)
            proj_low.append(low[test, n_train:, index].reshape(-1, v.shape[0]) @ unit)
        d, auc = separation(_kept(np.concatenate(proj_high)), _kept(np.concatenate(proj_low)))
        # For comparison: the same prompts, new questions (no prompt held out).
        v = _mean(high[:, :n_train, index]) - _mean(low[:, :n_train, index])
        unit = v / (np.linalg.norm(v) or 1.0)
        d_questions, _ = separation(
            _kept(high[:, n_train:, index].reshape(-1, v.shape[0]) @ unit),
            _kept(low[:, n_train:, index].reshape(-1, v.shape[0]) @ unit),
        )
        scores.append({"layer": layer, "cohen_d": d, "auc": auc, "cohen_d_questions": d_questions})
    return scores


def _activations(
    model: TransformersModel, chats: list[list[Message]], recipe: Recipe, layers: list[int]
) -> tuple[np.ndarray, list[str]]:
    """``[chats (x rollouts), layers, hidden]`` and the replies (none for ``source="prompt"``)."""
    if recipe.source == "prompt":
        found = model.encode(chats, layers, positions="last")
        return np.stack([np.stack([row[layer] for layer in layers]) for row in found]), []

    async def roll() -> list[Any]:
        ask = {"activations": {"layers": layers, "positions": "response_mean"}}
        calls = [
            model.complete(
                chat,
                Sampling(
                    max_tokens=recipe.max_tokens,
                    seed=recipe.seed * 1000 + r,
                    extensions=ask,
                ),
            )
            for chat in chats
            for r in range(recipe.rollouts)
        ]
        return list(await asyncio.gather(*calls))

    replies = asyncio.run(roll())
    acts = np.stack(
        [
            np.stack([reply.extensions["activations"]["values"][str(layer)] for layer in layers])
            for reply in replies
        ]
    )
    return acts, [reply.text for reply in replies]


Rater = ChatModel | Callable[[], ChatModel]


def _ratings(judge: Rater, spec: TraitSpec, replies: list[str], seed: int) -> list[int | None]:
    """The judge's 1-5 rating of how strongly each reply shows the trait (None: unreadable).

    A judge given as a factory (a client of a server) is made and closed inside
    the event loop that uses it.
    """
    from personae.llm.structured import Choice

    async def rate() -> list[Any]:
        made = not isinstance(judge, ChatModel) and callable(judge)
        rater: ChatModel = judge() if made else judge  # type: ignore[operator,assignment]
        try:
            return await _rate(rater)
        finally:
            if made:
                await rater.aclose()

    async def _rate(rater: ChatModel) -> list[Any]:
        calls = [
            rater.complete(
                [
                    {"role": "system", "content": _JUDGE},
                    {
                        "role": "user",
                        "content": f"Trait: {spec.name}: {spec.description}\n\nReply:\n{text}\n\n"
                        "Rate 1 (shows the opposite) to 5 (shows it strongly). One digit.",
                    },
                ],
                Sampling(
                    max_tokens=2,
                    temperature=0.0,
                    seed=seed,
                    response_format=Choice(["1", "2", "3", "4", "5"]),
                ),
            )
            for text in replies
        ]
        return list(await asyncio.gather(*calls))

    out: list[int | None] = []
    for completion in asyncio.run(rate()):
        digit = completion.text.strip()[:1]
        out.append(int(digit) if digit in "12345" and digit else None)
    return out


_JUDGE = "You rate how strongly a reply shows a personality trait. Answer with one digit."


def _filter(
    acts: np.ndarray, ratings: list[int | None], pole: str, recipe: Recipe
) -> tuple[np.ndarray, int]:
    """``acts`` with the replies the judge did not keep set to NaN, and how many were kept."""
    keep = [
        r is not None and (r >= recipe.keep_high if pole == "high" else r <= recipe.keep_low)
        for r in ratings
    ]
    filtered = acts.astype(np.float64, copy=True)
    filtered[[not k for k in keep]] = np.nan
    return filtered, sum(keep)


def build_vectors(
    model: TransformersModel,
    traits: Sequence[TraitSpec],
    recipe: Recipe | None = None,
    *,
    say: Callable[[str], Any] | None = None,
    judge: Rater | None = None,
) -> TraitVectors:
    """Build a vector per trait and layer, and choose each trait's layer (see the module docstring).

    Args:
        model: The transformers model (the vectors belong to its weights).
        traits: The traits to build.
        recipe: How; :class:`Recipe` defaults when None.
        say: Progress lines go here.
        judge: The model that rates replies when ``recipe.judge`` (default:
            ``model``), or a function that makes one (a server's client, made
            afresh in each event loop that rates).

    Returns:
        The vectors, with the model's identity and the recipe.

    Raises:
        ConfigError: No traits, or a recipe value is invalid.
    """
    recipe = recipe or Recipe()
    if not traits:
        raise ConfigError("no traits to build vectors for")
    layers = list(range(1, model.num_layers + 1))
    built: dict[str, TraitVector] = {}
    started = time.perf_counter()
    for spec in traits:
        train_q, held_q = _split(spec, recipe)
        questions = train_q + held_q
        acts: dict[str, np.ndarray] = {}
        kept: dict[str, int] = {}
        for pole, prompts in (("high", spec.high), ("low", spec.low)):
            per_prompt = []
            kept[pole] = 0
            for prompt in prompts:
                found, replies = _activations(model, _chats(prompt, questions), recipe, layers)
                if recipe.judge:
                    ratings = _ratings(judge or model, spec, replies, recipe.seed)
                    found, n = _filter(found, ratings, pole, recipe)
                    kept[pole] += n
                per_prompt.append(found)
            acts[pole] = np.stack(per_prompt)  # [pairs, questions (x rollouts), layers, hidden]
        if recipe.judge and say is not None:
            total = acts["high"].shape[0] * acts["high"].shape[1]
            say(
                f"{spec.name}: the judge kept {kept['high']}/{total} high, {kept['low']}/{total} low"
            )
        n_train = len(train_q) * (recipe.rollouts if recipe.source == "response" else 1)
        train_high = np.stack([_mean(acts["high"][:, :n_train, i]) for i in range(len(layers))])
        train_low = np.stack([_mean(acts["low"][:, :n_train, i]) for i in range(len(layers))])
        diff = train_high - train_low  # [layers, hidden]
        scores = _held_out_scores(acts["high"], acts["low"], n_train, layers)
        for index, score in enumerate(scores):
            unit = diff[index] / (np.linalg.norm(diff[index]) or 1.0)
            score["midpoint"] = float((train_high[index] + train_low[index]) @ unit / 2)
        best = max(scores, key=lambda s: (s["cohen_d"], -s["layer"]))
        if recipe.judge:
            for score in scores:
                score["kept_high"], score["kept_low"] = kept["high"], kept["low"]
        built[spec.name] = TraitVector(
            name=spec.name,
            description=spec.description,
            vectors=diff.astype(np.float32),
            layer=int(best["layer"]),
            separation=scores,
        )
        if say is not None:
            say(
                f"{spec.name}: layer {best['layer']}, held-out d = {best['cohen_d']:.2f}, "
                f"AUC = {best['auc']:.2f} ({time.perf_counter() - started:.0f} s)"
            )
    recipe_record = {
        **asdict(recipe),
        "criterion": "largest held-out Cohen's d of projections",
        "traits": {
            spec.name: {
                "high": list(spec.high),
                "low": list(spec.low),
                "questions": list(spec.questions),
            }
            for spec in traits
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    return TraitVectors(model=model.identity().as_dict(), recipe=recipe_record, traits=built)
