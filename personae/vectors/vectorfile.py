"""Trait vectors as a file: the vectors of every layer, the model they belong to, the recipe.

A vectors file is one safetensors file: a tensor ``<trait>`` of shape
``[layers, hidden]`` per trait (row ``i`` is layer ``i + 1``, the residual
stream after decoder block ``i + 1``) and a ``personae`` metadata entry, JSON,
holding the model's identity (name, architecture, layers, width and a SHA-256
of its config and weights), the recipe that built the vectors, and per trait
the chosen layer and the separation of every layer on held-out prompts.

:func:`load_vectors` refuses a file built for another model when given the
model's identity, so projections and steering never mix models.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from personae.errors import ConfigError

__all__ = ["FORMAT", "TraitVector", "TraitVectors", "load_vectors", "save_vectors"]

FORMAT = "personae-trait-vectors/1"
"""The format tag written into every vectors file."""


@dataclass(frozen=True)
class TraitVector:
    """One trait's difference-of-means vectors at every layer.

    Attributes:
        name: The trait.
        description: What the trait is.
        vectors: ``[layers, hidden]``; row ``i`` is layer ``i + 1``.
        layer: The chosen layer (1-based), see :mod:`personae.vectors.build`.
        separation: Per layer, ``{"layer", "cohen_d", "auc", "midpoint"}`` on held-out prompts.
    """

    name: str
    description: str
    vectors: np.ndarray
    layer: int
    separation: list[dict[str, float]] = field(default_factory=list)

    def vector(self, layer: int | None = None) -> np.ndarray:
        """The raw difference-of-means vector at ``layer`` (the chosen one by default)."""
        return np.asarray(self.vectors[(layer or self.layer) - 1])

    def unit(self, layer: int | None = None) -> np.ndarray:
        """The vector at ``layer`` scaled to length 1 (projections use it)."""
        v = self.vector(layer)
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else v

    def project(self, activation: np.ndarray, layer: int | None = None) -> float:
        """The projection ``h · v / |v|`` of a residual-stream activation at ``layer``."""
        return float(np.dot(np.asarray(activation, dtype=np.float64), self.unit(layer)))

    def steer(self, alpha: float, layer: int | None = None) -> dict[str, Any]:
        """A ``"steer"`` extension entry adding ``alpha`` times the unit vector at ``layer``.

        The unit vector is used so ``alpha`` is a distance in the residual
        stream, comparable across traits.
        """
        chosen = layer or self.layer
        return {"layer": chosen, "vector": self.unit(chosen).tolist(), "alpha": float(alpha)}


@dataclass(frozen=True)
class TraitVectors:
    """The traits of one vectors file, with the model they belong to.

    Attributes:
        model: The model's identity (``ModelIdentity.as_dict()``).
        recipe: How the vectors were built (prompts, positions, split, ...).
        traits: By trait name.
        digest: SHA-256 of the file's bytes (set by :func:`load_vectors`);
            monitoring records it to know what was already measured.
    """

    model: Mapping[str, Any]
    recipe: Mapping[str, Any]
    traits: dict[str, TraitVector]
    digest: str = ""

    def __getitem__(self, name: str) -> TraitVector:
        try:
            return self.traits[name]
        except KeyError:
            raise ConfigError(
                f"the vectors file has no trait {name!r}; it has {', '.join(self.traits)}"
            ) from None

    @property
    def layers(self) -> list[int]:
        """The distinct chosen layers of all traits, sorted."""
        return sorted({t.layer for t in self.traits.values()})

    def check_model(self, identity: Mapping[str, Any]) -> None:
        """Refuse the vectors for a model other than the one they were built on.

        Raises:
            ConfigError: The fingerprints (or shapes) differ.
        """
        mine, theirs = self.model.get("fingerprint"), identity.get("fingerprint")
        if mine != theirs or self.model.get("hidden_size") != identity.get("hidden_size"):
            raise ConfigError(
                f"these trait vectors were built on model {self.model.get('name')!r} "
                f"(fingerprint {str(mine)[:12]}, {self.model.get('num_layers')} layers, width "
                f"{self.model.get('hidden_size')}), not on {identity.get('name')!r} "
                f"(fingerprint {str(theirs)[:12]}, {identity.get('num_layers')} layers, width "
                f"{identity.get('hidden_size')}); a residual-stream direction means nothing in "
                "another model's weights, so build vectors for this model with "
                "`personae vectors build`"
            )


def save_vectors(vectors: TraitVectors, path: str | os.PathLike[str]) -> Path:
    """Write ``vectors`` to ``path`` (safetensors with JSON metadata); returns the path."""
    from safetensors.numpy import save_file

    meta = {
        "format": FORMAT,
        "model": dict(vectors.model),
        "recipe": dict(vectors.recipe),
        "traits": {
            name: {"description": t.description, "layer": t.layer, "separation": t.separation}
            for name, t in vectors.traits.items()
        },
    }
    tensors = {
        name: np.ascontiguousarray(t.vectors, dtype=np.float32)
        for name, t in vectors.traits.items()
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target), metadata={"personae": json.dumps(meta)})
    return target


def load_vectors(
    path: str | os.PathLike[str], *, model: Mapping[str, Any] | None = None
) -> TraitVectors:
    """Read a vectors file, refusing it when ``model`` (an identity dict) is another model.

    Args:
        path: A file written by :func:`save_vectors`.
        model: The identity of the model the vectors will be used with.

    Raises:
        ConfigError: The file is missing or not a vectors file, or was built
            for another model.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    source = Path(path)
    try:
        raw = source.read_bytes()
        tensors = load_file(str(source))
        from safetensors import safe_open

        with safe_open(str(source), framework="numpy") as handle:
            meta = json.loads((handle.metadata() or {}).get("personae", "{}"))
    except (OSError, SafetensorError, ValueError) as error:
        raise ConfigError(f"cannot read the trait vectors file {source}: {error}") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(
            f"{source} is not a personae trait vectors file (no {FORMAT!r} metadata); "
            "build one with `personae vectors build`"
        )
    traits = {
        name: TraitVector(
            name=name,
            description=info.get("description", ""),
            vectors=tensors[name],
            layer=int(info["layer"]),
            separation=list(info.get("separation", [])),
        )
        for name, info in meta["traits"].items()
    }
    vectors = TraitVectors(
        model=meta["model"],
        recipe=meta["recipe"],
        traits=traits,
        digest=hashlib.sha256(raw).hexdigest(),
    )
    if model is not None:
        vectors.check_model(model)
    return vectors
