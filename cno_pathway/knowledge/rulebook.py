"""Parse the rule base (rules/*.yaml) once into typed objects that remember file and line.

A rule file is a YAML list of rules. Three files are not rule lists: `rulebook.yaml` (metadata,
pathway sections, the default test patient), `vocabulary.yaml` (the words) and `regimens.yaml`
(doses). A wrong key, type, operator, fact or vocabulary value is a RuleError naming file, line
and rule id. Semantic checks across rules (citations, grades, conflicts) live in lint.py.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conditions import (LIST_TESTS, OPERATORS, PRESENCE, All, Any_, Compare,
                         Condition, Has, Not, Presence)
from ..errors import InputError, RuleError
from .factschema import FACT_SCHEMA
from .folders import check_folder
from .vocabulary import Vocabulary, load_vocabulary
from ..yamlio import (Document, bounded, escape_controls, knowledge_snapshot, read_bytes,
                      read_document, short_label)

RULEBOOK_FILE = "rulebook.yaml"
REGIMENS_FILE = "regimens.yaml"
VOCABULARY_FILE = "vocabulary.yaml"
FORMULARY_FILE = "formulary.yaml"   # a hospital's maximum doses (knowledge/formulary.py), not rules
RESERVED_FILES = (RULEBOOK_FILE, VOCABULARY_FILE, REGIMENS_FILE, FORMULARY_FILE)

KINDS = ("recommend", "consider", "avoid", "alert", "investigate", "monitor")
STATUSES = ("draft", "reviewed", "retired")
GRADES = ("A", "B", "C", "D")
RULE_ID = re.compile(r"^CNO(-[A-Z0-9]+)+$")
CITATION = re.compile(r"^[a-z0-9][a-z0-9-]*#[a-z0-9][a-z0-9-]*$")
MAX_PRIORITY = 60000  # the engine's priority is an unsigned short; the top is kept for its own rules

_RULE_KEYS = {"id", "title", "status", "stage", "priority", "description", "when", "then",
              "evidence", "tests", "why_not"}
_SUGGEST_KEYS = {"kind", "therapy", "regimen", "rationale"}
_EVIDENCE_KEYS = {"grade", "cites"}
_TEST_KEYS = {"fires", "silent"}


@dataclass(frozen=True)
class Suggest:
    """What a suggestion rule proposes: its kind, therapy, regimen and rationale."""

    kind: str
    therapy: str | None
    regimen: str | None
    rationale: str


@dataclass(frozen=True)
class Evidence:
    """A rule's grade and the findings it cites ('source#finding')."""

    grade: str
    cites: tuple[str, ...]


@dataclass(frozen=True)
class RuleTest:
    """A profile the rule must fire on, or stay silent on (`rules test`)."""

    expect: str            # "fires" | "silent"
    profile: dict          # partial profile, completed from the rulebook's test defaults
    line: int | None


@dataclass(frozen=True)
class Rule:
    """One parsed rule, with the file and line it was written at."""

    id: str
    title: str
    status: str
    stage: str
    priority: int
    description: str
    when: Condition | None
    derive: dict | None          # {fact: value} for a staging rule
    suggest: Suggest | None      # or one suggestion
    evidence: Evidence | None
    tests: tuple[RuleTest, ...]
    file: str
    line: int
    why_not: str = ""            # optional: why the option does not apply, in clinical words

    @property
    def is_staging(self) -> bool:
        return self.derive is not None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Section:
    """A pathway section (stage) of rulebook.yaml: its step number and label."""

    name: str
    step: int
    label: str


@dataclass
class RuleBook:
    """The whole parsed rule base."""

    rules: list[Rule]
    vocabulary: Vocabulary
    sections: dict[str, Section]
    test_defaults: dict
    name: str
    version: str
    directory: Path
    messages: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    regimens: Any = None               # regimens.Regimens, loaded by regimens.py
    by_id: dict[str, Rule] = field(default_factory=dict)

    def __post_init__(self):
        self.by_id = {r.id: r for r in self.rules}

    @property
    def active(self) -> list[Rule]:
        """Rules the engine runs: everything but retired ones."""
        return [r for r in self.rules if r.status != "retired"]

    def label(self, value: str) -> str:
        """A readable label for a vocabulary value used in explanations."""
        v = self.vocabulary
        if value in v.drug_classes:
            return v.drug_classes[value].label
        if value in v.stages:
            return v.stages[value].label
        return value.replace("_", " ")


def find_formulary(rules_dir: Path | str | None, given: Path | str | None) -> Path | None:
    """The formulary to use (knowledge/formulary.py reads it): the one given, else
    `formulary.yaml` beside the rules, else none. Here, so that a consult without a formulary
    never imports the formulary's reader."""
    if given is not None:
        return Path(given)
    if rules_dir is not None:
        beside = Path(rules_dir) / FORMULARY_FILE
        if beside.is_file():
            return beside
    return None


def rule_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.yaml") if p.name not in RESERVED_FILES)


def content_digest(*directories: Path) -> str:
    """sha256 over the names and bytes of every regular file in the folders (sorted:
    reproducible). Inside a knowledge snapshot the bytes are those the parser reads."""
    h = hashlib.sha256()
    for directory in directories:
        base = Path(directory)
        for path in check_folder(base, (), "knowledge"):
            h.update(f"{base.name}/{path.name}\0".encode())
            h.update(read_bytes(path, error=RuleError, label=short_label(path), regular_only=True))
            h.update(b"\0")
    return "sha256:" + h.hexdigest()


def load_rulebook(directory: Path, *, seeds: Path | None = None,
                  skipped: list[tuple[str, InputError]] | None = None) -> RuleBook:
    """Parse the rule folder into a RuleBook; the first problem raises a RuleError.

    With `skipped` (lint's way), a rule file or regimens.yaml that does not parse is recorded
    there as ("rules" or "regimens", error) and left out, so every broken file is reported in
    one run. The vocabulary and rulebook.yaml, which every rule needs, always raise. Each file
    is read once: the digest covers exactly the bytes that were parsed."""
    directory = Path(directory)
    check_folder(directory, (RULEBOOK_FILE, VOCABULARY_FILE), "rule")
    if seeds is not None:  # the digest reads it: it must look like an evidence folder first
        from .evidence import check_seed_folder

        check_seed_folder(seeds)
    with knowledge_snapshot():
        return _load_rulebook(directory, seeds, skipped)


def _load_rulebook(directory, seeds, skipped) -> RuleBook:
    vocabulary = load_vocabulary(directory)
    meta = read_document(directory / RULEBOOK_FILE, error=RuleError,
                         label=short_label(directory / RULEBOOK_FILE), regular_only=True)
    sections, test_defaults, name, version, messages = _parse_meta(meta)
    rules: list[Rule] = []
    for path in rule_files(directory):
        try:
            doc = read_document(path, error=RuleError, label=short_label(path), regular_only=True)
            rules.extend(parse_rule_file(doc, vocabulary, sections))
        except InputError as exc:
            if skipped is None:
                raise
            skipped.append(("rules", exc))
    book = RuleBook(rules=rules, vocabulary=vocabulary, sections=sections,
                    test_defaults=test_defaults, name=name, version=version, directory=directory,
                    messages=messages)
    book.digest = content_digest(*(d for d in (directory, seeds) if d is not None))
    from .regimens import load_regimens  # regimens depend on the rulebook's vocabulary

    try:
        book.regimens = load_regimens(directory, vocabulary)
    except InputError as exc:
        if skipped is None:
            raise
        skipped.append(("regimens", exc))
    return book


# -- messages: authored text with a tiny placeholder syntax -------------------------------------
# A message in rulebook.yaml may name the values the consult fills in, as {name}; {{ and }} are
# literal braces. The text is data: it is filled by fill() below, never by str.format (which
# would let a stray {x.__class__} or {0:>999999999} reach Python), and every placeholder is
# checked against MESSAGE_FIELDS when the rule base loads (an unknown one is a file:line error).
MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    "disclaimer": frozenset({"populations"}),
    "outside_pathway": frozenset({"stage"}),
    "history_intolerance": frozenset({"detail"}),
    "adult_on_pediatric_evidence": frozenset(),
    "no_dose": frozenset(),
    "adult_dose": frozenset({"population"}),
    "adult_dose_uncapped": frozenset(),
    "intended_use": frozenset(),
}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z][a-z0-9_]*)\}|[{}]")


def placeholders(text: str) -> list[str]:
    """The placeholder names in a message; ValueError for a brace that is not part of one."""
    names = []
    for match in _PLACEHOLDER.finditer(text):
        token = match.group()
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError(f"stray {token!r} at character {match.start() + 1}: a placeholder "
                             "is {name} (lower-case letters, digits, _); write {{ or }} for a brace")
        names.append(match.group(1))
    return names


def fill(text: str, **values: str) -> str:
    """Substitute {name} placeholders in an authored message (see above); unknown names stay."""
    def one(match):
        token = match.group()
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        return str(values[name]) if name in values else token

    return _PLACEHOLDER.sub(one, text)


def _check_messages(messages: dict, doc: Document) -> None:
    for name, text in messages.items():
        allowed = MESSAGE_FIELDS.get(name, frozenset())
        try:
            used = placeholders(text)
        except ValueError as exc:
            raise RuleError(f"message {bounded(name)}: {exc}", file=doc.source,
                            line=doc.line(("messages", name))) from None
        for placeholder in used:
            if placeholder not in allowed:
                known = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"
                raise RuleError(f"message {bounded(name)}: unknown placeholder {{{placeholder}}} "
                                f"(this message can use: {known})", file=doc.source,
                                line=doc.line(("messages", name)))


def _parse_meta(doc: Document):
    data = doc.data

    def fail(message, path=()):
        raise RuleError(message, file=doc.source, line=doc.line(path))

    if not isinstance(data, dict):
        fail("rulebook.yaml must be a mapping")
    unknown = set(data) - {"name", "version", "sections", "test_defaults", "messages"}
    if unknown:
        fail(f"unknown key {bounded(sorted(unknown)[0])}", (sorted(unknown)[0],))
    for key in ("name", "version"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], (str, int, float))):
            fail(f"{key} must be text", (key,))
    raw_sections = data.get("sections") or {}
    if not isinstance(raw_sections, dict):
        fail("sections must map each pathway section to its step and label", ("sections",))
    sections = {}
    for name, spec in raw_sections.items():
        if (not isinstance(spec, dict) or isinstance(spec.get("step"), bool)
                or not isinstance(spec.get("step"), int)
                or not isinstance(spec.get("label", name), str)):
            fail(f"section {bounded(name)} needs a step number and a label", ("sections", name))
        if set(spec) - {"step", "label"}:
            fail(f"section {bounded(name)}: unknown key {bounded(sorted(set(spec) - {'step', 'label'})[0])}",
                 ("sections", name))
        sections[name] = Section(name, spec["step"], spec.get("label", name))
    if not sections:
        fail("rulebook.yaml needs sections", ("sections",))
    defaults = data.get("test_defaults") or {}
    if not isinstance(defaults, dict):
        fail("test_defaults must be a mapping (a partial profile)", ("test_defaults",))
    messages = data.get("messages") or {}
    if not isinstance(messages, dict) or not all(isinstance(v, str) for v in messages.values()):
        fail("messages must map names to text", ("messages",))
    _check_messages(messages, doc)
    return sections, defaults, str(data.get("name", "")), str(data.get("version", "0")), messages


def _close(word, choices, n):
    """Did-you-mean candidates (difflib imported only when a message needs them)."""
    import difflib

    return difflib.get_close_matches(str(word)[:100], list(choices), n=n)


class _RuleParser:
    def __init__(self, doc: Document, vocabulary: Vocabulary, sections: dict):
        self.doc = doc
        self.vocab = vocabulary
        self.sections = sections
        self.rule_id: str | None = None

    def fail(self, message: str, path: tuple) -> None:
        raise RuleError(message, file=self.doc.source, line=self.doc.line(path), rule=self.rule_id)

    def keys(self, mapping: dict, allowed: set, path: tuple, what: str):
        for key in mapping:
            if key not in allowed:
                close = _close(key, sorted(allowed), 1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.fail(f"unknown key {bounded(key)} in {what}{hint} (allowed: {', '.join(sorted(allowed))})",
                          path + (key,))

    def text(self, value, path, what, required=True):
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{what} must be non-empty text", path)
        return value.strip()

    # -- a rule ---------------------------------------------------------------------------
    def rule(self, raw: Any, index: int) -> Rule:
        path = (index,)
        self.rule_id = None
        if not isinstance(raw, dict):
            self.fail("each rule must be a mapping with id, title, when, then...", path)
        rid = raw.get("id")
        if isinstance(rid, str):  # shown in every message: bounded, escapes made visible
            self.rule_id = escape_controls(rid if len(rid) <= 100 else rid[:100] + "...")
        if not isinstance(rid, str) or not RULE_ID.match(rid):
            self.fail(f"rule id {bounded(rid)} is malformed: use CNO- followed by upper-case words, "
                      "e.g. CNO-ESC-GC-BRIDGE", path + ("id",))
        self.keys(raw, _RULE_KEYS, path, "a rule")
        for key in ("title", "status", "stage", "when", "then"):
            if key not in raw:
                self.fail(f"missing required key {key!r}", path)
        title = self.text(raw["title"], path + ("title",), "title")
        status = raw["status"]
        if not isinstance(status, str) or status not in STATUSES:
            self.fail(f"status {bounded(status)} is not one of {', '.join(STATUSES)}", path + ("status",))
        stage = raw["stage"]
        if not isinstance(stage, str) or stage not in self.sections:
            self.fail(f"stage {bounded(stage)} is not a pathway section (allowed: "
                      f"{', '.join(self.sections)})", path + ("stage",))
        priority = raw.get("priority", 100)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
            self.fail(f"priority must be a whole number from 0 to {MAX_PRIORITY}", path + ("priority",))
        description = self.text(raw.get("description"), path + ("description",), "description",
                                required=False) or ""
        when = self.condition(raw["when"], path + ("when",))
        derive, suggest = self.then(raw["then"], path + ("then",))
        evidence = self.evidence(raw.get("evidence"), path + ("evidence",))
        tests = self.tests(raw.get("tests"), path + ("tests",))
        why_not = self.text(raw.get("why_not"), path + ("why_not",), "why_not", required=False) or ""
        return Rule(id=rid, title=title, status=status, stage=stage, priority=priority,
                    description=description, when=when, derive=derive, suggest=suggest,
                    evidence=evidence, tests=tests, file=self.doc.source,
                    line=self.doc.line(path) or 0, why_not=" ".join(why_not.split()))

    def then(self, raw, path):
        if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("suggest", "derive"):
            self.fail("then must hold exactly one of 'suggest' or 'derive'", path)
        key, value = next(iter(raw.items()))
        if key == "derive":
            if not isinstance(value, dict) or not value:
                self.fail("derive must map derived facts to values, e.g. {stage: nsaid_refractory}",
                          path + ("derive",))
            derive = {}
            for fact, v in value.items():
                ftype = self.fact(fact, path + ("derive", fact))
                if not ftype.derived_by_rules:
                    self.fail(f"{fact!r} comes from the profile; a rule may only derive "
                              f"{', '.join(n for n, t in FACT_SCHEMA.items() if t.derived_by_rules)}",
                              path + ("derive", fact))
                derive[fact] = self.vocab_value(ftype.vocabulary, v, path + ("derive", fact))
            return derive, None
        if not isinstance(value, dict):
            self.fail("suggest must be a mapping with kind, therapy, regimen, rationale", path + ("suggest",))
        p = path + ("suggest",)
        self.keys(value, _SUGGEST_KEYS, p, "suggest")
        kind = value.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            self.fail(f"kind {bounded(kind)} is not one of {', '.join(KINDS)}", p + ("kind",))
        therapy = value.get("therapy")
        if therapy is not None:
            therapy = self.vocab_value("therapies", therapy, p + ("therapy",))
        regimen = value.get("regimen")
        if regimen is not None and (not isinstance(regimen, str) or not regimen):
            self.fail("regimen must be the id of an entry in regimens.yaml", p + ("regimen",))
        rationale = self.text(value.get("rationale"), p + ("rationale",), "rationale")
        return None, Suggest(kind=kind, therapy=therapy, regimen=regimen, rationale=rationale)

    def evidence(self, raw, path):
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.fail("evidence must be a mapping with grade and cites", path)
        self.keys(raw, _EVIDENCE_KEYS, path, "evidence")
        grade = raw.get("grade")
        if not isinstance(grade, str) or grade not in GRADES:
            self.fail(f"grade {bounded(grade)} is not one of {', '.join(GRADES)}", path + ("grade",))
        cites = raw.get("cites", [])
        if not isinstance(cites, list):
            self.fail("cites must be a list of 'source#finding'", path + ("cites",))
        for i, cite in enumerate(cites):
            if not isinstance(cite, str) or not CITATION.match(cite):
                self.fail(f"citation {bounded(cite)} is malformed: write 'source-id#finding-id'",
                          path + ("cites", i))
        return Evidence(grade=grade, cites=tuple(cites))

    def tests(self, raw, path):
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.fail("tests must be a mapping with 'fires' and 'silent' lists of profiles", path)
        self.keys(raw, _TEST_KEYS, path, "tests")
        out = []
        for expect in ("fires", "silent"):
            items = raw.get(expect, [])
            if not isinstance(items, list):
                self.fail(f"tests.{expect} must be a list of (partial) profiles", path + (expect,))
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    self.fail("a test profile must be a mapping of profile fields", path + (expect, i))
                out.append(RuleTest(expect, item, self.doc.line(path + (expect, i))))
        return tuple(out)

    # -- conditions -----------------------------------------------------------------------
    def fact(self, name, path):
        if not isinstance(name, str) or name not in FACT_SCHEMA:
            close = _close(name, FACT_SCHEMA, 3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            self.fail(f"unknown fact {bounded(name)}{hint}", path)
        return FACT_SCHEMA[name]

    def vocab_value(self, kind, value, path):
        if not isinstance(value, str):
            self.fail(f"expected a name from the {kind.replace('_', ' ')} vocabulary, got {bounded(value)}", path)
        try:
            name = self.vocab.match(kind, value)
        except ValueError as exc:
            self.fail(str(exc), path)
        if name != value:
            self.fail(f"write the vocabulary name {name!r}, not {bounded(value)}", path)
        return name

    def typed_value(self, fact, ftype, value, path):
        if ftype.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                self.fail(f"{fact} is a number; got {bounded(value)}", path)
            return float(value)
        if ftype.kind == "bool":
            if not isinstance(value, bool):
                self.fail(f"{fact} is true or false; got {bounded(value)}", path)
            return value
        return self.vocab_value(ftype.vocabulary, value, path)

    def condition(self, raw, path) -> Condition | None:
        if raw is None:
            self.fail("when must hold a condition (use {all: []} for a rule that always applies)", path)
        if not isinstance(raw, dict) or len(raw) != 1:
            self.fail(f"a condition is a mapping with exactly one operator "
                      f"({', '.join(OPERATORS)})", path)
        op, arg = next(iter(raw.items()))
        line = self.doc.line(path + (op,))
        if op not in OPERATORS:
            close = _close(op, OPERATORS, 1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.fail(f"unknown operator {bounded(op)}{hint} (allowed: {', '.join(OPERATORS)})", path + (op,))
        p = path + (op,)
        if op in ("all", "any"):
            if not isinstance(arg, list):
                self.fail(f"{op} takes a list of conditions", p)
            items = tuple(self.condition(item, p + (i,)) for i, item in enumerate(arg))
            return All(line, items) if op == "all" else Any_(line, items)
        if op == "not":
            return Not(line, self.condition(arg, p))
        if op in PRESENCE:
            if not isinstance(arg, str):
                self.fail(f"{op} takes a fact name", p)
            self.fact(arg, p)
            return Presence(line, op, arg)
        if not isinstance(arg, dict) or not arg:
            self.fail(f"{op} takes a mapping of fact: value", p)
        parts = []
        for fact, value in arg.items():
            fp = p + (fact,)
            ftype = self.fact(fact, fp)
            if op in LIST_TESTS:
                if ftype.kind != "list":
                    self.fail(f"{op} works on list facts; {fact} is a {ftype.kind}", fp)
                values = value if isinstance(value, list) else [value]
                if not values:
                    self.fail(f"{op} needs at least one value", fp)
                parts.append(Has(line, op, fact, tuple(
                    self.vocab_value(ftype.vocabulary, v, fp) for v in values)))
            elif op == "in":
                if ftype.kind == "list":
                    self.fail(f"{fact} is a list fact: use has/lacks", fp)
                if not isinstance(value, list) or not value:
                    self.fail("in takes a non-empty list of values", fp)
                parts.append(Compare(line, op, fact, tuple(
                    self.typed_value(fact, ftype, v, fp + (i,)) for i, v in enumerate(value))))
            else:
                if ftype.kind == "list":
                    self.fail(f"{fact} is a list fact: use has/lacks", fp)
                if op in ("gt", "gte", "lt", "lte") and ftype.kind != "number":
                    self.fail(f"{op} compares numbers; {fact} is a {ftype.kind}", fp)
                parts.append(Compare(line, op, fact, self.typed_value(fact, ftype, value, fp)))
        return parts[0] if len(parts) == 1 else All(line, tuple(parts))


def parse_rule_file(doc: Document, vocabulary: Vocabulary, sections: dict) -> list[Rule]:
    parser = _RuleParser(doc, vocabulary, sections)
    if doc.data is None:
        return []
    if not isinstance(doc.data, list):
        parser.fail("a rule file is a YAML list of rules (each item starting with '- id:')", ())
    return [parser.rule(raw, i) for i, raw in enumerate(doc.data)]
