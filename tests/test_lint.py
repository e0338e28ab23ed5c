"""`rules lint`: one deliberately broken rule base per check (tests/fixtures/broken/), each line
that must be reported marked `# expect: CODE [RULE]`; the message must name that file, line and
rule, and nothing else in the broken files may be reported. Then the checks that need a
generated rule base, the satisfiability reasoning on its own, and the command line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.authoring.lint import lint, numbers_in
from cno_pathway.knowledge.rulebook import _RuleParser
from cno_pathway.authoring.satisfiable import MAX_TERMS, contradiction, dead_alternatives
from cno_pathway.yamlio import parse_document

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RULES = ROOT / "tests" / "fixtures" / "rules"
FIXTURE_SEEDS = ROOT / "tests" / "fixtures" / "seeds"
BROKEN = ROOT / "tests" / "fixtures" / "broken"
CASES = sorted(p.name for p in BROKEN.iterdir() if p.is_dir())
_EXPECT = re.compile(r"#\s*expect:\s*(.+)$")


def build(tmp_path: Path, case: str) -> tuple[Path, Path, Path | None, dict]:
    """The fixture rule base (and seeds) with the broken case laid over it; returns the folders
    and {label of each overlaid file: its lines}."""
    rules, seeds = tmp_path / "rules", tmp_path / "seeds"
    shutil.copytree(FIXTURE_RULES, rules)
    shutil.copytree(FIXTURE_SEEDS, seeds)
    examples = None
    overlaid = {}
    for source in sorted((BROKEN / case).rglob("*.yaml")):
        relative = source.relative_to(BROKEN / case)
        if relative.parts[0] in ("seeds", "examples"):
            target = tmp_path / relative
            examples = tmp_path / "examples" if relative.parts[0] == "examples" else examples
        else:
            target = rules / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        overlaid[f"{target.parent.name}/{target.name}"] = source.read_text().splitlines()
    return rules, seeds, examples, overlaid


def expectations(overlaid: dict) -> set[tuple]:
    """(code, file, line, rule) for every `# expect:` comment of the overlaid files."""
    out = set()
    for label, lines in overlaid.items():
        for number, text in enumerate(lines, 1):
            match = _EXPECT.search(text)
            if not match:
                continue
            words = match.group(1).split()
            codes = [w for w in words if re.fullmatch(r"[EW]\d{3}", w)]
            rules = [w for w in words if w not in codes]
            assert codes, f"{label}:{number}: an expect comment names no code"
            out |= {(code, label, number, rules[0] if rules else None) for code in codes}
    return out


def test_every_broken_case_has_expectations():
    assert len(CASES) >= 20
    for case in CASES:
        files = [p.read_text() for p in (BROKEN / case).rglob("*.yaml")]
        assert any("# expect:" in text for text in files), case


@pytest.mark.parametrize("case", CASES)
def test_broken_rule_base(tmp_path, case):
    rules, seeds, examples, overlaid = build(tmp_path, case)
    problems = lint(rules, seeds, examples=examples)
    expected = expectations(overlaid)
    found = {(p.code, p.file, p.line, p.rule) for p in problems if p.file in overlaid}
    assert found == expected, "\n".join(str(p) for p in problems)
    for p in problems:
        assert p.level == ("error" if p.code.startswith("E") else "warning")


def test_the_fixture_rule_base_is_clean():
    assert [str(p) for p in lint(FIXTURE_RULES, FIXTURE_SEEDS)] == []


def test_one_broken_file_does_not_hide_the_others(tmp_path):
    rules, seeds, _, overlaid = build(tmp_path, "schema")
    files = {p.file for p in lint(rules, seeds) if p.code == "E101"}
    assert files == set(overlaid) and len(files) == 7


def test_messages_say_what_is_wrong(tmp_path):
    def messages(case):
        rules, seeds, examples, _ = build(tmp_path / case, case)
        return [p.message for p in lint(rules, seeds, examples=examples)]

    schema = messages("schema")
    assert "unknown fact 'vertebrae'; did you mean vertebral?" in schema
    assert any(m.startswith("unknown operator 'equals'") for m in schema)
    assert "this condition can never hold: number of lesions is above 5 and number of lesions is below 3" \
        in messages("never-true")
    assert "regimen naproxen-fixture: 1200 does not appear in any cited passage (no dose the " \
        "sources do not give)" in messages("dose-not-quoted")


def test_a_conflict_is_reported_at_both_rules_with_its_witness(tmp_path):
    rules, seeds, _, _ = build(tmp_path, "opposite-kinds")
    found = [p for p in lint(rules, seeds) if p.code == "E270"]
    assert {p.rule for p in found} == {"CNO-FL-NAPROXEN", "CNO-BROKEN-AVOID-NSAID"}
    naproxen = next(p for p in found if p.rule == "CNO-FL-NAPROXEN")
    assert naproxen.file == "rules/10-fixture.yaml" and naproxen.line == 38
    assert "CNO-BROKEN-AVOID-NSAID (rules/50-opposite.yaml:3) says avoid nsaid" in naproxen.message
    assert "both fire on the fires test of CNO-STAGE-NAIVE (rules/10-fixture.yaml:10)" in naproxen.message


def test_a_pair_that_can_never_fire_together_needs_no_witness_search(tmp_path, monkeypatch):
    """Opposite kinds under contradictory conditions (vertebral vs not vertebral) are proved
    apart by the satisfiability check: no profile is evaluated to look for a witness."""
    import cno_pathway.authoring.lint as lint_module

    rules, seeds, _, _ = build(tmp_path, "opposite-kinds")
    path = rules / "50-opposite.yaml"
    path.write_text(path.read_text().replace(
        "when: {has: {stage: treatment_naive}}",
        "when: {all: [{has: {stage: treatment_naive}}, {eq: {vertebral: true}}]}").replace(
        "fires: [{}]", "fires: [{lesions: {count: 2, sites: [vertebra]}}]"))

    def no_search(*args, **kwargs):
        raise AssertionError("the witness search ran for a pair proved never to fire together")

    monkeypatch.setattr(lint_module, "reference_evaluate", no_search)
    assert not [p for p in lint(rules, seeds) if p.code in ("E270", "W271")]


def test_two_drugs_of_one_class_are_not_a_conflict(tmp_path):
    rules, seeds, _, _ = build(tmp_path, "opposite-kinds")
    path = rules / "50-opposite.yaml"
    path.write_text(path.read_text().replace("therapy: nsaid", "therapy: ibuprofen"))
    assert not [p for p in lint(rules, seeds) if p.code in ("E270", "W271")]


def test_unknown_adequate_trial_basis(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURE_RULES, rules)
    vocabulary = rules / "vocabulary.yaml"
    vocabulary.write_text(vocabulary.read_text().replace("adequate_trial_basis: [fixture-cohort#nsaid-works]",
                                                         "adequate_trial_basis: [fixture-cohort#gone]"))
    problem = next(p for p in lint(rules, FIXTURE_SEEDS) if p.code == "E213")
    assert problem.file == "rules/vocabulary.yaml" and "'gone'" in problem.message


def test_too_many_staging_rules(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURE_RULES, rules)
    (rules / "05-many.yaml").write_text("".join(
        f"- id: CNO-GEN-S{i}\n  title: s\n  status: draft\n  stage: staging\n"
        f"  when: {{gte: {{lesions.count: {i % 10}}}}}\n  then: {{derive: {{stage: treatment_naive}}}}\n"
        "  tests: {fires: [{lesions: {count: 9}}]}\n" for i in range(400)))
    problem = next(p for p in lint(rules, FIXTURE_SEEDS) if p.code == "E260")
    assert problem.level == "error" and "403 staging rules" in problem.message
    assert problem.rule and problem.file and problem.line


def test_a_retired_staging_rule_derives_nothing(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURE_RULES, rules)
    path = rules / "10-fixture.yaml"
    text = path.read_text()
    path.write_text(text.replace("  priority: 3\n", "  status: retired\n  priority: 3\n", 1)
                    .replace("Refractory to NSAID and glucocorticoid (chained on a derived stage)\n  status: reviewed\n",
                             "Refractory to NSAID and glucocorticoid (chained on a derived stage)\n"))
    problems = [p for p in lint(rules, FIXTURE_SEEDS) if p.code == "E240"]
    assert [(p.rule, p.line) for p in problems] == [("CNO-REF-MULTI", 77)]


# -- satisfiability on its own --------------------------------------------------------------------

@pytest.fixture(scope="module")
def parse_when(vocab):
    def parse(text: str):
        doc = parse_document(text, source="when")
        return _RuleParser(doc, vocab, {}).condition(doc.data, ())
    return parse


@pytest.mark.parametrize("when", [
    "{all: [{gt: {lesions.count: 5}}, {lt: {lesions.count: 3}}]}",
    "{all: [{gte: {age_years: 3}}, {lte: {age_years: 3}}, {ne: {age_years: 3}}]}",
    "{all: [{gt: {age_years: 3}}, {lte: {age_years: 3}}]}",
    "{all: [{eq: {vertebral: true}}, {ne: {vertebral: true}}]}",
    "{all: [{eq: {vertebral: true}}, {not: {eq: {vertebral: true}}}]}",
    "{all: [{eq: {lesions.count: 4}}, {in: {lesions.count: [1, 2]}}]}",
    "{all: [{in: {biopsy: [none, infection]}}, {in: {biopsy: [malignancy]}}]}",
    "{all: [{absent: weight_kg}, {gt: {weight_kg: 3}}]}",
    "{all: [{present: weight_kg}, {absent: weight_kg}]}",
    "{all: [{has: {failed_classes: [nsaid, csdmard]}}, {lacks: {failed_classes: csdmard}}]}",
    "{all: [{not: {lacks: {features: acne}}}, {lacks: {features: acne}}]}",
    "{absent: features}",
    "{any: []}",
    "{not: {all: []}}",
    "{not: {any: [{eq: {vertebral: true}}, {eq: {vertebral: false}}, {absent: vertebral}]}}",
    "{all: [{ne: {hla_b27: positive}}, {ne: {hla_b27: negative}}, {ne: {hla_b27: unknown}}]}",
    "{all: [{gt: {lesions.count: 5}}, {any: [{lt: {lesions.count: 3}}, {eq: {lesions.count: 1}}]}]}",
])
def test_never_holds(parse_when, vocab, when):
    assert contradiction(parse_when(when), vocab) is not None


@pytest.mark.parametrize("when", [
    "{all: []}",
    "{all: [{gte: {lesions.count: 3}}, {lte: {lesions.count: 3}}]}",
    "{all: [{gt: {lesions.count: 2}}, {lt: {lesions.count: 3}}]}",  # reals: never claims too much
    "{all: [{not: {eq: {vertebral: true}}}, {eq: {multifocal: true}}]}",
    "{all: [{absent: weight_kg}, {not: {gt: {weight_kg: 3}}}]}",  # unstated: `not` holds
    "{all: [{not: {in: {sex: [female, male, other]}}}]}",          # holds when sex is unstated
    "{all: [{has: {features: psoriasis}}, {lacks: {features: acne}}]}",
    "{all: [{gt: {lesions.count: 5}}, {any: [{lt: {lesions.count: 3}}, {eq: {lesions.count: 7}}]}]}",
    "{present: features}",
])
def test_may_hold(parse_when, vocab, when):
    assert contradiction(parse_when(when), vocab) is None


def test_a_dead_alternative_in_context(parse_when, vocab):
    cond = parse_when("{all: [{gt: {lesions.count: 5}}, {any: [{lt: {lesions.count: 3}}, "
                      "{eq: {lesions.count: 7}}]}]}")
    dead = dead_alternatives(cond, vocab)
    assert [why for _, why in dead] == ["number of lesions is above 5 and number of lesions is below 3"]


def test_a_condition_too_large_to_expand_is_assumed_to_hold(parse_when, vocab):
    alternatives = ", ".join(f"{{eq: {{lesions.count: {i}}}}}" for i in range(8))
    big = "{all: [" + ", ".join([f"{{any: [{alternatives}]}}"] * 5) + ", {any: []}]}"
    assert 8 ** 5 > MAX_TERMS
    assert contradiction(parse_when(big), vocab) is None


@pytest.mark.parametrize("text, numbers", [
    ("Naproxen 10-15 mg/kg per day", {10, 15}),
    ("day 1 0.5 mg/kg, days 2 and 3 1 mg/kg", {1, 0.5, 2, 3}),
    ("at most 1,000 mg (1 000 mg)", {1000}),
    ("0,5 mg/kg", {0.5}),
])
def test_numbers_in_a_quote(text, numbers):
    assert numbers_in(text) == numbers


# -- command line ---------------------------------------------------------------------------------

def test_cli_exit_codes_and_json(tmp_path):
    runner = CliRunner()
    clean = runner.invoke(main, ["rules", "lint", str(FIXTURE_RULES), "--seeds", str(FIXTURE_SEEDS)])
    assert clean.exit_code == 0 and clean.output == "0 errors, 0 warnings\n"
    rules, seeds, _, _ = build(tmp_path, "grade-too-strong")
    result = runner.invoke(main, ["rules", "lint", str(rules), "--seeds", str(seeds)])
    assert result.exit_code == 1
    assert "rules/50-grade.yaml:2: error E211 [CNO-BROKEN-GRADE]: grade B is stronger" in result.output
    assert result.output.endswith("1 error, 0 warnings\n")
    data = json.loads(runner.invoke(main, ["rules", "lint", str(rules), "--seeds", str(seeds),
                                           "--format", "json"]).output)
    assert data["errors"] == 1 and data["warnings"] == 0
    assert data["problems"] == [{"level": "error", "code": "E211", "file": "rules/50-grade.yaml",
                                 "line": 2, "rule": "CNO-BROKEN-GRADE",
                                 "message": "grade B is stronger than the best cited source supports (C)"}]


def test_cli_warnings_alone_exit_0(tmp_path, monkeypatch):
    monkeypatch.setenv("CNO_PATHWAY_SEEDS", str(FIXTURE_SEEDS))
    rules, _, _, _ = build(tmp_path, "stage-never-used")
    result = CliRunner().invoke(main, ["rules", "lint", str(rules)])
    assert result.exit_code == 0
    assert "rules/00-stage.yaml:1: warning W241 [CNO-BROKEN-UNUSED-STAGE]" in result.output


def test_cli_schema_errors_are_findings_not_crashes(tmp_path):
    rules, seeds, _, _ = build(tmp_path, "schema")
    result = CliRunner().invoke(main, ["rules", "lint", str(rules), "--seeds", str(seeds)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.count("error E101") == 7


def test_cli_missing_folder_is_bad_input():
    result = CliRunner().invoke(main, ["rules", "lint", "/nonexistent/rules"])
    assert result.exit_code == 2 and "rule folder not found" in result.output
