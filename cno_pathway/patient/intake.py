"""Three routes to one profile: a file, command-line flags, or interactive prompts.

Each route builds the same plain data and goes through the same validation
(profile.validate_profile), so the same facts by any route give the same profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import ProfileError
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
    """A profile file, or a teaching case file (its `profile` part)."""
    doc = profile_document(read_document(path, error=ProfileError))
    return validate_profile(doc.data, vocabulary, document=doc)


def parse_tried(spec: str, vocabulary: Vocabulary, *, where: str = "--tried") -> dict:
    """'naproxen:4:none[:ongoing][:psoriasis,fever]' -> a treatment entry."""
    parts = spec.split(":")
    if len(parts) < 3:
        raise ProfileError(f"{spec!r}: write DRUG:MONTHS:RESPONSE[:ongoing][:EVENT,EVENT]",
                           field=where)
    drug, months, response, *rest = parts
    try:
        months_value = float(months)
    except ValueError:
        raise ProfileError(f"{spec!r}: months {months!r} is not a number", field=where) from None
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
              "hla_b27": "hla_b27"}
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


# -- interactive -----------------------------------------------------------------------------

Ask = Callable[..., object]


def interview(vocabulary: Vocabulary, ask: Ask, confirm: Callable[[str], bool],
              say: Callable[[str], None]) -> dict:
    """Ask for each field, checking every answer as it is given; return plain profile data.

    `ask(text, check, default)` must return the checked value (re-asking until `check` accepts
    it); the CLI passes a click-based prompt, tests pass a scripted one.
    """
    v = vocabulary

    def number(low, high, whole=False):
        def check(text):
            try:
                value = int(text) if whole else float(text)
            except ValueError:
                raise ValueError("a number, please") from None
            if not low <= value <= high:
                raise ValueError(f"between {low} and {high}, please")
            return value
        return check

    def optional(check):
        return lambda text: None if text.strip() in ("", "-") else check(text)

    def word(kind):
        return lambda text: v.match(kind, text)

    def words(kind):
        def check(text):
            return [v.match(kind, t) for t in text.replace(",", " ").split() if t.strip()]
        return check

    def yes_no_unknown(text):
        key = text.strip().lower()
        if key in ("", "-", "unknown", "?"):
            return None
        if key not in _YES:
            raise ValueError("yes, no or unknown, please")
        return _YES[key]

    data: dict = {}
    label = ask("Profile label (optional)", optional(lambda t: t.strip()), "")
    if label:
        data["id"] = label
    data["age_years"] = ask("Age in years", number(0.01, 100), None)
    sex = ask(f"Sex ({', '.join(v.values('sexes'))}; blank if not stated)", optional(word("sexes")), "")
    if sex:
        data["sex"] = sex
    weight = ask("Weight in kg (blank if unknown; doses then in mg/kg only)", optional(number(2, 250)), "")
    if weight is not None:
        data["weight_kg"] = weight
    onset = ask("Age at onset in years (blank if unknown)", optional(number(0, 100)), "")
    if onset is not None:
        data["age_at_onset_years"] = onset
    data["diagnosis"] = ask(f"Diagnosis ({', '.join(v.values('diagnoses'))})", word("diagnoses"), None)
    lesions: dict = {"count": ask("Number of lesions on the latest imaging", number(0, 200, whole=True), None)}
    lesions["sites"] = ask(f"Sites, separated by spaces ({', '.join(v.values('sites'))})", words("sites"), "")
    lesions["vertebral_fracture"] = bool(ask("Vertebral fracture or structural damage? (yes/no)",
                                             yes_no_unknown, "no"))
    symmetric = ask("Symmetric lesions? (yes/no/unknown)", yes_no_unknown, "unknown")
    if symmetric is not None:
        lesions["symmetric"] = symmetric
    imaging = ask(f"Latest imaging ({', '.join(v.values('imaging'))}; blank if unknown)",
                  optional(word("imaging")), "")
    if imaging:
        lesions["imaging"] = imaging
    data["lesions"] = lesions
    activity = {}
    for name in ACTIVITY:
        answer = ask(f"{name.replace('_', ' ').capitalize()}? (yes/no/unknown)", yes_no_unknown, "unknown")
        if answer is not None:
            activity[name] = answer
    if activity:
        data["activity"] = activity
    labs = {}
    crp = ask("CRP in mg/L (blank if unknown)", optional(number(0, 1000)), "")
    if crp is not None:
        labs["crp_mg_l"] = crp
    esr = ask("ESR in mm/h (blank if unknown)", optional(number(0, 200)), "")
    if esr is not None:
        labs["esr_mm_h"] = esr
    cbc = ask("Blood count normal? (yes/no/unknown)", yes_no_unknown, "unknown")
    if cbc is not None:
        labs["cbc_normal"] = cbc
    if labs:
        data["labs"] = labs
    data["features"] = ask(f"Associated features ({', '.join(v.values('features'))}; blank if none)",
                           words("features"), "")
    data["red_flags"] = ask(f"Red flags ({', '.join(v.values('red_flags'))}; blank if none)",
                            words("red_flags"), "")
    data["biopsy"] = ask(f"Biopsy ({', '.join(v.values('biopsy'))})", word("biopsy"), "none")
    data["hla_b27"] = ask("HLA-B27 (positive/negative/unknown)", word("hla_b27"), "unknown")
    treatments = []
    while confirm("Add a treatment (oldest first)?"):
        entry = {"drug": ask("  Drug or class", word("drugs"), None),
                 "months": ask("  Months given", number(0, 1200), None),
                 "response": ask(f"  Response ({', '.join(v.values('responses'))})", word("responses"), None)}
        events = ask(f"  Adverse events ({', '.join(v.values('adverse_events'))}; blank if none)",
                     words("adverse_events"), "")
        if events:
            entry["adverse_events"] = events
        if confirm("  Still ongoing?"):
            entry["ongoing"] = True
        treatments.append(entry)
        say(f"  added {entry['drug']}")
    data["treatments"] = treatments
    return data
