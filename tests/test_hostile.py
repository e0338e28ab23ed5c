"""Hostile and broken input (issue 8): every case exits 2 with one clear message naming the
field or file:line, no traceback, no partial output; nothing crashes.

The corpus lives in tests/hostile/ (profiles/ and rules/); the very large inputs (alias bombs,
deep nesting, 10,000 treatments, huge files) are generated here. Each runs the real console
script in a subprocess; the timeout is a guard against hangs, not a speed measurement (the
benchmarks measure speed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cno_pathway.errors import ProfileError
from cno_pathway.profile import validate_profile
from cno_pathway.resources import rules_dir
from tests.strategies import profiles

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "hostile"
CLI = [sys.executable, "-m", "cno_pathway"]
GUARD = 60  # seconds: a hang guard only


def _run(args, *, stdin=None, env_extra=None, cwd=None):
    env = dict(os.environ, CNO_PATHWAY_CACHE="off")
    env.pop("CNO_PATHWAY_RULES", None)
    env.pop("CNO_PATHWAY_SEEDS", None)
    env.update(env_extra or {})
    return subprocess.run(CLI + args, input=stdin, capture_output=True, timeout=GUARD, env=env,
                          cwd=cwd or ROOT)


def _assert_clean_failure(proc, *expected):
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, (proc.returncode, err, proc.stdout[:500])
    assert "Traceback" not in err and "Traceback" not in proc.stdout.decode("utf-8", "replace")
    assert err.startswith("cno-pathway: error: "), err
    assert len(err.strip().splitlines()) <= 12, err
    for text in expected:
        assert text in err, (text, err)
    assert proc.stdout == b""


PROFILE_CASES = {
    "wrong-type.yaml": ["wrong-type.yaml:1", "age_years"],
    "out-of-range.yaml": ["out-of-range.yaml:3", "lesions.count"],
    "nan.yaml": ["nan.yaml:1", "age_years", "finite"],
    "infinity.yaml": ["infinity.yaml:2", "weight_kg", "finite"],
    "huge-number.yaml": ["huge-number.yaml:3", "lesions.count"],
    "empty.yaml": ["empty.yaml", "empty"],
    "blank.yaml": ["blank.yaml", "empty"],
    "duplicate-key.yaml": ["duplicate-key.yaml:2", "duplicate key 'age_years'"],
    "unknown-drug.yaml": ["unknown-drug.yaml:5", "treatments[0].drug", "unknown drug 'wonderdrug'"],
    "contradiction-sites.yaml": ["contradiction-sites.yaml:3", "lesions.sites"],
    "contradiction-fracture.yaml": ["lesions.vertebral_fracture", "vertebra"],
    "contradiction-onset.yaml": ["contradiction-onset.yaml:2", "age_at_onset_years"],
    "contradiction-ongoing.yaml": ["ongoing", "naproxen is listed twice"],
    "python-tag.yaml": ["python-tag.yaml:1", "not allowed"],
    "python-tag-value.yaml": ["python-tag-value.yaml:1", "not allowed"],
    "non-utf8.yaml": ["non-utf8.yaml:4", "UTF-8"],
    "binary.yaml": ["binary.yaml:1"],
    "not-a-mapping.yaml": ["not-a-mapping.yaml", "mapping"],
    "unknown-field.yaml": ["unknown-field.yaml:4", "mystery", "unknown field"],
    "two-documents.yaml": ["two-documents.yaml"],
    "truncated.json": ["truncated.json:", "invalid YAML or JSON"],
    "negative.yaml": ["negative.yaml:3", "lesions.count"],
    "overflow-float.yaml": ["overflow-float.yaml:4", "labs.crp_mg_l"],
    "bool-as-number.yaml": ["bool-as-number.yaml:1", "age_years"],
    "string-as-bool.yaml": ["string-as-bool.yaml:4", "activity.pain"],
    "merge-key.yaml": ["merge-key.yaml:4", "merge"],
}


def test_the_corpus_is_complete():
    assert sorted(PROFILE_CASES) == sorted(p.name for p in (HOSTILE / "profiles").iterdir())


@pytest.mark.parametrize("name", sorted(PROFILE_CASES))
def test_hostile_profile(name, tmp_path):
    out = tmp_path / "consult.txt"
    proc = _run(["consult", str(HOSTILE / "profiles" / name), "-o", str(out)])
    _assert_clean_failure(proc, *PROFILE_CASES[name])
    assert not out.exists(), "no partial output may be written"
    assert list(tmp_path.iterdir()) == []


def _generated(tmp_path: Path) -> dict[str, tuple[bytes, list[str]]]:
    head = "age_years: 12\ndiagnosis: cno\nlesions: {count: 3}\n"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
    treatments = head + "treatments:\n" + "".join(
        "  - {drug: naproxen, months: 1, response: none}\n" for _ in range(10_000))
    return {
        "alias-bomb.yaml": (bomb.encode(), ["alias-bomb.yaml", "refused"]),
        "deep-flow.yaml": (("a: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(), ["deep-flow.yaml:1", "nested"]),
        "deep-block.yaml": ("".join("  " * i + f"k{i}:\n" for i in range(200)).encode(), ["deep-block.yaml", "nested"]),
        "ten-thousand-treatments.yaml": (treatments.encode(), ["treatments", "1000"]),
        "huge-file.yaml": ((head + "id: " + "x" * (21 * 1024 * 1024) + "\n").encode(), ["huge-file.yaml", "MiB"]),
    }


@pytest.mark.parametrize("name", ["alias-bomb.yaml", "deep-flow.yaml", "deep-block.yaml",
                                  "ten-thousand-treatments.yaml", "huge-file.yaml"])
def test_generated_hostile_profile(name, tmp_path):
    content, expected = _generated(tmp_path)[name]
    path = tmp_path / name
    path.write_bytes(content)
    proc = _run(["consult", str(path)])
    _assert_clean_failure(proc, *expected)


def test_hostile_profile_on_stdin():
    proc = _run(["consult", "-"], stdin=b"\xff\xfe\x00garbage")
    _assert_clean_failure(proc, "<stdin>")


RULE_CASES = {
    "unknown-operator.yaml": ["unknown-operator.yaml:5", "CNO-X-ONE", "unknown operator 'equals'"],
    "unknown-fact.yaml": ["unknown-fact.yaml:5", "CNO-X-TWO", "unknown fact 'vertebrae'"],
    "malformed-id.yaml": ["malformed-id.yaml:1", "malformed"],
    "wrong-type.yaml": ["wrong-type.yaml:5", "CNO-X-THREE", "number"],
    "unknown-value.yaml": ["unknown-value.yaml:5", "CNO-X-FOUR", "wings"],
    "huge-priority.yaml": ["huge-priority.yaml:5", "CNO-X-FIVE", "priority"],
    "python-tag.yaml": ["python-tag.yaml:5", "not allowed"],
    "non-utf8.yaml": ["non-utf8.yaml:2", "UTF-8"],
    "duplicate-key.yaml": ["duplicate-key.yaml:3", "duplicate key 'title'"],
    "unknown-key.yaml": ["unknown-key.yaml:5", "CNO-X-NINE", "unknown key 'severity'"],
    "not-a-list.yaml": ["not-a-list.yaml", "list of rules"],
    "unknown-kind.yaml": ["unknown-kind.yaml:6", "CNO-X-ELEVEN", "insist"],
    "binary.yaml": ["binary.yaml:1"],
    "unknown-citation.yaml": ["unknown-citation.yaml", "CNO-X-TWELVE", "no-such-finding"],
}


def test_the_rule_corpus_is_complete():
    assert sorted(RULE_CASES) == sorted(p.name for p in (HOSTILE / "rules").iterdir())


@pytest.mark.parametrize("name", sorted(RULE_CASES))
def test_hostile_rule_file(name, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(rules_dir(), rules)
    shutil.copy(HOSTILE / "rules" / name, rules / name)
    proc = _run(["consult", str(ROOT / "examples" / "typical-multifocal.yaml"), "--rules", str(rules)])
    _assert_clean_failure(proc, *RULE_CASES[name])


# -- properties -----------------------------------------------------------------------------------

def _mutations():
    """Ways to break a valid profile, each one a clear error."""
    return st.sampled_from([
        ("age_years", -1), ("age_years", "12"), ("age_years", float("nan")), ("weight_kg", 1e9),
        ("diagnosis", "flu"), ("lesions", {"count": "3"}), ("lesions", {}), ("features", ["wings"]),
        ("red_flags", "fever"), ("biopsy", 3), ("treatments", [{"drug": "naproxen"}]),
        ("treatments", [{"drug": "naproxen", "months": -2, "response": "none"}]),
        ("unknown_key", 1), ("sex", None), ("hla_b27", True),
    ])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_profiles_always_get_a_consult_and_invalid_ones_a_message(pathway, data):
    profile_data = data.draw(profiles(pathway.vocabulary))
    consult = pathway.consult(validate_profile(profile_data, pathway.vocabulary))
    assert consult.suggestions or consult.outside_pathway
    key, value = data.draw(_mutations())
    broken = dict(profile_data)
    broken[key] = value
    if key == "sex":  # None is a valid 'not stated'
        validate_profile(broken, pathway.vocabulary)
        return
    with pytest.raises(ProfileError) as info:
        validate_profile(broken, pathway.vocabulary)
    assert info.value.field and info.value.field.split(".")[0].split("[")[0] in (key, "profile")
    assert str(info.value)
