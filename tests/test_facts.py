"""derive_facts: the one small, pure step from a profile to the flat facts rules match on."""

from __future__ import annotations

import copy
import shutil

import pytest

from cno_pathway.patient.facts import FACT_SCHEMA, derive_facts
from cno_pathway.patient.profile import validate_profile
from cno_pathway.knowledge.vocabulary import load_vocabulary

HISTORY_LISTS = ("tried_classes", "tried_drugs", "failed_classes", "failed_drugs",
                 "too_short_classes", "responding_classes", "complete_response_classes",
                 "relapsed_classes", "intolerant_classes", "intolerant_drugs",
                 "adverse_event_classes", "adverse_events", "ongoing_classes", "ongoing_drugs",
                 "refractory_classes", "no_trial_length_classes", "stopped_in_remission_classes",
                 )


@pytest.fixture(scope="module")
def facts_of(vocab):
    def facts_of(*treatments, **fields):
        data = {"age_years": 10, "diagnosis": "cno", "lesions": {"count": 3, "sites": ["tibia"]}}
        data.update(fields)
        data["treatments"] = [dict(zip(("drug", "months", "response"), t)) if isinstance(t, tuple)
                              else t for t in treatments]
        return derive_facts(validate_profile(data, vocab), vocab)
    return facts_of


# -- tried / failed / too short -------------------------------------------------------------------

def test_no_treatment(facts_of):
    facts = facts_of()
    for name in HISTORY_LISTS:
        assert facts[name] == [], name
    assert facts["treatment_count"] == 0 and facts["failed_class_count"] == 0
    assert facts["stage"] == []


def test_naproxen_four_months_without_response_failed(facts_of):
    facts = facts_of(("naproxen", 4, "none"))
    assert facts["tried_classes"] == ["nsaid"] and facts["tried_drugs"] == ["naproxen"]
    assert facts["failed_classes"] == ["nsaid"] and facts["failed_drugs"] == ["naproxen"]
    assert facts["failed_class_count"] == 1
    assert facts["too_short_classes"] == []
    assert facts["treatment_count"] == 1


def test_naproxen_one_month_without_response_is_too_short_to_judge(facts_of):
    facts = facts_of(("naproxen", 1, "none"))
    assert facts["tried_classes"] == ["nsaid"]
    assert facts["failed_classes"] == [] and facts["failed_class_count"] == 0
    assert facts["too_short_classes"] == ["nsaid"]


def test_the_adequate_trial_boundary_is_inclusive(facts_of):
    assert facts_of(("naproxen", 3, "none"))["failed_classes"] == ["nsaid"]
    assert facts_of(("naproxen", 2.9, "none"))["too_short_classes"] == ["nsaid"]


def test_no_response_where_the_sources_give_no_trial_length_is_its_own_outcome(facts_of):
    """Never "adequate" by default: the consult says the sources give no length (issue 13)."""
    facts = facts_of(("methotrexate", 0.5, "none"), ("prednisolone", 0, "relapse"))
    assert facts["failed_classes"] == ["glucocorticoid"]
    assert facts["no_trial_length_classes"] == ["csdmard"]
    assert facts["too_short_classes"] == [] and facts["refractory_classes"] == []


def test_the_rule_base_not_python_says_what_an_adequate_trial_is(tmp_path, fixture_rules):
    """The same history fails or is too short depending only on vocabulary.yaml."""
    directory = tmp_path / "rules"
    shutil.copytree(fixture_rules, directory)
    path = directory / "vocabulary.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count("adequate_trial_months: 3\n") == 1
    path.write_text(text.replace("adequate_trial_months: 3\n", "adequate_trial_months: 6\n"),
                    encoding="utf-8")
    longer = load_vocabulary(directory)
    data = {"age_years": 10, "diagnosis": "cno", "lesions": {"count": 1},
            "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}
    facts = derive_facts(validate_profile(data, longer), longer)
    assert facts["failed_classes"] == [] and facts["too_short_classes"] == ["nsaid"]
    data["treatments"][0]["months"] = 6
    assert derive_facts(validate_profile(data, longer), longer)["failed_classes"] == ["nsaid"]


def test_a_class_name_may_stand_for_a_drug(facts_of):
    facts = facts_of(("nsaid", 4, "none"), ("Zoledronic acid", 1, "partial"))
    assert facts["tried_classes"] == ["nsaid", "bisphosphonate"]
    assert facts["tried_drugs"] == ["nsaid", "zoledronic_acid"]
    assert facts["failed_classes"] == ["nsaid"] and facts["failed_drugs"] == ["nsaid"]


def test_two_drugs_of_one_class_count_the_class_once(facts_of):
    facts = facts_of(("naproxen", 4, "none"), ("ibuprofen", 5, "none"))
    assert facts["failed_classes"] == ["nsaid"] and facts["failed_class_count"] == 1
    assert facts["failed_drugs"] == ["ibuprofen", "naproxen"]  # drug names sort alphabetically
    assert facts["treatment_count"] == 2


# -- relapse, intolerance, adverse events ---------------------------------------------------------

def test_relapse_after_an_adequate_trial_is_a_failure(facts_of):
    facts = facts_of(("naproxen", 6, "relapse"))
    assert facts["relapsed_classes"] == ["nsaid"]
    assert facts["failed_classes"] == ["nsaid"]


def test_relapse_after_a_response_is_relapsed_whatever_the_length(facts_of):
    """A relapse follows a response, so the trial was long enough to work: never "too short"."""
    facts = facts_of(("naproxen", 1, "relapse"))
    assert facts["relapsed_classes"] == ["nsaid"] and facts["failed_classes"] == ["nsaid"]
    assert facts["too_short_classes"] == [] and facts["refractory_classes"] == []


@pytest.mark.parametrize("response", ["intolerance", "adverse_event"])
def test_intolerance_and_adverse_event_responses(facts_of, response):
    facts = facts_of(("methotrexate", 2, response))
    assert facts["intolerant_classes"] == ["csdmard"] and facts["intolerant_drugs"] == ["methotrexate"]
    assert facts["failed_classes"] == []
    expected = ["csdmard"] if response == "adverse_event" else []
    assert facts["adverse_event_classes"] == expected


def test_adverse_events_recorded_on_a_tolerated_treatment(facts_of):
    facts = facts_of({"drug": "etanercept", "months": 6, "response": "partial",
                      "adverse_events": ["psoriasis", "infection"]})
    assert facts["adverse_event_classes"] == ["tnf_inhibitor"]
    assert facts["adverse_events"] == ["psoriasis", "infection"]
    assert facts["intolerant_classes"] == []


def test_complete_response(facts_of):
    facts = facts_of(("naproxen", 6, "complete"))
    assert facts["complete_response_classes"] == ["nsaid"]
    assert facts["responding_classes"] == []  # not ongoing
    assert facts["failed_classes"] == []


# -- ongoing and responding -----------------------------------------------------------------------

@pytest.mark.parametrize("response, responding", [("partial", True), ("complete", True),
                                                  ("none", False), ("relapse", False)])
def test_ongoing_and_responding(facts_of, response, responding):
    facts = facts_of({"drug": "naproxen", "months": 2, "response": response, "ongoing": True})
    assert facts["ongoing_classes"] == ["nsaid"] and facts["ongoing_drugs"] == ["naproxen"]
    assert facts["responding_classes"] == (["nsaid"] if responding else [])


def test_stopped_treatment_is_not_ongoing(facts_of):
    facts = facts_of({"drug": "naproxen", "months": 2, "response": "partial", "ongoing": False})
    assert facts["ongoing_classes"] == [] and facts["responding_classes"] == []


# -- lesions, onset -------------------------------------------------------------------------------

def test_vertebral_from_the_site(facts_of):
    assert facts_of(lesions={"count": 2, "sites": ["vertebra", "tibia"]})["vertebral"] is True
    assert facts_of(lesions={"count": 2, "sites": ["tibia"]})["vertebral"] is False
    facts = facts_of(lesions={"count": 1, "sites": ["vertebra"], "vertebral_fracture": True})
    assert facts["vertebral"] is True and facts["lesions.vertebral_fracture"] is True


def test_vertebral_from_a_fracture_alone(vocab, make_profile):
    """Validation requires the vertebral site with a fracture; derive_facts does not rely on it."""
    profile = make_profile()
    unchecked = profile.model_copy(update={"lesions": profile.lesions.model_copy(
        update={"sites": [], "vertebral_fracture": True})})
    assert derive_facts(unchecked, vocab)["vertebral"] is True


@pytest.mark.parametrize("count, multifocal", [(0, False), (1, False), (2, True), (200, True)])
def test_multifocal(facts_of, count, multifocal):
    facts = facts_of(lesions={"count": count})
    assert facts["multifocal"] is multifocal and facts["lesions.count"] == count


@pytest.mark.parametrize("onset, pediatric", [(0, True), (9.5, True), (17.9, True), (18, False),
                                              (30, False)])
def test_pediatric_and_adult_onset(facts_of, onset, pediatric):
    facts = facts_of(age_years=40, age_at_onset_years=onset)
    assert facts["pediatric_onset"] is pediatric
    assert facts["adult_onset"] is (not pediatric)


def test_red_flag_count(facts_of):
    assert facts_of()["red_flag_count"] == 0
    assert facts_of(red_flags=["fever", "mass"])["red_flag_count"] == 2


# -- unstated values ------------------------------------------------------------------------------

def test_unstated_values_are_left_out(facts_of):
    facts = facts_of()
    for name in ("weight_kg", "age_at_onset_years", "sex", "lesions.symmetric", "lesions.imaging",
                 "labs.crp_mg_l", "labs.esr_mm_h", "labs.cbc_normal", "pediatric_onset",
                 "adult_onset", "activity.pain", "activity.swelling", "activity.new_lesions",
                 "activity.functional_impairment", "activity.active_lesions_on_mri"):
        assert name not in facts, name
    assert None not in facts.values()
    # always stated: lists (possibly empty), counts and profile defaults
    for name in ("features", "red_flags", "lesions.sites", "stage", "biopsy", "hla_b27",
                 "vertebral", "multifocal", "red_flag_count", "treatment_count"):
        assert name in facts, name


def test_stated_false_and_zero_are_kept(facts_of):
    facts = facts_of(activity={"pain": False}, labs={"crp_mg_l": 0, "cbc_normal": False},
                     lesions={"count": 0, "symmetric": False})
    assert facts["activity.pain"] is False and "activity.swelling" not in facts
    assert facts["labs.crp_mg_l"] == 0 and facts["labs.cbc_normal"] is False
    assert facts["lesions.symmetric"] is False and facts["lesions.count"] == 0


def test_every_fact_is_in_the_schema_with_its_type(facts_of):
    facts = facts_of({"drug": "naproxen", "months": 4, "response": "none", "adverse_events": ["rash"]},
                     sex="male", weight_kg=30, age_at_onset_years=8,
                     lesions={"count": 2, "sites": ["tibia"], "symmetric": True, "imaging": "radiograph"},
                     activity={"pain": True, "swelling": False, "functional_impairment": False,
                               "active_lesions_on_mri": True, "new_lesions": False},
                     labs={"crp_mg_l": 3, "esr_mm_h": 5, "cbc_normal": True},
                     features=["acne"], red_flags=["fever"], jansson_score=41)
    for name, value in facts.items():
        kind = FACT_SCHEMA[name].kind
        if kind == "number":
            assert isinstance(value, (int, float)) and not isinstance(value, bool), name
        elif kind == "bool":
            assert isinstance(value, bool), name
        elif kind == "enum":
            assert isinstance(value, str), name
        else:
            assert isinstance(value, list), name
    missing = set(FACT_SCHEMA) - set(facts)
    assert missing == set(), missing


# -- order and purity -----------------------------------------------------------------------------

def test_lists_are_in_vocabulary_order_whatever_the_input_order(facts_of, vocab):
    facts = facts_of(("zoledronic_acid", 2, "none"), ("methotrexate", 2, "intolerance"),
                     ("naproxen", 4, "none"), ("prednisolone", 1, "relapse"),
                     {"drug": "etanercept", "months": 1, "response": "partial",
                      "adverse_events": ["rash", "psoriasis"]},
                     features=["psoriasis", "arthritis"], red_flags=["mass", "fever"],
                     lesions={"count": 4, "sites": ["tibia", "clavicle", "vertebra"]})
    assert facts["tried_classes"] == ["nsaid", "glucocorticoid", "csdmard", "tnf_inhibitor",
                                      "bisphosphonate"]
    assert facts["failed_classes"] == ["nsaid", "glucocorticoid"]
    assert facts["no_trial_length_classes"] == ["bisphosphonate"]
    assert facts["tried_drugs"] == [d for d in vocab.values("drugs") if d in
                                    {"zoledronic_acid", "methotrexate", "naproxen", "prednisolone",
                                     "etanercept"}]
    assert facts["adverse_events"] == ["psoriasis", "rash"]
    assert facts["features"] == ["arthritis", "psoriasis"]
    assert facts["red_flags"] == ["fever", "mass"]
    assert facts["lesions.sites"] == ["vertebra", "clavicle", "tibia"]


def test_order_of_the_history_does_not_change_the_facts(facts_of):
    history = [("naproxen", 4, "none"), ("methotrexate", 3, "partial"),
               {"drug": "etanercept", "months": 2, "response": "partial", "ongoing": True}]
    assert facts_of(*history) == facts_of(*reversed(history))


def test_derive_facts_is_pure(vocab, make_profile):
    profile = make_profile(treatments=[{"drug": "naproxen", "months": 4, "response": "none"}])
    before = copy.deepcopy(profile.to_data())
    first = derive_facts(profile, vocab)
    first["failed_classes"].append("changed")
    first["lesions.sites"].append("changed")
    second = derive_facts(profile, vocab)
    assert second["failed_classes"] == ["nsaid"] and "changed" not in second["lesions.sites"]
    assert profile.to_data() == before


# -- the course model (issue 13) -------------------------------------------------------------------

@pytest.mark.parametrize("treatment, outcome_fact", [
    ({"drug": "naproxen", "months": 4, "response": "partial", "ongoing": True}, "responding_classes"),
    ({"drug": "naproxen", "months": 4, "response": "complete"}, "stopped_in_remission_classes"),
    ({"drug": "naproxen", "months": 4, "response": "none"}, "refractory_classes"),
    ({"drug": "naproxen", "months": 1, "response": "none", "ongoing": True}, "too_short_classes"),
    ({"drug": "naproxen", "months": 1, "response": "relapse"}, "relapsed_classes"),
    ({"drug": "naproxen", "months": 1, "response": "intolerance"}, "intolerant_classes"),
    ({"drug": "naproxen", "months": 6, "response": "adverse_event"}, "intolerant_classes"),
])
def test_each_course_has_exactly_one_outcome(facts_of, treatment, outcome_fact):
    outcomes = ("responding_classes", "stopped_in_remission_classes", "refractory_classes",
                "too_short_classes", "relapsed_classes", "intolerant_classes", "no_trial_length_classes")
    facts = facts_of(treatment)
    assert [name for name in outcomes if facts[name]] == [outcome_fact]


def test_intolerance_is_not_failure_even_after_an_adequate_length(facts_of):
    facts = facts_of(("naproxen", 6, "intolerance"))
    assert facts["intolerant_classes"] == ["nsaid"] and facts["failed_classes"] == []


def test_responding_counts_only_ongoing_courses(facts_of):
    facts = facts_of({"drug": "etanercept", "months": 4, "response": "complete", "ongoing": True},
                     ("naproxen", 4, "partial"))
    assert facts["responding_classes"] == ["tnf_inhibitor"]
    assert facts["responding_class_count"] == 1
    assert facts["stopped_in_remission_classes"] == ["nsaid"]


@pytest.mark.parametrize("activity, expected", [
    ({}, "not_recorded"),
    ({"pain": False}, "inactive"),
    ({"pain": False, "swelling": False, "functional_impairment": False,
      "active_lesions_on_mri": False, "new_lesions": False}, "inactive"),
    ({"pain": False, "active_lesions_on_mri": True}, "active"),
    ({"new_lesions": True}, "active"),
    ({"functional_impairment": True, "swelling": False}, "active"),
])
def test_disease_activity_from_the_recorded_signs_only(facts_of, activity, expected):
    facts = facts_of(("naproxen", 4, "none"), activity=activity)
    assert facts["disease_activity"] == expected


def test_structural_damage_is_a_vertebral_fracture(facts_of):
    damaged = facts_of(lesions={"count": 2, "sites": ["vertebra"], "vertebral_fracture": True})
    assert damaged["structural_damage"] is True
    assert facts_of()["structural_damage"] is False


def test_jansson_score_is_passed_through_and_checked(facts_of, vocab):
    assert facts_of(jansson_score=39)["jansson_score"] == 39
    assert "jansson_score" not in facts_of()
    from cno_pathway.errors import ProfileError
    for bad in (64, -1, 39.5, "40"):
        with pytest.raises(ProfileError) as info:
            validate_profile({"age_years": 10, "diagnosis": "cno", "lesions": {"count": 1},
                              "jansson_score": bad}, vocab)
        assert info.value.field == "jansson_score"
