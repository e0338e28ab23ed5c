"""Hypothesis strategies: valid patient profiles drawn from the rule base's vocabulary, and the
class groups the property tests check against.

Shared by the property tests (pathway invariants, safety invariants, engine/reference agreement).
"""

from __future__ import annotations

from hypothesis import strategies as st

from cno_pathway.knowledge.vocabulary import Vocabulary

# classes beyond NSAIDs: what "escalation" means in the pathway invariants
ESCALATION_CLASSES = frozenset({"glucocorticoid", "csdmard", "tnf_inhibitor", "bisphosphonate",
                                "il1_inhibitor", "il6_inhibitor", "il17_inhibitor", "il12_23_inhibitor"})


def treatments(vocabulary: Vocabulary, max_size: int = 6):
    drugs = sorted(vocabulary.drug_to_class)
    return st.lists(st.fixed_dictionaries(
        {"drug": st.sampled_from(drugs),
         "months": st.sampled_from([0, 0.3, 1, 2, 2.9, 3, 4, 6, 12, 24]),
         "response": st.sampled_from(vocabulary.values("responses"))},
        optional={"adverse_events": st.lists(st.sampled_from(vocabulary.values("adverse_events")),
                                             max_size=2, unique=True),
                  "ongoing": st.booleans()}), max_size=max_size).map(_one_ongoing_per_drug)


def _one_ongoing_per_drug(items):
    seen = set()
    for item in items:
        if item.get("ongoing"):
            if item["drug"] in seen:
                item["ongoing"] = False
            seen.add(item["drug"])
    return items


@st.composite
def profiles(draw, vocabulary: Vocabulary):
    """Plain data for a valid profile (validate_profile accepts every one)."""
    sites_all = vocabulary.values("sites")
    count = draw(st.sampled_from([0, 1, 1, 2, 3, 5, 8, 12, 20]))
    sites = draw(st.lists(st.sampled_from(sites_all), max_size=min(count, 5), unique=True))
    fracture = "vertebra" in sites and draw(st.booleans())
    age = draw(st.sampled_from([1.5, 4, 8, 10, 12, 15, 17.9, 18, 25, 40, 60]))
    data = {"age_years": age,
            "diagnosis": draw(st.sampled_from(vocabulary.values("diagnoses"))),
            "lesions": {"count": count, "sites": sites, "vertebral_fracture": fracture}}
    if draw(st.booleans()):
        data["lesions"]["imaging"] = draw(st.sampled_from(vocabulary.values("imaging")))
    if draw(st.booleans()):
        data["lesions"]["symmetric"] = draw(st.booleans())
    if draw(st.booleans()):
        data["age_at_onset_years"] = draw(st.sampled_from([x for x in (1, 3, 9, 12, 17, 18, 20, 35) if x <= age]
                                                          or [age]))
    if draw(st.booleans()):
        data["weight_kg"] = draw(st.sampled_from([3, 12, 25, 32, 40, 55, 70, 120]))
    if draw(st.booleans()):
        data["sex"] = draw(st.sampled_from(vocabulary.values("sexes")))
    data["features"] = draw(st.lists(st.sampled_from(vocabulary.values("features")), max_size=3, unique=True))
    data["red_flags"] = draw(st.lists(st.sampled_from(vocabulary.values("red_flags")), max_size=2,
                                      unique=True) | st.just([]))
    data["biopsy"] = draw(st.sampled_from(vocabulary.values("biopsy")))
    data["hla_b27"] = draw(st.sampled_from(vocabulary.values("hla_b27")))
    activity = draw(st.dictionaries(st.sampled_from(["pain", "swelling", "functional_impairment",
                                                     "active_lesions_on_mri", "new_lesions"]),
                                    st.booleans(), max_size=5))
    if activity:
        data["activity"] = activity
    labs = draw(st.fixed_dictionaries({}, optional={"crp_mg_l": st.sampled_from([0, 3, 16, 60]),
                                                    "esr_mm_h": st.sampled_from([5, 30, 80]),
                                                    "cbc_normal": st.booleans()}))
    if labs:
        data["labs"] = labs
    data["treatments"] = draw(treatments(vocabulary))
    return data


# JSON-like data for the writers that must give json.dumps's bytes: the awkward scalars (floats
# orjson spells differently, integers beyond 64 bits, lone surrogates, control characters,
# text that looks like an exponent) nested in lists and dicts
JSON_SCALARS = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.sampled_from([1e-05, 0.0001, 9.99e-05, 1.5e-07, 2.5e-7, 1e-09, 1e16, 1e15,
                                   123.456, -0.0, 5e-324, 0.1])
                | st.text() | st.sampled_from(["\ud800", "a\x00\x1f\x7f\u2028\u202e\"\\/",
                                                "0.00001e-5", "relapse-1-and-2-years"]))
JSON_DATA = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
