"""The patient profile: each kind of invalid profile gets one ProfileError naming the field (and
its line, when it came from a document); forgiving names; contradictions are errors."""

from __future__ import annotations

import copy
import math

import pytest

from cno_pathway.errors import ProfileError
from cno_pathway.patient.profile import PatientProfile, field_path, validate_profile
from cno_pathway.yamlio import parse_document

README_PROFILE = """\
id: demo-01
age_years: 12
sex: female
weight_kg: 38
age_at_onset_years: 10.5
diagnosis: cno
lesions:
  count: 6
  sites: [tibia, femur, vertebra, clavicle]
  vertebral_fracture: false
  symmetric: true
  imaging: whole_body_mri
activity: {pain: true, swelling: false, functional_impairment: false, active_lesions_on_mri: true, new_lesions: false}
labs: {crp_mg_l: 16, esr_mm_h: 30, cbc_normal: true}
features: [arthritis]
red_flags: []
biopsy: none
hla_b27: unknown
treatments:
  - {drug: naproxen, months: 4, response: none, adverse_events: [], ongoing: false}
  - drug: methotrexate
    months: 3
    response: partial
    adverse_events: [gastrointestinal]
    ongoing: true
"""


def _error(data, vocab, **kwargs) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        validate_profile(data, vocab, **kwargs)
    return caught.value


def _from_text(text, vocab, source="p.yaml") -> ProfileError:
    doc = parse_document(text, source=source)
    return _error(doc.data, vocab, document=doc)


def _readme(vocab, edit=None):
    data = parse_document(README_PROFILE, source="p.yaml").data
    if edit:
        edit(data)
    return data


# -- the contract ---------------------------------------------------------------------------------

def test_the_readme_profile_is_valid(vocab):
    doc = parse_document(README_PROFILE, source="p.yaml")
    profile = validate_profile(doc.data, vocab, document=doc)
    assert profile.id == "demo-01"
    assert profile.age_years == 12 and isinstance(profile.age_years, float)
    assert profile.lesions.count == 6 and profile.lesions.sites == ["tibia", "femur", "vertebra", "clavicle"]
    assert profile.treatments[1].drug == "methotrexate" and profile.treatments[1].ongoing is True
    assert profile.treatments[1].adverse_events == ["gastrointestinal"]
    # the validated profile round-trips through its plain data
    assert validate_profile(profile.to_data(), vocab) == profile


def test_defaults_and_unstated_fields(vocab, make_profile):
    profile = make_profile()
    assert profile.sex is None and profile.weight_kg is None and profile.age_at_onset_years is None
    assert profile.biopsy == "none" and profile.hla_b27 == "unknown"
    assert profile.features == [] and profile.red_flags == [] and profile.treatments == []
    assert profile.activity.pain is None and profile.labs.crp_mg_l is None
    assert profile.lesions.vertebral_fracture is False and profile.lesions.symmetric is None


def test_profiles_are_immutable(make_profile):
    profile = make_profile()
    with pytest.raises(Exception):
        profile.age_years = 3


def test_boundaries_that_are_allowed(vocab, profile_data):
    for age in (0.01, 100):
        validate_profile(profile_data(age_years=age), vocab)
    for weight in (2, 250):
        validate_profile(profile_data(weight_kg=weight), vocab)
    validate_profile(profile_data(lesions={"count": 0}), vocab)
    validate_profile(profile_data(lesions={"count": 200}), vocab)
    validate_profile(profile_data(age_years=10, age_at_onset_years=10), vocab)
    validate_profile(profile_data(treatments=[{"drug": "naproxen", "months": 0, "response": "none"}]), vocab)


def test_without_a_vocabulary_context_validation_refuses_to_guess(profile_data):
    with pytest.raises(Exception, match="vocabulary"):
        PatientProfile.model_validate(profile_data())


def test_field_path_format():
    assert field_path(("treatments", 1, "response")) == "treatments[1].response"
    assert field_path(("lesions", "sites", 0)) == "lesions.sites[0]"
    assert field_path(()) == ""


# -- each kind of invalid profile -----------------------------------------------------------------

INVALID = [
    # (id, edit, field, words in the message)
    ("unknown key", lambda d: d.update(colour="blue"), "colour", "unknown field"),
    ("unknown nested key", lambda d: d["lesions"].update(size=3), "lesions.size", "unknown field"),
    ("unknown treatment key", lambda d: d["treatments"][1].update(dose=10), "treatments[1].dose",
     "unknown field"),
    ("missing age", lambda d: d.pop("age_years"), "age_years", "required"),
    ("missing count", lambda d: d["lesions"].pop("count"), "lesions.count", "required"),
    ("missing diagnosis", lambda d: d.pop("diagnosis"), "diagnosis", "required"),
    ("missing response", lambda d: d["treatments"][0].pop("response"), "treatments[0].response",
     "required"),
    ("age 0", lambda d: d.update(age_years=0), "age_years", "greater than 0"),
    ("age 101", lambda d: d.update(age_years=101), "age_years", "less than or equal to 100"),
    ("negative age", lambda d: d.update(age_years=-3), "age_years", "greater than 0"),
    ("string age", lambda d: d.update(age_years="12"), "age_years", "'12'"),
    ("bool age", lambda d: d.update(age_years=True), "age_years", "valid number"),
    ("string count", lambda d: d["lesions"].update(count="6"), "lesions.count", "integer"),
    ("fractional count", lambda d: d["lesions"].update(count=2.5), "lesions.count", "integer"),
    ("count 201", lambda d: d["lesions"].update(count=201), "lesions.count", "200"),
    ("string months", lambda d: d["treatments"][0].update(months="4"), "treatments[0].months", "'4'"),
    ("negative months", lambda d: d["treatments"][1].update(months=-1), "treatments[1].months",
     "greater than or equal to 0"),
    ("yes for a bool", lambda d: d["lesions"].update(vertebral_fracture="yes"),
     "lesions.vertebral_fracture", "'yes'"),
    ("1 for a bool", lambda d: d["activity"].update(pain=1), "activity.pain", "boolean"),
    ("yes for ongoing", lambda d: d["treatments"][1].update(ongoing="yes"), "treatments[1].ongoing",
     "boolean"),
    ("nan age", lambda d: d.update(age_years=math.nan), "age_years", "finite number"),
    ("inf weight", lambda d: d.update(weight_kg=math.inf), "weight_kg", "finite number"),
    ("nan crp", lambda d: d["labs"].update(crp_mg_l=math.nan), "labs.crp_mg_l", "finite number"),
    ("weight 1.9", lambda d: d.update(weight_kg=1.9), "weight_kg", "greater than or equal to 2"),
    ("weight 251", lambda d: d.update(weight_kg=251), "weight_kg", "less than or equal to 250"),
    ("crp out of range", lambda d: d["labs"].update(crp_mg_l=1001), "labs.crp_mg_l", "1000"),
    ("unknown site", lambda d: d["lesions"].update(sites=["tibia", "tibai"]), "lesions.sites",
     "did you mean tibia"),
    ("unknown drug", lambda d: d["treatments"][1].update(drug="metotrexate"), "treatments[1].drug",
     "did you mean methotrexate"),
    ("unknown response", lambda d: d["treatments"][1].update(response="great"),
     "treatments[1].response", "allowed: none, partial, complete"),
    ("unknown diagnosis", lambda d: d.update(diagnosis="crm0"), "diagnosis", "did you mean crmo"),
    ("unknown sex", lambda d: d.update(sex="f"), "sex", "allowed: female, male, other"),
    ("number for sex", lambda d: d.update(sex=3), "sex", "must be text"),
    ("unknown imaging", lambda d: d["lesions"].update(imaging="ct"), "lesions.imaging", "allowed:"),
    ("unknown feature", lambda d: d.update(features=["psoriasis", "eczema"]), "features", "allowed:"),
    ("unknown red flag", lambda d: d.update(red_flags=["fevre"]), "red_flags", "did you mean fever"),
    ("unknown event", lambda d: d["treatments"][1].update(adverse_events=["rashes"]),
     "treatments[1].adverse_events", "did you mean rash"),
    ("unknown biopsy", lambda d: d.update(biopsy="benign"), "biopsy", "allowed:"),
    ("unknown hla", lambda d: d.update(hla_b27="pos"), "hla_b27", "allowed: positive, negative"),
    ("sites not a list", lambda d: d["lesions"].update(sites="tibia"), "lesions.sites", "list"),
    ("treatments not a list", lambda d: d.update(treatments={"drug": "naproxen"}), "treatments", "list"),
    ("treatment not a mapping", lambda d: d["treatments"].append("naproxen"), "treatments[2]", ""),
    ("id too long", lambda d: d.update(id="x" * 201), "id", "200"),
    ("more sites than lesions", lambda d: d["lesions"].update(count=3), "lesions.sites",
     "4 sites listed but lesions.count is 3"),
    ("fracture without vertebra", lambda d: (d["lesions"].update(vertebral_fracture=True),
                                             d["lesions"]["sites"].remove("vertebra")),
     "lesions.vertebral_fracture", "needs 'vertebra'"),
    ("onset after age", lambda d: d.update(age_at_onset_years=12.5), "age_at_onset_years",
     "after the current age"),
    ("drug twice ongoing", lambda d: d["treatments"].append(
        {"drug": "Methotrexate", "months": 1, "response": "none", "ongoing": True}),
     "treatments[1].ongoing", "methotrexate is listed twice as ongoing"),
    ("duplicate sites", lambda d: d["lesions"].update(sites=["tibia", "Tibia"]), "lesions.sites",
     "'tibia' is listed twice"),
    ("duplicate features", lambda d: d.update(features=["ibd", "IBD"]), "features", "listed twice"),
    ("duplicate red flags", lambda d: d.update(red_flags=["fever", "fever"]), "red_flags",
     "listed twice"),
    ("duplicate events", lambda d: d["treatments"][1].update(adverse_events=["rash", "rash"]),
     "treatments[1].adverse_events", "listed twice"),
]


@pytest.mark.parametrize("edit, field, words", [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_profile_names_the_field(vocab, edit, field, words):
    data = _readme(vocab, edit)
    error = _error(data, vocab, source="p.yaml")
    assert error.field == field
    assert words in error.message
    assert error.file == "p.yaml"
    assert str(error).startswith(f"p.yaml: {field}: ")


def test_a_profile_must_be_a_mapping(vocab):
    for data in ([1, 2], "age 12", None, 12):
        error = _error(data, vocab, source="p.yaml")
        assert "mapping" in error.message and error.field is None


# -- lines from a document ------------------------------------------------------------------------

def _replace_line(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize("old, new, field, line", [
    ("    response: partial\n", "    response: great\n", "treatments[1].response", 23),
    ("age_years: 12\n", "age_years: '12'\n", "age_years", 2),
    ("age_years: 12\n", "age_years: .nan\n", "age_years", 2),
    ("weight_kg: 38\n", "weight_kg: .inf\n", "weight_kg", 4),
    ("  count: 6\n", "  count: 3\n", "lesions.sites", 9),
    ("  vertebral_fracture: false\n", "  vertebral_fracture: 'yes'\n", "lesions.vertebral_fracture", 10),
    ("  symmetric: true\n", "  symmetric: 1\n", "lesions.symmetric", 11),
    ("  sites: [tibia, femur, vertebra, clavicle]\n", "  sites: [tibia, femur, clavicle]\n"
     "  vertebral_fracture: true\n", "", 0),  # replaced below: fracture w/o vertebra
    ("age_at_onset_years: 10.5\n", "age_at_onset_years: 13\n", "age_at_onset_years", 5),
    ("features: [arthritis]\n", "features: [arthritis, Arthritis]\n", "features", 15),
    ("id: demo-01\n", "id: demo-01\nfavourite_colour: blue\n", "favourite_colour", 2),
    ("  - {drug: naproxen, months: 4, response: none, adverse_events: [], ongoing: false}\n",
     "  - {drug: naproxin, months: 4, response: none, adverse_events: [], ongoing: false}\n",
     "treatments[0].drug", 20),
    ("    ongoing: true\n", "    ongoing: true\n  - {drug: methotrexate, months: 1, response: none, "
     "ongoing: true}\n", "treatments[1].ongoing", 25),
])
def test_errors_from_a_document_carry_the_line(vocab, old, new, field, line):
    text = _replace_line(README_PROFILE, old, new)
    if not field:  # a vertebral fracture without a vertebral site
        text = text.replace("  vertebral_fracture: false\n", "")
        field, line = "lesions.vertebral_fracture", 10
    error = _from_text(text, vocab)
    assert (error.field, error.line) == (field, line), str(error)
    assert str(error).startswith(f"p.yaml:{line}: {field}: ")


def test_a_missing_field_points_at_its_parent(vocab):
    error = _from_text(_replace_line(README_PROFILE, "  count: 6\n", ""), vocab)
    assert error.field == "lesions.count" and error.line == 7


def test_several_problems_in_one_message(vocab):
    error = _error(_readme(vocab, lambda d: (d.update(age_years=0, weight_kg=1),
                                             d["treatments"][1].update(response="x"))), vocab)
    assert error.field == "age_years"
    assert "also weight_kg:" in error.message and "also treatments[1].response:" in error.message


def test_many_problems_are_summarised(vocab, profile_data):
    data = profile_data(treatments=[{"drug": "nope", "months": 1, "response": "none"}] * 15)
    error = _error(data, vocab)
    assert error.field == "treatments[0].drug"
    assert "... and 5 more problems" in error.message


# -- forgiving names ------------------------------------------------------------------------------

@pytest.mark.parametrize("written, kind, canonical", [
    ("Zoledronic acid", "drug", "zoledronic_acid"),
    ("  NAPROXEN ", "drug", "naproxen"),
    ("zoledronic-acid", "drug", "zoledronic_acid"),
    ("NSAID", "drug", "nsaid"),
    ("Whole body MRI", "imaging", "whole_body_mri"),
    ("Tibia", "site", "tibia"),
    ("Palmoplantar Pustulosis", "feature", "palmoplantar_pustulosis"),
    ("CRMO", "diagnosis", "crmo"),
    ("Adverse Event", "response", "adverse_event"),
    ("Flu like symptoms", "event", "flu_like_symptoms"),
])
def test_case_spaces_and_hyphens_are_forgiven(vocab, profile_data, written, kind, canonical):
    data = profile_data(treatments=[{"drug": "naproxen", "months": 1, "response": "none"}])
    if kind == "drug":
        data["treatments"][0]["drug"] = written
    elif kind == "imaging":
        data["lesions"]["imaging"] = written
    elif kind == "site":
        data["lesions"]["sites"] = [written]
    elif kind == "feature":
        data["features"] = [written]
    elif kind == "diagnosis":
        data["diagnosis"] = written
    elif kind == "response":
        data["treatments"][0]["response"] = written
    else:
        data["treatments"][0]["adverse_events"] = [written]
    profile = validate_profile(data, vocab)
    values = {"drug": profile.treatments[0].drug, "imaging": profile.lesions.imaging,
              "site": profile.lesions.sites[0] if profile.lesions.sites else None,
              "feature": profile.features[0] if profile.features else None,
              "diagnosis": profile.diagnosis, "response": profile.treatments[0].response,
              "event": (profile.treatments[0].adverse_events or [None])[0]}
    assert values[kind] == canonical


def test_unknown_name_lists_the_closest_known_names(vocab, profile_data):
    error = _error(profile_data(treatments=[{"drug": "zoledronic", "months": 1, "response": "none"}]),
                   vocab)
    assert error.field == "treatments[0].drug"
    assert "unknown drug 'zoledronic'; did you mean zoledronic_acid" in error.message
    error = _error(profile_data(treatments=[{"drug": "aspirin", "months": 1, "response": "none"}]),
                   vocab)
    assert "did you mean" not in error.message and "(allowed: " in error.message


def test_the_same_drug_may_be_listed_twice_when_not_both_ongoing(vocab, profile_data):
    profile = validate_profile(profile_data(treatments=[
        {"drug": "naproxen", "months": 4, "response": "relapse"},
        {"drug": "Naproxen", "months": 2, "response": "partial", "ongoing": True}]), vocab)
    assert [t.drug for t in profile.treatments] == ["naproxen", "naproxen"]


def test_validation_does_not_change_the_input(vocab):
    data = _readme(vocab)
    before = copy.deepcopy(data)
    validate_profile(data, vocab)
    assert data == before


# -- numbers in messages read as written (12, not 12.0) -------------------------------------------

@pytest.mark.parametrize("age, onset, words", [
    (12, 14, "onset at 14 is after the current age 12"),
    (9.5, 10.5, "onset at 10.5 is after the current age 9.5"),
])
def test_a_contradiction_shows_numbers_as_written(vocab, profile_data, age, onset, words):
    with pytest.raises(ProfileError) as caught:
        validate_profile(profile_data(age_years=age, age_at_onset_years=onset), vocab)
    assert caught.value.field == "age_at_onset_years"
    assert words in caught.value.message


@pytest.mark.parametrize("age, got", [(0.0, "(got 0)"), (150.5, "(got 150.5)"), ("old", "(got 'old')")])
def test_a_value_out_of_range_is_quoted_as_written(vocab, profile_data, age, got):
    with pytest.raises(ProfileError) as caught:
        validate_profile(profile_data(age_years=age), vocab)
    assert caught.value.message.endswith(got), caught.value.message
