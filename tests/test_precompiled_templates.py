"""Templates compiled to Python ahead of time (issue 17, start-up): `make install` writes each
template's generated module into the package (consult/precompile.py); a consult takes it when it
was generated from exactly the source, jinja2 and settings in use, and compiles from source
otherwise. The output is the same bytes either way; an edited template renders what it now
says; nothing is written or loaded outside the package's own folder."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import time
from pathlib import Path

import jinja2
import pytest

from cno_pathway.consult import precompile as precompile_module
from cno_pathway.consult import render
from cno_pathway.consult.precompile import precompile
from cno_pathway.patient.intake import profile_from_file
from cno_pathway.resources import templates_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("typical-multifocal.yaml", "vertebral-fracture.yaml")
FORMATS = ("text", "markdown", "html")


@pytest.fixture
def copied(tmp_path) -> Path:
    """A copy of the templates folder a test may edit."""
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(), folder)
    return folder


class Spy:
    """Counts the templates an environment compiles from source."""

    def __init__(self, monkeypatch, env):
        self.names = []
        original = env.compile

        def compile(source, name=None, filename=None, raw=False, defer_init=False):
            self.names.append(name)
            return original(source, name, filename, raw, defer_init)

        monkeypatch.setattr(env, "compile", compile)


def _environments(directory, compiled):
    return {escape: render.make_environment(escape, directory, compiled) for escape in (False, True)}


def _render_all(pathway, monkeypatch, envs, colour=False) -> dict:
    monkeypatch.setattr(render, "environment", lambda autoescape: envs[autoescape])
    out = {}
    for example in EXAMPLES:
        patient = profile_from_file(str(ROOT / "examples" / example), pathway.vocabulary)
        consult = pathway.consult(patient, explain=True)
        for fmt in FORMATS:
            out[example, fmt] = render.render_consult(consult, fmt, colour=colour)
    return out


def test_every_template_gets_a_module_for_both_environments(tmp_path):
    written = precompile(tmp_path / "compiled")
    names = sorted(p.name for p in templates_dir().glob("*.j2"))
    assert len(written) == 2 * len(names) == len({p.name for p in written})
    for escape, env in _environments(templates_dir(), tmp_path / "compiled").items():
        for name in names:
            source = (templates_dir() / name).read_text(encoding="utf-8")
            assert (tmp_path / "compiled" / render.module_file(env, name, source)).is_file()


def test_a_precompiled_template_renders_the_same_bytes_without_compiling(pathway, tmp_path,
                                                                        monkeypatch):
    precompile(tmp_path / "compiled")
    fast = _environments(templates_dir(), tmp_path / "compiled")
    spies = [Spy(monkeypatch, env) for env in fast.values()]
    got = _render_all(pathway, monkeypatch, fast, colour=True)
    assert [s.names for s in spies] == [[], []]          # no template compiled from source
    slow = _environments(templates_dir(), None)
    assert got == _render_all(pathway, monkeypatch, slow, colour=True)
    assert "CNO PATHWAY CONSULT" in got[EXAMPLES[0], "text"]


def test_an_edited_template_renders_what_it_now_says(pathway, copied, tmp_path, monkeypatch):
    precompile(tmp_path / "compiled", copied)
    text = copied / "consult.txt.j2"
    text.write_text(text.read_text(encoding="utf-8") + "EDITED AFTER INSTALL\n", encoding="utf-8")
    envs = _environments(copied, tmp_path / "compiled")
    spy = Spy(monkeypatch, envs[False])
    out = _render_all(pathway, monkeypatch, envs)
    assert all(o.endswith("EDITED AFTER INSTALL\n") for (_, fmt), o in out.items() if fmt == "text")
    assert not any("EDITED" in o for (_, fmt), o in out.items() if fmt != "text")
    assert spy.names == ["consult.txt.j2"]               # only the edited one, from source


def test_an_edit_while_running_is_picked_up(copied, tmp_path):
    """The loader keeps jinja2's up-to-date check: a long-running service sees an edit."""
    precompile(tmp_path / "compiled", copied)
    env = render.make_environment(False, copied, tmp_path / "compiled")
    (copied / "probe.txt.j2").write_text("first {{ x }}\n", encoding="utf-8")
    assert env.get_template("probe.txt.j2").render(x=1) == "first 1\n"
    card = env.get_template("cds_card.md.j2")
    assert env.get_template("cds_card.md.j2") is card     # cached while unchanged
    later = time.time() + 5
    (copied / "probe.txt.j2").write_text("second {{ x }}\n", encoding="utf-8")
    os.utime(copied / "probe.txt.j2", (later, later))
    assert env.get_template("probe.txt.j2").render(x=1) == "second 1\n"


def test_the_key_follows_everything_the_generated_code_depends_on(monkeypatch, tmp_path):
    source = (templates_dir() / "consult.txt.j2").read_text(encoding="utf-8")
    env = render.make_environment(False, templates_dir(), None)
    key = render.module_file(env, "consult.txt.j2", source)
    assert key == render.module_file(render.make_environment(False, templates_dir(), None),
                                     "consult.txt.j2", source)           # stable
    assert key != render.module_file(env, "consult.txt.j2", source + " ")
    assert key != render.module_file(env, "consult.md.j2", source)
    assert key != render.module_file(render.make_environment(True, templates_dir(), None),
                                     "consult.txt.j2", source)
    other = render.make_environment(False, templates_dir(), None)
    other.trim_blocks = False
    assert render.module_file(other, "consult.txt.j2", source) != key
    other = render.make_environment(False, templates_dir(), None)
    other.filters["extra"] = len
    assert render.module_file(other, "consult.txt.j2", source) != key
    monkeypatch.setattr(jinja2, "__version__", "9.9.9")
    assert render.module_file(render.make_environment(False, templates_dir(), None),
                              "consult.txt.j2", source) != key


def test_the_key_covers_the_source_of_the_filters_module(tmp_path, monkeypatch):
    """jinja2 folds a filter over constant arguments into the generated code: the module that
    defines a filter is part of the key."""
    (tmp_path / "probe_filters.py").write_text("def shout(x):\n    return x.upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("probe_filters")
    try:
        env = render.make_environment(False, templates_dir(), None)
        env.filters["shout"] = probe.shout
        before = render.module_file(env, "t.j2", "{{ 'a' | shout }}")
        (tmp_path / "probe_filters.py").write_text("def shout(x):\n    return x.lower()\n")
        render._filter_sources.cache_clear()
        env = render.make_environment(False, templates_dir(), None)
        env.filters["shout"] = probe.shout
        assert render.module_file(env, "t.j2", "{{ 'a' | shout }}") != before
    finally:
        sys.modules.pop("probe_filters", None)
        render._filter_sources.cache_clear()


def test_a_broken_module_under_the_right_key_falls_back(copied, tmp_path, monkeypatch):
    compiled = tmp_path / "compiled"
    precompile(compiled, copied)
    env = render.make_environment(False, copied, compiled)
    source = (copied / "whatif.txt.j2").read_text(encoding="utf-8")
    (compiled / render.module_file(env, "whatif.txt.j2", source)).write_text("def root(:\n")
    spy = Spy(monkeypatch, env)
    assert env.get_template("whatif.txt.j2") is not None
    assert spy.names == ["whatif.txt.j2"]


def test_nothing_is_written_at_run_time(pathway, copied, tmp_path, monkeypatch):
    compiled = tmp_path / "compiled"
    compiled.mkdir()
    _render_all(pathway, monkeypatch, _environments(copied, compiled))
    assert list(compiled.iterdir()) == []
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in templates_dir().iterdir())


def test_precompile_removes_modules_of_an_earlier_key(copied, tmp_path):
    compiled = tmp_path / "compiled"
    first = precompile(compiled, copied)
    (copied / "consult.md.j2").write_text("changed\n", encoding="utf-8")
    second = precompile(compiled, copied)
    assert len(first) == len(second) and first != second
    assert sorted(compiled.glob("t_*.py")) == second


def test_code_comes_only_from_the_package(monkeypatch):
    """The modules live in the installed package, never in a cache or home folder."""
    package = Path(render.__file__).resolve().parent
    assert render.PRECOMPILED == package / "_templates"
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-cache")
    render.environment.cache_clear()
    try:
        for escape in (False, True):
            loader = render.environment(escape).loader
            assert isinstance(loader, render.PackagedLoader) and loader.compiled == render.PRECOMPILED
            assert render.environment(escape).bytecode_cache is None
    finally:
        render.environment.cache_clear()
    assert precompile_module.PRECOMPILED == render.PRECOMPILED
