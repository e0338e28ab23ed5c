"""Clinical vignettes from the four source documents, run through the repository's rule base.

Each file in tests/vignettes/ is a patient or situation the sources describe (Schnabel's cohort,
Pardeo's anakinra series, Zhao's mimickers, the InpharmD summary's case reports), the reviewer's
verdict (`teaches`, so `cno-pathway consult FILE` reads the file as a case), and what the consult
must and must not contain. They pin the behaviour a pediatric
rheumatologist checked, so a rule change that undoes it fails here, naming the vignette.

Expectations (all optional): `include` / `exclude` rule ids; `not_offered` therapies (a drug or
class that no recommend/consider suggestion may name); `kinds` and `grades` per rule id;
`no_computed_dose` (no regimen step carries a computed mg figure).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cno_pathway.patient.profile import validate_profile

VIGNETTES = Path(__file__).parent / "vignettes"
FILES = sorted(VIGNETTES.glob("*.yaml"))
KEYS = {"include", "exclude", "not_offered", "kinds", "grades", "no_computed_dose"}


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {"title", "source", "profile", "teaches", "expect"} <= set(data), path.name
    assert set(data["expect"]) <= KEYS, (path.name, set(data["expect"]) - KEYS)
    return data


def test_enough_vignettes_with_sources():
    assert 15 <= len(FILES) <= 40
    for path in FILES:
        data = _load(path)
        assert data["source"] and data["teaches"].strip(), path.name
        assert data["profile"]["id"] == path.stem, path.name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vignette(pathway, path):
    data = _load(path)
    expect = data["expect"]
    consult = pathway.consult(validate_profile(data["profile"], pathway.vocabulary))
    by_rule = {s.rule: s for s in consult.suggestions}
    fired = set(by_rule)
    known = {r.id for r in pathway.rulebook.active}
    for rule in [*expect.get("include", ()), *expect.get("exclude", ()),
                 *expect.get("kinds", {}), *expect.get("grades", {})]:
        assert rule in known, f"{path.name}: unknown or retired rule {rule}"
    missing = set(expect.get("include", ())) - fired
    assert not missing, f"{path.name}: expected {sorted(missing)}; got {sorted(fired)}"
    unwanted = set(expect.get("exclude", ())) & fired
    assert not unwanted, f"{path.name}: must not fire {sorted(unwanted)}"
    offered = [s for s in consult.suggestions if s.kind in ("recommend", "consider")]
    for therapy in expect.get("not_offered", ()):
        hits = [s.rule for s in offered if therapy in (s.therapy, s.drug_class)]
        assert not hits, f"{path.name}: {therapy} offered by {hits}"
    for rule, kind in expect.get("kinds", {}).items():
        assert by_rule[rule].kind == kind, f"{path.name}: {rule} is {by_rule[rule].kind}, not {kind}"
    for rule, grade in expect.get("grades", {}).items():
        assert by_rule[rule].grade == grade, f"{path.name}: {rule} graded {by_rule[rule].grade}"
    if expect.get("no_computed_dose"):
        computed = [s.rule for s in consult.suggestions if s.regimen
                    for step in s.regimen.get("steps", ()) if step.get("computed_mg")]
        assert not computed, f"{path.name}: a dose was computed by {computed}"
