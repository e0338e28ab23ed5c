"""The knowledge cache keeps the finished rule base and evidence library too (issue 17, start-up):
read back, they equal a fresh load; an edited file or another folder misses them; an entry that
is forged, corrupted, loose or names a class that is not ours is never used; errors in the
folders are reported as without the cache; and nothing but the knowledge classes can be written
or read (knowledge/plain.py)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from cno_pathway.consult.consult import Pathway
from cno_pathway.errors import InputError
from cno_pathway.knowledge import cache as cache_module
from cno_pathway.knowledge import plain, rulebook
from cno_pathway.patient.profile import validate_profile

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PROFILE = {"age_years": 11, "weight_kg": 36, "diagnosis": "cno",
           "lesions": {"count": 4, "sites": ["tibia"], "imaging": "whole_body_mri"},
           "biopsy": "inflammatory", "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}


@pytest.fixture
def rules(tmp_path):
    copy = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", copy)
    return copy


@pytest.fixture
def cache(tmp_path, monkeypatch):
    where = tmp_path / "cache"
    monkeypatch.delenv("CNO_PATHWAY_CACHE", raising=False)
    monkeypatch.setenv("CNO_PATHWAY_CACHE_DIR", str(where))
    return where


def _objects(cache: Path) -> list[Path]:
    return sorted(cache.glob("kb-*.json"))


def _load(rules, seeds=ROOT / "seeds"):
    pathway = Pathway.load(rules, seeds)
    try:
        return pathway.rulebook, pathway.library, json.dumps(
            pathway.consult(validate_profile(PROFILE, pathway.vocabulary), explain=True).to_json())
    finally:
        pathway.close()


def _fresh(rules, monkeypatch, seeds=ROOT / "seeds"):
    monkeypatch.setenv("CNO_PATHWAY_CACHE", "off")
    try:
        return _load(rules, seeds)
    finally:
        monkeypatch.delenv("CNO_PATHWAY_CACHE")


def _no_parsing(monkeypatch):
    """Make any parse of a rule file fail: a load that succeeds read the objects back."""
    def refuse(*args, **kwargs):
        raise AssertionError("parsed a rule file")

    monkeypatch.setattr(rulebook, "parse_rule_file", refuse)


def test_a_hit_equals_a_fresh_load_and_parses_nothing(rules, cache, monkeypatch):
    book, library, first = _load(rules)
    assert len(_objects(cache)) == 1
    with monkeypatch.context() as patch:
        _no_parsing(patch)
        hit_book, hit_library, again = _load(rules)
    assert again == first
    assert hit_book == book and hit_library == library
    assert hit_book.by_id.keys() == book.by_id.keys()
    assert hit_book.vocabulary.drug_to_class == book.vocabulary.drug_to_class
    fresh_book, fresh_library, fresh = _fresh(rules, monkeypatch)
    assert fresh == first and fresh_book == hit_book and fresh_library == hit_library


def test_the_fixture_knowledge_round_trips(cache):
    book, library, _ = _load(FIXTURES / "rules", FIXTURES / "seeds")
    assert plain.decode(json.loads(json.dumps(plain.encode((book, library))))) == (book, library)


def test_an_edit_misses_and_is_in_force(rules, cache, monkeypatch):
    _, _, first = _load(rules)
    path = rules / "30-escalation.yaml"
    original = path.read_bytes()
    path.write_text(path.read_text().replace("title: Short prednisolone course, as a bridge only",
                                             "title: A short prednisolone bridge"))
    _, _, edited = _load(rules)
    assert "A short prednisolone bridge" in edited and edited != first
    assert len(_objects(cache)) == 2
    path.write_bytes(original)
    with monkeypatch.context() as patch:
        _no_parsing(patch)
        assert _load(rules)[2] == first  # the first entry again
    (rules / "notes.txt").write_text("a file the build never reads still changes the digest\n")
    _load(rules)
    assert len(_objects(cache)) == 3


def test_another_folder_with_the_same_files_misses(rules, tmp_path, cache):
    _load(rules)
    other = tmp_path / "elsewhere" / "rules"
    shutil.copytree(rules, other)
    book = _load(other)[0]
    assert book.directory == other and len(_objects(cache)) == 2


def test_the_code_that_builds_is_part_of_the_key(rules, tmp_path):
    module = tmp_path / "builder_probe.py"
    module.write_text("def build():\n    return None\n")
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("builder_probe", module)
    probe = importlib.util.module_from_spec(spec)
    sys.modules["builder_probe"] = probe
    try:
        spec.loader.exec_module(probe)
        with cache_module.document_cache():
            before = cache_module.knowledge_key([rules, ROOT / "seeds"], probe.build)
        later = time.time() + 10
        os.utime(module, (later, later))
        cache_module._code_digest.cache_clear()
        with cache_module.document_cache():
            after = cache_module.knowledge_key([rules, ROOT / "seeds"], probe.build)
        assert before and after and before != after
    finally:
        sys.modules.pop("builder_probe", None)
        cache_module._code_digest.cache_clear()


def _rewrite(entry: Path, change) -> None:
    """Rewrite an entry's payload with a VALID checksum: what a foreign writer could do."""
    header, payload = entry.read_bytes().split(b"\n", 1)
    payload = json.dumps(change(json.loads(payload))).encode()
    meta = json.loads(header)
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    entry.write_bytes(json.dumps(meta).encode() + b"\n" + payload)


def _first(node, test):
    """The first list node (depth first) for which test(node) holds."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            if test(item):
                return item
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
    raise AssertionError("no such node")


def _class(data, name: str) -> int:
    """The index the entry's class table gives `name` (knowledge/plain.py: ["K", names, value])."""
    return data[1].index(name)


def _cites(data):
    """The encoded tuple of a rule's citations (rulebook.Evidence.cites)."""
    evidence = _class(data, "rulebook.Evidence")
    return _first(data[2], lambda n: n[:2] == ["C", evidence])[3]


def _rule(data):
    rule = _class(data, "rulebook.Rule")
    return _first(data[2], lambda n: len(n) > 2 and n[0] == "C" and n[1] == rule)


def _rename(data, old: str, new: str):
    data[1][_class(data, old)] = new


def _point_at_new(data, name: str):
    """The first rule names, by a new index, a class written at the end of the table."""
    data[1].append(name)
    _rule(data)[1] = len(data[1]) - 1


FORGERIES = {
    "a class that is not ours": lambda d: _rename(d, "rulebook.Rule", "consult.Pathway"),
    "a callable's name": lambda d: _rename(d, "rulebook.Rule", "os.system"),
    "a rule pointing at a class that is not ours": lambda d: _point_at_new(d, "os.system"),
    "an index past the table": lambda d: _rule(d).__setitem__(1, len(d[1])),
    "a negative index": lambda d: _rule(d).__setitem__(1, -1),
    "a class named by text in the value": lambda d: _rule(d).__setitem__(1, "rulebook.Rule"),
    "a table that is not text": lambda d: d[1].__setitem__(0, 7),
    "another class of ours in the rule's place": lambda d: _rule(d).__setitem__(
        1, _class(d, "rulebook.Evidence")),
    "no table": lambda d: d.__setitem__(0, "L"),
    "one field too many": lambda d: _rule(d).append("extra"),
    "one field too few": lambda d: _rule(d).pop(),
    "a number where text": lambda d: _rule(d).__setitem__(3, 42),
    "text where a number": lambda d: _rule(d).__setitem__(6, "100"),
    "an unknown tag": lambda d: _cites(d).__setitem__(0, "X"),
    "a bare mapping": lambda d: _rule(d).__setitem__(3, {"a": 1}),
    "a list where a tuple": lambda d: _cites(d).__setitem__(0, "L"),
    "plain JSON where a tuple": lambda d: _rule(d).__setitem__(12, ["J", []]),
    "plain JSON with no value": lambda d: _rule(d).__setitem__(12, ["J"]),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_entry_is_never_used(forgery, rules, cache, monkeypatch):
    _, _, first = _load(rules)
    [entry] = _objects(cache)

    def change(data):
        FORGERIES[forgery](data)
        return data

    _rewrite(entry, change)
    with monkeypatch.context() as patch:
        calls = []
        real = rulebook.parse_rule_file
        patch.setattr(rulebook, "parse_rule_file", lambda *a, **k: calls.append(1) or real(*a, **k))
        assert _load(rules)[2] == first
        assert calls, "the forged entry was not refused: nothing was parsed"


def test_random_corruption_of_the_objects_never_changes_a_consult(rules, cache):
    _, _, first = _load(rules)
    [entry] = _objects(cache)
    original = entry.read_bytes()
    rng = random.Random(17)
    for _ in range(15):
        data = bytearray(original)
        if rng.random() < 0.8:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        else:
            data = data[: rng.randrange(len(data))]
        entry.write_bytes(bytes(data))
        assert _load(rules)[2] == first
        entry.write_bytes(original)


def test_a_loose_entry_is_never_used(rules, cache, monkeypatch):
    _, _, first = _load(rules)
    [entry] = _objects(cache)
    def forge(data):
        _rule(data)[3] = "A FORGED TITLE"
        return data

    _rewrite(entry, forge)
    os.chmod(entry, 0o666)
    assert _load(rules)[0].rules[0].title != "A FORGED TITLE"
    assert b"A FORGED TITLE" not in entry.read_bytes()   # rebuilt in place
    # the same forgery in a private entry is read (the same user could edit the rules): the
    # mode check above is what kept it out
    _rewrite(entry, forge)
    os.chmod(entry, 0o600)
    assert _load(rules)[0].rules[0].title == "A FORGED TITLE"


def _error(monkeypatch, rules, seeds, cache_on: bool) -> str:
    if cache_on:
        monkeypatch.delenv("CNO_PATHWAY_CACHE", raising=False)
    else:
        monkeypatch.setenv("CNO_PATHWAY_CACHE", "off")
    with pytest.raises(InputError) as error:
        _load(rules, seeds)
    return str(error.value)


def test_errors_in_the_folders_read_as_without_the_cache(rules, cache, monkeypatch, tmp_path):
    _load(rules)
    broken_seeds = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", broken_seeds)
    (broken_seeds / "grading.yaml").unlink()
    fifo = tmp_path / "fifo-rules"
    shutil.copytree(rules, fifo)
    (fifo / "99-extra.yaml").unlink(missing_ok=True)
    os.mkfifo(fifo / "99-extra.yaml")
    cases = [(tmp_path / "no-rules", ROOT / "seeds"), (rules, tmp_path / "no-seeds"),
             (rules, broken_seeds), (fifo, ROOT / "seeds")]
    for case_rules, case_seeds in cases:
        assert (_error(monkeypatch, case_rules, case_seeds, True)
                == _error(monkeypatch, case_rules, case_seeds, False)), case_rules
    (rules / "vocabulary.yaml").unlink()
    assert _error(monkeypatch, rules, ROOT / "seeds", True) == _error(monkeypatch, rules, ROOT / "seeds", False)


def test_only_knowledge_objects_and_exact_json_are_written():
    for value in (float("nan"), math.inf, 2 ** 70, {1: "key not text"}, object(), {"a": {1, 2}}):
        with pytest.raises((TypeError, ValueError)):
            plain.encode(value)
    with pytest.raises(TypeError):
        plain.encode(Pathway)


def test_lint_keeps_no_objects(rules, cache):
    """Only the knowledge load keeps objects; lint's report is rebuilt from the documents."""
    from click.testing import CliRunner

    from cno_pathway.cli import main

    CliRunner().invoke(main, ["rules", "lint", str(rules)])
    assert _objects(cache) == []


# -- the engine's patterns, kept with the rule base ------------------------------------------------

def _shape(engine):
    """Definitions without the per-process ruleset names."""
    return [definition for _, definition in sorted(engine.definitions.items())], engine.flags


def test_kept_patterns_build_the_same_engine(rules, cache):
    from cno_pathway.engine.durable import Engine, compile_rules

    book = _load(rules)[0]
    fresh = Engine(book.active, {"stage": list(book.vocabulary.stages)})
    compiled = compile_rules(book.active)
    kept = plain.decode(json.loads(json.dumps(plain.encode(compiled))))
    again = Engine(book.active, {"stage": list(book.vocabulary.stages)}, compiled=kept)
    try:
        assert _shape(again) == _shape(fresh)
    finally:
        fresh.close()
        again.close()


@pytest.mark.parametrize("damage", ["missing rule", "extra rule", "not a mapping", "bad paths",
                                    "bad flag"])
def test_patterns_that_do_not_fit_the_rules_are_compiled_afresh(damage, rules, cache):
    from cno_pathway.engine.durable import Engine, compile_rules

    book = _load(rules)[0]
    compiled = compile_rules(book.active)
    first = next(iter(compiled["patterns"]))
    if damage == "missing rule":
        del compiled["patterns"][first]
    elif damage == "extra rule":
        compiled["patterns"]["CNO-NOT-A-RULE"] = {}
        compiled["paths"]["CNO-NOT-A-RULE"] = 1
    elif damage == "not a mapping":
        compiled = ["patterns"]
    elif damage == "bad paths":
        compiled["paths"][first] = "1"
    else:
        compiled["flags"].append(("only one",))
    fresh = Engine(book.active)
    engine = Engine(book.active, compiled=compiled)
    try:
        assert _shape(engine) == _shape(fresh)
    finally:
        fresh.close()
        engine.close()


def test_a_hit_does_not_compile_the_rules(rules, cache, monkeypatch):
    from cno_pathway.engine import durable

    _, _, first = _load(rules)
    with monkeypatch.context() as patch:
        patch.setattr(durable._Compiler, "compile", lambda self, cond: 1 / 0)
        assert _load(rules)[2] == first


def test_the_engine_compiler_is_part_of_the_key(rules):
    from cno_pathway.engine.durable import compile_rules

    with cache_module.document_cache():
        plain_key = cache_module.knowledge_key([rules, ROOT / "seeds"], _load)
        with_engine = cache_module.knowledge_key([rules, ROOT / "seeds"], _load, (compile_rules,))
    assert plain_key and with_engine and plain_key != with_engine


# -- the collector and the knowledge ---------------------------------------------------------------

def _in_generation(obj, generation: int) -> bool:
    import gc

    return any(o is obj for o in gc.get_objects(generation=generation))


@pytest.mark.parametrize("hit", [False, True])
def test_the_knowledge_goes_to_the_oldest_generation_and_nothing_stays_frozen(hit, rules, cache):
    """Read back or built, the knowledge skips the young collections it would survive anyway;
    in a process that freezes nothing, nothing is left frozen (a full collection still sees it)."""
    import gc

    if hit:
        _load(rules)
    frozen = gc.get_freeze_count()
    pathway = Pathway.load(rules, ROOT / "seeds")
    try:
        assert gc.get_freeze_count() == frozen
        if frozen == 0:
            assert _in_generation(pathway.rulebook.rules[0], 2)
    finally:
        pathway.close()


def test_objects_frozen_by_others_stay_frozen_and_ours_are_not_frozen(rules, cache):
    """Where something else is frozen (a host program; Python 3.12 freezes objects of its own at
    start-up), loading knowledge neither unfreezes them nor freezes the knowledge."""
    import gc

    _load(rules)
    held = [[]]                           # the host's object, frozen below
    gc.freeze()
    try:
        pathway = Pathway.load(rules, ROOT / "seeds")
        try:
            assert not any(_in_generation(held[0], g) for g in range(3))    # still frozen
            assert any(_in_generation(pathway.rulebook.rules[0], g) for g in range(3))
        finally:
            pathway.close()
    finally:
        gc.unfreeze()  # this test process goes on: give the collector its objects back
    del held


def test_a_process_that_freezes_keeps_the_knowledge_frozen(rules, cache, monkeypatch):
    """The command line freezes its start-up objects (cli.run) and says so: the knowledge
    joins them, out of every collection's sight."""
    import gc

    _load(rules)
    monkeypatch.setattr(cache_module, "_keep_frozen", False)     # restored after the test
    cache_module.keep_knowledge_frozen()
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        pathway = Pathway.load(rules, ROOT / "seeds")
        try:
            assert gc.get_freeze_count() > before
            assert not any(_in_generation(pathway.rulebook.rules[0], g) for g in range(3))
        finally:
            pathway.close()
    finally:
        gc.unfreeze()  # this test process goes on: give the collector its objects back
