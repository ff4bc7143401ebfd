"""Analysis by method: polars frames from the store, trait drift, agreement, statistics, figures.

The statistical methods every analysis shares (Welch's t-test, Pearson r,
t-intervals, Fisher's z, fixed effects, Gini, entropy, bimodality, Esteban-Ray)
are in :mod:`personae.analysis.stats`, one implementation each.

The study-specific analyses live with their study (:mod:`personae.studies.debate`,
:mod:`personae.studies.group`, :mod:`personae.studies.cohort`) and the HTML report in
:mod:`personae.report`; their names are still reachable from here until 0.4.

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
from personae.moved import moved_names

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


#: Names that moved to a study or to :mod:`personae.report`, imported when first used
#: so that this package does not import the studies above it.
_MOVED = {
    "group_summary": "personae.studies.group.analysis",
    "influence": "personae.studies.group.analysis",
    "influence_summary": "personae.studies.group.analysis",
    "opinion_dynamics": "personae.studies.group.analysis",
    "participation": "personae.studies.group.analysis",
    "reciprocity": "personae.studies.group.analysis",
    "time_to_consensus": "personae.studies.group.analysis",
    "debates": "personae.studies.debate.analysis",
    "ordinal_regression": "personae.studies.debate.analysis",
    "proportional_odds_test": "personae.studies.debate.analysis",
    "published_comparison": "personae.studies.debate.analysis",
    "shift_by_condition": "personae.studies.debate.analysis",
    "stance_curves": "personae.studies.debate.analysis",
    "trait_moderators": "personae.studies.debate.analysis",
    "SECTIONS": "personae.report",
    "Section": "personae.report",
    "write_report": "personae.report",
}

__getattr__ = moved_names(__name__, _MOVED)
