"""Analysis: polars frames from the store (trait drift, persuasion and group dynamics build on these)."""

from personae.analysis.frames import episodes, llm_calls, read_sql, transcripts, utterance_lengths

__all__ = ["episodes", "llm_calls", "read_sql", "transcripts", "utterance_lengths"]
