"""Gap and conflict search: a grid of profiles over the variables that matter.

Every profile of the grid must get at least one suggestion, and no profile may get two
suggestions of opposite kind (recommend and avoid) for the same therapy. The grid is built from
the vocabulary and a list of treatment histories along the pathway; it names drug classes and
responses, never doses or thresholds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..engine.evaluation import reference_evaluate
from ..patient.facts import derive_facts
from ..patient.profile import validate_profile
from ..knowledge.rulebook import Rule, RuleBook
from ..knowledge.vocabulary import Vocabulary

_OPPOSED = {frozenset(("recommend", "avoid")): "error", frozenset(("consider", "avoid")): "warning"}
OPPOSABLE_KINDS = frozenset(kind for pair in _OPPOSED for kind in pair)


def same_therapy(a: str | None, b: str | None, vocabulary: Vocabulary) -> bool:
    """One therapy, or a drug and its own class (avoid TNF inhibitors vs recommend etanercept).
    Two drugs of one class are not the same: switching within a class is a choice of its own."""
    if not a or not b:
        return False
    return a == b or vocabulary.class_of(a) == b or vocabulary.class_of(b) == a


def opposed(a: Rule, b: Rule, vocabulary: Vocabulary) -> str | None:
    """'error' for recommend vs avoid of one therapy, 'warning' for consider vs avoid, else None."""
    if a.suggest is None or b.suggest is None:
        return None
    level = _OPPOSED.get(frozenset((a.suggest.kind, b.suggest.kind)))
    return level if level and same_therapy(a.suggest.therapy, b.suggest.therapy, vocabulary) else None


def histories(book: RuleBook) -> list[tuple[str, list[dict]]]:
    """Treatment histories along the pathway. Drugs are each class's first drug in the
    vocabulary, and trial lengths come from its adequate_trial_months (a failed trial lasts
    exactly that long, a too-short one half of it), so no threshold is written here."""
    classes = book.vocabulary.drug_classes

    def t(cls, response, *, short=False, **extra):
        adequate = classes[cls].adequate_trial_months
        months = (adequate / 2 if short else adequate) if adequate else 1
        return {"drug": classes[cls].drugs[0], "months": months, "response": response, **extra}

    nsaid_failed = t("nsaid", "none")
    gc_failed = t("glucocorticoid", "relapse")
    out = [("naive", []),
           ("nsaid short", [t("nsaid", "none", short=True, ongoing=True)]),
           ("nsaid responding", [t("nsaid", "partial", ongoing=True)]),
           ("nsaid complete", [t("nsaid", "complete", ongoing=True)]),
           ("nsaid failed", [nsaid_failed]),
           ("nsaid intolerant", [t("nsaid", "intolerance", short=True)]),
           ("nsaid+gc failed", [nsaid_failed, gc_failed]),
           ("antibiotics failed", [t("antibiotic", "none")])]
    for cls in ("tnf_inhibitor", "bisphosphonate", "csdmard"):
        out.append((f"nsaid+gc+{cls} failed", [nsaid_failed, gc_failed, t(cls, "none")]))
        out.append((f"nsaid+{cls} intolerant", [nsaid_failed, t(cls, "adverse_event", short=True,
                                                                  adverse_events=["other"])]))
    out.append(("nsaid+gc+bisphosphonate+il1 failed",
                [nsaid_failed, gc_failed, t("bisphosphonate", "none"), t("il1_inhibitor", "none")]))
    out.append(("nsaid+csdmard+gc failed", [nsaid_failed, t("csdmard", "none"), gc_failed]))
    out.append(("tnf psoriasis", [nsaid_failed, t("tnf_inhibitor", "partial", ongoing=True,
                                                   adverse_events=["psoriasis"])]))
    return out


def grid(book: RuleBook, *, small: bool = False) -> list[tuple[str, dict]]:
    """(label, profile data) for every combination of the grid's axes (`small`: the axes that
    change therapy choices only, for lint's conflict search)."""
    lesion_bands = [("1 lesion", 1, ["tibia"]), ("3 lesions", 3, ["tibia", "femur", "clavicle"]),
                    ("8 lesions", 8, ["tibia", "femur", "clavicle", "pelvis"])]
    spine = [("no spine", False, False), ("vertebral", True, False), ("vertebral fracture", True, True)]
    flags = [("no red flags", []), ("red flag", [book.vocabulary.values("red_flags")[0]])]
    diagnoses = [("cno", "cno"), ("sapho", "sapho"), ("suspected", "suspected")]
    ages = [("child", 10, 9), ("adult onset", 40, 35)]
    features = [("no features", []), ("arthritis", ["arthritis"]), ("psoriasis", ["psoriasis"]),
                ("myositis", ["muscle_inflammation"])]
    biopsies = [("biopsy inflammatory", "inflammatory"), ("no biopsy", "none")]
    if small:
        lesion_bands, flags, biopsies = lesion_bands[1:2], flags[:1], biopsies[:1]
        diagnoses = diagnoses[:2]
    out = []
    for (ll, count, sites), (sl, vert, frac), (fl, red), (dl, dx), (al, age, onset), (xl, feats), \
            (bl, biopsy), (hl, history) in itertools.product(
                lesion_bands, spine, flags, diagnoses, ages, features, biopsies, histories(book)):
        site_list = list(sites)
        if vert:
            site_list = ["vertebra"] + site_list[: max(count - 1, 0)]
            if count == 1:
                site_list = ["vertebra"]
        data = {"age_years": age, "age_at_onset_years": onset, "weight_kg": 30, "diagnosis": dx,
                "lesions": {"count": count, "sites": site_list, "vertebral_fracture": frac,
                            "imaging": "whole_body_mri"},
                "features": feats, "red_flags": red, "biopsy": biopsy, "treatments": history}
        out.append((", ".join((ll, sl, fl, dl, al, xl, bl, hl)), data))
    return out


@dataclass
class Gap:
    label: str
    stage: list[str]

    def to_json(self) -> dict:
        return {"profile": self.label, "stage": self.stage}


@dataclass
class Conflict:
    label: str
    therapy: str
    rules: tuple[str, str]

    def to_json(self) -> dict:
        return {"profile": self.label, "therapy": self.therapy, "rules": list(self.rules)}


@dataclass
class GapReport:
    profiles: int
    gaps: list[Gap]
    conflicts: list[Conflict]

    @property
    def clean(self) -> bool:
        return not self.gaps and not self.conflicts

    def to_json(self) -> dict:
        return {"profiles": self.profiles, "gaps": [g.to_json() for g in self.gaps],
                "conflicts": [c.to_json() for c in self.conflicts]}


def find_gaps(book: RuleBook) -> GapReport:
    """Evaluate the grid with the pure-Python reference (the engine fires the same rules: the
    differential test checks it) and collect profiles without a suggestion and recommend/avoid
    pairs for one therapy."""
    order = {"stage": list(book.vocabulary.stages)}
    rules = book.active
    gaps, conflicts = [], []
    profiles = grid(book)
    for label, data in profiles:
        facts = derive_facts(validate_profile(data, book.vocabulary), book.vocabulary)
        evaluation = reference_evaluate(rules, facts, order)
        fired = [book.by_id[r] for r in evaluation.fired if not book.by_id[r].is_staging]
        if not fired:
            gaps.append(Gap(label, list(evaluation.facts.get("stage", []))))
        for a, b in itertools.combinations(sorted(fired, key=lambda r: r.id), 2):
            if opposed(a, b, book.vocabulary) == "error":
                conflicts.append(Conflict(label, a.suggest.therapy, (a.id, b.id)))
    return GapReport(len(profiles), gaps, conflicts)
