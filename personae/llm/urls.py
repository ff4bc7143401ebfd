"""Server addresses: URLs without their credentials, and which hosts are loopback.

A base URL such as ``http://user:secret@host:8000/v1`` is valid for the
OpenAI client, but whatever personae prints, logs or records in the database
(``experiments.server_info``, error messages) must not hold the secret.

Example::

    >>> redact_url("http://user:secret@gpu-box:8000/v1")
    'http://gpu-box:8000/v1'
"""

from __future__ import annotations

import ipaddress
import urllib.parse

__all__ = ["is_loopback_host", "redact_url"]


def redact_url(url: str) -> str:
    """The URL without its user information (``user:password@``).

    Only the user information is removed; scheme, host, port, path, query and
    fragment stay as they are. A URL without credentials, or a string that does
    not parse as a URL, is returned unchanged.

    Args:
        url: A URL, e.g. ``"http://user:pass@host:8000/v1"``.

    Returns:
        The same URL without user information, e.g. ``"http://host:8000/v1"``.

    Example::

        >>> redact_url("http://user@host/v1")
        'http://host/v1'
        >>> redact_url("http://127.0.0.1:8000/v1")
        'http://127.0.0.1:8000/v1'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return url
    if "@" not in parts.netloc:
        return url
    # The host part follows the last "@": a password may itself contain "@".
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def is_loopback_host(host: str) -> bool:
    """Whether a server listening on ``host`` is reachable from this machine only.

    Loopback hosts are ``localhost``, the addresses 127.0.0.0/8 and ``::1``
    (also IPv4-mapped, ``::ffff:127.0.0.1``). Anything else, including
    ``0.0.0.0``, ``::``, an empty host and any other name, may be reachable
    from the network.

    Args:
        host: A host name or IP address, IPv6 with or without brackets.

    Returns:
        True for a loopback host.

    Example::

        >>> is_loopback_host("127.0.0.1"), is_loopback_host("0.0.0.0")
        (True, False)
    """
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name in {"localhost", "localhost."}:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
