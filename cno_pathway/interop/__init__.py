"""Interoperability: FHIR R4 intake, the CDS Hooks service, its feedback store and the web form.

This package sits above the consult and below the command line. Importing it is cheap: the FHIR
models, FastAPI and uvicorn are imported only by the functions that need them. Importing it
also registers the FHIR Bundle reader with patient intake (the intake layer sits below this one
and cannot import it), so every route that reads a profile reads a Bundle too.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date

from ..patient import intake as _intake

# The day a Bundle's ages and treatment months are counted to, when the command line fixes it
# (--as-of); unset, they are counted to today. A context variable, because the intake layer
# that calls the Bundle reader knows nothing of FHIR.
_AS_OF: ContextVar[date | None] = ContextVar("cno_pathway_fhir_as_of", default=None)


def reading_day() -> date | None:
    return _AS_OF.get()


@contextmanager
def reading_as_of(day: date | None):
    """Read every Bundle inside the block as of `day` (None: today)."""
    token = _AS_OF.set(day)
    try:
        yield
    finally:
        _AS_OF.reset(token)


def _read_bundle(data, vocabulary, *, source=None):
    from .fhir import profile_from_bundle

    return profile_from_bundle(data, vocabulary, source=source)


_intake.register_bundle_reader(_read_bundle)
