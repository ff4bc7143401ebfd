"""The HTML report: one page per database, a section per analysis that has rows in it.

- :mod:`personae.report.html`: the building blocks (:class:`Section`, tables,
  figures, paragraphs, the style), at the bottom: every study's report uses them.
- :mod:`personae.report.sections`: the generic sections (experiments, trait
  drift, measurement quality).
- :mod:`personae.report.page`: :func:`write_report`, which assembles the page.

The default list of sections, :data:`SECTIONS`, is assembled by
:mod:`personae.studies` (generic sections, then each study's) and looked up on
first use: importing this package imports no study.
"""

from personae.report.html import Section, SectionBuilder
from personae.report.page import default_sections, write_report
from personae.report.sections import GENERIC_SECTIONS

__all__ = [
    "GENERIC_SECTIONS",
    "SECTIONS",
    "Section",
    "SectionBuilder",
    "default_sections",
    "write_report",
]


def __getattr__(name: str) -> object:
    if name == "SECTIONS":
        return default_sections()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
