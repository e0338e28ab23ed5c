"""Profile -> flat facts: the one small, pure step the rules match on.

This step only counts and groups what the profile says (which classes were tried, failed, not
tolerated...). What counts as an adequate trial comes from the rule base's vocabulary, not from
Python; where the patient sits on the pathway is decided by the staging rules, not here.

The facts it derives are the ones FACT_SCHEMA (knowledge/factschema.py) declares.
"""

from __future__ import annotations

from .profile import PatientProfile
from ..knowledge.factschema import ADULT_AGE, FACT_SCHEMA, FactType  # noqa: F401 (re-exported)
from ..knowledge.vocabulary import Vocabulary


def derive_facts(profile: PatientProfile, vocabulary: Vocabulary) -> dict:
    """Flat facts for one profile; a fact with no value (not stated) is left out."""
    facts: dict = {
        "age_years": profile.age_years,
        "weight_kg": profile.weight_kg,
        "age_at_onset_years": profile.age_at_onset_years,
        "sex": profile.sex,
        "diagnosis": profile.diagnosis,
        "lesions.count": profile.lesions.count,
        "lesions.sites": _in_order(profile.lesions.sites, vocabulary, "sites"),
        "lesions.vertebral_fracture": profile.lesions.vertebral_fracture,
        "lesions.symmetric": profile.lesions.symmetric,
        "lesions.imaging": profile.lesions.imaging,
        "labs.crp_mg_l": profile.labs.crp_mg_l,
        "labs.esr_mm_h": profile.labs.esr_mm_h,
        "labs.cbc_normal": profile.labs.cbc_normal,
        "features": _in_order(profile.features, vocabulary, "features"),
        "red_flags": _in_order(profile.red_flags, vocabulary, "red_flags"),
        "biopsy": profile.biopsy,
        "hla_b27": profile.hla_b27,
    }
    for name in ("pain", "swelling", "functional_impairment", "active_lesions_on_mri", "new_lesions"):
        facts[f"activity.{name}"] = getattr(profile.activity, name)
    facts["vertebral"] = "vertebra" in profile.lesions.sites or profile.lesions.vertebral_fracture
    facts["multifocal"] = profile.lesions.count > 1
    facts["red_flag_count"] = len(profile.red_flags)
    onset = profile.age_at_onset_years
    facts["pediatric_onset"] = None if onset is None else onset < ADULT_AGE
    facts["adult_onset"] = None if onset is None else onset >= ADULT_AGE
    facts.update(_history(profile, vocabulary))
    facts["stage"] = []
    return {name: value for name, value in facts.items() if value is not None}


def not_tolerated(treatment) -> bool:
    """Stopped for intolerance or an adverse event, or with an adverse event recorded."""
    return treatment.response in ("intolerance", "adverse_event") or bool(treatment.adverse_events)


def _in_order(values, vocabulary: Vocabulary, kind: str) -> list[str]:
    """A list fact in vocabulary order, so the same facts come out whatever order they were given in."""
    return [v for v in vocabulary.values(kind) if v in values]


def _history(profile: PatientProfile, vocabulary: Vocabulary) -> dict:
    groups: dict[str, set] = {name: set() for name in (
        "tried_classes", "tried_drugs", "failed_classes", "failed_drugs", "too_short_classes",
        "responding_classes", "complete_response_classes", "relapsed_classes",
        "intolerant_classes", "intolerant_drugs", "adverse_event_classes", "adverse_events",
        "ongoing_classes", "ongoing_drugs")}
    for t in profile.treatments:
        cls = vocabulary.class_of(t.drug)
        adequate = vocabulary.drug_classes[cls].adequate_trial_months
        long_enough = adequate is None or t.months >= adequate
        groups["tried_classes"].add(cls)
        groups["tried_drugs"].add(t.drug)
        if t.response in ("none", "relapse") and long_enough:
            groups["failed_classes"].add(cls)
            groups["failed_drugs"].add(t.drug)
        if t.response == "none" and not long_enough:
            groups["too_short_classes"].add(cls)
        if t.ongoing and t.response in ("partial", "complete"):
            groups["responding_classes"].add(cls)
        if t.response == "complete":
            groups["complete_response_classes"].add(cls)
        if t.response == "relapse":
            groups["relapsed_classes"].add(cls)
        if t.response in ("intolerance", "adverse_event"):
            groups["intolerant_classes"].add(cls)
            groups["intolerant_drugs"].add(t.drug)
        if t.adverse_events or t.response == "adverse_event":
            groups["adverse_event_classes"].add(cls)
        groups["adverse_events"].update(t.adverse_events)
        if t.ongoing:
            groups["ongoing_classes"].add(cls)
            groups["ongoing_drugs"].add(t.drug)
    out: dict = {}
    for name, values in groups.items():
        order = vocabulary.values(FACT_SCHEMA[name].vocabulary)
        out[name] = [v for v in order if v in values]
    out["failed_class_count"] = len(out["failed_classes"])
    out["intolerance_count"] = sum(1 for t in profile.treatments if not_tolerated(t))
    out["treatment_count"] = len(profile.treatments)
    return out
