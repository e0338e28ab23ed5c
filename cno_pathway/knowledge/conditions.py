"""Rule conditions as a small typed tree, a pure-Python evaluator, and an explainer.

The tree is built once by the rule parser (rulebook.py). The evaluator here is the reference
semantics the engine adapter must agree with (a property test checks both on thousands of
profiles), and the explainer says in plain words which conditions did not hold.

Semantics: a comparison on a fact that has no value (not stated in the profile) is false, `ne`
included; `not` turns that into true. List facts always have a value (possibly empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..wording import fact_words, plain_number

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
LIST_TESTS = ("has", "lacks")
PRESENCE = ("present", "absent")
GROUPS = ("all", "any", "not")
OPERATORS = GROUPS + COMPARISONS + LIST_TESTS + PRESENCE


@dataclass(frozen=True)
class Condition:
    """A node of a rule's condition tree; `line` is where it is written."""

    line: int | None


@dataclass(frozen=True)
class All(Condition):
    """Every item holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Any_(Condition):
    """At least one item holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not(Condition):
    """The item does not hold (true when its fact has no value)."""

    item: Condition


@dataclass(frozen=True)
class Compare(Condition):
    """A scalar fact compared with a value (false when the fact has no value)."""

    op: str          # eq ne gt gte lt lte in
    fact: str
    value: Any       # for `in`, a tuple


@dataclass(frozen=True)
class Has(Condition):
    """A list fact holds (has) or lacks every one of the values."""

    op: str          # has | lacks
    fact: str
    values: tuple    # every value must be (has) / must not be (lacks) in the list


@dataclass(frozen=True)
class Presence(Condition):
    """A fact has a value (present) or has none (absent)."""

    op: str          # present | absent
    fact: str


def evaluate(cond: Condition | None, facts: dict) -> bool:
    if cond is None:
        return True
    if isinstance(cond, All):
        return all(evaluate(c, facts) for c in cond.items)
    if isinstance(cond, Any_):
        return any(evaluate(c, facts) for c in cond.items)
    if isinstance(cond, Not):
        return not evaluate(cond.item, facts)
    if isinstance(cond, Presence):
        return (cond.fact in facts) == (cond.op == "present")
    if isinstance(cond, Has):
        have = facts.get(cond.fact, ())
        if cond.op == "has":
            return all(v in have for v in cond.values)
        return all(v not in have for v in cond.values)
    if isinstance(cond, Compare):
        if cond.fact not in facts:
            return False
        actual = facts[cond.fact]
        op, value = cond.op, cond.value
        if op == "eq":
            return actual == value
        if op == "ne":
            return actual != value
        if op == "in":
            return actual in value
        if op == "gt":
            return actual > value
        if op == "gte":
            return actual >= value
        if op == "lt":
            return actual < value
        if op == "lte":
            return actual <= value
    raise TypeError(f"unknown condition {cond!r}")


def walk(cond: Condition | None) -> Iterator[Condition]:
    """Every node of a condition tree, depth first."""
    if cond is None:
        return
    yield cond
    if isinstance(cond, (All, Any_)):
        for item in cond.items:
            yield from walk(item)
    elif isinstance(cond, Not):
        yield from walk(cond.item)


def leaves(cond: Condition | None) -> list[Condition]:
    """The tests of a condition tree (Compare, Has, Presence), in walk's order. One loop over a
    stack, not a generator per level: the basis asks it of every rule of the base (2,050 in the
    benchmark's), where the nested generators took twice as long."""
    out: list[Condition] = []
    stack = [] if cond is None else [cond]
    while stack:
        node = stack.pop()
        if isinstance(node, (All, Any_)):
            stack.extend(reversed(node.items))
        elif isinstance(node, Not):
            stack.append(node.item)
        elif isinstance(node, (Compare, Has, Presence)):
            out.append(node)
    return out


# -- plain words --------------------------------------------------------------------------

_OP_WORDS = {"eq": "is", "ne": "is not", "gt": "is above", "gte": "is at least",
             "lt": "is below", "lte": "is at most", "in": "is one of"}


def _value_words(value: Any, label) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list)):
        return ", ".join(_value_words(v, label) for v in value)
    return label(value) if isinstance(value, str) else plain_number(value)


def describe(cond: Condition, label=lambda v: v) -> str:
    """'failed classes include NSAID', 'vertebral is no'... for one condition."""
    if isinstance(cond, All):
        return " and ".join(describe(c, label) for c in cond.items)
    if isinstance(cond, Any_):
        return "either " + " or ".join(describe(c, label) for c in cond.items)
    if isinstance(cond, Not):
        return f"not ({describe(cond.item, label)})"
    if isinstance(cond, Presence):
        return f"{fact_words(cond.fact)} {'is stated' if cond.op == 'present' else 'is not stated'}"
    if isinstance(cond, Has):
        if cond.fact == "stage":   # "at stage X", not "stage include X"; labels may hold commas
            names = "; ".join(label(v) for v in cond.values)
            if cond.op == "has":
                return f"at stage {names}" if len(cond.values) == 1 else f"at every stage of: {names}"
            return f"not at stage {names}" if len(cond.values) == 1 else f"at none of the stages: {names}"
        verb = "include" if cond.op == "has" else "exclude"
        return f"{fact_words(cond.fact)} {verb} {_value_words(cond.values, label)}"
    if isinstance(cond, Compare):
        return f"{fact_words(cond.fact)} {_OP_WORDS[cond.op]} {_value_words(cond.value, label)}"
    raise TypeError(cond)


def _actual(cond: Condition, facts: dict, label) -> str:
    fact = getattr(cond, "fact", None)
    return "" if fact is None else actual_words(fact, facts, label)


def actual_words(fact: str, facts: dict, label) -> str:
    """What the patient has for one fact, in words: 'failed classes: NSAID', '... not stated'."""
    if fact not in facts:
        return f"{fact_words(fact)} not stated"
    value = facts[fact]
    if isinstance(value, list) and not value:
        return f"{fact_words(fact)}: none"
    return f"{fact_words(fact)}: {_value_words(value, label)}"


def unmet_line(cond: Condition, actual: str, label=lambda v: v) -> str:
    """The line `unmet` gives for one condition that is not a conjunction and does not hold,
    with the patient's `actual` value in words ('' for a group)."""
    return f"needs {describe(cond, label)}" + (f"; {actual}" if actual else "")


def unmet(cond: Condition | None, facts: dict, label=lambda v: v) -> list[str]:
    """Plain-language reasons a condition is false: 'needs X; Y' for each failing part."""
    if cond is None or evaluate(cond, facts):
        return []
    if isinstance(cond, All):
        out: list[str] = []
        for item in cond.items:
            out.extend(unmet(item, facts, label))
        return out
    return [unmet_line(cond, _actual(cond, facts, label), label)]
