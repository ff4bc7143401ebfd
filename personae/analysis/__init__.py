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
from personae.analysis.group import (
    group_summary,
    influence,
    influence_summary,
    opinion_dynamics,
    participation,
    reciprocity,
    time_to_consensus,
)
from personae.analysis.persuasion import (
    debates,
    ordinal_regression,
    proportional_odds_test,
    published_comparison,
    shift_by_condition,
    stance_curves,
    trait_moderators,
)
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
    "debates",
    "drift_summary",
    "episodes",
    "group_summary",
    "icc_across_replicates",
    "influence",
    "influence_summary",
    "llm_calls",
    "opinion_dynamics",
    "ordinal_regression",
    "participation",
    "plot_clinical_change",
    "plot_self_vs_judge",
    "plot_target_vs_measured",
    "plot_trajectories",
    "proportional_odds_test",
    "published_comparison",
    "read_sql",
    "reciprocity",
    "reliable_change",
    "self_judge_pairs",
    "self_vs_judge",
    "shift_by_condition",
    "stance_curves",
    "target_pairs",
    "test_retest",
    "time_to_consensus",
    "trait_moderators",
    "trait_scores",
    "trajectories",
    "transcripts",
    "utterance_lengths",
    "write_report",
]
