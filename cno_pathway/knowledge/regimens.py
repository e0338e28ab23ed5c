"""Doses as data (rules/regimens.yaml) and the arithmetic that turns mg/kg into mg.

A regimen carries what the source gives and nothing more: mg/kg (a range where the source gives
one), per day/dose/week, a maximum where stated, and the schedule as printed. With a weight the
amount is computed and capped at the maximum, and the cap is shown; without a weight, mg/kg only.
A regimen the sources give no dose for has no steps, and says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import RuleError
from .vocabulary import Vocabulary
from ..yamlio import read_document, short_label

UNITS = ("mg/kg",)
MAX_UNITS = ("mg",)
PERIODS = ("day", "dose", "week", "infusion")
_REGIMEN_KEYS = {"id", "therapy", "text", "steps", "cites"}
_STEP_KEYS = {"label", "dose", "unit", "per", "max", "max_unit", "max_per"}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Step:
    label: str
    mg_per_kg: tuple[float, float]     # [low, high]; equal when the source gives one value
    per: str
    max_mg: float | None
    line: int | None


@dataclass(frozen=True)
class Regimen:
    id: str
    therapy: str
    text: str
    steps: tuple[Step, ...]
    cites: tuple[str, ...]
    file: str
    line: int | None


@dataclass
class Regimens:
    by_id: dict[str, Regimen]
    source: str = ""

    def get(self, regimen_id: str) -> Regimen | None:
        return self.by_id.get(regimen_id)


def load_regimens(rules_dir: Path, vocabulary: Vocabulary) -> Regimens:
    path = Path(rules_dir) / "regimens.yaml"
    if not path.exists():
        return Regimens({}, "")
    doc = read_document(path, error=RuleError, label=short_label(path))

    def fail(message, p, rid=None):
        raise RuleError(message, file=doc.source, line=doc.line(p), field=rid and f"regimen {rid}")

    if not isinstance(doc.data, list):
        fail("regimens.yaml is a list of regimens", ())
    out: dict[str, Regimen] = {}
    for i, raw in enumerate(doc.data):
        p = (i,)
        if not isinstance(raw, dict):
            fail("a regimen is a mapping with id, therapy, text, steps, cites", p)
        rid = raw.get("id")
        if not isinstance(rid, str) or not _ID.match(rid):
            fail(f"regimen id {rid!r} is malformed (lowercase words joined by '-')", p + ("id",))
        for key in raw:
            if key not in _REGIMEN_KEYS:
                fail(f"unknown key {key!r} (allowed: {', '.join(sorted(_REGIMEN_KEYS))})", p + (key,), rid)
        if rid in out:
            fail(f"duplicate regimen id {rid!r}", p + ("id",), rid)
        therapy = raw.get("therapy")
        try:
            therapy = vocabulary.match("therapies", therapy if isinstance(therapy, str) else "")
        except ValueError as exc:
            fail(str(exc), p + ("therapy",), rid)
        text = raw.get("text")
        if not isinstance(text, str) or not text.strip():
            fail("text (the schedule as the source gives it) is required", p + ("text",), rid)
        cites = raw.get("cites", [])
        if not isinstance(cites, list) or not all(isinstance(c, str) for c in cites):
            fail("cites must list the findings that give this regimen", p + ("cites",), rid)
        if raw.get("steps") and not cites:  # a dose without its passage never reaches a consult
            fail("a regimen with doses must cite the findings that give them", p + ("cites",), rid)
        if not isinstance(raw.get("steps") or [], list):
            fail("steps must be a list of doses", p + ("steps",), rid)
        steps = []
        for j, s in enumerate(raw.get("steps") or []):
            sp = p + ("steps", j)
            if not isinstance(s, dict):
                fail("a step is a mapping with label, dose, unit, per", sp, rid)
            for key in s:
                if key not in _STEP_KEYS:
                    fail(f"unknown key {key!r} in a step (allowed: {', '.join(sorted(_STEP_KEYS))})",
                         sp + (key,), rid)
            dose = s.get("dose")
            low_high = dose if isinstance(dose, list) else [dose]
            if len(low_high) == 1:
                low_high = low_high * 2
            if (len(low_high) != 2 or not all(_number(v) for v in low_high)
                    or low_high[0] > low_high[1] or low_high[0] <= 0):
                fail("dose must be a positive number or a range [low, high]", sp + ("dose",), rid)
            if s.get("unit") not in UNITS:
                fail(f"unit must be one of {', '.join(UNITS)} (got {s.get('unit')!r})", sp + ("unit",), rid)
            if s.get("per") not in PERIODS:
                fail(f"per must be one of {', '.join(PERIODS)} (got {s.get('per')!r})", sp + ("per",), rid)
            max_mg = s.get("max")
            if max_mg is not None:
                if not _number(max_mg) or max_mg <= 0:
                    fail("max must be a positive number", sp + ("max",), rid)
                if s.get("max_unit") not in MAX_UNITS:
                    fail(f"max_unit must be one of {', '.join(MAX_UNITS)}", sp + ("max_unit",), rid)
                if s.get("max_per", s.get("per")) != s.get("per"):
                    fail("max_per must equal per: a maximum per another period is not computed",
                         sp + ("max_per",), rid)
            label = s.get("label")
            if not isinstance(label, str) or not label:
                fail("each step needs a label (e.g. 'daily', 'day 1')", sp + ("label",), rid)
            steps.append(Step(label=label, mg_per_kg=(float(low_high[0]), float(low_high[1])),
                              per=s["per"], max_mg=None if max_mg is None else float(max_mg),
                              line=doc.line(sp)))
        out[rid] = Regimen(id=rid, therapy=therapy, text=text.strip(), steps=tuple(steps),
                           cites=tuple(cites), file=doc.source, line=doc.line(p))
    return Regimens(out, doc.source)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def compute_step(step: Step, weight_kg: float | None) -> dict:
    """One step as the consult shows it: mg/kg, and mg for this weight capped at the maximum."""
    computed = None
    capped = False
    if weight_kg is not None:
        amounts = []
        for per_kg in step.mg_per_kg:
            amount = round(per_kg * weight_kg, 1)
            if step.max_mg is not None and amount > step.max_mg:
                amount, capped = step.max_mg, True
            amounts.append(amount)
        computed = amounts
    return {"label": step.label, "mg_per_kg": list(step.mg_per_kg), "per": step.per,
            "max_mg": step.max_mg, "computed_mg": computed, "capped": capped}
