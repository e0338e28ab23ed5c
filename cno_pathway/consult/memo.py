"""Work a consult would otherwise redo for every patient, done once and kept (bounded).

- Why a rule's condition does not hold: its "unmet" lines (conditions.unmet) and its reasons in
  clinical words (document.reasons, the why-not line). A condition is a conjunction of *parts*
  (its top-level `all` flattened), and the explanation of the whole is the explanations of its
  failing parts one after the other. Each part is explained from a small key, so that the memo
  meets the same key again in most consults (a whole rule's facts rarely repeat; a part's do):
  - a comparison or presence test: by the value of its one fact;
  - a list test (`has`/`lacks`): by which of its values the list holds; its unmet line also
    names the whole list ("tried drugs: a, b"), kept apart by (fact, value) and shared by every
    part that reads that fact;
  - a group (`any`, `not`): evaluated; its words, when it fails, never depend on the values.
  Values are keyed with their type, so that True and 1 or 1 and 1.0 (equal in Python, worded
  differently) never share an entry. The memo is bounded (cleared when full): a cohort of any
  size costs the same memory, and every answer is what computing it afresh gives.
- The citations of a rule and of its regimen depend only on the rule base and the evidence
  library: kept by rule id.
Callers receive fresh lists and fresh citation objects: nothing a consult changes can reach the
next consult. `PlainMemo` computes everything afresh: the reference the tests hold this to.
"""

from __future__ import annotations

from typing import Callable

from ..knowledge.conditions import (All, Compare, Has, Presence, actual_words, evaluate, unmet,
                                    unmet_line)

MAX_ENTRIES = 20_000
_ABSENT = object()          # the key of a fact with no value
_HOLDS = ()                 # the entry of a part that holds: nothing to explain
_VALUE, _LIST, _GROUP = "value", "list", "group"


def parts(cond) -> list:
    """A condition's conjuncts: its `all` groups flattened (None: no part, always true)."""
    if cond is None:
        return []
    if isinstance(cond, All):
        return [p for item in cond.items for p in parts(item)]
    return [cond]


class ConsultMemo:
    def __init__(self, label: Callable[[str], str], *, max_entries: int = MAX_ENTRIES,
                 reasons: Callable[[object, dict], list[str]] | None = None):
        self.label = label
        self.reasons_of = reasons or (lambda cond, facts: [])
        self.max_entries = max_entries
        self._plans: dict[str, tuple] = {}
        self._parts: dict[tuple, tuple] = {}      # (part id, key) -> (lines, reasons) | _HOLDS
        self._actual: dict[tuple, str] = {}       # (fact, value) -> the patient's value in words
        self._cited: dict[str, tuple] = {}

    @property
    def size(self) -> int:
        """Entries kept for explanations (each table is bounded by max_entries)."""
        return max(len(self._parts), len(self._actual))

    # -- explanations --------------------------------------------------------------------------
    def _plan(self, rule) -> tuple:
        """(kind, part id, part, constant words) for each part of the rule's condition."""
        plan = self._plans.get(rule.id)
        if plan is None:
            steps = []
            for n, part in enumerate(parts(rule.when)):
                kind = (_LIST if isinstance(part, Has) else
                        _VALUE if isinstance(part, (Compare, Presence)) else _GROUP)
                prefix = unmet_line(part, "", self.label) if kind == _LIST else None
                steps.append((kind, (rule.id, n), part, prefix))
            plan = self._plans[rule.id] = tuple(steps)
        return plan

    def _keep(self, table: dict, key, value):
        if len(table) >= self.max_entries:
            table.clear()
        table[key] = value
        return value

    def _explain_parts(self, rule, facts: dict) -> list[tuple]:
        """(unmet lines, reasons) of each part that does not hold, in order."""
        found = []
        memo = self._parts
        get = facts.get
        for kind, pid, part, prefix in self._plan(rule):
            try:
                if kind == _VALUE:
                    key = (pid, _typed(get(part.fact, _ABSENT)))
                    entry = memo.get(key)
                    if entry is None:
                        entry = self._keep(memo, key, self._compute(part, facts))
                elif kind == _LIST:
                    have = get(part.fact, ())
                    key = (pid, tuple([v in have for v in part.values]))
                    entry = memo.get(key)
                    if entry is None:
                        entry = self._compute(part, facts)
                        entry = self._keep(memo, key, entry and (None, entry[1]))
                    if entry:
                        entry = ((_line(prefix, self._actual_words(part.fact, facts)),), entry[1])
                else:
                    if evaluate(part, facts):
                        continue
                    key = (pid, False)
                    entry = memo.get(key)
                    if entry is None:
                        entry = self._keep(memo, key, self._compute(part, facts))
            except TypeError:     # a value that cannot be a key (or tested): computed afresh
                entry = self._compute(part, facts)
            if entry:
                found.append(entry)
        return found

    def _actual_words(self, fact: str, facts: dict) -> str:
        value = facts.get(fact, _ABSENT)
        key = (fact, _typed(value))
        words = self._actual.get(key)
        if words is None:
            words = self._keep(self._actual, key, actual_words(fact, facts, self.label))
        return words

    def _compute(self, part, facts: dict) -> tuple:
        lines = tuple(unmet(part, facts, self.label))
        reasons = tuple(self.reasons_of(part, facts))
        return (lines, reasons) if lines or reasons else _HOLDS

    def unmet(self, rule, facts: dict) -> list[str]:
        """`unmet(rule.when, facts, label)`, part by part from the memo."""
        return [line for lines, _ in self._explain_parts(rule, facts) for line in lines]

    def explain(self, rule, facts: dict) -> tuple[list[str], list[str]]:
        """(`unmet(rule.when, ...)`, `reasons(rule.when, ...)`) at once: one memo lookup a part."""
        found = self._explain_parts(rule, facts)
        return ([line for lines, _ in found for line in lines],
                [reason for _, reasons in found for reason in reasons])

    # -- citations -----------------------------------------------------------------------------
    def cited(self, rule_id: str, compute: Callable[[], tuple[list, list]]) -> tuple[list, list]:
        """A rule's (citations, dose citations), computed once; fresh copies each time."""
        found = self._cited.get(rule_id)
        if found is None:
            found = self._cited[rule_id] = compute()
        citations, dose = found
        return [c.copy() for c in citations], [c.copy() for c in dose]


class PlainMemo(ConsultMemo):
    """No memo: every explanation and citation computed afresh (the reference for tests and
    for measuring what the memo buys)."""

    def unmet(self, rule, facts: dict) -> list[str]:
        return unmet(rule.when, facts, self.label)

    def explain(self, rule, facts: dict) -> tuple[list[str], list[str]]:
        return unmet(rule.when, facts, self.label), list(self.reasons_of(rule.when, facts))

    def cited(self, rule_id: str, compute: Callable[[], tuple[list, list]]) -> tuple[list, list]:
        return compute()


def _line(prefix: str, actual: str) -> str:
    """conditions.unmet_line, from its constant part."""
    return prefix + (f"; {actual}" if actual else "")


def _typed(value):
    """A hashable key for a fact's value that tells apart values Python deems equal."""
    cls = value.__class__
    if cls is str:
        return value                  # no other type's value equals a str
    if cls is list:
        return (list, tuple(value), tuple(map(type, value)))
    return (cls, value)
