"""Model calls of an episode: which endpoint each goes to, and its ``llm_calls`` row.

:class:`ModelCalls` is the part of :class:`~personae.engine.episode.Episode`
that sends requests: it picks the endpoint a call goes to (the agent's
binding, or the judges'), merges the agent's request extensions, sends the
request and records it, failed or not, with its accounting.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

from personae.engine.models import JUDGE, Models
from personae.engine.sink import EpisodeLog
from personae.errors import ModelError
from personae.llm.base import DEFAULT_SAMPLING, ChatModel, Completion, Message, Sampling, complete
from personae.llm.endpoints import DEFAULT_ENDPOINT
from personae.store.rows import LLMCallRecord, clean_text, now

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["JUDGE_PURPOSES", "ModelCalls"]

#: Call purposes that go to the ``judge`` endpoint binding, not the agent's.
JUDGE_PURPOSES = frozenset({"judge", "evaluate"})


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class ModelCalls:
    """Sending and recording an episode's model calls (a base of ``Episode``)."""

    scenario: Any
    models: Models
    log: EpisodeLog
    roles: Mapping[str, str]
    agent_ids: dict[str, int]
    request_extensions: dict[str, dict[str, Any]]
    calls: int
    completion_tokens: int

    def _endpoint_of(self, name: str | None, role: str | None = None) -> str:
        bound = self.scenario.endpoints
        if name is None:
            return DEFAULT_ENDPOINT
        if name in bound:
            return str(bound[name])
        role = role or self.roles.get(name)
        return str(bound.get(role, DEFAULT_ENDPOINT)) if role else DEFAULT_ENDPOINT

    def endpoint_for(self, name: str | None, purpose: str) -> str:
        """The endpoint a call on ``name``'s behalf goes to.

        Judges (purposes ``judge`` and ``evaluate``) use the ``judge`` binding;
        every other call (turns, summaries, questionnaires) uses the agent's
        own, by name, then by role; ``default`` when unbound.
        """
        if purpose in JUDGE_PURPOSES:
            return str(self.scenario.endpoints.get(JUDGE, DEFAULT_ENDPOINT))
        return self._endpoint_of(name)

    async def call(
        self,
        name: str,
        messages: list[Message],
        *,
        purpose: str,
        step: int,
        seed: int,
        model: ChatModel | str | None = None,
        sampling: Sampling | None = None,
        **options: Any,
    ) -> tuple[Completion, int]:
        """Send one request through ``model`` (default: the episode's) and record it in ``llm_calls``.

        Args:
            name: The participant the call is on behalf of.
            messages: The chat to send.
            purpose: Why (``"turn"``, ``"summary"``, an instrument, ...), in ``llm_calls.purpose``.
            step: Where in the episode.
            seed: The sampling seed.
            model: Another model for this call: a model object, or an endpoint's
                name (default: :meth:`endpoint_for` ``name`` and ``purpose``).
            sampling: The request (default: :data:`~personae.llm.base.DEFAULT_SAMPLING`).
            **options: Sampling fields set for this call (``max_tokens=``,
                ``temperature=``, ``response_format=``, ...).

        Raises:
            ModelError: The request failed; the failed call is recorded with its error.
        """
        endpoint: str | None = None
        if model is None or isinstance(model, str):
            endpoint = model or self.endpoint_for(name, purpose)
            model = self.models.get(endpoint)
        request = (sampling or DEFAULT_SAMPLING).replace(seed=seed, **options)
        extra = self.request_extensions.get(name)
        if extra and purpose not in JUDGE_PURPOSES:
            request = request.with_extensions(**extra)
        call_id = self.log.new_id("llm_calls")
        row: dict[str, Any] = {
            "id": call_id,
            "agent_id": self.agent_ids[name],
            "purpose": purpose,
            "step": step,
            "seed": seed,
            "model": getattr(model, "name", None),
            "endpoint": endpoint,
            "created_at": now(),
        }
        started = time.perf_counter()
        try:
            completion = await complete(model, messages, request)
        except ModelError as exc:
            self.log.add(
                LLMCallRecord(
                    **row,
                    params_json=json.dumps(request.params(), default=str, sort_keys=True),
                    latency_ms=(time.perf_counter() - started) * 1000,
                    error=str(exc),
                )
            )
            raise
        self.calls += 1
        self.completion_tokens += completion.completion_tokens
        text, replaced = clean_text(completion.text)
        if replaced:
            # Keep what the server sent, bytes and all; hand on text SQLite can store.
            row["raw_bytes"] = completion.text.encode("utf-8", "surrogatepass")
            completion = dataclasses.replace(completion, text=text)
        row.update(
            raw_text=text,
            replaced_chars=replaced,
            # A named endpoint's calls record the model asked for (what the endpoint
            # declares): a server may report another name for it (vLLM: its first
            # served name). Otherwise, as always, the name the server reported.
            model=row["model"]
            if endpoint not in (None, DEFAULT_ENDPOINT) and row["model"]
            else completion.model,
            server=completion.server,
            params_json=json.dumps(
                completion.params or request.params(), default=str, sort_keys=True
            ),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cached_tokens=completion.cached_tokens,
            latency_ms=completion.latency_ms,
            attempts=completion.attempts,
            finish_reason=completion.finish_reason,
            structured=_text_or_none(completion.extensions.get("structured")),
            replica=_text_or_none(completion.extensions.get("replica")),
        )
        self.log.add(LLMCallRecord(**row))
        return completion, call_id
