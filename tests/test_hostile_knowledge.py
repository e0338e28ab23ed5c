"""Hostile rule bases and evidence libraries (issue 14): type confusion in any knowledge file,
authored messages that would reach str.format, and rule folders that are not rule folders. Each
ends in one message naming the file (and line), exit 2 for a consult; `rules lint` reports it as
an error; nothing crashes, hangs or reads what it should not."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cno_pathway.authoring.lint import lint
from cno_pathway.consult.consult import Pathway
from cno_pathway.errors import InputError
from cno_pathway.knowledge.rulebook import MESSAGE_FIELDS, fill, placeholders
from cno_pathway.patient.intake import profile_from_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "typical-multifocal.yaml"
CLI = [sys.executable, "-m", "cno_pathway"]
GUARD = 60  # seconds: a hang guard only


def _run(args, seeds=None):
    env = dict(os.environ, CNO_PATHWAY_CACHE="off")
    env.pop("CNO_PATHWAY_RULES", None)
    env.pop("CNO_PATHWAY_SEEDS", None)
    if seeds is not None:
        env["CNO_PATHWAY_SEEDS"] = str(seeds)
    return subprocess.run(CLI + args, capture_output=True, timeout=GUARD, env=env, cwd=ROOT)


def _clean(proc, code, *expected):
    err = proc.stderr.decode("utf-8", "replace")
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == code, (proc.returncode, err[-800:], out[-800:])
    assert "Traceback" not in err + out
    for text in expected:
        assert text in err + out, (text, err, out[-800:])
    return err + out


@pytest.fixture
def knowledge(tmp_path):
    for name in ("rules", "seeds"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def _mutate(folder: Path, relative: str, path: tuple, value) -> None:
    """Put `value` at `path` of a knowledge file, rewritten as JSON (a YAML subset) with one
    value per line, so that the message can still name a line."""
    target = folder / relative
    data = yaml.safe_load(target.read_text())
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    target.write_text(json.dumps(data, indent=1))


def _first_regimen_with_steps():
    data = yaml.safe_load((ROOT / "rules" / "regimens.yaml").read_text())
    return next(i for i, r in enumerate(data) if r.get("steps"))


def _first_class():
    return next(iter(yaml.safe_load((ROOT / "rules" / "vocabulary.yaml").read_text())["drug_classes"]))


def _a_rule_file():
    return sorted(p.name for p in (ROOT / "rules").glob("[0-9]*.yaml"))[-1]


def _first_seed():
    return sorted(p.name for p in (ROOT / "seeds").glob("*.yaml") if p.name != "grading.yaml")[0]


# The type-confusion crash sites the issue names, and their neighbours: (file, path, value)
CONFUSIONS = {
    "rule stage as a list": (lambda: ("rules/" + _a_rule_file(), (0, "stage"), [])),
    "rule status as a list": (lambda: ("rules/" + _a_rule_file(), (0, "status"), ["draft"])),
    "rule kind as a mapping": (lambda: ("rules/" + _a_rule_file(), (0, "then"), {"suggest": {"kind": {"a": 1}, "rationale": "x"}})),
    "rule grade as a list": (lambda: ("rules/" + _a_rule_file(), (0, "evidence"), {"grade": ["C"], "cites": []})),
    "drug as a number": (lambda: ("rules/vocabulary.yaml", ("drug_classes", _first_class(), "drugs"), [7])),
    "drug list as text": (lambda: ("rules/vocabulary.yaml", ("drug_classes", _first_class(), "drugs"), "naproxen")),
    "class label as a list": (lambda: ("rules/vocabulary.yaml", ("drug_classes", _first_class(), "label"), ["x"])),
    "procedures as a list": (lambda: ("rules/vocabulary.yaml", ("procedures",), ["surgery"])),
    "stages as a list": (lambda: ("rules/vocabulary.yaml", ("stages",), ["treatment_naive"])),
    "regimen steps as a number": (lambda: ("rules/regimens.yaml", (_first_regimen_with_steps(), "steps"), 1)),
    "sections as a list": (lambda: ("rules/rulebook.yaml", ("sections",), ["staging"])),
    "rule base name as a mapping": (lambda: ("rules/rulebook.yaml", ("name",), {"a": 1})),
    "seed design as a mapping": (lambda: ("seeds/" + _first_seed(), ("design",), {"a": 1})),
    "seed known_through as a list": (lambda: ("seeds/" + _first_seed(), ("known_through",), ["x"])),
    "seed title as a number": (lambda: ("seeds/" + _first_seed(), ("title",), 7)),
    "seed topic as a list": (lambda: ("seeds/" + _first_seed(), ("findings", 0, "topic"), ["nsaid"])),
    "seed numbers nested": (lambda: ("seeds/" + _first_seed(), ("findings", 0, "numbers"), {"n": [1, [2]]})),
    "grading design earns a list": (lambda: ("seeds/grading.yaml", ("designs", "case_report"), ["D"])),
    "grading topics as a number": (lambda: ("seeds/grading.yaml", ("topics",), 5)),
    "grading grades as a list": (lambda: ("seeds/grading.yaml", ("grades",), ["A"])),
}


@pytest.mark.parametrize("case", sorted(CONFUSIONS))
def test_type_confusion_is_a_file_line_error(case, knowledge):
    relative, path, value = CONFUSIONS[case]()
    _mutate(knowledge, relative, path, value)
    name = Path(relative).name
    consult = _run(["consult", str(EXAMPLE), "--rules", str(knowledge / "rules")],
                   seeds=knowledge / "seeds")
    err = _clean(consult, 2, name)
    assert err.startswith("cno-pathway: error: ")
    linted = _run(["rules", "lint", str(knowledge / "rules"), "--seeds", str(knowledge / "seeds")])
    _clean(linted, 1, name, "error")


# -- messages: placeholders, never str.format ---------------------------------------------------

def _with_message(knowledge: Path, name: str, text: str) -> Path:
    path = knowledge / "rules" / "rulebook.yaml"
    data = yaml.safe_load(path.read_text())
    data["messages"][name] = text
    path.write_text(json.dumps(data, indent=1))
    return path


@pytest.mark.parametrize("text", ["No rule applies ({nope}).", "{stage.__class__}", "{0}",
                                  "{stage:>999999999}", "{stage!r}", "unbalanced { brace",
                                  "{populations}"])
def test_a_bad_placeholder_stops_load_and_lint_at_file_line(knowledge, text):
    _with_message(knowledge, "outside_pathway", text)
    consult = _run(["consult", str(EXAMPLE), "--rules", str(knowledge / "rules")])
    _clean(consult, 2, "rulebook.yaml:", "outside_pathway")
    for command in (["rules", "lint"], ["rules", "test"]):
        proc = _run(command + [str(knowledge / "rules")])
        assert proc.returncode in (1, 2), proc
        _clean(proc, proc.returncode, "rulebook.yaml:", "outside_pathway")


def test_placeholders_are_filled_by_our_code_only():
    assert fill("stage: {stage}; {{literal}} {other}", stage="{x.__class__}") == \
        "stage: {x.__class__}; {literal} {other}"
    assert placeholders("a {b} {{c}} {d_1}") == ["b", "d_1"]
    for bad in ("{", "}", "{0}", "{a.b}", "{a:>9}", "{A}"):
        with pytest.raises(ValueError):
            placeholders(bad)


def test_every_shipped_message_uses_only_its_placeholders():
    data = yaml.safe_load((ROOT / "rules" / "rulebook.yaml").read_text())
    for name, text in data["messages"].items():
        assert set(placeholders(text)) <= MESSAGE_FIELDS.get(name, frozenset()), name


def test_a_patient_value_with_braces_is_never_formatted(tmp_path):
    """{details}-style text in a profile reaches a message as plain text."""
    profile = tmp_path / "p.yaml"
    profile.write_text(EXAMPLE.read_text().replace("id: typical-multifocal", "id: '{stage} {0}'"))
    proc = _run(["consult", str(profile), "-f", "json"])
    assert proc.returncode == 0, proc.stderr
    assert "{stage} {0}" in proc.stdout.decode()


# -- rule folders that are not rule folders ---------------------------------------------------------

def test_root_is_not_a_rule_folder():
    proc = _run(["consult", str(EXAMPLE), "--rules", "/"])
    _clean(proc, 2, "not a rule folder", "rulebook.yaml")
    proc = _run(["rules", "lint", "/"])
    _clean(proc, 2, "not a rule folder")


def test_a_fifo_named_yaml_is_refused_not_waited_on(knowledge):
    fifo = knowledge / "rules" / "70-fifo.yaml"
    os.mkfifo(fifo)
    for args in (["consult", str(EXAMPLE), "--rules", str(knowledge / "rules")],
                 ["rules", "lint", str(knowledge / "rules")]):
        _clean(_run(args), 2, "70-fifo.yaml", "not a regular file")
    os.unlink(fifo)
    os.mkfifo(knowledge / "seeds" / "fifo.yaml")
    _clean(_run(["consult", str(EXAMPLE)], seeds=knowledge / "seeds"), 2, "fifo.yaml")


def test_a_folder_or_device_named_yaml_is_refused(knowledge):
    (knowledge / "rules" / "70-folder.yaml").mkdir()
    _clean(_run(["consult", str(EXAMPLE), "--rules", str(knowledge / "rules")]), 2, "70-folder.yaml")
    shutil.rmtree(knowledge / "rules" / "70-folder.yaml")
    (knowledge / "rules" / "70-zero.yaml").symlink_to("/dev/zero")
    _clean(_run(["consult", str(EXAMPLE), "--rules", str(knowledge / "rules")]), 2, "70-zero.yaml")


def test_an_oversized_rule_file_is_refused_before_it_is_read(knowledge):
    big = knowledge / "rules" / "70-big.yaml"
    with big.open("wb") as handle:
        handle.truncate(21 * 1024 * 1024)  # sparse: costs no disk
    _clean(_run(["consult", str(EXAMPLE), "--rules", str(knowledge / "rules")]), 2, "70-big.yaml", "MiB")


def test_an_unreadable_subfolder_is_never_walked(knowledge):
    """The digest covers the folder's own files: a subfolder (or a huge tree) is not read."""
    sub = knowledge / "rules" / "private"
    sub.mkdir()
    (sub / "secret.yaml").write_text("- not: [a rule")
    os.chmod(sub, 0)
    try:
        proc = _run(["consult", str(EXAMPLE), "--rules", str(knowledge / "rules"), "-f", "json"])
        assert proc.returncode == 0, proc.stderr
    finally:
        os.chmod(sub, 0o700)


# -- a property: any type in any field of any knowledge file -----------------------------------------

FILES = ["rules/" + _a_rule_file(), "rules/regimens.yaml", "rules/vocabulary.yaml",
         "rules/rulebook.yaml", "seeds/" + _first_seed(), "seeds/grading.yaml"]
CONFUSERS = [[], {}, 7, 1.5, True, None, "zz", [1], {"a": 1}, [[]], "", "{nope}", "x" * 5000]


def _positions(data, path=()):
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _positions(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data[:3]):
            yield from _positions(value, path + (index,))


_ORIGINALS = {name: yaml.safe_load((ROOT / name).read_text()) for name in FILES}
_POSITIONS = [(name, path) for name in FILES for path in _positions(_ORIGINALS[name]) if path]


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(_POSITIONS), value=st.sampled_from(CONFUSERS))
def test_knowledge_files_never_crash_on_confused_types(tmp_path_factory, where, value):
    """Every load and lint ends in a result or an InputError (a message), nothing else."""
    folder = tmp_path_factory.mktemp("kb")
    for name in ("rules", "seeds"):
        shutil.copytree(ROOT / name, folder / name)
    relative, path = where
    data = copy.deepcopy(_ORIGINALS[relative])
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = copy.deepcopy(value)
    (folder / relative).write_text(json.dumps(data, indent=1))
    os.environ["CNO_PATHWAY_CACHE"] = "off"
    try:
        try:
            pathway = Pathway.load(folder / "rules", folder / "seeds")
        except InputError:
            pass
        else:
            try:  # the example may no longer fit the vocabulary: a message, not a crash
                pathway.consult(profile_from_file(EXAMPLE, pathway.vocabulary), explain=True).to_json()
            except InputError:
                pass
            finally:
                pathway.close()
            lint(folder / "rules", folder / "seeds")
    finally:
        del os.environ["CNO_PATHWAY_CACHE"]
        shutil.rmtree(folder)


def test_a_seeds_folder_is_checked_before_the_digest_reads_it(tmp_path):
    (tmp_path / "notes.txt").write_text("not evidence")
    _clean(_run(["consult", str(EXAMPLE)], seeds=tmp_path), 2, "not an evidence folder", "grading.yaml")
    _clean(_run(["rules", "lint", str(ROOT / "rules"), "--seeds", str(tmp_path)]), 2,
           "not an evidence folder")
