"""FHIR R4 resources -> the profile contract: a pure function, tested without a server.

The resources are first validated with fhir.resources' R4B models (imported here only, so a YAML
consult never pays for them), then mapped field by field with the table in fhir_codes.yaml
(shown in docs/fhir.md). Three rules keep the mapping honest:

- what the pathway cannot use (a resource type, an element, a code nobody verified, a unit) is
  listed in `inputs_not_used`, never dropped in silence and never guessed;
- a wrong word in one of the project's own code systems or extensions is an error, as in YAML;
- two resources that disagree (two diagnoses, two weights of the same time, another patient's
  Observation) are an error naming both resource ids, not a choice made for the clinician.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import PrivateAttr

from ..errors import ProfileError
from ..knowledge.vocabulary import Vocabulary, canonical
from ..patient.contract import PatientProfile  # the pydantic declaration: a Bundle adds private fields
from ..patient.profile import validate_profile

CODES_FILE = Path(__file__).with_name("fhir_codes.yaml")
BASE = "http://cno-pathway.org/fhir"
RESPONSE_EXTENSION = f"{BASE}/StructureDefinition/treatment-response"
ADVERSE_EVENT_EXTENSION = f"{BASE}/StructureDefinition/treatment-adverse-event"
BUNDLE_TYPES = ("collection", "searchset", "transaction")
# Elements that say how a resource is stored, not what it says about the patient.
_TECHNICAL = {"resourceType", "id", "meta", "text", "language", "implicitRules"}
_SUSPECTED = {"provisional", "differential", "unconfirmed"}
_VOID = {"refuted", "entered-in-error"}


class MissingData(ProfileError):
    """The resources lack something the profile requires (age, diagnosis, lesion count)."""


class Contradiction(ProfileError):
    """Two resources disagree; the message names both."""


class BundleProfile(PatientProfile):
    """A profile read from FHIR: the same contract, plus what was not used."""

    _inputs_not_used: tuple = PrivateAttr(default=())
    _as_of: date | None = PrivateAttr(default=None)

    @property
    def inputs_not_used(self) -> list[dict]:
        return [dict(item) for item in self._inputs_not_used]

    @property
    def as_of(self) -> str | None:
        """The day ages and treatment months were counted to (ISO): the consult's basis shows
        it, because the same Bundle read on another day gives other numbers."""
        return self._as_of.isoformat() if self._as_of else None


@functools.lru_cache(maxsize=1)
def codes() -> dict:
    """The code table (fhir_codes.yaml): data shipped in the package, read once."""
    with open(CODES_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def system(name: str) -> str:
    return codes()["systems"][name]


# -- entry points ---------------------------------------------------------------------------------

def profile_from_bundle(data: Any, vocabulary: Vocabulary, *, source: str | None = None,
                        as_of: date | None = None) -> BundleProfile:
    """A Bundle (collection, searchset or transaction) -> a validated profile."""
    return profile_from_resources(resources_of(data, source=source), vocabulary, source=source,
                                  as_of=as_of)


def profile_from_resources(resources: list[dict], vocabulary: Vocabulary, *,
                           source: str | None = None, as_of: date | None = None) -> BundleProfile:
    mapped = map_resources(resources, vocabulary, source=source, as_of=as_of)
    return mapped.profile(vocabulary, source=source)


def resources_of(data: Any, *, source: str | None = None) -> list[dict]:
    """The validated resources of a Bundle, or of a single resource, in their given order."""
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise ProfileError("not a FHIR resource (no resourceType)", file=source)
    validate(data, source=source)
    if data["resourceType"] != "Bundle":
        return [data]
    if data.get("type") not in BUNDLE_TYPES:
        raise ProfileError(f"type {data.get('type')!r} is not read (give one of: "
                           f"{', '.join(BUNDLE_TYPES)})", file=source, field="Bundle.type")
    out = []
    for index, entry in enumerate(data.get("entry") or []):
        resource = entry.get("resource")
        if resource is None:
            continue
        resource = dict(resource)
        if entry.get("fullUrl"):
            resource["_fullUrl"] = entry["fullUrl"]
        resource["_entry"] = index
        out.append(resource)
    return out


def validate(resource: dict, *, source: str | None = None) -> None:
    """Check a resource against the FHIR R4B models; a Bundle's entries one by one with their
    own model (three times faster than the Bundle's generic dispatch, and the error names the
    resource)."""
    if resource.get("resourceType") == "Bundle" and isinstance(resource.get("entry"), list):
        entries = resource["entry"]
        shell = dict(resource, entry=[{k: v for k, v in e.items() if k != "resource"}
                                      if isinstance(e, dict) else e for e in entries])
        _validate_one(shell, "Bundle", source)
        for index, entry in enumerate(entries):
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict):
                label = f"{inner.get('resourceType')}/{inner.get('id', f'entry {index}')}"
                _validate_one(inner, label, source)
            elif inner is not None:
                raise ProfileError("not valid FHIR R4: a resource must be an object", file=source,
                                   field=f"Bundle.entry[{index}].resource")
        return
    _validate_one(resource, str(resource.get("resourceType")), source)


# Resources already found valid in this process, by the digest of their canonical JSON. The
# same patient's resources come back at every chart opening (patient-view), and validating one
# costs ten times more than serialising it; validation is a pure function of the text, so
# the verdict can be kept. Bounded; only successes are kept (a failure always raises afresh).
_VALID: dict[bytes, None] = {}
_VALID_LIMIT = 8192


def _canonical_digest(resource: dict) -> bytes | None:
    import hashlib
    import json

    try:
        text = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None                    # not plain JSON: let the model say why
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).digest()


def clear_validation_cache() -> None:
    _VALID.clear()


def _validate_one(resource: dict, label: str, source: str | None) -> None:
    digest = _canonical_digest(resource)
    if digest is not None and digest in _VALID:
        return
    _validate_with_model(resource, label, source)
    if digest is not None:
        if len(_VALID) >= _VALID_LIMIT:
            _VALID.clear()
        _VALID[digest] = None


def _validate_with_model(resource: dict, label: str, source: str | None) -> None:
    import pydantic
    try:
        from fhir.resources.R4B import get_fhir_model_class
    except ImportError:
        raise ProfileError("reading FHIR needs the package fhir.resources: "
                           "pip install 'cno-pathway[fhir]'", file=source) from None

    kind = resource.get("resourceType")
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError, TypeError):
        raise ProfileError(f"{kind!r} is not a FHIR R4 resource type", file=source,
                           field=f"{label}.resourceType") from None
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        path = label + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise ProfileError(f"not valid FHIR R4: {err['msg'].removeprefix('Value error, ')}",
                           file=source, field=path) from None


# -- the mapping ------------------------------------------------------------------------------------

@dataclass
class Mapped:
    """Plain profile data, where each field came from, and what was not used."""

    data: dict
    origin: dict[str, str]
    not_used: list[dict]
    draft_orders: list[dict] = field(default_factory=list)
    as_of: date | None = None

    def profile(self, vocabulary: Vocabulary, *, source: str | None = None) -> BundleProfile:
        for name, what in (("age_years", "no Patient with a full birthDate"),
                           ("diagnosis", "no Condition coded as CNO, CRMO or SAPHO (see docs/fhir.md)"),
                           ("lesions.count", f"no Observation {system('cno-observation')}|lesion-count")):
            if _get(self.data, name) is None:
                raise MissingData(what, file=source, field=name)
        try:
            try:
                profile = BundleProfile.model_validate(self.data, context={"vocabulary": vocabulary})
            except pydantic.ValidationError:
                validate_profile(self.data, vocabulary, source=source)   # the error, worded
                raise
        except ProfileError as exc:
            origin = self._origin_of(exc.field or "")
            if origin:
                exc.message += f" (from {origin})"
            raise
        profile._inputs_not_used = tuple(self.not_used)
        profile._as_of = self.as_of
        return profile

    def _origin_of(self, path: str) -> str | None:
        while path:
            if path in self.origin:
                return self.origin[path]
            path = path.rsplit(".", 1)[0] if "." in path else path.split("[")[0] if "[" in path else ""
        return None


def map_resources(resources: list[dict], vocabulary: Vocabulary, *, source: str | None = None,
                  as_of: date | None = None) -> Mapped:
    """Ages and months are counted to `as_of`: the caller's day, else the one set by
    `reading_as_of` (the command line's --as-of), else today (UTC)."""
    from . import reading_day

    day = as_of or reading_day() or datetime.now(timezone.utc).date()
    return _Mapper(vocabulary, source, day).run(resources)


def _get(data: dict, path: str):
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _key(resource: dict) -> str:
    ident = resource.get("id")
    return f"{resource['resourceType']}/{ident}" if ident else \
        f"{resource['resourceType']}[entry {resource.get('_entry', '?')}]"


class _Mapper:
    def __init__(self, vocabulary: Vocabulary, source: str | None, as_of: date):
        self.v = vocabulary
        self.source = source
        self.as_of = as_of
        self.data: dict = {}
        self.origin: dict[str, str] = {}
        self.not_used: list[dict] = []
        self.patient: dict | None = None
        self.birth: date | None = None
        self.latest: dict[str, list] = {}         # field -> [(time, value, key)]
        self.diagnosis: tuple | None = None       # (word, key)
        self.onset: tuple | None = None
        self.sites: list[str] = []
        self.treatments: list[tuple] = []         # (start, order, entry)
        self.orders: list[dict] = []
        self.refs: dict[str, str] = {}            # fullUrl or Type/id -> key

    # -- bookkeeping ---------------------------------------------------------------------------
    def fail(self, message: str, where: str, cls=ProfileError):
        raise cls(message, file=self.source, field=where)

    def unused(self, key: str, reason: str, element: str | None = None):
        item = {"resource": key, "element": element, "reason": reason}
        if item not in self.not_used:
            self.not_used.append(item)

    def rest(self, resource: dict, read: set[str]):
        """List the elements of a used resource that nothing read."""
        left = sorted(k for k in resource if not k.startswith("_") and k not in _TECHNICAL | read)
        if left:
            self.unused(_key(resource), "not read by the pathway", ", ".join(left))

    def set(self, path: str, value, key: str):
        node = self.data
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        self.origin[path] = key

    # -- the walk -------------------------------------------------------------------------------
    def run(self, resources: list[dict]) -> Mapped:
        for r in resources:
            if r.get("_fullUrl"):
                self.refs[r["_fullUrl"]] = _key(r)
            if r.get("id"):
                self.refs[f"{r['resourceType']}/{r['id']}"] = _key(r)
        patients = [r for r in resources if r["resourceType"] == "Patient"]
        for p in patients:
            self.read_patient(p)
        handlers = {"Condition": self.read_condition, "Observation": self.read_observation,
                    "MedicationStatement": self.read_statement,
                    "MedicationRequest": self.read_request}
        for r in resources:
            kind = r["resourceType"]
            if kind == "Patient":
                continue
            handler = handlers.get(kind)
            if handler is None:
                self.unused(_key(r), f"{kind} is not read by the pathway")
                continue
            if not self.same_patient(r):
                continue
            handler(r)
        self.finish()
        return Mapped(self.data, self.origin, self.not_used, self.orders, self.as_of)

    def same_patient(self, r: dict) -> bool:
        ref = ((r.get("subject") or r.get("patient") or {}).get("reference"))
        if not ref or self.patient is None:
            return True
        target = self.refs.get(ref) or ref
        if target != _key(self.patient) and target.startswith("Patient/"):
            self.fail(f"{_key(r)} is about {target}, but the patient is {_key(self.patient)}",
                      _key(r) + ".subject", Contradiction)
        return True

    def read_patient(self, p: dict):
        key = _key(p)
        if self.patient is not None:
            self.fail(f"two patients in one consult: {_key(self.patient)} and {key}", key,
                      Contradiction)
        self.patient = p
        if p.get("id"):
            self.set("id", str(p["id"])[:200], key)
        birth = _date(p.get("birthDate"))
        if birth is None:
            if p.get("birthDate"):
                self.unused(key, "a partial birthDate gives no age", "birthDate")
        else:
            if birth > self.as_of:
                self.fail(f"birthDate {p['birthDate']} is in the future", key + ".birthDate")
            self.birth = birth
            self.set("age_years", _years(birth, self.as_of), key)
        gender = p.get("gender")
        if gender in self.v.values("sexes"):
            self.set("sex", gender, key)
        elif gender is not None:
            self.unused(key, f"gender {gender!r} has no sex word in the vocabulary", "gender")
        self.rest(p, {"birthDate", "gender"})

    # -- Condition --------------------------------------------------------------------------------
    def read_condition(self, c: dict):
        key = _key(c)
        status = _codes_of(c.get("verificationStatus"))
        if status & _VOID:
            self.unused(key, f"verificationStatus {sorted(status & _VOID)[0]}")
            return
        word = self.diagnosis_of(c.get("code") or {}, key)
        if word is None:
            feature = self.word_of(c.get("code") or {}, "features")
            if feature:
                self.add_word("features", feature, key)
                self.rest(c, {"code", "subject", "verificationStatus"})
            else:
                self.unused(key, "its code is not a CNO, CRMO or SAPHO code the table maps")
            return
        if status & _SUSPECTED:
            word = "suspected"
        if self.diagnosis and self.diagnosis[0] != word:
            self.fail(f"{self.diagnosis[1]} says {self.diagnosis[0]} but {key} says {word}",
                      key + ".code", Contradiction)
        self.diagnosis = (word, key)
        self.set("diagnosis", word, key)
        self.read_onset(c, key)
        for index, site in enumerate(c.get("bodySite") or []):
            name = self.site_of(site, f"{key}.bodySite[{index}]")
            if name is None:
                self.unused(key, f"body site {_text(site)!r} is not one of the vocabulary's "
                                 "sites", f"bodySite[{index}]")
            elif name not in self.sites:
                self.sites.append(name)
                self.origin["lesions.sites"] = key
        self.rest(c, {"code", "subject", "verificationStatus", "bodySite", "onsetAge",
                      "onsetDateTime", "onsetPeriod"})

    def diagnosis_of(self, concept: dict, key: str) -> str | None:
        found: dict[str, str] = {}
        for coding in concept.get("coding") or []:
            sys_, code = coding.get("system"), str(coding.get("code", ""))
            sys_ = codes().get("aliases", {}).get(sys_, sys_)
            if sys_ == system("cno-diagnosis"):
                try:
                    found["cno-diagnosis"] = self.v.match("diagnoses", code)
                except ValueError as exc:
                    self.fail(str(exc), key + ".code")
            for row in codes()["diagnoses"]:
                if sys_ == system(row["system"]) and _code_matches(row["code"], code, row["system"]):
                    found[row["system"]] = row["diagnosis"]
        for name in ("cno-diagnosis", "orphanet", "icd-10-cm", "icd-10"):
            if name in found:
                return found[name]
        return None

    def read_onset(self, c: dict, key: str):
        years = None
        if "onsetAge" in c:
            age = c["onsetAge"]
            unit = age.get("code") or age.get("unit")
            factor = {"a": 1, "mo": 1 / 12, "wk": 7 / 365.25, "d": 1 / 365.25}.get(unit)
            if factor is None or age.get("value") is None:
                self.unused(key, f"onsetAge unit {unit!r} is not a UCUM time unit", "onsetAge")
            else:
                years = round(float(age["value"]) * factor, 2)
        else:
            when = _date(c.get("onsetDateTime") or (c.get("onsetPeriod") or {}).get("start"))
            if when is not None and self.birth is not None:
                years = _years(self.birth, when)
            elif when is not None:
                self.unused(key, "an onset date gives no age without the birthDate", "onset")
        for other in ("onsetString", "onsetRange"):
            if other in c:
                self.unused(key, "only onsetAge, onsetDateTime or onsetPeriod give the age at "
                                 "onset", other)
        if years is None:
            return
        if self.onset and self.onset[0] != years:
            self.fail(f"{self.onset[1]} gives onset at {self.onset[0]} years but {key} at "
                      f"{years}", key + ".onset", Contradiction)
        self.onset = (years, key)
        self.set("age_at_onset_years", years, key)

    def site_of(self, concept: dict, where: str) -> str | None:
        for coding in concept.get("coding") or []:
            if coding.get("system") == system("cno-site"):
                try:
                    return self.v.match("sites", str(coding.get("code", "")))
                except ValueError as exc:
                    self.fail(str(exc), where)
        return self.word_of(concept, "sites")

    def word_of(self, concept: dict, kind: str) -> str | None:
        """A vocabulary word named exactly (case, spaces and hyphens aside) by the concept's text
        or a coding's display; no near matches, which would be guesses."""
        allowed = set(self.v.values(kind))
        for text in [concept.get("text")] + [c.get("display") for c in concept.get("coding") or []]:
            if isinstance(text, str) and canonical(text) in allowed:
                return canonical(text)
        return None

    def add_word(self, kind: str, word: str, key: str):
        words = self.data.setdefault(kind, [])
        if word not in words:
            words.append(word)
        self.origin.setdefault(kind, key)

    # -- Observation ------------------------------------------------------------------------------
    def read_observation(self, o: dict):
        key = _key(o)
        if o.get("status") in ("entered-in-error", "cancelled"):
            self.unused(key, f"status {o['status']}")
            return
        concept = o.get("code") or {}
        row = None
        for coding in concept.get("coding") or []:
            for candidate in codes()["observations"]:
                if coding.get("system") == system(candidate["system"]) and \
                        coding.get("code") == candidate["code"]:
                    row = candidate
            if coding.get("system") == system("cno-observation"):
                spec = codes()["project_observations"].get(coding.get("code"))
                if spec is None:
                    self.fail(f"unknown code {coding.get('code')!r} (allowed: "
                              f"{', '.join(codes()['project_observations'])})", key + ".code")
                return self.read_project_observation(o, key, spec)
        if row is None:
            self.unused(key, f"code {_text(concept)!r} is not in the mapping table")
            return
        quantity = o.get("valueQuantity")
        if not quantity or quantity.get("value") is None:
            self.unused(key, "no valueQuantity", "value")
            return
        unit = quantity.get("code") or quantity.get("unit")
        factor = row["units"].get(unit)
        if factor is None:
            self.unused(key, f"unit {unit!r} is not one of {', '.join(row['units'])}",
                        "valueQuantity")
            return
        value = round(float(quantity["value"]) * factor, 6)
        self.offer(row["field"], value, o, key)
        self.rest(o, {"code", "subject", "status", "valueQuantity", "effectiveDateTime",
                      "effectivePeriod", "effectiveInstant", "issued"})

    def read_project_observation(self, o: dict, key: str, spec: dict):
        kind = spec["value"]
        if kind == "integer":
            value = o.get("valueInteger")
        elif kind == "boolean":
            value = o.get("valueBoolean")
        else:
            concept = o.get("valueCodeableConcept")
            text = o.get("valueString")
            if concept is not None:
                text = next((c.get("code") for c in concept.get("coding") or [] if c.get("code")),
                            concept.get("text"))
            value = None
            if text is not None:
                try:
                    value = self.v.match(spec["words"], str(text))
                except ValueError as exc:
                    self.fail(str(exc), key + ".value")
        if value is None:
            want = {"integer": "valueInteger", "boolean": "valueBoolean"}.get(
                kind, "valueCodeableConcept or valueString")
            self.fail(f"{o['code'].get('coding', [{}])[0].get('code')} needs {want}", key + ".value")
        if spec.get("repeats"):
            self.add_word(spec["field"], value, key)
        else:
            self.offer(spec["field"], value, o, key)
        self.rest(o, {"code", "subject", "status", "valueInteger", "valueBoolean",
                      "valueCodeableConcept", "valueString", "effectiveDateTime",
                      "effectivePeriod", "effectiveInstant", "issued"})

    def offer(self, path: str, value, o: dict, key: str):
        self.latest.setdefault(path, []).append((_when(o), value, key))

    def settle(self, path: str, offers: list[tuple]):
        """The latest value of a field wins; earlier ones are listed as superseded; two values
        of the same time (or both undated) that differ are a contradiction."""
        when = max((w or _EPOCH) for w, _, _ in offers)
        latest = [(v, k) for w, v, k in offers if (w or _EPOCH) == when]
        value, key = latest[0]
        for other_value, other_key in latest[1:]:
            if other_value != value:
                self.fail(f"{key} and {other_key} give {path} as {value} and {other_value} at "
                          "the same time", other_key, Contradiction)
            self.unused(other_key, f"the same {path} as {key}")
        for w, _, other_key in offers:
            if (w or _EPOCH) != when:
                self.unused(other_key, f"superseded by the later {key}", path)
        self.set(path, value, key)

    # -- medications --------------------------------------------------------------------------------
    def drug_of(self, r: dict, key: str) -> str | None:
        concept = r.get("medicationCodeableConcept")
        if concept is None:
            return None
        for coding in concept.get("coding") or []:
            if coding.get("system") == system("cno-drug"):
                try:
                    return self.v.match("drugs", str(coding.get("code", "")))
                except ValueError as exc:
                    self.fail(str(exc), key + ".medicationCodeableConcept")
            for row in codes()["drugs"]:
                if coding.get("system") == system(row["system"]) and \
                        str(coding.get("code")) == row["code"]:
                    return row["drug"]
        return self.word_of(concept, "drugs")

    def read_statement(self, s: dict):
        key = _key(s)
        status = s.get("status")
        if status in ("not-taken", "entered-in-error", "intended"):
            self.unused(key, f"status {status}: not taken")
            return
        drug = self.drug_of(s, key)
        if drug is None:
            self.unused(key, f"medication {_text(s.get('medicationCodeableConcept') or {})!r} "
                             "is not a drug of the vocabulary")
            return
        period = s.get("effectivePeriod") or {}
        start = _date(period.get("start"))
        end = _date(period.get("end")) or (self.as_of if status == "active" else None)
        if start is None or end is None:
            self.unused(key, "no effectivePeriod with a start (and an end unless active): "
                             "months unknown")
            return
        if end < start:
            self.fail("effectivePeriod ends before it starts", key + ".effectivePeriod")
        entry: dict = {"drug": drug, "months": _months(start, end)}
        response = None
        events: list[str] = []
        for ext in s.get("extension") or []:
            if ext.get("url") == RESPONSE_EXTENSION:
                try:
                    response = self.v.match("responses", str(ext.get("valueCode", "")))
                except ValueError as exc:
                    self.fail(str(exc), key + ".extension(treatment-response)")
            elif ext.get("url") == ADVERSE_EVENT_EXTENSION:
                try:
                    events.append(self.v.match("adverse_events", str(ext.get("valueCode", ""))))
                except ValueError as exc:
                    self.fail(str(exc), key + ".extension(treatment-adverse-event)")
            else:
                self.unused(key, f"extension {ext.get('url')!r} is not read", "extension")
        for index, reason in enumerate(s.get("statusReason") or []):
            word = self.word_of(reason, "adverse_events")
            if word:
                events.append(word)
            else:
                self.unused(key, f"statusReason {_text(reason)!r} is not an adverse event of "
                                 "the vocabulary", f"statusReason[{index}]")
        if response is None:
            self.unused(key, f"no response (extension {RESPONSE_EXTENSION})")
            return
        entry["response"] = response
        if events:
            entry["adverse_events"] = list(dict.fromkeys(events))
        if status == "active":
            entry["ongoing"] = True
        self.treatments.append((start, len(self.treatments), entry, key))
        self.rest(s, {"medicationCodeableConcept", "effectivePeriod", "status", "subject",
                      "extension", "statusReason"})

    def read_request(self, r: dict):
        """A MedicationRequest is an order being written: the order services check it against
        the consult; it is not treatment history."""
        key = _key(r)
        self.orders.append({"resource": key, "drug": self.drug_of(r, key),
                            "text": _text(r.get("medicationCodeableConcept") or {}),
                            "status": r.get("status")})
        self.unused(key, "a MedicationRequest is an order, checked by order-select and "
                         "order-sign, not treatment history")

    # -- the end ------------------------------------------------------------------------------------
    def finish(self):
        for path, offers in self.latest.items():
            self.settle(path, offers)
        if self.sites:
            self.data.setdefault("lesions", {})["sites"] = self.sites
        if self.treatments:
            self.treatments.sort(key=lambda t: (t[0], t[1]))
            self.data["treatments"] = [t[2] for t in self.treatments]
            for index, t in enumerate(self.treatments):
                self.origin[f"treatments[{index}]"] = t[3]


# -- small pure helpers ---------------------------------------------------------------------------

_EPOCH = datetime(1, 1, 1, tzinfo=timezone.utc)


def _code_matches(pattern: str, code: str, system_name: str) -> bool:
    if pattern.endswith("*"):
        return code.startswith(pattern[:-1])
    if system_name == "orphanet":
        return code.upper().removeprefix("ORPHA:") == pattern.upper().removeprefix("ORPHA:")
    return code == pattern


def _codes_of(concept: dict | None) -> set[str]:
    return {str(c.get("code")) for c in (concept or {}).get("coding") or []}


def _text(concept: dict) -> str:
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return f"{coding.get('system', '')}|{coding.get('code', '')}" + (
                f" {coding['display']}" if coding.get("display") else "")
    return ""


def _date(text) -> date | None:
    """A FHIR date or dateTime to its calendar day; a partial date (2019, 2019-05) is None."""
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _when(o: dict) -> datetime | None:
    text = o.get("effectiveDateTime") or o.get("effectiveInstant") or \
        (o.get("effectivePeriod") or {}).get("end") or (o.get("effectivePeriod") or {}).get("start") \
        or o.get("issued")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text if len(text) > 10 else text[:10])
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _shift(day: date, years: int = 0, months: int = 0) -> date:
    """`day` moved by whole years and months; 29 February becomes 28 when needed."""
    total = day.year * 12 + day.month - 1 + years * 12 + months
    year, month = divmod(total, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)


def _years(start: date, end: date) -> float:
    """Age in years: whole years, plus the fraction of the current year of life."""
    years = end.year - start.year - ((end.month, end.day) < (start.month, start.day))
    last, following = _shift(start, years), _shift(start, years + 1)
    return round(years + (end - last).days / (following - last).days, 2)


def _months(start: date, end: date) -> float:
    """Months between two days: whole calendar months, plus the fraction of the next one."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if _shift(start, months=months) > end:
        months -= 1
    last, following = _shift(start, months=months), _shift(start, months=months + 1)
    return round(months + (end - last).days / (following - last).days, 2)


def mapping_table() -> str:
    """The code table as Markdown rows (docs/fhir.md carries it; a test keeps them equal)."""
    table = codes()
    rows = ["| FHIR element | system | code | display | profile field | source |",
            "| --- | --- | --- | --- | --- | --- |"]
    for row in table["diagnoses"]:
        rows.append(f"| Condition.code | {system(row['system'])} | `{row['code']}` | "
                    f"{row['display']} | diagnosis: `{row['diagnosis']}` | {row['source']} |")
    for row in table["observations"]:
        units = ", ".join(f"{u} x{f:g}" for u, f in row["units"].items())
        rows.append(f"| Observation.code | {system(row['system'])} | `{row['code']}` | "
                    f"{row['display']} | `{row['field']}` ({units}) | {row['source']} |")
    for code, spec in table["project_observations"].items():
        value = {"integer": "valueInteger", "boolean": "valueBoolean"}.get(
            spec["value"], f"valueCodeableConcept or valueString: a word of the vocabulary's {spec.get('words')}")
        rows.append(f"| Observation.code | {system('cno-observation')} | `{code}` | {value} | "
                    f"`{spec['field']}`{' (repeats)' if spec.get('repeats') else ''} | "
                    "project CodeSystem |")
    for row in table["drugs"]:
        rows.append(f"| medicationCodeableConcept | {system(row['system'])} | `{row['code']}` | "
                    f"{row['display']} | drug: `{row['drug']}` | {row['source']} |")
    for row in table["not_mapped"]:
        rows.append(f"| not mapped | {system(row['system'])} | `{row['code']}` | "
                    f"{row['display']} | (listed in inputs_not_used) | {' '.join(row['why'].split())} |")
    return "\n".join(rows) + "\n"
