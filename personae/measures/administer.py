"""Moved: questionnaires to :mod:`personae.measures.questionnaire`, answers to
:mod:`personae.measures.answers`, ``record_judged`` to :mod:`personae.measures.judge`.

These names keep working from here until 0.4.
"""

from personae.measures.answers import (
    OptionOrder,
    Parsed,
    option_labels,
    option_value,
    parse_answer,
    parse_batch,
    select_agents,
)
from personae.measures.judge import record_judged
from personae.measures.questionnaire import (
    BATCH_ANSWER,
    PROMPT_VARIANTS,
    Questionnaire,
    Wording,
    complete_statement,
    record_scores,
    split_stem,
)

__all__ = [
    "BATCH_ANSWER",
    "PROMPT_VARIANTS",
    "OptionOrder",
    "Parsed",
    "Questionnaire",
    "Wording",
    "complete_statement",
    "option_labels",
    "option_value",
    "parse_answer",
    "parse_batch",
    "record_judged",
    "record_scores",
    "select_agents",
    "split_stem",
]
