"""The document cache (issue 14): a hit gives the same consult as a fresh parse, an edit misses it,
and nothing in the cache folder can run code, change a result or crash: corrupted, foreign,
stale or loose entries only cost time."""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
import stat
import time
from pathlib import Path

import pytest

from cno_pathway.consult import render
from cno_pathway.consult.consult import Pathway
from cno_pathway.knowledge import cache as cache_module
from cno_pathway.knowledge.rulebook import content_digest
from cno_pathway.patient.profile import validate_profile
from cno_pathway.yamlio import knowledge_snapshot, read_bytes

ROOT = Path(__file__).resolve().parent.parent
PROFILE = {"age_years": 11, "weight_kg": 36, "diagnosis": "cno",
           "lesions": {"count": 4, "sites": ["tibia"], "imaging": "whole_body_mri"}, "biopsy": "inflammatory",
           "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}


def _consult(rules, monkeypatch, cache_dir, seeds=ROOT / "seeds", keep_objects=False):
    """A consult through the cache. The finished objects kept beside the documents are dropped
    first unless `keep_objects` (tests/test_cache_objects.py), so that these tests exercise the
    documents themselves."""
    monkeypatch.delenv("CNO_PATHWAY_CACHE", raising=False)
    monkeypatch.setenv("CNO_PATHWAY_CACHE_DIR", str(cache_dir))
    if not keep_objects and cache_dir.is_dir() and not cache_dir.is_symlink():
        for entry in cache_dir.glob("kb-*.json"):
            entry.unlink()
    pathway = Pathway.load(rules, seeds)
    try:
        return json.dumps(pathway.consult(validate_profile(PROFILE, pathway.vocabulary)).to_json())
    finally:
        pathway.close()


def _fresh(rules, monkeypatch, seeds=ROOT / "seeds"):
    monkeypatch.setenv("CNO_PATHWAY_CACHE", "off")
    pathway = Pathway.load(rules, seeds)
    try:
        return json.dumps(pathway.consult(validate_profile(PROFILE, pathway.vocabulary)).to_json())
    finally:
        pathway.close()
        monkeypatch.delenv("CNO_PATHWAY_CACHE")


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("doc-*.json"))


@pytest.fixture
def rules(tmp_path):
    copy = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", copy)
    return copy


def test_hit_equals_fresh_parse_and_edit_misses(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = _consult(rules, monkeypatch, cache)
    stored = _entries(cache)
    assert len(stored) == len(list(rules.glob("*.yaml")) + list((ROOT / "seeds").glob("*.yaml")))
    assert _consult(rules, monkeypatch, cache) == first
    assert _entries(cache) == stored  # every file was a hit: nothing new written
    assert _fresh(rules, monkeypatch) == first
    path = rules / "30-escalation.yaml"
    original = path.read_bytes()
    path.write_text(path.read_text().replace("title: Short prednisolone course, as a bridge only",
                                             "title: A short prednisolone bridge"))
    edited = _consult(rules, monkeypatch, cache)
    assert "A short prednisolone bridge" in edited and edited != first
    assert len(_entries(cache)) == len(stored) + 1
    path.write_bytes(original)  # a reverted edit is in force at once
    assert _consult(rules, monkeypatch, cache) == first


def test_entries_are_plain_json_with_checksum(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _consult(rules, monkeypatch, cache)
    assert not list(cache.rglob("*.pickle")) and not (cache / "templates").exists()
    for entry in _entries(cache):
        header, payload = entry.read_bytes().split(b"\n", 1)
        meta = json.loads(header)
        assert meta["format"] == cache_module.FORMAT and len(meta["sha256"]) == 64
        json.loads(payload)
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_no_code_is_loaded_from_the_cache_folder(rules, tmp_path, monkeypatch):
    """A pickle or jinja2 bytecode planted where older versions kept them is never loaded (and is
    deleted); the templates get no bytecode cache at all."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    blob = pickle.dumps(Payload())
    for name in ("knowledge-0123.pickle", "lint-0123.pickle"):
        (cache / name).write_bytes(blob)
    (cache / "templates").mkdir()
    (cache / "templates" / "__jinja2_0123.cache").write_bytes(b"j2\x00marshal")
    first = _consult(rules, monkeypatch, cache)
    assert not marker.exists()
    assert not list(cache.glob("*.pickle")) and not (cache / "templates").exists()
    assert first == _fresh(rules, monkeypatch)
    assert all(env.bytecode_cache is None for env in (render.environment(False), render.environment(True)))
    source = Path(cache_module.__file__).read_text()
    assert "import pickle" not in source and "import marshal" not in source


def test_random_corruption_never_changes_a_consult(rules, tmp_path, monkeypatch):
    """Single bit flips and truncations anywhere in any entry: the consult stays the fresh one."""
    cache = tmp_path / "cache"
    fresh = _consult(rules, monkeypatch, cache)
    originals = {p: p.read_bytes() for p in _entries(cache)}
    rng = random.Random(14)
    tried = 0
    for _ in range(40):
        path = rng.choice(sorted(originals))
        data = bytearray(originals[path])
        if rng.random() < 0.8:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        else:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        assert _consult(rules, monkeypatch, cache) == fresh
        tried += 1
        for p, blob in originals.items():
            p.write_bytes(blob)
    assert tried == 40


def _forge(entry: Path, old: bytes, new: bytes) -> None:
    """Rewrite an entry's payload with a VALID checksum: what a foreign writer could do."""
    header, payload = entry.read_bytes().split(b"\n", 1)
    assert old in payload
    payload = payload.replace(old, new)
    meta = json.loads(header)
    meta["sha256"] = __import__("hashlib").sha256(payload).hexdigest()
    entry.write_bytes(json.dumps(meta).encode() + b"\n" + payload)


def _regimens_entry(rules: Path, cache: Path) -> Path:
    return cache / f"doc-{cache_module.entry_key((rules / 'regimens.yaml').read_bytes())}.json"


def test_entries_writable_by_others_are_ignored(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fresh = _consult(rules, monkeypatch, cache)
    entry = _regimens_entry(rules, cache)
    _forge(entry, b"[10,15]", b"[10,30]")
    for mode in (0o622, 0o606):
        os.chmod(entry, mode)
        assert _consult(rules, monkeypatch, cache) == fresh


def test_symlinked_entry_is_ignored(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fresh = _consult(rules, monkeypatch, cache)
    entry = _regimens_entry(rules, cache)
    forged = tmp_path / "forged.json"
    shutil.copy(entry, forged)
    _forge(forged, b"[10,15]", b"[10,30]")
    entry.unlink()
    entry.symlink_to(forged)
    assert _consult(rules, monkeypatch, cache) == fresh


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_entries_and_folders_of_another_user_are_ignored(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fresh = _consult(rules, monkeypatch, cache)
    entry = _regimens_entry(rules, cache)
    _forge(entry, b"[10,15]", b"[10,30]")
    os.chown(entry, 4242, 4242)
    assert _consult(rules, monkeypatch, cache) == fresh
    os.chown(entry, 0, 0)
    os.chown(cache, 4242, 4242)  # a whole folder someone else made: neither read nor written
    assert _consult(rules, monkeypatch, cache) == fresh


def test_entry_under_another_key_is_ignored(rules, tmp_path, monkeypatch):
    """An entry copied to another file's name (valid checksum, wrong key) is not used."""
    cache = tmp_path / "cache"
    fresh = _consult(rules, monkeypatch, cache)
    target = _regimens_entry(rules, cache)
    other = cache / f"doc-{cache_module.entry_key((rules / 'rulebook.yaml').read_bytes())}.json"
    shutil.copy(other, target)
    assert _consult(rules, monkeypatch, cache) == fresh


def test_loose_existing_folder_is_made_private(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o777)
    os.chmod(cache, 0o777)
    _consult(rules, monkeypatch, cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_unwritable_cache_is_ignored(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert "CNO-ESC-GC-BRIDGE" in _consult(ROOT / "rules", monkeypatch, blocker / "cache")


def test_full_disk_is_ignored_and_leaves_no_partial_entry(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode, closefd=True):
            self.handle = real_fdopen(fd, mode, closefd=closefd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, *a):
            return self.handle.read(*a)

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.os, "fdopen", Full)
    fresh = _fresh(rules, monkeypatch)
    assert _consult(rules, monkeypatch, cache) == fresh
    assert list(cache.iterdir()) == []


def test_old_entries_are_pruned(rules, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _consult(rules, monkeypatch, cache)
    kept = set(_entries(cache))
    old = cache / ("doc-" + "0" * 64 + ".json")
    old.write_text("{}\n{}")
    os.chmod(old, 0o600)
    stale = time.time() - (cache_module.PRUNE_DAYS + 1) * 86400
    os.utime(old, (stale, stale))
    path = rules / "60-monitoring.yaml"
    path.write_text(path.read_text() + "\n")  # a miss: something is written, so pruning runs
    _consult(rules, monkeypatch, cache)
    assert not old.exists() and kept <= set(_entries(cache))


def test_digest_covers_the_bytes_that_were_parsed(rules, tmp_path):
    """Inside one load a file is read once: an edit while loading cannot split the printed
    digest from the rules that run."""
    path = rules / "20-first-line.yaml"
    with knowledge_snapshot():
        before = read_bytes(path)
        digest = content_digest(rules)
        path.write_bytes(before + b"\n# edited meanwhile\n")
        assert read_bytes(path) == before
        assert content_digest(rules) == digest
    assert content_digest(rules) != digest
