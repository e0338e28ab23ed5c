"""Interoperability: FHIR R4 intake, the CDS Hooks service, its feedback store and the web form.

This package sits above the consult and below the command line. Importing it is cheap: the FHIR
models, FastAPI and uvicorn are imported only by the functions that need them. Importing it
also registers the FHIR Bundle reader with patient intake (the intake layer sits below this one
and cannot import it), so every route that reads a profile reads a Bundle too.
"""

from __future__ import annotations

from ..patient import intake as _intake


def _read_bundle(data, vocabulary, *, source=None):
    from .fhir import profile_from_bundle

    return profile_from_bundle(data, vocabulary, source=source)


_intake.register_bundle_reader(_read_bundle)
