"""A Big Five vectors file for the docs' examples, built on the tiny random-weight model."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_doc_vectors"]


def write_doc_vectors(path: str | Path) -> Path:
    """Write Big Five trait vectors of a tiny model to ``path`` (a second or two on a CPU)."""
    from personae.llm.hf import TransformersModel
    from personae.vectors import Recipe, big_five_traits, build_vectors, save_vectors
    from tests.support.tiny_hf import tiny_model

    hf, tokenizer = tiny_model()
    model = TransformersModel(model=hf, tokenizer=tokenizer, name="tiny", device="cpu")
    return save_vectors(build_vectors(model, big_five_traits(), Recipe(questions=3)), path)
