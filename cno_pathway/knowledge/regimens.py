"""Doses as data (rules/regimens.yaml) and the arithmetic that turns mg/kg into mg.

A regimen carries what the source gives and nothing more: mg/kg (a range where the source gives
one), per day/dose/week, a maximum where stated, the schedule as printed, and the population the
dose was given to (`population`, checked against the cited sources). With a weight the amount is
computed and capped at the lowest maximum known (the source's or the local formulary's), and the
cap is shown with its source; a figure no maximum bounds says it is uncapped. Without a weight,
mg/kg only. For an adult, no amount is computed from a regimen given to children: mg/kg is shown
for reference only. A regimen the sources give no dose for has no steps, and says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import RuleError
from .factschema import ADULT_AGE
from .vocabulary import Vocabulary
from ..yamlio import read_document, short_label

UNITS = ("mg/kg",)
MAX_UNITS = ("mg",)
PERIODS = ("day", "dose", "week", "infusion")
POPULATIONS = ("pediatric", "adult", "mixed")   # as the evidence library's sources name them
# rulebook.yaml messages an adult's consult shows instead of a figure (dose_plan's not_computed)
ADULT_MESSAGES = {"adult": "adult_dose", "adult_uncapped": "adult_dose_uncapped"}
_REGIMEN_KEYS = {"id", "therapy", "text", "steps", "cites", "population"}
_STEP_KEYS = {"label", "dose", "unit", "per", "max", "max_unit", "max_per"}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Step:
    """One step of a regimen: its mg/kg range (one value: equal ends), per what, its maximum."""

    label: str
    mg_per_kg: tuple[float, float]     # [low, high]; equal when the source gives one value
    per: str
    max_mg: float | None
    line: int | None


@dataclass(frozen=True)
class Regimen:
    """A dosing regimen of regimens.yaml, with the passages it cites."""

    id: str
    therapy: str
    text: str
    steps: tuple[Step, ...]
    cites: tuple[str, ...]
    file: str
    line: int | None
    population: str | None = None      # who the source gave the dose to; None without steps

    @property
    def for_adults(self) -> bool:
        """Whether the source's patients included adults (a dose may then be computed for one)."""
        return self.population in ("adult", "mixed")


@dataclass
class Regimens:
    """Every regimen of the rule base, by id."""

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
        population = raw.get("population")
        if population is not None and population not in POPULATIONS:
            fail(f"population must be one of {', '.join(POPULATIONS)} (got {population!r})",
                 p + ("population",), rid)
        if raw.get("steps") and population is None:  # who the dose was given to decides who gets mg
            fail(f"a regimen with doses must say which population the source gave them to "
                 f"(population: {' | '.join(POPULATIONS)})", p, rid)
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
                           cites=tuple(cites), file=doc.source, line=doc.line(p),
                           population=population)
    return Regimens(out, doc.source)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def population_problems(regimens: Regimens, population_of) -> list[tuple[Regimen, str]]:
    """A regimen's `population` must be that of the sources it cites (`population_of(cite)`):
    the same one when they agree, `mixed` when they differ. The field is data traced to the
    sources, so a dose is never computed for a population its source did not treat."""
    out = []
    for regimen in regimens.by_id.values():
        if regimen.population is None or not regimen.cites:
            continue
        cited = {population_of(cite) for cite in regimen.cites}
        expected = cited.pop() if len(cited) == 1 else "mixed"
        if regimen.population != expected:
            out.append((regimen, f"population {regimen.population!r} is not that of the cited "
                                 f"sources ({expected})"))
    return out


def is_adult(age_years: float | None) -> bool:
    return age_years is not None and age_years >= ADULT_AGE


def dose_plan(regimen: Regimen, weight_kg: float | None, age_years: float | None,
              formulary=None) -> dict:
    """The regimen as the consult shows it (the JSON contract's `regimen`, less id and where).

    `not_computed` says why a mg figure is missing: "no_weight"; "adult" (an adult, and a
    regimen the source gave to children only); "adult_uncapped" (an adult, and a step no
    maximum bounds); None when every step is computed.
    """
    adult = is_adult(age_years)
    steps = []
    for step in regimen.steps:
        limit = formulary.maximum(regimen.therapy, step.per) if formulary is not None else None
        steps.append(compute_step(step, weight_kg, formulary_max=limit,
                                  adults=regimen.for_adults, adult=adult))
    if not regimen.steps:
        reason = None
    elif weight_kg is None:
        reason = "no_weight"
    elif adult and not regimen.for_adults:
        reason = "adult"
    elif adult and any(s["computed_mg"] is None for s in steps):
        reason = "adult_uncapped"
    else:
        reason = None
    return {"text": regimen.text, "population": regimen.population, "steps": steps,
            "weight_kg": weight_kg if regimen.steps else None, "not_computed": reason,
            "formulary": formulary.describe() if formulary is not None and regimen.steps else None}


def compute_step(step: Step, weight_kg: float | None, *, formulary_max=None,
                 adults: bool = False, adult: bool = False) -> dict:
    """One step as the consult shows it: mg/kg, and mg for this weight capped at the lowest
    maximum known (the source's, or the local formulary's `formulary_max`).

    For an adult (`adult`) nothing is computed unless the regimen was given to adults
    (`adults`) and a maximum bounds the figure: an adult dose is never computed uncapped.
    """
    cap = None
    if step.max_mg is not None:
        cap = {"max_mg": step.max_mg, "per": step.per, "source": "regimen",
               "reference": None, "where": None}
    if formulary_max is not None and (cap is None or formulary_max.max_mg < cap["max_mg"]):
        cap = {"max_mg": formulary_max.max_mg, "per": step.per, "source": "formulary",
               "reference": formulary_max.reference, "where": formulary_max.where}
    computed = None
    capped = False
    if weight_kg is not None and not (adult and (not adults or cap is None)):
        amounts = []
        for per_kg in step.mg_per_kg:
            amount = round(per_kg * weight_kg, 1)
            if cap is not None and amount > cap["max_mg"]:
                amount, capped = cap["max_mg"], True
            amounts.append(amount)
        computed = amounts
    return {"label": step.label, "mg_per_kg": list(step.mg_per_kg), "per": step.per,
            "max_mg": step.max_mg,
            "formulary_max": None if formulary_max is None else {
                "max_mg": formulary_max.max_mg, "reference": formulary_max.reference,
                "where": formulary_max.where},
            "computed_mg": computed, "capped": capped, "cap": cap,
            "uncapped": computed is not None and cap is None}
