"""The checks of the profile contract that a type cannot say: vocabulary words and contradictions.

Plain functions, free of pydantic, so the same objects run under the pydantic declaration
(contract.py) and under the stored schema the consult validates with (profile.py). The stored
schema names them as data (`spec`), and `revive` turns such a name back into one of these
objects, never into anything else.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..wording import plain_number
from ..yamlio import bounded


def _vocab(info):
    context = info.context or {}
    if "vocabulary" not in context:
        raise RuntimeError("PatientProfile must be validated with context={'vocabulary': ...}")
    return context["vocabulary"]


def _match(kind: str, value: Any, info) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text, one of: {', '.join(_vocab(info).values(kind))}")
    return _vocab(info).match(kind, value)


def _match_list(kind: str, values: Any, info) -> list[str]:
    if not isinstance(values, (list, tuple)):
        raise ValueError("must be a list")
    names = [_match(kind, v, info) for v in values]
    if len(set(names)) < len(names):
        twice = [n for n, c in Counter(names).items() if c > 1]
        raise ValueError(f"{bounded(twice[0])} is listed twice")
    return names


class VocabularyCheck:
    """A word (or a list of words, or an absent word) of one vocabulary kind, matched forgivingly
    to its canonical name; runs before the type check of the field."""

    __slots__ = ("kind", "many", "nullable")

    def __init__(self, kind: str, *, many: bool = False, nullable: bool = False):
        self.kind, self.many, self.nullable = kind, many, nullable

    def __call__(self, value: Any, info):
        if value is None and self.nullable:
            return None
        return _match_list(self.kind, value, info) if self.many else _match(self.kind, value, info)

    def spec(self) -> dict:
        return {"check": "vocabulary", "kind": self.kind, "many": self.many, "nullable": self.nullable}

    def __eq__(self, other):
        return isinstance(other, VocabularyCheck) and self.spec() == other.spec()

    def __hash__(self):
        return hash((self.kind, self.many, self.nullable))

    def __repr__(self):
        return f"VocabularyCheck({self.kind!r}, many={self.many}, nullable={self.nullable})"


class Contradiction(ValueError):
    """Two fields that cannot both be true; names the field the message is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def consistent(profile):
    """Contradictions are errors, not guesses (runs on the validated profile)."""
    lesions = profile.lesions
    if len(lesions.sites) > lesions.count:
        raise Contradiction("lesions.sites", f"{len(lesions.sites)} sites listed but "
                            f"lesions.count is {lesions.count}")
    if lesions.vertebral_fracture and "vertebra" not in lesions.sites:
        raise Contradiction("lesions.vertebral_fracture",
                            "a vertebral fracture needs 'vertebra' in lesions.sites")
    if profile.age_at_onset_years is not None and profile.age_at_onset_years > profile.age_years:
        raise Contradiction("age_at_onset_years",
                            f"onset at {plain_number(profile.age_at_onset_years)} is after "
                            f"the current age {plain_number(profile.age_years)}")
    ongoing = Counter(t.drug for t in profile.treatments if t.ongoing)
    for index, treatment in enumerate(profile.treatments):
        if treatment.ongoing and ongoing[treatment.drug] > 1:
            raise Contradiction(f"treatments[{index}].ongoing",
                                f"{treatment.drug} is listed twice as ongoing")
    return profile


def spec(function) -> dict:
    """A check as data, for the stored schema; anything else cannot be stored."""
    if isinstance(function, VocabularyCheck):
        return function.spec()
    if function is consistent:
        return {"check": "consistent"}
    raise TypeError(f"{function!r} is not one of the profile checks: the stored schema holds only "
                    "checks of patient/checks.py (write a new one there)")


def revive(data: dict):
    """The check a stored spec names (only the checks of this module)."""
    if data == {"check": "consistent"}:
        return consistent
    if data.get("check") == "vocabulary" and set(data) == {"check", "kind", "many", "nullable"}:
        return VocabularyCheck(str(data["kind"]), many=data["many"] is True,
                               nullable=data["nullable"] is True)
    raise ValueError(f"the stored profile schema names an unknown check: {data!r}")
