"""Named model endpoints: which server and model each agent, probe or judge talks to.

An experiment may declare several endpoints by name. Agents are bound to one
by name or role (``counselor.endpoint=target``), judges by ``judge.endpoint``;
whoever is not bound uses the endpoint ``default`` (the ``--base-url`` /
embedded server of the run). From the command line::

    personae run counseling --endpoint target=http://127.0.0.1:8001/v1#my-model \\
        --bind counselor=target
    personae run counseling --endpoints endpoints.toml --grid counselor.endpoint=a,b

An endpoints file (TOML) has one table per endpoint::

    [target]
    base_url = "http://127.0.0.1:8001/v1"      # or "embedded", or a list of replicas
    model = "my-model"                         # served model name (default: the first listed)
    api_key_env = "TARGET_API_KEY"             # the key is read from this variable, never stored
    max_in_flight = 32
    timeout = 120
    retries = 3
    structured = "auto"                        # auto | vllm | openai | none

Keys are read from the environment when the endpoint is opened and never
stored, printed or put in the experiment's identity; the identity holds each
endpoint's model name only (its URL may change between runs of one experiment).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from personae.errors import ConfigError
from personae.llm.dialect import StructuredMode
from personae.llm.urls import redact_url

__all__ = [
    "DEFAULT_ENDPOINT",
    "EMBEDDED",
    "Endpoint",
    "StructuredMode",
    "load_endpoints",
    "parse_binding",
    "parse_endpoint",
    "parse_endpoint_url",
]

#: The name of the run's own endpoint (``--base-url`` or the embedded server).
DEFAULT_ENDPOINT = "default"
#: ``base_url`` value that means "the embedded vLLM server of this run".
EMBEDDED = "embedded"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class Endpoint(BaseModel):
    """One named model endpoint.

    Attributes:
        name: How agents, probes and the grid refer to it (letters, digits, ``_.-``).
        base_url: The server's API root (``http://host:8000/v1``), ``"embedded"``
            for the run's embedded vLLM server, or several URLs of replicas
            serving the same model (a replica pool).
        model: The served model name (default: the first the server lists).
        api_key_env: The environment variable holding the API key (read when
            the endpoint is opened; never stored or printed).
        max_in_flight: Requests in flight at most (per replica).
        timeout: Seconds one attempt of a request may take.
        retries: Retries of a request after a retryable error.
        structured: How structured outputs are asked for: ``"auto"`` (detect
            the server), ``"vllm"`` (vLLM's ``structured_outputs``), ``"openai"``
            (``response_format`` with a JSON schema only) or ``"none"``
            (tolerant parsing of free text).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    base_url: tuple[str, ...] = (EMBEDDED,)
    model: str | None = None
    api_key_env: str | None = None
    max_in_flight: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)
    structured: StructuredMode = "auto"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"endpoint name {value!r} must start with a letter or _ and hold only "
                "letters, digits, '_', '.' and '-' (64 characters at most)"
            )
        if value == DEFAULT_ENDPOINT:
            raise ValueError(
                f"the endpoint name {DEFAULT_ENDPOINT!r} is the run's own server (--base-url, "
                "or the embedded one); give the endpoint another name"
            )
        return value

    @field_validator("base_url", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        urls = (value,) if isinstance(value, str) else tuple(value)
        if not urls:
            raise ValueError("an endpoint needs at least one base URL (or 'embedded')")
        for url in urls:
            if not isinstance(url, str):
                raise ValueError(f"base URL {url!r} is not text")
            if url != EMBEDDED and not re.match(r"^https?://", url):
                raise ValueError(
                    f"base URL {redact_url(url)!r} must start with http:// or https://"
                )
        if EMBEDDED in urls and len(urls) > 1:
            raise ValueError("'embedded' cannot be one replica among others")
        return tuple(u.rstrip("/") if u != EMBEDDED else u for u in urls)

    @property
    def embedded(self) -> bool:
        """Whether this endpoint is the run's embedded vLLM server."""
        return self.base_url == (EMBEDDED,)

    @property
    def pooled(self) -> bool:
        """Whether several replicas serve this endpoint."""
        return len(self.base_url) > 1

    def api_key(self) -> str | None:
        """The key from :attr:`api_key_env`, or None when no variable is named.

        Raises:
            ConfigError: The named variable is not set.
        """
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"endpoint {self.name!r} takes its API key from the environment variable "
                f"{self.api_key_env}, which is not set; export it before the run."
            )
        return key

    def describe(self) -> dict[str, Any]:
        """What the run records about the endpoint: no keys, URLs without credentials."""
        data: dict[str, Any] = {
            "name": self.name,
            "base_url": [redact_url(u) for u in self.base_url],
            "model": self.model,
            "structured": self.structured,
        }
        if self.api_key_env:
            data["api_key_env"] = self.api_key_env
        return data


def _fail(message: str) -> ConfigError:
    return ConfigError(message)


def parse_endpoint_url(text: str) -> tuple[str, str | None]:
    """``"http://host:8001/v1#my-model"`` -> ``("http://host:8001/v1", "my-model")``.

    The part after ``#`` names the served model; without it the model is the
    first the server lists. ``"embedded"`` (``"embedded#name"``) is the run's
    embedded server.

    Raises:
        ConfigError: The URL is empty.
    """
    url, _, model = text.strip().partition("#")
    if not url:
        raise _fail(f"{text!r} names no server; give a URL such as http://127.0.0.1:8001/v1#model")
    return url, (model or None)


def parse_endpoint(text: str) -> Endpoint:
    """One ``--endpoint`` flag: ``NAME=URL[#MODEL]``; several replicas as ``NAME=URL1,URL2#MODEL``.

    Example::

        >>> parse_endpoint("target=http://127.0.0.1:8001/v1#my-model").model
        'my-model'

    Raises:
        ConfigError: The flag has no ``=``, or the name or URL is invalid.
    """
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise _fail(
            f"--endpoint {text!r} is not NAME=URL[#MODEL]; e.g. "
            "--endpoint target=http://127.0.0.1:8001/v1#my-model"
        )
    urls, model = parse_endpoint_url(rest)
    return _endpoint(
        {"name": name.strip(), "base_url": [u.strip() for u in urls.split(",")], "model": model},
        f"--endpoint {name.strip()}",
    )


def _endpoint(data: Mapping[str, Any], where: str) -> Endpoint:
    try:
        return Endpoint.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(f"{where} is not a valid endpoint: {problems}") from None


def load_endpoints(path: str | Path) -> list[Endpoint]:
    """The endpoints declared in a TOML file (one table per endpoint, see the module docstring).

    Raises:
        ConfigError: The file is missing, is not TOML, or declares an invalid endpoint.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(f"endpoints file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(f"endpoints file {path} is not valid TOML: {exc}") from None
    endpoints = []
    for name, table in data.items():
        if not isinstance(table, dict):
            raise _fail(
                f"endpoints file {path}: {name!r} must be a table ([{name}] with base_url, "
                "model, ...), not a single value"
            )
        endpoints.append(_endpoint({"name": name, **table}, f"endpoint [{name}] in {path}"))
    return endpoints


def parse_binding(text: str) -> tuple[str, str]:
    """One ``--bind`` flag: ``WHO=ENDPOINT`` -> ``("WHO", "ENDPOINT")``.

    ``WHO`` is an agent's name or role, or ``judge``.

    Raises:
        ConfigError: The flag is not ``WHO=ENDPOINT``.
    """
    who, sep, name = text.partition("=")
    if not sep or not who.strip() or not name.strip():
        raise _fail(f"--bind {text!r} is not WHO=ENDPOINT; e.g. --bind counselor=target")
    return who.strip(), name.strip()


def unique(endpoints: Iterable[Endpoint]) -> dict[str, Endpoint]:
    """Endpoints by name, refusing a name given twice."""
    named: dict[str, Endpoint] = {}
    for endpoint in endpoints:
        if endpoint.name in named:
            raise _fail(f"endpoint {endpoint.name!r} is declared twice; give each name once")
        named[endpoint.name] = endpoint
    return named
