"""The repository's rule base (resources.rules_dir(): rules/ and seeds/ as shipped) through the
authoring tools (issue 5): lint has no errors, every rule's own tests pass through the real
engine, no gaps or conflicts on the grid, every rule fired by some test or teaching case. These
run in `make test`, so a rule change that breaks one of them fails the build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.authoring.coverage import coverage
from cno_pathway.authoring.gaps import find_gaps
from cno_pathway.authoring.lint import lint
from cno_pathway.resources import examples_dir, rules_dir, seeds_dir
from cno_pathway.knowledge.rulebook import load_rulebook
from cno_pathway.authoring.ruletest import complete, run_rule_tests

ROOT = Path(__file__).resolve().parent.parent
RULES = rules_dir()


@pytest.fixture(scope="module")
def book():
    return load_rulebook(RULES, seeds=seeds_dir())


def test_lint_finds_no_errors():
    problems = lint(RULES, seeds_dir(), examples=examples_dir())
    assert [str(p) for p in problems if p.level == "error"] == []


def test_every_rule_test_passes_through_the_engine(book):
    results = run_rule_tests(book)
    failures = [(r.rule.id, f.reason, f.details) for r in results for f in r.failures]
    assert failures == []
    assert [r.rule.id for r in results if not r.skipped] == [r.id for r in book.active]


def test_no_gaps_and_no_conflicts(book):
    report = find_gaps(book)
    assert report.profiles > 5000
    assert report.gaps == [] and report.conflicts == []


def test_every_rule_is_fired_by_a_test_or_case(book):
    report = coverage(book)
    assert [c.rule.id for c in report.never_fired] == []
    assert report.skipped == []  # every teaching case is a valid profile


def test_cli_commands_are_clean_on_the_repository():
    runner = CliRunner()
    for args in (["rules", "lint"], ["rules", "test"], ["rules", "gaps"], ["rules", "coverage"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (args, result.output[-2000:])
    assert "0 errors" in runner.invoke(main, ["rules", "lint"]).output


def test_list_and_show(book):
    runner = CliRunner()
    listing = runner.invoke(main, ["rules", "list"])
    assert "CNO-ESC-GC-BRIDGE" in listing.output and "rules/30-escalation.yaml:" in listing.output
    data = json.loads(runner.invoke(main, ["rules", "list", "--format", "json"]).output)
    bridge = next(r for r in data if r["id"] == "CNO-ESC-GC-BRIDGE")
    assert bridge["kind"] == "consider" and bridge["therapy"] == "prednisolone" and bridge["grade"] == "C"
    assert bridge["file"] == "rules/30-escalation.yaml" and bridge["line"] > 0
    assert bridge["citations"] and all("#" in c for c in bridge["citations"])
    shown = runner.invoke(main, ["rules", "show", "CNO-REF-ANAKINRA"])
    assert "anakinra" in shown.output and "pardeo-anakinra#anakinra-dose" in shown.output
    assert runner.invoke(main, ["rules", "show", "CNO-NOPE"]).exit_code == 2


def test_a_failing_rule_test_names_the_profile_and_the_condition(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    path = rules / "30-escalation.yaml"
    # break the bridge's firing test: an NSAID trial too short to count as failure
    path.write_text(path.read_text().replace(
        "    fires: [{treatments: [{drug: naproxen, months: 4, response: none}]},\n"
        "            {treatments: [{drug: naproxen, months: 1, response: intolerance}",
        "    fires: [{treatments: [{drug: naproxen, months: 1, response: none}]},\n"
        "            {treatments: [{drug: naproxen, months: 1, response: intolerance}", 1))
    result = CliRunner().invoke(main, ["rules", "test", str(rules), "--rule", "CNO-ESC-GC-BRIDGE"])
    assert result.exit_code == 1
    assert "FAIL  CNO-ESC-GC-BRIDGE" in result.output
    assert "expected to fire but stayed silent" in result.output
    assert '"months": 1' in result.output
    assert "needs at stage Refractory, relapsing" in result.output
    assert "NSAID-refractory (no response after an adequate trial)" in result.output


def test_an_invalid_rule_fails_the_run_instead_of_being_skipped(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "99-broken.yaml").write_text("- id: CNO-X\n  title: x\n  status: draft\n  stage: monitoring\n"
                                          "  when: {eqq: {vertebral: true}}\n  then: {suggest: {kind: monitor, rationale: x}}\n")
    result = CliRunner().invoke(main, ["rules", "test", str(rules)])
    assert result.exit_code == 1 and "PASS" not in result.output
    assert "INVALID  rules/99-broken.yaml:5: error E101 [CNO-X]: unknown operator 'eqq'" in result.output


def test_partial_test_profiles_are_completed_from_the_defaults(book):
    full = complete(book.test_defaults, {"lesions": {"count": 1, "sites": ["tibia"]}, "features": ["acne"]})
    assert full["lesions"] == {"count": 1, "sites": ["tibia"], "vertebral_fracture": False,
                               "imaging": "whole_body_mri"}
    assert full["features"] == ["acne"] and full["diagnosis"] == "cno"
