"""The patient profile: the input contract, validated once, with errors that name the field.

Field names are fixed (other tools write these files). Vocabulary values (sites, drugs,
responses...) come from the rule base's vocabulary, passed in the validation context, so the
model holds no clinical word lists itself. Numbers and booleans are strict: "12" is not 12 and
"yes" is not true, so nothing the user wrote is silently reinterpreted.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Any

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from ..errors import ProfileError
from ..knowledge.vocabulary import Vocabulary
from ..wording import plain_number
from ..yamlio import Document, bounded, field_name

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

Months = Annotated[float, Field(ge=0, le=1200)]


def _vocab(info: ValidationInfo) -> Vocabulary:
    context = info.context or {}
    if "vocabulary" not in context:
        raise RuntimeError("PatientProfile must be validated with context={'vocabulary': ...}")
    return context["vocabulary"]


def _match(kind: str, value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text, one of: {', '.join(_vocab(info).values(kind))}")
    return _vocab(info).match(kind, value)


def _match_list(kind: str, values: Any, info: ValidationInfo) -> list[str]:
    if not isinstance(values, (list, tuple)):
        raise ValueError("must be a list")
    names = [_match(kind, v, info) for v in values]
    twice = [n for n, c in Counter(names).items() if c > 1]
    if twice:
        raise ValueError(f"{bounded(twice[0])} is listed twice")
    return names


class Lesions(BaseModel):
    model_config = _STRICT
    count: Annotated[int, Field(ge=0, le=200)]
    sites: list[str] = []
    vertebral_fracture: bool = False
    symmetric: bool | None = None
    imaging: str | None = None

    @field_validator("sites", mode="before")
    @classmethod
    def _sites(cls, v, info):
        return _match_list("sites", v, info)

    @field_validator("imaging", mode="before")
    @classmethod
    def _imaging(cls, v, info):
        return None if v is None else _match("imaging", v, info)


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
    drug: str
    months: Months
    response: str
    adverse_events: list[str] = []
    ongoing: bool = False

    @field_validator("drug", mode="before")
    @classmethod
    def _drug(cls, v, info):
        return _match("drugs", v, info)

    @field_validator("response", mode="before")
    @classmethod
    def _response(cls, v, info):
        return _match("responses", v, info)

    @field_validator("adverse_events", mode="before")
    @classmethod
    def _events(cls, v, info):
        return _match_list("adverse_events", v, info)


class PatientProfile(BaseModel):
    """One patient, as a clinician describes them."""

    model_config = _STRICT
    id: Annotated[str, Field(max_length=200)] | None = None
    age_years: Annotated[float, Field(gt=0, le=100)]
    sex: str | None = None
    weight_kg: Annotated[float, Field(ge=2, le=250)] | None = None
    age_at_onset_years: Annotated[float, Field(ge=0, le=100)] | None = None
    diagnosis: str
    lesions: Lesions
    activity: Activity = Activity()
    labs: Labs = Labs()
    features: list[str] = []
    red_flags: list[str] = []
    biopsy: str = "none"
    hla_b27: str = "unknown"
    jansson_score: Annotated[int, Field(ge=0, le=63)] | None = None
    treatments: Annotated[list[Treatment], Field(max_length=1000)] = []

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, v, info):
        return None if v is None else _match("sexes", v, info)

    @field_validator("diagnosis", mode="before")
    @classmethod
    def _diagnosis(cls, v, info):
        return _match("diagnoses", v, info)

    @field_validator("biopsy", mode="before")
    @classmethod
    def _biopsy(cls, v, info):
        return _match("biopsy", v, info)

    @field_validator("hla_b27", mode="before")
    @classmethod
    def _hla(cls, v, info):
        return _match("hla_b27", v, info)

    @field_validator("features", mode="before")
    @classmethod
    def _features(cls, v, info):
        return _match_list("features", v, info)

    @field_validator("red_flags", mode="before")
    @classmethod
    def _red_flags(cls, v, info):
        return _match_list("red_flags", v, info)

    @model_validator(mode="after")
    def _consistent(self):
        """Contradictions are errors, not guesses."""
        if len(self.lesions.sites) > self.lesions.count:
            raise _Contradiction("lesions.sites", f"{len(self.lesions.sites)} sites listed but "
                                 f"lesions.count is {self.lesions.count}")
        if self.lesions.vertebral_fracture and "vertebra" not in self.lesions.sites:
            raise _Contradiction("lesions.vertebral_fracture",
                                 "a vertebral fracture needs 'vertebra' in lesions.sites")
        if self.age_at_onset_years is not None and self.age_at_onset_years > self.age_years:
            raise _Contradiction("age_at_onset_years",
                                 f"onset at {plain_number(self.age_at_onset_years)} is after "
                                 f"the current age {plain_number(self.age_years)}")
        ongoing = Counter(t.drug for t in self.treatments if t.ongoing)
        for index, treatment in enumerate(self.treatments):
            if treatment.ongoing and ongoing[treatment.drug] > 1:
                raise _Contradiction(f"treatments[{index}].ongoing",
                                     f"{treatment.drug} is listed twice as ongoing")
        return self

    def to_data(self) -> dict:
        """The validated profile as plain data (what the JSON output echoes)."""
        return self.model_dump(mode="json")


class _Contradiction(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def field_path(loc: tuple) -> str:
    """('treatments', 1, 'response') -> 'treatments[1].response'; a key as typed is shown
    bounded, with control characters and bidi overrides escaped (yamlio.field_name)."""
    return field_name(loc) if loc else ""


def _path_tuple(path: str) -> tuple:
    parts: list = []
    for chunk in path.replace("]", "").split("."):
        name, *indexes = chunk.split("[")
        parts.append(name)
        parts.extend(int(i) for i in indexes if i.isdigit())
    return tuple(parts)


def validate_profile(data: Any, vocabulary: Vocabulary, *, document: Document | None = None,
                     source: str | None = None) -> PatientProfile:
    """Validate plain data into a PatientProfile, or raise one ProfileError naming the field."""
    source = source or (document.source if document else None)
    if not isinstance(data, dict):
        raise ProfileError("a profile must be a mapping of fields (age_years, lesions, ...)",
                           file=source, line=document.line(()) if document else None)
    try:
        return PatientProfile.model_validate(data, context={"vocabulary": vocabulary})
    except ValidationError as exc:
        problems = []
        first_path = first_loc = None
        for err in exc.errors(include_url=False):
            ctx_error = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_error, _Contradiction):
                path, message = ctx_error.field, ctx_error.message
                loc = _path_tuple(path)
            else:
                loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
                path = field_path(loc) or "profile"
                message = _plain(err)
            if first_path is None:
                first_path, first_loc = path, loc  # the key as given: it may hold '[' or '.'
            problems.append((path, message))
        line = document.line(first_loc) if document and first_path != "profile" else None
        head_path, head_message = problems[0]
        message = head_message
        if len(problems) > 1:
            message += "".join(f"\n  also {p}: {m}" for p, m in problems[1:10])
            if len(problems) > 10:
                message += f"\n  ... and {len(problems) - 10} more problems"
        raise ProfileError(message, file=source, line=line, field=head_path) from None


def _field_hint(loc: tuple) -> str:
    """'; did you mean weight_kg?' for a mistyped field name (the fields beside it)."""
    import difflib
    import typing

    model: Any = PatientProfile
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return ""
        inner = [a for a in (field.annotation, *typing.get_args(field.annotation))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return ""
        model = inner[0]
    close = difflib.get_close_matches(str(loc[-1])[:80], list(model.model_fields), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _plain(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"unknown field{_field_hint(err['loc'])} (check its spelling against the profile format)"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "must be a finite number (NaN and infinity are not values)"
    if isinstance(value, (dict, list)):
        return msg
    return f"{msg} (got {plain_number(value) if isinstance(value, float) else bounded(value)})"
