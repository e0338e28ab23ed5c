"""Work a consult would otherwise redo for every patient, done once and kept (bounded).

- Why a rule's condition does not hold: its "unmet" lines (conditions.unmet) and its reasons in
  clinical words (document.reasons, the why-not line). Both depend only on what the condition
  reads, and less than the whole value of a list fact: a `has`/`lacks` test reads only whether
  the list holds each value it names. So a rule's explanation is kept by a small key, one item
  per fact it reads: for a list fact only tested with `has`/`lacks`, which of the values the
  rule names the list holds; for any other fact, its value. Such keys come back in most
  consults, where the whole values of every fact a rule reads rarely do (tried drugs, stages).
  The unmet line of a list test also names the whole list ("tried drugs: a, b"): that part is
  kept apart, by (fact, value), and filled in.
  Values are keyed with their type, so that True and 1 or 1 and 1.0 (equal in Python, worded
  differently) never share an entry. The memo is bounded (cleared when full): a cohort of any
  size costs the same memory, and every answer is what computing it afresh gives.
- The why-not line depends only on the reasons: kept by them.
- The citations of a rule and of its regimen depend only on the rule base and the evidence
  library: kept by rule id.
Callers receive fresh lists and fresh citation objects: nothing a consult changes can reach the
next consult. `PlainMemo` computes everything afresh: the reference the tests hold this to.
"""

from __future__ import annotations

from typing import Callable

from ..knowledge.conditions import All, Has, actual_words, evaluate, leaves, unmet, unmet_line

MAX_ENTRIES = 20_000
_ABSENT = object()          # the key of a fact with no value


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
        self._reads: dict[str, tuple] = {}
        self._explained: dict[tuple, tuple] = {}  # (rule id, key) -> (lines, reasons)
        self._actual: dict[tuple, str] = {}       # (fact, value) -> the patient's value in words
        self._lines: dict[tuple, str] = {}        # reasons -> the why-not line
        self._cited: dict[str, tuple] = {}

    @property
    def size(self) -> int:
        """Entries kept for explanations (each table is bounded by max_entries)."""
        return max(len(self._explained), len(self._actual), len(self._lines))

    # -- explanations --------------------------------------------------------------------------
    def _reads_of(self, rule) -> tuple:
        """(fact, values) for each fact the rule reads, in a fixed order: `values` are the
        values its `has`/`lacks` tests name when that is all it reads of the fact, else None."""
        reads = self._reads.get(rule.id)
        if reads is None:
            named: dict[str, list | None] = {}
            for leaf in leaves(rule.when):
                if isinstance(leaf, Has) and named.get(leaf.fact, []) is not None:
                    values = named.setdefault(leaf.fact, [])
                    values.extend(v for v in leaf.values if v not in values)
                else:
                    named[leaf.fact] = None
            reads = self._reads[rule.id] = tuple(
                (fact, None if values is None else tuple(values))
                for fact, values in sorted(named.items()))
        return reads

    def _keep(self, table: dict, key, value):
        if len(table) >= self.max_entries:
            table.clear()
        table[key] = value
        return value

    def explain(self, rule, facts: dict, words: dict | None = None) -> tuple[list[str], tuple[str, ...]]:
        """(`unmet(rule.when, facts, label)`, `reasons(rule.when, facts)`), from the memo.
        `words`: a dict the caller keeps for one set of facts (the words of each fact's value,
        which the unmet lines of many rules repeat)."""
        reads = self._reads.get(rule.id) or self._reads_of(rule)
        get = facts.get
        key = [rule.id]
        try:
            for fact, values in reads:
                if values is None:
                    key.append(_typed(get(fact, _ABSENT)))
                else:
                    have = get(fact, ())
                    key.append(tuple([v in have for v in values]))
            key = tuple(key)
            found = self._explained.get(key)
        except TypeError:        # a value that cannot be a key (or tested): computed afresh
            lines, reasons = self._compute(rule, facts)
            return self._fill(lines, facts, {}), reasons
        if found is None:
            found = self._keep(self._explained, key, self._compute(rule, facts))
        lines, reasons = found
        return self._fill(lines, facts, {} if words is None else words), reasons

    def unmet(self, rule, facts: dict) -> list[str]:
        """`unmet(rule.when, facts, label)`, from the memo."""
        return self.explain(rule, facts)[0]

    def _compute(self, rule, facts: dict) -> tuple[tuple, tuple]:
        """The explanation, part by part: a failing list test's line is left as (its constant
        words, the fact), since the line names the whole list."""
        lines, reasons = [], []
        for part in parts(rule.when):
            if isinstance(part, Has):
                if not evaluate(part, facts):
                    lines.append((unmet_line(part, "", self.label), part.fact))
            else:
                lines.extend(unmet(part, facts, self.label))
            reasons.extend(self.reasons_of(part, facts))
        if all(line.__class__ is str for line in lines):
            return list(lines), tuple(reasons)      # a list: nothing to fill in (see _fill)
        return tuple(lines), tuple(reasons)

    def _fill(self, lines, facts: dict, words: dict) -> list[str]:
        """The unmet lines, each list test's with the words of the list's value filled in. Lines
        kept as a list have nothing to fill in."""
        if lines.__class__ is list:
            return lines.copy()
        out = []
        for line in lines:
            if line.__class__ is str:
                out.append(line)
                continue
            prefix, fact = line
            actual = words.get(fact)
            if actual is None:
                actual = words[fact] = self._actual_words(fact, facts)
            out.append(prefix + (f"; {actual}" if actual else ""))   # conditions.unmet_line
        return out

    def _actual_words(self, fact: str, facts: dict) -> str:
        """conditions.actual_words, kept by (fact, value)."""
        try:
            key = (fact, _typed(facts.get(fact, _ABSENT)))
            actual = self._actual.get(key)
        except TypeError:
            return actual_words(fact, facts, self.label)
        if actual is None:
            actual = self._keep(self._actual, key, actual_words(fact, facts, self.label))
        return actual

    def why_not_line(self, reasons: tuple[str, ...], compute: Callable[[], str]) -> str:
        """The why-not line of a rule's reasons (document.why_not), kept by the reasons."""
        line = self._lines.get(reasons)
        if line is None:
            line = self._keep(self._lines, reasons, compute())
        return line

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

    def explain(self, rule, facts: dict, words: dict | None = None) -> tuple[list[str], tuple[str, ...]]:
        return unmet(rule.when, facts, self.label), tuple(self.reasons_of(rule.when, facts))

    def why_not_line(self, reasons: tuple[str, ...], compute: Callable[[], str]) -> str:
        return compute()

    def cited(self, rule_id: str, compute: Callable[[], tuple[list, list]]) -> tuple[list, list]:
        return compute()


def _typed(value):
    """A hashable key for a fact's value that tells apart values Python deems equal."""
    cls = value.__class__
    if cls is str:
        return value                  # no other type's value equals a str
    if cls is list:
        return (list, tuple(value), tuple(map(type, value)))
    return (cls, value)
