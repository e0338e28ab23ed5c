"""The knowledge cache: a hit gives the same consult as a fresh parse, an edit misses it, and
an unusable cache folder only costs time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cno_pathway.consult.consult import Pathway
from cno_pathway.patient.profile import validate_profile

ROOT = Path(__file__).resolve().parent.parent
PROFILE = {"age_years": 11, "weight_kg": 36, "diagnosis": "cno",
           "lesions": {"count": 4, "sites": ["tibia"], "imaging": "whole_body_mri"}, "biopsy": "inflammatory",
           "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}


def _consult(rules, monkeypatch, cache_dir):
    monkeypatch.setenv("CNO_PATHWAY_CACHE_DIR", str(cache_dir))
    pathway = Pathway.load(rules, ROOT / "seeds")
    try:
        return json.dumps(pathway.consult(validate_profile(PROFILE, pathway.vocabulary)).to_json())
    finally:
        pathway.close()


def test_hit_equals_fresh_parse_and_edit_misses(tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    cache = tmp_path / "cache"
    first = _consult(rules, monkeypatch, cache)
    assert len(list(cache.glob("knowledge-*.pickle"))) == 1
    assert _consult(rules, monkeypatch, cache) == first
    monkeypatch.setenv("CNO_PATHWAY_CACHE", "off")
    assert _consult(rules, monkeypatch, cache) == first
    monkeypatch.delenv("CNO_PATHWAY_CACHE")
    path = rules / "30-escalation.yaml"
    path.write_text(path.read_text().replace("title: Short prednisolone course, as a bridge only",
                                             "title: A short prednisolone bridge"))
    edited = _consult(rules, monkeypatch, cache)
    assert "A short prednisolone bridge" in edited and edited != first
    assert len(list(cache.glob("knowledge-*.pickle"))) == 2


def test_unwritable_cache_is_ignored(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert "CNO-ESC-GC-BRIDGE" in _consult(ROOT / "rules", monkeypatch, blocker / "cache")
