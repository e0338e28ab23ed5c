"""`cno-pathway demo CASE` (issue 7): a teaching case replayed one treatment at a time, pinned by
snapshots (tests/snapshots/demo/; regenerate with SNAPSHOT_UPDATE=1), and the handouts."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from cno_pathway.teaching import changes
from cno_pathway.teaching.cases import find_case
from cno_pathway.cli import main
from cno_pathway.commands import teaching
from cno_pathway.teaching.demo import replay

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "demo"
SNAPSHOT_CASES = ["steroid-relapse", "anakinra-cohort", "tnf-psoriasis", "nsaid-too-short"]
REAL = {"CNO_PATHWAY_RULES": None, "CNO_PATHWAY_SEEDS": None}


@pytest.fixture
def runner():
    return CliRunner()


def _demo(runner, *args):
    return runner.invoke(main, ["demo", *args], env=REAL)


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("SNAPSHOT_UPDATE") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing snapshot {path}: run SNAPSHOT_UPDATE=1 pytest tests/test_demo.py"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (f"demo output differs from {path.name}; if the change is intended, "
                              "regenerate with SNAPSHOT_UPDATE=1")


@pytest.mark.parametrize("name", SNAPSHOT_CASES)
def test_demo_snapshot(runner, name):
    result = _demo(runner, name, "--no-pause")
    assert result.exit_code == 0, result.output
    check_snapshot(f"{name}.txt", result.output)


def test_markdown_handout_snapshot(runner):
    result = _demo(runner, "steroid-relapse", "--format", "markdown")
    assert result.exit_code == 0, result.output
    check_snapshot("steroid-relapse.md", result.output)


# -- the replay -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SNAPSHOT_CASES)
def test_replay_adds_one_treatment_per_step_and_ends_at_the_case(pathway, name):
    case = find_case(name)
    walk = replay(pathway, case)
    full = case.profile(pathway.vocabulary)
    assert len(walk.steps) == len(full.treatments) + 1
    for index, step in enumerate(walk.steps):
        assert step.number == index + 1
        assert step.profile.treatments == full.treatments[:index]
        assert step.added == (full.treatments[index - 1] if index else None)
    first = walk.steps[0].changes
    assert all(item.status == "new" for item in first.items)
    last = walk.final.consult
    assert last.stage == case.expect_stage
    assert sorted(s.rule for s in last.suggestions) == sorted(case.expect_suggestions)


def test_changes_between_steps_are_consistent(pathway):
    walk = replay(pathway, find_case("steroid-relapse"))
    for before, after in zip(walk.steps, walk.steps[1:]):
        ch = after.changes
        old = {s.rule for s in before.consult.suggestions}
        new = {s.rule for s in after.consult.suggestions}
        assert {c.after.rule for c in ch.new} | {c.after.rule for c in ch.changed} == new - old
        assert {c.before.rule for c in ch.dropped} | {c.before.rule for c in ch.changed} == old - new
        assert set(ch.stages_added) == set(after.consult.stage) - set(before.consult.stage)
    # the glucocorticoid course turns "consider prednisolone" into "avoid" (another rule)
    changed = walk.steps[-1].changes.changed
    assert any(c.before.kind == "consider" and c.after.kind == "avoid" and "kind" in c.what
               for c in changed)


def _suggestion(rule, kind, therapy, grade="C"):
    return SimpleNamespace(rule=rule, kind=kind, therapy=therapy, grade=grade)


def _consult(*suggestions, stage=()):
    return SimpleNamespace(suggestions=list(suggestions), stage=list(stage),
                           stage_labels=[s.upper() for s in stage])


def test_compare_pairs_one_therapy_across_rules_only_on_the_kind_scale_or_a_new_grade():
    before = _consult(_suggestion("R1", "consider", "drug_a"), _suggestion("R2", "monitor", "review"),
                      _suggestion("R3", "consider", "drug_b", "D"), _suggestion("R4", "alert", "drug_c"),
                      stage=["s1"])
    after = _consult(_suggestion("R5", "recommend", "drug_a"), _suggestion("R6", "monitor", "review"),
                     _suggestion("R7", "consider", "drug_b", "C"), _suggestion("R8", "consider", "drug_c"),
                     stage=["s1", "s2"])
    ch = changes.compare(before, after)
    status = {c.current.rule: (c.status, c.what) for c in ch.items}
    assert status["R5"] == ("changed", ("kind", "rule"))
    assert status["R7"] == ("changed", ("grade", "rule"))
    assert status["R6"][0] == "new" and status["R2"][0] == "dropped"     # monitor -> monitor
    assert status["R8"][0] == "new" and status["R4"][0] == "dropped"     # alert is not on the scale
    assert ch.stages_added == ["s2"] and ch.added_labels == ["S2"] and not ch.stages_removed
    assert changes.compare(None, after).new and not changes.compare(after, after).any


# -- the command ----------------------------------------------------------------------------------

def test_markdown_and_html_handouts(runner, tmp_path, pathway):
    case = find_case("anakinra-cohort")
    steps = len(case.profile(pathway.vocabulary).treatments) + 1
    md_path = tmp_path / "handout.md"
    assert _demo(runner, case.name, "-o", str(md_path)).exit_code == 0     # format from the extension
    md = md_path.read_text(encoding="utf-8")
    assert md.startswith(f"# Teaching case: {case.title}")
    assert len(re.findall(rf"^## Step \d+ of {steps}: ", md, re.M)) == steps
    assert "| kind | suggestion | therapy | grade | rule |" in md
    assert "| change | kind | suggestion | therapy | grade | rule |" in md
    assert pathway.rulebook.messages["disclaimer"].split()[0] in md

    html = _demo(runner, case.name, "--format", "html").output
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    checker = _TagBalance()
    checker.feed(html)
    assert checker.stack == [] and not checker.errors, checker.errors
    assert html.count("<section id=\"step-") == steps
    assert "\x1b[" not in html and "\x1b[" not in md


class _TagBalance(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def test_pauses_between_steps_only_at_a_terminal(runner, monkeypatch):
    pauses = []
    monkeypatch.setattr(teaching, "_pause", lambda *a, **k: pauses.append(a))
    monkeypatch.setattr(teaching, "_terminal", lambda: True)
    paused = _demo(runner, "steroid-relapse")
    assert paused.exit_code == 0, paused.output
    assert len(pauses) == 2                              # 3 steps
    assert paused.output == _demo(runner, "steroid-relapse", "--no-pause").output
    assert len(pauses) == 2
    monkeypatch.setattr(teaching, "_terminal", lambda: False)
    _demo(runner, "steroid-relapse")
    assert len(pauses) == 2


def test_unknown_case_and_wrong_format_exit_2(runner, tmp_path):
    unknown = _demo(runner, "no-such-case", "--no-pause")
    assert unknown.exit_code == 2 and "no-such-case" in unknown.stderr
    assert "steroid-relapse" in unknown.stderr                        # names the known cases
    assert _demo(runner, "steroid-relapse", "-o", str(tmp_path / "x.json")).exit_code == 2


def test_demo_of_a_case_file_on_the_fixture_rule_base(runner, fixture_env, tmp_path):
    case = tmp_path / "mine.yaml"
    case.write_text(
        "title: Two failures\nsource: [fixture-case]\nteaches: stepping up\n"
        "expect: {stage: [nsaid_refractory, multi_class_refractory], suggestions: [CNO-MON-MRI, CNO-REF-MULTI]}\n"
        "profile:\n  age_years: 10\n  diagnosis: cno\n  lesions: {count: 3, sites: [tibia]}\n"
        "  treatments:\n    - {drug: naproxen, months: 4, response: none}\n"
        "    - {drug: prednisolone, months: 1, response: relapse}\n", encoding="utf-8")
    result = runner.invoke(main, ["demo", str(case), "--no-pause"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Step 1 of 3: no treatment yet" in out and "Step 3 of 3: + prednisolone" in out
    step2 = out.split("Step 2 of 3")[1].split("Step 3 of 3")[0]
    assert re.search(r"^\+ CONSIDER .*Steroid bridge", step2, re.M)
    assert re.search(r"^- RECOMMEND .*Naproxen first", step2, re.M)
    step3 = out.split("Step 3 of 3")[1]
    assert re.search(r"^\+ CONSIDER .*Refractory disease", step3, re.M)
