"""The fast consult writes the bytes the plain computation writes (issue 17, point 2).

The fast path keeps explanations, why-not lines, citations, per-rule fields and fact text between
patients, skips staging rounds that cannot fire anything, and writes JSON with orjson. Here its
output is compared with the plain computation on many generated profiles: every explanation
computed afresh (`PlainMemo`, conditions.unmet, document.why_not) and every line written by
json alone (`slow_line`), in a different order of patients, with a memo so small it is cleared
all the time.
"""

from __future__ import annotations

import random

import pytest

from cno_pathway.consult.consult import Pathway
from cno_pathway.consult.document import reasons, why_not
from cno_pathway.consult.jsonout import dumps_line, slow_line
from cno_pathway.consult.memo import ConsultMemo, PlainMemo
from cno_pathway.knowledge.conditions import unmet
from cno_pathway.patient.profile import validate_profile


def _plain(pathway: Pathway) -> Pathway:
    """The same rule base and evidence with nothing kept between patients."""
    book = pathway.rulebook
    plain = Pathway(book, pathway.library, pathway.formulary)
    plain._memo = PlainMemo(book.label, reasons=lambda cond, facts: reasons(cond, facts, book))
    return plain


def _profiles(pathway, gen, count: int, seed: int) -> list:
    rng = random.Random(seed)
    vocab = pathway.vocabulary
    return [validate_profile(gen.profile(rng, vocab), vocab) for _ in range(count)]


@pytest.mark.parametrize("which", ["fixture", "repository"])
def test_fast_consults_write_the_plain_bytes(which, fixture_pathway, pathway, gen):
    fast = fixture_pathway if which == "fixture" else pathway
    plain = _plain(fast)
    try:
        profiles = _profiles(fast, gen, 400, seed=17)
        # the fast pathway also sees them in another order first (its memos then hold other
        # patients' entries), and once with a memo that is cleared every few entries
        for profile in reversed(profiles):
            fast.consult(profile)
        small = _plain(fast)
        book = fast.rulebook
        small._memo = ConsultMemo(book.label, max_entries=7,
                                  reasons=lambda cond, facts: reasons(cond, facts, book))
        compared = 0
        for profile in profiles:
            expected = slow_line(plain.consult(profile).to_json())
            assert dumps_line(fast.consult(profile).to_json()) == expected, profile.id
            assert dumps_line(small.consult(profile).to_json()) == expected, profile.id
            explained = fast.consult(profile, explain=True)
            assert (dumps_line(explained.to_json())
                    == slow_line(plain.consult(profile, explain=True).to_json()))
            compared += 1
        assert compared == 400
    finally:
        plain.close()


def test_every_explanation_is_the_plain_one(pathway, gen):
    """Each not-suggested entry of a complete consult (--explain lists every rule) against
    conditions.unmet and document.why_not on the same facts."""
    book = pathway.rulebook
    checked = 0
    for profile in _profiles(pathway, gen, 300, seed=23):
        consult = pathway.consult(profile, explain=True)
        for entry in consult.not_suggested:
            rule = book.by_id[entry.rule]
            assert entry.unmet == unmet(rule.when, consult.facts, book.label), rule.id
            assert (entry.why_not, entry.why_not_authored) == why_not(rule, consult.facts, book)
            checked += 1
    assert checked > 300 * 20


def test_what_one_consult_changes_does_not_reach_the_next(pathway, gen):
    profile = _profiles(pathway, gen, 1, seed=31)[0]
    first = pathway.consult(profile)
    before = dumps_line(first.to_json())
    for s in first.suggestions:
        s.notes.append("changed")
        for cite in s.citations + s.dose_citations:
            cite.quote = cite.reference = "changed"
        if s.regimen:
            s.regimen["text"] = "changed"
            for step in s.regimen.get("steps", ()):
                step["label"] = "changed"
    for n in first.not_suggested:
        n.unmet.append("changed")
        n.why_not = n.title = "changed"
    first.facts["stage"].append("changed")
    assert dumps_line(pathway.consult(profile).to_json()) == before


def test_entries_built_without_init_have_every_field(pathway, gen):
    """Suggestions and not-suggested entries are made from per-rule fields without their
    dataclass __init__: each must still hold exactly the declared fields."""
    import dataclasses

    from cno_pathway.consult.consult import NotSuggested, Suggestion

    for profile in _profiles(pathway, gen, 30, seed=41):
        consult = pathway.consult(profile)
        for items, cls in ((consult.suggestions, Suggestion), (consult.not_suggested, NotSuggested)):
            names = {f.name for f in dataclasses.fields(cls)}
            assert all(set(vars(item)) == names for item in items), cls.__name__
