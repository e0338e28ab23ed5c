"""Doses within the sources' population (issue 13, point 4).

Every regimen of the sources was given to children. For an adult (age_years >= ADULT_AGE) the
consult computes no mg figure from a pediatric mg/kg regimen: it shows the mg/kg for reference
and "adult dose per product label / local protocol". Which population a regimen comes from is
data (rules/regimens.yaml `population:`), checked against the cited sources. A computed figure
no maximum bounds says it is uncapped; a pediatric figure is otherwise what it always was.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cno_pathway.cli import main
from cno_pathway.consult.consult import Pathway
from cno_pathway.consult.render import render_consult
from cno_pathway.errors import RuleError
from cno_pathway.knowledge.factschema import ADULT_AGE
from cno_pathway.knowledge.formulary import Formulary, Maximum
from cno_pathway.knowledge.regimens import POPULATIONS, Step, compute_step, dose_plan
from cno_pathway.patient.profile import validate_profile
from tests.strategies import profiles

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_RULES = ROOT / "tests" / "fixtures" / "rules"
FIXTURE_SEEDS = ROOT / "tests" / "fixtures" / "seeds"
FORMATS = ("text", "markdown", "html", "json")
COMPUTED = re.compile(r"= \**\d+(\.\d+)?(-\d+(\.\d+)?)? mg per")   # "= 320-480 mg per day"
ADULT_WORDS = "Adult dose per product label / local protocol"

# Histories that reach the dosed suggestions of the rule base (first line, steroid, bisphosphonate,
# IL-1 blockade, golimumab...), whatever rule offers them.
HISTORIES = [
    [],
    [{"drug": "naproxen", "months": 4, "response": "none"}],
    [{"drug": "naproxen", "months": 4, "response": "none"},
     {"drug": "prednisolone", "months": 1, "response": "relapse"}],
    [{"drug": "naproxen", "months": 6, "response": "none"},
     {"drug": "pamidronate", "months": 6, "response": "none"}],
    [{"drug": "naproxen", "months": 6, "response": "none"},
     {"drug": "etanercept", "months": 6, "response": "none"},
     {"drug": "pamidronate", "months": 6, "response": "none"}],
    [{"drug": "naproxen", "months": 6, "response": "none"},
     {"drug": "etanercept", "months": 6, "response": "adverse_event",
      "adverse_events": ["psoriasis"]}],
]


def _patient(age, weight, treatments, **extra):
    data = {"id": f"age-{age}", "age_years": age, "diagnosis": "cno",
            "lesions": {"count": 3, "sites": ["tibia", "femur", "vertebra"], "imaging": "whole_body_mri"},
            "activity": {"pain": True, "active_lesions_on_mri": True},
            "biopsy": "inflammatory", "treatments": treatments}
    if weight is not None:
        data["weight_kg"] = weight
    data.update(extra)
    return data


def _consults(pathway, age, weight):
    for history in HISTORIES:
        yield pathway.consult(validate_profile(_patient(age, weight, history), pathway.vocabulary))


def _dosed(consult):
    return [s for s in consult.suggestions if s.regimen and s.regimen["steps"]]


def _legacy(step: Step, weight: float) -> list[float]:
    """The mg figure as it was computed before issue 13: mg/kg x kg, capped at the source's max."""
    out = []
    for per_kg in step.mg_per_kg:
        amount = round(per_kg * weight, 1)
        out.append(step.max_mg if step.max_mg is not None and amount > step.max_mg else amount)
    return out


def _every_drug_capped(vocabulary, max_mg: float) -> Formulary:
    """A synthetic formulary (test values, not clinical figures) capping every drug per period."""
    maxima = {(drug, per): Maximum(drug, max_mg, per, f"TEST reference for {drug}", "test:1")
              for drug in vocabulary.drug_to_class for per in ("day", "dose", "week", "infusion")}
    return Formulary(name="TEST formulary", file="test", maxima=maxima)


# -- the data --------------------------------------------------------------------------------------

def test_every_dosed_regimen_says_its_population_and_every_one_is_pediatric(pathway):
    """The population is data in rules/regimens.yaml and matches the cited sources' (checked when
    the rule base loads); every regimen the sources give was given to children."""
    dosed = [r for r in pathway.rulebook.regimens.by_id.values() if r.steps]
    assert dosed
    for regimen in dosed:
        assert regimen.population in POPULATIONS, regimen.id
        sources = {pathway.library.resolve(c)[0].population for c in regimen.cites}
        assert sources == {regimen.population}, regimen.id
        assert regimen.population == "pediatric", regimen.id


# -- adults ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("age", [ADULT_AGE, 35, 70])
def test_adult_gets_no_mg_from_a_pediatric_regimen(pathway, age):
    """The issue's 35-year-old of 100 kg: no naproxen 1000-1500 mg/day, no anakinra 200 mg/day;
    the mg/kg stays, for reference, with 'adult dose per product label / local protocol'."""
    seen = set()
    for consult in _consults(pathway, age, 100):
        for s in _dosed(consult):
            seen.add(s.regimen["id"])
            assert s.regimen["population"] == "pediatric"
            assert s.regimen["not_computed"] == "adult", s.rule
            assert ADULT_WORDS in s.regimen["adult_dose"]
            assert "pediatric" in s.regimen["adult_dose"]
            for step in s.regimen["steps"]:
                assert step["computed_mg"] is None, s.rule
                assert step["mg_per_kg"] and step["uncapped"] is False and step["capped"] is False
        for fmt in FORMATS:
            out = render_consult(consult, fmt)
            assert not COMPUTED.search(out), fmt
            if _dosed(consult) and fmt != "json":
                assert ADULT_WORDS in " ".join(out.split()), fmt
                assert "mg computed for" not in out
        data = json.loads(render_consult(consult, "json"))
        for s in data["suggestions"]:
            for step in (s["regimen"] or {}).get("steps", []):
                assert step["computed_mg"] is None
    assert len(seen) >= 2, seen       # the histories reach several dosed regimens


def test_a_formulary_does_not_unlock_an_adult_dose(pathway):
    """A hospital maximum bounds a figure; it does not make a pediatric regimen an adult one."""
    saved = pathway.formulary
    pathway.formulary = _every_drug_capped(pathway.vocabulary, 1)
    try:
        consults = list(_consults(pathway, 35, 100))
    finally:
        pathway.formulary = saved
    assert any(_dosed(c) for c in consults)
    for consult in consults:
        for s in _dosed(consult):
            assert all(step["computed_mg"] is None for step in s.regimen["steps"]), s.rule
            assert s.regimen["not_computed"] == "adult"


def test_the_boundary_is_adult_age(pathway):
    """17.9 years is a child (mg computed); ADULT_AGE is an adult (none)."""
    child = [s for c in _consults(pathway, ADULT_AGE - 0.1, 60) for s in _dosed(c)]
    adult = [s for c in _consults(pathway, ADULT_AGE, 60) for s in _dosed(c)]
    assert child and adult
    assert all(step["computed_mg"] is not None for s in child for step in s.regimen["steps"])
    assert all(s.regimen["not_computed"] is None and s.regimen["adult_dose"] is None for s in child)
    assert all(step["computed_mg"] is None for s in adult for step in s.regimen["steps"])


def test_adult_without_weight_is_told_about_the_weight_first(pathway):
    """No weight: mg/kg only, as before (the adult words need a figure they replace)."""
    for consult in _consults(pathway, 35, None):
        for s in _dosed(consult):
            assert s.regimen["not_computed"] == "no_weight"
            assert all(step["computed_mg"] is None for step in s.regimen["steps"])


# -- children: unchanged, and uncapped said ---------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(weight=st.floats(min_value=2, max_value=250, allow_nan=False),
       age=st.floats(min_value=0, max_value=ADULT_AGE - 0.01, allow_nan=False),
       index=st.integers(min_value=0, max_value=100))
def test_pediatric_figures_are_unchanged_without_a_formulary(pathway, weight, age, index):
    regimens = [r for r in pathway.rulebook.regimens.by_id.values() if r.steps]
    regimen = regimens[index % len(regimens)]
    plan = dose_plan(regimen, weight, age, None)
    assert plan["not_computed"] is None and plan["formulary"] is None
    for step, shown in zip(regimen.steps, plan["steps"]):
        assert shown["computed_mg"] == _legacy(step, weight)
        assert shown["capped"] == (step.max_mg is not None and max(step.mg_per_kg) * weight > step.max_mg
                                   and round(max(step.mg_per_kg) * weight, 1) > step.max_mg)
        assert shown["uncapped"] == (step.max_mg is None)
        assert shown["formulary_max"] is None
        assert (shown["cap"] is None) == (step.max_mg is None)


def test_child_consult_says_uncapped_where_no_maximum_is_known(pathway):
    consult = next(c for c in _consults(pathway, 10, 32) if _dosed(c))
    text = " ".join(render_consult(consult, "text").split())
    for s in _dosed(consult):
        for step in s.regimen["steps"]:
            assert step["computed_mg"] is not None
            if step["max_mg"] is None:
                assert step["uncapped"] and step["cap"] is None
    assert "(uncapped: no maximum in the source or the local formulary)" in text
    for fmt in ("markdown", "html"):
        assert "uncapped: no maximum in the source or the local formulary" in render_consult(consult, fmt)


# -- the property: no computed adult dose without a cap --------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_computed_adult_dose_without_a_cap(pathway, data):
    profile = validate_profile(data.draw(profiles(pathway.vocabulary)), pathway.vocabulary)
    formulary = data.draw(st.sampled_from([None, _every_drug_capped(pathway.vocabulary, 50)]))
    saved = pathway.formulary
    pathway.formulary = formulary
    try:
        consult = pathway.consult(profile)
    finally:
        pathway.formulary = saved
    adult = profile.age_years >= ADULT_AGE
    for s in consult.suggestions:
        regimen = s.regimen or {}
        for step in regimen.get("steps", []):
            figure = step["computed_mg"]
            if figure is None:
                continue
            assert profile.weight_kg is not None
            if adult:
                assert step["cap"] is not None, s.rule
                assert regimen["population"] != "pediatric", s.rule
            if step["cap"] is not None:
                assert max(figure) <= step["cap"]["max_mg"], s.rule
            assert step["uncapped"] == (step["cap"] is None)


@settings(max_examples=300, deadline=None)
@given(low=st.floats(min_value=0.01, max_value=50), spread=st.floats(min_value=0, max_value=50),
       weight=st.none() | st.floats(min_value=1, max_value=300),
       source_max=st.none() | st.floats(min_value=1, max_value=5000),
       local_max=st.none() | st.floats(min_value=1, max_value=5000),
       adults=st.booleans(), adult=st.booleans())
def test_compute_step_never_gives_an_adult_figure_without_a_cap(low, spread, weight, source_max,
                                                                 local_max, adults, adult):
    """Over any step, even one from a regimen given to adults: an adult figure only under a cap,
    every figure at most its cap, the cap the lowest maximum known."""
    step = Step("daily", (low, low + spread), "day", source_max, None)
    limit = None if local_max is None else Maximum("naproxen", local_max, "day", "TEST", "test:1")
    shown = compute_step(step, weight, formulary_max=limit, adults=adults, adult=adult)
    known = [m for m in (source_max, local_max) if m is not None]
    if known:
        assert shown["cap"]["max_mg"] == min(known)
        assert shown["cap"]["source"] == ("regimen" if source_max == min(known) else "formulary")
    else:
        assert shown["cap"] is None
    if weight is None or (adult and (not adults or not known)):
        assert shown["computed_mg"] is None and not shown["uncapped"] and not shown["capped"]
        return
    assert shown["computed_mg"] is not None
    if known:
        assert max(shown["computed_mg"]) <= min(known)
    assert shown["uncapped"] == (not known)


# -- the population is checked -----------------------------------------------------------------

def _rules_copy(tmp_path, regimens_text):
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURE_RULES, rules)
    (rules / "regimens.yaml").write_text(regimens_text, encoding="utf-8")
    return rules


REGIMEN = """\
- id: naproxen-fixture
  therapy: naproxen
{population}  text: Naproxen 10 mg/kg/day, at most 1000 mg/day.
  steps:
    - {{label: daily, dose: 10, unit: mg/kg, per: day, max: 1000, max_unit: mg}}
  cites: [fixture-cohort#naproxen-dose]
"""


@pytest.mark.parametrize("population, message", [
    ("", "must say which population"),
    ("  population: children\n", "population must be one of pediatric, adult, mixed"),
    ("  population: adult\n", "population 'adult' is not that of the cited sources (pediatric)"),
])
def test_a_wrong_or_missing_population_is_refused_with_file_and_line(tmp_path, population, message):
    rules = _rules_copy(tmp_path, REGIMEN.format(population=population))
    with pytest.raises(RuleError) as caught:
        Pathway.load(rules, FIXTURE_SEEDS)
    assert message in caught.value.message
    assert caught.value.file == "rules/regimens.yaml" and caught.value.line is not None
    result = CliRunner().invoke(main, ["consult", "--rules", str(rules), "--age", "10",
                                       "--lesions", "2", "--diagnosis", "cno"],
                                env={"CNO_PATHWAY_SEEDS": str(FIXTURE_SEEDS)})
    assert result.exit_code == 2, result.output
    assert "rules/regimens.yaml:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_a_regimen_without_doses_needs_no_population(tmp_path):
    text = REGIMEN.format(population="  population: pediatric\n") + (
        "- id: ibuprofen-fixture\n  therapy: ibuprofen\n  text: Dose per local protocol.\n")
    rules = _rules_copy(tmp_path, text)
    from cno_pathway.knowledge.regimens import load_regimens
    from cno_pathway.knowledge.vocabulary import load_vocabulary

    regimens = load_regimens(rules, load_vocabulary(rules))
    assert regimens.get("ibuprofen-fixture").population is None
    assert regimens.get("naproxen-fixture").population == "pediatric"


def test_a_rule_base_without_the_adult_wording_is_refused(tmp_path):
    """The adult's consult must say something in place of the figure: its text is data."""
    rules = _rules_copy(tmp_path, REGIMEN.format(population="  population: pediatric\n"))
    book = rules / "rulebook.yaml"
    text = book.read_text(encoding="utf-8")
    book.write_text(text[:text.index("  adult_dose:")], encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        Pathway.load(rules, FIXTURE_SEEDS)
    assert "adult_dose, adult_dose_uncapped" in caught.value.message
