"""Three routes to one profile: a file, command-line flags, or interactive prompts.

Each route builds the same plain data and goes through the same validation
(profile.validate_profile), so the same facts by any route give the same profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import ProfileError
from .durations import parse_duration
from .profile import PatientProfile, validate_profile
from ..knowledge.vocabulary import Vocabulary
from ..yamlio import Document, read_document

ACTIVITY = ("pain", "swelling", "functional_impairment", "active_lesions_on_mri", "new_lesions")
_YES = {"yes": True, "true": True, "y": True, "1": True, "no": False, "false": False, "n": False, "0": False}


# A teaching case file (examples/*.yaml, see teaching/cases.py) holds a profile under `profile`
# beside what it teaches; every profile route reads such a file as its profile part.
CASE_KEYS = {"title", "source", "teaches", "expect", "profile"}


class CaseView(Document):
    """A view of a document's sub-mapping that keeps the original line numbers."""

    def __init__(self, doc: Document, key: str):
        super().__init__(data=doc.data[key], source=doc.source, lines=doc.lines)
        self.prefix = (key,)

    def line(self, path):
        return super().line(self.prefix + tuple(path))


def is_case(data) -> bool:
    return isinstance(data, dict) and "profile" in data and set(data) <= CASE_KEYS


def profile_document(doc: Document) -> Document:
    """The profile part of a document: the whole document, or a case file's `profile`."""
    return CaseView(doc, "profile") if is_case(doc.data) else doc


def profile_from_file(path: str | Path, vocabulary: Vocabulary) -> PatientProfile:
    """A profile file, a teaching case file (its `profile` part), or a FHIR Bundle."""
    doc = profile_document(read_document(path, error=ProfileError))
    return profile_from_data(doc.data, vocabulary, document=doc)


# A FHIR R4 Bundle (top-level resourceType "Bundle") is read by the interop layer, which sits
# above this one and registers its reader when imported (cno_pathway/interop/__init__.py).
_bundle_reader: Callable | None = None


def register_bundle_reader(reader: Callable) -> None:
    global _bundle_reader
    _bundle_reader = reader


def is_bundle(data) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == "Bundle"


def profile_from_data(data, vocabulary: Vocabulary, *, document: Document | None = None,
                      source: str | None = None) -> PatientProfile:
    """Plain profile data, or a FHIR Bundle, validated into a profile."""
    if is_bundle(data):
        source = source or (document.source if document else None)
        if _bundle_reader is None:
            raise ProfileError("a FHIR Bundle needs cno_pathway.interop to read it", file=source)
        return _bundle_reader(data, vocabulary, source=source)
    return validate_profile(data, vocabulary, document=document, source=source)


def parse_tried(spec: str, vocabulary: Vocabulary, *, where: str = "--tried") -> dict:
    """'naproxen:4:none[:ongoing][:psoriasis,fever]' -> a treatment entry; the duration is
    months, or carries its unit (10d, 3w, 4m, 1y: patient/durations.py)."""
    parts = spec.split(":")
    if len(parts) < 3:
        raise ProfileError(f"{spec!r}: write DRUG:DURATION:RESPONSE[:ongoing][:EVENT,EVENT]",
                           field=where)
    drug, months, response, *rest = parts
    try:
        months_value = parse_duration(months)
    except ValueError as exc:
        raise ProfileError(str(exc), field=where) from None
    entry: dict = {"drug": drug, "months": months_value, "response": response}
    for extra in rest:
        if extra.strip().lower() == "ongoing":
            entry["ongoing"] = True
        elif extra.strip():
            entry["adverse_events"] = [e for e in extra.split(",") if e.strip()]
    return entry


def _yes_no(value: str, where: str) -> bool:
    key = value.strip().lower()
    if key not in _YES:
        raise ProfileError(f"{value!r} is not yes or no", field=where)
    return _YES[key]


NUMBER_FLAGS = frozenset({"age", "weight", "onset_age", "lesions", "crp", "esr"})


def _flag_number(flags: dict, flag: str, integer: bool = False):
    """A number flag read as a profile file reads it (yamlio.parse_number): --weight 032 or
    --weight 1_0 is refused, never read as 32 or 10. Values already numbers pass through."""
    from ..yamlio import NotANumber, parse_number

    value = flags[flag]
    if not isinstance(value, str):
        return value
    try:
        return parse_number(value, integer=integer)
    except NotANumber as exc:
        raise ProfileError(str(exc), field=f"--{flag.replace('_', '-')}") from None


def profile_data_from_flags(flags: dict, vocabulary: Vocabulary) -> dict:
    """Plain profile data from the consult command's flags (only what was given)."""
    data: dict = {}
    simple = {"id": "id", "age": "age_years", "sex": "sex", "weight": "weight_kg",
              "onset_age": "age_at_onset_years", "diagnosis": "diagnosis", "biopsy": "biopsy",
              "hla_b27": "hla_b27", "jansson": "jansson_score"}
    for flag, name in simple.items():
        if flags.get(flag) is not None:
            data[name] = _flag_number(flags, flag) if flag in NUMBER_FLAGS else flags[flag]
    lesions: dict = {}
    if flags.get("lesions") is not None:
        lesions["count"] = _flag_number(flags, "lesions", integer=True)
    if flags.get("site"):
        lesions["sites"] = list(flags["site"])
    if flags.get("vertebral_fracture") is not None:
        lesions["vertebral_fracture"] = flags["vertebral_fracture"]
    if flags.get("symmetric") is not None:
        lesions["symmetric"] = flags["symmetric"]
    if flags.get("imaging") is not None:
        lesions["imaging"] = flags["imaging"]
    if lesions:
        data["lesions"] = lesions
    activity = {}
    for item in flags.get("activity") or ():
        name, _, value = item.partition("=")
        if name not in ACTIVITY:
            raise ProfileError(f"unknown activity {name!r} (allowed: {', '.join(ACTIVITY)})",
                               field="--activity")
        activity[name] = _yes_no(value or "yes", f"--activity {name}")
    if activity:
        data["activity"] = activity
    labs = {}
    if flags.get("crp") is not None:
        labs["crp_mg_l"] = _flag_number(flags, "crp")
    if flags.get("esr") is not None:
        labs["esr_mm_h"] = _flag_number(flags, "esr")
    if flags.get("cbc_normal") is not None:
        labs["cbc_normal"] = flags["cbc_normal"]
    if labs:
        data["labs"] = labs
    if flags.get("feature"):
        data["features"] = list(flags["feature"])
    if flags.get("red_flag"):
        data["red_flags"] = list(flags["red_flag"])
    if flags.get("tried"):
        data["treatments"] = [parse_tried(t, vocabulary, where=f"--tried {t}") for t in flags["tried"]]
    return data


def profile_from_flags(flags: dict, vocabulary: Vocabulary) -> PatientProfile:
    return validate_profile(profile_data_from_flags(flags, vocabulary), vocabulary, source="flags")


# -- interactive: patient/interview.py (one question at a time, each answer checked at once) --

def __getattr__(name: str):
    """The interview (the third route) is imported when it is asked for: a consult from a file
    or from flags does not load it (issue 17, start-up)."""
    if name in ("interview", "InterviewStopped"):
        from . import interview as questions

        return getattr(questions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
