"""`cno-pathway cases list | show NAME | run NAME` (issue 7): the teaching cases in examples/."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from cno_pathway.teaching.cases import load_cases
from cno_pathway.cli import main

REAL = {"CNO_PATHWAY_RULES": None, "CNO_PATHWAY_SEEDS": None}
CASES = load_cases()


@pytest.fixture
def runner():
    return CliRunner()


def _run(runner, *args):
    return runner.invoke(main, list(args), env=REAL)


def test_list_names_every_case_with_title_source_and_point(runner):
    result = _run(runner, "cases", "list")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    for case in CASES:
        assert f"{case.name}\n" in result.output.splitlines(keepends=True)
        assert " ".join(case.title.split()) in flat
        assert ", ".join(case.source) in flat
        assert " ".join(case.teaches.split()) in flat
    assert f"{len(CASES)} teaching cases" in result.output


def test_list_json(runner):
    data = json.loads(_run(runner, "cases", "list", "--format", "json").output)
    assert [c["name"] for c in data] == [c.name for c in CASES]
    assert all(c["title"] and c["teaches"] and c["source"] for c in data)


@pytest.mark.parametrize("case", CASES[:3], ids=[c.name for c in CASES[:3]])
def test_show(runner, case):
    result = _run(runner, "cases", "show", case.name)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert " ".join(case.title.split()) in flat
    assert " ".join(case.teaches.split()) in flat
    for source in case.source:
        assert f"{source}: " in result.output
    for rule in case.expect_suggestions:
        assert rule in flat
    profile = yaml.safe_load(result.output.split("Profile:\n", 1)[1])
    assert profile == case.profile_data


def test_show_json(runner):
    case = CASES[0]
    data = json.loads(_run(runner, "cases", "show", case.name, "--format", "json").output)
    assert data["profile"] == case.profile_data
    assert data["expect"] == {"stage": case.expect_stage, "suggestions": case.expect_suggestions}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_run_is_the_consult_of_the_case(runner, case, examples_dir):
    result = _run(runner, "cases", "run", case.name)
    assert result.exit_code == 0, result.output
    assert result.output == _run(runner, "consult", str(examples_dir / f"{case.name}.yaml")).output
    assert result.stderr == ""          # every case gives what it expects: no note


def test_run_json_and_file_output(runner, tmp_path):
    case = CASES[0]
    data = json.loads(_run(runner, "cases", "run", case.name, "--format", "json").output)
    assert sorted(s["rule"] for s in data["suggestions"]) == sorted(case.expect_suggestions)
    out = tmp_path / "consult.txt"
    assert _run(runner, "cases", "run", case.name, "-o", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8").strip()


def test_run_notes_a_case_whose_expectations_differ(runner, tmp_path, examples_dir):
    data = yaml.safe_load((examples_dir / f"{CASES[0].name}.yaml").read_text(encoding="utf-8"))
    data["expect"]["suggestions"] = ["CNO-NOT-A-RULE"]
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    result = _run(runner, "cases", "run", str(path))
    assert result.exit_code == 0
    assert "differs from what changed expects" in result.stderr


@pytest.mark.parametrize("command", ["show", "run"])
def test_unknown_case_exits_2(runner, command):
    result = _run(runner, "cases", command, "no-such-case")
    assert result.exit_code == 2
    assert "unknown teaching case 'no-such-case'" in result.stderr
    assert CASES[0].name in result.stderr


def test_run_names_the_missing_rules_of_an_edited_rule_base(runner, tmp_path):
    """A rule author retires a rule: `cases run` says which rule the case now misses, by id and
    title, in words rather than as a Python list."""
    import shutil

    from cno_pathway.commands.common import load_pathway
    from cno_pathway.resources import builtin_rules_dir

    mine = tmp_path / "rules"
    shutil.copytree(builtin_rules_dir(), mine)
    monitoring = mine / "60-monitoring.yaml"
    text = monitoring.read_text(encoding="utf-8")
    head = "- id: CNO-MON-VERTEBRAL-MRI\n"
    start = text.index(head)
    status = text.index("  status: reviewed\n", start)
    monitoring.write_text(text[:status] + "  status: retired\n"
                          + text[status + len("  status: reviewed\n"):], encoding="utf-8")
    load_pathway.cache_clear()
    try:
        result = _run(runner, "cases", "run", "vertebral-fracture", "--rules", str(mine),
                      "-f", "json")
    finally:
        load_pathway.cache_clear()
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("cno-pathway: note:")]
    assert notes[0].endswith("the consult differs from what vertebral-fracture expects")
    from cno_pathway.knowledge.rulebook import load_rulebook

    title = load_rulebook(mine).by_id["CNO-MON-VERTEBRAL-MRI"].title
    assert notes[1] == f"cno-pathway: note:   missing 1 rule: CNO-MON-VERTEBRAL-MRI ({title})"
    assert "extra" not in result.stderr and "['" not in result.stderr
    unchanged = _run(runner, "cases", "run", "vertebral-fracture", "-f", "json")
    assert unchanged.exit_code == 0 and "note" not in unchanged.stderr
