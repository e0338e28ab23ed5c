"""How facts and numbers read to a person: one place, so every output writes them alike."""

from __future__ import annotations


def plain_number(value) -> str:
    """12.0 -> '12', 10.5 -> '10.5': a number as a person writes it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# how the parts of a fact name read: units in brackets, abbreviations in capitals
_UNITS = (("_mg_l", " (mg/L)"), ("_mm_h", " (mm/h)"), ("_kg", " (kg)"), ("_years", " (years)"))
_CAPITALS = {"crp": "CRP", "esr": "ESR", "cbc": "CBC", "mri": "MRI", "hla": "HLA", "b27": "B27",
             "nsaid": "NSAID"}
_NAMES = {"lesions.count": "number of lesions", "lesions.sites": "lesion sites"}


def fact_words(fact: str) -> str:
    """A fact name in words: 'labs.crp_mg_l' -> 'CRP (mg/L)', 'age_at_onset_years' -> 'age at
    onset (years)', 'lesions.count' -> 'number of lesions'. The group a field sits in (labs,
    activity, lesions) goes where the field's own name says enough."""
    if fact in _NAMES:
        return _NAMES[fact]
    name = fact.removeprefix("labs.").removeprefix("activity.").removeprefix("lesions.")
    unit = ""
    for suffix, shown in _UNITS:
        if name.endswith(suffix):
            name, unit = name[: -len(suffix)], shown
            break
    words = name.replace(".", " ").replace("_", " ").split()
    return " ".join(_CAPITALS.get(w, w) for w in words).replace("HLA B27", "HLA-B27") + unit
