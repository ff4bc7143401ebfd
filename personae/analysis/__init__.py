"""Analysis: polars frames from the store, trait drift, its figures and the HTML report.

Everything heavy (matplotlib, pingouin, scipy) is imported inside the functions
that need it, so importing this package stays fast.
"""

from personae.analysis.agreement import (
    convergent_validity,
    icc_across_replicates,
    self_judge_pairs,
    self_vs_judge,
    target_pairs,
    test_retest,
)
from personae.analysis.drift import (
    clinical_change,
    drift_summary,
    reliable_change,
    trait_scores,
    trajectories,
)
from personae.analysis.frames import episodes, llm_calls, read_sql, transcripts, utterance_lengths
from personae.analysis.plots import (
    plot_clinical_change,
    plot_self_vs_judge,
    plot_target_vs_measured,
    plot_trajectories,
)
from personae.analysis.report import SECTIONS, Section, write_report

__all__ = [
    "SECTIONS",
    "Section",
    "clinical_change",
    "convergent_validity",
    "drift_summary",
    "episodes",
    "icc_across_replicates",
    "llm_calls",
    "plot_clinical_change",
    "plot_self_vs_judge",
    "plot_target_vs_measured",
    "plot_trajectories",
    "read_sql",
    "reliable_change",
    "self_judge_pairs",
    "self_vs_judge",
    "target_pairs",
    "test_retest",
    "trait_scores",
    "trajectories",
    "transcripts",
    "utterance_lengths",
    "write_report",
]
