"""Rule tests (ruletest.py): partial profiles completed from test_defaults, run through the real
engine; a failure names the profile and the conditions that did not hold (or that held); nothing
is skipped silently."""

from __future__ import annotations

import shutil

import pytest

from cno_pathway.authoring import ruletest
from cno_pathway.knowledge.conditions import Any_
from cno_pathway.patient.facts import derive_facts
from cno_pathway.patient.profile import validate_profile
from cno_pathway.knowledge.rulebook import load_rulebook
from cno_pathway.authoring.ruletest import complete, held, run_rule_tests, why_not_staged


@pytest.fixture
def book_with(tmp_path, fixture_rules):
    """book_with(edit) -> the fixture rule base with its rule file edited by `edit(text)`."""
    def make(edit):
        directory = tmp_path / "rules"
        shutil.copytree(fixture_rules, directory)
        path = directory / "10-fixture.yaml"
        path.write_text(edit(path.read_text()))
        return load_rulebook(directory)
    return make


# -- completing partial profiles ------------------------------------------------------------------

def test_mappings_merge_and_lists_replace():
    defaults = {"age_years": 10, "lesions": {"count": 3, "sites": ["tibia", "femur"], "imaging": "whole_body_mri"},
                "features": ["acne"], "treatments": []}
    full = complete(defaults, {"lesions": {"count": 1, "sites": ["clavicle"]}, "features": [],
                               "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]})
    assert full == {"age_years": 10, "lesions": {"count": 1, "sites": ["clavicle"], "imaging": "whole_body_mri"},
                    "features": [], "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}


def test_completing_leaves_the_defaults_alone():
    defaults = {"lesions": {"count": 3, "sites": ["tibia"]}}
    full = complete(defaults, {"lesions": {"count": 1}})
    full["lesions"]["sites"].append("femur")
    assert defaults == {"lesions": {"count": 3, "sites": ["tibia"]}}


def test_an_empty_test_is_the_default_patient(fixture_book):
    assert complete(fixture_book.test_defaults, {}) == fixture_book.test_defaults


# -- running ----------------------------------------------------------------------------------------

def test_the_fixture_rule_tests_pass(fixture_book):
    results = run_rule_tests(fixture_book)
    assert [r.rule.id for r in results] == [r.id for r in fixture_book.rules]
    assert all(r.ok and not r.failures for r in results)
    assert sum(r.passed for r in results) == sum(len(r.tests) for r in fixture_book.rules)


def test_tests_run_through_the_real_engine(fixture_book, monkeypatch):
    calls = []

    class Counting(ruletest.Engine):
        def evaluate(self, facts):
            calls.append(facts)
            return super().evaluate(facts)

    monkeypatch.setattr(ruletest, "Engine", Counting)
    run_rule_tests(fixture_book)
    # one evaluation per distinct completed test profile (rules that share a profile share it)
    distinct = {ruletest._key(ruletest.complete(fixture_book.test_defaults, t.profile))
                for r in fixture_book.rules for t in r.tests}
    assert len(calls) == len(distinct) < sum(len(r.tests) for r in fixture_book.rules)


def test_one_rule(fixture_book):
    results = run_rule_tests(fixture_book, "CNO-ESC-STEROID")
    assert [(r.rule.id, r.passed) for r in results] == [("CNO-ESC-STEROID", 2)]


def test_a_failing_fires_test_names_what_did_not_hold_and_where_the_chain_broke(book_with):
    book = book_with(lambda t: t.replace(
        "    fires: [{treatments: [{drug: naproxen, months: 4, response: none}]}]\n    silent: [{}]",
        "    fires: [{treatments: [{drug: naproxen, months: 2, response: none}]}]\n    silent: [{}]"))
    result, = run_rule_tests(book, "CNO-ESC-STEROID")
    failure, = result.failures
    assert not result.ok and result.passed == 1
    assert failure.test.expect == "fires" and failure.test.line == 67
    assert failure.test.profile == {"treatments": [{"drug": "naproxen", "months": 2, "response": "none"}]}
    assert failure.reason == "expected to fire but stayed silent"
    assert failure.details == [
        "needs at stage NSAID-refractory; stage: none",
        "stage nsaid_refractory comes from CNO-STAGE-NSAID-REFRACTORY (rules/10-fixture.yaml:13), "
        "which did not fire: needs failed classes include NSAID; failed classes: none"]


def test_a_failing_silent_test_names_what_held(book_with):
    book = book_with(lambda t: t.replace("silent: [{lesions: {count: 2, sites: [vertebra]}}]",
                                         "silent: [{lesions: {count: 2, sites: [femur]}}]"))
    result, = run_rule_tests(book, "CNO-FL-NAPROXEN")
    failure, = result.failures
    assert failure.reason == "expected to stay silent but fired"
    assert failure.details == ["held: at stage Treatment-naive; stage: Treatment-naive",
                               "held: not (vertebral is yes); vertebral: no"]


def test_an_invalid_test_profile_fails(book_with):
    book = book_with(lambda t: t.replace("    fires: [{}]\n    silent: [{lesions",
                                         "    fires: [{lesions: {count: 1, sites: [tibia, femur]}}]\n    silent: [{lesions"))
    result, = run_rule_tests(book, "CNO-FL-NAPROXEN")
    failure, = result.failures
    assert failure.reason.startswith("invalid test profile: lesions.sites: ")
    assert not result.ok


def test_a_rule_without_tests_fails(book_with):
    book = book_with(lambda t: t.rsplit("  tests:\n    fires: [{}]\n", 1)[0])
    result, = run_rule_tests(book, "CNO-MON-MRI")
    assert not result.ok and result.failures[0].reason == "the rule has no tests"
    assert result.failures[0].test is None


def test_a_retired_rule_is_reported_as_skipped(book_with):
    book = book_with(lambda t: t.replace("Follow-up MRI\n  status: reviewed", "Follow-up MRI\n  status: retired"))
    result, = run_rule_tests(book, "CNO-MON-MRI")
    assert result.skipped == "retired: not in the engine" and result.passed == 0
    assert result.to_json()["status"] == "skipped"


def test_results_as_json(fixture_book):
    data = run_rule_tests(fixture_book, "CNO-FL-NAPROXEN")[0].to_json()
    assert data == {"rule": "CNO-FL-NAPROXEN", "where": "rules/10-fixture.yaml:38", "status": "pass",
                    "skipped": None, "passed": 2, "failures": []}


# -- explanations -----------------------------------------------------------------------------------

def test_held_lists_only_the_alternatives_that_held(fixture_book, vocab):
    rule = fixture_book.by_id["CNO-REF-MULTI"]
    assert isinstance(rule.when, Any_)
    facts = derive_facts(validate_profile(complete(fixture_book.test_defaults, {"labs": {"crp_mg_l": 150}}),
                                          vocab), vocab)
    assert held(rule.when, facts, fixture_book.label) == ["held: CRP (mg/L) is above 100; CRP (mg/L): 150"]


def test_held_is_empty_when_the_condition_is_false(fixture_book, vocab):
    facts = derive_facts(validate_profile(complete(fixture_book.test_defaults, {}), vocab), vocab)
    assert held(fixture_book.by_id["CNO-REF-MULTI"].when, facts) == []


def test_why_not_staged_follows_the_chain_one_step(fixture_book, vocab):
    facts = derive_facts(validate_profile(complete(fixture_book.test_defaults, {}), vocab), vocab)
    facts["stage"] = ["treatment_naive"]
    reasons = why_not_staged(fixture_book, fixture_book.by_id["CNO-REF-MULTI"], facts)
    assert reasons == ["stage multi_class_refractory comes from CNO-STAGE-MULTI (rules/10-fixture.yaml:24), "
                       "which did not fire: needs at stage NSAID-refractory; stage: Treatment-naive; "
                       "needs failed classes include Glucocorticoid; failed classes: none"]
