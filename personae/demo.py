"""``personae demo``: the counseling scenario with two client profiles, and what it stored.

The demo varies who the client is: Maya, a student who failed a chemistry
midterm, or James, recently separated and drinking more. The headline query
counts the client replies that mention each story. On the bundled 135M model
the difference is small and not stable: with max_tokens=160, school came up
in 5 of Maya's 20 replies and in none of James's 19; with the scenario's
max_tokens=80 (what the demo runs), in none of Maya's 20 (2 mentioned the
break-up words) and none of James's 19. The model often drifts off role (a
client greets the counselor as if it were the counselor). Reply *style*
(reserved vs verbose), the earlier demo's contrast, made no difference either
(mean reply lengths 314.7 vs 313.5 characters).

The default model is for trying the pipeline and for tests; a study needs a
larger model on a GPU server (``--base-url``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["HEADLINE", "MODEL_NOTE", "demo_experiment", "run_demo"]

#: Words of each profile's story; a client reply mentioning one counts as on that topic.
TOPICS = {
    "school": ("exam", "midterm", "chemistry", "grade", "class", "lecture", "study", "studi"),
    "break_up": ("partner", "separat", "drink", "moved out", "relationship", "alone"),
}


def _mentions(words: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"text LIKE '%{w}%'" for w in words) + ")"


#: The headline query: per client profile, replies and the share on each topic.
HEADLINE = (
    "SELECT json_extract(params, '$.client') AS client, COUNT(DISTINCT episode_id) AS episodes, "
    "COUNT(*) AS replies, "
    + ", ".join(
        f"ROUND(AVG({_mentions(words)}), 2) AS share_on_{name}" for name, words in TOPICS.items()
    )
    + " FROM transcript WHERE role = 'client' GROUP BY client ORDER BY client"
)

#: What the bundled model is for, printed after the results.
MODEL_NOTE = (
    "The bundled SmolLM2-135M model is for trying the pipeline and for tests: it often "
    "ignores its persona and its instructions on style and length, and drifts off role, "
    "so differences between conditions are small or absent. A study needs a larger model "
    "on a GPU server: personae run ... --base-url http://<server>:8000/v1."
)


def demo_experiment(replicates: int = 4) -> Any:
    """The demo's experiment: counseling, client profile Maya vs James, ``replicates`` each."""
    from personae.runner.experiment import Experiment
    from personae.studies import counseling

    return Experiment(
        scenario=counseling(max_turns=10, min_turns=6),
        grid={"client": ["maya", "james"]},
        replicates=replicates,
        seed=7,
        name="counseling-demo",
    )


def run_demo(db: Path, *, replicates: int, base_url: str | None, out: Console, err: Console) -> Any:
    """Run the demo into ``db`` and print the summary, the headline query and two replies.

    Returns:
        The run summary (see :meth:`personae.runner.experiment.Experiment.run`).
    """
    from personae.cli import print_rows, print_summary
    from personae.store.readonly import query as run_query

    err.print(
        f"Demo: counseling, client Maya (failed a midterm) vs James (separated, drinking), "
        f"{replicates} replicates each -> {db}",
        highlight=False,
    )
    summary = demo_experiment(replicates).run(
        db, base_url=base_url, progress=True, console=err, server_log=db.parent / "vllm.log"
    )
    print_summary(summary)
    out.print(
        "\nDo the clients talk about their own story (Maya: school; James: the break-up)? "
        f'Share of client replies that mention each:\n  personae sql {db} "{HEADLINE}"',
        highlight=False,
        soft_wrap=True,
    )
    print_rows(*run_query(db, HEADLINE))
    for client, words in (("maya", TOPICS["school"]), ("james", TOPICS["break_up"])):
        _, rows = run_query(
            db,
            "SELECT episode_id, speaker, text FROM transcript WHERE role = 'client' AND "
            f"json_extract(params, '$.client') = '{client}' AND {_mentions(words)} "
            "ORDER BY episode_id, session, step LIMIT 1",
        )
        for episode, speaker, text in rows:
            out.print(f"\n[bold]{speaker}[/] (episode {episode}): {text}", highlight=False)
    out.print(
        f"\nEvery conversation: personae sql {db} "
        '"SELECT episode_id, speaker, text FROM transcript", or personae browse '
        f"{db}; personae report {db} writes the HTML report.\n\n{MODEL_NOTE}",
        highlight=False,
        soft_wrap=True,
    )
    return summary
