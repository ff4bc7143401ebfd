"""Psychometric instruments as data: items, response options, keys and bands.

Each instrument is one TOML file (read with :mod:`tomllib`) holding its
metadata, with the items inline (``[[items]]`` tables) or in a CSV named by
``items_file``, relative to the TOML file. The bundled instruments live in
``personae/measures/data`` and are read with :mod:`importlib.resources`; a user
adds one by writing a TOML file and passing its path to :func:`load_instrument`
or :func:`register_instrument`. See ``docs/instruments.md`` for the format.
"""

from __future__ import annotations

import csv
import io
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from personae.agents.persona import BIG_FIVE
from personae.errors import ConfigError

if TYPE_CHECKING:
    from personae.measures.scoring import Score

#: A custom scoring function: the instrument and its answers by item id, to scores.
Scorer = Callable[["Instrument", Mapping[str, "float | None"]], "list[Score]"]

#: An inclusive score band: (low, high, label).
Band = tuple[float, float, str]

_CSV_REQUIRED = ("item", "keyed", "text")
_CSV_OPTIONAL = ("domain", "facet")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Option(_Frozen):
    """One response option, e.g. ``Option(value=1, label="Very inaccurate")``."""

    value: int
    label: str = Field(min_length=1)


class Item(_Frozen):
    """One item.

    Args:
        id: The item number as a string, ``"1"`` to ``"120"`` for the IPIP-NEO-120.
        text: What the respondent rates, completing the instrument's stem.
        keyed: ``"+"`` scored as answered, ``"-"`` reverse scored.
        domain: The domain the item belongs to, if the instrument has domains.
        facet: The facet the item belongs to, if the instrument has facets.
    """

    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    keyed: Literal["+", "-"] = "+"
    domain: str | None = None
    facet: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("domain", "facet")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


class Scale(NamedTuple):
    """A scored scale: its level (domain, facet or total), name and item ids."""

    level: str
    scale: str
    items: tuple[str, ...]


class Instrument(_Frozen):
    """A questionnaire: items, response options, keys, scoring rule and bands.

    Args:
        name: Short identifier, e.g. ``"phq-9"``.
        title: Full title.
        citation: The reference to cite.
        licence: Provenance and terms of use.
        stem: The question each item completes.
        options: Response options in forward order, values strictly increasing.
        items: The items, in administration order.
        scoring: ``"mean"`` (IPIP) or ``"sum"`` (PHQ-9, GAD-7, PSS-10) of keyed values.
        bands: Per scale name, inclusive ``(low, high, label)`` bands in increasing order.
        max_missing: Items a sum-scored scale may miss and still be prorated
            (default: 20% of its items, see :func:`personae.measures.scoring.max_missing`).

    Raises:
        pydantic.ValidationError: A field is invalid; the message names it.

    Example:
        >>> phq = load_instrument("phq-9")
        >>> phq.min_value, phq.max_value, len(phq.items)
        (0, 3, 9)
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str = ""
    citation: str = ""
    licence: str = ""
    stem: str = ""
    options: tuple[Option, ...] = Field(min_length=2)
    items: tuple[Item, ...] = Field(min_length=1)
    scoring: Literal["mean", "sum"] = "mean"
    bands: dict[str, tuple[Band, ...]] = Field(default_factory=dict)
    max_missing: int | None = Field(default=None, ge=0)

    _by_id: dict[str, Item] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        values = [o.value for o in self.options]
        if any(b <= a for a, b in pairwise(values)):
            raise ValueError(f"options must be in strictly increasing order of value, got {values}")
        ids = [i.id for i in self.items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate item id(s) {duplicates}")
        names = {s.scale for s in self.scales()}
        for scale, bands in self.bands.items():
            if scale not in names:
                raise ValueError(
                    f"bands for unknown scale {scale!r}; scales are {', '.join(sorted(names))}"
                )
            for low, high, label in bands:
                if low > high:
                    raise ValueError(f"band {label!r} of {scale!r} has low {low} > high {high}")
            for (_, high, label), (low, _, nxt) in pairwise(bands):
                if low <= high:
                    raise ValueError(
                        f"bands of {scale!r} must increase without overlap: {label!r} ends at "
                        f"{high} but {nxt!r} starts at {low}"
                    )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._by_id = {i.id: i for i in self.items}

    def __hash__(self) -> int:
        # pydantic's frozen hash would fail on the bands dict; equal instruments share these.
        return hash((self.name, self.options, self.items, self.scoring))

    @property
    def min_value(self) -> int:
        """The lowest option value (0 for PHQ-9, 1 for IPIP)."""
        return self.options[0].value

    @property
    def max_value(self) -> int:
        """The highest option value (3 for PHQ-9, 5 for IPIP)."""
        return self.options[-1].value

    def item(self, id: str | int) -> Item:
        """The item with this id.

        Raises:
            ConfigError: No item has that id.
        """
        try:
            return self._by_id[str(id)]
        except KeyError:
            raise ConfigError(
                f"{self.name} has no item {id!r}; its items are "
                f"{self.items[0].id}..{self.items[-1].id}."
            ) from None

    def reverse(self, value: float) -> float:
        """The reverse-keyed value: ``min_value + max_value - value``."""
        return self.min_value + self.max_value - value

    def scales(self) -> tuple[Scale, ...]:
        """The scored scales: domains then facets, or one ``"total"`` scale.

        Instruments whose items name domains or facets are scored per domain
        (level ``"domain"``) and per facet (level ``"facet"``), in order of first
        appearance; the others have one scale, level ``"total"``, named after
        the instrument.

        Example:
            >>> [s.scale for s in load_instrument("ipip-neo-120").scales()][:5]
            ['neuroticism', 'extraversion', 'openness', 'agreeableness', 'conscientiousness']
        """
        return _layout(self.name, self.items)

    def subset(
        self,
        items: Iterable[str | int] | None = None,
        domains: Iterable[str] | None = None,
        facets: Iterable[str] | None = None,
    ) -> Instrument:
        """A copy holding only the named items, plus every item of the named domains and facets.

        Domains and facets match case-insensitively; Big Five domains may be
        given as letters (O C E A N). Items keep their order. Bands are kept
        only for scales that keep all their items (a PHQ-9 total of five items
        cannot be read against PHQ-9 bands).

        Raises:
            ConfigError: Nothing is selected, or an item, domain or facet is unknown
                (the message lists the valid ones).

        Example:
            >>> neo = load_instrument("ipip-neo-120")
            >>> len(neo.subset(domains=["N"]).items), len(neo.subset(facets=["anxiety"]).items)
            (24, 4)
        """
        wanted = [str(i) for i in items or ()]
        by_level = {"domain": list(domains or ()), "facet": list(facets or ())}
        if not wanted and not any(by_level.values()):
            raise ConfigError(f"subset of {self.name}: name items, domains or facets to keep.")
        unknown = [i for i in wanted if i not in self._by_id]
        if unknown:
            raise ConfigError(
                f"{self.name} has no item(s) {unknown}; valid ids are {', '.join(self._by_id)}."
            )
        keep = set(wanted)
        for level, names in by_level.items():
            if names:
                keep.update(self._select(level, names))
        selected = tuple(i for i in self.items if i.id in keep)
        if not selected:
            raise ConfigError(f"subset of {self.name}: the selection holds no items.")
        before = {s.scale: s.items for s in self.scales()}
        after = {s.scale: s.items for s in _layout(self.name, selected)}
        bands = {k: v for k, v in self.bands.items() if after.get(k) == before.get(k)}
        return Instrument.model_validate({**self.model_dump(), "items": selected, "bands": bands})

    def _select(self, level: str, names: list[str]) -> set[str]:
        known: dict[str, str] = {}
        for item in self.items:
            value = getattr(item, level)
            if value is not None:
                known[value.casefold()] = value
        if not known:
            raise ConfigError(f"{self.name} has no {level}s; its only scale is the total.")
        ids: set[str] = set()
        unknown = []
        for name in names:
            key = name.casefold()
            if level == "domain" and name.upper() in BIG_FIVE:
                key = BIG_FIVE[name.upper()]
            if key not in known:
                unknown.append(name)
                continue
            ids.update(i.id for i in self.items if getattr(i, level) == known[key])
        if unknown:
            raise ConfigError(
                f"{self.name} has no {level}(s) {unknown}; valid {level}s are "
                f"{', '.join(known.values())}."
            )
        return ids


def _layout(name: str, items: tuple[Item, ...]) -> tuple[Scale, ...]:
    layout: list[Scale] = []
    for level in ("domain", "facet"):
        groups: dict[str, list[str]] = {}
        for item in items:
            key = getattr(item, level)
            if key is not None:
                groups.setdefault(key, []).append(item.id)
        layout.extend(Scale(level, scale, tuple(ids)) for scale, ids in groups.items())
    if not layout:
        layout.append(Scale("total", name, tuple(i.id for i in items)))
    return tuple(layout)


# --- loading -------------------------------------------------------------------------------

_REGISTERED: dict[str, Instrument] = {}
_SCORERS: dict[str, Scorer] = {}


def _data_dir() -> Traversable:
    return files("personae.measures") / "data"


@cache
def _bundled_files() -> dict[str, str]:
    """Bundled instrument names to their TOML file names."""
    out: dict[str, str] = {}
    for entry in _data_dir().iterdir():
        if entry.name.endswith(".toml"):
            out[str(_read_toml(entry).get("name", entry.name))] = entry.name
    return dict(sorted(out.items()))


@cache
def _load_bundled(name: str) -> Instrument:
    return _parse(_data_dir(), _bundled_files()[name])


def list_instruments() -> list[str]:
    """Names of the bundled and registered instruments, sorted.

    Example:
        >>> list_instruments()[:4]
        ['gad-7', 'ipip-neo-120', 'phq-9', 'pss-10']
    """
    return sorted({*_bundled_files(), *_REGISTERED})


def load_instrument(name_or_path: str | os.PathLike[str]) -> Instrument:
    """The instrument with this name (registered, then bundled) or in this TOML file.

    Bundled instruments are parsed once and cached.

    Raises:
        ConfigError: The name is unknown (the message lists the known ones), or the
            file is missing or invalid (the message names the file and the problem).

    Example:
        >>> load_instrument("gad-7").title
        'Generalized Anxiety Disorder 7-item scale (GAD-7)'
    """
    text = os.fspath(name_or_path)
    if not isinstance(name_or_path, os.PathLike) and not text.endswith(".toml"):
        if text in _REGISTERED:
            return _REGISTERED[text]
        if text in _bundled_files():
            return _load_bundled(text)
        if not Path(text).is_file():
            raise ConfigError(
                f"unknown instrument {text!r}; known instruments are "
                f"{', '.join(list_instruments())}, or pass the path of a TOML file."
            )
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"instrument file {text} does not exist.")
    return _parse(path.parent, path.name)


def register_instrument(
    source: Instrument | str | os.PathLike[str],
    *,
    scorer: Scorer | None = None,
    replace: bool = False,
) -> Instrument:
    """Make an instrument loadable by name, optionally with its own scoring function.

    Args:
        source: An :class:`Instrument` or the path of its TOML file.
        scorer: Called as ``scorer(instrument, answers)`` by
            :func:`~personae.measures.scoring.score` (and per group by
            ``score_frame``) instead of the built-in mean/sum rules.
        replace: Allow replacing an instrument already known by that name.

    Returns:
        The registered instrument.

    Raises:
        ConfigError: The file is invalid, or the name is taken and ``replace`` is false.
    """
    instrument = source if isinstance(source, Instrument) else load_instrument(source)
    name = instrument.name
    if not replace and (name in _REGISTERED or name in _bundled_files()):
        raise ConfigError(
            f"an instrument named {name!r} is already known; pass replace=True to replace it."
        )
    _REGISTERED[name] = instrument
    if scorer is not None:
        _SCORERS[name] = scorer
    else:
        _SCORERS.pop(name, None)
    return instrument


def unregister_instrument(name: str) -> None:
    """Forget a registered instrument and its scorer (bundled ones stay)."""
    _REGISTERED.pop(name, None)
    _SCORERS.pop(name, None)


def scorer_for(name: str) -> Scorer | None:
    """The custom scoring function registered for this instrument name, if any."""
    return _SCORERS.get(name)


def _read_toml(entry: Traversable) -> dict[str, Any]:
    try:
        return tomllib.loads(entry.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{entry} is not valid TOML: {exc}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{entry} cannot be read: {exc}.") from None


def _parse(base: Traversable, filename: str) -> Instrument:
    entry = base / filename
    doc = _read_toml(entry)
    items_file = doc.pop("items_file", None)
    if items_file is not None:
        if "items" in doc:
            raise ConfigError(f"{entry}: give the items inline or in items_file, not both.")
        if not isinstance(items_file, str):
            raise ConfigError(f"{entry}: items_file must be a file name, got {items_file!r}.")
        doc["items"] = _read_items_csv(base / items_file, entry)
    elif "items" not in doc:
        raise ConfigError(f"{entry}: no items; add [[items]] tables or an items_file.")
    try:
        return Instrument.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'instrument'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{entry}: {problems}.") from None


def _read_items_csv(entry: Traversable, owner: Traversable) -> list[dict[str, Any]]:
    try:
        text = entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{owner}: items_file {entry} cannot be read: {exc}.") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in _CSV_REQUIRED if c not in header]
    extra = [c for c in header if c not in _CSV_REQUIRED + _CSV_OPTIONAL]
    if missing or extra:
        what = f"missing column(s) {missing}" if missing else f"unknown column(s) {extra}"
        raise ConfigError(
            f"{entry}: {what}; the header must have item, keyed, text and optionally domain, facet."
        )
    rows = []
    for row in reader:
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        where = f"{entry} line {reader.line_num} (item {values['item'] or '?'})"
        if not values["item"]:
            raise ConfigError(f"{where}: the item id is empty.")
        if values["keyed"] not in ("+", "-"):
            raise ConfigError(f"{where}: keyed must be '+' or '-', got {values['keyed']!r}.")
        if not values["text"]:
            raise ConfigError(f"{where}: the item has no text.")
        rows.append({"id": values["item"], **{k: v for k, v in values.items() if k != "item"}})
    return rows
