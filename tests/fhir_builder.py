"""Build the FHIR R4 Bundle that says what a YAML profile says, resource by resource, following
docs/fhir.md by hand (not with the code under test), so that the mapping can be checked against
the YAML route: the same patient by both routes must give the same profile and suggestions."""

from __future__ import annotations

import copy
from datetime import date

BASE = "http://cno-pathway.org/fhir"
OBS = f"{BASE}/CodeSystem/observation"
SITE = f"{BASE}/CodeSystem/site"
DRUG = f"{BASE}/CodeSystem/drug"
RESPONSE = f"{BASE}/StructureDefinition/treatment-response"
ADVERSE = f"{BASE}/StructureDefinition/treatment-adverse-event"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
AS_OF = date(2026, 6, 15)

DIAGNOSIS_CODES = {
    "crmo": {"system": "http://hl7.org/fhir/sid/icd-10", "code": "M86.3"},
    "cno": {"system": "http://www.orpha.net", "code": "ORPHA:324964"},
    "sapho": {"system": "http://www.orpha.net", "code": "ORPHA:793"},
}


def shift(day: date, *, years: int = 0, months: int = 0) -> date:
    total = day.year * 12 + day.month - 1 + years * 12 + months
    year, month = divmod(total, 12)
    return date(year, month + 1, min(day.day, 28))


def _obs(ident: str, pid: str, code: str, when: str = "2026-06-01", **value) -> dict:
    return {"resourceType": "Observation", "id": ident, "status": "final",
            "code": {"coding": [{"system": OBS, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when, **value}


def _word(word: str) -> dict:
    return {"valueCodeableConcept": {"coding": [{"system": OBS, "code": word}]}}


def bundle_from_profile(profile: dict, *, as_of: date = AS_OF, kind: str = "collection",
                        diagnosis_code: dict | None = None) -> dict:
    """The Bundle for one profile (whole-number ages and treatment months only)."""
    p = copy.deepcopy(profile)
    pid = p.get("id") or "patient-1"
    age = p["age_years"]
    assert float(age).is_integer(), "the builder writes whole-year ages only"
    resources: list[dict] = [{"resourceType": "Patient", "id": pid,
                              "birthDate": shift(as_of, years=-int(age)).isoformat(),
                              **({"gender": p["sex"]} if p.get("sex") else {})}]
    condition = {"resourceType": "Condition", "id": "dx-1",
                 "subject": {"reference": f"Patient/{pid}"},
                 "code": {"coding": [diagnosis_code or DIAGNOSIS_CODES.get(
                     p["diagnosis"], DIAGNOSIS_CODES["cno"])]}}
    if p["diagnosis"] == "suspected":
        condition["verificationStatus"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "provisional"}]}
    lesions = p.get("lesions", {})
    if lesions.get("sites"):
        condition["bodySite"] = [{"coding": [{"system": SITE, "code": s}]} for s in lesions["sites"]]
    if p.get("age_at_onset_years") is not None:
        condition["onsetAge"] = {"value": p["age_at_onset_years"], "unit": "a", "system": UCUM,
                                 "code": "a"}
    resources.append(condition)
    n = 0

    def add(code, **value):
        nonlocal n
        n += 1
        resources.append(_obs(f"obs-{n}", pid, code, **value))

    add("lesion-count", valueInteger=lesions["count"])
    if lesions.get("symmetric") is not None:
        add("lesion-symmetric", valueBoolean=lesions["symmetric"])
    if lesions.get("vertebral_fracture"):
        add("vertebral-fracture", valueBoolean=True)
    if lesions.get("imaging"):
        add("imaging", **_word(lesions["imaging"]))
    for name, value in (p.get("activity") or {}).items():
        add("activity-" + name.replace("_", "-"), valueBoolean=value)
    labs = p.get("labs") or {}
    if labs.get("cbc_normal") is not None:
        add("cbc-normal", valueBoolean=labs["cbc_normal"])
    if p.get("biopsy"):
        add("biopsy", **_word(p["biopsy"]))
    if p.get("hla_b27"):
        add("hla-b27", valueString=p["hla_b27"])
    for word in p.get("features") or []:
        add("feature", **_word(word))
    for word in p.get("red_flags") or []:
        add("red-flag", **_word(word))
    if p.get("weight_kg") is not None:
        resources.append({"resourceType": "Observation", "id": "weight", "status": "final",
                          "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                          "subject": {"reference": f"Patient/{pid}"},
                          "effectiveDateTime": "2026-06-01",
                          "valueQuantity": {"value": p["weight_kg"], "unit": "kg",
                                            "system": UCUM, "code": "kg"}})
    if labs.get("crp_mg_l") is not None:      # given in mg/dL: the intake converts
        resources.append({"resourceType": "Observation", "id": "crp", "status": "final",
                          "code": {"coding": [{"system": LOINC, "code": "1988-5"}]},
                          "effectiveDateTime": "2026-06-01",
                          "valueQuantity": {"value": labs["crp_mg_l"] / 10, "unit": "mg/dL",
                                            "system": UCUM, "code": "mg/dL"}})
    if labs.get("esr_mm_h") is not None:
        resources.append({"resourceType": "Observation", "id": "esr", "status": "final",
                          "code": {"coding": [{"system": LOINC, "code": "4537-7"}]},
                          "effectiveDateTime": "2026-06-01",
                          "valueQuantity": {"value": labs["esr_mm_h"], "unit": "mm/h",
                                            "system": UCUM, "code": "mm/h"}})
    resources += _statements(p.get("treatments") or [], pid, as_of)
    entries = [{"fullUrl": f"urn:uuid:{r['resourceType'].lower()}-{r['id']}", "resource": r}
               for r in resources]
    if kind == "transaction":
        for e in entries:
            e["request"] = {"method": "POST", "url": e["resource"]["resourceType"]}
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _statements(treatments: list[dict], pid: str, as_of: date) -> list[dict]:
    """Periods that keep the YAML's order (oldest first; ties keep the Bundle's order)."""
    starts: list[date] = [as_of] * len(treatments)
    next_start = as_of
    for index in range(len(treatments) - 1, -1, -1):
        t = treatments[index]
        months = int(t["months"])
        assert float(t["months"]).is_integer(), "the builder writes whole months only"
        start = shift(as_of if t.get("ongoing") else next_start, months=-months)
        assert start <= next_start, "an ongoing treatment listed before an older one"
        starts[index] = next_start = start
    out = []
    for index, (t, start) in enumerate(zip(treatments, starts)):
        period = {"start": start.isoformat()}
        if not t.get("ongoing"):
            period["end"] = shift(start, months=int(t["months"])).isoformat()
        extension = [{"url": RESPONSE, "valueCode": t["response"]}]
        extension += [{"url": ADVERSE, "valueCode": e} for e in t.get("adverse_events", [])]
        out.append({"resourceType": "MedicationStatement", "id": f"med-{index + 1}",
                    "status": "active" if t.get("ongoing") else "completed",
                    "subject": {"reference": f"Patient/{pid}"},
                    "medicationCodeableConcept": {"coding": [{"system": DRUG, "code": t["drug"]}],
                                                  "text": t["drug"]},
                    "effectivePeriod": period, "extension": extension})
    return out
