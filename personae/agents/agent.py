"""An agent: a persona, its memory and the model that speaks for it."""

from __future__ import annotations

import re
from typing import Any

from personae.agents.memory import Memory
from personae.agents.persona import Persona
from personae.llm.base import ChatModel, Completion, Message

_START = "(The conversation begins. You speak first.)"
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
        self._card = persona.card() + (f"\n\n{rules}" if rules else "")

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
            msgs.append({"role": "user", "content": _START})
        if cue:
            msgs.append({"role": "user", "content": f"({cue})"})
        return msgs

    async def respond(self, *, cue: str | None = None, **sampling: Any) -> Completion:
        """Ask the model for this agent's next utterance (not yet remembered)."""
        return await self.model.complete(self.messages(cue), **sampling)

    def clean(self, text: str, others: list[str]) -> str:
        """Trim a raw model reply to what this agent says (see :meth:`clean_reply`)."""
        return self.clean_reply(text, others)[0]

    def clean_reply(self, text: str, others: list[str]) -> tuple[str, list[str]]:
        """Trim a raw model reply to what this agent says, and say what was removed.

        Small models sometimes open with a bracketed stage direction (often an
        echo of the turn's cue), put a speaker label in front of the line
        (their own name, or another participant's), or go on to write another
        participant's next line. The stage direction and the label are removed
        and the reply is cut where another participant's line begins, but the
        reply's own content is never discarded: a reply that is nothing but a
        stage direction becomes empty (and the caller flags it), never ``"..."``.

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
            cut = re.search(rf"(^|\n)\s*\**({names})\**\s*:", out, re.IGNORECASE)
            if cut and out[: cut.start()].strip():
                removed.append(out[cut.start() :].strip())
                out = out[: cut.start()]
        out = out.strip()
        stripped = out.strip('"').strip()
        if stripped != out and stripped:
            out = stripped
        return out, removed
