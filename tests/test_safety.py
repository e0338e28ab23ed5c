"""Safety invariants (issue 8), as property tests over generated valid profiles and the real
rule base: citations and grades everywhere, doses within their maxima, no silent re-use of a
class the patient did not tolerate, tocilizumab never recommended, red flags investigated
before any escalation, and the same input giving the same output."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cno_pathway.patient.profile import validate_profile
from cno_pathway.consult.render import render_consult
from tests.strategies import ESCALATION_CLASSES, profiles

def check_invariants(pathway, data):
    profile = validate_profile(data, pathway.vocabulary)
    consult = pathway.consult(profile)
    facts = consult.facts
    kinds = [s.kind for s in consult.suggestions]
    for s in consult.suggestions:
        assert s.citations and all(c.quote for c in s.citations), s.rule
        assert s.grade in ("A", "B", "C", "D"), s.rule
        assert not (s.therapy == "tocilizumab" and s.kind == "recommend")
        for step in (s.regimen or {}).get("steps", []):
            if step["computed_mg"] is not None:
                if step["max_mg"] is not None:
                    assert max(step["computed_mg"]) <= step["max_mg"], s.rule
                assert profile.weight_kg is not None
            else:  # no weight, or an adult (no mg from a pediatric regimen: tests/test_regimens.py)
                assert profile.weight_kg is None or profile.age_years >= 18
        if s.kind == "recommend" and s.drug_class and (
                s.drug_class in facts["intolerant_classes"] or s.drug_class in facts["adverse_event_classes"]):
            assert "alert" in kinds, s.rule
            assert s.notes, s.rule
    if facts["red_flag_count"] > 0:
        # continuous pain alone is weighed, not investigated (53% of a CNO cohort: an alert)
        if set(facts["red_flags"]) == {"continuous_pain"}:
            assert "alert" in kinds
        else:
            assert "investigate" in kinds
            first_investigate = kinds.index("investigate")
            for index, s in enumerate(consult.suggestions):
                if s.kind in ("recommend", "consider") and s.drug_class in ESCALATION_CLASSES:
                    assert index > first_investigate, s.rule
    return consult


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_safety_invariants(pathway, data):
    check_invariants(pathway, data.draw(profiles(pathway.vocabulary)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_output_is_deterministic(pathway, data):
    profile = validate_profile(data.draw(profiles(pathway.vocabulary)), pathway.vocabulary)
    first = pathway.consult(profile)
    second = pathway.consult(profile)
    assert json.dumps(first.to_json()) == json.dumps(second.to_json())
    for fmt in ("text", "json"):
        assert render_consult(first, fmt) == render_consult(second, fmt)


def test_heavy_patient_dose_is_capped(pathway):
    """Prednisolone's 2 mg/kg/day for 45 kg would be 90 mg: capped at the 60 mg maximum."""
    consult = pathway.consult(validate_profile({
        "age_years": 14, "weight_kg": 45, "diagnosis": "cno",
        "lesions": {"count": 3, "sites": ["tibia"], "imaging": "whole_body_mri"}, "biopsy": "inflammatory",
        "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}, pathway.vocabulary))
    bridge = next(s for s in consult.suggestions if s.rule == "CNO-ESC-GC-BRIDGE")
    step = bridge.regimen["steps"][0]
    assert step["computed_mg"] == [60.0, 60.0] and step["capped"] is True and step["max_mg"] == 60.0
