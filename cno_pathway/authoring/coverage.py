"""`rules coverage`: which rules and which condition branches the tests exercise.

The exercising profiles are every rule's own tests (completed from test_defaults) and the
teaching cases in examples/ (a case file's `profile:`, or a bare profile file). A rule is covered
when some profile fires it. A branch is one leaf condition, which should be seen both true and
false, or one alternative of an `any`, which should be seen holding; leaves are evaluated on
each profile's final facts (derived stages included). A teaching case that does not validate
against this rule base's vocabulary is listed as skipped, not silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..teaching.cases import case_paths
from ..knowledge.conditions import All, Any_, Condition, Not, describe, evaluate, leaves, walk
from ..errors import InputError, ProfileError
from ..engine.evaluation import reference_evaluate
from ..patient.facts import derive_facts
from ..patient.profile import validate_profile
from ..resources import examples_dir
from ..knowledge.rulebook import Rule, RuleBook
from .ruletest import complete
from ..yamlio import read_document, short_label


@dataclass
class Branch:
    line: int | None
    text: str
    alternative: bool          # an `any` alternative (needs: seen holding) or a leaf (both ways)
    true: int = 0
    false: int = 0

    @property
    def covered(self) -> bool:
        return self.true > 0 and (self.alternative or self.false > 0)

    @property
    def missing(self) -> str:
        if not self.true:
            return "never holds" if self.alternative else "never true"
        return "" if self.covered else "never false"

    def to_json(self) -> dict:
        return {"line": self.line, "condition": self.text,
                "kind": "alternative" if self.alternative else "condition",
                "true": self.true, "false": self.false, "covered": self.covered}


@dataclass
class RuleCoverage:
    rule: Rule
    fired_by_tests: int = 0
    fired_by_cases: int = 0
    branches: list[tuple[Condition, Branch]] = field(default_factory=list)

    @property
    def fired_by(self) -> int:
        return self.fired_by_tests + self.fired_by_cases

    @property
    def branches_covered(self) -> int:
        return sum(b.covered for _, b in self.branches)

    def to_json(self) -> dict:
        return {"rule": self.rule.id, "where": self.rule.where, "fired_by_tests": self.fired_by_tests,
                "fired_by_cases": self.fired_by_cases,
                "branches": [b.to_json() for _, b in self.branches]}


@dataclass
class Exercise:
    label: str
    origin: str            # "test" | "case"
    data: dict


@dataclass
class CoverageReport:
    rules: list[RuleCoverage]
    tests: int
    cases: int
    skipped: list[str]     # profiles that could not be used, with the reason

    @property
    def never_fired(self) -> list[RuleCoverage]:
        return [c for c in self.rules if c.fired_by == 0]

    @property
    def branch_totals(self) -> tuple[int, int]:
        return (sum(c.branches_covered for c in self.rules), sum(len(c.branches) for c in self.rules))

    def to_json(self) -> dict:
        covered, total = self.branch_totals
        return {"profiles": {"tests": self.tests, "cases": self.cases}, "skipped": self.skipped,
                "never_fired": [c.rule.id for c in self.never_fired],
                "branches": {"covered": covered, "total": total},
                "rules": [c.to_json() for c in self.rules]}


def _branches(rule: Rule, label) -> list[tuple[Condition, Branch]]:
    out = [(leaf, Branch(leaf.line, describe(leaf, label), False)) for leaf in leaves(rule.when)]
    for node in walk(rule.when):
        if isinstance(node, Any_):  # a leaf alternative is already a leaf branch
            out += [(item, Branch(item.line, "either: " + describe(item, label), True))
                    for item in node.items if isinstance(item, (All, Any_, Not))]
    return sorted(out, key=lambda pair: (pair[1].line or 0, pair[1].alternative, pair[1].text))


def case_profiles(directory: Path | None = None) -> tuple[list[Exercise], list[str]]:
    """Profiles of the teaching cases: a file with a `profile:` mapping (plus title, teaches,
    expect... metadata) gives that mapping; any other file is read as a bare profile."""
    directory = directory if directory is not None else examples_dir()
    out, skipped = [], []
    for path in case_paths(directory) if directory else []:
        try:
            doc = read_document(path, error=ProfileError, label=short_label(path))
        except InputError as exc:
            skipped.append(str(exc))
            continue
        data = doc.data
        if isinstance(data, dict) and isinstance(data.get("profile"), dict):
            data = data["profile"]
        out.append(Exercise(f"teaching case {doc.source}", "case", data))
    return out, skipped


def coverage(book: RuleBook, examples: Path | None = None) -> CoverageReport:
    """Run the tests' profiles and the teaching cases through the reference evaluator (the
    engine fires the same rules: the differential test checks it) and count what they reach."""
    order = {"stage": list(book.vocabulary.stages)}
    exercises = [Exercise(f"{r.id} {t.expect} test (line {t.line})", "test",
                          complete(book.test_defaults, t.profile))
                 for r in book.active for t in r.tests]
    cases, skipped = case_profiles(examples)
    result = {r.id: RuleCoverage(r, branches=_branches(r, book.label)) for r in book.active}
    used = {"test": 0, "case": 0}
    for exercise in exercises + cases:
        try:
            profile = validate_profile(exercise.data, book.vocabulary)
        except InputError as exc:
            skipped.append(f"{exercise.label}: {exc.field + ': ' if exc.field else ''}{exc.message}")
            continue
        used[exercise.origin] += 1
        evaluation = reference_evaluate(book.active, derive_facts(profile, book.vocabulary), order)
        for rule in book.active:
            cov = result[rule.id]
            if rule.id in evaluation.fired_set:
                if exercise.origin == "test":
                    cov.fired_by_tests += 1
                else:
                    cov.fired_by_cases += 1
            for node, branch in cov.branches:
                if evaluate(node, evaluation.facts):
                    branch.true += 1
                else:
                    branch.false += 1
    rules = sorted(result.values(), key=lambda c: (c.rule.file, c.rule.line))
    return CoverageReport(rules, used["test"], used["case"], sorted(skipped))
