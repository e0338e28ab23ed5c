"""The consult in every format (issue 6): text, Markdown, HTML and JSON from the same finished
objects, each carrying every suggestion's rule id, grade and quoted passage, the disclaimer and
the provenance; the order of the kinds; doses with and without weight; escaping of a hostile
label (also through the CLI); 80-column text; byte-identical output across runs and processes;
`-o FILE` with the format taken from its extension.

Most tests run on the fixture rule base. A richer copy of it (`rich`, built below in a temporary
folder: every kind, a multi-step regimen, a range capped at its maximum, a source cited twice,
a URL, a quote full of markup characters) covers what the fixture's few rules do not.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cno_pathway import __version__
from cno_pathway.cli import main
from cno_pathway.consult.consult import KIND_ORDER, Pathway
from cno_pathway.patient.profile import validate_profile
from cno_pathway.consult.render import KIND_HEADINGS, WIDTH, render_consult

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RULES = ROOT / "tests" / "fixtures" / "rules"
FIXTURE_SEEDS = ROOT / "tests" / "fixtures" / "seeds"
FORMATS = ("text", "markdown", "html", "json")
HOSTILE = "<script>alert(1)</script>"

NAIVE = {"id": "naive-child", "age_years": 10, "weight_kg": 32, "diagnosis": "cno",
         "lesions": {"count": 3, "sites": ["tibia", "femur"], "imaging": "whole_body_mri"},
         "biopsy": "inflammatory"}
REFRACTORY = {"id": "refractory", "age_years": 14, "diagnosis": "crmo",
              "lesions": {"count": 4, "sites": ["tibia"]},
              "treatments": [{"drug": "naproxen", "months": 4, "response": "none"},
                             {"drug": "prednisolone", "months": 1, "response": "relapse"}]}
NSAID_FAILED = {"id": "nsaid-failed", "age_years": 12, "diagnosis": "cno",
                "lesions": {"count": 5, "sites": ["tibia", "clavicle"]},
                "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}
ADULT = {"id": "adult", "age_years": 40, "weight_kg": 70, "diagnosis": "cno",
         "lesions": {"count": 2, "sites": ["sternum"]},
         "treatments": [{"drug": "naproxen", "months": 6, "response": "none"},
                        {"drug": "prednisolone", "months": 1, "response": "relapse"}]}
CASES = {"naive": NAIVE, "refractory": REFRACTORY, "nsaid-failed": NSAID_FAILED, "adult": ADULT}

# -- a richer copy of the fixture rule base --------------------------------------------------------

RICH_RULES = """\
- id: CNO-DX-FEVER-ALERT
  title: Fever - exclude infection before anything else
  status: reviewed
  stage: diagnosis
  priority: 5
  when: {has: {red_flags: fever}}
  then:
    suggest: {kind: alert, therapy: specialist_referral, rationale: Fever is a red flag.}
  evidence: {grade: C, cites: [render-cohort#red-flags, render-cohort#markup]}

- id: CNO-DX-FEVER-BIOPSY
  title: Biopsy when there is fever
  status: reviewed
  stage: diagnosis
  priority: 6
  when: {has: {red_flags: fever}}
  then:
    suggest: {kind: investigate, therapy: biopsy, rationale: A biopsy excludes infection.}
  evidence: {grade: C, cites: [render-cohort#red-flags]}

- id: CNO-FL-IBUPROFEN-RANGE
  title: Ibuprofen as an alternative
  status: reviewed
  stage: first_line
  priority: 21
  when: {has: {stage: treatment_naive}}
  then:
    suggest: {kind: consider, therapy: ibuprofen, regimen: ibuprofen-range, rationale: Another NSAID.}
  evidence: {grade: C, cites: [render-cohort#doses]}

- id: CNO-ESC-PRED-DOSE
  title: Prednisolone short course
  status: reviewed
  stage: escalation
  priority: 41
  when: {has: {stage: nsaid_refractory}}
  then:
    suggest: {kind: consider, therapy: prednisolone, regimen: pred-capped, rationale: A short course.}
  evidence: {grade: C, cites: [render-cohort#doses]}

- id: CNO-ESC-PAMIDRONATE
  title: Pamidronate cycles
  status: reviewed
  stage: escalation
  priority: 42
  when: {has: {stage: nsaid_refractory}}
  then:
    suggest: {kind: recommend, therapy: pamidronate, regimen: pamidronate-cycles, rationale: Bisphosphonate.}
  evidence: {grade: C, cites: [render-cohort#doses, render-cohort#red-flags]}

- id: CNO-ESC-NO-REPEAT
  title: No repeated steroid course
  status: reviewed
  stage: escalation
  priority: 43
  when: {has: {failed_classes: glucocorticoid}}
  then:
    suggest: {kind: avoid, therapy: prednisolone, rationale: Repeated courses do not help.}
  evidence: {grade: C, cites: [render-cohort#red-flags]}
"""

RICH_REGIMENS = """\
- id: naproxen-fixture
  therapy: naproxen
  population: pediatric
  text: Naproxen 10 mg/kg/day, at most 1000 mg/day.
  steps:
    - {label: daily, dose: 10, unit: mg/kg, per: day, max: 1000, max_unit: mg}
  cites: [fixture-cohort#naproxen-dose]
- id: ibuprofen-range
  therapy: ibuprofen
  population: pediatric
  text: Ibuprofen 20-40 mg/kg/day, at most 1200 mg/day.
  steps:
    - {label: daily, dose: [20, 40], unit: mg/kg, per: day, max: 1200, max_unit: mg}
  cites: [render-cohort#doses]
- id: pred-capped
  therapy: prednisolone
  population: pediatric
  text: Prednisolone 2 mg/kg/day for 5 days, maximum 60 mg/day.
  steps:
    - {label: days 1-5, dose: 2, unit: mg/kg, per: day, max: 60, max_unit: mg}
  cites: [render-cohort#doses]
- id: pamidronate-cycles
  therapy: pamidronate
  population: pediatric
  text: Pamidronate day 1 0.5 mg/kg, days 2 and 3 1 mg/kg.
  steps:
    - {label: "day 1", dose: 0.5, unit: mg/kg, per: infusion}
    - {label: "days 2 and 3", dose: 1, unit: mg/kg, per: infusion}
  cites: [render-cohort#doses]
"""

RICH_SEED = """\
id: render-cohort
authors: [Alpha A, Beta B, Gamma G, Delta D]
title: A cohort with every citation field
venue: Render J 2019;2:3-4
year: 2019
doi: 10.1234/render.5
url: https://example.org/render-cohort
document: none
known_through: null
design: retrospective_cohort
population: pediatric
n: 30
quality: C
findings:
  - id: red-flags
    topic: diagnosis
    statement: Fever points to infection.
    quote: Fever was the strongest sign of bacterial osteomyelitis.
    locator: Results, Table 2
  - id: markup
    topic: diagnosis
    statement: A quote full of markup characters.
    quote: "CRP < 10 & ESR > 20 in *most* (n = 7) | see [2] `code` _here_ <b>bold</b>"
    locator: Discussion
  - id: doses
    topic: glucocorticoid
    statement: Doses.
    quote: Doses followed the protocol in the methods.
    locator: Methods
"""


@pytest.fixture(scope="module")
def rich_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("rich")
    rules, seeds = base / "rules", base / "seeds"
    shutil.copytree(FIXTURE_RULES, rules)
    shutil.copytree(FIXTURE_SEEDS, seeds)
    (rules / "20-render.yaml").write_text(RICH_RULES, encoding="utf-8")
    (rules / "regimens.yaml").write_text(RICH_REGIMENS, encoding="utf-8")
    (seeds / "render-cohort.yaml").write_text(RICH_SEED, encoding="utf-8")
    return rules, seeds


@pytest.fixture(scope="module")
def fixture(fixture_pathway):
    return fixture_pathway


@pytest.fixture(scope="module")
def rich(rich_dirs):
    pathway = Pathway.load(*rich_dirs)
    yield pathway
    pathway.close()


def consult(pathway, data, **kw):
    return pathway.consult(validate_profile(data, pathway.vocabulary), **kw)


RICH_FEVER = {"id": "fever", "age_years": 11, "weight_kg": 45, "diagnosis": "cno",
              "lesions": {"count": 3, "sites": ["tibia"]}, "red_flags": ["fever"],
              "treatments": [{"drug": "naproxen", "months": 4, "response": "none"},
                             {"drug": "prednisolone", "months": 1, "response": "relapse"},
                             {"drug": "pamidronate", "months": 1, "response": "intolerance"}]}


# -- every format carries the essentials -------------------------------------------------------

def _all_consults(fixture, rich):
    out = [(name, consult(fixture, data)) for name, data in CASES.items()]
    out.append(("rich-fever", consult(rich, RICH_FEVER)))
    out.append(("rich-naive", consult(rich, dict(NAIVE, weight_kg=45))))
    out.append(("rich-no-weight", consult(rich, {k: v for k, v in NAIVE.items() if k != "weight_kg"})))
    return out


def _text_of(fmt: str, rendered: str) -> str:
    """What a reader sees: HTML unescaped and tags dropped, Markdown backslash escapes undone."""
    if fmt == "html":
        return html.unescape(re.sub(r"<[^>]+>", "", rendered))
    if fmt == "markdown":
        return re.sub(r"\\(.)", r"\1", rendered)
    return rendered


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_suggestion_rule_grade_and_quote_in_every_format(fixture, rich, fmt):
    for name, c in _all_consults(fixture, rich):
        assert c.suggestions, name
        out = render_consult(c, fmt)
        seen = json.dumps(json.loads(out)) if fmt == "json" else _text_of(fmt, out)
        flat = " ".join(seen.split())
        for s in c.suggestions:
            assert s.rule in seen, (name, fmt, s.rule)
            assert s.citations, (name, s.rule)
            if fmt == "json":
                continue
            assert f"Grade {s.grade}" in flat or f"Grade{s.grade}" in flat, (name, s.rule)
            assert s.grade_meaning in flat, (name, s.rule)
            assert s.where in seen, (name, s.rule)
            for cite in s.citations:
                assert " ".join(cite.quote.split()) in flat, (name, fmt, cite.quote)
                assert cite.locator in flat


@pytest.mark.parametrize("fmt", FORMATS)
def test_disclaimer_and_provenance_in_every_format(fixture, fmt):
    c = consult(fixture, NAIVE)
    out = render_consult(c, fmt)
    if fmt == "json":
        data = json.loads(out)
        assert data["disclaimer"] == c.disclaimer
        assert data["rulebook"] == {"name": "CNO step-up pathway", "version": "0.1.0",
                                    "digest": c.rulebook["digest"]}
        assert data["program"]["version"] == __version__
        return
    flat = " ".join(_text_of(fmt, out).split())
    assert " ".join(c.disclaimer.split()) in flat
    assert "supports, and does not replace, clinical judgement" in flat
    assert "off-label" in flat and "pediatric" in flat
    assert c.rulebook["digest"] in flat and c.rulebook["digest"].startswith("sha256:")
    assert "CNO step-up pathway 0.1.0" in flat
    assert f"cno-pathway {__version__}" in flat


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_timestamp_or_path_of_this_machine(fixture, fmt):
    out = render_consult(consult(fixture, NAIVE), fmt)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b|\d\d:\d\d:\d\d", out)
    assert str(ROOT) not in out


def test_json_contract_names(rich):
    data = json.loads(render_consult(consult(rich, RICH_FEVER), "json"))
    for key in ("schema", "profile", "facts", "stage", "rulebook", "suggestions", "not_suggested",
                "outside_pathway", "disclaimer"):
        assert key in data
    assert data["schema"] == "cno-pathway/consult/1"
    assert set(data["rulebook"]) >= {"version", "digest"}
    for s in data["suggestions"]:
        assert set(s) >= {"rule", "kind", "title", "therapy", "drug_class", "regimen", "rationale",
                          "grade", "citations"}
        assert s["kind"] in KIND_ORDER
        for cite in s["citations"]:
            assert set(cite) >= {"source", "finding", "quote", "locator", "reference", "doi"}
        if s["regimen"] is not None:
            assert set(s["regimen"]) >= {"text", "steps"}
            for step in s["regimen"]["steps"]:
                assert set(step) >= {"label", "mg_per_kg", "per", "max_mg", "computed_mg", "capped"}
    for n in data["not_suggested"]:
        assert set(n) >= {"rule", "title", "therapy", "unmet"}
    pam = next(s for s in data["suggestions"] if s["rule"] == "CNO-ESC-PAMIDRONATE")
    assert pam["regimen"]["steps"][0] == {"label": "day 1", "mg_per_kg": [0.5, 0.5], "per": "infusion",
                                          "max_mg": None, "computed_mg": [22.5, 22.5], "capped": False,
                                          "formulary_max": None, "cap": None, "uncapped": True}


# -- order -----------------------------------------------------------------------------------------

def _positions(text: str, needles: list[str]) -> list[int]:
    return [text.index(n) for n in needles]


def test_suggestions_are_sorted_by_kind_then_pathway_step(rich):
    c = consult(rich, RICH_FEVER)
    kinds = [s.kind for s in c.suggestions]
    assert kinds == sorted(kinds, key=KIND_ORDER.index)
    assert kinds[:2] == ["alert", "investigate"]
    for kind in set(kinds):
        steps = [s.step for s in c.suggestions if s.kind == kind]
        assert steps == sorted(steps)
    assert [k for k, _ in c.groups] == [k for k in KIND_ORDER if k in kinds]


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_order_in_the_page(rich, fmt):
    c = consult(rich, RICH_FEVER)
    out = render_consult(c, fmt)
    groups = c.document.groups
    detail = out[out.index(KIND_HEADINGS[groups[0][0]]):]
    # the bottom line leads, then the patient and the disclaimer; suggestions follow in consult
    # order; why not, the basis and the one reference list close
    assert out.index("Bottom line") < out.index("Patient") < out.index(
        "Decision aid" if fmt != "text" else "decision aid")
    rules = [s.rule for _, items in groups for s in items]
    assert _positions(detail, rules) == sorted(_positions(detail, rules))
    headings = [KIND_HEADINGS[k] for k, _ in groups]
    assert _positions(out, headings) == sorted(_positions(out, headings))
    assert out.index(rules[-1]) < out.index("Basis of this consult") < out.index("References")


def test_outside_pathway_comes_first(rich):
    c = consult(rich, RICH_FEVER)
    c.outside_pathway = "No rule of the pathway applies to this profile."  # as the consult sets it
    for fmt in ("text", "markdown", "html"):
        out = render_consult(c, fmt)
        assert out.lower().index("outside the pathway") < out.index(c.suggestions[0].rule), fmt
    assert json.loads(render_consult(c, "json"))["outside_pathway"].startswith("No rule")


# -- doses -----------------------------------------------------------------------------------------

def test_text_doses_with_weight_cap_and_steps(rich):
    out = render_consult(consult(rich, RICH_FEVER), "text")
    flat = " ".join(out.split())
    assert "- days 1-5: 2 mg/kg per day, max 60 mg = 60 mg per day (capped at the maximum of 60 mg)" in flat
    assert "- day 1: 0.5 mg/kg per infusion = 22.5 mg per infusion" in flat
    assert "- days 2 and 3: 1 mg/kg per infusion = 45 mg per infusion" in flat
    assert "mg computed for 45 kg" in flat
    naive = " ".join(render_consult(consult(rich, dict(NAIVE, weight_kg=45)), "text").split())
    assert ("- daily: 20-40 mg/kg per day, max 1200 mg = 900-1200 mg per day "
            "(capped at the maximum of 1200 mg)") in naive
    assert "- daily: 10 mg/kg per day, max 1000 mg = 450 mg per day" in naive
    assert "450 mg per day (capped" not in naive


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_without_weight_mg_per_kg_only(rich, fmt):
    c = consult(rich, {k: v for k, v in NAIVE.items() if k != "weight_kg"})
    out = _text_of(fmt, render_consult(c, fmt))
    assert "mg/kg only: no weight given" in out
    assert "20-40 mg/kg" in out and "10 mg/kg" in out
    assert not re.search(r"= \d+(\.\d+)?(-\d+(\.\d+)?)? mg per", out)
    assert "weight not given" in out


def test_html_dose_table_shows_cap_and_amount(rich):
    out = render_consult(consult(rich, RICH_FEVER), "html")
    assert "<strong>60 mg</strong> per day" in out
    assert '<span class="capped">capped at the maximum of 60 mg</span>' in out
    assert "0.5 mg/kg" in out and "<strong>22.5 mg</strong> per infusion" in out
    assert "For 45 kg" in out


def test_every_dose_shows_the_passage_it_comes_from(fixture, rich):
    c = consult(fixture, NAIVE)
    naproxen = next(s for s in c.suggestions if s.rule == "CNO-FL-NAPROXEN")
    [dose] = naproxen.dose_citations
    assert (dose.source, dose.finding, dose.ref) == ("fixture-cohort", "naproxen-dose", 1)
    assert 'Dose source: [1] Methods: "Naproxen was given at 10 mg/kg' in render_consult(c, "text")
    assert "Naproxen was given at 10 mg/kg per day, at most 1000 mg." in render_consult(c, "markdown")
    assert "<q>Naproxen was given at 10 mg/kg per day, at most 1000 mg.</q>" in render_consult(c, "html")
    regimen = json.loads(render_consult(c, "json"))["suggestions"][0]["regimen"]
    assert regimen["citations"][0]["quote"] == "Naproxen was given at 10 mg/kg per day, at most 1000 mg."
    assert regimen["where"].startswith("rules/regimens.yaml:")


# -- citations -------------------------------------------------------------------------------------

def test_citations_numbered_once_per_consult_with_one_reference_list(rich):
    c = consult(rich, RICH_FEVER)
    alert = next(s for s in c.suggestions if s.rule == "CNO-DX-FEVER-ALERT")
    # two passages of one source: one reference number, each passage quoted with its place
    assert [ci.ref for ci in alert.citations] == [1, 1]
    refs = c.document.references
    assert [r.number for r in refs] == list(range(1, len(refs) + 1))
    assert len({r.source for r in refs}) == len(refs)                 # each source listed once
    cited = {ci.source: ci.ref for s in c.suggestions for ci in [*s.citations, *s.dose_citations]}
    assert cited == {r.source: r.number for r in refs}
    render = next(r for r in refs if r.source == "render-cohort")
    assert render.text == ("Alpha A, Beta B, Gamma G, Delta D. A cohort with every citation field. "
                           "Render J 2019;2:3-4. doi:10.1234/render.5")
    text = render_consult(c, "text")
    flat = " ".join(text.split())
    assert '[1] Results, Table 2: "Fever was the strongest sign of bacterial osteomyelitis."' in flat
    assert text.count("A cohort with every citation field") == 1
    assert "https://example.org/render-cohort" in text
    page = render_consult(c, "html")
    assert page.count("A cohort with every citation field") == 1
    assert '<a class="doi" href="https://doi.org/10.1234/render.5">' in page
    assert '<a class="url" href="https://example.org/render-cohort">' in page
    assert f'<li value="{render.number}" id="ref-{render.number}">' in page
    assert "<blockquote>Fever was the strongest sign of bacterial osteomyelitis.</blockquote>" in page
    md = render_consult(c, "markdown")
    assert md.count("A cohort with every citation field") == 1
    assert "[https://doi.org/10.1234/render.5](<https://doi.org/10.1234/render.5>)" in md
    assert "- \\[1\\] *Results, Table 2:* “Fever was the strongest sign of bacterial osteomyelitis.”" in md
    data = json.loads(render_consult(c, "json"))
    assert [r["number"] for r in data["references"]] == [r.number for r in refs]
    for s in data["suggestions"]:
        assert s["reference_numbers"] == sorted({ci["reference_number"] for ci in s["citations"]})


def test_markup_in_a_quote_stays_text(rich):
    c = consult(rich, RICH_FEVER)
    quote = "CRP < 10 & ESR > 20 in *most* (n = 7) | see [2] `code` _here_ <b>bold</b>"
    page = render_consult(c, "html")
    assert "<b>bold</b>" not in page and html.escape(quote, quote=False) in page
    md = render_consult(c, "markdown")
    assert (r"CRP \< 10 \& ESR \> 20 in \*most\* (n = 7) \| see \[2\] \`code\` \_here\_ "
            r"\<b\>bold\</b\>") in md
    assert quote in " ".join(render_consult(c, "text").split())


def test_web_links_only_for_http_urls(rich_dirs, tmp_path):
    from cno_pathway.consult.render import _web_url

    assert _web_url("https://example.org/x") == "https://example.org/x"
    for bad in ("javascript:alert(1)", "data:text/html,x", "https://a b", 'https://x"onclick=1', None):
        assert _web_url(bad) is None


# -- notes, grades, not suggested, explain ---------------------------------------------------------

def test_notes_and_adult_evidence(fixture, rich):
    adult = render_consult(consult(fixture, ADULT), "text")
    assert "Note: This patient is an adult; the evidence behind this suggestion comes from" in adult
    fever = consult(rich, RICH_FEVER)
    pam = next(s for s in fever.suggestions if s.rule == "CNO-ESC-PAMIDRONATE")
    assert pam.notes and "pamidronate: intolerance" in pam.notes[0]
    for fmt in ("markdown", "html"):
        assert "pamidronate: intolerance" in render_consult(fever, fmt)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_not_suggested_limited_by_default_complete_with_explain(fixture, fmt):
    short = " ".join(_text_of(fmt, render_consult(consult(fixture, NAIVE), fmt)).split())
    assert "Why not: other options at this step" in short
    assert "CNO-ESC-STEROID" in short and "not at stage NSAID-refractory" in short
    section = short.split("Why not: other options at this step")[1].split("Basis of this consult")[0]
    assert "CNO-REF-MULTI" not in section
    assert "Engine trace" not in short and "condition:" not in short
    full = _text_of(fmt, render_consult(consult(fixture, NAIVE, explain=True), fmt))
    assert "Why not (every rule that did not fire)" in full
    assert "CNO-REF-MULTI" in full.split("Why not (every rule that did not fire)")[1]
    assert "condition: stage NSAID-refractory" in " ".join(full.split())
    assert "needs at stage" not in full          # the engine's words stay in the JSON


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_explain_shows_fired_rules_and_facts_in_engine_order(fixture, fmt):
    c = consult(fixture, REFRACTORY, explain=True)
    out = _text_of(fmt, render_consult(c, fmt))
    trace = out[out.index("Engine trace"):]
    fired = c.evaluation.fired
    assert fired[:2] == ["CNO-STAGE-NSAID-REFRACTORY", "CNO-STAGE-MULTI"]
    assert _positions(trace, fired) == sorted(_positions(trace, fired))
    assert "derived stage = multi_class_refractory" in " ".join(trace.split())
    assert "failed_classes" in trace and "treatment_count" in trace


def test_every_grade_meaning_is_the_schemes(fixture):
    c = consult(fixture, REFRACTORY)
    for s in c.suggestions:
        assert s.grade_meaning == c.grading["grades"][s.grade]


# -- text layout -----------------------------------------------------------------------------------

URL = re.compile(r"^\s*(https?://\S+|\S*sha256:[0-9a-f]{64}\S*)$")


@pytest.mark.parametrize("explain", [False, True])
def test_text_fits_80_columns(fixture, rich, explain):
    consults = [consult(fixture, d, explain=explain) for d in CASES.values()]
    consults += [consult(rich, RICH_FEVER, explain=explain),
                 consult(rich, dict(RICH_FEVER, id="x" * 150), explain=explain)]
    for c in consults:
        for line in render_consult(c, "text").splitlines():
            assert len(line) <= WIDTH or URL.match(line), line


def test_text_sections_are_separated_by_blank_lines(fixture):
    out = render_consult(consult(fixture, REFRACTORY, explain=True), "text")
    for heading in ("== Bottom line", "== Patient", "== To consider", "== Monitoring", "== Why not",
                    "== Engine trace", "== Basis of this consult", "== References"):
        index = out.index(heading)
        assert out[index - 2:index] == "\n\n", heading
    assert "\n\n\n" not in out
    assert not any(line != line.rstrip() for line in out.splitlines())
    # each suggestion starts after a blank line, with its kind and title
    assert "\n\nCONSIDER  Refractory disease\n" in out and "\n\nMONITOR  Follow-up MRI\n" in out


def test_colour_only_when_asked(fixture):
    c = consult(fixture, NAIVE)
    assert "\033[" not in render_consult(c, "text")
    coloured = render_consult(c, "text", colour=True)
    assert "\033[1;32mRECOMMEND\033[0m" in coloured
    assert re.sub(r"\033\[[0-9;]*m", "", coloured) == render_consult(c, "text")
    for fmt in ("markdown", "html", "json"):
        assert "\033[" not in render_consult(c, fmt, colour=True)


def test_text_control_characters_in_a_label_are_neutralised(fixture):
    out = render_consult(consult(fixture, dict(NAIVE, id="a\033[2Jb\rc")), "text")
    assert "\033" not in out and "\r" not in out
    assert "a?[2Jb c" in out


# -- escaping --------------------------------------------------------------------------------------

def test_html_escapes_a_hostile_label(fixture):
    out = render_consult(consult(fixture, dict(NAIVE, id=HOSTILE)), "html")
    assert "<script" not in out.lower()
    assert html.escape(HOSTILE) in out
    assert 'http-equiv="Content-Security-Policy"' in out and "default-src 'none'" in out


def test_markdown_escapes_a_hostile_label(fixture):
    out = render_consult(consult(fixture, dict(NAIVE, id=HOSTILE + " *x* [y](javascript:z)")), "markdown")
    assert "<script>" not in out
    assert r"\<script\>alert(1)\</script\>" in out
    assert r"\*x\* \[y\](javascript:z)" in out


def test_hostile_label_through_the_cli(tmp_path, fixture_env):
    runner = CliRunner()
    args = ["consult", "--id", HOSTILE, "--age", "10", "--diagnosis", "cno", "--lesions", "3"]
    page = runner.invoke(main, args + ["--format", "html"])
    assert page.exit_code == 0, page.output
    assert "<script" not in page.stdout.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.stdout
    md = runner.invoke(main, args + ["-o", str(tmp_path / "c.md")])
    assert md.exit_code == 0, md.output
    assert r"\<script\>" in (tmp_path / "c.md").read_text(encoding="utf-8")
    data = json.loads(runner.invoke(main, args + ["-f", "json"]).stdout)
    assert data["profile"]["id"] == HOSTILE


# -- Markdown structure ----------------------------------------------------------------------------

def test_markdown_structure(rich):
    c = consult(rich, RICH_FEVER, explain=True)
    md = render_consult(c, "markdown")
    lines = md.splitlines()
    assert lines[0] == "# CNO pathway consult: fever"
    h2 = [line[3:] for line in lines if line.startswith("## ")]
    groups = c.document.groups
    assert h2 == (["Bottom line", "Patient"] + [KIND_HEADINGS[k] for k, _ in groups]
                  + ["Why not (every rule that did not fire)", "Engine trace",
                     "Basis of this consult", "References"])
    h3 = [line[4:] for line in lines if line.startswith("### ")]
    assert h3 == [f"{s.kind.upper()}{' (URGENT)' if s.urgent else ''}: {s.title}"
                  for _, items in groups for s in items]
    assert any(line.startswith("> **Decision aid.**") for line in lines)
    assert "Rule `CNO-ESC-PAMIDRONATE` (`rules/20-render.yaml:" in md
    assert "- **Stage:** NSAID-refractory" in md
    assert "| `failed_classes` |" in md


# -- HTML page -------------------------------------------------------------------------------------

def test_html_is_one_self_contained_page(rich):
    c = consult(rich, RICH_FEVER, explain=True)
    page = render_consult(c, "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "@media print" in page
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"""(src|href)=["'](?!#|https://doi\.org/|https://example\.org/)""", page)
    assert "@import" not in page and "url(" not in page
    for s in c.suggestions:
        assert f'<article class="suggestion kind-{s.kind}" id="{s.rule}">' in page
        assert f'<span class="badge kind-{s.kind}">{s.kind}</span> <h3>{html.escape(s.title)}</h3>' in page
        assert f"<code>{s.rule}</code> <span class=\"where\">{s.where}</span>" in page
    # every kind has its own colour
    colours = {k: re.search(rf"--{k}: (#[0-9a-f]{{6}});", page).group(1) for k in KIND_ORDER}
    assert len(set(colours.values())) == len(KIND_ORDER)
    assert page.count('<p class="disclaimer"') == 2


# -- determinism -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_two_runs_give_the_same_bytes(fixture, rich, fmt):
    for data, pathway in ((NAIVE, fixture), (REFRACTORY, fixture), (RICH_FEVER, rich)):
        first = render_consult(consult(pathway, data, explain=True), fmt)
        second = render_consult(consult(pathway, data, explain=True), fmt)
        assert first.encode() == second.encode()


def _cli(args, env_extra, cwd):
    env = dict(os.environ, CNO_PATHWAY_CACHE="off", **env_extra)
    return subprocess.run([sys.executable, "-m", "cno_pathway", *args], capture_output=True,
                          timeout=120, env=env, cwd=cwd)


def test_two_processes_give_the_same_bytes(tmp_path, rich_dirs):
    profile = tmp_path / "fever.yaml"
    profile.write_text(yaml.safe_dump(RICH_FEVER), encoding="utf-8")
    rules, seeds = rich_dirs
    env = {"CNO_PATHWAY_RULES": str(rules), "CNO_PATHWAY_SEEDS": str(seeds)}
    for fmt in FORMATS:
        outputs = []
        for seed in ("1", "2"):   # different hash seeds: set and dict order must not leak out
            proc = _cli(["consult", str(profile), "--format", fmt, "--explain"],
                        dict(env, PYTHONHASHSEED=seed), ROOT)
            assert proc.returncode == 0, proc.stderr.decode()
            outputs.append(proc.stdout)
        assert outputs[0] == outputs[1], fmt
        assert outputs[0]


# -- -o FILE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,check", [
    ("c.txt", lambda t: t.startswith("CNO PATHWAY CONSULT - naive-child\n")),
    ("c.md", lambda t: t.startswith("# CNO pathway consult: naive-child\n")),
    ("c.markdown", lambda t: t.startswith("# CNO pathway consult")),
    ("c.html", lambda t: t.startswith("<!DOCTYPE html>")),
    ("c.HTM", lambda t: t.startswith("<!DOCTYPE html>")),
    ("c.json", lambda t: json.loads(t)["schema"] == "cno-pathway/consult/1"),
])
def test_output_file_format_from_extension(tmp_path, fixture_env, name, check):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(NAIVE), encoding="utf-8")
    out = tmp_path / name
    result = CliRunner().invoke(main, ["consult", str(profile), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = out.read_text(encoding="utf-8")
    assert check(text) and "\033[" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["p.yaml", name])


def test_format_option_wins_over_the_extension(tmp_path, fixture_env):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(NAIVE), encoding="utf-8")
    out = tmp_path / "c.txt"
    result = CliRunner().invoke(main, ["consult", str(profile), "-o", str(out), "-f", "html"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_output_file_same_bytes_as_stdout(tmp_path, fixture_env):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(NAIVE), encoding="utf-8")
    runner = CliRunner()
    for fmt, ext in (("text", "txt"), ("markdown", "md"), ("html", "html"), ("json", "json")):
        out = tmp_path / f"c.{ext}"
        runner.invoke(main, ["consult", str(profile), "-o", str(out)])
        shown = runner.invoke(main, ["consult", str(profile), "-f", fmt])
        assert out.read_bytes() == shown.stdout_bytes, fmt


def test_failed_write_leaves_no_file(tmp_path, fixture_env):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(NAIVE), encoding="utf-8")
    target = tmp_path / "no-such-dir" / "c.html"
    result = CliRunner().invoke(main, ["consult", str(profile), "-o", str(target)])
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_write_under_a_file_is_one_clean_error(tmp_path, fixture_env):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(NAIVE), encoding="utf-8")
    result = CliRunner().invoke(main, ["consult", str(profile), "-o", str(profile / "c.html")])
    assert result.exit_code == 2, result.output
    assert "cannot write" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_html_breaks_inside_a_word_only_for_codes_and_links(rich):
    """Prose wraps between words ('Conventional', never 'Conventiona l' at phone width); only
    rule ids, file:line, digests, DOIs and URLs, which have no spaces, may break anywhere."""
    page = render_consult(consult(rich, RICH_FEVER, explain=True), "html")
    style = page[page.index("<style>"):page.index("</style>")]
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", style)
    anywhere = [sel.strip() for sel, body in rules if "anywhere" in body or "break-all" in body]
    assert anywhere == ["a.doi, a.url, code, .where"]
