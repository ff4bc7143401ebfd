"""An agent: a persona, its memory and the model that speaks for it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from personae.agents.memory import Memory
from personae.agents.persona import Persona
from personae.llm.base import (
    ChatModel,
    Completion,
    LegacySampling,
    Message,
    Sampling,
    complete,
    resolve_sampling,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: The user message an agent gets when it speaks first in a session with nothing heard yet.
START_MESSAGE = "(The conversation begins. You speak first.)"


def system_card(persona: Persona, rules: str = "") -> str:
    """The fixed head of an agent's system prompt: the persona card, then the scenario's rules.

    This is the system prompt an agent starts every episode with (stored as
    ``agents.system_prompt``); notes from earlier sessions are appended to it
    later (:meth:`Agent.system_prompt`).

    Args:
        persona: Who the agent is (rendered by :meth:`Persona.card`).
        rules: The scenario's instructions for it (``Scenario.rules_for``).
    """
    card = persona.card()
    return f"{card}\n\n{rules}" if rules else card


def format_cue(cue: str) -> str:
    """A turn's one-off instruction as the agent sees it: a user message in parentheses."""
    return f"({cue})"


#: The end of a sentence: . ! ? or an ellipsis, closing quotes or brackets, then a space or the end.
_SENTENCE_END = re.compile("[.!?\u2026]+[\"'\u201d\u2019)\\]]*(?=\\s|$)")
_STAGE_DIRECTION = re.compile(r"^\s*(\([^()]{0,300}\)|\[[^\[\]]{0,300}\])\s*")


class Agent:
    """A persona that speaks through a :class:`ChatModel`.

    The system prompt is the persona card, the scenario's rules for this
    agent, and notes from earlier sessions; it changes only when a session
    summary is added. History follows it, append-only.

    Args:
        persona: Who the agent is.
        model: The shared chat model.
        rules: Scenario instructions for this agent (appended to the card).
        named: Show other speakers' names in the history (group conversations).
        window: Keep only this many recent utterances in the prompt (all when None).
    """

    def __init__(
        self,
        persona: Persona,
        model: ChatModel,
        *,
        rules: str = "",
        named: bool = False,
        window: int | None = None,
    ):
        self.persona = persona
        self.model = model
        self.rules = rules
        self.window = window
        self.memory = Memory(persona.name, named=named)
        self._card = system_card(persona, rules)

    @property
    def name(self) -> str:
        return self.persona.name

    def system_prompt(self, memory: Memory | None = None) -> str:
        """The system message: card, rules and earlier-session notes."""
        notes = (memory or self.memory).notes()
        return f"{self._card}\n\n{notes}" if notes else self._card

    def messages(self, cue: str | None = None, memory: Memory | None = None) -> list[Message]:
        """The prompt for the next reply: system, history, and an optional one-off cue.

        The cue is appended for this request only and never stored, so the
        prefix of the next prompt is unchanged.
        """
        mem = memory or self.memory
        msgs: list[Message] = [{"role": "system", "content": self.system_prompt(mem)}]
        msgs.extend(mem.messages(self.window))
        if len(msgs) == 1:
            msgs.append({"role": "user", "content": START_MESSAGE})
        if cue:
            msgs.append({"role": "user", "content": format_cue(cue)})
        return msgs

    async def respond(
        self,
        sampling: Sampling | None = None,
        *,
        cue: str | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Ask the model for this agent's next utterance (not yet remembered).

        Args:
            sampling: How to generate; the model's default when None.
            cue: A one-off instruction appended to the prompt (see :meth:`messages`).
            **legacy: The personae 0.2 keyword form (``max_tokens=...``);
                deprecated, warns once.
        """
        if legacy:
            sampling = resolve_sampling(sampling, legacy, self, method="respond")
        return await complete(self.model, self.messages(cue), sampling)

    def clean(self, text: str, others: list[str]) -> str:
        """Trim a raw model reply to what this agent says (see :meth:`clean_reply`)."""
        return self.clean_reply(text, others)[0]

    def clean_reply(
        self, text: str, others: list[str], *, cut: bool = False
    ) -> tuple[str, list[str]]:
        """Trim a raw model reply to what this agent says, and say what was removed.

        Small models sometimes open with a bracketed stage direction (often an
        echo of the turn's cue), put a speaker label in front of the line
        (their own name, or another participant's), or go on to write another
        participant's next line. The stage direction and the label are removed
        and the reply is cut where another participant's line begins, but the
        reply's own content is never discarded: a reply that is nothing but a
        stage direction becomes empty (and the caller flags it), never ``"..."``.

        A reply cut by ``max_tokens`` (``cut=True``) ends at its last complete
        sentence; the unfinished tail is one of the pieces removed. A cut reply
        with no complete sentence is kept whole.

        Returns:
            The cleaned text (possibly empty) and the pieces removed, in order.
        """
        removed: list[str] = []
        out = text.strip()
        match = _STAGE_DIRECTION.match(out)
        if match:
            removed.append(match.group(0).strip())
            out = out[match.end() :]
        names = "|".join(re.escape(n) for n in [self.name, *others])
        label = re.match(rf"^\s*\**({names})\**\s*:\s*", out, re.IGNORECASE)
        if label:
            removed.append(label.group(0).strip())
            out = out[label.end() :]
        if others:
            names = "|".join(re.escape(n) for n in others)
            line = re.search(rf"(^|\n)\s*\**({names})\**\s*:", out, re.IGNORECASE)
            if line and out[: line.start()].strip():
                removed.append(out[line.start() :].strip())
                out = out[: line.start()]
        out = out.strip()
        if cut:
            ends = list(_SENTENCE_END.finditer(out))
            if ends and out[ends[-1].end() :].strip():
                removed.append(out[ends[-1].end() :].strip())
                out = out[: ends[-1].end()]
        stripped = out[1:-1].strip() if len(out) > 1 and out[0] == out[-1] == '"' else out
        if stripped and '"' not in stripped:
            out = stripped
        return out, removed
