"""What an agent remembers: recent utterances plus summaries made at recorded points.

Rendering is append-only: a new utterance adds messages at the end and never
changes earlier ones, so consecutive prompts of an agent share their prefix.
Only :meth:`Memory.summarize` rewrites the past, and the scenario records when
it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from personae.llm.base import Message


@dataclass(frozen=True, slots=True)
class Utterance:
    """One thing said in a conversation."""

    speaker: str
    text: str
    session: int
    step: int


@dataclass(slots=True)
class Memory:
    """An agent's memory of the conversation.

    Args:
        owner: The name of the agent whose memory this is; its own utterances
            render as ``assistant`` messages, everyone else's as ``user``.
        named: Prefix others' messages with their names (for more than two people).
    """

    owner: str
    named: bool = False
    entries: list[Utterance] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)

    def add(self, utterance: Utterance) -> None:
        """Remember an utterance the owner said or heard."""
        self.entries.append(utterance)

    def summarize(self, summary: str) -> None:
        """Replace the remembered utterances with a summary of them."""
        self.summaries.append(summary.strip())
        self.entries.clear()

    def snapshot(self) -> Memory:
        """An independent copy: changes to either do not reach the other."""
        return Memory(self.owner, self.named, list(self.entries), list(self.summaries))

    def messages(self, window: int | None = None) -> list[Message]:
        """The remembered conversation as chat messages from the owner's point of view.

        Args:
            window: Only the last ``window`` utterances (all when None).
        """
        out: list[Message] = []
        for u in self.entries if window is None else self.entries[-window:]:
            if u.speaker == self.owner:
                out.append({"role": "assistant", "content": u.text})
            elif self.named:
                out.append({"role": "user", "content": f"{u.speaker}: {u.text}"})
            else:
                out.append({"role": "user", "content": u.text})
        return out

    def notes(self) -> str:
        """Summaries of earlier sessions as prompt text (empty when there are none)."""
        if not self.summaries:
            return ""
        body = "\n".join(f"- Session {i + 1}: {s}" for i, s in enumerate(self.summaries))
        return f"What you remember from earlier sessions:\n{body}"
