"""Snapshot tests: each consult format pinned byte for byte (tests/snapshots/consult/).

A snapshot set is a rule base, an evidence library and a list of cases; each case is rendered
in every format and compared with `tests/snapshots/consult/<set>/<case>.<ext>`.

- `fixture`: the fixture rule base (tests/fixtures/), pinned now.
- `examples`: teaching cases of examples/ on the real rule base. Name a case in EXAMPLE_CASES
  once its rules have settled, then regenerate; its snapshots pin it from then on.

Regenerate after an intended change with

    SNAPSHOT_UPDATE=1 .venv/bin/python -m pytest tests/test_snapshots.py

and review the diff before committing. A missing snapshot fails (it is never created silently),
and so does a snapshot file no case produces any more.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.teaching.cases import find_case
from cno_pathway.cli import main
from cno_pathway.consult.consult import Pathway
from cno_pathway.patient.profile import validate_profile
from cno_pathway.consult.render import render_consult
from cno_pathway.resources import rules_dir, seeds_dir

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "snapshots" / "consult"
EXTENSIONS = {"text": "txt", "markdown": "md", "html": "html", "json": "json"}
UPDATE = os.environ.get("SNAPSHOT_UPDATE") == "1"


@dataclass
class Case:
    name: str
    profile: dict | None = None        # profile data, or None: a teaching case of examples/
    explain: bool = False


@dataclass
class SnapshotSet:
    name: str
    rules: Path
    seeds: Path
    cases: list[Case] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        return SNAPSHOTS / self.name


_NAIVE = {"id": "naive-child", "age_years": 10, "sex": "female", "weight_kg": 32,
          "age_at_onset_years": 9.5, "diagnosis": "cno",
          "lesions": {"count": 3, "sites": ["tibia", "femur", "clavicle"], "symmetric": True,
                      "imaging": "whole_body_mri"},
          "activity": {"pain": True, "swelling": False},
          "labs": {"crp_mg_l": 8, "esr_mm_h": 22, "cbc_normal": True},
          "biopsy": "inflammatory"}

FIXTURE = SnapshotSet("fixture", ROOT / "tests" / "fixtures" / "rules",
                      ROOT / "tests" / "fixtures" / "seeds", [
    Case("naive", _NAIVE),
    Case("naive-no-weight", {k: v for k, v in _NAIVE.items() if k != "weight_kg"} | {"id": "no-weight"}),
    Case("naive-explain", _NAIVE | {"id": "naive-explain"}, explain=True),
    Case("nsaid-refractory", {"id": "nsaid-refractory", "age_years": 12, "weight_kg": 40,
                              "diagnosis": "crmo", "lesions": {"count": 5, "sites": ["tibia", "pelvis"]},
                              "features": ["arthritis"],
                              "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}),
    Case("adult-multi-class", {"id": "adult-multi-class", "age_years": 34, "sex": "male",
                               "diagnosis": "sapho", "lesions": {"count": 2, "sites": ["sternum"]},
                               "features": ["palmoplantar_pustulosis"],
                               "treatments": [
                                   {"drug": "naproxen", "months": 6, "response": "none"},
                                   {"drug": "prednisolone", "months": 1, "response": "relapse",
                                    "adverse_events": ["infection"]}]}),
    Case("hostile-label", {"id": "<script>alert(1)</script> *x* | `y`", "age_years": 8,
                           "diagnosis": "cno", "lesions": {"count": 1}}),
])

# Teaching cases pinned on the real rule base: add names here (e.g. "typical-multifocal") once
# rules/ and seeds/ have settled, then run SNAPSHOT_UPDATE=1.
EXAMPLE_CASES: list[str] = ["typical-multifocal", "vertebral-fracture", "steroid-relapse", "anakinra-cohort",
                             "adult-onset-refractory", "red-flags"]
EXAMPLES = SnapshotSet("examples", rules_dir(), seeds_dir(), [Case(name) for name in EXAMPLE_CASES])

SETS = [FIXTURE, EXAMPLES]


_PATHWAYS: dict[str, Pathway] = {}


def _pathway(snapshot_set: SnapshotSet) -> Pathway:
    if snapshot_set.name not in _PATHWAYS:
        _PATHWAYS[snapshot_set.name] = Pathway.load(snapshot_set.rules, snapshot_set.seeds)
    return _PATHWAYS[snapshot_set.name]


@pytest.fixture(scope="module", autouse=True)
def _close_pathways():
    yield
    for pathway in _PATHWAYS.values():
        pathway.close()
    _PATHWAYS.clear()


def render_case(snapshot_set: SnapshotSet, case: Case, fmt: str) -> str:
    pathway = _pathway(snapshot_set)
    if case.profile is None:
        profile = find_case(case.name).profile(pathway.vocabulary)
    else:
        profile = validate_profile(case.profile, pathway.vocabulary)
    return render_consult(pathway.consult(profile, explain=case.explain), fmt)


def check_snapshot(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")
        return
    rel = path.relative_to(ROOT)
    assert path.exists(), (f"missing snapshot {rel}; create it with "
                           f"SNAPSHOT_UPDATE=1 .venv/bin/python -m pytest tests/test_snapshots.py")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                 f"{rel} (snapshot)", f"{rel} (now)"))[:80])
        pytest.fail(f"output differs from {rel}; if intended, regenerate with SNAPSHOT_UPDATE=1 "
                    f"and review the diff:\n{diff}", pytrace=False)


PARAMS = [pytest.param(s, c, fmt, id=f"{s.name}/{c.name}.{ext}")
          for s in SETS for c in s.cases for fmt, ext in EXTENSIONS.items()]


@pytest.mark.parametrize("snapshot_set,case,fmt", PARAMS)
def test_snapshot(snapshot_set, case, fmt):
    path = snapshot_set.directory / f"{case.name}.{EXTENSIONS[fmt]}"
    check_snapshot(path, render_case(snapshot_set, case, fmt))


@pytest.mark.parametrize("snapshot_set", SETS, ids=[s.name for s in SETS])
def test_no_stale_snapshots(snapshot_set):
    """Every file in a set's folder belongs to a case and a format (renamed cases leave none)."""
    expected = {f"{c.name}.{ext}" for c in snapshot_set.cases for ext in EXTENSIONS.values()}
    found = {p.name for p in snapshot_set.directory.glob("*")} if snapshot_set.directory.exists() else set()
    if UPDATE:
        for name in found - expected:
            (snapshot_set.directory / name).unlink()
        return
    assert not found - expected, f"stale snapshots in {snapshot_set.directory}: {sorted(found - expected)}"


def test_fixture_set_pins_several_consults_in_every_format():
    assert len(FIXTURE.cases) >= 5
    for case in FIXTURE.cases:
        for ext in EXTENSIONS.values():
            assert (FIXTURE.directory / f"{case.name}.{ext}").is_file() or UPDATE


def test_example_cases_exist():
    for name in EXAMPLE_CASES:
        assert find_case(name).name == name


def test_the_cli_prints_the_snapshot(fixture_env, tmp_path):
    """What the command line prints is the pinned library output, byte for byte."""
    import yaml

    case = FIXTURE.cases[0]
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(case.profile), encoding="utf-8")
    runner = CliRunner()
    for fmt, ext in EXTENSIONS.items():
        result = runner.invoke(main, ["consult", str(profile), "--format", fmt])
        assert result.exit_code == 0, result.output
        expected = (FIXTURE.directory / f"{case.name}.{ext}").read_bytes()
        assert result.stdout_bytes == expected, fmt
