"""Traits to build vectors for: contrastive system prompts and elicitation questions.

A :class:`TraitSpec` holds, for one trait, system prompts at its high pole and
at its low pole (paired: the i-th high prompt contrasts with the i-th low
one) and questions that give the trait a chance to show. The Big Five
domains come built in (:func:`big_five_traits`): their high and low prompts
are the persona cards personae itself writes for a Big Five target of 5 and
of 1 plus two adjective descriptions, and their questions are the bundled
IPIP-NEO-120 items of the domain, asked as questions.

A user adds a trait in a TOML file (:func:`load_traits`)::

    [[trait]]
    name = "optimism"
    description = "expects good outcomes"
    high = ["You are a hopeful person who expects things to turn out well."]
    low = ["You are a gloomy person who expects the worst."]
    questions = ["How do you think next year will go?", "What will happen at work?"]
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from personae.errors import ConfigError

__all__ = ["BIG_FIVE_DOMAINS", "TraitSpec", "big_five_traits", "load_traits", "resolve_traits"]

BIG_FIVE_DOMAINS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
"""The Big Five domains, in OCEAN order, as the IPIP-NEO-120 names them."""

_LETTER = {name: name[0].upper() for name in BIG_FIVE_DOMAINS}

# Adjective markers of each pole (after Goldberg's unipolar markers), two phrasings each.
_POLES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "openness": (
        (
            "You are a curious, imaginative person who loves new ideas, art and unusual experiences.",
            "You think in abstractions, enjoy philosophy and are always eager to try something new.",
        ),
        (
            "You are a conventional, practical person who prefers routine and distrusts new ideas.",
            "You have little interest in art or abstract thinking and like things the way they are.",
        ),
    ),
    "conscientiousness": (
        (
            "You are an organised, disciplined and dependable person who plans everything carefully.",
            "You always finish your work on time, keep things tidy and follow through on promises.",
        ),
        (
            "You are a disorganised, careless person who acts on impulse and rarely plans ahead.",
            "You often leave tasks unfinished, lose things and put off what you should be doing.",
        ),
    ),
    "extraversion": (
        (
            "You are an outgoing, talkative and energetic person who loves being around people.",
            "You are the life of the party, start conversations easily and seek excitement.",
        ),
        (
            "You are a quiet, reserved and solitary person who prefers to be alone.",
            "You avoid crowds, speak little and find social events draining.",
        ),
    ),
    "agreeableness": (
        (
            "You are a warm, kind and trusting person who cares deeply about others.",
            "You are cooperative and forgiving, and you go out of your way to help people.",
        ),
        (
            "You are a cold, critical and suspicious person who cares little about others.",
            "You are blunt, argumentative and put your own interests before anyone else's.",
        ),
    ),
    "neuroticism": (
        (
            "You are an anxious, moody person who worries constantly and is easily upset.",
            "You often feel tense, sad or irritable, and small problems overwhelm you.",
        ),
        (
            "You are a calm, emotionally stable person who rarely worries or gets upset.",
            "You stay relaxed under pressure and recover quickly from setbacks.",
        ),
    ),
}


class TraitSpec(BaseModel):
    """One trait's contrastive prompts and elicitation questions.

    Args:
        name: The trait's name (letters, digits, ``_``, ``-``), used in variable names.
        description: One line saying what the trait is.
        high: System prompts at the high pole.
        low: System prompts at the low pole, paired with ``high`` (same count).
        questions: User questions that give the trait a chance to show (at least 3,
            so some can be held out).

    Raises:
        ConfigError: (through :func:`load_traits`) a field is missing or invalid.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    high: tuple[str, ...] = Field(min_length=1)
    low: tuple[str, ...] = Field(min_length=1)
    questions: tuple[str, ...] = Field(min_length=3)

    @model_validator(mode="after")
    def _paired(self) -> TraitSpec:
        if len(self.high) != len(self.low):
            raise ValueError(
                f"trait {self.name!r} has {len(self.high)} high prompts but {len(self.low)} "
                "low ones; they are contrasted in pairs, so give as many of each"
            )
        return self


def _question(item_text: str) -> str:
    return f"Do you {item_text[0].lower()}{item_text[1:]}? Tell me about it in a few sentences."


def big_five_traits(domains: tuple[str, ...] = BIG_FIVE_DOMAINS) -> list[TraitSpec]:
    """The built-in Big Five traits: persona cards and adjective prompts, IPIP items as questions.

    Args:
        domains: Which domains (IPIP-NEO-120 names, e.g. ``"neuroticism"``).

    Raises:
        ConfigError: A domain is not a Big Five domain.
    """
    from personae.agents.persona import Persona
    from personae.measures.instruments import load_instrument

    unknown = [d for d in domains if d not in _POLES]
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not Big Five "
            f"domains; the built-in traits are {', '.join(BIG_FIVE_DOMAINS)}"
        )
    items = load_instrument("ipip-neo-120").items
    specs = []
    for domain in domains:
        letter = _LETTER[domain]
        high_words, low_words = _POLES[domain]
        card = Persona(name="Alex", role="person", big_five={letter: 5}).card()
        low_card = Persona(name="Alex", role="person", big_five={letter: 1}).card()
        specs.append(
            TraitSpec(
                name=domain,
                description=f"Big Five {domain} (IPIP-NEO-120 domain)",
                high=(card, *high_words),
                low=(low_card, *low_words),
                questions=tuple(_question(i.text) for i in items if i.domain == domain),
            )
        )
    return specs


def load_traits(path: str | os.PathLike[str]) -> list[TraitSpec]:
    """Read user traits from a TOML file with ``[[trait]]`` tables (see the module docstring).

    Raises:
        ConfigError: The file is missing, not TOML, or a trait is invalid (the
            message names the trait and field).
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read the trait file {path}: {error}") from None
    entries = data.get("trait")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"the trait file {path} has no [[trait]] tables")
    specs = []
    for index, entry in enumerate(entries):
        try:
            specs.append(TraitSpec.model_validate(entry))
        except ValidationError as error:
            name = entry.get("name", f"#{index + 1}") if isinstance(entry, dict) else index + 1
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'trait'}: {e['msg']}"
                for e in error.errors()
            )
            raise ConfigError(f"trait {name} in {path} is invalid: {problems}") from None
    return specs


def resolve_traits(names: list[str] | None, trait_file: str | None = None) -> list[TraitSpec]:
    """The traits a command asked for: Big Five domains by name, plus those of a trait file.

    Args:
        names: Trait names to keep (Big Five domains or names in ``trait_file``);
            when None or empty, every trait of ``trait_file``, or the five Big
            Five domains when there is no file.
        trait_file: A TOML file of user traits.

    Raises:
        ConfigError: A name is neither a Big Five domain nor in the trait file.
    """
    extra = load_traits(trait_file) if trait_file else []
    if not names:
        return extra if extra else big_five_traits()
    by_name = {spec.name: spec for spec in extra}
    builtin = [n for n in names if n not in by_name]
    specs = {spec.name: spec for spec in big_five_traits(tuple(builtin))} if builtin else {}
    specs.update(by_name)
    return [specs[n] for n in names]
