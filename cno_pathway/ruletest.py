"""Rule tests: each rule's own `fires` and `silent` profiles, run through the real engine.

A test profile may be partial; it is completed from rulebook.yaml's `test_defaults` (mappings
merge key by key, lists replace). A test whose profile is invalid fails; nothing is skipped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .conditions import describe, unmet
from .engine import Engine
from .errors import ProfileError
from .facts import derive_facts
from .profile import validate_profile
from .rulebook import Rule, RuleBook, RuleTest


def complete(defaults: dict, partial: dict) -> dict:
    """Deep-merge a partial test profile over the defaults: mappings merge, lists replace."""
    out = copy.deepcopy(defaults)
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = complete(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class TestFailure:
    rule: Rule
    test: RuleTest
    reason: str
    details: list[str] = field(default_factory=list)


@dataclass
class RuleResult:
    rule: Rule
    passed: int = 0
    failures: list[TestFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and self.passed > 0


def run_rule_tests(book: RuleBook, only: str | None = None) -> list[RuleResult]:
    """Run every rule's tests (or one rule's) through the engine compiled from the whole book."""
    order = {"stage": list(book.vocabulary.stages)}
    results = []
    with Engine(book.active, order) as engine:
        for rule in book.rules:
            if (only and rule.id != only) or rule.status == "retired":
                continue  # retired rules are not in the engine; `rules list` shows them
            result = RuleResult(rule)
            for test in rule.tests:
                data = complete(book.test_defaults, test.profile)
                try:
                    profile = validate_profile(data, book.vocabulary)
                except ProfileError as exc:
                    result.failures.append(TestFailure(rule, test, f"invalid test profile: {exc}"))
                    continue
                evaluation = engine.evaluate(derive_facts(profile, book.vocabulary))
                fired = rule.id in evaluation.fired_set
                if fired == (test.expect == "fires"):
                    result.passed += 1
                elif test.expect == "fires":
                    result.failures.append(TestFailure(
                        rule, test, "expected to fire but stayed silent",
                        unmet(rule.when, evaluation.facts, book.label) or
                        ["the rule is retired" if rule.status == "retired" else "its conditions held"]))
                else:
                    result.failures.append(TestFailure(
                        rule, test, "expected to stay silent but fired",
                        [f"held: {describe(rule.when, book.label)}" if rule.when else "it has no condition"]))
            if not rule.tests:
                result.failures.append(TestFailure(rule, None, "the rule has no tests"))
            results.append(result)
    return results
