"""Memoised consult work (consult/memo.py) gives exactly what computing it afresh gives."""

from __future__ import annotations

import random

from cno_pathway.consult.memo import ConsultMemo
from cno_pathway.knowledge.conditions import leaves, unmet
from cno_pathway.patient.facts import derive_facts
from cno_pathway.patient.profile import validate_profile


def test_memoised_explanations_are_the_computed_ones(fixture_pathway, vocab, gen):
    book = fixture_pathway.rulebook
    memo = ConsultMemo(book.label, max_entries=50)       # small: it fills and clears often
    rng = random.Random(5)
    checked = 0
    for _ in range(1500):
        facts = fixture_pathway.engine.evaluate(
            derive_facts(validate_profile(gen.profile(rng, vocab), vocab), vocab)).facts
        for rule in book.active:
            assert memo.unmet(rule, facts) == unmet(rule.when, facts, book.label), rule.id
            checked += 1
        assert memo.size <= 50
    assert checked > 1500


def test_values_that_compare_equal_but_read_differently_do_not_share_an_entry(fixture_book):
    rule = next(r for r in fixture_book.active if r.when is not None)
    memo = ConsultMemo(fixture_book.label)
    fact = sorted({leaf.fact for leaf in leaves(rule.when)})[0]
    for value in (True, 1, 1.0, 0, False, [], None):
        facts = {fact: value}
        assert memo.unmet(rule, facts) == unmet(rule.when, facts, fixture_book.label), value
    assert memo.unmet(rule, {}) == unmet(rule.when, {}, fixture_book.label)


def test_consults_do_not_share_what_one_of_them_changes(fixture_pathway, make_profile):
    profile = make_profile()
    first = fixture_pathway.consult(profile)
    cited = [s for s in first.suggestions if s.citations]
    assert cited
    cited[0].citations[0].number = 99
    cited[0].citations.append("changed")
    assert first.not_suggested
    first.not_suggested[0].unmet.append("changed")
    second = fixture_pathway.consult(profile)
    again = next(s for s in second.suggestions if s.rule == cited[0].rule)
    assert again.citations[0].number == 1 and "changed" not in again.citations
    assert all("changed" not in n.unmet for n in second.not_suggested)
