"""``personae demo``: the counseling scenario at two sampling temperatures, and what it stored.

The demo varies the sampling temperature of every reply: 0.2 against the
scenario's default 0.8. The headline query counts, per conversation, the
replies that repeat an earlier line of the same conversation word for word,
and reports the mean share per temperature with the lowest and highest
conversation. This is the contrast the bundled SmolLM2-135M model reliably
differs on; measured on the embedded CPU server (counseling, client Maya,
share of repeated replies, mean with the per-conversation range):

- seed 1, 6 episodes each, 8 turns: 0.62 (0.43-0.71) at 0.2, 0.00 at 1.2;
  Welch's difference 0.62, 95% CI 0.50-0.74, p < 0.001.
- seed 2, the same: 0.55 (0.29-0.71) at 0.2, 0.00 at 1.2; p < 0.001.
- seed 3, 4 episodes each, 10 turns: 0.75 (0.56-0.89) at 0.2, 0.00 at 0.8,
  0.00 at 1.2; distinct words among the first 150 of a conversation
  0.12, 0.54 and 0.81.
- seed 7, the demo itself (4 episodes each, 10 turns): 0.75 (0.67-0.78) at
  0.2, 0.00 at 0.8; difference 0.75, 95% CI 0.66-0.84, p < 0.001. The same
  numbers again with the server the demo starts (replies replay by seed).

At 0.2 the model falls into a loop within a few turns (both agents saying
"I'm glad you're here." again and again); at 0.8 no reply repeats an earlier
one, though the model still drifts off role; at 1.2 it writes word salad.
Contrasts of the personas made no reliable difference: reply style (reserved
vs verbose) gave mean reply lengths of 314.7 vs 313.5 characters, and client
profile (Maya, a failed midterm, vs James, a separation) brought up school in
5 of Maya's 20 replies and none of James's 19 once, and in none of either at
the scenario's max_tokens=80.

The default model is for trying the pipeline and for tests; a study needs a
larger model on a GPU server (``--base-url``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "HEADLINE",
    "MODEL_NOTE",
    "PER_EPISODE",
    "TEMPERATURES",
    "compare",
    "demo_experiment",
    "run_demo",
]

#: The demo's two conditions: a low sampling temperature and the scenario's default.
TEMPERATURES = (0.2, 0.8)

# Every reply after the scripted opening (step 0), marked 1 where the same
# conversation has said exactly this text before (either speaker).
_REPLIES = (
    "replies AS (SELECT episode_id, json_extract(params, '$.temperature') AS temperature, "
    "ROW_NUMBER() OVER (PARTITION BY episode_id, text ORDER BY session, step) > 1 AS repeated "
    "FROM transcript WHERE step > 0)"
)
_CONVERSATIONS = (
    "conversations AS (SELECT temperature, episode_id, COUNT(*) AS replies, "
    "AVG(repeated) AS share FROM replies GROUP BY episode_id)"
)

#: Per conversation: its temperature, replies, and the share repeating an earlier line.
PER_EPISODE = (
    f"WITH {_REPLIES}, {_CONVERSATIONS} "
    "SELECT temperature, episode_id, replies, share FROM conversations "
    "ORDER BY temperature, episode_id"
)

#: The headline query: per temperature, the mean share of replies repeating an
#: earlier line of their conversation, with the lowest and highest conversation.
HEADLINE = (
    f"WITH {_REPLIES}, {_CONVERSATIONS} "
    "SELECT temperature, COUNT(*) AS episodes, SUM(replies) AS replies, "
    "ROUND(AVG(share), 2) AS share_repeated, ROUND(MIN(share), 2) AS lowest, "
    "ROUND(MAX(share), 2) AS highest FROM conversations GROUP BY temperature ORDER BY temperature"
)

#: What the bundled model is for, printed after the results.
MODEL_NOTE = (
    "The bundled SmolLM2-135M model is for trying the pipeline and for tests: it "
    "differs on how it samples (it loops at a low temperature) but often ignores its "
    "persona and drifts off role, so contrasts between personas are small or absent. "
    "A study needs a larger model on a GPU server: personae run ... --base-url "
    "http://<server>:8000/v1."
)


def demo_experiment(replicates: int = 4) -> Any:
    """The demo's experiment: counseling at :data:`TEMPERATURES`, ``replicates`` each."""
    from personae.runner.experiment import Experiment
    from personae.studies import counseling

    return Experiment(
        scenario=counseling(max_turns=10, min_turns=6),
        grid={"temperature": list(TEMPERATURES)},
        replicates=replicates,
        seed=7,
        name="counseling-demo",
    )


def compare(db: Path) -> str:
    """One line comparing the lowest and highest temperature (Welch's t-test on conversations).

    Returns:
        E.g. ``"0.2 vs 0.8: difference 0.66 (95% CI 0.48 to 0.84, Welch p = 0.0004), 4 vs 4
        conversations"``; what is missing where an arm has fewer than 2 conversations.
    """
    from personae.analysis.stats import welch
    from personae.store.readonly import query as run_query

    _, rows = run_query(db, PER_EPISODE)
    shares: dict[float, list[float]] = {}
    for temperature, _episode, _replies, share in rows:
        shares.setdefault(float(temperature), []).append(float(share))
    if len(shares) < 2:
        return "Only one temperature has complete conversations; nothing to compare."
    low, high = min(shares), max(shares)
    found = welch(shares[low], shares[high])
    head = f"{low:g} vs {high:g}: difference {found.estimate:.2f}"
    counts = f"{len(shares[low])} vs {len(shares[high])} conversations"
    if found.ci_low is None or found.ci_high is None:
        return f"{head}, {counts} ({found.note})"
    p = "p not defined" if found.p_value is None else f"Welch p = {found.p_value:.2g}"
    return f"{head} (95% CI {found.ci_low:.2f} to {found.ci_high:.2f}, {p}), {counts}"


def run_demo(db: Path, *, replicates: int, base_url: str | None, out: Console, err: Console) -> Any:
    """Run the demo into ``db`` and print the summary, the headline query and two replies.

    Returns:
        The run summary (see :meth:`personae.runner.experiment.Experiment.run`).
    """
    from personae.cli import print_rows, print_summary
    from personae.store.readonly import query as run_query

    low, high = TEMPERATURES
    err.print(
        f"Demo: counseling (client Maya), sampling temperature {low} vs {high} (the "
        f"default), {replicates} replicates each -> {db}",
        highlight=False,
    )
    summary = demo_experiment(replicates).run(
        db, base_url=base_url, progress=True, console=err, server_log=db.parent / "vllm.log"
    )
    print_summary(summary)
    out.print(
        "\nDoes the model repeat itself? Per temperature, the share of replies that repeat "
        "an earlier line of the same conversation word for word (mean over conversations, "
        f'with the lowest and highest):\n  personae sql {db} "{HEADLINE}"',
        highlight=False,
        soft_wrap=True,
    )
    print_rows(*run_query(db, HEADLINE))
    out.print(compare(db), highlight=False)
    for temperature in TEMPERATURES:
        # The last client reply of the first conversation at this temperature.
        _, rows = run_query(
            db,
            "SELECT episode_id, speaker, text FROM transcript WHERE role = 'client' AND "
            "json_extract(params, '$.temperature') = ? ORDER BY episode_id, session DESC, "
            "step DESC LIMIT 1",
            (temperature,),
        )
        for episode, speaker, text in rows:
            out.print(
                f"\n[bold]{speaker}[/], temperature {temperature} (episode {episode}, last "
                f"reply): {text}",
                highlight=False,
            )
    out.print(
        f"\nEvery conversation: personae sql {db} "
        '"SELECT episode_id, speaker, text FROM transcript", or personae browse '
        f"{db}; personae report {db} writes the HTML report.\n\n{MODEL_NOTE}",
        highlight=False,
        soft_wrap=True,
    )
    return summary
