"""Profile -> flat facts: the one small, pure step the rules match on.

This step only counts and groups what the profile says: per drug class, the course of each
treatment (tried, ongoing, long enough to judge, and its outcome: responding, refractory, relapsed
after a response, too short to judge, no response where the sources give no trial length, not
tolerated, stopped in remission), the current disease activity and structural damage. What counts
as an adequate trial comes from the rule base's vocabulary, not from Python; what each combination
means (where the patient sits on the pathway, what to suggest) is decided by the rules, not here.

The facts it derives are the ones FACT_SCHEMA (knowledge/factschema.py) declares.
"""

from __future__ import annotations

from .profile import PatientProfile
from ..knowledge.factschema import ADULT_AGE, FACT_SCHEMA, FactType  # noqa: F401 (re-exported)

ACTIVITY_SIGNS = ("pain", "swelling", "functional_impairment", "active_lesions_on_mri", "new_lesions")
from ..knowledge.vocabulary import DISEASE_ACTIVITY, Vocabulary


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
    for name in ACTIVITY_SIGNS:
        facts[f"activity.{name}"] = getattr(profile.activity, name)
    facts["vertebral"] = "vertebra" in profile.lesions.sites or profile.lesions.vertebral_fracture
    facts["structural_damage"] = profile.lesions.vertebral_fracture
    facts["disease_activity"] = disease_activity(profile)
    facts["jansson_score"] = profile.jansson_score
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


def disease_activity(profile: PatientProfile) -> str:
    """'active' if any recorded sign of activity is present (pain, swelling, functional impairment,
    active or new lesions on MRI), 'inactive' if signs are recorded and all absent, else
    'not_recorded'. Nothing is inferred from the treatment history: the rules weigh that."""
    signs = [getattr(profile.activity, name) for name in ACTIVITY_SIGNS]
    active, inactive, not_recorded = DISEASE_ACTIVITY
    if any(sign is True for sign in signs):
        return active
    if any(sign is False for sign in signs):
        return inactive
    return not_recorded


def course_outcome(treatment, adequate_months: float | None) -> str:
    """The outcome of one treatment, from its response, its length and whether it goes on.

    A trial without response is judged only once it lasted the class's adequate trial; where the
    sources give no length it is its own outcome, never silently "adequate"."""
    if treatment.response in ("intolerance", "adverse_event"):
        return "not_tolerated"
    if treatment.response == "relapse":
        return "relapsed"
    if treatment.response in ("partial", "complete"):
        return "responding" if treatment.ongoing else "stopped_in_remission"
    if adequate_months is None:
        return "no_trial_length"
    return "refractory" if treatment.months >= adequate_months else "too_short"


_OUTCOME_FACTS = {"responding": "responding_classes", "stopped_in_remission": "stopped_in_remission_classes",
                  "refractory": "refractory_classes", "relapsed": "relapsed_classes",
                  "too_short": "too_short_classes", "no_trial_length": "no_trial_length_classes",
                  "not_tolerated": "intolerant_classes"}


def _in_order(values, vocabulary: Vocabulary, kind: str) -> list[str]:
    """A list fact in vocabulary order, so the same facts come out whatever order they were given in."""
    if not values:
        return []
    return [v for v in vocabulary.ordered(kind) if v in values]


def _history(profile: PatientProfile, vocabulary: Vocabulary) -> dict:
    groups: dict[str, set] = {name: set() for name in (
        "tried_classes", "tried_drugs", "failed_classes", "failed_drugs", "too_short_classes",
        "responding_classes", "complete_response_classes", "relapsed_classes",
        "intolerant_classes", "intolerant_drugs", "adverse_event_classes", "adverse_events",
        "ongoing_classes", "ongoing_drugs", "refractory_classes", "stopped_in_remission_classes",
        "no_trial_length_classes")}
    for t in profile.treatments:
        cls = vocabulary.class_of(t.drug)
        adequate = vocabulary.drug_classes[cls].adequate_trial_months
        outcome = course_outcome(t, adequate)
        groups["tried_classes"].add(cls)
        groups["tried_drugs"].add(t.drug)
        groups[_OUTCOME_FACTS[outcome]].add(cls)
        if outcome in ("refractory", "relapsed"):
            groups["failed_classes"].add(cls)
            groups["failed_drugs"].add(t.drug)
        if t.response == "complete":
            groups["complete_response_classes"].add(cls)
        if outcome == "not_tolerated":
            groups["intolerant_drugs"].add(t.drug)
        if t.adverse_events or t.response == "adverse_event":
            groups["adverse_event_classes"].add(cls)
        groups["adverse_events"].update(t.adverse_events)
        if t.ongoing:
            groups["ongoing_classes"].add(cls)
            groups["ongoing_drugs"].add(t.drug)
    out: dict = {}
    for name, values in groups.items():
        out[name] = ([v for v in vocabulary.ordered(FACT_SCHEMA[name].vocabulary) if v in values]
                     if values else [])
    out["failed_class_count"] = len(out["failed_classes"])
    out["responding_class_count"] = len(out["responding_classes"])
    out["intolerance_count"] = sum(1 for t in profile.treatments if not_tolerated(t))
    out["treatment_count"] = len(profile.treatments)
    return out
