"""`rules lint`: one deliberately broken rule base per check; each message names the right
file, line and rule. Warnings and errors are distinct; exit 1 on errors; JSON for editors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.lint import lint

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RULES = ROOT / "tests" / "fixtures" / "rules"
FIXTURE_SEEDS = ROOT / "tests" / "fixtures" / "seeds"

GOOD = """\
- id: CNO-T-GOOD
  title: A good rule
  status: draft
  stage: monitoring
  when: {has: {stage: treatment_naive}}
  then: {suggest: {kind: monitor, therapy: clinical_review, rationale: Fine.}}
  evidence: {grade: C, cites: [fixture-cohort#nsaid-works]}
  tests: {fires: [{}], silent: [{treatments: [{drug: naproxen, months: 4, response: none}]}]}
"""


def rulebase(tmp_path: Path, text: str, name: str = "50-extra.yaml") -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(FIXTURE_RULES, directory)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def problems_of(directory: Path):
    return lint(directory, FIXTURE_SEEDS)


def line_of(directory: Path, name: str, needle: str, nth: int = 0) -> int:
    lines = (directory / name).read_text().splitlines()
    return [i for i, text in enumerate(lines, 1) if needle in text][nth]


def only(problems, code):
    found = [p for p in problems if p.code == code]
    assert found, [str(p) for p in problems]
    return found


def test_the_fixture_rule_base_is_clean():
    assert [str(p) for p in problems_of(FIXTURE_RULES)] == []


def test_repository_rule_base_is_clean():
    problems = lint(ROOT / "rules", ROOT / "seeds")
    assert [str(p) for p in problems if p.level == "error"] == []


@pytest.mark.parametrize("edit, code, needle", [
    (("  status: draft", "  status: draft\n  severity: high"), "E101", "severity: high"),
    (("{has: {stage: treatment_naive}}", "{equals: {vertebral: true}}"), "E101", "equals"),
    (("{has: {stage: treatment_naive}}", "{eq: {vertebrae: true}}"), "E101", "vertebrae"),
    (("{has: {stage: treatment_naive}}", "{has: {features: wings}}"), "E101", "wings"),
    (("{has: {stage: treatment_naive}}", "{gt: {lesions.count: many}}"), "E101", "many"),
])
def test_schema_errors_name_file_line_and_rule(tmp_path, edit, code, needle):
    directory = rulebase(tmp_path, GOOD.replace(*edit))
    problem = only(problems_of(directory), code)[0]
    assert problem.file == "rules/50-extra.yaml"
    assert problem.line == line_of(directory, "50-extra.yaml", needle)
    assert problem.rule == "CNO-T-GOOD"
    assert problem.level == "error"


def test_malformed_id(tmp_path):
    directory = rulebase(tmp_path, GOOD.replace("CNO-T-GOOD", "cno_bad"))
    problem = only(problems_of(directory), "E101")[0]
    assert "malformed" in problem.message and problem.line == 1


def test_one_broken_file_does_not_hide_another(tmp_path):
    directory = rulebase(tmp_path, GOOD.replace("status: draft", "status: drafty"))
    (directory / "60-other.yaml").write_text(GOOD.replace("CNO-T-GOOD", "CNO-T-OTHER")
                                             .replace("kind: monitor", "kind: insist"))
    files = {p.file for p in only(problems_of(directory), "E101")}
    assert files == {"rules/50-extra.yaml", "rules/60-other.yaml"}


def test_duplicate_ids_name_both_places(tmp_path):
    directory = rulebase(tmp_path, GOOD + "\n" + GOOD)
    found = only(problems_of(directory), "E200")
    assert sorted(p.line for p in found) == [1, line_of(directory, "50-extra.yaml", "- id: CNO-T-GOOD", 1)]
    assert all(p.rule == "CNO-T-GOOD" for p in found)


@pytest.mark.parametrize("cite, message", [("nobody#x", "unknown source 'nobody'"),
                                           ("fixture-cohort#nothing", "has no finding 'nothing'")])
def test_unknown_citation(tmp_path, cite, message):
    directory = rulebase(tmp_path, GOOD.replace("fixture-cohort#nsaid-works", cite))
    problem = only(problems_of(directory), "E210")[0]
    assert message in problem.message and problem.rule == "CNO-T-GOOD" and problem.line == 1


def test_grade_stronger_than_the_evidence(tmp_path):
    directory = rulebase(tmp_path, GOOD.replace("grade: C", "grade: A"))
    problem = only(problems_of(directory), "E211")[0]
    assert "stronger than the best cited source supports (C)" in problem.message


def test_grade_may_be_weaker(tmp_path):
    directory = rulebase(tmp_path, GOOD.replace("grade: C", "grade: D"))
    assert not [p for p in problems_of(directory) if p.code == "E211"]


def test_suggestion_without_citations_or_tests(tmp_path):
    text = GOOD.replace("  evidence: {grade: C, cites: [fixture-cohort#nsaid-works]}\n", "") \
               .replace("  tests: {fires: [{}], silent: [{treatments: [{drug: naproxen, months: 4, "
                        "response: none}]}]}\n", "  tests: {fires: [{}]}\n")
    problems = problems_of(rulebase(tmp_path, text))
    assert only(problems, "E220")[0].rule == "CNO-T-GOOD"
    assert "`silent` tests" in only(problems, "E221")[0].message


def test_staging_rule_without_a_fires_test(tmp_path):
    text = ("- id: CNO-T-STAGE\n  title: s\n  status: draft\n  stage: staging\n"
            "  when: {eq: {vertebral: true}}\n  then: {derive: {stage: nsaid_refractory}}\n")
    assert only(problems_of(rulebase(tmp_path, text)), "E222")[0].rule == "CNO-T-STAGE"


def test_invalid_test_profile(tmp_path):
    directory = rulebase(tmp_path, GOOD.replace("fires: [{}]", "fires: [{lesions: {count: 1, sites: [a, b]}}]"))
    problem = only(problems_of(directory), "E223")[0]
    assert problem.rule == "CNO-T-GOOD" and "lesions.sites" in problem.message


def test_unknown_regimen(tmp_path):
    directory = rulebase(tmp_path, GOOD.replace("rationale: Fine.", "regimen: nothing, rationale: Fine."))
    assert "unknown regimen 'nothing'" in only(problems_of(directory), "E230")[0].message


def test_dose_not_in_the_cited_passage(tmp_path):
    directory = rulebase(tmp_path, GOOD)
    regimens = directory / "regimens.yaml"
    regimens.write_text(regimens.read_text().replace("dose: 10,", "dose: 12,"))
    problem = only(problems_of(directory), "E231")[0]
    assert problem.file == "rules/regimens.yaml" and "12 does not appear" in problem.message
    assert problem.line == line_of(directory, "regimens.yaml", "dose: 12")


def test_stage_used_but_never_derived(tmp_path):
    directory = rulebase(tmp_path, GOOD.replace("treatment_naive", "bisphosphonate_failed"))
    problem = only(problems_of(directory), "E240")[0]
    assert problem.rule == "CNO-T-GOOD" and "bisphosphonate_failed" in problem.message


def test_stage_derived_but_never_used_is_a_warning(tmp_path):
    text = GOOD + ("- id: CNO-T-STAGE\n  title: s\n  status: draft\n  stage: staging\n"
                   "  when: {eq: {vertebral: true}}\n  then: {derive: {stage: csdmard_failed}}\n"
                   "  tests: {fires: [{lesions: {count: 2, sites: [vertebra]}}]}\n")
    problem = only(problems_of(rulebase(tmp_path, text)), "W241")[0]
    assert problem.level == "warning" and problem.rule == "CNO-T-STAGE"


@pytest.mark.parametrize("when", [
    "{all: [{gt: {lesions.count: 5}}, {lt: {lesions.count: 3}}]}",
    "{all: [{eq: {diagnosis: cno}}, {eq: {diagnosis: sapho}}]}",
    "{all: [{has: {features: psoriasis}}, {lacks: {features: psoriasis}}]}",
    "{all: [{in: {biopsy: [none, infection]}}, {eq: {biopsy: malignancy}}]}",
    "{all: [{gte: {age_years: 18}}, {eq: {age_years: 12}}]}",
    "{any: [{all: [{gt: {lesions.count: 5}}, {lt: {lesions.count: 3}}]}, {all: [{present: weight_kg}, {absent: weight_kg}]}]}",
])
def test_condition_that_can_never_hold(tmp_path, when):
    directory = rulebase(tmp_path, GOOD.replace("{has: {stage: treatment_naive}}", when))
    problem = only(problems_of(directory), "E250")[0]
    assert problem.rule == "CNO-T-GOOD" and problem.line == 1


def test_satisfiable_conditions_pass(tmp_path):
    when = "{all: [{gte: {lesions.count: 3}}, {lte: {lesions.count: 3}}, {ne: {diagnosis: sapho}}]}"
    assert not [p for p in problems_of(rulebase(tmp_path, GOOD.replace("{has: {stage: treatment_naive}}", when)))
                if p.code == "E250"]


def test_recommend_and_avoid_the_same_therapy(tmp_path):
    avoid = GOOD.replace("CNO-T-GOOD", "CNO-T-AVOID").replace("kind: monitor, therapy: clinical_review",
                                                              "kind: avoid, therapy: naproxen")
    problem = only(problems_of(rulebase(tmp_path, avoid)), "E270")[0]
    assert {problem.rule, "CNO-FL-NAPROXEN"} >= {"CNO-FL-NAPROXEN"} and "naproxen" in problem.message
    assert "test at line" in problem.message or "," in problem.message  # names its witness profile


def test_too_many_staging_rules(tmp_path):
    text = "".join(f"- id: CNO-T-S{i}\n  title: s\n  status: draft\n  stage: staging\n"
                   f"  when: {{gte: {{lesions.count: {i % 10}}}}}\n  then: {{derive: {{stage: treatment_naive}}}}\n"
                   "  tests: {fires: [{lesions: {count: 9}}]}\n" for i in range(420))
    assert only(problems_of(rulebase(tmp_path, text)), "E260")


def test_cli_exit_codes_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("CNO_PATHWAY_SEEDS", str(FIXTURE_SEEDS))
    runner = CliRunner()
    clean = runner.invoke(main, ["rules", "lint", str(FIXTURE_RULES)])
    assert clean.exit_code == 0 and "0 errors, 0 warnings" in clean.output
    broken = rulebase(tmp_path, GOOD.replace("grade: C", "grade: A"))
    result = runner.invoke(main, ["rules", "lint", str(broken)])
    assert result.exit_code == 1
    assert "rules/50-extra.yaml:1: error E211 [CNO-T-GOOD]:" in result.output
    data = json.loads(runner.invoke(main, ["rules", "lint", str(broken), "--format", "json"]).output)
    assert data["errors"] >= 1 and data["problems"][0]["file"] == "rules/50-extra.yaml"


def test_warnings_alone_exit_0(tmp_path, monkeypatch):
    monkeypatch.setenv("CNO_PATHWAY_SEEDS", str(FIXTURE_SEEDS))
    text = GOOD + ("- id: CNO-T-STAGE\n  title: s\n  status: draft\n  stage: staging\n"
                   "  when: {eq: {vertebral: true}}\n  then: {derive: {stage: csdmard_failed}}\n"
                   "  tests: {fires: [{lesions: {count: 2, sites: [vertebra]}}]}\n")
    result = CliRunner().invoke(main, ["rules", "lint", str(rulebase(tmp_path, text))])
    assert result.exit_code == 0 and "warning W241" in result.output
