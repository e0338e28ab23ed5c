"""The stored profile schema (patient/profile_schema.json) against the pydantic declaration
(patient/contract.py): the file is what the declaration builds today, and the two validators
accept and refuse the same profiles, with the same data, the same errors and the same messages.
Also: a consult's start-up does not build a pydantic model, and a stale or damaged file falls
back to the declaration instead of validating with an old contract."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cno_pathway.errors import InputError, ProfileError
from cno_pathway.patient import checks, contract, profile, stored_schema
from cno_pathway.patient.profile import profile_error, validate_profile
from cno_pathway.yamlio import parse_document
from tests.conftest import ROOT
from tests.hostile_inputs import generated_profiles, stored_profiles
from tests.strategies import profiles

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the stored file is the declaration's -----------------------------------------------------------

def test_the_stored_schema_is_what_the_declaration_builds_today():
    assert stored_schema.SCHEMA_FILE.read_text(encoding="utf-8") == stored_schema.render(), \
        "patient/profile_schema.json is out of date: run `make profile-schema`"


def test_the_check_mode_tells_a_stale_file(tmp_path, monkeypatch):
    monkeypatch.setattr(stored_schema, "SCHEMA_FILE", tmp_path / "profile_schema.json")
    assert stored_schema.main(["x", "--check"]) == 1          # missing
    assert stored_schema.main(["x"]) == 0                     # written
    assert stored_schema.main(["x", "--check"]) == 0
    (tmp_path / "profile_schema.json").write_text("{}", encoding="utf-8")
    assert stored_schema.main(["x", "--check"]) == 1


def test_the_records_have_the_declared_fields_in_order():
    for model in contract.MODELS:
        record = getattr(profile, model.__name__)
        assert list(record.model_fields) == list(model.model_fields), model.__name__
    assert profile.PatientProfile.model_fields["treatments"] == (profile.Treatment, True)
    assert profile.PatientProfile.model_fields["lesions"] == (profile.Lesions, False)
    assert profile.PatientProfile.model_fields["features"] == (None, True)


def test_only_the_checks_of_checks_py_can_be_stored_or_revived():
    with pytest.raises(TypeError, match="not one of the profile checks"):
        checks.spec(print)
    for bad in ({"check": "eval", "code": "1"}, {"check": "vocabulary", "kind": "sites"},
                {"check": "consistent", "extra": 1}):
        with pytest.raises(ValueError, match="unknown check"):
            checks.revive(bad)
    assert checks.revive(checks.VocabularyCheck("sites", many=True).spec()) == \
        checks.VocabularyCheck("sites", many=True)


def test_any_edit_of_the_declaration_changes_its_fingerprint(tmp_path, monkeypatch):
    source = (stored_schema.HERE / "contract.py").read_bytes()
    today = stored_schema.sources_digest()
    monkeypatch.setattr(stored_schema, "HERE", tmp_path)
    for edited in (source.replace(b"le=200", b"le=201", 1), source.replace(b"ge=0", b"gt=0", 1),
                   source + b"\n", source.replace(b"\n", b"\r\n")):
        (tmp_path / "contract.py").write_bytes(edited)
        assert (stored_schema.sources_digest() == today) == (edited == source.replace(b"\n", b"\r\n"))


def _load_from(tmp_path, monkeypatch, text: str):
    monkeypatch.setattr(stored_schema, "SCHEMA_FILE", tmp_path / "profile_schema.json")
    (tmp_path / "profile_schema.json").write_text(text, encoding="utf-8")
    built = []
    real = stored_schema.build
    monkeypatch.setattr(stored_schema, "build", lambda: built.append(1) or real())
    return profile._load()[0], built


def test_a_stale_stored_schema_is_not_used(tmp_path, monkeypatch, pathway, profile_data):
    stored = json.loads(stored_schema.render())
    stored["sources"] = "contract.py:1:00000000"                       # made from another contract.py
    # ... which, say, allowed any age: the fallback must still refuse 101
    stored["schema"]["schema"]["schema"]["fields"]["age_years"]["schema"]["le"] = 1000
    validator, built = _load_from(tmp_path, monkeypatch, json.dumps(stored))
    assert built == [1]
    with pytest.raises(ValidationError):
        validator.validate_python(profile_data(age_years=101), context={"vocabulary": pathway.vocabulary})


@pytest.mark.parametrize("text", ["", "{", "[]", '{"sources": 1}', "\x00"])
def test_a_damaged_stored_schema_falls_back_to_the_declaration(tmp_path, monkeypatch, pathway,
                                                               profile_data, text):
    validator, built = _load_from(tmp_path, monkeypatch, text)
    assert built == [1]
    ok = validator.validate_python(profile_data(), context={"vocabulary": pathway.vocabulary})
    assert ok.lesions.count == 3


def test_a_current_stored_schema_is_used_without_the_declaration(tmp_path, monkeypatch):
    validator, built = _load_from(tmp_path, monkeypatch, stored_schema.render())
    assert built == []


def test_importing_the_profile_builds_no_pydantic_model():
    code = ("import sys; import cno_pathway.patient.profile, cno_pathway.patient.intake; "
            "print(sorted(m for m in sys.modules if m.startswith(('pydantic.', 'annotated_types', "
            "'cno_pathway.patient.contract', 'importlib.metadata'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    loaded = eval(out)  # noqa: S307 - our own print of a list of module names
    assert not [m for m in loaded if m.startswith(("pydantic._internal._model_construction",
                                                   "pydantic._internal._generate_schema",
                                                   "pydantic.plugin", "annotated_types",
                                                   "cno_pathway.patient.contract"))], loaded


def test_a_consult_process_builds_no_pydantic_model(tmp_path):
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
            "sys.argv = ['cno-pathway', 'consult', 'examples/typical-multifocal.yaml']\n"
            "runpy.run_module('cno_pathway', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    modules = done.stderr.split("MODULES ", 1)[1].split()
    assert "cno_pathway.patient.profile" in modules
    assert not [m for m in modules if m.startswith(("pydantic._internal._model_construction",
                                                    "pydantic.plugin", "cno_pathway.patient.contract"))]


# -- the records ----------------------------------------------------------------------------------

def test_records_read_like_the_models(pathway, profile_data):
    data = profile_data(treatments=[{"drug": "naproxen", "months": 4, "response": "none"}])
    fast = validate_profile(data, pathway.vocabulary)
    slow = contract.PatientProfile.model_validate(data, context={"vocabulary": pathway.vocabulary})
    assert fast.to_data() == slow.to_data()
    assert fast.activity.model_dump() == slow.activity.model_dump()
    assert repr(fast.treatments[0]) == repr(slow.treatments[0])
    assert fast.__pydantic_fields_set__ == slow.__pydantic_fields_set__
    changed = fast.model_copy(update={"id": "x"})
    assert changed.id == "x" and fast.id is None and changed.lesions is fast.lesions
    assert fast == validate_profile(data, pathway.vocabulary) and fast != changed
    with pytest.raises(AttributeError):
        fast.lesions.count = 5
    with pytest.raises(TypeError):
        hash(fast)                                  # holds lists, as a frozen model
    assert hash(fast.activity) == hash(validate_profile(data, pathway.vocabulary).activity)
    import copy
    import pickle
    assert copy.deepcopy(fast) == fast and pickle.loads(pickle.dumps(fast)) == fast


# -- the two validators agree ------------------------------------------------------------------------

def _errors(exc: ValidationError) -> list:
    out = []
    for err in exc.errors(include_url=False):
        ctx = {k: (type(v).__name__, str(v), getattr(v, "field", None)) if isinstance(v, Exception)
               else repr(v) for k, v in (err.get("ctx") or {}).items()}
        out.append((err["type"], err["loc"], err["msg"], repr(err["input"]), ctx))
    return out


def _outcome(validate, data, vocabulary, document=None):
    """What a validator makes of data: its data (as JSON text: 1 is not 1.0 nor True), or its
    raw errors and the worded ProfileError."""
    try:
        result = validate(data, context={"vocabulary": vocabulary})
    except ValidationError as exc:
        worded = profile_error(exc, document=document, source="p.yaml")
        return ("refused", str(exc), _errors(exc), worded.message, worded.field, worded.line)
    except Exception as exc:  # noqa: BLE001 - both must fail alike
        return ("failed", type(exc).__name__, str(exc))
    return ("accepted", type(result).__name__, json.dumps(result.to_data()))


def assert_agree(data, vocabulary, document=None):
    fast = _outcome(profile.PatientProfile.model_validate, data, vocabulary, document)
    declared = _outcome(contract.PatientProfile.model_validate, data, vocabulary, document)
    assert fast == declared
    return fast[0]


# values a profile field may be given: of every JSON/YAML type, at and beyond the bounds
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 1300), st.integers(),
                     st.floats(), st.sampled_from([0, 0.0, -0.0, 1e-300, 2, 63, 64, 100, 100.5,
                                                   200, 201, 250.0, 1000, 1200, 1201, math.inf]),
                     st.text(max_size=6),
                     st.sampled_from(["12", "yes", "true", "none", "NSAID", "Naproxen", " tibia ",
                                      "vertebra", "cno", "x" * 201, "pain", "methotrexate"]))
_JUNK = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6) | st.sampled_from(
                         ["count", "sites", "drug", "months", "response", "pain", "crp_mg_l"]),
                         inner, max_size=3), max_leaves=6)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, prefix + (index,))


@st.composite
def broken_profiles(draw, vocabulary):
    """A valid profile with one to three things done to it: a value replaced by anything, a
    key removed or added (a near-miss of a real name, or a stranger)."""
    data = draw(profiles(vocabulary))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(_JUNK)
        elif action == "remove":
            parent.pop(path[-1])
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["colour", "weight", "age", "sitess", "drugs", "Pain"])
                        | st.text(max_size=5))] = draw(_JUNK)
        else:
            parent.append(draw(_JUNK))
    return data


@SETTINGS
@given(data=st.data())
def test_valid_profiles_give_the_same_profile(pathway, data):
    assert assert_agree(data.draw(profiles(pathway.vocabulary)), pathway.vocabulary) == "accepted"


@SETTINGS
@given(data=st.data())
def test_broken_profiles_are_refused_alike(pathway, data):
    assert_agree(data.draw(broken_profiles(pathway.vocabulary)), pathway.vocabulary)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.dictionaries(st.sampled_from(sorted(contract.PatientProfile.model_fields))
                            | st.text(max_size=4), _JUNK, max_size=8))
def test_anything_at_all_is_judged_alike(pathway, data):
    assert_agree(data, pathway.vocabulary)


def test_the_fixture_vocabulary_agrees_too(vocab, profile_data):
    assert assert_agree(profile_data(), vocab) == "accepted"
    assert assert_agree(profile_data(lesions={"count": 1, "sites": ["tibia", "femur"]}), vocab) == "refused"


def test_without_a_vocabulary_both_refuse_to_guess(profile_data):
    for model in (profile.PatientProfile, contract.PatientProfile):
        with pytest.raises(RuntimeError, match="must be validated with context"):
            model.model_validate(profile_data())


def test_the_hostile_profiles_are_judged_alike(pathway):
    seen = 0
    texts = [p.read_bytes() for p in stored_profiles()] + [c for c, _ in generated_profiles().values()]
    for content in texts:
        try:
            doc = parse_document(content, source="p.yaml")
        except InputError:  # refused before validation (not YAML, too deep, too large...)
            continue
        if isinstance(doc.data, dict):
            assert_agree(doc.data, pathway.vocabulary, doc)
            seen += 1
    assert seen >= 10


def test_every_example_is_judged_alike(pathway):
    from cno_pathway.patient.intake import profile_document
    from cno_pathway.yamlio import read_document

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        doc = profile_document(read_document(path, error=ProfileError))
        assert assert_agree(doc.data, pathway.vocabulary, doc) == "accepted", path.name


# -- the exact-name shortcut -------------------------------------------------------------------------

class _Info:
    def __init__(self, vocabulary):
        self.context = {"vocabulary": vocabulary}


KINDS = ["sites", "imaging", "drugs", "responses", "adverse_events", "sexes", "diagnoses",
         "features", "red_flags", "biopsy", "hla_b27"]


def _words(vocabulary):
    kinds = KINDS
    names = st.sampled_from(sorted({n for k in kinds for n in vocabulary.values(k)}))
    spelled = names.flatmap(lambda n: st.sampled_from(
        [n, n.upper(), n.title(), n.replace("_", " "), n.replace("_", "-"), f" {n}", n + "x", n[:-1],
         n * 60]))
    return st.tuples(st.sampled_from(kinds), spelled | st.text(max_size=12))


@SETTINGS
@given(data=st.data())
def test_a_word_matches_as_the_vocabulary_matches_it(pathway, data):
    import dataclasses

    vocabulary = pathway.vocabulary
    kind, word = data.draw(_words(vocabulary))
    # the reference: Vocabulary.match without its exact-name shortcut (no name is "exact")
    plain = dataclasses.replace(vocabulary)
    plain.__dict__["_exact_names"] = {k: frozenset() for k in KINDS}
    try:
        expected = ("ok", plain.match(kind, word))
    except ValueError as exc:
        expected = ("refused", str(exc))
    try:
        got = ("ok", checks._match(kind, word, _Info(vocabulary)))
    except ValueError as exc:
        got = ("refused", str(exc))
    assert got == expected


def test_the_shortcut_follows_each_vocabulary(pathway):
    """Two vocabularies in turn, one without 'femur': each answers with its own names."""
    import dataclasses

    full = pathway.vocabulary
    fewer = dataclasses.replace(full, words={**full.words, "sites": {
        k: v for k, v in full.words["sites"].items() if k != "femur"}}, drug_to_class={})
    for _ in range(2):
        assert checks._match("sites", "femur", _Info(full)) == "femur"
        with pytest.raises(ValueError, match="unknown site"):
            checks._match("sites", "femur", _Info(fewer))


def test_a_schema_stored_by_another_pydantic_core_is_not_used(tmp_path, monkeypatch):
    """Another pydantic-core release may read a stored core schema differently: the declaration
    is used instead (slower, never wrong)."""
    import pydantic_core

    stored = stored_schema.render()
    assert f"pydantic-core:{pydantic_core.__version__}" in stored
    monkeypatch.setattr(pydantic_core, "__version__", pydantic_core.__version__ + ".post1")
    validator, built = _load_from(tmp_path, monkeypatch, stored)
    assert built == [1]
