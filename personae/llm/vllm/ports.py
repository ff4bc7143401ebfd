"""Ports, kept logs and start-up polling of the embedded vLLM server.

Helpers of :class:`~personae.llm.vllm.server.EmbeddedServer`: picking and
checking a port, naming kept logs, asking a starting server whether it is up.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import httpx

from personae.errors import ServerError

__all__ = [
    "address_family",
    "aget_or_none",
    "check_port_free",
    "free_port",
    "get_or_none",
    "numbered",
    "open_server_message",
    "port_busy_message",
    "version_from",
]


def free_port(host: str) -> int:
    """A port on ``host`` that nothing listens on now (the kernel's pick)."""
    with socket.socket(address_family(host), socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def address_family(host: str) -> socket.AddressFamily:
    """``AF_INET6`` for an IPv6 address, else ``AF_INET``."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`ServerError` (naming the way out) when ``port`` on ``host`` is taken."""
    # Bind the way vLLM does (SO_REUSEADDR), so sockets in TIME_WAIT do not count as busy.
    with socket.socket(address_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServerError(port_busy_message(host, port)) from error


def port_busy_message(host: str, port: int) -> str:
    """What to tell a person whose port is taken."""
    return (
        f"Port {port} on {host} is already in use (another server, perhaps an earlier vLLM). "
        f"Stop it, pick another port, or use it as the server with --base-url http://{host}:{port}/v1."
    )


def numbered(path: Path, number: int) -> Path:
    """A kept log's path: ``vllm.log`` and 2 give ``vllm.log.2``."""
    return path.with_name(f"{path.name}.{number}")


def open_server_message(host: str) -> str:
    """Why a server reachable from the network needs an API key, and what to do."""
    return (
        f"Refusing to serve on host {host!r} without an API key. A host other than loopback "
        "(127.0.0.1, ::1, localhost) makes the server reachable from the network, and vLLM "
        "itself checks nothing by default: anyone who can reach the port could use this "
        "machine's compute and the model as their own. Give a key with --api-key or the "
        "PERSONAE_API_KEY environment variable (clients send it as their API key), or keep "
        "the default host 127.0.0.1 and reach the server through an SSH tunnel."
    )


def get_or_none(client: httpx.Client, url: str) -> httpx.Response | None:
    """``GET url``, or None when nothing answered (the server is still starting)."""
    try:
        return client.get(url)
    except httpx.TransportError:
        return None


async def aget_or_none(client: httpx.AsyncClient, url: str) -> httpx.Response | None:
    """Like :func:`get_or_none`, without blocking the event loop."""
    try:
        return await client.get(url)
    except httpx.TransportError:
        return None


def version_from(response: httpx.Response | None) -> str | None:
    """The version in a ``GET /version`` answer (``{"version": "0.32.0"}``), or None."""
    if response is None or response.status_code != 200:
        return None
    try:
        version = response.json().get("version")
    except (ValueError, AttributeError):
        return None
    return str(version) if version else None
