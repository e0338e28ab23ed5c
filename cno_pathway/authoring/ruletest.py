"""Rule tests: each rule's own `fires` and `silent` profiles, run through the real engine.

A test profile may be partial; it is completed from rulebook.yaml's `test_defaults` (mappings
merge key by key, lists replace). Nothing is skipped: a test whose profile is invalid fails, a
rule without tests fails, and an invalid rule file fails the whole run (the `rules test`
command loads the rule base file by file and reports every schema error before any test runs).
A failure says why: for a rule that stayed silent, the conditions that did not hold; for a rule
that fired, the conditions that held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..knowledge.conditions import All, Any_, Condition, Has, Not, describe, evaluate, unmet, walk
from ..engine.durable import Engine
from ..errors import ProfileError
from ..patient.facts import derive_facts
from ..patient.profile import validate_profile
from ..knowledge.rulebook import Rule, RuleBook, RuleTest
from ..wording import fact_words, plain_number
from ..yamlio import plain_copy


def complete(defaults: dict, partial: dict) -> dict:
    """Deep-merge a partial test profile over the defaults: mappings merge, lists replace.
    Both are plain YAML data, so a copy of dicts and lists is a deep copy (and 5x cheaper)."""
    out = {key: None if key in partial else plain_copy(value) for key, value in defaults.items()}
    for key, value in partial.items():
        base = defaults.get(key)
        out[key] = complete(base, value) if isinstance(value, dict) and isinstance(base, dict) \
            else plain_copy(value)
    return out


def held(cond: Condition | None, facts: dict, label=lambda v: v) -> list[str]:
    """Plain-language reasons a condition is true: the parts that held (for an `any`, only the
    alternatives that held), each with the fact's actual value. The dual of conditions.unmet."""
    if cond is None:
        return ["it has no condition"]
    if not evaluate(cond, facts):
        return []
    if isinstance(cond, All):
        return [r for item in cond.items for r in held(item, facts, label)] or ["it always applies"]
    if isinstance(cond, Any_):
        return [r for item in cond.items for r in held(item, facts, label)]
    if isinstance(cond, Not):
        fact = getattr(cond.item, "fact", None)
        value = f"; {_actual(fact, facts, label)}" if fact else ""
        return [f"held: not ({describe(cond.item, label)}){value}"]
    return [f"held: {describe(cond, label)}; {_actual(cond.fact, facts, label)}"]


def _actual(fact: str, facts: dict, label) -> str:
    value = facts.get(fact, "not stated")
    if isinstance(value, list):
        value = ", ".join(label(v) for v in value) or "none"
    elif isinstance(value, bool):
        value = "yes" if value else "no"
    else:
        value = plain_number(value)
    return f"{fact_words(fact)}: {value}"


def why_not_staged(book: RuleBook, rule: Rule, facts: dict) -> list[str]:
    """For each stage the rule needs but the profile did not reach: the staging rules that
    derive it and what they lacked (one level: enough to see where the chain broke)."""
    missing = [v for node in walk(rule.when) if isinstance(node, Has) and node.fact == "stage"
               and node.op == "has" for v in node.values if v not in facts.get("stage", ())]
    out = []
    for stage in dict.fromkeys(missing):
        for staging in book.active:
            if (staging.derive or {}).get("stage") == stage:
                reasons = "; ".join(unmet(staging.when, facts, book.label)) or "its condition held"
                out.append(f"stage {stage} comes from {staging.id} ({staging.where}), which did "
                           f"not fire: {reasons}")
    return out


def _key(data) -> str:
    """The completed profile as canonical text: equal profiles, one key (typed: 1 and true and
    1.0 differ in JSON text)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=repr)


@dataclass
class RuleTestFailure:
    rule: Rule
    test: RuleTest | None       # None: the rule has no tests at all
    reason: str
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"expect": self.test.expect if self.test else None,
                "line": self.test.line if self.test else None,
                "profile": self.test.profile if self.test else None,
                "reason": self.reason, "details": self.details}


@dataclass
class RuleResult:
    rule: Rule
    passed: int = 0
    failures: list[RuleTestFailure] = field(default_factory=list)
    skipped: str | None = None  # why the rule's tests did not run (a retired rule)

    @property
    def ok(self) -> bool:
        return self.skipped is not None or (not self.failures and self.passed > 0)

    def to_json(self) -> dict:
        return {"rule": self.rule.id, "where": self.rule.where,
                "status": "skipped" if self.skipped else ("pass" if self.ok else "fail"),
                "skipped": self.skipped, "passed": self.passed,
                "failures": [f.to_json() for f in self.failures]}


def run_rule_tests(book: RuleBook, only: str | None = None) -> list[RuleResult]:
    """Run every rule's tests (or one rule's) through the engine compiled from the whole book.
    Retired rules are not in the engine: they are reported as skipped, with the reason."""
    order = {"stage": list(book.vocabulary.stages)}
    results = []
    seen: dict = {}   # one evaluation per distinct completed profile: tests share profiles
    with Engine(book.active, order) as engine:
        for rule in book.rules:
            if only and rule.id != only:
                continue
            result = RuleResult(rule)
            results.append(result)
            if rule.status == "retired":
                result.skipped = "retired: not in the engine"
                continue
            if not rule.tests:
                result.failures.append(RuleTestFailure(rule, None, "the rule has no tests"))
            for test in rule.tests:
                failure = _run_one(book, engine, rule, test, seen)
                if failure is None:
                    result.passed += 1
                else:
                    result.failures.append(failure)
    return results


def _run_one(book: RuleBook, engine: Engine, rule: Rule, test: RuleTest,
             seen: dict | None = None) -> RuleTestFailure | None:
    data = complete(book.test_defaults, test.profile)
    key = _key(data)
    outcome = seen.get(key) if seen is not None else None
    if outcome is None:
        try:
            profile = validate_profile(data, book.vocabulary)
            outcome = engine.evaluate(derive_facts(profile, book.vocabulary))
        except ProfileError as exc:
            outcome = exc
        if seen is not None:
            seen[key] = outcome
    if isinstance(outcome, ProfileError):
        where = f"{outcome.field}: " if outcome.field else ""
        return RuleTestFailure(rule, test, f"invalid test profile: {where}{outcome.message}")
    evaluation = outcome
    fired = rule.id in evaluation.fired_set
    if fired == (test.expect == "fires"):
        return None
    if test.expect == "fires":
        return RuleTestFailure(rule, test, "expected to fire but stayed silent",
                           (unmet(rule.when, evaluation.facts, book.label)
                            + why_not_staged(book, rule, evaluation.facts))
                           or ["its condition held on the final facts: the engine and the "
                               "reference evaluator disagree (a bug: please report it)"])
    return RuleTestFailure(rule, test, "expected to stay silent but fired",
                       held(rule.when, evaluation.facts, book.label))
