"""The decoding loop of the transformers backend: one batch, per-row sampling, hooks.

Rows are left-padded into one batch and decoded together with a key-value
cache. Each row has its own temperature, top-p, seed (its own
``torch.Generator``), stop strings, token budget, structured-output matcher
(xgrammar), steering terms and activation capture, so a batch behaves like
its requests run one by one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from personae.errors import ConfigError
from personae.llm.base import Choice, Completion, Grammar, JsonSchema, Message, Regex
from personae.llm.hf_hooks import Capture, SteerSpec, hooked, parse_steering

if TYPE_CHECKING:
    from personae.llm.hf import Request, TransformersModel

__all__ = ["encode_batch", "generate_batch", "option_logprobs", "prompt_ids", "torch_generator"]

_GENERATION_POSITIONS = ("last", "prompt_mean", "all", "response_mean")


def prompt_ids(model: TransformersModel, messages: list[Message], *, generation: bool) -> list[int]:
    """Token ids of ``messages`` formatted with the model's chat template."""
    text = model.tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=generation
    )
    return list(model.tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class _Row:
    request: Request
    ids: list[int]
    steer: list[SteerSpec]
    layers: tuple[int, ...]
    positions: str
    generator: torch.Generator
    matcher: Any = None
    out: list[int] = field(default_factory=list)
    generated: int = 0
    text: str = ""
    finish: str | None = None


def _activation_request(value: object, num_layers: int) -> tuple[tuple[int, ...], str]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            "the 'activations' extension must be a mapping like "
            "{'layers': [12], 'positions': 'last'}"
        )
    layers = value.get("layers", [])
    if isinstance(layers, int):
        layers = [layers]
    if not layers or not all(isinstance(x, int) and 1 <= x <= num_layers for x in layers):
        raise ConfigError(
            f"activation layers must be whole numbers from 1 to {num_layers}, got {layers!r}"
        )
    positions = value.get("positions", "last")
    if positions not in _GENERATION_POSITIONS:
        raise ConfigError(
            f"activation positions must be one of {', '.join(_GENERATION_POSITIONS)}, "
            f"got {positions!r}"
        )
    return tuple(sorted(set(layers))), str(positions)


def _matcher(model: TransformersModel, constraint: object) -> Any:
    if constraint is None:
        return None
    import xgrammar

    compiler = model.grammar_compiler()
    if isinstance(constraint, Choice):
        rule = " | ".join(json.dumps(option) for option in constraint.options)
        compiled = compiler.compile_grammar(f"root ::= {rule}")
    elif isinstance(constraint, Regex):
        compiled = compiler.compile_regex(constraint.pattern)
    elif isinstance(constraint, JsonSchema):
        if constraint.schema is None:
            compiled = compiler.compile_builtin_json_grammar()
        else:
            compiled = compiler.compile_json_schema(json.dumps(constraint.schema))
    elif isinstance(constraint, Grammar):
        compiled = compiler.compile_grammar(constraint.grammar)
    else:
        raise ConfigError(f"the transformers backend cannot apply {constraint!r}")
    return xgrammar.GrammarMatcher(compiled)


def _check_fingerprints(model: TransformersModel, entries: object) -> None:
    """Refuse steering entries tagged (``"model"``) with another model's fingerprint."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return
    tagged = {e.get("model") for e in entries if isinstance(e, Mapping) and e.get("model")}
    mine = model.identity().fingerprint if tagged else None
    if tagged and tagged != {mine}:
        raise ConfigError(
            f"a steering vector was built on another model (fingerprint "
            f"{sorted(str(t) for t in tagged)[0][:12]}), not on {model.name!r} (fingerprint "
            f"{str(mine)[:12]}); build trait vectors for this model with `personae vectors build`"
        )


def _rows(model: TransformersModel, requests: list[Request]) -> list[_Row]:
    rows = []
    for request in requests:
        extensions = request.sampling.extensions
        _check_fingerprints(model, extensions.get("steer"))
        steer = (
            parse_steering(
                extensions["steer"], hidden_size=model.hidden_size, num_layers=model.num_layers
            )
            if "steer" in extensions
            else []
        )
        layers, positions = (
            _activation_request(extensions["activations"], model.num_layers)
            if "activations" in extensions
            else ((), "last")
        )
        rows.append(
            _Row(
                request=request,
                ids=prompt_ids(model, request.messages, generation=True),
                steer=steer,
                layers=layers,
                positions=positions,
                generator=torch_generator(request.sampling.seed),
                matcher=_matcher(model, request.sampling.response_format),
            )
        )
    return rows


def torch_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (fresh entropy when None)."""
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed % 2**63)
    return generator


def _left_pad(seqs: list[list[int]], pad: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[i, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _pick(row: _Row, logits: torch.Tensor, vocab: int) -> int:
    sampling = row.request.sampling
    logits = logits.float().cpu().clone()
    if row.matcher is not None:
        import xgrammar

        bitmask = xgrammar.allocate_token_bitmask(1, vocab)
        row.matcher.fill_next_token_bitmask(bitmask)
        xgrammar.apply_token_bitmask_inplace(logits[None, :vocab], bitmask)
    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        keep = ordered.cumsum(-1) - ordered < sampling.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
    return int(torch.multinomial(probs, 1, generator=row.generator))


def _advance(model: TransformersModel, row: _Row, token: int, stop_ids: set[int]) -> None:
    sampling = row.request.sampling
    row.generated += 1
    if row.matcher is not None:
        row.matcher.accept_token(token)
    if token in stop_ids or (row.matcher is not None and row.matcher.is_terminated()):
        row.finish = "stop"
        if token not in stop_ids:
            row.out.append(token)
        return
    row.out.append(token)
    text = model.tokenizer.decode(row.out, skip_special_tokens=True)
    for stop in sampling.stop or ():
        at = text.find(stop)
        if at >= 0:
            row.text, row.finish = text[:at], "stop"
            return
    row.text = text
    if len(row.out) >= sampling.max_tokens:
        row.finish = "length"


def _activations(row: _Row, index: int, capture: Capture, prompt_len: int) -> dict[str, Any]:
    width = capture.steps[0][row.layers[0]].shape[1]
    values: dict[str, Any] = {}
    for layer in row.layers:
        prompt = capture.steps[0][layer][index, width - prompt_len :]
        if row.positions == "last":
            values[str(layer)] = prompt[-1].tolist()
        elif row.positions == "prompt_mean":
            values[str(layer)] = prompt.mean(0).tolist()
        elif row.positions == "all":
            values[str(layer)] = prompt.tolist()
        else:  # response_mean: the generated tokens fed back (all but the last one)
            fed = [step[layer][index, -1] for step in capture.steps[1 : len(row.out)]]
            values[str(layer)] = torch.stack(fed).mean(0).tolist() if fed else prompt[-1].tolist()
    return {"layers": list(row.layers), "positions": row.positions, "values": values}


@torch.inference_mode()
def generate_batch(model: TransformersModel, requests: list[Request]) -> list[Completion]:
    """Generate replies to ``requests`` in one batch (run in a worker thread).

    Raises:
        ConfigError: A request's extensions or constraint are invalid for this model.
    """
    rows = _rows(model, requests)
    hf, device = model.hf_model, model.device
    tokenizer = model.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    stop_ids = {tokenizer.eos_token_id} | set(_as_list(hf.generation_config.eos_token_id))
    stop_ids.discard(None)
    vocab = int(hf.config.vocab_size)
    ids, mask = _left_pad([r.ids for r in rows], pad, device)
    layers = tuple(sorted({layer for r in rows for layer in r.layers}))
    capture = Capture(layers) if layers else None
    cache = None
    step_ids, step_pos = ids, _positions(mask)
    with hooked(hf, steering=[r.steer for r in rows], capture=capture):
        while any(r.finish is None for r in rows):
            out = hf(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=step_pos,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :]
            nxt = []
            for i, row in enumerate(rows):
                if row.finish is None:
                    token = _pick(row, logits[i], vocab)
                    _advance(model, row, token, stop_ids)
                    nxt.append(token)
                else:
                    nxt.append(pad)
            alive = torch.tensor([[r.finish is None] for r in rows], dtype=torch.long)
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, alive.to(device)], dim=1)
            step_ids = torch.tensor([[t] for t in nxt], dtype=torch.long, device=device)
    results = []
    for i, row in enumerate(rows):
        extensions: dict[str, Any] = {}
        if row.layers and capture is not None:
            extensions["activations"] = _activations(row, i, capture, len(row.ids))
        if row.steer:
            extensions["steer"] = [
                {"layer": s.layer, "alpha": s.alpha, "norm": float(np.linalg.norm(s.vector))}
                for s in row.steer
            ]
        sampling = row.request.sampling
        results.append(
            Completion(
                text=row.text,
                model=model.name,
                finish_reason=row.finish,
                prompt_tokens=len(row.ids),
                completion_tokens=row.generated,
                seed=sampling.seed,
                params=sampling.params(),
                server="transformers",
                extensions=extensions,
            )
        )
    return results


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@torch.inference_mode()
def encode_batch(
    model: TransformersModel,
    conversations: list[list[Message]],
    layers: list[int],
    *,
    positions: str,
    add_generation_prompt: bool,
    steering: list[Mapping[str, Any]],
) -> list[dict[int, np.ndarray]]:
    """Activations of prompts without generating (see :meth:`TransformersModel.encode`).

    Raises:
        ConfigError: A layer or position is not valid for this model.
    """
    wanted, positions = _activation_request({"layers": layers, "positions": positions}, 10**9)
    if positions == "response_mean" or max(wanted) > model.num_layers:
        raise ConfigError(
            f"encode reads layers 1 to {model.num_layers} at positions last, prompt_mean or all"
        )
    steer = parse_steering(steering, hidden_size=model.hidden_size, num_layers=model.num_layers)
    hf, device = model.hf_model, model.device
    pad = model.tokenizer.pad_token_id or 0
    results: list[dict[int, np.ndarray]] = []
    for start in range(0, len(conversations), model.max_batch):
        chunk = conversations[start : start + model.max_batch]
        seqs = [prompt_ids(model, c, generation=add_generation_prompt) for c in chunk]
        ids, mask = _left_pad(seqs, pad, device)
        capture = Capture(wanted)
        with hooked(hf, steering=[steer] * len(chunk), capture=capture):
            hf(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=False)
        width = ids.shape[1]
        for i, seq in enumerate(seqs):
            found: dict[int, np.ndarray] = {}
            for layer in wanted:
                prompt = capture.steps[0][layer][i, width - len(seq) :]
                if positions == "last":
                    found[layer] = prompt[-1].numpy()
                elif positions == "prompt_mean":
                    found[layer] = prompt.mean(0).numpy()
                else:
                    found[layer] = prompt.numpy()
            results.append(found)
    return results


@torch.inference_mode()
def option_logprobs(
    model: TransformersModel,
    messages: list[Message],
    options: Sequence[str],
    steering: list[Mapping[str, Any]],
) -> list[float]:
    """Log-probability of each option as the reply's opening (see :meth:`TransformersModel.option_logprobs`).

    Raises:
        ConfigError: A steering entry is invalid for this model.
    """
    steer = parse_steering(steering, hidden_size=model.hidden_size, num_layers=model.num_layers)
    prompt = prompt_ids(model, messages, generation=True)
    tails = [list(model.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in options]
    seqs = [prompt + tail for tail in tails]
    # Right padding: the prompt is at the same positions in every row.
    width = max(len(s) for s in seqs)
    pad = model.tokenizer.pad_token_id or 0
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    with hooked(model.hf_model, steering=[steer] * len(seqs)):
        logits = model.hf_model(
            input_ids=ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False
        ).logits.float()
    logprobs = torch.log_softmax(logits, dim=-1).cpu()
    found = []
    for i, tail in enumerate(tails):
        start = len(prompt)
        total = sum(float(logprobs[i, start + k - 1, token]) for k, token in enumerate(tail))
        found.append(total)
    return found
