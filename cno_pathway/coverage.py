"""`rules coverage`: which rules and which condition branches the tests exercise.

The exercising profiles are every rule's own tests and the teaching cases. For each rule we
record whether it fired, and for every leaf condition whether it was seen true and seen false
(both outcomes of a branch); a rule that no profile fires is listed first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .cases import load_cases
from .conditions import describe, evaluate, leaves
from .errors import InputError
from .evaluation import reference_evaluate
from .facts import derive_facts
from .profile import validate_profile
from .rulebook import Rule, RuleBook
from .ruletest import complete


@dataclass
class RuleCoverage:
    rule: Rule
    fired_by: int = 0
    branches: dict[str, list[bool]] = field(default_factory=dict)  # leaf text -> [seen true, seen false]

    @property
    def branches_covered(self) -> int:
        return sum(1 for seen in self.branches.values() if all(seen))


def profiles_to_exercise(book: RuleBook) -> list[tuple[str, dict]]:
    out = [(f"{r.id} {t.expect} test (line {t.line})", complete(book.test_defaults, t.profile))
           for r in book.rules for t in r.tests]
    try:
        out += [(f"teaching case {c.name}", c.profile_data) for c in load_cases()]
    except InputError:
        pass
    return out


def coverage(book: RuleBook) -> list[RuleCoverage]:
    order = {"stage": list(book.vocabulary.stages)}
    result = {r.id: RuleCoverage(r, branches={describe(leaf, book.label): [False, False]
                                              for leaf in leaves(r.when)})
              for r in book.active}
    for _, data in profiles_to_exercise(book):
        try:
            profile = validate_profile(data, book.vocabulary)
        except InputError:
            continue
        evaluation = reference_evaluate(book.active, derive_facts(profile, book.vocabulary), order)
        for rule in book.active:
            cov = result[rule.id]
            if rule.id in evaluation.fired_set:
                cov.fired_by += 1
            for leaf in leaves(rule.when):
                outcome = evaluate(leaf, evaluation.facts)
                cov.branches[describe(leaf, book.label)][0 if outcome else 1] = True
    return sorted(result.values(), key=lambda c: (c.fired_by > 0, c.rule.file, c.rule.line))
