"""`cno-pathway rules test | coverage | gaps | list | show | facts` on the fixture rule base:
output, JSON, exit codes (1 for findings, 2 for bad input) and never a traceback."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.commands.rules import facts_table
from cno_pathway.authoring.coverage import case_profiles, coverage
from cno_pathway.authoring.gaps import find_gaps, grid, histories

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RULES = ROOT / "tests" / "fixtures" / "rules"


def run(*args):
    return CliRunner().invoke(main, ["rules", *map(str, args)])


@pytest.fixture
def edited(tmp_path):
    """edited(edit, extra=None) -> a copy of the fixture rule base, its rule file edited and an
    optional extra rule file added."""
    counter = iter(range(100))

    def make(edit=lambda t: t, extra: str | None = None) -> Path:
        directory = tmp_path / str(next(counter)) / "rules"  # "rules/": messages name rules/FILE
        shutil.copytree(FIXTURE_RULES, directory)
        path = directory / "10-fixture.yaml"
        path.write_text(edit(path.read_text()))
        if extra:
            (directory / "50-extra.yaml").write_text(extra)
        return directory
    return make


# -- rules test -------------------------------------------------------------------------------------

def test_rules_test_passes_on_the_fixture():
    result = run("test", FIXTURE_RULES)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["PASS", "CNO-STAGE-NAIVE", "rules/10-fixture.yaml:2", "(2", "tests)"]
    assert lines[-1] == "7 passed, 0 failed, 0 skipped (retired)"


def test_rules_test_failure_output(edited):
    rules = edited(lambda t: t.replace("fires: [{treatments: [{drug: naproxen, months: 4, response: none}]}]\n    silent: [{}]",
                                       "fires: [{treatments: [{drug: naproxen, months: 2, response: none}]}]\n    silent: [{}]"))
    result = run("test", rules, "--rule", "CNO-ESC-STEROID")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "FAIL  CNO-ESC-STEROID  rules/10-fixture.yaml:54  (1 passed, 1 failed)",
        "      fires test at rules/10-fixture.yaml:67: expected to fire but stayed silent",
        '        profile: {"treatments": [{"drug": "naproxen", "months": 2, "response": "none"}]}',
        "        needs at stage NSAID-refractory; stage: none",
        "        stage nsaid_refractory comes from CNO-STAGE-NSAID-REFRACTORY (rules/10-fixture.yaml:13), "
        "which did not fire: needs failed classes include NSAID; failed classes: none",
        "0 passed, 1 failed, 0 skipped (retired)"]
    data = json.loads(run("test", rules, "--rule", "CNO-ESC-STEROID", "--format", "json").output)
    failure = data["results"][0]["failures"][0]
    assert data["results"][0]["status"] == "fail" and failure["line"] == 67 and failure["expect"] == "fires"


def test_an_invalid_rule_file_fails_the_run_and_every_one_is_named(edited):
    rules = edited(extra="- id: CNO-X\n  title: x\n  status: draft\n  stage: monitoring\n"
                         "  when: {eqq: {vertebral: true}}\n  then: {suggest: {kind: monitor, rationale: x}}\n")
    (rules / "60-also-broken.yaml").write_text("- id: cno-lower\n")
    result = run("test", rules)
    assert result.exit_code == 1
    assert "PASS" not in result.output and "Traceback" not in result.output
    assert "INVALID  rules/50-extra.yaml:5: error E101 [CNO-X]: unknown operator 'eqq'" in result.output
    assert "INVALID  rules/60-also-broken.yaml:1: error E101 [cno-lower]" in result.output
    assert result.output.endswith("the rule base does not parse (2 errors): no test ran\n")
    assert json.loads(run("test", rules, "--format", "json").output)["results"] == []


def test_rules_test_unknown_rule_is_bad_input():
    result = run("test", FIXTURE_RULES, "--rule", "CNO-NOPE")
    assert result.exit_code == 2 and "unknown rule 'CNO-NOPE'" in result.output


# -- rules coverage ---------------------------------------------------------------------------------

def test_coverage_of_the_fixture():
    result = run("coverage", FIXTURE_RULES)
    assert result.exit_code == 0 and "NEVER FIRED" not in result.output
    assert "line 78: CRP (mg/L) is above 100 (never true)" in result.output
    data = json.loads(run("coverage", FIXTURE_RULES, "--format", "json").output)
    assert data["never_fired"] == [] and data["profiles"]["tests"] == 13
    multi = next(r for r in data["rules"] if r["rule"] == "CNO-REF-MULTI")
    assert [(b["line"], b["covered"]) for b in multi["branches"]] == [(77, True), (78, False)]


def test_a_rule_no_test_fires_is_listed_and_fails(edited):
    rules = edited(extra="""\
- id: CNO-T-UNREACHED
  title: Never fired by any test
  status: draft
  stage: monitoring
  when:
    all:
      - gt: {labs.esr_mm_h: 90}
      - any:
          - all: [{has: {features: acne}}, {eq: {vertebral: true}}]
          - has: {features: ibd}
  then: {suggest: {kind: monitor, therapy: clinical_review, rationale: Fine.}}
  evidence: {grade: C, cites: [fixture-cohort#nsaid-works]}
  tests: {fires: [{labs: {esr_mm_h: 5}}], silent: [{}]}
""")
    result = run("coverage", rules)
    assert result.exit_code == 1
    assert "NEVER FIRED  CNO-T-UNREACHED  rules/50-extra.yaml:1" in result.output
    assert "line 9: either: features include acne and vertebral is yes (never holds)" in result.output


def test_teaching_cases_in_both_shapes(tmp_path, fixture_book):
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "a-case.yaml").write_text(
        "title: t\nsource: []\nteaches: x\nexpect: {stage: [], suggestions: []}\n"
        "profile: {age_years: 9, diagnosis: cno, lesions: {count: 2, sites: [tibia]}, labs: {crp_mg_l: 150}}\n")
    (examples / "b-bare.yaml").write_text("age_years: 9\ndiagnosis: cno\nlesions: {count: 2}\n")
    (examples / "c-bad.yaml").write_text("age_years: -3\ndiagnosis: cno\nlesions: {count: 2}\n")
    exercises, skipped = case_profiles(examples)
    assert [e.data["age_years"] for e in exercises] == [9, 9, -3] and skipped == []
    report = coverage(fixture_book, examples)
    assert report.cases == 2 and len(report.skipped) == 1 and "c-bad.yaml" in report.skipped[0]
    multi = next(c for c in report.rules if c.rule.id == "CNO-REF-MULTI")
    assert multi.fired_by_cases == 1 and multi.branches_covered == len(multi.branches)


# -- rules gaps -------------------------------------------------------------------------------------

def test_gaps_on_the_fixture_are_clean_and_fast(fixture_book):
    start = time.perf_counter()
    report = find_gaps(fixture_book)
    assert report.clean and report.profiles == len(grid(fixture_book)) > 5000
    assert time.perf_counter() - start < 15
    assert run("gaps", FIXTURE_RULES).output == f"{report.profiles} profiles: 0 without a suggestion, 0 conflicts\n"


def test_the_grid_covers_the_axes_the_issue_names(fixture_book):
    labels = [label for label, _ in grid(fixture_book)]
    for axis in ("1 lesion", "3 lesions", "8 lesions", "vertebral fracture", "red flag", "sapho",
                 "adult onset", "arthritis", "psoriasis"):
        assert any(axis in label for label in labels), axis
    assert [name for name, _ in histories(fixture_book)][:8] == [
        "naive", "nsaid short", "nsaid responding", "nsaid complete", "nsaid failed",
        "nsaid intolerant", "nsaid+gc failed", "antibiotics failed"]


def test_gaps_and_conflicts_are_reported(edited):
    no_monitoring = edited(lambda t: t.split("- id: CNO-MON-MRI")[0])
    result = run("gaps", no_monitoring)
    assert result.exit_code == 1
    assert "NO SUGGESTION  1 lesion, vertebral, no red flags, cno, child, no features, " \
           "biopsy inflammatory, naive  (stage: treatment_naive)" in result.output
    clash = edited(extra="""\
- id: CNO-T-AVOID-NAPROXEN
  title: Avoids what CNO-FL-NAPROXEN recommends
  status: draft
  stage: first_line
  when: {eq: {multifocal: true}}
  then: {suggest: {kind: avoid, therapy: naproxen, rationale: Clash.}}
  evidence: {grade: C, cites: [fixture-cohort#nsaid-works]}
  tests: {fires: [{}], silent: [{lesions: {count: 1, sites: [tibia]}}]}
""")
    data = json.loads(run("gaps", clash, "--format", "json").output)
    assert data["gaps"] == [] and data["conflicts"]
    assert data["conflicts"][0]["rules"] == ["CNO-FL-NAPROXEN", "CNO-T-AVOID-NAPROXEN"]
    assert all(c["therapy"] == "naproxen" for c in data["conflicts"])


# -- rules list, show, facts ------------------------------------------------------------------------

def test_list_text_and_json():
    result = run("list", FIXTURE_RULES)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[3].split() == ["CNO-FL-NAPROXEN", "reviewed", "first_line", "recommend", "naproxen",
                                "C", "1", "cit.", "rules/10-fixture.yaml:38", "Naproxen", "first"]
    assert lines[-1] == "7 rules (7 active)"
    data = json.loads(run("list", FIXTURE_RULES, "--format", "json").output)
    assert data[3] == {"id": "CNO-FL-NAPROXEN", "title": "Naproxen first", "status": "reviewed",
                       "stage": "first_line", "priority": 20, "kind": "recommend", "therapy": "naproxen",
                       "regimen": "naproxen-fixture", "derives": None, "grade": "C",
                       "citations": ["fixture-cohort#nsaid-works"], "file": "rules/10-fixture.yaml",
                       "line": 38}
    assert data[0]["kind"] == "derive" and data[0]["derives"] == {"stage": "treatment_naive"}


def test_show_text_and_json():
    result = run("show", "CNO-ESC-STEROID", FIXTURE_RULES)
    assert result.exit_code == 0
    assert "when:      at stage NSAID-refractory and failed classes exclude Glucocorticoid" in result.output
    assert "cites:     fixture-case#steroid-case" in result.output
    assert "where:     rules/10-fixture.yaml:54" in result.output
    data = json.loads(run("show", "CNO-ESC-STEROID", FIXTURE_RULES, "--format", "json").output)
    assert data["tests"][0] == {"expect": "fires", "line": 67,
                                "profile": {"treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}}


def test_show_unknown_rule_and_missing_folder_are_bad_input():
    unknown = run("show", "CNO-NOPE", FIXTURE_RULES)
    assert unknown.exit_code == 2 and "unknown rule 'CNO-NOPE'" in unknown.output
    for command in ("test", "coverage", "gaps", "list"):
        missing = run(command, "/nonexistent/rules")
        assert missing.exit_code == 2 and "rule folder not found" in missing.output, command
        assert "Traceback" not in missing.output


def test_the_rules_folder_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CNO_PATHWAY_RULES", str(FIXTURE_RULES))
    assert run("list").output.splitlines()[-1] == "7 rules (7 active)"


def test_facts_table_is_the_readme_table():
    readme = (ROOT / "rules" / "README.md").read_text()
    section = readme.split("## Facts", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert table == facts_table(), "regenerate it with `cno-pathway rules facts`"
    assert run("facts").output == facts_table() + "\n"
    assert json.loads(run("facts", "--format", "json").output)["stage"]["derived_by_rules"] is True


# -- rules path, rules init -----------------------------------------------------------------------

def test_rules_path_names_the_built_in_rules_whatever_the_environment(monkeypatch, fixture_rules):
    from click.testing import CliRunner

    from cno_pathway.cli import main
    from cno_pathway.resources import builtin_rules_dir

    monkeypatch.setenv("CNO_PATHWAY_RULES", str(fixture_rules))
    result = CliRunner().invoke(main, ["rules", "path"])
    assert result.exit_code == 0
    assert Path(result.stdout.strip()) == builtin_rules_dir()
    assert (Path(result.stdout.strip()) / "vocabulary.yaml").is_file()


def test_rules_init_copies_the_rules_into_a_new_or_empty_folder_only(tmp_path):
    from click.testing import CliRunner

    from cno_pathway.cli import main
    from cno_pathway.resources import builtin_rules_dir

    runner = CliRunner()
    target = tmp_path / "new" / "rules"
    result = runner.invoke(main, ["rules", "init", str(target)])
    assert result.exit_code == 0, result.output
    for path in builtin_rules_dir().glob("*.yaml"):
        assert (target / path.name).read_bytes() == path.read_bytes()
    assert "rules lint --rules" in result.stdout
    again = runner.invoke(main, ["rules", "init", str(target)])
    assert again.exit_code == 2 and "not empty" in again.stderr
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    refused = runner.invoke(main, ["rules", "init", str(a_file)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(main, ["rules", "init", str(empty)]).exit_code == 0
