"""A non-editable wheel ships rules/, seeds/, templates/ and the teaching cases (examples/)
inside the package, and the installed package finds them there at run time; every teaching
command works from the wheel installed into a fresh virtual environment outside the checkout."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SHIPPED = ("rules", "seeds", "templates", "examples")


def _repo_files(root: Path, name: str) -> set[str]:
    base = root / name
    return {p.relative_to(base).as_posix() for p in base.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def wheel(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--quiet",
               "--disable-pip-version-check", "-w", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")  # else pip fetches the build backend
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("cno_pathway-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                             "--quiet", "--disable-pip-version-check", "--target", str(target),
                             str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def _run_installed(installed: Path, code: str, *args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CNO_PATHWAY_RULES", "CNO_PATHWAY_SEEDS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(installed)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=str(cwd or installed.parent))


def test_the_wheel_ships_rules_seeds_and_templates_inside_the_package(wheel, root):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in SHIPPED:
        expected = _repo_files(root, folder)
        assert expected, folder
        for relative in expected:
            assert f"cno_pathway/_data/{folder}/{relative}" in names, (folder, relative)
    for essential in ("rules/vocabulary.yaml", "rules/rulebook.yaml", "rules/regimens.yaml",
                      "templates/consult.txt.j2", "examples/vertebral-fracture.yaml"):
        assert f"cno_pathway/_data/{essential}" in names
    assert "cno_pathway/__init__.py" in names and "cno_pathway/resources.py" in names
    assert not any(n.startswith(("tests/", "examples/", "rules/", "seeds/")) for n in names)
    assert not any("__pycache__" in n for n in names)


def test_the_wheel_metadata(wheel):
    archive = zipfile.ZipFile(wheel)
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = archive.read(info).decode()
    assert "Requires-Dist: durable-rules==2.0.28" in metadata
    requires = metadata.lower()
    for dependency in ("pydantic", "click", "jinja2", "pyyaml"):
        assert f"requires-dist: {dependency}" in requires, dependency
    entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "cno-pathway = cno_pathway.cli:run" in entry_points


FIND = """
import json
import cno_pathway
from cno_pathway import resources
print(json.dumps({"package": cno_pathway.__file__, "rules": str(resources.rules_dir()),
                  "seeds": str(resources.seeds_dir()), "templates": str(resources.templates_dir()),
                  "examples": str(resources.examples_dir()),
                  "builtin": str(resources.builtin_rules_dir())}))
"""


def test_the_installed_package_finds_its_data_inside_itself(installed, tmp_path):
    result = _run_installed(installed, FIND, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    package = installed.resolve() / "cno_pathway"
    assert Path(found["package"]).resolve() == package / "__init__.py"
    for folder in SHIPPED:
        where = Path(found[folder]).resolve()
        assert where == package / "_data" / folder
        assert where.is_dir()
    assert (package / "_data" / "rules" / "vocabulary.yaml").is_file()
    assert (package / "_data" / "examples" / "vertebral-fracture.yaml").is_file()
    assert Path(found["builtin"]).resolve() == package / "_data" / "rules"


def test_the_environment_still_points_at_another_rule_folder(installed, tmp_path, fixture_rules):
    result = _run_installed(installed, FIND, env_extra={"CNO_PATHWAY_RULES": str(fixture_rules)},
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(json.loads(result.stdout)["rules"]) == fixture_rules


def test_a_consult_from_the_installed_package_uses_its_shipped_templates(installed, tmp_path,
                                                                         fixture_rules,
                                                                         fixture_seeds):
    profile = tmp_path / "p.yaml"
    profile.write_text("age_years: 10\nweight_kg: 32\ndiagnosis: cno\nlesions: {count: 2}\n",
                       encoding="utf-8")
    code = ("import os, sys\nfrom pathlib import Path\nfrom cno_pathway import resources\n"
            "from cno_pathway.cli import main\n"
            "assert resources.templates_dir().resolve().is_relative_to("
            "Path(os.environ['INSTALLED']).resolve())\n"
            "sys.argv = ['cno-pathway', *sys.argv[1:]]\nmain()\n")
    result = _run_installed(installed, code, "consult", profile, "--rules", fixture_rules,
                            env_extra={"CNO_PATHWAY_SEEDS": str(fixture_seeds),
                                       "INSTALLED": str(installed)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CNO PATHWAY CONSULT" in result.stdout and "Naproxen first" in result.stdout


# -- a plain install: the wheel in a fresh virtual environment, outside the checkout --------------

@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new venv holding only the wheel; the dependencies come from this interpreter's
    site-packages through a .pth path (no index, no network), which does not bring in the
    checkout's editable install."""
    import sysconfig

    home = tmp_path_factory.mktemp("plain-install")
    env_dir = home / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                   capture_output=True, timeout=120)
    python = env_dir / "bin" / "python"
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                             "--no-deps", "--no-index", "--quiet", "--disable-pip-version-check",
                             str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n",
                                                       encoding="utf-8")
    return env_dir


def _plain(env_dir: Path, *args, cwd: Path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CNO_PATHWAY_RULES", "CNO_PATHWAY_SEEDS", "PYTHONPATH", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(cwd / "cache")
    return subprocess.run([str(env_dir / "bin" / "cno-pathway"), *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(cwd))


def test_the_plain_install_runs_its_own_copy(fresh_venv, root, tmp_path):
    result = subprocess.run([str(fresh_venv / "bin" / "python"), "-c",
                             "import cno_pathway, sys; print(cno_pathway.__file__)"],
                            capture_output=True, text=True, cwd=str(tmp_path), timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    where = Path(result.stdout.strip()).resolve()
    assert where.is_relative_to(fresh_venv.resolve())
    assert not where.is_relative_to(root) and not tmp_path.is_relative_to(root)


def test_every_teaching_command_works_from_a_plain_install(fresh_venv, tmp_path):
    listed = _plain(fresh_venv, "cases", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "vertebral-fracture" in listed.stdout and "teaching cases" in listed.stdout
    shown = _plain(fresh_venv, "cases", "show", "vertebral-fracture", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Expected stage" in shown.stdout and "Profile:" in shown.stdout
    ran = _plain(fresh_venv, "cases", "run", "vertebral-fracture", "-f", "json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["schema"] == "cno-pathway/consult/1"
    assert "differs" not in ran.stderr  # the shipped case matches the shipped rules
    demo = _plain(fresh_venv, "demo", "steroid-relapse", "--no-pause", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "Step 1" in demo.stdout or "step 1" in demo.stdout.lower()
    diagram = _plain(fresh_venv, "pathway", "--case", "vertebral-fracture", cwd=tmp_path)
    assert diagram.returncode == 0, diagram.stderr
    assert diagram.stdout.lstrip().startswith(("flowchart", "graph", "%%", "---"))


def test_rule_authors_find_and_copy_the_built_in_rules(fresh_venv, tmp_path):
    where = _plain(fresh_venv, "rules", "path", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    builtin = Path(where.stdout.strip())
    assert builtin.is_relative_to(fresh_venv) and (builtin / "vocabulary.yaml").is_file()
    mine = tmp_path / "my-rules"
    copied = _plain(fresh_venv, "rules", "init", mine, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert sorted(p.name for p in mine.iterdir()) == sorted(p.name for p in builtin.iterdir()
                                                            if p.name != "__pycache__")
    assert "rules lint --rules" in copied.stdout
    lint = _plain(fresh_venv, "rules", "lint", "--rules", mine, cwd=tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    again = _plain(fresh_venv, "rules", "init", mine, cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr
