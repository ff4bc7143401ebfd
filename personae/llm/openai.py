"""The :class:`~personae.llm.base.ChatModel` for vLLM and other OpenAI-compatible servers.

:class:`OpenAIChatModel` sends one chat completion per call through
``openai.AsyncOpenAI`` with the SDK's own retries turned off: retrying is
:class:`~personae.llm.wrappers.RetryingModel`'s job, so every attempt is seen
and counted in one place. Every failure becomes a
:class:`~personae.errors.ModelError` whose ``retryable`` flag says whether the
same request may succeed later::

    ModelError
    ├── retryable        HTTP 408/429/5xx, a body that is not a completion
    ├── not retryable    any other HTTP 4xx (the message carries the server's text)
    ├── ModelTimeout     no answer within the timeout (retryable, on a small budget)
    └── ModelUnreachable the connection could not be made (retryable)

``status`` carries the HTTP status where there was one; 502, 503 and 504 are
read as "the server is down" and waited out (see :mod:`personae.llm.outage`).
URLs in messages never carry credentials (:func:`~personae.llm.urls.redact_url`).

Requests: a :class:`~personae.llm.base.Sampling` becomes request fields in
one place, :mod:`personae.llm.dialect` (structured outputs in OpenAI's or
vLLM's field, the ``extra_body`` and ``logprobs`` extensions). With the
``logprobs`` extension, ``Completion.extensions["logprobs"]`` holds the
server's per-token log probabilities.

Structured outputs: each client has a mode (``structured=``): ``"vllm"``,
``"openai"``, ``"none"`` or ``"auto"`` (the default), which detects the server
once, at the first request with a constraint: vLLM if ``GET {root}/version``
answers a version or ``GET /v1/models`` lists a model ``owned_by: "vllm"``,
else ``"openai"``. Under ``"auto"``, an HTTP 400 (or 422) whose text names a
constraint field steps the mode down (vllm -> openai -> none), sends the same
request again once and keeps the lower mode. ``Completion.extensions["structured"]``
records the field each constrained request used (see :mod:`personae.llm.dialect`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Any, cast

import httpx
import openai

from personae.errors import ConfigError, ModelError, ModelTimeout, ModelUnreachable
from personae.llm.base import (
    Completion,
    LegacySampling,
    Message,
    Sampling,
    resolve_sampling,
)
from personae.llm.dialect import (
    Mode,
    StructuredMode,
    cached_tokens,
    check_mode,
    downgrade,
    mechanism,
    names_constraint_field,
    request_fields,
    sdk_arguments,
    sdk_split,
    split_response_format,
)
from personae.llm.structured import StructuredOutput
from personae.llm.urls import redact_url

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "OpenAIChatModel",
    "check_reachable",
    "list_models",
    "request_fields",
    "resolve_api_key",
    "sdk_arguments",
    "split_response_format",
]

_SNIPPET = 300
_VERSION_TIMEOUT = 10.0
_CONNECTIONS_PER_POOL = 8
_RETRYABLE_STATUS = frozenset({408, 409, 429})  # the statuses the SDK itself would retry
#: Statuses with which a server refuses a field it does not take (422: FastAPI-style servers).
_REFUSED_STATUS = frozenset({400, 422})
_RANK: dict[Mode, int] = {"vllm": 0, "openai": 1, "none": 2}


def resolve_api_key(api_key: str | None = None) -> str:
    """The API key to send: the argument, else ``PERSONAE_API_KEY``, else ``OPENAI_API_KEY``.

    vLLM needs no key unless started with one, so the fallback is ``"EMPTY"``.
    """
    return (
        api_key or os.environ.get("PERSONAE_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
    )


def _snippet(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip()
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _unreachable_message(base_url: str, reason: str) -> str:
    return f"could not reach an OpenAI-compatible server at {base_url}: {reason}"


def _missing_v1_hint(base_url: str, status: int) -> str:
    """`` (did you mean <url>/v1?)`` for a 404 from a base URL without ``/v1``, else ``""``.

    OpenAI-compatible servers serve the API under ``/v1``; a base URL without it
    reaches paths the server does not have, which it answers with a bare 404.
    """
    url = base_url.rstrip("/")
    return f" (did you mean {url}/v1?)" if status == 404 and not url.endswith("/v1") else ""


def _root_url(base_url: str) -> str:
    """The server root: ``http://host:port/v1`` -> ``http://host:port``."""
    return base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url


def _transport_cause(exc: BaseException) -> BaseException | None:
    """The httpx (or httpx2) exception under an SDK connection error, if any."""
    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        if type(seen).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "httpcore2"}:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _server_error_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _snippet(error["message"])
        if isinstance(body.get("message"), str):
            return _snippet(body["message"])
    try:
        return _snippet(exc.response.text) or exc.message
    except Exception:  # the body may be unreadable; the SDK's message still helps
        return exc.message


def _translate_error(exc: openai.OpenAIError, base_url: str, timeout: float) -> ModelError:
    """Turn an SDK exception into the :class:`ModelError` a caller can act on.

    Args:
        exc: What the SDK raised.
        base_url: The server's URL, named in the message.
        timeout: The request timeout in seconds, named in timeout messages.

    Returns:
        The error to raise, with ``retryable`` set.
    """
    base_url = redact_url(base_url)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status in _RETRYABLE_STATUS or status >= 500
        return ModelError(
            f"the model server at {base_url} answered HTTP {status}: {_server_error_text(exc)}"
            + _missing_v1_hint(base_url, status),
            retryable=retryable,
            status=status,
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = _transport_cause(exc)
        cause_name = type(cause).__name__ if cause is not None else ""
        if isinstance(exc, openai.APITimeoutError) and cause_name != "ConnectTimeout":
            return ModelTimeout(
                f"the model server at {base_url} did not answer within {timeout:g} s "
                f"({cause_name or 'timeout'}); it may be overloaded or hung"
            )
        reason = (str(cause) if cause is not None else "") or cause_name or exc.message
        return ModelUnreachable(_unreachable_message(base_url, reason))
    return ModelError(f"the model server at {base_url} failed: {exc}", retryable=True)


class OpenAIChatModel:
    """A chat model served over the OpenAI chat-completions API (vLLM and others).

    Safe to share between thousands of tasks of one event loop: the connection
    pool allows ``max_connections`` requests on the wire at once. Bound the
    number actually sent with :class:`~personae.llm.wrappers.ConcurrencyLimitedModel`
    (or use :func:`~personae.llm.wrappers.build_client`, which does).

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: The served model name sent with every request.
        api_key: The key to send; see :func:`resolve_api_key` for the fallbacks.
        timeout: Seconds to wait for one request (connect, read, write, pool).
        http_client: An ``httpx.AsyncClient`` to send requests with, e.g. one
            with an ``httpx.MockTransport`` in tests. The caller owns it:
            :meth:`aclose` leaves it open.
        max_connections: Most connections open at once when ``http_client`` is
            not given (spread over several small pools, which keeps hundreds of
            requests in flight cheap).
        structured: How structured outputs are asked for: ``"auto"`` (detect
            the server, step down when it refuses a constraint field),
            ``"vllm"``, ``"openai"`` or ``"none"`` (see the module docstring).
            A declared mode is used as it is.

    Raises:
        ConfigError: ``max_connections`` < 1 or an unknown ``structured`` mode.

    Example::

        model = OpenAIChatModel("http://127.0.0.1:8000/v1", "smollm2")
        reply = await model.complete([{"role": "user", "content": "Hi"}], Sampling(seed=7))
        await model.aclose()
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        http_client: httpx.AsyncClient | None = None,
        max_connections: int = 256,
        structured: StructuredMode = "auto",
    ) -> None:
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections}")
        self.structured: StructuredMode = check_mode(structured)
        self._mode: Mode | None = None if structured == "auto" else cast(Mode, structured)
        self._mode_lock = asyncio.Lock()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._model = model
        self.max_connections = max_connections
        self._owns_http = http_client is None
        if http_client is not None:
            self._http = [http_client]
        else:
            # httpx's pool scans all its connections (probing each socket) on
            # every request event, so one pool of hundreds of connections spends
            # its time in bookkeeping: with 256 requests in flight each cost ~18 ms
            # of client CPU in one pool, ~3 ms in pools of 8. Pick the least loaded.
            shards = -(-max_connections // _CONNECTIONS_PER_POOL)
            per_pool = -(-max_connections // shards)
            tls = httpx.create_ssl_context()  # built once: each costs ~25 ms
            self._http = [
                httpx.AsyncClient(
                    verify=tls,
                    timeout=timeout,
                    limits=httpx.Limits(
                        max_connections=per_pool, max_keepalive_connections=per_pool
                    ),
                )
                for _ in range(shards)
            ]
        key = resolve_api_key(api_key)
        self._key = key
        self._sdks = [
            openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=key,
                max_retries=0,
                timeout=timeout,
                # openai>=3 is typed for httpx2 but accepts an httpx client; older ones want httpx.
                http_client=cast(Any, http),
            )
            for http in self._http
        ]
        self._load = [0] * len(self._sdks)
        self._version: str | None = None
        self._server_known = False
        self._server_lock = asyncio.Lock()
        self._closed = False

    @property
    def name(self) -> str:
        """The model name sent with every request."""
        return self._model

    async def complete(
        self,
        messages: list[Message],
        sampling: Sampling | None = None,
        **legacy: Unpack[LegacySampling],
    ) -> Completion:
        """Send one chat completion request; see :meth:`ChatModel.complete`.

        ``Completion.params`` holds the request's fields as :func:`request_fields`
        builds them; with the ``logprobs`` extension, ``Completion.extensions``
        holds the server's ``logprobs`` content (one entry per generated token).
        A request with a constraint has ``Completion.extensions["structured"]``:
        the field it went in (``"structured_outputs"``, ``"response_format"``)
        or ``"none"`` where this server's mode does not send it.

        Raises:
            ModelError: The server refused or garbled the request (``retryable`` says
                whether trying again may help), or the client was closed.
            ModelUnreachable: No connection could be made.
            ModelTimeout: The server did not answer within ``timeout``.
            ConfigError: An extension is malformed.
        """
        sampling = resolve_sampling(sampling, legacy, self)
        if self._closed:
            raise ModelError(f"the client for {redact_url(self.base_url)} was closed")
        constraint = sampling.response_format
        mode: Mode = "vllm" if constraint is None else await self.structured_mode()
        params = request_fields(sampling, mode=mode)
        started = time.perf_counter()
        try:
            try:
                content = await self._send(messages, params)
            except openai.APIStatusError as exc:
                lower = await self._step_down(exc, constraint, mode)
                if lower is None:
                    raise
                mode = lower
                params = request_fields(sampling, mode=mode)
                content = await self._send(messages, params)
        except openai.OpenAIError as exc:
            raise _translate_error(exc, self.base_url, self.timeout) from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        data = self._parse(content)
        used = mechanism(constraint, mode)
        if used is not None:
            data["extensions"]["structured"] = used
        return Completion(
            text=data["text"],
            model=data["model"] or self._model,
            finish_reason=data["finish_reason"],
            prompt_tokens=data["prompt_tokens"],
            completion_tokens=data["completion_tokens"],
            cached_tokens=data["cached_tokens"],
            latency_ms=latency_ms,
            seed=sampling.seed,
            params=params,
            server=await self.server_info(),
            extensions=data["extensions"],
        )

    async def _send(self, messages: list[Message], params: dict[str, Any]) -> bytes:
        """POST one chat completion on the least loaded pool; the raw body."""
        load = self._load
        pool = min(range(len(load)), key=load.__getitem__) if len(load) > 1 else 0
        load[pool] += 1
        try:
            raw = await self._sdks[pool].chat.completions.with_raw_response.create(
                model=self._model,
                messages=messages,  # type: ignore[arg-type]
                **sdk_split(params),
            )
            return raw.http_response.content
        finally:
            load[pool] -= 1

    async def structured_mode(self) -> Mode:
        """The structured-output mode requests with a constraint use now.

        A declared mode as it is. Under ``"auto"``, detected once and kept:
        ``"vllm"`` if ``GET {root}/version`` answers a version or ``GET /models``
        lists a model ``owned_by: "vllm"``, else ``"openai"``; lower after a
        server refused a constraint field. While the server cannot be asked,
        ``"vllm"`` for now (a refusal still steps it down) and asked again later.
        """
        if self._mode is not None:
            return self._mode
        async with self._mode_lock:
            if self._mode is not None:
                return self._mode
            try:
                self._mode = await self._detect()
            except httpx.HTTPError:
                return "vllm"
            return self._mode

    async def _detect(self) -> Mode:
        """vLLM or another OpenAI-compatible server, from ``/version`` then ``/models``.

        Raises:
            httpx.HTTPError: The server did not answer.
        """
        if await self._server_version() is not None:
            return "vllm"
        response = await self._http[0].get(
            f"{self.base_url}/models",
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=_VERSION_TIMEOUT,
        )
        try:
            entries = response.json().get("data") if response.is_success else None
        except (ValueError, AttributeError):
            entries = None
        owners = {e.get("owned_by") for e in entries or () if isinstance(e, dict)}
        return "vllm" if "vllm" in owners else "openai"

    async def _step_down(
        self, exc: openai.APIStatusError, constraint: StructuredOutput | None, mode: Mode
    ) -> Mode | None:
        """The mode to send a refused request again in, or None to let the error stand.

        Only under ``"auto"``, and only for a 400/422 whose text names the
        constraint field this request sent. The lower mode is kept for later
        requests (never raised again by a request that started earlier).
        """
        if (
            self.structured != "auto"
            or constraint is None
            or mechanism(constraint, mode) == "none"
            or exc.status_code not in _REFUSED_STATUS
            or not names_constraint_field(_server_error_text(exc))
        ):
            return None
        lower = downgrade(mode, constraint)
        if lower is None:
            return None
        async with self._mode_lock:
            current = self._mode
            if current is None or _RANK[current] < _RANK[lower]:
                self._mode = lower
            return self._mode

    def _parse(self, content: bytes) -> dict[str, Any]:
        """Pick the fields we use out of a chat-completion body, or raise a retryable error."""

        def malformed(what: str) -> ModelError:
            return ModelError(
                f"the model server at {redact_url(self.base_url)} sent {what}: "
                f"{_snippet(content)!r}",
                retryable=True,
            )

        try:
            data = json.loads(content)
        except ValueError:
            raise malformed("a body that is not JSON") from None
        if not isinstance(data, dict):
            raise malformed("a body that is not a chat completion")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise malformed("a completion with no choices")
        message = choices[0].get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            raise malformed("a completion with no message content")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        model = data.get("model")
        finish_reason = choices[0].get("finish_reason")
        extensions: dict[str, Any] = {}
        logprobs = choices[0].get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            extensions["logprobs"] = logprobs["content"]
        return {
            "text": text,
            "model": model if isinstance(model, str) else None,
            "finish_reason": finish_reason if isinstance(finish_reason, str) else None,
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
            "cached_tokens": cached_tokens(usage),
            "extensions": extensions,
        }

    async def server_info(self) -> str | None:
        """The serving software and version, e.g. ``"vllm 0.32.0"``, or None if unknown.

        Asked once from ``GET {root}/version`` (vLLM answers ``{"version": ...}``)
        and cached; a server without that route is recorded as unknown.
        """
        try:
            version = await self._server_version()
        except httpx.HTTPError:
            return None  # try again on a later call; the completion itself succeeded
        return None if version is None else f"vllm {version}"

    async def _server_version(self) -> str | None:
        """The version ``GET {root}/version`` answers, asked once; None without one.

        Raises:
            httpx.HTTPError: The server did not answer (not cached: asked again later).
        """
        if self._server_known:
            return self._version
        async with self._server_lock:
            if self._server_known:
                return self._version
            response = await self._http[0].get(
                f"{_root_url(self.base_url)}/version", timeout=_VERSION_TIMEOUT
            )
            self._server_known = True
            try:
                version = response.json().get("version") if response.is_success else None
            except (ValueError, AttributeError):
                version = None
            self._version = version if isinstance(version, str) and version else None
            return self._version

    async def aclose(self) -> None:
        """Close the connection pool (unless the caller supplied ``http_client``)."""
        self._closed = True
        if self._owns_http:
            for http in self._http:
                await http.aclose()


async def list_models(
    base_url: str,
    *,
    api_key: str | None = None,
    timeout: float = 10.0,
    http_client: httpx.AsyncClient | None = None,
) -> list[str]:
    """The model names an OpenAI-compatible server serves (``GET {base_url}/models``).

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        api_key: The key to send; see :func:`resolve_api_key`.
        timeout: Seconds to wait for the answer.
        http_client: A client to use instead of a fresh one (left open).

    Returns:
        The ids the server lists, in its order.

    Raises:
        ModelUnreachable: Nothing answered at ``base_url``, with one clear message.
        ModelError: Something answered, but not like an OpenAI-compatible server.
    """
    base_url = base_url.rstrip("/")
    shown = redact_url(base_url)
    client = http_client or httpx.AsyncClient(timeout=timeout)
    try:
        response = await client.get(
            f"{base_url}/models",
            headers={"Authorization": f"Bearer {resolve_api_key(api_key)}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise ModelUnreachable(_unreachable_message(shown, str(exc) or type(exc).__name__)) from exc
    finally:
        if http_client is None:
            await client.aclose()
    if not response.is_success:
        raise ModelError(
            f"the server at {shown} answered GET /models with HTTP {response.status_code}: "
            f"{_snippet(response.text)}{_missing_v1_hint(shown, response.status_code)}",
            retryable=response.status_code >= 500,
        )
    try:
        entries = response.json()["data"]
        return [str(entry["id"]) for entry in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"the server at {shown} is not OpenAI-compatible: GET /models answered "
            f"{_snippet(response.text)!r}"
        ) from exc


async def check_reachable(
    base_url: str,
    model: str | None = None,
    *,
    api_key: str | None = None,
    timeout: float = 10.0,
    http_client: httpx.AsyncClient | None = None,
) -> list[str]:
    """Check that a server answers at ``base_url`` and, if given, serves ``model``.

    Meant for the command line: each failure is one message a person can act on.

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: A model name that must be among those served.
        api_key: The key to send; see :func:`resolve_api_key`.
        timeout: Seconds to wait for the answer.
        http_client: A client to use instead of a fresh one (left open).

    Returns:
        The served model names.

    Raises:
        ModelUnreachable: Nothing answered at ``base_url``.
        ModelError: The server does not serve ``model`` (the message lists what it serves).
    """
    models = await list_models(base_url, api_key=api_key, timeout=timeout, http_client=http_client)
    if model is not None and model not in models:
        served = ", ".join(models) or "nothing"
        raise ModelError(
            f"the server at {redact_url(base_url.rstrip('/'))} does not serve model {model!r}; "
            f"it serves: {served}"
        )
    return models
