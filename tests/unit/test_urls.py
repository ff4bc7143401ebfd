"""Server addresses: credentials never leave a URL that is shown or stored; loopback hosts."""

from __future__ import annotations

import pytest

from personae.llm.urls import is_loopback_host, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host:8000/v1", "http://host:8000/v1"),
        ("http://user@host/v1", "http://host/v1"),
        (
            "https://user:p%40ss@gpu-box.example.org/v1?x=1#top",
            "https://gpu-box.example.org/v1?x=1#top",
        ),
        ("http://user:p@ss@host:8000/v1", "http://host:8000/v1"),  # an unescaped @ in the password
        ("http://:token@[::1]:8000/v1", "http://[::1]:8000/v1"),
        ("//user:pass@host/v1", "//host/v1"),
    ],
)
def test_user_information_is_removed(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "pass" not in redact_url(url) and "token" not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://[::1]:8000/v1",
        "https://api.example.org/v1?key=value#part",
        "http://host/v1/user@example",  # an @ in the path is not user information
        "not a url at all",
        "http://[unclosed/v1",  # urlsplit raises on this one
        "",
    ],
)
def test_anything_else_is_left_unchanged(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost", "::ffff:127.0.0.1"],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.1", "gpu-box", "localhost.example.org"]
)
def test_other_hosts_may_be_reachable_from_the_network(host: str) -> None:
    assert not is_loopback_host(host)
