"""Residual-stream hooks for the transformers backend: read activations, add steering.

Layers are numbered as in the persona-vector literature: layer ``L`` (1 to the
number of decoder blocks) is the residual stream *after* decoder block ``L``,
i.e. ``hidden_states[L]`` of a Hugging Face model run with
``output_hidden_states=True`` (``0`` would be the embeddings, which are never
hooked). Steering at layer ``L`` adds ``alpha * v`` to that output, so the
residual stream at layer ``L`` moves by exactly ``alpha * v`` and every later
layer sees the shifted stream.

Both hooks act per row of a batch, so requests that share a forward pass keep
their own steering and their own captures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from personae.errors import ConfigError

__all__ = ["Capture", "SteerSpec", "decoder_layers", "hooked", "parse_steering"]


@dataclass(frozen=True)
class SteerSpec:
    """One steering term: add ``alpha * vector`` to the residual stream at ``layer``."""

    layer: int
    vector: tuple[float, ...]
    alpha: float


@dataclass
class Capture:
    """Activations captured at some layers during one or more forward passes.

    Attributes:
        layers: The layers captured (1-based, see the module docstring).
        steps: Per forward pass, ``{layer: tensor [batch, positions, hidden]}``
            (float32, on the CPU).
    """

    layers: tuple[int, ...]
    steps: list[dict[int, torch.Tensor]] = field(default_factory=list)


def decoder_layers(model: Any) -> Sequence[torch.nn.Module]:
    """The decoder blocks of a Hugging Face causal LM, in order.

    Raises:
        ConfigError: The model's blocks cannot be found (an architecture not
            laid out as ``model.model.layers``).
    """
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(
            f"the transformers backend cannot find the decoder layers of a "
            f"{type(model).__name__}; it supports models laid out as model.model.layers "
            "(Llama, Mistral, Qwen, SmolLM, ...)"
        )
    return list(layers)


def parse_steering(value: object, *, hidden_size: int, num_layers: int) -> list[SteerSpec]:
    """Read the ``"steer"`` extension: a list of ``{"layer", "vector", "alpha"}``.

    Raises:
        ConfigError: An entry is malformed, names a layer the model lacks, or
            has a vector of the wrong length (a vector built for another model).
    """
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ConfigError(
            "the 'steer' extension must be a list of {'layer', 'vector', 'alpha'} entries"
        )
    specs = []
    for entry in value:
        if not isinstance(entry, Mapping) or not {"layer", "vector"} <= set(entry):
            raise ConfigError(
                f"a 'steer' entry must be a mapping with 'layer' and 'vector', got {entry!r}"
            )
        layer = entry["layer"]
        if not isinstance(layer, int) or not 1 <= layer <= num_layers:
            raise ConfigError(
                f"steering layer must be a whole number from 1 to {num_layers}, got {layer!r}"
            )
        vector = tuple(float(x) for x in entry["vector"])
        if len(vector) != hidden_size:
            raise ConfigError(
                f"a steering vector has {len(vector)} values but this model's residual stream "
                f"has {hidden_size}: the vector was built for another model"
            )
        specs.append(SteerSpec(layer, vector, float(entry.get("alpha", 1.0))))
    return specs


def _output_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def hooked(
    model: Any,
    *,
    steering: Sequence[Sequence[SteerSpec]] | None = None,
    capture: Capture | None = None,
) -> Iterator[None]:
    """Install steering and capture hooks for the passes run inside the block.

    Args:
        model: The Hugging Face causal LM.
        steering: Per batch row, the steering terms of that row (empty for none).
        capture: Where to store the activations of ``capture.layers`` per pass;
            captured after steering, so they show the steered stream.
    """
    blocks = decoder_layers(model)
    handles = []
    deltas: dict[int, torch.Tensor] = {}
    if steering and any(steering):
        param = next(model.parameters())
        hidden = model.config.hidden_size
        for row, specs in enumerate(steering):
            for spec in specs:
                delta = deltas.setdefault(
                    spec.layer, torch.zeros(len(steering), hidden, dtype=torch.float32)
                )
                delta[row] += spec.alpha * torch.tensor(spec.vector, dtype=torch.float32)
        deltas = {k: v.to(device=param.device) for k, v in deltas.items()}
    layers = set(deltas) | set(capture.layers if capture is not None else ())

    def make_hook(layer: int) -> Any:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
            hidden_states = _output_tensor(output)
            if layer in deltas:
                shift = deltas[layer][:, None, :].to(hidden_states.dtype)
                hidden_states = hidden_states + shift
            if capture is not None and layer in capture.layers:
                if not capture.steps or layer in capture.steps[-1]:
                    capture.steps.append({})
                capture.steps[-1][layer] = hidden_states.detach().float().cpu()
            if layer not in deltas:
                return None
            if isinstance(output, tuple):
                return (hidden_states, *output[1:])
            return hidden_states

        return hook

    try:
        for layer in sorted(layers):
            handles.append(blocks[layer - 1].register_forward_hook(make_hook(layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()
