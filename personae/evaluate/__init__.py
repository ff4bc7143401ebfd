"""Evaluators: LLM judges of stored conversations, with their own reliability measured.

An :class:`Evaluator` names dimensions with integer ranges and instructions;
``personae evaluate DB --evaluator NAME`` (:func:`evaluate_database`) rates the
stored episodes, :class:`Evaluate` rates an episode online at its end, and
:func:`agreement` measures how far the judge agrees with itself across
samples (Krippendorff's alpha, ICC). See ``docs/evaluators.md``.
"""

from __future__ import annotations

from personae.evaluate.agreement import agreement, dimension_agreement
from personae.evaluate.builtins import (
    BUILTIN_EVALUATORS,
    CLIENT_FIDELITY,
    COUNSELOR_QUALITY,
    PERSONA_CONSISTENCY,
    SOTOPIA,
    TURN_SAFETY,
    evaluator,
)
from personae.evaluate.definition import Dimension, Evaluator, Reading, Scope, load_evaluator
from personae.evaluate.items import EvaluationRecord
from personae.evaluate.probe import Evaluate
from personae.evaluate.run import EvaluationSummary, evaluate_database

__all__ = [
    "BUILTIN_EVALUATORS",
    "CLIENT_FIDELITY",
    "COUNSELOR_QUALITY",
    "PERSONA_CONSISTENCY",
    "SOTOPIA",
    "TURN_SAFETY",
    "Dimension",
    "Evaluate",
    "EvaluationRecord",
    "EvaluationSummary",
    "Evaluator",
    "Reading",
    "Scope",
    "agreement",
    "dimension_agreement",
    "evaluate_database",
    "evaluator",
    "load_evaluator",
]
