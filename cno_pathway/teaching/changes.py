"""What changed between two consults: stages gained or lost, suggestions new, dropped or changed.

Used by the step-by-step demo (one treatment added) and by what-if (one profile edited). A
suggestion is the same when the same rule gives it. When a rule stops and another starts giving
the same therapy with another kind on the recommend / consider / avoid scale, or another grade,
that is one *changed* suggestion, not a dropped one and a new one. A suggestion from the same
rule is also *changed* when what it says for this patient differs: the regimen, the doses (a new
weight gives other mg, or hits a cap) or its notes (issue 15: a weight change is a difference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..consult.consult import Consult, Suggestion
from ..wording import plain_number

NEW, DROPPED, CHANGED, SAME = "new", "dropped", "changed", "same"
MARKS = {NEW: "+", DROPPED: "-", CHANGED: "~", SAME: " "}
SCALE = ("recommend", "consider", "avoid")   # the kinds that say how strongly to use a therapy


@dataclass(frozen=True)
class Change:
    status: str                      # new | dropped | changed | same
    before: Suggestion | None
    after: Suggestion | None
    what: tuple[str, ...] = ()       # for changed: "kind", "grade", "rule", "regimen", "dose", "notes"

    @property
    def mark(self) -> str:
        return MARKS[self.status]

    @property
    def dose_before(self) -> str | None:
        return dose_summary(self.before)

    @property
    def dose_after(self) -> str | None:
        return dose_summary(self.after)

    @property
    def current(self) -> Suggestion:
        """The suggestion as it stands now (the earlier one for a dropped suggestion)."""
        return self.after if self.after is not None else self.before

    def to_json(self) -> dict:
        return {"status": self.status, "rule": self.current.rule,
                "therapy": self.current.therapy,
                "before": _brief(self.before), "after": _brief(self.after),
                "changed": list(self.what)}


def _brief(s: Suggestion | None) -> dict | None:
    return None if s is None else {"rule": s.rule, "kind": s.kind, "grade": s.grade,
                                   "regimen": _regimen_id(s), "dose": dose_summary(s),
                                   "notes": list(getattr(s, "notes", ()))}


def _span(values) -> str:
    low, high = min(values), max(values)
    return plain_number(low) if low == high else f"{plain_number(low)}-{plain_number(high)}"


def dose_summary(s: Suggestion | None) -> str | None:
    """'daily: 320-480 mg per day' (mg for the weight, else mg/kg; '(capped)' at a maximum),
    one part per step; None without a regimen that has steps."""
    regimen = getattr(s, "regimen", None)
    if not regimen or not regimen.get("steps"):
        return None
    parts = []
    for step in regimen["steps"]:
        amount = (f"{_span(step['computed_mg'])} mg" if step.get("computed_mg")
                  else f"{_span(step['mg_per_kg'])} mg/kg")
        capped = " (capped at the maximum)" if step.get("capped") else ""
        parts.append(f"{step['label']}: {amount} per {step['per']}{capped}")
    return "; ".join(parts)


@dataclass
class Changes:
    stages_added: list[str] = field(default_factory=list)
    stages_removed: list[str] = field(default_factory=list)
    stage_labels: dict[str, str] = field(default_factory=dict)
    items: list[Change] = field(default_factory=list)   # after's order, then the dropped ones

    @property
    def added_labels(self) -> list[str]:
        return [self.stage_labels.get(s, s) for s in self.stages_added]

    @property
    def removed_labels(self) -> list[str]:
        return [self.stage_labels.get(s, s) for s in self.stages_removed]

    def of(self, status: str) -> list[Change]:
        return [c for c in self.items if c.status == status]

    @property
    def new(self) -> list[Change]:
        return self.of(NEW)

    @property
    def dropped(self) -> list[Change]:
        return self.of(DROPPED)

    @property
    def changed(self) -> list[Change]:
        return self.of(CHANGED)

    @property
    def same(self) -> list[Change]:
        return self.of(SAME)

    @property
    def any(self) -> bool:
        return bool(self.stages_added or self.stages_removed
                    or any(c.status != SAME for c in self.items))

    def to_json(self) -> dict:
        return {"stages_added": self.stages_added, "stages_removed": self.stages_removed,
                "suggestions": [c.to_json() for c in self.items if c.status != SAME]}


def _regimen_id(s: Suggestion):
    regimen = getattr(s, "regimen", None)
    return regimen["id"] if regimen else None


def _what(before: Suggestion, after: Suggestion) -> tuple[str, ...]:
    return tuple(name for name, a, b in (("kind", before.kind, after.kind),
                                         ("grade", before.grade, after.grade),
                                         ("rule", before.rule, after.rule),
                                         ("regimen", _regimen_id(before), _regimen_id(after)),
                                         ("dose", dose_summary(before), dose_summary(after)),
                                         ("notes", list(getattr(before, "notes", ())),
                                          list(getattr(after, "notes", ())))) if a != b)


def _comparable(before: Suggestion, after: Suggestion) -> bool:
    """Two rules' suggestions of one therapy are one changed suggestion when they move it along
    the recommend / consider / avoid scale, or keep the kind but change the grade."""
    if before.kind == after.kind:
        return before.grade != after.grade
    return before.kind in SCALE and after.kind in SCALE


def compare(before: Consult | None, after: Consult) -> Changes:
    """The changes from `before` to `after`; with no `before`, every suggestion is new."""
    old = list(before.suggestions) if before is not None else []
    old_stage = list(before.stage) if before is not None else []
    labels = dict(zip(after.stage, after.stage_labels))
    if before is not None:
        labels.update(zip(before.stage, before.stage_labels))
    matched: dict[int, Suggestion] = {}   # index in after -> its earlier suggestion
    unused = list(old)
    for index, s in enumerate(after.suggestions):           # the same rule
        for o in unused:
            if o.rule == s.rule:
                matched[index] = o
                unused.remove(o)
                break
    for index, s in enumerate(after.suggestions):           # the same therapy, another rule
        if index in matched or s.therapy is None:
            continue
        for o in unused:
            if o.therapy == s.therapy and _comparable(o, s):
                matched[index] = o
                unused.remove(o)
                break
    items = []
    for index, s in enumerate(after.suggestions):
        o = matched.get(index)
        if o is None:
            items.append(Change(NEW, None, s))
        else:
            what = _what(o, s)
            items.append(Change(CHANGED if what else SAME, o, s, what))
    items.extend(Change(DROPPED, o, None) for o in unused)
    return Changes(stages_added=[s for s in after.stage if s not in old_stage],
                   stages_removed=[s for s in old_stage if s not in after.stage],
                   stage_labels=labels, items=items)
