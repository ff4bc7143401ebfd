"""An OpenAI-compatible chat server on loopback that fails on request.

Only the standard library, so it also runs as a plain script. Two ways to use it:

In-process, in a background thread (fast; ``kill`` closes every socket at once)::

    with FaultServer(model="fault-model") as server:
        model = OpenAIChatModel(server.base_url, "fault-model")
        server.configure(faults=[Fault("status", status=503, count=2)])
        ...
        server.kill()      # abrupt: listening socket and open connections closed
        server.restart()   # the same port, the same configuration

As a separate process that a test can SIGKILL (``python -m
tests.support.fault_server --port P --mode surrogate --count 3``, or
:func:`tests.support.fault_process.start_process`)::

    handle = start_process(faults=[Fault("surrogate", match="[desk 7]")], delay_s=0.05)
    handle.base_url        # "http://127.0.0.1:<port>/v1"
    handle.kill()          # SIGKILL, waits for the exit
    handle.restart()       # a new process on the same port, last configuration
    handle.stop()

Endpoints: ``GET /v1/models``, ``GET /version`` (``{"version": "fault-0"}``, as
vLLM answers; HTTP 404 with ``vllm=False``, so the server looks like one that is
not vLLM), ``GET /health``, ``POST /v1/chat/completions`` and the control
endpoint ``GET /_control`` (configuration and statistics) / ``POST /_control``
(a JSON object with any of ``faults``, ``delay_s``, ``die_after``, ``strict``,
``vllm``, ``model``, ``seed``, ``reset``, ``prefix_cache``; see
:meth:`FaultServer.configure`). With ``prefix_cache`` set, ``GET /metrics``
answers vLLM's ``vllm:cache_config_info`` line.

Replies are deterministic: the text depends only on the last user message and
the request's seed (``Reply <8 hex>: ...``), so transcripts are reproducible.

Faults (:class:`Fault`), checked in order for each chat request; the first that
fires shapes the answer:

============  ===================================================================
kind          effect
============  ===================================================================
status        HTTP ``status`` (500, 503, 429, ...) with an OpenAI-style error body
hang          no answer for ``seconds`` (then a normal reply), or never (None)
die           the server dies on receipt, without answering (the process exits)
malformed     HTTP 200 with a body that is not JSON
empty         a completion whose content is ``""``
truncated     ``finish_reason: "length"``, ``completion_tokens == max_tokens``
surrogate     content holds the JSON escape ``\\ud800`` (valid JSON, not valid UTF-8)
speaker       content starts with another speaker's name (``text``, default "Bob")
stage         content is only a stage direction (``text``, default "(smiles)")
============  ===================================================================

A fault fires for the next ``count`` matching requests, or for a fraction
``rate`` of them (decided from a hash of the seed, the request and how often
that request was seen, so a retry can succeed and the choice does not depend on
timing), or for every matching request when neither is given. ``match``
restricts it to requests whose messages contain that text. ``die_after=N``
kills the server right after its N-th successful reply; ``strict=True`` answers
HTTP 400 to parameters the OpenAI API does not know (vLLM-only ones such as
``structured_outputs`` or ``top_k``), as OpenAI itself would.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_MODEL",
    "DIE_EXIT_CODE",
    "FAULT_KINDS",
    "Fault",
    "FaultServer",
    "as_fault",
    "reply_text",
]

HOST = "127.0.0.1"
DEFAULT_MODEL = "fault-model"
VERSION = "fault-0"
#: The exit status of a server process that died on purpose (``die``, ``die_after``).
DIE_EXIT_CODE = 70
FAULT_KINDS = (
    "status",
    "hang",
    "die",
    "malformed",
    "empty",
    "truncated",
    "surrogate",
    "speaker",
    "stage",
)
_CONTROL_KEYS = frozenset(
    {"faults", "delay_s", "die_after", "strict", "vllm", "model", "seed", "reset", "prefix_cache"}
)
_HANG_CAP_S = 3600.0  # "never" still ends: every wait in here is bounded
_RECENT = 200
_DEFAULT_MAX_TOKENS = 256
#: Top-level chat-completion fields the OpenAI API accepts; others are refused when strict.
_OPENAI_PARAM_NAMES = (
    "model messages audio frequency_penalty function_call functions logit_bias logprobs "
    "max_completion_tokens max_tokens metadata modalities n parallel_tool_calls prediction "
    "presence_penalty reasoning_effort response_format seed service_tier stop store stream "
    "stream_options temperature tool_choice tools top_logprobs top_p user web_search_options"
)
OPENAI_PARAMS = frozenset(_OPENAI_PARAM_NAMES.split())
_SENTENCES = (
    "I hear you, and I would like to know more about that.",
    "That sounds hard; what happened next?",
    "Thanks for saying so, it helps me understand.",
    "I am not sure yet, can you tell me a little more?",
)


@dataclass(frozen=True)
class Fault:
    """One injected fault; see the module docstring for the kinds.

    Args:
        kind: One of :data:`FAULT_KINDS`.
        count: Fire for the next ``count`` matching requests only.
        rate: Fire for this fraction (0..1) of matching requests, seeded.
        match: Only requests whose message contents contain this text.
        status: The HTTP status of a ``status`` fault.
        seconds: How long a ``hang`` lasts before a normal reply (None: never answers).
        text: The speaker name of ``speaker``, the direction of ``stage``.

    Raises:
        ValueError: An unknown kind or an out-of-range value.
    """

    kind: str
    count: int | None = None
    rate: float | None = None
    match: str | None = None
    status: int = 500
    seconds: float | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"fault count must be >= 0, got {self.count}")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be in [0, 1], got {self.rate}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status, got {self.status}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from its JSON form (the fields above); unknown keys are refused."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, without fields left at their defaults."""
        defaults = Fault(self.kind)
        return {k: v for k, v in asdict(self).items() if k == "kind" or v != getattr(defaults, k)}


def as_fault(value: Fault | Mapping[str, Any]) -> Fault:
    return value if isinstance(value, Fault) else Fault.from_dict(value)


def _content_text(messages: Any) -> str:
    """Every message content joined, for ``match`` (list contents are flattened)."""
    parts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        elif content is not None:
            parts.append(str(content))
    return "\n".join(parts)


def reply_text(messages: Any, seed: Any) -> str:
    """The deterministic reply to a request: a hash of its last user message and seed.

    Args:
        messages: The request's ``messages``.
        seed: The request's ``seed`` (None when absent).

    Returns:
        ``"Reply <8 hex>: <a short sentence picked by the same hash>"``.
    """
    last_user = ""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = _content_text([message])
            break
    digest = hashlib.sha256(f"{seed}|{last_user}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"Reply {digest[:8]}: {_SENTENCES[int(digest[8:16], 16) % len(_SENTENCES)]}"


def _unit(*parts: Any) -> float:
    """A number in [0, 1) fixed by ``parts``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class _State:
    """Configuration and statistics, shared by the handler threads under ``lock``."""

    model: str = DEFAULT_MODEL
    delay_s: float = 0.0
    die_after: int | None = None
    strict: bool = False
    vllm: bool = True
    seed: int = 0
    prefix_cache: bool | None = None
    prompts: list[list[str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    remaining: list[int | None] = field(default_factory=list)
    seen: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: int = 0
    replies: int = 0
    applied: collections.Counter[str] = field(default_factory=collections.Counter)
    recent: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=_RECENT)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, changes: Mapping[str, Any]) -> None:
        unknown = set(changes) - _CONTROL_KEYS
        if unknown:
            raise ValueError(f"unknown control keys: {sorted(unknown)}")
        faults = None
        if changes.get("faults") is not None:
            faults = [as_fault(f) for f in changes["faults"]]
        with self.lock:
            if changes.get("reset"):
                self.requests = self.replies = 0
                self.applied.clear()
                self.recent.clear()
                self.seen.clear()
            if faults is not None:
                self.faults = faults
                self.remaining = [f.count for f in faults]
            for key in ("delay_s", "strict", "vllm", "model", "seed"):
                if key in changes:
                    setattr(self, key, type(getattr(self, key))(changes[key]))
            if "die_after" in changes:
                value = changes["die_after"]
                self.die_after = None if value is None else int(value)
            if "prefix_cache" in changes:
                value = changes["prefix_cache"]
                self.prefix_cache = None if value is None else bool(value)
                self.prompts.clear()

    def cached(self, words: list[str]) -> int | None:
        """Prompt "tokens" (words) a prefix cache would hold: the longest prefix seen before."""
        with self.lock:
            if self.prefix_cache is None:
                return None
            if not self.prefix_cache:
                return 0
            best = 0
            for seen in self.prompts:
                n = 0
                for a, b in zip(seen, words, strict=False):
                    if a != b:
                        break
                    n += 1
                best = max(best, n)
            self.prompts.append(words)
            return best

    def choose(self, body: Mapping[str, Any], raw: bytes) -> Fault | None:
        """Record a chat request and pick the fault that shapes its answer, if any."""
        key = hashlib.sha256(raw).hexdigest()
        text = _content_text(body.get("messages"))
        with self.lock:
            self.requests += 1
            self.recent.append(dict(body))
            seen = self.seen[key]
            self.seen[key] += 1
            for index, fault in enumerate(self.faults):
                if fault.match is not None and fault.match not in text:
                    continue
                if fault.rate is not None and _unit(self.seed, index, key, seen) >= fault.rate:
                    continue
                left = self.remaining[index]
                if left is not None:
                    if left <= 0:
                        continue
                    self.remaining[index] = left - 1
                self.applied[fault.kind] += 1
                return fault
            return None

    def replied(self) -> bool:
        """Count one successful reply; True when the server must now die."""
        with self.lock:
            self.replies += 1
            if self.die_after is None:
                return False
            self.die_after -= 1
            return self.die_after <= 0

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "model": self.model,
                "delay_s": self.delay_s,
                "die_after": self.die_after,
                "strict": self.strict,
                "vllm": self.vllm,
                "seed": self.seed,
                "faults": [
                    {**f.to_dict(), "remaining": left}
                    for f, left in zip(self.faults, self.remaining, strict=True)
                ],
                "requests": self.requests,
                "replies": self.replies,
                "applied": dict(self.applied),
                "recent": list(self.recent)[-20:],
            }


class _HTTPServer(ThreadingHTTPServer):
    """One listening generation: its open connections can be cut all at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # socketserver's 5 refuses connections when a run opens 64 at once

    def __init__(self, port: int, state: _State, on_die: Callable[[], None]) -> None:
        self.state = state
        self.on_die = on_die
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away, or a socket cut by kill(): not worth a traceback

    def cut_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?")[0]
        if path in {"/v1/models", "/models"}:
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"id": state.model, "object": "model", "owned_by": "fault"}],
                },
            )
        elif path == "/version" and state.vllm:
            self._json(200, {"version": VERSION})
        elif path == "/metrics" and state.prefix_cache is not None:
            on = "True" if state.prefix_cache else "False"
            info = f'vllm:cache_config_info{{block_size="16",enable_prefix_caching="{on}"}} 1.0\n'
            self._send(200, info.encode())
        elif path == "/health":
            self._send(200, b"")
        elif path == "/_control":
            self._json(200, state.snapshot())
        else:
            self._error(404, f"no route {path}")

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        raw = self._body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._error(400, "the request body is not JSON")
            return
        if not isinstance(body, dict):
            self._error(400, "the request body is not a JSON object")
        elif path == "/_control":
            try:
                self.server.state.configure(body)
            except (ValueError, TypeError) as exc:
                self._error(400, str(exc))
                return
            self._json(200, self.server.state.snapshot())
        elif path in {"/v1/chat/completions", "/chat/completions"}:
            self._chat(body, raw)
        else:
            self._error(404, f"no route {path}")

    def _chat(self, body: dict[str, Any], raw: bytes) -> None:
        server, state = self.server, self.server.state
        fault = state.choose(body, raw)
        if state.strict:
            unknown = sorted(set(body) - OPENAI_PARAMS)
            if unknown:
                self._error(400, f"Unrecognized request argument supplied: {', '.join(unknown)}")
                return
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            self._error(400, "'messages' must be a non-empty list")
            return
        if body.get("stream"):
            self._error(400, "the fault server does not stream")
            return
        if fault is not None and fault.kind == "die":
            server.on_die()
            server.stopping.wait(_HANG_CAP_S)
            self.close_connection = True
            return
        if fault is not None and fault.kind == "hang":
            woken = server.stopping.wait(
                _HANG_CAP_S if fault.seconds is None else min(fault.seconds, _HANG_CAP_S)
            )
            if woken or fault.seconds is None:
                self.close_connection = True  # never answered
                return
        if state.delay_s > 0 and server.stopping.wait(state.delay_s):
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": "1"} if fault.status == 429 else None
            kind = "rate_limit_error" if fault.status == 429 else "server_error"
            message = f"fault injected: HTTP {fault.status}"
            self._json(
                fault.status,
                {"error": {"message": message, "type": kind, "code": fault.status}},
                headers,
            )
            return
        if fault is not None and fault.kind == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [')
            return
        self._send(200, _completion(body, state.model, fault, state.cached))
        if state.replied():
            server.on_die()


def _completion(
    body: Mapping[str, Any],
    model: str,
    fault: Fault | None,
    cached: Callable[[list[str]], int | None] = lambda words: None,
) -> bytes:
    """The body of a chat completion, shaped by ``fault`` (a content fault or None).

    Its usage says how many prompt "tokens" (words) came from the simulated
    prefix cache, as vLLM's ``prompt_tokens_details`` does, when ``cached`` says.
    """
    messages = body.get("messages")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    max_tokens = int(max_tokens) if isinstance(max_tokens, int | float) else _DEFAULT_MAX_TOKENS
    text = reply_text(messages, body.get("seed"))
    structured = body.get("structured_outputs") or {}
    choices = structured.get("choice") if isinstance(structured, dict) else None
    if isinstance(choices, list) and choices:
        text = str(choices[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(choices)])
    finish = "stop"
    kind = fault.kind if fault is not None else None
    if kind == "empty":
        text = ""
    elif kind == "truncated":
        words = (text.split() * (max_tokens // 4 + 2))[:max_tokens]
        if words[-1].endswith((".", "!", "?")):  # cut mid-sentence, as max_tokens does
            words[-1] = words[-1].rstrip(".!?") + ","
        text, finish = " ".join(words), "length"
    elif kind == "surrogate":
        text = text.replace(": ", ": \ud800 ", 1)  # early, so max_tokens cannot cut it off
    elif kind == "speaker":
        text = f"{fault.text if fault and fault.text else 'Bob'}: {text}"
    elif kind == "stage":
        text = fault.text if fault and fault.text else "(smiles)"
    words = text.split()
    if kind != "truncated" and len(words) > max_tokens:
        text, finish = " ".join(words[:max_tokens]), "length"
    completion_tokens = max_tokens if kind == "truncated" else len(text.split())
    words = _content_text(messages).split()
    prompt_tokens = len(words)
    from_cache = cached(words)
    payload = {
        "id": "chatcmpl-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            **(
                {"prompt_tokens_details": {"cached_tokens": from_cache}}
                if from_cache is not None
                else {}
            ),
        },
    }
    # ensure_ascii writes a lone surrogate as the escape "\ud800": valid JSON whose
    # decoded string cannot be encoded as UTF-8, which is the point of that fault.
    return json.dumps(payload, ensure_ascii=True).encode("ascii")


class FaultServer:
    """The fault server in a background thread of this process.

    Args:
        port: The port on 127.0.0.1 (0: a free one, kept across :meth:`restart`).
        model: The served model name.
        faults: Faults active from the start (:class:`Fault` or their JSON form).
        delay_s: Seconds every chat answer waits.
        die_after: Die right after this many successful replies.
        strict: Refuse non-OpenAI parameters with HTTP 400.
        vllm: Answer ``GET /version`` as vLLM does; False answers it with 404,
            as servers that are not vLLM do.
        seed: Seeds the ``rate`` decisions.
        prefix_cache: Simulate vLLM's prefix cache: True reports, in each
            answer's ``usage.prompt_tokens_details.cached_tokens``, the words of the
            longest prompt prefix seen before, and ``GET /metrics`` says the cache
            is on; False reports 0 and says it is off; None (default) says nothing.

    Example::

        with FaultServer(faults=[Fault("empty", count=1)]) as server:
            ...  # server.base_url, server.requests, server.kill(), server.restart()
    """

    def __init__(
        self,
        *,
        port: int = 0,
        model: str = DEFAULT_MODEL,
        faults: Iterable[Fault | Mapping[str, Any]] = (),
        delay_s: float = 0.0,
        die_after: int | None = None,
        strict: bool = False,
        vllm: bool = True,
        seed: int = 0,
        on_die: Callable[[], None] | None = None,
        prefix_cache: bool | None = None,
    ) -> None:
        self.port = port
        self.state = _State()
        self.state.configure(
            {
                "model": model,
                "faults": list(faults),
                "delay_s": delay_s,
                "die_after": die_after,
                "strict": strict,
                "vllm": vllm,
                "seed": seed,
                "prefix_cache": prefix_cache,
            }
        )
        self._on_die = on_die
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The API root, ``http://127.0.0.1:<port>/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """The server root, ``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> FaultServer:
        """Listen (on the same port as before after a kill) and serve from a thread."""
        if self._httpd is not None:
            return self
        httpd = _bind(self.port, self.state, self._die)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def kill(self) -> None:
        """Die abruptly: stop listening and cut every open connection, answered or not."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.cut_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    stop = kill

    def restart(self) -> FaultServer:
        """Kill if running, then start again on the same port with the same configuration."""
        self.kill()
        return self.start()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change the configuration at run time, as ``POST /_control`` does.

        Args:
            **changes: ``faults`` (replaces the list), ``delay_s``, ``die_after``,
                ``strict``, ``vllm``, ``model``, ``seed``; ``reset=True`` clears the
                statistics.

        Returns:
            The configuration and statistics afterwards (see :meth:`snapshot`).
        """
        self.state.configure(changes)
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """Configuration and statistics: requests, replies, applied faults, recent bodies."""
        return self.state.snapshot()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last chat-request bodies received (up to 200), oldest first."""
        with self.state.lock:
            return list(self.state.recent)

    @property
    def count(self) -> int:
        """Chat requests received so far."""
        return self.state.requests

    @property
    def replies(self) -> int:
        """Chat completions answered successfully so far."""
        return self.state.replies

    def _die(self) -> None:
        if self._on_die is not None:
            self._on_die()
            return
        # kill() waits for the serving thread; never make a handler thread wait on itself.
        threading.Thread(target=self.kill, daemon=True).start()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _bind(port: int, state: _State, on_die: Callable[[], None]) -> _HTTPServer:
    """A listening server on ``port``, retrying briefly while the old one's socket goes."""
    for attempt in range(50):
        try:
            return _HTTPServer(port, state, on_die)
        except OSError:
            if port == 0 or attempt == 49:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fault_server",
        description="An OpenAI-compatible chat server on 127.0.0.1 that fails on request.",
    )
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--mode", choices=FAULT_KINDS, help="one fault, shaped by the options")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--match", default=None)
    parser.add_argument("--status", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--text", default=None)
    parser.add_argument("--delay", type=float, default=None, help="seconds before every answer")
    parser.add_argument("--die-after", type=int, default=None)
    parser.add_argument("--strict", action="store_true", help="400 for non-OpenAI parameters")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--config", default=None, help="a JSON object as POST /_control takes")
    parser.add_argument(
        "--lifetime", type=float, default=4 * 3600, help="exit after this many seconds at most"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; prints ``{"port": P, "pid": N}`` on stdout once listening."""
    args = _parse_args(argv)
    config: dict[str, Any] = json.loads(args.config) if args.config else {}
    if args.mode:
        fault = Fault(
            args.mode,
            count=args.count,
            rate=args.rate,
            match=args.match,
            status=args.status,
            seconds=args.seconds,
            text=args.text,
        )
        config["faults"] = [*config.get("faults", []), fault.to_dict()]
    for key, value in (
        ("model", args.model),
        ("delay_s", args.delay),
        ("die_after", args.die_after),
        ("seed", args.seed),
    ):
        if value is not None:
            config[key] = value
    if args.strict:
        config["strict"] = True

    def die() -> None:
        sys.stdout.flush()
        os._exit(DIE_EXIT_CODE)

    server = FaultServer(port=args.port, on_die=die)
    server.state.configure(config)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(json.dumps({"port": server.port, "pid": os.getpid()}), flush=True)
    parent = os.getppid()
    deadline = time.monotonic() + args.lifetime
    with contextlib.suppress(KeyboardInterrupt):
        # Bounded, and never an orphan: a test that died without killing us is not waited on.
        while time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    main()
