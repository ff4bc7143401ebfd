"""The counseling built-in: client profiles, and settings made on top of them."""

import pytest

from personae.errors import ConfigError
from personae.studies import builtin
from personae.studies.counseling import CLIENTS


def client_of(params):
    return builtin("counseling").with_params(params).persona("client")


def test_a_trait_set_on_the_client_is_kept():
    assert client_of({"client.big_five.N": 1.0}).big_five["N"] == 1.0


def test_a_trait_set_on_the_client_carries_over_to_another_profile():
    other = list(CLIENTS)[1]
    client = client_of({"client": other, "client.big_five.N": 1.0})
    assert client.name == CLIENTS[other].name
    assert client.big_five == {**CLIENTS[other].big_five, "N": 1.0}


def test_other_client_fields_and_the_counselor_are_kept():
    assert client_of({"client.background": "A nurse on night shifts."}).background == (
        "A nurse on night shifts."
    )
    scenario = builtin("counseling").with_params({"counselor.style": "terse"})
    assert scenario.persona("counselor").style == "terse"


def test_the_profile_alone_is_unchanged():
    other = list(CLIENTS)[1]
    assert client_of({"client": other}).big_five == CLIENTS[other].big_five


def test_an_unknown_profile_is_refused():
    with pytest.raises(ConfigError, match="unknown client profile"):
        client_of({"client": "nobody"})
