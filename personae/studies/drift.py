"""Built-in experiment: does a client's personality hold over counseling sessions?

Counseling sessions (:func:`~personae.studies.counseling.counseling`)
with the client given the IPIP-NEO-120 before the first session and after
every session, PHQ-9 and GAD-7 before and after the course, and a judge rating
the client's Big Five from what it said at the end of every session. The grid
crosses the three client profiles, whose Big Five targets differ, so drift can
be told apart from the persona's target.

``personae run drift --replicates 2 --db runs/drift.db`` runs it on the
embedded server; ``personae report runs/drift.db`` shows the drift.

The questionnaires are given twenty items per request by default (each
request re-reads the persona and the conversation, which dominates on a CPU
server); on a GPU server pass ``batch_size=1`` (one item per request, the
cleaner design) to :func:`drift`.
"""

from __future__ import annotations

from personae.engine.probes import Probe
from personae.measures.judge import Judge
from personae.runner.experiment import Experiment
from personae.studies.counseling import CLIENTS, counseling


def drift(
    *,
    sessions: int = 2,
    max_turns: int = 6,
    batch_size: int = 20,
    clients: tuple[str, ...] = tuple(CLIENTS),
    replicates: int = 2,
    seed: int = 0,
) -> Experiment:
    """The drift experiment.

    Args:
        sessions: Counseling sessions per episode.
        max_turns: Utterances per session (the counselor's opening included).
        batch_size: Items per request (the PHQ-9 and GAD-7 fit in one).
        clients: Client profiles crossed in the grid.
        replicates: Episodes per client.
        seed: The experiment seed.
    """
    base = counseling(sessions=sessions, max_turns=max_turns, min_turns=max_turns)
    probes = (
        Probe("ipip-neo-120", who="client", at=["start", "session_end"], batch_size=batch_size),
        Probe("phq-9", who="client", at=["start", "end"], batch_size=batch_size),
        Probe("gad-7", who="client", at=["start", "end"], batch_size=batch_size),
        Probe(Judge(who="client", window=8), at="session_end", name="judge"),
    )
    scenario = base.model_copy(update={"name": "drift", "probes": probes})
    return Experiment(
        scenario=scenario,
        grid={"client": list(clients)},
        replicates=replicates,
        seed=seed,
        name="drift",
    )
