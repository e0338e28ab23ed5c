"""The reference semantics of rule conditions, and the plain-words explainer."""

from __future__ import annotations

import pytest

from cno_pathway.knowledge.conditions import (All, Any_, Compare, Has, Not, Presence, describe, evaluate,
                                    leaves, unmet, walk)

FACTS = {
    "age_years": 12.0,
    "lesions.count": 3,
    "vertebral": False,
    "sex": "female",
    "features": ["arthritis", "psoriasis"],
    "failed_classes": ["nsaid"],
    "stage": [],
    # weight_kg, labs.crp_mg_l, age_at_onset_years: not stated
}


def eq(fact, value):
    return Compare(None, "eq", fact, value)


def cmp(op, fact, value):
    return Compare(None, op, fact, value)


def has(fact, *values):
    return Has(None, "has", fact, values)


def lacks(fact, *values):
    return Has(None, "lacks", fact, values)


def present(fact):
    return Presence(None, "present", fact)


def absent(fact):
    return Presence(None, "absent", fact)


def all_(*items):
    return All(None, items)


def any_(*items):
    return Any_(None, items)


def not_(item):
    return Not(None, item)


# -- comparisons ----------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, expected", [
    (eq("age_years", 12.0), True), (eq("age_years", 12), True), (eq("age_years", 13.0), False),
    (cmp("ne", "age_years", 13.0), True), (cmp("ne", "age_years", 12.0), False),
    (cmp("gt", "age_years", 11.9), True), (cmp("gt", "age_years", 12.0), False),
    (cmp("gte", "age_years", 12.0), True), (cmp("gte", "age_years", 12.1), False),
    (cmp("lt", "age_years", 12.1), True), (cmp("lt", "age_years", 12.0), False),
    (cmp("lte", "age_years", 12.0), True), (cmp("lte", "age_years", 11.9), False),
    (cmp("in", "sex", ("male", "female")), True), (cmp("in", "sex", ("male", "other")), False),
    (cmp("in", "lesions.count", (1.0, 3.0)), True),
    (eq("vertebral", False), True), (eq("vertebral", True), False),
    (cmp("ne", "vertebral", True), True), (cmp("in", "vertebral", (True,)), False),
])
def test_comparisons_on_stated_facts(condition, expected):
    assert evaluate(condition, FACTS) is expected


@pytest.mark.parametrize("op, value", [("eq", 30.0), ("ne", 30.0), ("gt", 0.0), ("gte", 0.0),
                                       ("lt", 1000.0), ("lte", 1000.0), ("in", (30.0, 40.0))])
def test_every_comparison_on_a_missing_fact_is_false_ne_included(op, value):
    assert evaluate(cmp(op, "weight_kg", value), FACTS) is False
    # and not() turns that into true
    assert evaluate(not_(cmp(op, "weight_kg", value)), FACTS) is True


def test_ne_and_not_eq_differ_only_on_missing_facts():
    stated = (evaluate(cmp("ne", "sex", "male"), FACTS), evaluate(not_(eq("sex", "male")), FACTS))
    assert stated == (True, True)
    missing = (evaluate(cmp("ne", "weight_kg", 30.0), FACTS),
               evaluate(not_(eq("weight_kg", 30.0)), FACTS))
    assert missing == (False, True)


# -- list tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, expected", [
    (has("features", "arthritis"), True),
    (has("features", "arthritis", "psoriasis"), True),
    (has("features", "arthritis", "ibd"), False),          # has: every value
    (lacks("features", "ibd"), True),
    (lacks("features", "ibd", "acne"), True),
    (lacks("features", "ibd", "arthritis"), False),        # lacks: none of the values
    (has("stage", "treatment_naive"), False),
    (lacks("stage", "treatment_naive"), True),
    (has("failed_classes", "nsaid"), True),
    (has("tried_classes", "nsaid"), False),                # a list fact not given at all is empty
    (lacks("tried_classes", "nsaid"), True),
])
def test_has_and_lacks(condition, expected):
    assert evaluate(condition, FACTS) is expected


def test_not_has_differs_from_lacks_with_several_values():
    # not (has a and b) holds when either is missing; lacks a, b needs both missing
    condition = has("features", "arthritis", "ibd")
    assert evaluate(not_(condition), FACTS) is True
    assert evaluate(lacks("features", "arthritis", "ibd"), FACTS) is False


# -- presence -------------------------------------------------------------------------------------

def test_presence():
    assert evaluate(present("sex"), FACTS) and not evaluate(absent("sex"), FACTS)
    assert evaluate(absent("weight_kg"), FACTS) and not evaluate(present("weight_kg"), FACTS)
    # a stated false or an empty list is a value
    assert evaluate(present("vertebral"), FACTS)
    assert evaluate(present("stage"), FACTS)
    assert evaluate(not_(absent("weight_kg")), FACTS) is False


# -- groups ---------------------------------------------------------------------------------------

def test_groups():
    true, false = eq("vertebral", False), eq("vertebral", True)
    assert evaluate(all_(true, true), FACTS) and not evaluate(all_(true, false), FACTS)
    assert evaluate(any_(false, true), FACTS) and not evaluate(any_(false, false), FACTS)
    assert evaluate(all_(), FACTS) is True       # nothing to hold
    assert evaluate(any_(), FACTS) is False      # nothing holds
    assert evaluate(not_(all_()), FACTS) is False
    assert evaluate(not_(any_()), FACTS) is True
    assert evaluate(not_(not_(true)), FACTS) is True
    assert evaluate(None, FACTS) is True         # a rule without a condition always applies


def test_not_flips_every_kind_of_condition():
    conditions = [eq("sex", "female"), cmp("gt", "weight_kg", 3.0), has("features", "ibd"),
                  lacks("features", "ibd"), present("sex"), absent("sex"),
                  all_(eq("sex", "female"), has("features", "ibd")),
                  any_(eq("sex", "male"), has("features", "psoriasis"))]
    for condition in conditions:
        assert evaluate(not_(condition), FACTS) is (not evaluate(condition, FACTS))


def test_de_morgan():
    a, b = cmp("gt", "weight_kg", 3.0), has("features", "arthritis")
    for facts in (FACTS, {**FACTS, "weight_kg": 40.0}, {**FACTS, "features": []}):
        assert evaluate(not_(all_(a, b)), facts) == evaluate(any_(not_(a), not_(b)), facts)
        assert evaluate(not_(any_(a, b)), facts) == evaluate(all_(not_(a), not_(b)), facts)


def test_unknown_condition_is_a_type_error():
    with pytest.raises(TypeError):
        evaluate(object(), FACTS)


def test_walk_and_leaves():
    tree = all_(eq("sex", "female"), any_(has("features", "ibd"), not_(present("sex"))))
    kinds = [type(node).__name__ for node in walk(tree)]
    assert kinds == ["All", "Compare", "Any_", "Has", "Not", "Presence"]
    assert [type(node).__name__ for node in leaves(tree)] == ["Compare", "Has", "Presence"]
    assert list(walk(None)) == []


# -- plain words ----------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, words", [
    (has("failed_classes", "nsaid"), "failed classes include nsaid"),
    (lacks("failed_classes", "nsaid", "glucocorticoid"), "failed classes exclude nsaid, glucocorticoid"),
    (eq("vertebral", False), "vertebral is no"),
    (eq("vertebral", True), "vertebral is yes"),
    (cmp("ne", "sex", "male"), "sex is not male"),
    (cmp("gt", "labs.crp_mg_l", 20.0), "CRP (mg/L) is above 20"),
    (cmp("gte", "age_years", 17.5), "age (years) is at least 17.5"),
    (cmp("lt", "lesions.count", 2.0), "number of lesions is below 2"),
    (cmp("lte", "red_flag_count", 0.0), "red flag count is at most 0"),
    (cmp("in", "diagnosis", ("cno", "crmo")), "diagnosis is one of cno, crmo"),
    (present("weight_kg"), "weight (kg) is stated"),
    (absent("weight_kg"), "weight (kg) is not stated"),
    (not_(eq("vertebral", True)), "not (vertebral is yes)"),
    (all_(eq("vertebral", True), absent("sex")), "vertebral is yes and sex is not stated"),
    (any_(eq("vertebral", True), absent("sex")), "either vertebral is yes or sex is not stated"),
])
def test_describe(condition, words):
    assert describe(condition) == words


def test_describe_uses_the_label_function():
    assert describe(has("failed_classes", "nsaid"), label=lambda v: v.upper()) == \
        "failed classes include NSAID"
    assert describe(eq("vertebral", False), label=lambda v: v.upper()) == "vertebral is no"


def test_unmet_lists_each_failing_part_with_the_actual_value():
    condition = all_(has("failed_classes", "nsaid", "glucocorticoid"),   # fails
                     eq("vertebral", False),                              # holds
                     cmp("gt", "weight_kg", 30.0),                         # fails: not stated
                     eq("sex", "male"),                                    # fails
                     lacks("stage", "treatment_naive"),                    # holds
                     has("stage", "nsaid_refractory"))                     # fails: empty list
    reasons = unmet(condition, FACTS, label=lambda v: v.upper())
    assert reasons == [
        "needs failed classes include NSAID, GLUCOCORTICOID; failed classes: NSAID",
        "needs weight (kg) is above 30; weight (kg) not stated",
        "needs sex is MALE; sex: FEMALE",
        "needs at stage NSAID_REFRACTORY; stage: none",
    ]


def test_unmet_of_a_group_is_one_reason_without_an_actual_value():
    condition = any_(eq("sex", "male"), has("features", "ibd"))
    assert unmet(condition, FACTS) == ["needs either sex is male or features include ibd"]
    assert unmet(not_(eq("sex", "female")), FACTS) == ["needs not (sex is female)"]


def test_unmet_is_empty_when_the_condition_holds():
    assert unmet(eq("sex", "female"), FACTS) == []
    assert unmet(None, FACTS) == []
    assert unmet(all_(), FACTS) == []
