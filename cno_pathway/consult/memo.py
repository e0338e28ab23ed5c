"""Work a consult would otherwise redo for every patient, done once and kept (bounded).

- The unmet-condition explanations of a rule ("needs ...; ...") depend only on the values of
  the facts its condition reads: kept by (rule, those values), typed, so that True and 1 or 1 and
  1.0 never share an entry. The memo is bounded (cleared when full), so a cohort of any size
  costs the same memory and every answer is what `unmet` computes.
- The citations of a rule and of its regimen depend only on the rule base and the evidence
  library: kept by rule id.
Callers receive fresh lists (and copies of the citations): nothing a consult changes can reach
the next consult.
"""

from __future__ import annotations

import copy
from typing import Callable

from ..knowledge.conditions import leaves, unmet

MAX_ENTRIES = 20_000
_ABSENT = ("absent",)


class ConsultMemo:
    def __init__(self, label: Callable[[str], str], *, max_entries: int = MAX_ENTRIES):
        self.label = label
        self.max_entries = max_entries
        self._reads: dict[str, tuple[str, ...]] = {}
        self._unmet: dict[tuple, tuple[str, ...]] = {}
        self._cited: dict[str, tuple] = {}

    def unmet(self, rule, facts: dict) -> list[str]:
        """`unmet(rule.when, facts, label)`, from the memo when the facts it reads were seen."""
        reads = self._reads.get(rule.id)
        if reads is None:
            reads = self._reads[rule.id] = tuple(sorted({leaf.fact for leaf in leaves(rule.when)}))
        key = (rule.id,) + tuple(_typed(facts[name]) if name in facts else _ABSENT
                                 for name in reads)
        found = self._unmet.get(key)
        if found is None:
            if len(self._unmet) >= self.max_entries:
                self._unmet.clear()
            found = self._unmet[key] = tuple(unmet(rule.when, facts, self.label))
        return list(found)

    def cited(self, rule_id: str, compute: Callable[[], tuple[list, list]]) -> tuple[list, list]:
        """A rule's (citations, dose citations), computed once; copies each time."""
        found = self._cited.get(rule_id)
        if found is None:
            found = self._cited[rule_id] = compute()
        citations, dose = found
        return [copy.copy(c) for c in citations], [copy.copy(c) for c in dose]


def _typed(value):
    if isinstance(value, list):
        return ("list",) + tuple((type(v), v) for v in value)
    return (type(value), value)
