"""Gap and conflict search: a grid of profiles over the variables that matter.

Every profile of the grid must get at least one suggestion, and no profile may get two
suggestions of opposite kind (recommend and avoid) for the same therapy. The grid is built from
the vocabulary and a list of treatment histories along the pathway; it names drug classes and
responses, never doses or thresholds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .evaluation import reference_evaluate
from .facts import derive_facts
from .profile import validate_profile
from .rulebook import RuleBook

OPPOSITE = {("recommend", "avoid"), ("avoid", "recommend")}


def _class_drug(book: RuleBook, cls: str) -> str:
    return book.vocabulary.drug_classes[cls].drugs[0]


def histories(book: RuleBook) -> list[tuple[str, list[dict]]]:
    """Treatment histories along the pathway, built from the vocabulary's classes."""
    def t(cls, months, response, **extra):
        return {"drug": _class_drug(book, cls), "months": months, "response": response, **extra}

    nsaid_failed = t("nsaid", 4, "none")
    gc_failed = t("glucocorticoid", 0.5, "relapse")
    out = [("naive", []),
           ("nsaid short", [t("nsaid", 1, "none", ongoing=True)]),
           ("nsaid responding", [t("nsaid", 4, "partial", ongoing=True)]),
           ("nsaid complete", [t("nsaid", 6, "complete", ongoing=True)]),
           ("nsaid failed", [nsaid_failed]),
           ("nsaid intolerant", [t("nsaid", 1, "intolerance")]),
           ("nsaid+gc failed", [nsaid_failed, gc_failed]),
           ("antibiotics failed", [t("antibiotic", 3, "none")])]
    for cls in ("tnf_inhibitor", "bisphosphonate", "csdmard"):
        out.append((f"nsaid+gc+{cls} failed", [nsaid_failed, gc_failed, t(cls, 6, "none")]))
        out.append((f"nsaid+{cls} intolerant", [nsaid_failed, t(cls, 2, "adverse_event",
                                                                  adverse_events=["other"])]))
    out.append(("nsaid+gc+bisphosphonate+il1 failed",
                [nsaid_failed, gc_failed, t("bisphosphonate", 9, "none"), t("il1_inhibitor", 6, "none")]))
    out.append(("nsaid+csdmard+gc failed", [nsaid_failed, t("csdmard", 6, "none"), gc_failed]))
    out.append(("tnf psoriasis", [nsaid_failed, t("tnf_inhibitor", 5, "partial", ongoing=True,
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


@dataclass
class Conflict:
    label: str
    therapy: str
    rules: tuple[str, str]


def find_gaps(book: RuleBook) -> tuple[int, list[Gap], list[Conflict]]:
    """Evaluate the grid (pure-Python reference; the engine agrees by the differential test)."""
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
        for a, b in itertools.combinations(fired, 2):
            if a.suggest.therapy and a.suggest.therapy == b.suggest.therapy and \
                    (a.suggest.kind, b.suggest.kind) in OPPOSITE:
                conflicts.append(Conflict(label, a.suggest.therapy, (a.id, b.id)))
    return len(profiles), gaps, conflicts
