"""The profile contract's core schema as data: what `make profile-schema` writes to
profile_schema.json, so a consult validates without building the pydantic models.

The schema is the one pydantic builds from contract.py (the documented `__pydantic_core_schema__`
of the model), translated without interpretation: model classes become their names, the checks
of checks.py their specs, default sub-models their data; pydantic's metadata (for JSON Schema
generation) and its reference ids are left out. Anything else that is not data stops the
translation with an error, rather than being stored wrong.

Run `python -m cno_pathway.patient.stored_schema` (or `make profile-schema`) after changing
contract.py; tests/test_profile_schema.py fails until then.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

HERE = Path(__file__).parent
SCHEMA_FILE = HERE / "profile_schema.json"
SOURCES = ("contract.py",)
RECORD = "$record"


def sources_digest() -> str:
    """A fingerprint of the declaration the stored schema was made from (contract.py): profile.py
    builds from the declaration instead when they no longer match. A change detector, not a
    seal (the stored file sits beside the code, as trusted as it): CRC-32 and length, because
    hashlib's import alone would cost a consult 2 ms. checks.py is not part of it: the stored
    schema names its checks, which run as they are today (and a spec it no longer knows is
    refused, so the declaration is used). The pydantic-core version is part of it: another
    release may build or read a core schema differently, so its stored form is not trusted."""
    import pydantic_core

    parts = [f"pydantic-core:{pydantic_core.__version__}"]
    for name in SOURCES:
        text = (HERE / name).read_bytes().replace(b"\r\n", b"\n")
        parts.append(f"{name}:{len(text)}:{zlib.crc32(text):08x}")
    return " ".join(parts)


def build() -> dict:
    """The stored form: the digest of its sources and the core schema as plain data."""
    from pydantic import BaseModel

    from . import checks
    from .contract import MODELS, PatientProfile

    models = {model: model.__name__ for model in MODELS}

    def convert(value, key=None):
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in ("metadata", "ref"):
                    continue
                if k == "type" and v in ("definitions", "definition-ref"):
                    raise TypeError("the profile schema uses references: store them first")
                out[k] = convert(v, k)
            return out
        if isinstance(value, list):
            return [convert(v) for v in value]
        if key == "cls":
            if value not in models:
                raise TypeError(f"{value!r} is not a profile model (contract.MODELS)")
            return models[value]
        if key == "function" and callable(value):
            return checks.spec(value)
        if isinstance(value, BaseModel):
            if type(value) not in models:
                raise TypeError(f"{value!r} is not a profile model (contract.MODELS)")
            return {RECORD: models[type(value)], "data": value.model_dump(mode="json")}
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        raise TypeError(f"{value!r} (under {key!r}) cannot be stored as data")

    return {"about": "generated from cno_pathway/patient/contract.py by `make profile-schema`; "
                     "do not edit",
            "sources": sources_digest(),
            "schema": convert(PatientProfile.__pydantic_core_schema__)}


def render() -> str:
    import json

    return json.dumps(build(), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        stale = not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text(encoding="utf-8") != text
        if stale:
            print(f"{SCHEMA_FILE} is out of date: run make profile-schema", file=sys.stderr)
        return 1 if stale else 0
    SCHEMA_FILE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
