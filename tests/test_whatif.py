"""`consult --what-if` (issue 7): edits to a profile, before and after side by side with the
differences marked, and bad edits as one message naming the edit with exit status 2."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from cno_pathway.teaching import whatif
from cno_pathway.teaching.cases import find_case
from cno_pathway.cli import main

REAL = {"CNO_PATHWAY_RULES": None, "CNO_PATHWAY_SEEDS": None}


@pytest.fixture
def runner():
    return CliRunner()


def _consult(runner, path, *edits, fmt=None):
    args = ["consult", str(path)]
    for edit in edits:
        args += ["--what-if", edit]
    if fmt:
        args += ["--format", fmt]
    return runner.invoke(main, args, env=REAL)


# -- the vertebral-fracture toggle ----------------------------------------------------------------

def test_vertebral_fracture_brings_in_a_pamidronate_consideration_marked_new(runner, examples_dir):
    case = examples_dir / "typical-multifocal.yaml"         # no vertebral lesion, no treatment yet
    result = _consult(runner, case, "sites+=vertebra", "vertebral_fracture=true")
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"lesions\.vertebral_fracture no -> yes", out)
    table = out.split("AFTER")[1].split("Differences")[0]
    row = re.search(r"^\+ +CONSIDER pamidronate \(C\)$", table, re.M)
    assert row, table
    assert re.search(r"^\+ new +consider pamidronate: ", out.split("Differences")[1], re.M)

    data = json.loads(_consult(runner, case, "sites+=vertebra", "vertebral_fracture=true",
                               fmt="json").output)
    assert data["schema"] == whatif.SCHEMA
    new = [c for c in data["changes"]["suggestions"] if c["status"] == "new"]
    assert any(c["therapy"] == "pamidronate" and c["after"]["kind"] == "consider" for c in new)
    assert not any(s["therapy"] == "pamidronate" for s in data["before"]["suggestions"])
    assert data["after"]["profile"]["lesions"]["vertebral_fracture"] is True
    assert data["before"]["profile"]["lesions"]["vertebral_fracture"] is False


def test_a_response_turns_the_consideration_into_a_recommendation(runner, examples_dir):
    # (issue 13: a bisphosphonate for a vertebral fracture "should be considered", never a
    # recommendation, so the NSAID response is the kind change shown here)
    result = _consult(runner, examples_dir / "nsaid-too-short.yaml", "treatments[0].response=partial")
    assert result.exit_code == 0, result.output
    assert re.search(r"^~ CONSIDER NSAID \(C\) +RECOMMEND NSAID \(C\)$", result.output,
                     re.M), result.output
    assert not re.search(r" +$", result.output, re.M)      # no trailing blanks


def test_the_issue_example_a_fracture_and_a_failed_tnf_inhibitor(pathway):
    # (issue 13: a TNF inhibitor that still works is not "failed", so the case is one without)
    profile = find_case("pamidronate-working").profile(pathway.vocabulary)
    result = whatif.what_if(pathway, profile, ["vertebral_fracture=true", "treatments+=etanercept:3:none"])
    assert result.applied[0] == ("lesions.vertebral_fracture", False, True)
    assert [t["drug"] for t in result.applied[1][2]][-1] == "etanercept"
    assert "tnf_inhibitor_failed" in result.changes.stages_added
    assert result.changes.any


def test_changed_kind_is_one_changed_row(pathway):
    profile = find_case("nsaid-too-short").profile(pathway.vocabulary)
    result = whatif.what_if(pathway, profile, ["treatments[0].response=partial"])
    changed = result.changes.changed
    assert changed and all(c.before.therapy == c.after.therapy for c in changed)
    assert any(c.before.kind == "consider" and c.after.kind == "recommend" for c in changed)
    text = whatif.render_what_if(result, "text")
    assert re.search(r"^~ CONSIDER \S+ \(C\) +RECOMMEND \S+ \(C\)$", text, re.M), text


def test_no_difference_is_said(runner, examples_dir):
    result = _consult(runner, examples_dir / "typical-multifocal.yaml", "id=renamed")
    assert result.exit_code == 0
    assert "No difference" in result.output


def test_markdown(runner, examples_dir):
    result = _consult(runner, examples_dir / "typical-multifocal.yaml", "sites=[vertebra, tibia]",
                      "vertebral-fracture=true", fmt="markdown")
    assert result.exit_code == 0, result.output
    assert "| change | before | after | rule |" in result.output
    assert re.search(r"^\| \*\*new\*\* \|  \| consider pamidronate \(C\)<br>[^|]+ \|", result.output, re.M)


def test_without_what_if_the_consult_is_unchanged(runner, examples_dir):
    result = _consult(runner, examples_dir / "typical-multifocal.yaml")
    assert result.exit_code == 0 and "WHAT IF" not in result.output


# -- reading edits --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, path, op", [
    ("vertebral_fracture=true", ("lesions", "vertebral_fracture"), "="),
    ("vertebral-fracture = true", ("lesions", "vertebral_fracture"), "="),
    ("lesions.vertebral_fracture=true", ("lesions", "vertebral_fracture"), "="),
    ("treatments[0].response=relapse", ("treatments", 0, "response"), "="),
    ("treatments.0.months=4", ("treatments", 0, "months"), "="),
    ("features+=psoriasis,acne", ("features",), "+="),
    ("features-=arthritis", ("features",), "-="),
    ("tried+=etanercept:3:none", ("treatments",), "+="),
    ("crp=12.5", ("labs", "crp_mg_l"), "="),
    ("pain=no", ("activity", "pain"), "="),
])
def test_parse_edit(vocab, text, path, op):
    edit = whatif.parse_edit(text, vocab)
    assert (edit.path, edit.op) == (path, op)


def test_every_alias_names_a_profile_field():
    for alias, target in whatif.ALIASES.items():
        path = tuple(target.split("."))
        whatif.field_info(path)     # raises KeyError on a wrong field


def test_values():
    assert whatif.parse_edit("features+=psoriasis, acne", None).value == ["psoriasis", "acne"]
    assert whatif.parse_edit("crp=12.5", None).value == 12.5
    assert whatif.parse_edit("vertebral_fracture=true", None).value is True
    assert whatif.parse_edit("sites=vertebra,tibia", None).value == ["vertebra", "tibia"]
    assert whatif.parse_edit("weight=null", None).value is None


@pytest.mark.parametrize("edit", [
    "vertebral_fractur=true",           # unknown field
    "vertebral_fracture=maybe",         # not a boolean
    "vertebral_fracture=true",          # no vertebra in the sites: a contradiction
    "features+=psorisis",               # not in the vocabulary
    "age",                              # no operator
    "age=",                             # no value
    "vertebral_fracture+=true",         # += on a field that is not a list
    "features-=acne",                   # not in the list
    "treatments+=etanercept:x:none",    # months not a number
    "treatments+=etanercept:3",         # too few parts
    "treatments[9].months=1",           # no such entry
    "lesions.count.x=1",                # no sub-fields
    "age_years=-3",                     # out of range
])
def test_invalid_edit_exits_2_naming_the_edit(runner, examples_dir, edit):
    result = _consult(runner, examples_dir / "typical-multifocal.yaml", edit)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("cno-pathway: error: "), result.stderr
    assert edit in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_html_is_refused(runner, examples_dir):
    result = _consult(runner, examples_dir / "typical-multifocal.yaml", "age=11", fmt="html")
    assert result.exit_code == 2 and "--what-if" in result.stderr


# -- on the fixture rule base (independent of the clinical rules) --------------------------------

def test_fixture_rule_base_failed_nsaid(runner, fixture_env, tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("age_years: 10\ndiagnosis: cno\nlesions: {count: 3, sites: [tibia]}\n",
                       encoding="utf-8")
    result = runner.invoke(main, ["consult", str(profile), "--what-if", "treatments+=naproxen:4:none",
                                  "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    status = {c["rule"]: c["status"] for c in data["changes"]["suggestions"]}
    assert status == {"CNO-ESC-STEROID": "new", "CNO-FL-NAPROXEN": "dropped"}
    assert data["changes"]["stages_added"] == ["nsaid_refractory"]
    assert data["changes"]["stages_removed"] == ["treatment_naive"]


# -- doses, regimens and caps are differences too (issue 15) ----------------------------------------

def test_a_weight_change_shows_the_dose_change(runner, examples_dir):
    case = examples_dir / "typical-multifocal.yaml"            # 32 kg, treatment-naive
    result = _consult(runner, case, "weight=70")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "No difference" not in out
    flat = " ".join(out.split("Differences")[1].split())
    assert re.search(r"~ changed recommend naproxen: .*CNO-FL-NAPROXEN\) dose daily: 320-480 mg per day "
                     r"-> daily: 700-1050 mg per day", flat), out
    md = _consult(runner, case, "weight=70", fmt="markdown").output
    assert re.search(r"^\| \*\*changed\*\* \| recommend naproxen \(C\)<br>[^|<]+<br>dose daily: 320-480 mg "
                     r"per day \| recommend naproxen \(C\)<br>[^|<]+<br>dose daily: 700-1050 mg per day \|",
                     md, re.M), md
    data = json.loads(_consult(runner, case, "weight=70", fmt="json").output)
    naproxen = next(c for c in data["changes"]["suggestions"] if c["rule"] == "CNO-FL-NAPROXEN")
    assert naproxen["status"] == "changed" and naproxen["changed"] == ["dose"]
    assert naproxen["before"]["dose"] == "daily: 320-480 mg per day"
    assert naproxen["after"]["dose"] == "daily: 700-1050 mg per day"


def test_a_weight_change_that_hits_a_cap_is_shown(pathway):
    """The prednisolone course has a maximum: at 36 kg the dose is capped, at 20 kg it is not."""
    profile = find_case("nsaid-refractory").profile(pathway.vocabulary)
    result = whatif.what_if(pathway, profile, ["weight=20"])
    pred = [c for c in result.changes.changed if c.current.therapy == "prednisolone"]
    assert pred and "dose" in pred[0].what, [c.what for c in result.changes.items]
    assert "capped" in pred[0].dose_before and "capped" not in pred[0].dose_after
    text = " ".join(whatif.render_what_if(result, "text").split())
    assert re.search(r"dose .*\(capped at the maximum\) -> .*: 40 mg per day", text), text


def test_removing_the_weight_shows_mg_per_kg(pathway):
    profile = find_case("typical-multifocal").profile(pathway.vocabulary)
    result = whatif.what_if(pathway, profile, ["weight=null"])
    naproxen = next(c for c in result.changes.changed if c.current.rule == "CNO-FL-NAPROXEN")
    assert naproxen.dose_after == "daily: 10-15 mg/kg per day"


def test_markdown_escapes_what_it_embeds(pathway):
    profile = find_case("typical-multifocal").profile(pathway.vocabulary)
    hostile = profile.model_copy(update={"id": "<script>x</script> | `y` [z](javascript:a)"})
    out = whatif.render_what_if(whatif.what_if(pathway, hostile, ["weight=70"]), "markdown")
    assert out.splitlines()[0] == r"# What if: \<script\>x\</script\> \| \`y\` \[z\](javascript:a)"
    assert "<script>" not in out


# -- short courses in days or weeks (issue 15 point 4) --------------------------------------------

def test_short_courses_read_in_days_or_weeks_in_the_consult(fixture_pathway, make_profile):
    profile = make_profile(treatments=[
        {"drug": "naproxen", "months": 6, "response": "none"},
        {"drug": "prednisolone", "months": 0.46, "response": "relapse"},
        {"drug": "prednisolone", "months": 0.3, "response": "relapse"},
        {"drug": "naproxen", "months": 1, "response": "partial", "ongoing": True}])
    lines = fixture_pathway.consult(profile).treatments
    assert [line.split(":")[0] for line in lines] == [
        "naproxen, 6 months", "prednisolone, 2 weeks", "prednisolone, 9 days", "naproxen, 1 month"]


def test_what_if_shows_a_changed_course_length_in_words(runner, examples_dir):
    for length in ("3w", "0.69"):  # with a unit, or a bare number of months
        result = _consult(runner, examples_dir / "steroid-relapse.yaml",
                          f"treatments[1].months={length}")
        assert result.exit_code == 0, result.output
        assert "treatments[1].months 9 days -> 3 weeks" in result.output
    result = _consult(runner, examples_dir / "steroid-relapse.yaml", "treatments[1].months=3 fortnights")
    assert result.exit_code == 2
    assert "is not a duration" in result.output and "Traceback" not in result.output
    result = _consult(runner, examples_dir / "steroid-relapse.yaml", "treatments[1].months=0.69",
                      fmt="markdown")
    assert "| 9 days | 3 weeks |" in result.output


# -- rows with one therapy read apart -------------------------------------------------------------

def _table_rows(text: str) -> list[str]:
    """The side-by-side table's rows, each with the title line under it joined on."""
    lines = text.split("  ------------------------------------  ")[1].split("\n\n")[0].splitlines()[1:]
    rows: list[str] = []
    for line in lines:
        if line[:1] in "+-~ " and not line.startswith("    "):
            rows.append(line)
        else:
            rows[-1] += "\n" + line
    return rows


def test_rows_of_one_therapy_from_different_rules_are_distinguishable(runner, examples_dir):
    case = examples_dir / "nsaid-too-short.yaml"
    result = _consult(runner, case, "treatments[0].response=partial")
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.output)
    review = [r for r in rows if "MONITOR Clinical review (C)" in r]
    assert len(review) >= 3                          # three monitoring rules, one therapy
    assert len(set(review)) == len(review)           # ... each row reads differently
    assert any("Review at 3, 6, 12" in r for r in review)
    assert any("Judge the NSAID response" in r for r in review)
    result = _consult(runner, case, "treatments[0].response=partial", fmt="markdown")
    cells = [line.split(" | ")[1] for line in result.output.splitlines()
             if "monitor Clinical review (C)" in line]
    assert len(cells) >= 3 and len(set(cells)) == len(cells)
    assert all("<br>" in cell for cell in cells)


def test_a_row_without_a_therapy_has_no_second_line(runner, examples_dir):
    result = _consult(runner, examples_dir / "red-flags.yaml", "red_flags=[]")
    assert result.exit_code == 0, result.output
    for row in _table_rows(result.output):
        first, *under = row.splitlines()
        for line in under:   # the title under a therapy, never the title again
            assert line.strip().rstrip("…") not in first


def test_an_edited_treatment_list_shows_each_course_with_its_length(runner, examples_dir):
    result = _consult(runner, examples_dir / "steroid-relapse.yaml", "tried+=etanercept:3w:none")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert ("treatments naproxen 6 months (response relapse), prednisolone 9 days (response "
            "relapse) -> naproxen 6 months (response relapse), prednisolone 9 days (response "
            "relapse), etanercept 3 weeks (response none)") in flat
    md = _consult(runner, examples_dir / "steroid-relapse.yaml", "tried+=etanercept:3w:none",
                  fmt="markdown").output
    assert "| etanercept 3 weeks (response none) |" not in md   # the whole list in one cell
    assert "prednisolone 9 days (response relapse), etanercept 3 weeks (response none) |" in md
