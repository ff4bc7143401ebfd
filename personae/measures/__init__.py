"""Psychometric instruments, their scoring and reliability statistics.

Instruments are data (TOML plus CSV item banks shipped with the package); the
scoring and reliability functions are pure and take polars frames. The
statistics libraries (pingouin, statsmodels, scipy) are imported inside the
functions that need them, so importing this package stays cheap.

Example:
    >>> from personae.measures import load_instrument, score
    >>> phq = load_instrument("phq-9")
    >>> score(phq, {str(i): 2 for i in range(1, 10)})[0].band
    'moderately severe'
"""

from personae.measures.instruments import (
    Instrument,
    Item,
    Option,
    Scale,
    Scorer,
    list_instruments,
    load_instrument,
    register_instrument,
    unregister_instrument,
)
from personae.measures.reliability import (
    Coefficient,
    cronbach_alpha,
    icc,
    omega_total,
    option_order_asymmetry,
    prompt_variant_contrasts,
    prompt_variant_sensitivity,
    refusal_rate,
    reliability,
)
from personae.measures.scoring import Score, band_of, score, score_frame

__all__ = [
    "Coefficient",
    "Instrument",
    "Item",
    "Option",
    "Scale",
    "Score",
    "Scorer",
    "band_of",
    "cronbach_alpha",
    "icc",
    "list_instruments",
    "load_instrument",
    "omega_total",
    "option_order_asymmetry",
    "prompt_variant_contrasts",
    "prompt_variant_sensitivity",
    "refusal_rate",
    "register_instrument",
    "reliability",
    "score",
    "score_frame",
    "unregister_instrument",
]
