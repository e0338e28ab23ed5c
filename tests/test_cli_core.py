"""`cno-pathway consult` at the edge: text and JSON, errors as one message with exit status 2,
and the console script run as a real subprocess of the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway import __version__
from cno_pathway.cli import main

NAIVE = """\
id: naive-child
age_years: 10
weight_kg: 32
diagnosis: cno
lesions: {count: 3, sites: [tibia, femur], imaging: whole_body_mri}
treatments: []
"""

REFRACTORY = """\
id: refractory
age_years: 14
diagnosis: crmo
lesions:
  count: 4
  sites: [tibia]
treatments:
  - drug: naproxen
    months: 4
    response: none
  - drug: prednisolone
    months: 1
    response: relapse
"""


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def write(tmp_path):
    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path
    return write


def _consult(runner, *args, input=None):
    return runner.invoke(main, ["consult", *map(str, args)], input=input)


def _error_line(result) -> str:
    """The one error message; never a traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1 and lines[0].startswith("cno-pathway: error: "), result.stderr
    return result.stderr


# -- consult --------------------------------------------------------------------------------------

def test_text_consult(runner, write, fixture_env):
    result = _consult(runner, write("p.yaml", NAIVE))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "CNO PATHWAY CONSULT - naive-child" in out
    assert "RECOMMEND  Naproxen first" in out
    assert "Rule CNO-FL-NAPROXEN (rules/10-fixture.yaml:" in out
    assert "= 320 mg per day" in out                       # 10 mg/kg for 32 kg
    assert "NSAIDs helped seven of ten children at three months." in out  # the quoted passage
    assert "decision aid" in out
    assert "Stage: Treatment-naive" in out
    assert "\033[" not in out                              # no colour when not a terminal


def test_json_consult(runner, write, fixture_env):
    result = _consult(runner, write("p.yaml", REFRACTORY), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "cno-pathway/consult/1"
    assert data["program"] == {"name": "cno-pathway", "version": __version__}
    assert data["profile"]["id"] == "refractory" and data["profile"]["age_years"] == 14.0
    assert data["stage"] == ["nsaid_refractory", "multi_class_refractory"]
    assert sorted(s["rule"] for s in data["suggestions"]) == ["CNO-MON-MRI", "CNO-REF-MULTI"]
    assert data["rulebook"]["digest"].startswith("sha256:")
    assert data["facts"]["failed_classes"] == ["nsaid", "glucocorticoid"]
    refractory = next(s for s in data["suggestions"] if s["rule"] == "CNO-REF-MULTI")
    assert refractory["therapy"] == "anakinra" and refractory["grade"] == "D"
    assert refractory["citations"][0]["quote"] == "The adult patient improved on prednisolone."
    assert "trace" not in data


def test_explain_adds_the_trace_and_every_rule_not_suggested(runner, write, fixture_env):
    data = json.loads(_consult(runner, write("p.yaml", NAIVE), "-f", "json", "--explain").stdout)
    assert data["trace"]["fired"] == ["CNO-STAGE-NAIVE", "CNO-FL-NAPROXEN", "CNO-MON-MRI"]
    assert data["trace"]["derivations"] == [{"rule": "CNO-STAGE-NAIVE", "fact": "stage",
                                             "value": "treatment_naive"}]
    not_suggested = {n["rule"]: n["unmet"] for n in data["not_suggested"]}
    assert set(not_suggested) == {"CNO-ESC-STEROID", "CNO-REF-MULTI"}
    assert any("needs at stage" in u for u in not_suggested["CNO-ESC-STEROID"])
    text = _consult(runner, write("q.yaml", NAIVE), "--explain").stdout
    assert "Engine trace" in text and "CNO-STAGE-NAIVE derived stage = treatment_naive" in text


def test_output_file_and_format_from_its_extension(runner, write, tmp_path, fixture_env):
    out = tmp_path / "consult.json"
    result = _consult(runner, write("p.yaml", NAIVE), "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text(encoding="utf-8"))["profile"]["id"] == "naive-child"
    assert not list(tmp_path.glob("*.partial"))
    text_out = tmp_path / "consult.txt"
    _consult(runner, write("q.yaml", NAIVE), "-o", text_out)
    assert text_out.read_text(encoding="utf-8").startswith("CNO PATHWAY CONSULT")


def test_json_profile_from_stdin(runner, fixture_env):
    profile = {"age_years": 10, "diagnosis": "cno", "lesions": {"count": 1}}
    result = _consult(runner, "-", "-f", "json", input=json.dumps(profile))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["profile"]["lesions"]["count"] == 1


def test_rules_option_without_the_environment(runner, write, monkeypatch, fixture_rules):
    from cno_pathway.commands.common import load_pathway

    monkeypatch.delenv("CNO_PATHWAY_RULES", raising=False)
    monkeypatch.setenv("CNO_PATHWAY_SEEDS", str(fixture_rules.parent / "seeds"))
    load_pathway.cache_clear()
    try:
        result = _consult(runner, write("p.yaml", NAIVE), "--rules", fixture_rules, "-f", "json")
    finally:
        load_pathway.cache_clear()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rulebook"]["name"] == "CNO step-up pathway"


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


# -- bad profiles ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content, where, words", [
    (REFRACTORY.replace("response: relapse", "response: better"), ":13: treatments[1].response: ",
     "allowed: none, partial, complete, relapse, intolerance, adverse_event"),
    (NAIVE.replace("age_years: 10", "age_years: 0"), ":2: age_years: ", "greater than 0"),
    (NAIVE.replace("age_years: 10", "age_years: '10'"), ":2: age_years: ", "valid number"),
    (NAIVE + "colour: blue\n", ":7: colour: ", "unknown field"),
    (NAIVE.replace("sites: [tibia, femur]", "sites: [tibia, femur, rib, hand]"), ":5: lesions.sites: ",
     "4 sites listed but lesions.count is 3"),
    (NAIVE.replace("weight_kg: 32", "weight_kg: .nan"), ":3: weight_kg: ", "finite number"),
    (NAIVE.replace("sites: [tibia, femur]", "sites: [tibia, femer]"), ":5: lesions.sites: ",
     "did you mean femur"),
    (NAIVE + "age_years: 11\n", ":7: ", "duplicate key 'age_years'"),
    (NAIVE + "x: !!python/object/apply:os.system ['echo hi']\n", ":7: ", "not allowed"),
    ("", ": ", "empty"),
    ("- a list\n", ":1: ", "must be a mapping"),
    (b"age_years: 10\nid: \xff\n", ":2: ", "not valid UTF-8"),
    (b"\x00\x01binary", ":1: ", "NUL"),
])
def test_a_bad_profile_exits_2_with_one_message(runner, write, fixture_env, content, where, words):
    path = write("bad.yaml", content)
    message = _error_line(_consult(runner, path))
    assert f"cno-pathway: error: {path}{where}" in message
    assert words in message


def test_missing_file_and_directory(runner, tmp_path, fixture_env):
    assert "file not found" in _error_line(_consult(runner, tmp_path / "nope.yaml"))
    assert "directory" in _error_line(_consult(runner, tmp_path))


def test_bad_stdin(runner, fixture_env):
    message = _error_line(_consult(runner, "-", input='{"age_years": 3,\n "age_years": 4}'))
    assert "<stdin>:2: duplicate key 'age_years'" in message


def test_bad_flags_exit_2_naming_the_field(runner, fixture_env):
    message = _error_line(_consult(runner, "--age", "10", "--diagnosis", "cno", "--lesions", "1",
                                   "--tried", "naproxen:four:none"))
    assert "--tried naproxen:four:none" in message and "is not a duration" in message
    message = _error_line(_consult(runner, "--age", "10", "--diagnosis", "cnoo", "--lesions", "1"))
    assert "flags: diagnosis: unknown diagnosis 'cnoo'; did you mean cno" in message
    message = _error_line(_consult(runner, "--age", "10", "--diagnosis", "cno", "--lesions", "1",
                                   "--vertebral-fracture"))
    assert "lesions.vertebral_fracture" in message


# -- usage errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [],                                          # no route
    ["PROFILE", "--age", "10"],                  # a file and flags
    ["PROFILE", "--interactive"],                # a file and prompts
    ["--interactive", "--age", "10"],            # prompts and flags
    ["PROFILE", "--bogus"],                      # unknown option
    ["PROFILE", "--format", "pdf"],              # unknown format
    ["--age", "abc", "--diagnosis", "cno"],      # not a number
    ["--lesions", "2.5", "--age", "3"],          # not a whole number
])
def test_usage_errors_exit_2(runner, write, fixture_env, args):
    path = str(write("p.yaml", NAIVE))
    result = _consult(runner, *[path if a == "PROFILE" else a for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Usage:" in result.stderr or "Error:" in result.stderr


def test_unknown_command(runner):
    result = runner.invoke(main, ["consul"])
    assert result.exit_code == 2 and "Traceback" not in result.output


# -- bad rule bases -------------------------------------------------------------------------------

def test_a_bad_rule_file_exits_2_naming_file_line_and_rule(runner, write, write_rules, monkeypatch,
                                                           fixture_env):
    from cno_pathway.commands.common import load_pathway

    directory = write_rules("- id: CNO-T-BAD\n  title: Bad\n  status: reviewed\n  stage: first_line\n"
                            "  when: {eq: {vertebrae: true}}\n"
                            "  then: {suggest: {kind: consider, rationale: x}}\n")
    monkeypatch.setenv("CNO_PATHWAY_RULES", str(directory))
    load_pathway.cache_clear()
    message = _error_line(_consult(runner, write("p.yaml", NAIVE)))
    assert f"{directory.name}/50-extra.yaml:5: rule CNO-T-BAD: unknown fact 'vertebrae'" in message
    assert "did you mean vertebral" in message


def test_a_missing_rule_folder_exits_2(runner, write, tmp_path, fixture_env):
    message = _error_line(_consult(runner, write("p.yaml", NAIVE), "--rules", tmp_path / "none"))
    assert "rule folder not found" in message


# -- the installed console script, as a real subprocess -------------------------------------------

def _console_script() -> Path:
    script = Path(sys.executable).parent / "cno-pathway"
    if not script.exists():
        found = shutil.which("cno-pathway")
        assert found, "the cno-pathway console script is not installed"
        script = Path(found)
    return script


def _run_script(*args, input=None, cwd=None, fixture_rules=None):
    env = dict(os.environ)
    env["CNO_PATHWAY_RULES"] = str(fixture_rules)
    env["CNO_PATHWAY_SEEDS"] = str(fixture_rules.parent / "seeds")
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(_console_script()), *map(str, args)], input=input,
                          capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_console_script_consult_on_the_example(tmp_path, root, fixture_rules):
    example = root / "examples" / "typical-multifocal.yaml"
    result = _run_script("consult", example, cwd=tmp_path, fixture_rules=fixture_rules)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "CNO PATHWAY CONSULT" in result.stdout
    assert "RECOMMEND  Naproxen first" in result.stdout
    assert "Rule CNO-FL-NAPROXEN (rules/10-fixture.yaml:" in result.stdout
    data_run = _run_script("consult", example, "--format", "json", cwd=tmp_path,
                           fixture_rules=fixture_rules)
    data = json.loads(data_run.stdout)
    assert data["schema"] == "cno-pathway/consult/1"
    assert data["stage"] == ["treatment_naive"]
    assert {s["rule"] for s in data["suggestions"]} == {"CNO-FL-NAPROXEN", "CNO-MON-MRI"}


def test_console_script_reads_stdin_and_fails_cleanly(tmp_path, fixture_rules):
    good = _run_script("consult", "-", "-f", "json", input=NAIVE, cwd=tmp_path,
                       fixture_rules=fixture_rules)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["profile"]["id"] == "naive-child"
    bad = _run_script("consult", "-", input=NAIVE.replace("count: 3", "count: -1"), cwd=tmp_path,
                      fixture_rules=fixture_rules)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and bad.stdout == ""
    assert bad.stderr.startswith("cno-pathway: error: <stdin>:5: lesions.count: ")
    usage = _run_script("consult", cwd=tmp_path, fixture_rules=fixture_rules)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_console_script_is_the_installed_entry_point():
    script = _console_script()
    text = script.read_text(encoding="utf-8", errors="replace")
    assert "cno_pathway.cli" in text and "main" in text


# -- the one-shot process -------------------------------------------------------------------------

def test_the_console_script_pauses_the_collector_only_while_starting_up(monkeypatch):
    """run() imports with the cyclic collector paused, but the command itself (a batch of
    100,000 profiles, say) runs with it on; at exit what is left is frozen out of its sight."""
    import gc
    import types

    import click

    from cno_pathway import cli

    seen = {}

    @click.command()
    def probe():
        seen["enabled"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()

    def import_module(name):
        seen["enabled while importing"] = gc.isenabled()
        return types.SimpleNamespace(consult=probe)

    monkeypatch.setattr(cli.importlib, "import_module", import_module)
    monkeypatch.setattr(sys, "argv", ["cno-pathway", "consult"])
    from cno_pathway.knowledge import cache

    monkeypatch.setattr(cache, "_keep_frozen", False)   # run() sets it: restored after the test
    assert gc.isenabled()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.run()
        assert exited.value.code == 0
        assert seen["enabled while importing"] is False
        assert seen["enabled"] is True
        assert seen["frozen"] > 0, "start-up objects are frozen before the command runs"
        assert cache._keep_frozen, "knowledge the command loads is frozen with them"
        assert gc.isenabled()
    finally:
        gc.unfreeze()  # this test process goes on: give the collector its objects back
