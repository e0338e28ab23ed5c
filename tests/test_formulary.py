"""The local formulary (issue 13, point 4): a hospital's per-drug maximum doses, each with its
own reference, given with --formulary FILE (or CNO_PATHWAY_FORMULARY, or formulary.yaml beside
the rules). The consult caps a computed figure at the lowest maximum known and cites the
formulary in every format; a bad file is refused with file:line and exit 2.

The maxima written here are synthetic test values (1, 100, 5000 mg...), not clinical figures.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.commands.common import load_pathway
from cno_pathway.consult.consult import Pathway
from cno_pathway.consult.render import render_consult
from cno_pathway.knowledge.formulary import FormularyError, load_formulary
from cno_pathway.knowledge.vocabulary import load_vocabulary
from cno_pathway.patient.profile import validate_profile
from cno_pathway.teaching.cases import load_cases

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RULES = ROOT / "tests" / "fixtures" / "rules"
FIXTURE_SEEDS = ROOT / "tests" / "fixtures" / "seeds"
EXAMPLE = ROOT / "docs" / "formulary.example.yaml"
FORMATS = ("text", "markdown", "html", "json")
FIXTURE_ENV = {"CNO_PATHWAY_RULES": str(FIXTURE_RULES), "CNO_PATHWAY_SEEDS": str(FIXTURE_SEEDS),
               "CNO_PATHWAY_FORMULARY": None}
REAL_ENV = {"CNO_PATHWAY_RULES": None, "CNO_PATHWAY_SEEDS": None, "CNO_PATHWAY_FORMULARY": None}

# The fixture rule base suggests naproxen 10 mg/kg/day, max 1000 mg (naproxen-fixture): 320 mg for
# this child of 32 kg.
CHILD = {"id": "child", "age_years": 10, "weight_kg": 32, "diagnosis": "cno",
         "lesions": {"count": 3, "sites": ["tibia", "femur"], "imaging": "whole_body_mri"},
         "biopsy": "inflammatory"}
REFERENCE = "TEST Formulary <b>2026</b> & section *4.2* [x]"


def _write(tmp_path, text, name="formulary.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _formulary(tmp_path, *entries, name="TEST formulary"):
    return _write(tmp_path, yaml.safe_dump({"name": name, "maxima": list(entries)}, sort_keys=False))


def _entry(drug="naproxen", max_mg=100, per="day", reference=REFERENCE):
    return {"drug": drug, "max_mg": max_mg, "per": per, "reference": reference}


@pytest.fixture(scope="module")
def fixture_vocab():
    return load_vocabulary(FIXTURE_RULES)


def _consult_with(formulary_path, data=CHILD):
    pathway = Pathway.load(FIXTURE_RULES, FIXTURE_SEEDS, formulary=formulary_path)
    try:
        return pathway.consult(validate_profile(data, pathway.vocabulary))
    finally:
        pathway.close()


def _naproxen(consult):
    return next(s for s in consult.suggestions if s.regimen and s.regimen["id"] == "naproxen-fixture")


def _seen(fmt, out):
    """What a reader sees: HTML unescaped and tags dropped, Markdown escapes undone, one line."""
    if fmt == "html":
        out = html.unescape(re.sub(r"<[^>]+>", "", out))
    elif fmt == "markdown":
        out = re.sub(r"\\(.)", r"\1", out)
    return " ".join(out.split())


# -- the cap, in every format ----------------------------------------------------------------------

def test_without_formulary_the_figure_is_bounded_by_the_source_only():
    step = _naproxen(_consult_with(None)).regimen["steps"][0]
    assert step["computed_mg"] == [320.0, 320.0] and not step["capped"]
    assert step["cap"]["source"] == "regimen" and step["formulary_max"] is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_formulary_caps_and_is_cited_in_every_format(tmp_path, fmt):
    path = _formulary(tmp_path, _entry(max_mg=100))
    consult = _consult_with(path)
    step = _naproxen(consult).regimen["steps"][0]
    assert step["computed_mg"] == [100.0, 100.0] and step["capped"] is True
    out = render_consult(consult, fmt)
    if fmt == "json":
        data = json.loads(out)
        regimen = next(s["regimen"] for s in data["suggestions"]
                       if s["regimen"] and s["regimen"]["id"] == "naproxen-fixture")
        shown = regimen["steps"][0]
        assert shown["computed_mg"] == [100.0, 100.0] and shown["capped"] is True
        assert shown["cap"] == {"max_mg": 100.0, "per": "day", "source": "formulary",
                                "reference": REFERENCE, "where": f"{path}:3"}
        assert shown["formulary_max"] == {"max_mg": 100.0, "reference": REFERENCE, "where": f"{path}:3"}
        assert shown["max_mg"] == 1000.0           # the source's own maximum stays as it is
        assert regimen["formulary"] == {"name": "TEST formulary", "file": str(path)}
        return
    assert f"= 100 mg per day (capped at 100 mg/day per local formulary: {REFERENCE})" in \
        _seen(fmt, out).replace("= **100 mg per day**", "= 100 mg per day") or \
        f"100 mg per day capped at 100 mg/day per local formulary: {REFERENCE}" in _seen(fmt, out)
    if fmt == "html":
        assert "<b>2026</b>" not in out and "&lt;b&gt;2026&lt;/b&gt;" in out
    if fmt == "markdown":
        assert "<b>" not in out and r"\*4.2\*" in out


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_a_maximum_that_does_not_bind_is_still_cited(tmp_path, fmt):
    consult = _consult_with(_formulary(tmp_path, _entry(max_mg=500, reference="TEST ref")))
    step = _naproxen(consult).regimen["steps"][0]
    assert step["computed_mg"] == [320.0, 320.0] and not step["capped"]
    assert step["cap"]["source"] == "formulary" and step["cap"]["max_mg"] == 500.0
    assert "within the maximum of 500 mg/day per local formulary: TEST ref" in \
        _seen(fmt, render_consult(consult, fmt))


def test_the_lower_of_source_and_formulary_applies(tmp_path):
    """Source maximum 1000 mg: a formulary maximum above it changes nothing but is recorded."""
    heavy = dict(CHILD, weight_kg=120)            # 1200 mg, over the source's 1000
    step = _naproxen(_consult_with(_formulary(tmp_path, _entry(max_mg=5000)), heavy)).regimen["steps"][0]
    assert step["computed_mg"] == [1000.0, 1000.0] and step["capped"]
    assert step["cap"]["source"] == "regimen" and step["formulary_max"]["max_mg"] == 5000.0
    text = render_consult(_consult_with(_formulary(tmp_path, _entry(max_mg=5000)), heavy), "text")
    assert "capped at the maximum of 1000 mg" in " ".join(text.split())
    step = _naproxen(_consult_with(_formulary(tmp_path, _entry(max_mg=900)), heavy)).regimen["steps"][0]
    assert step["computed_mg"] == [900.0, 900.0] and step["cap"]["source"] == "formulary"


def test_a_maximum_for_another_period_does_not_cap(tmp_path):
    """A per-dose maximum says nothing about a daily total: the daily figure stays uncapped by it."""
    step = _naproxen(_consult_with(_formulary(tmp_path, _entry(max_mg=1, per="dose")))).regimen["steps"][0]
    assert step["computed_mg"] == [320.0, 320.0] and step["cap"]["source"] == "regimen"


def test_adults_get_no_figure_even_with_a_formulary(tmp_path):
    adult = dict(CHILD, age_years=35, weight_kg=100)
    consult = _consult_with(_formulary(tmp_path, _entry(max_mg=100)), adult)
    regimen = _naproxen(consult).regimen
    assert regimen["steps"][0]["computed_mg"] is None and regimen["not_computed"] == "adult"
    for fmt in ("text", "markdown", "html"):
        seen = _seen(fmt, render_consult(consult, fmt))
        assert "Adult dose per product label / local protocol" in seen
        assert "mg per day (" not in seen


# -- where the formulary comes from ----------------------------------------------------------------

def test_formulary_beside_the_rules_is_used_and_is_not_a_rule_file(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURE_RULES, rules)
    _formulary(rules, _entry(max_mg=100))
    pathway = Pathway.load(rules, FIXTURE_SEEDS)
    try:
        assert pathway.formulary is not None and pathway.formulary.file.endswith("formulary.yaml")
        step = _naproxen(pathway.consult(validate_profile(CHILD, pathway.vocabulary))).regimen["steps"][0]
        assert step["computed_mg"] == [100.0, 100.0] and step["cap"]["source"] == "formulary"
    finally:
        pathway.close()
    given = _formulary(tmp_path, _entry(max_mg=50), name="given")   # --formulary wins
    step = _naproxen(Pathway.load(rules, FIXTURE_SEEDS, formulary=given).consult(
        validate_profile(CHILD, pathway.vocabulary))).regimen["steps"][0]
    assert step["computed_mg"] == [50.0, 50.0]
    result = CliRunner().invoke(main, ["rules", "lint", str(rules)], env={"CNO_PATHWAY_SEEDS": str(FIXTURE_SEEDS)})
    assert "formulary.yaml" not in result.output, result.output


def test_no_formulary_by_default():
    assert not (ROOT / "rules" / "formulary.yaml").exists()
    assert Pathway.load(FIXTURE_RULES, FIXTURE_SEEDS).formulary is None


# -- the commands that produce consults -----------------------------------------------------------

def _invoke(args, env):
    load_pathway.cache_clear()
    try:
        return CliRunner().invoke(main, args, env=env)
    finally:
        load_pathway.cache_clear()


def test_consult_option_and_environment_variable(tmp_path):
    path = _formulary(tmp_path, _entry(max_mg=100, reference="TEST ref"))
    profile = _write(tmp_path, json.dumps(CHILD), "child.json")
    for args, env in [(["consult", str(profile), "--formulary", str(path)], FIXTURE_ENV),
                      (["consult", str(profile)], dict(FIXTURE_ENV, CNO_PATHWAY_FORMULARY=str(path)))]:
        result = _invoke(args, env)
        assert result.exit_code == 0, result.output
        assert "capped at 100 mg/day per local formulary: TEST ref" in " ".join(result.output.split())
    result = _invoke(["consult", str(profile), "--what-if", "weight_kg=40", "--formulary", str(path)],
                     FIXTURE_ENV)
    assert result.exit_code == 0, result.output


def test_batch_option(tmp_path):
    path = _formulary(tmp_path, _entry(max_mg=100, reference="TEST ref"))
    lines = _write(tmp_path, json.dumps(CHILD) + "\n" + json.dumps(dict(CHILD, id="two")) + "\n",
                   "cohort.jsonl")
    result = _invoke(["batch", str(lines), "--formulary", str(path)], FIXTURE_ENV)
    assert result.exit_code == 0, result.output
    consults = [json.loads(line) for line in result.output.splitlines()]
    assert len(consults) == 2
    for data in consults:
        step = next(s["regimen"]["steps"][0] for s in data["suggestions"]
                    if s["regimen"] and s["regimen"]["id"] == "naproxen-fixture")
        assert step["computed_mg"] == [100.0, 100.0] and step["cap"]["reference"] == "TEST ref"


def _every_dosed_drug(tmp_path, max_mg=1):
    """A synthetic formulary capping every dosed drug of the real rule base at each period."""
    pathway = Pathway.load(ROOT / "rules", ROOT / "seeds")
    entries = [_entry(drug=r.therapy, max_mg=max_mg, per=per, reference="TEST ref")
               for r in pathway.rulebook.regimens.by_id.values() if r.steps
               for per in sorted({s.per for s in r.steps})]
    pathway.close()
    return _formulary(tmp_path, *entries)


def test_cases_run_and_demo_options(tmp_path):
    path = _every_dosed_drug(tmp_path)
    capped = 0
    for case in load_cases():
        result = _invoke(["cases", "run", case.name, "--formulary", str(path), "-f", "json"], REAL_ENV)
        assert result.exit_code == 0, result.output
        data = json.loads(result.output[:result.output.rindex("}") + 1])
        for s in data["suggestions"]:
            for step in (s["regimen"] or {}).get("steps", []):
                if step["computed_mg"] is not None:
                    assert step["computed_mg"] == [1.0, 1.0] and step["cap"]["source"] == "formulary"
                    capped += 1
    assert capped, "no teaching case computes a dose"
    case = load_cases()[0].name
    result = _invoke(["demo", case, "--no-pause", "--formulary", str(path)], REAL_ENV)
    assert result.exit_code == 0, result.output
    bad = _write(tmp_path, "name: x\nmaxima: []\n", "bad.yaml")
    for args in (["demo", case, "--no-pause"], ["cases", "run", case]):
        result = _invoke(args + ["--formulary", str(bad)], REAL_ENV)
        assert result.exit_code == 2 and f"{bad}:2" in result.output, result.output


# -- bad files: file:line, exit 2 ------------------------------------------------------------------

BAD = [
    ("unknown-drug", "name: x\nmaxima:\n  - {drug: naproxn, max_mg: 1, per: day, reference: r}\n",
     3, "unknown drug 'naproxn'; did you mean naproxen?"),
    ("drug-class", "name: x\nmaxima:\n  - {drug: nsaid, max_mg: 1, per: day, reference: r}\n",
     3, "'nsaid' is a drug class"),
    ("zero", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: 0\n    per: day\n    reference: r\n",
     4, "max_mg must be a positive number"),
    ("negative", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: -5\n    per: day\n    reference: r\n",
     4, "max_mg must be a positive number"),
    ("text", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: '100'\n    per: day\n    reference: r\n",
     4, "max_mg must be a positive number of mg (got '100')"),
    ("placeholder", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: FILL-IN\n    per: day\n    reference: r\n",
     4, "got 'FILL-IN'"),
    ("boolean", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: true\n    per: day\n    reference: r\n",
     4, "max_mg must be a positive number"),
    ("nan", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: .nan\n    per: day\n    reference: r\n",
     4, "max_mg must be a positive number"),
    ("no-reference", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: 10\n    per: day\n",
     3, "reference is required"),
    ("empty-reference", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: 10\n    per: day\n    reference: '  '\n",
     6, "reference (the hospital's source for this maximum) must be non-empty text"),
    ("unknown-entry-key", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: 10\n    per: day\n"
     "    reference: r\n    unit: g\n", 7, "unknown key 'unit'"),
    ("unknown-top-key", "name: x\nmaxima:\n  - {drug: naproxen, max_mg: 1, per: day, reference: r}\nmax: 3\n",
     4, "unknown key 'max'"),
    ("bad-period", "name: x\nmaxima:\n  - drug: naproxen\n    max_mg: 10\n    per: month\n    reference: r\n",
     5, "per must be one of day, dose, week, infusion"),
    ("duplicate", "name: x\nmaxima:\n  - {drug: naproxen, max_mg: 1, per: day, reference: r}\n"
     "  - {drug: Naproxen, max_mg: 2, per: day, reference: s}\n", 4, "a second maximum for naproxen per day"),
    ("no-name", "maxima:\n  - {drug: naproxen, max_mg: 1, per: day, reference: r}\n", None, "name"),
    ("empty-maxima", "name: x\nmaxima: []\n", 2, "maxima must be a non-empty list"),
    ("a-list", "- {drug: naproxen, max_mg: 1, per: day, reference: r}\n", None, "a formulary is a mapping"),
    ("yaml-error", "name: x\nmaxima:\n  - {drug: naproxen, max_mg: 1\n", None, ""),
    ("duplicate-key", "name: x\nname: y\nmaxima:\n  - {drug: naproxen, max_mg: 1, per: day, reference: r}\n",
     2, ""),
]


@pytest.mark.parametrize("name, text, line, message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_formulary_is_refused_with_file_and_line(tmp_path, fixture_vocab, name, text, line, message):
    path = _write(tmp_path, text)
    with pytest.raises(FormularyError) as caught:
        load_formulary(path, fixture_vocab)
    assert message in caught.value.message
    assert caught.value.file == str(path)
    if line is not None:
        assert caught.value.line == line, caught.value
    profile = _write(tmp_path, json.dumps(CHILD), "child.json")
    result = _invoke(["consult", str(profile), "--formulary", str(path)], FIXTURE_ENV)
    assert result.exit_code == 2, result.output
    where = f"{path}:{line}" if line is not None else str(path)
    assert where in result.output and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_missing_formulary_file(tmp_path):
    profile = _write(tmp_path, json.dumps(CHILD), "child.json")
    result = _invoke(["consult", str(profile), "--formulary", str(tmp_path / "none.yaml")], FIXTURE_ENV)
    assert result.exit_code == 2 and "none.yaml" in result.output and "not found" in result.output


# -- the shipped example -----------------------------------------------------------------------------

def test_the_example_is_marked_and_holds_no_invented_figure(pathway):
    """The example loads, says everywhere that it is an example, and its only figure is one the
    sources print (a maximum of a regimen in rules/regimens.yaml, for that drug and period)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "EXAMPLE" in text.splitlines()[1] and "NOT FOR CLINICAL USE" in text
    formulary = load_formulary(EXAMPLE, pathway.vocabulary)
    assert "EXAMPLE" in formulary.name
    printed = {(r.therapy, s.per, s.max_mg) for r in pathway.rulebook.regimens.by_id.values()
               for s in r.steps if s.max_mg is not None}
    assert formulary.maxima
    for (drug, per), maximum in formulary.maxima.items():
        assert "EXAMPLE" in maximum.reference
        assert (drug, per, maximum.max_mg) in printed, (drug, per, maximum.max_mg)


def test_the_example_template_entries_are_refused_until_filled(tmp_path, pathway):
    """Uncommented as they stand, the template entries fail on their FILL-IN placeholder."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    uncommented = ["  " + line[4:] if re.match(r"^  # (- drug|  (max_mg|per|reference):)", line)
                   else line for line in lines]
    assert sum(line != old for line, old in zip(uncommented, lines)) >= 8
    path = _write(tmp_path, "".join(uncommented))
    with pytest.raises(FormularyError) as caught:
        load_formulary(path, pathway.vocabulary)
    assert "got 'FILL-IN'" in caught.value.message
    assert "max_mg: FILL-IN" in uncommented[caught.value.line - 1]


def test_batch_workers_cap_with_the_same_formulary(tmp_path):
    """Every worker of `batch --jobs 2` loads the formulary the command was given: the same bytes
    as one process, and not the bytes of a batch without the formulary."""
    import os
    import subprocess
    import sys

    formulary = _formulary(tmp_path, _entry(max_mg=100))
    cohort = tmp_path / "cohort.jsonl"
    cohort.write_text((json.dumps(CHILD) + "\n") * 60, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNO_PATHWAY_")}
    env.update(CNO_PATHWAY_RULES=str(FIXTURE_RULES), CNO_PATHWAY_SEEDS=str(FIXTURE_SEEDS))

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "cno_pathway", "batch", str(cohort), *args],
                              capture_output=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    one = run("--formulary", str(formulary), "--jobs", "1")
    assert b"local formulary" in one or b'"formulary"' in one
    assert run("--formulary", str(formulary), "--jobs", "2") == one
    assert run("--jobs", "2") != one
