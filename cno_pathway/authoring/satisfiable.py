"""Can a condition ever hold? Interval and set reasoning over the condition tree, for lint.

Finds rules that can never fire (`lesions.count gt 5` and `lt 3`; `eq` two values; `has` and
`lacks` one value; `in` values all excluded by bounds or `ne`; every value of a vocabulary
excluded; `absent` on a list fact, which always has a value) and alternatives of an `any` that
can never hold together with the rest of their rule.

The condition is put in disjunctive normal form (negation pushed to the leaves with the
evaluator's semantics: a comparison on an unstated fact is false, so `not {eq: {f: v}}` means
"f unstated or f != v"), and each conjunction is checked fact by fact. The answer errs towards
"may hold": a condition too large to expand is assumed satisfiable, and whole-number facts are
reasoned about as real numbers, so a reported contradiction is always real.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any

from ..knowledge.conditions import All, Any_, Compare, Condition, Has, Not, Presence, describe
from ..knowledge.factschema import FACT_SCHEMA
from ..knowledge.vocabulary import Vocabulary

MAX_TERMS = 4096

_NEGATE = {"eq": "ne", "ne": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt", "in": "notin"}
_BOUND = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


@dataclass(frozen=True)
class Atom:
    """One test on one fact inside a conjunction; `text` is the condition it came from."""

    fact: str
    op: str        # eq ne gt gte lt lte in notin has lacks present absent never
    value: Any
    text: str


class _TooLarge(Exception):
    pass


Term = tuple  # a conjunction of Atoms


def _product(left: list[Term], right: list[Term]) -> list[Term]:
    if len(left) * len(right) > MAX_TERMS:
        raise _TooLarge
    return [a + b for a in left for b in right]


def _dnf(cond: Condition | None, positive: bool = True) -> list[Term]:
    """Alternatives (conjunctions of atoms) whose union is the condition (or its negation)."""
    if cond is None:
        return [()] if positive else []
    if isinstance(cond, Not):
        return _dnf(cond.item, not positive)
    if isinstance(cond, (All, Any_)):
        conjunction = isinstance(cond, All) == positive
        if conjunction:
            terms: list[Term] = [()]
            for item in cond.items:
                terms = _product(terms, _dnf(item, positive))
            return terms
        terms = [t for item in cond.items for t in _dnf(item, positive)]
        if len(terms) > MAX_TERMS:
            raise _TooLarge
        return terms
    return _leaf(cond, positive)


def _leaf(cond: Condition, positive: bool) -> list[Term]:
    text = describe(cond) if positive else f"not ({describe(cond)})"
    fact = cond.fact
    if isinstance(cond, Presence):
        want_present = (cond.op == "present") == positive
        if FACT_SCHEMA[fact].kind == "list":  # a list fact always has a value, maybe empty
            return [()] if want_present else [(Atom(fact, "never", None, text),)]
        return [(Atom(fact, "present" if want_present else "absent", None, text),)]
    if isinstance(cond, Has):
        op = cond.op if positive else ("lacks" if cond.op == "has" else "has")
        atoms = [Atom(fact, op, v, text) for v in cond.values]
        return [tuple(atoms)] if positive else [(a,) for a in atoms]
    if isinstance(cond, Compare):
        value = frozenset(cond.value) if cond.op == "in" else cond.value
        if positive:
            return [(Atom(fact, cond.op, value, text),)]
        return [(Atom(fact, "absent", None, text),), (Atom(fact, _NEGATE[cond.op], value, text),)]
    raise TypeError(cond)


# -- one conjunction, fact by fact ----------------------------------------------------------------

def _words(atoms) -> str:
    return " and ".join(dict.fromkeys(a.text for a in atoms))


def _fact_conflict(fact: str, atoms: list[Atom], vocabulary: Vocabulary) -> str | None:
    never = [a for a in atoms if a.op == "never"]
    if never:
        return f"{never[0].text} (a list fact always has a value, possibly empty)"
    absent = [a for a in atoms if a.op == "absent"]
    others = [a for a in atoms if a.op not in ("absent", "present")]
    if absent and len(absent) < len(atoms):
        return _words(atoms)
    ftype = FACT_SCHEMA[fact]
    if ftype.kind == "list":
        have = {a.value for a in others if a.op == "has"}
        for a in others:
            if a.op == "lacks" and a.value in have:
                return _words([b for b in others if b.value == a.value])
        return None
    if ftype.kind == "bool":
        domain: set | None = {True, False}
    elif ftype.kind == "enum":
        domain = set(vocabulary.values(ftype.vocabulary))
    else:
        domain = None
    return None if _values_possible(others, domain) else _words(others)


def _values_possible(atoms: list[Atom], domain: set | None) -> bool:
    """Is there one value that passes every test? `domain` None: any real number."""
    candidates = set(domain) if domain is not None else None
    for a in atoms:
        if a.op in ("eq", "in"):
            allowed = {a.value} if a.op == "eq" else set(a.value)
            candidates = allowed if candidates is None else candidates & allowed
    excluded = {a.value for a in atoms if a.op == "ne"}
    excluded |= {v for a in atoms if a.op == "notin" for v in a.value}
    bounds = [a for a in atoms if a.op in _BOUND]

    def passes(x) -> bool:
        return x not in excluded and all(_BOUND[b.op](x, b.value) for b in bounds)

    if candidates is not None:
        return any(passes(x) for x in candidates)
    low = max((b for b in bounds if b.op in ("gt", "gte")), default=None,
              key=lambda b: (b.value, b.op == "gt"))
    high = min((b for b in bounds if b.op in ("lt", "lte")), default=None,
               key=lambda b: (b.value, b.op == "lte"))
    if low is None or high is None:
        return True
    if low.value < high.value:
        return True  # an open interval of reals: infinitely many values, finitely many excluded
    return low.value == high.value and passes(low.value)


def _term_conflict(term: Term, vocabulary: Vocabulary) -> str | None:
    by_fact: dict[str, list[Atom]] = {}
    for atom in term:
        by_fact.setdefault(atom.fact, []).append(atom)
    for fact in sorted(by_fact):
        why = _fact_conflict(fact, by_fact[fact], vocabulary)
        if why:
            return why
    return None


# -- what lint asks -------------------------------------------------------------------------------

def contradiction(cond: Condition | None, vocabulary: Vocabulary) -> str | None:
    """None when the condition may hold; otherwise, in words, why it never does."""
    try:
        terms = _dnf(cond)
    except _TooLarge:
        return None
    if not terms:
        return "no alternative is left (an empty `any`, or `not` of a condition that always holds)"
    reasons = []
    for term in terms:
        why = _term_conflict(term, vocabulary)
        if why is None:
            return None
        reasons.append(why)
    others = len(dict.fromkeys(reasons)) - 1
    return reasons[0] + (f" ({others} other combination{'s' if others > 1 else ''} of its tests "
                         f"contradict{'' if others > 1 else 's'} too)" if others else "")


def dead_alternatives(cond: Condition | None, vocabulary: Vocabulary) -> list[tuple[Condition, str]]:
    """Alternatives of an `any` (outside any `not`) that can never hold together with the rest
    of the condition, with the reason; empty when the whole condition never holds."""
    if cond is None or contradiction(cond, vocabulary) is not None:
        return []
    out = []
    for node in _positive_anys(cond):
        if len(node.items) < 2:
            continue
        for item in node.items:
            why = contradiction(_replace(cond, node, item), vocabulary)
            if why is not None:
                out.append((item, why))
    return out


def _positive_anys(cond: Condition):
    if isinstance(cond, Any_):
        yield cond
    if isinstance(cond, (All, Any_)):
        for item in cond.items:
            yield from _positive_anys(item)


def _replace(cond: Condition, target: Condition, replacement: Condition) -> Condition:
    if cond is target:
        return replacement
    if isinstance(cond, (All, Any_)):
        return dataclasses.replace(cond, items=tuple(_replace(i, target, replacement) for i in cond.items))
    if isinstance(cond, Not):
        return dataclasses.replace(cond, item=_replace(cond.item, target, replacement))
    return cond
