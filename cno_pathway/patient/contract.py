"""The patient profile contract, declared once: field names, types, bounds and checks.

Field names are fixed (other tools write these files). Vocabulary values (sites, drugs,
responses...) come from the rule base's vocabulary, passed in the validation context, so the
model holds no clinical word lists itself. Numbers and booleans are strict: "12" is not 12 and
"yes" is not true, so nothing the user wrote is silently reinterpreted.

This declaration is the source of truth, but a consult does not import it: building pydantic
models costs more than the rest of a start-up. `make profile-schema` stores the core schema
pydantic builds from it as data (profile_schema.json), and profile.py validates with that;
tests/test_profile_schema.py fails when the two differ and checks that they accept, refuse and
word the same profiles. The FHIR reader and what-if use these classes directly.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import core_schema

from .checks import VocabularyCheck, consistent

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Vocab:
    """`Annotated[str, Vocab("drugs")]`: a word of that vocabulary kind (a list of them for a
    list field; absent allowed for an optional one), matched to its canonical name."""

    def __init__(self, kind: str):
        self.kind = kind

    def __get_pydantic_core_schema__(self, source, handler):
        schema = handler(source)
        check = VocabularyCheck(self.kind, many=schema["type"] == "list",
                                nullable=schema["type"] == "nullable")
        return core_schema.with_info_before_validator_function(check, schema)


Months = Annotated[float, Field(ge=0, le=1200)]


class Lesions(BaseModel):
    model_config = _STRICT
    count: Annotated[int, Field(ge=0, le=200)]
    sites: Annotated[list[str], Vocab("sites")] = []
    vertebral_fracture: bool = False
    symmetric: bool | None = None
    imaging: Annotated[str | None, Vocab("imaging")] = None


class Activity(BaseModel):
    model_config = _STRICT
    pain: bool | None = None
    swelling: bool | None = None
    functional_impairment: bool | None = None
    active_lesions_on_mri: bool | None = None
    new_lesions: bool | None = None


class Labs(BaseModel):
    model_config = _STRICT
    crp_mg_l: Annotated[float, Field(ge=0, le=1000)] | None = None
    esr_mm_h: Annotated[float, Field(ge=0, le=200)] | None = None
    cbc_normal: bool | None = None


class Treatment(BaseModel):
    model_config = _STRICT
    drug: Annotated[str, Vocab("drugs")]
    months: Months
    response: Annotated[str, Vocab("responses")]
    adverse_events: Annotated[list[str], Vocab("adverse_events")] = []
    ongoing: bool = False


class PatientProfile(BaseModel):
    """One patient, as a clinician describes them."""

    model_config = _STRICT
    id: Annotated[str, Field(max_length=200)] | None = None
    age_years: Annotated[float, Field(gt=0, le=100)]
    sex: Annotated[str | None, Vocab("sexes")] = None
    weight_kg: Annotated[float, Field(ge=2, le=250)] | None = None
    age_at_onset_years: Annotated[float, Field(ge=0, le=100)] | None = None
    diagnosis: Annotated[str, Vocab("diagnoses")]
    lesions: Lesions
    activity: Activity = Activity()
    labs: Labs = Labs()
    features: Annotated[list[str], Vocab("features")] = []
    red_flags: Annotated[list[str], Vocab("red_flags")] = []
    biopsy: Annotated[str, Vocab("biopsy")] = "none"
    hla_b27: Annotated[str, Vocab("hla_b27")] = "unknown"
    jansson_score: Annotated[int, Field(ge=0, le=63)] | None = None
    treatments: Annotated[list[Treatment], Field(max_length=1000)] = []

    # contradictions between fields (patient/checks.py), checked once the fields are valid
    _consistent = model_validator(mode="after")(consistent)

    def to_data(self) -> dict:
        """The validated profile as plain data (what the JSON output echoes)."""
        return self.model_dump(mode="json")


MODELS = (PatientProfile, Lesions, Activity, Labs, Treatment)
