"""The fact schema: every fact a rule condition may use, with its type.

It is the contract between the patient layer (which derives the facts from a profile) and the
rule base (whose conditions are checked against it), so it lives below both: the rule parser,
the engine adapter and the facts step all import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FactType:
    """The type of one fact the rules may test (number, bool, enum or list)."""

    kind: str                  # "number" | "bool" | "enum" | "list"
    vocabulary: str | None = None
    derived_by_rules: bool = False
    description: str = ""


def _n(d):
    return FactType("number", description=d)


def _b(d):
    return FactType("bool", description=d)


def _e(v, d):
    return FactType("enum", v, description=d)


def _l(v, d):
    return FactType("list", v, description=d)


FACT_SCHEMA: dict[str, FactType] = {
    # straight from the profile
    "age_years": _n("age in years"),
    "weight_kg": _n("weight in kg"),
    "age_at_onset_years": _n("age at onset in years"),
    "sex": _e("sexes", "sex"),
    "diagnosis": _e("diagnoses", "diagnosis"),
    "lesions.count": _n("number of lesions on the latest imaging"),
    "lesions.sites": _l("sites", "lesion sites"),
    "lesions.vertebral_fracture": _b("vertebral fracture or structural damage"),
    "lesions.symmetric": _b("symmetric lesions"),
    "lesions.imaging": _e("imaging", "latest imaging"),
    "activity.pain": _b("pain"),
    "activity.swelling": _b("swelling"),
    "activity.functional_impairment": _b("functional impairment"),
    "activity.active_lesions_on_mri": _b("active lesions on MRI"),
    "activity.new_lesions": _b("new lesions"),
    "labs.crp_mg_l": _n("CRP in mg/L"),
    "labs.esr_mm_h": _n("ESR in mm/h"),
    "labs.cbc_normal": _b("normal blood count"),
    "features": _l("features", "associated features"),
    "red_flags": _l("red_flags", "red flags"),
    "biopsy": _e("biopsy", "biopsy result"),
    "hla_b27": _e("hla_b27", "HLA-B27"),
    # counted and grouped
    "vertebral": _b("a vertebral lesion"),
    "multifocal": _b("more than one lesion"),
    "structural_damage": _b("structural damage (a vertebral fracture)"),
    "disease_activity": _e("disease_activity", "current disease activity: active if pain, swelling, functional impairment, active or new MRI lesions is recorded; inactive if signs are recorded and all absent; else not recorded"),
    "jansson_score": _n("Jansson clinical score (0-63)"),
    "red_flag_count": _n("number of red flags"),
    "pediatric_onset": _b("onset before 18 years"),
    "adult_onset": _b("onset at 18 years or later"),
    "treatment_count": _n("number of treatments in the history"),
    "tried_classes": _l("drug_classes", "classes tried"),
    "tried_drugs": _l("drugs", "drugs tried"),
    "refractory_classes": _l("drug_classes", "classes without response after an adequate trial"),
    "no_trial_length_classes": _l("drug_classes", "classes without response whose adequate trial length the sources do not give"),
    "stopped_in_remission_classes": _l("drug_classes", "classes stopped after a partial or complete response"),
    "failed_classes": _l("drug_classes", "classes failed: refractory (no response after an adequate trial) or relapsed after a response"),
    "failed_drugs": _l("drugs", "drugs failed"),
    "failed_class_count": _n("number of classes failed"),
    "too_short_classes": _l("drug_classes", "classes without response after a trial shorter than adequate"),
    "responding_classes": _l("drug_classes", "ongoing classes with a partial or complete response"),
    "responding_class_count": _n("number of ongoing classes with a partial or complete response"),
    "complete_response_classes": _l("drug_classes", "classes with a complete response"),
    "relapsed_classes": _l("drug_classes", "classes with a relapse after a response"),
    "intolerant_classes": _l("drug_classes", "classes not tolerated or stopped for an adverse event (a reason to switch, not proof of inefficacy)"),
    "intolerant_drugs": _l("drugs", "drugs not tolerated or stopped for an adverse event"),
    "adverse_event_classes": _l("drug_classes", "classes with an adverse event recorded"),
    "adverse_events": _l("adverse_events", "adverse events recorded"),
    "intolerance_count": _n("treatments stopped for intolerance or an adverse event, or with one recorded"),
    "ongoing_classes": _l("drug_classes", "classes ongoing"),
    "ongoing_drugs": _l("drugs", "drugs ongoing"),
    # derived by the staging rules
    "stage": FactType("list", "stages", derived_by_rules=True, description="pathway stage"),
}

ADULT_AGE = 18  # the boundary between pediatric and adult onset, as the profile contract defines it
