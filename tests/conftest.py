"""Shared fixtures: small personas and scenarios for unit tests."""

from __future__ import annotations

import pytest

from personae import Opening, Persona, Scenario


@pytest.fixture
def pair() -> tuple[Persona, Persona]:
    return (
        Persona(name="Lee", role="counselor", big_five={"A": 4.5}),
        Persona(name="Sam", role="client", big_five={"N": 4.2}, style="reserved"),
    )


@pytest.fixture
def dialogue(pair: tuple[Persona, Persona]) -> Scenario:
    return Scenario(
        name="dialogue",
        agents=pair,
        opening=Opening(speaker="Lee", text="Hi Sam, what brings you in?"),
        max_turns=6,
    )
