"""A consult process ends at once after its output is flushed (cli.QUICK_EXIT, issue 17
start-up), with the same output and exit status as before, and only when nothing could miss
the interpreter's teardown: a program that calls run() with an exit handler of its own, or a
test calling run() in-process, gets the usual exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "typical-multifocal.yaml")

# a main program that holds run() as the entry points do; an audit hook speaks when the
# interpreter tears itself down (CPython's PyInterpreterState_Clear event), which a quick exit skips
WRAPPER = """
import atexit, os, sys
from cno_pathway.cli import run

def hook(event, args, write=os.write):
    if event in ("cpython.PyInterpreterState_Clear", "cpython._PySys_ClearAuditHooks"):
        write(2, b"teardown ran\\n")  # a literal: builtins are gone by then

sys.addaudithook(hook)
if sys.argv[1] == "with-handler":
    atexit.register(lambda: sys.stderr.write("exit handler ran\\n"))
sys.argv = ["cno-pathway", *sys.argv[2:]]
run()
"""


def _python(*args, stdout=subprocess.PIPE):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNO_PATHWAY_")}
    return subprocess.run([sys.executable, *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=120, env=env, cwd=str(ROOT))


def test_the_process_prints_the_whole_consult_and_its_status():
    expected = CliRunner().invoke(main, ["consult", EXAMPLE, "--no-color"])
    assert expected.exit_code == 0
    result = _python("-m", "cno_pathway", "consult", EXAMPLE, "--no-color")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == expected.output
    as_json = _python("-m", "cno_pathway", "consult", EXAMPLE, "--format", "json")
    assert as_json.returncode == 0 and as_json.stdout.rstrip().endswith("}")


def test_statuses_are_kept():
    missing = _python("-m", "cno_pathway", "consult", "/nonexistent/profile.yaml")
    assert missing.returncode == 2 and "file not found" in missing.stderr
    usage = _python("-m", "cno_pathway", "consult")
    assert usage.returncode == 2 and "exactly one of" in usage.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a full disk)")
def test_a_full_disk_is_still_one_line_and_status_1():
    with open("/dev/full", "w") as full:
        result = _python("-m", "cno_pathway", "consult", EXAMPLE, stdout=full)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "No space left" in result.stderr


def test_a_consult_skips_the_teardown_when_nothing_needs_it():
    result = _python("-c", WRAPPER, "plain", "consult", EXAMPLE)
    assert result.returncode == 0 and "CNO PATHWAY CONSULT" in result.stdout
    assert "teardown ran" not in result.stderr


def test_an_exit_handler_gets_the_usual_exit():
    result = _python("-c", WRAPPER, "with-handler", "consult", EXAMPLE)
    assert result.returncode == 0 and "CNO PATHWAY CONSULT" in result.stdout
    assert "exit handler ran" in result.stderr and "teardown ran" in result.stderr


def test_the_teardown_is_seen_when_it_happens():
    """The probe itself can tell: an ordinary exit of the same program shows the teardown."""
    result = _python("-c", WRAPPER, "plain", "--version")
    assert result.returncode == 0 and "teardown ran" in result.stderr


def test_other_commands_get_the_usual_exit():
    result = _python("-c", WRAPPER, "plain", "evidence", "list")
    assert result.returncode == 0 and "teardown ran" in result.stderr
