"""The vocabulary a profile and a rule may use, read from the rule base's `vocabulary.yaml`.

Keeping the words as data lets a rule author add a drug or a site without touching Python.
Names are matched forgivingly (case, spaces, hyphens); an unknown name is an error that lists
the closest known names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RuleError
from ..yamlio import Document, bounded, read_document, short_label

VOCABULARY_FILE = "vocabulary.yaml"
MAX_NAME = 200  # no vocabulary name comes near; longer values skip the did-you-mean

# The lists a profile or a condition can name; each maps to a key of vocabulary.yaml.
_LIST_KEYS = ("sexes", "diagnoses", "imaging", "sites", "features", "red_flags", "biopsy",
              "hla_b27", "responses", "adverse_events", "disease_activity")


# The values of the derived fact disease_activity (patient/facts.py computes them, so a rule base
# may relabel them but not add or drop one).
DISEASE_ACTIVITY = ("active", "inactive", "not_recorded")

_SINGULAR = {"sexes": "sex", "diagnoses": "diagnosis", "imaging": "imaging", "sites": "site",
             "features": "feature", "red_flags": "red flag", "biopsy": "biopsy result",
             "hla_b27": "HLA-B27 value", "responses": "response", "adverse_events": "adverse event",
             "disease_activity": "disease activity value",
             "drugs": "drug", "drug_classes": "drug class", "stages": "stage",
             "procedures": "procedure", "therapies": "therapy", "flags": "flag"}


def canonical(name: str) -> str:
    """'Zoledronic acid' -> 'zoledronic_acid'."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@dataclass(frozen=True)
class DrugClass:
    """A drug class: its label, drugs and what counts as an adequate trial."""

    name: str
    label: str
    drugs: tuple[str, ...]
    adequate_trial_months: float | None
    adequate_trial_basis: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """A treatment stage the staging rules derive, with its step and label."""

    name: str
    step: int
    label: str


@dataclass
class Vocabulary:
    """Every allowed word, by list, plus drug classes, procedures and stages."""

    words: dict[str, dict[str, str]]           # list name -> {value: label}
    drug_classes: dict[str, DrugClass]
    procedures: dict[str, str]
    stages: dict[str, Stage]
    source: str = ""
    drug_to_class: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for cls in self.drug_classes.values():
            for drug in cls.drugs:
                self.drug_to_class[drug] = cls.name

    # -- lookups ---------------------------------------------------------------------------
    def values(self, kind: str) -> list[str]:
        if kind == "drugs":
            return sorted(set(self.drug_to_class) | set(self.drug_classes))
        if kind == "drug_classes":
            return list(self.drug_classes)
        if kind == "stages":
            return list(self.stages)
        if kind == "procedures":
            return list(self.procedures)
        if kind == "therapies":
            return self.values("drugs") + [p for p in self.procedures if p not in self.drug_to_class]
        return list(self.words[kind])

    def ordered(self, kind: str) -> tuple[str, ...]:
        """`values(kind)` built once: a loaded vocabulary does not change, and facts and checks
        ask for the same lists for every patient."""
        kept = self.__dict__.setdefault("_ordered_values", {})
        found = kept.get(kind)
        if found is None:
            found = kept[kind] = tuple(self.values(kind))
        return found

    def _exact(self, kind: str) -> frozenset:
        """The names `match` returns unchanged (allowed, canonical, not too long), built once:
        most profiles spell every word so."""
        kept = self.__dict__.setdefault("_exact_names", {})
        found = kept.get(kind)
        if found is None:
            found = kept[kind] = frozenset(n for n in self.ordered(kind)
                                           if len(n) <= MAX_NAME and canonical(n) == n)
        return found

    def match(self, kind: str, value: str) -> str:
        """Return the canonical name of `value` in list `kind`, or raise ValueError.

        Work is bounded by the value's length: a value longer than MAX_NAME is refused before
        any normalising or did-you-mean (a 1 MB string reused 400 times costs nothing), and the
        message shows a bounded, escaped prefix."""
        if type(value) is str and value in self._exact(kind):
            return value
        allowed = self.ordered(kind)
        if len(value) > MAX_NAME:
            raise ValueError(f"unknown {_SINGULAR.get(kind, kind)} {bounded(value)}: longer than "
                             f"any name (allowed: {', '.join(allowed)})")
        name = canonical(value)
        if name in allowed:
            return name
        import difflib  # only for a message: not imported at every start

        close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown {_SINGULAR.get(kind, kind)} {bounded(value)}{hint} "
                         f"(allowed: {', '.join(allowed)})")

    def class_of(self, therapy: str | None) -> str | None:
        """The drug class of a drug, a class name itself, or None for a procedure."""
        if therapy is None:
            return None
        if therapy in self.drug_classes:
            return therapy
        return self.drug_to_class.get(therapy)

    def label(self, kind: str, value: str) -> str:
        if kind == "drug_classes":
            return self.drug_classes[value].label
        if kind == "stages":
            return self.stages[value].label
        if kind == "procedures":
            return self.procedures[value]
        return self.words.get(kind, {}).get(value, value)


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _check_types(data: dict, fail) -> None:
    """The shape of every entry, before anything hashes, sorts or labels it: a drug given as a
    number, a class or stage that is not a mapping, a label that is not text are file:line
    errors, never a crash and never silently turned into text."""
    for key in ("drug_classes", "procedures", "stages"):
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            fail(f"{key} must be a mapping of names", (key,))
    for name, spec in (data.get("drug_classes") or {}).items():
        where = ("drug_classes", name)
        if not isinstance(spec, dict):
            fail(f"drug class {bounded(name)} needs a label and a list of drugs", where)
        if not _names(spec.get("drugs")) or any(canonical(d) != d for d in spec["drugs"]):
            fail(f"drug class {bounded(name)}: drugs must be a list of canonical names "
                 "(lower-case words joined by '_')", where + ("drugs",))
        if not isinstance(spec.get("label", name), str):
            fail(f"drug class {bounded(name)}: label must be text", where + ("label",))
        basis = spec.get("adequate_trial_basis", [])
        if basis is not None and not (isinstance(basis, list) and all(isinstance(b, str) for b in basis)):
            fail(f"drug class {bounded(name)}: adequate_trial_basis must be a list of citations",
                 where + ("adequate_trial_basis",))
    for name, label in (data.get("procedures") or {}).items():
        if not isinstance(label, str) or canonical(name) != name:
            fail(f"procedure {bounded(name)} needs a canonical name and a text label", ("procedures", name))
    for name, spec in (data.get("stages") or {}).items():
        if (not isinstance(spec, dict) or isinstance(spec.get("step"), bool)
                or not isinstance(spec.get("step"), int) or not isinstance(spec.get("label", name), str)):
            fail(f"stage {bounded(name)} needs a step number and a text label", ("stages", name))


def load_vocabulary(rules_dir: Path) -> Vocabulary:
    path = Path(rules_dir) / VOCABULARY_FILE
    doc = read_document(path, error=RuleError, label=short_label(path), regular_only=True)
    return vocabulary_from_document(doc)


def vocabulary_from_document(doc: Document) -> Vocabulary:
    data = doc.data

    def fail(message, path=()):
        raise RuleError(message, file=doc.source, line=doc.line(path))

    if not isinstance(data, dict):
        fail("the vocabulary must be a mapping of lists")
    _check_types(data, fail)
    known = set(_LIST_KEYS) | {"drug_classes", "procedures", "stages"}
    for key in data:
        if key not in known:
            fail(f"unknown key {bounded(key)} (allowed: {', '.join(sorted(known))})", (key,))
    words: dict[str, dict[str, str]] = {}
    for key in _LIST_KEYS:
        value = data.get(key)
        if value is None and key == "disease_activity":
            value = list(DISEASE_ACTIVITY)   # the values the facts step derives; labels optional
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            words[key] = {v: v.replace("_", " ") for v in value}
        elif isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            words[key] = dict(value)
        else:
            fail(f"{key} must be a list of names or a mapping name: label", (key,))
        for name in words[key]:
            if canonical(name) != name:
                fail(f"{key}: {name!r} is not a canonical name (use {canonical(name)!r})", (key,))
    if set(words["disease_activity"]) != set(DISEASE_ACTIVITY):
        fail(f"disease_activity must name exactly {', '.join(DISEASE_ACTIVITY)} (the values the "
             "facts step derives); only their labels are yours", ("disease_activity",))
    classes: dict[str, DrugClass] = {}
    raw_classes = data.get("drug_classes")
    if not isinstance(raw_classes, dict):
        fail("drug_classes must be a mapping", ("drug_classes",))
    seen_drugs: dict[str, str] = {}
    for name, spec in raw_classes.items():
        where = ("drug_classes", name)
        if not isinstance(spec, dict) or not isinstance(spec.get("drugs"), list):
            fail(f"drug class {name!r} needs a label and a list of drugs", where)
        extra = set(spec) - {"label", "drugs", "adequate_trial_months", "adequate_trial_basis"}
        if extra:
            fail(f"drug class {bounded(name)}: unknown key {bounded(sorted(extra)[0])}", where)
        months = spec.get("adequate_trial_months")
        if months is not None and (isinstance(months, bool) or not isinstance(months, (int, float))
                                   or months < 0):
            fail(f"drug class {name!r}: adequate_trial_months must be a number >= 0 or null", where)
        basis = spec.get("adequate_trial_basis", [])
        if months is not None and not basis:
            fail(f"drug class {name!r}: an adequate trial length needs adequate_trial_basis "
                 "(citations of the passage that sets it)", where)
        for drug in spec["drugs"]:
            if drug in seen_drugs:
                fail(f"drug {drug!r} is listed in both {seen_drugs[drug]} and {name}", where)
            seen_drugs[drug] = name
        classes[name] = DrugClass(name=name, label=str(spec.get("label", name)),
                                  drugs=tuple(spec["drugs"]), adequate_trial_months=months,
                                  adequate_trial_basis=tuple(basis))
    procedures = data.get("procedures") or {}
    stages: dict[str, Stage] = {}
    for name, spec in (data.get("stages") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("step"), int):
            fail(f"stage {name!r} needs a step number and a label", ("stages", name))
        if set(spec) - {"step", "label"}:
            fail(f"stage {name!r}: unknown key {sorted(set(spec) - {'step', 'label'})[0]!r} "
                 "(a label with a comma needs quotes)", ("stages", name))
        stages[name] = Stage(name=name, step=spec["step"], label=str(spec.get("label", name)))
    return Vocabulary(words=words, drug_classes=classes, procedures=dict(procedures),
                      stages=stages, source=doc.source)
