"""What one evaluation of the rule base produces, and the pure-Python reference evaluator.

Semantics, shared by the durable_rules adapter (engine/durable.py) and the reference here:
1. Staging rules run in rounds. In each round every staging rule that has not fired yet and whose
   condition holds on the current facts fires and adds its derived values. When a round adds
   nothing new, staging is over (facts only grow, so this ends).
2. Suggestion rules then run once on the final facts; every rule whose condition holds fires.
The reference exists to explain results and to check the engine: both must fire the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..knowledge.conditions import evaluate
from ..knowledge.rulebook import Rule

MAX_ROUNDS = 100


@dataclass
class Evaluation:
    facts: dict                                   # final facts, derived values included
    fired: list[str] = field(default_factory=list)  # rule ids in the order they fired
    derivations: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, fact, value)

    @property
    def fired_set(self) -> frozenset[str]:
        return frozenset(self.fired)


def add_derivation(facts: dict, fact: str, value, order: list[str] | None) -> bool:
    """Add one derived value to facts; True when it was new. List facts keep vocabulary order."""
    current = facts.get(fact, [])
    if value in current:
        return False
    merged = list(current) + [value]
    if order is not None:
        merged.sort(key=order.index)
    facts[fact] = merged
    return True


def reference_evaluate(rules: list[Rule], facts: dict, value_order: dict[str, list[str]]) -> Evaluation:
    """Evaluate `rules` on `facts` in pure Python (same semantics as the engine)."""
    staging = sorted((r for r in rules if r.is_staging), key=lambda r: (r.priority, r.id))
    suggesting = sorted((r for r in rules if not r.is_staging), key=lambda r: (r.priority, r.id))
    current = {k: (list(v) if isinstance(v, list) else v) for k, v in facts.items()}
    result = Evaluation(facts=current)
    fired: set[str] = set()
    for _ in range(MAX_ROUNDS):
        snapshot = {k: (list(v) if isinstance(v, list) else v) for k, v in current.items()}
        changed = False
        for rule in staging:
            if rule.id in fired or not evaluate(rule.when, snapshot):
                continue
            fired.add(rule.id)
            result.fired.append(rule.id)
            for fact, value in rule.derive.items():
                result.derivations.append((rule.id, fact, value))
                changed |= add_derivation(current, fact, value, value_order.get(fact))
        if not changed:
            break
    for rule in suggesting:
        if evaluate(rule.when, current):
            result.fired.append(rule.id)
    return result
