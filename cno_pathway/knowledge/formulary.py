"""A local formulary: the per-drug maximum doses a hospital sets, each with its own reference.

The sources' regimens rarely state a maximum, so a computed mg figure is often unbounded. A
hospital keeps its maxima in a YAML file (given with `--formulary FILE`, or `formulary.yaml`
beside the rules); the consult caps a computed figure at the lowest maximum known and cites
the formulary's reference when that one applies. The file is read strictly: anything the
hospital wrote that cannot be honoured is an error naming file:line, never a silent skip.

    name: Example Children's Hospital formulary, 2026 edition
    maxima:
      - drug: prednisolone
        max_mg: 60
        per: day
        reference: Hospital formulary, section 4.2 (the hospital's own source for the figure)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..yamlio import read_document
from .regimens import PERIODS
from .rulebook import FORMULARY_FILE, find_formulary  # noqa: F401 (find_formulary: its home was here)
from .vocabulary import Vocabulary, canonical

_TOP_KEYS = ("name", "maxima")
_ENTRY_KEYS = ("drug", "max_mg", "per", "reference")


class FormularyError(InputError):
    """A formulary file that does not parse or does not validate (exit 2)."""


@dataclass(frozen=True)
class Maximum:
    """A hospital's maximum dose of one drug, with its reference."""

    drug: str
    max_mg: float
    per: str
    reference: str
    where: str           # file:line of the entry, so a reader can find the hospital's figure


@dataclass(frozen=True)
class Formulary:
    """A local formulary: the maximum doses computed doses are capped at."""

    name: str
    file: str
    maxima: dict[tuple[str, str], Maximum]     # (drug, per) -> the maximum

    def maximum(self, drug: str, per: str) -> Maximum | None:
        return self.maxima.get((drug, per))

    def describe(self) -> dict:
        return {"name": self.name, "file": self.file}


def load_formulary(path: Path | str, vocabulary: Vocabulary) -> Formulary:
    doc = read_document(path, error=FormularyError)

    def fail(message, p=(), field=None):
        raise FormularyError(message, file=doc.source, line=doc.line(p), field=field)

    data = doc.data
    if not isinstance(data, dict):
        fail("a formulary is a mapping with `name` and `maxima` (a list of per-drug maxima)")
    for key in data:
        if key not in _TOP_KEYS:
            fail(f"unknown key {key!r} (allowed: {', '.join(_TOP_KEYS)})", (key,))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        fail("name (the formulary's title, shown in every consult that uses it) is required",
             ("name",))
    entries = data.get("maxima")
    if not isinstance(entries, list) or not entries:
        fail("maxima must be a non-empty list of {drug, max_mg, per, reference}", ("maxima",))
    drugs = sorted(vocabulary.drug_to_class)
    maxima: dict[tuple[str, str], Maximum] = {}
    for i, raw in enumerate(entries):
        p = ("maxima", i)
        where = f"maxima[{i}]"
        if not isinstance(raw, dict):
            fail("an entry is a mapping with drug, max_mg, per, reference", p, where)
        for key in raw:
            if key not in _ENTRY_KEYS:
                fail(f"unknown key {key!r} (allowed: {', '.join(_ENTRY_KEYS)})", p + (key,),
                     f"{where}.{key}")
        for key in _ENTRY_KEYS:
            if key not in raw:
                fail(f"{key} is required", p, where)
        drug = raw["drug"]
        name_ = canonical(drug) if isinstance(drug, str) else ""
        if name_ in vocabulary.drug_classes:
            fail(f"{drug!r} is a drug class: a maximum is per drug (one of {', '.join(drugs)})",
                 p + ("drug",), f"{where}.drug")
        if name_ not in vocabulary.drug_to_class:
            import difflib  # only for a message: not imported at every start

            close = difflib.get_close_matches(name_, drugs, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            fail(f"unknown drug {drug!r}{hint} (allowed: {', '.join(drugs)})", p + ("drug",),
                 f"{where}.drug")
        drug = name_
        max_mg = raw["max_mg"]
        if not _number(max_mg) or max_mg <= 0:
            fail(f"max_mg must be a positive number of mg (got {max_mg!r})", p + ("max_mg",),
                 f"{where}.max_mg")
        per = raw["per"]
        if per not in PERIODS:
            fail(f"per must be one of {', '.join(PERIODS)} (got {per!r})", p + ("per",),
                 f"{where}.per")
        reference = raw["reference"]
        if not isinstance(reference, str) or not reference.strip():
            fail("reference (the hospital's source for this maximum) must be non-empty text",
                 p + ("reference",), f"{where}.reference")
        if (drug, per) in maxima:
            fail(f"a second maximum for {drug} per {per} (first at {maxima[(drug, per)].where})",
                 p, where)
        maxima[(drug, per)] = Maximum(drug=drug, max_mg=float(max_mg), per=per,
                                      reference=" ".join(reference.split()),
                                      where=f"{doc.source}:{doc.line(p)}")
    return Formulary(name=" ".join(name.split()), file=doc.source, maxima=maxima)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
