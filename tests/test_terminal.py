"""Terminal conventions, through the installed console script as a real process: colour
(NO_COLOR, TERM=dumb, --color/--no-color), the pager, Ctrl-C, a full, closed or ASCII-only
standard output, -o (format from the extension, '-', umask, mode, FIFOs, symlinks, folders),
--rules everywhere, required flags, did-you-mean, plain words, and control sequences cleaned
from everything shown (issue 14 point 3 and 5, issue 15 points 4, 5 and 8)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.terminal_session import ROOT, Session, base_env, console_script, interruptible

HOSTILE = ROOT / "tests" / "hostile" / "terminal"
CASE = ROOT / "examples" / "vertebral-fracture.yaml"
RAW = ("\x1b", "\x07", "\u202e", "\u202c", "\x9b", "\r")


@pytest.fixture
def env(tmp_path, fixture_rules, fixture_seeds):
    return base_env(tmp_path, CNO_PATHWAY_RULES=str(fixture_rules),
                    CNO_PATHWAY_SEEDS=str(fixture_seeds))


@pytest.fixture
def real_env(tmp_path):
    """The built-in rule base and evidence."""
    return base_env(tmp_path)


def run(args, env, *, cwd=None, stdin=None, stdout=subprocess.PIPE, shell_prefix=None, timeout=120):
    command = [console_script(), *map(str, args)]
    if shell_prefix:  # e.g. 'exec "$@" >&-': the stream closed before we start
        command = ["sh", "-c", shell_prefix, "sh", *command]
    return subprocess.run(command, env=env, cwd=str(cwd or ROOT), stdin=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=timeout)


def consult_text(env) -> bytes:
    """The text consult of CASE as standard output gets it: what every -o target must hold."""
    proc = run(["consult", CASE], env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def one_line_error(proc, code: int) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cno-pathway: error: "), err
    return lines[0]


def assert_clean(text: str) -> None:
    for char in RAW:
        assert char not in text, (char, text[:500])


# -- colour ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, args, coloured", [
    ({}, [], True),
    ({"NO_COLOR": "1"}, [], False),
    ({"TERM": "dumb"}, [], False),
    ({}, ["--no-color"], False),
    ({"NO_COLOR": "1"}, ["--color"], True),
])
def test_colour_on_a_terminal_follows_the_conventions(tmp_path, env, extra, args, coloured):
    env.update(extra)
    session = Session(["consult", CASE, "--no-pager", *args], env=env, cwd=tmp_path,
                      stdout_on_terminal=True)
    code, terminal, _ = session.finish()
    assert code == 0, terminal
    assert "vertebral-fracture" in terminal  # the consult, which names its profile
    assert ("\x1b[" in terminal) is coloured


def test_color_forces_colour_into_a_pipe_and_none_by_default(env):
    assert b"\x1b[" in run(["consult", CASE, "--color"], env).stdout
    assert b"\x1b[" in run(["--color", "consult", CASE], env).stdout  # on the main command too
    assert b"\x1b[" not in run(["consult", CASE], env).stdout


# -- pager ----------------------------------------------------------------------------------------

@pytest.fixture
def pager(tmp_path):
    script = tmp_path / "pager.sh"
    script.write_text("#!/bin/sh\necho PAGER-RAN\ncat\n", encoding="utf-8")
    script.chmod(0o755)
    return str(script)


def test_long_text_is_paged_on_a_terminal_only(tmp_path, env, pager):
    env["PAGER"] = pager
    paged = Session(["consult", CASE], env=env, cwd=tmp_path, stdout_on_terminal=True)
    code, terminal, _ = paged.finish()
    assert code == 0 and "PAGER-RAN" in terminal and "vertebral-fracture" in terminal
    unpaged = Session(["consult", CASE, "--no-pager"], env=env, cwd=tmp_path,
                      stdout_on_terminal=True)
    code, terminal, _ = unpaged.finish()
    assert code == 0 and "PAGER-RAN" not in terminal and "vertebral-fracture" in terminal
    piped = run(["consult", CASE], env)
    assert piped.returncode == 0 and b"PAGER-RAN" not in piped.stdout


# -- Ctrl-C ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["consult", "-"], ["consult", "-i"], ["batch", "-"]])
def test_ctrl_c_exits_130(env, args):
    proc = subprocess.Popen([console_script(), *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=interruptible)
    time.sleep(1.5)  # any moment will do: importing, or waiting for standard input
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err


# -- standard streams -----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["consult", CASE], ["rules", "list"], ["evidence", "list"],
                                  ["cases", "list"], ["rules", "show", "CNO-FL-NAPROXEN"],
                                  ["--help"], ["consult", "--help"], ["--version"]])
def test_a_full_stdout_is_one_line_and_exit_1(env, args):
    with open("/dev/full", "wb") as full:
        proc = run(args, env, stdout=full)
    assert "No space left" in one_line_error(proc, 1)


def test_a_closed_stdout_is_one_line_and_exit_1(env, tmp_path):
    proc = run(["consult", CASE], env, shell_prefix='exec "$@" >&-')
    assert "standard output is closed" in one_line_error(proc, 1)
    helped = run(["consult", "--help"], env, shell_prefix='exec "$@" >&-')
    assert "standard output is closed" in one_line_error(helped, 1)
    out = tmp_path / "c.txt"
    to_file = run(["consult", CASE, "-o", out], env, shell_prefix='exec "$@" >&-')
    assert to_file.returncode == 0 and out.read_bytes() == consult_text(env)


def test_a_closed_stdin_is_one_line(env):
    proc = run(["consult", "-"], env, shell_prefix='exec "$@" <&-')
    assert "standard input" in one_line_error(proc, 2)
    interview = run(["consult", "-i"], env, shell_prefix='exec "$@" <&-')
    err = interview.stderr.decode()
    assert interview.returncode == 1 and "Traceback" not in err
    assert err.splitlines()[-1].endswith("cno-pathway: error: standard input is closed")


@pytest.mark.parametrize("extra", [{"PYTHONIOENCODING": "ascii"},
                                   {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
                                    "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}])
def test_output_is_utf8_whatever_the_locale(real_env, extra):
    expected = run(["consult", CASE], real_env).stdout
    assert not expected.isascii()  # the consult has dashes and symbols to get wrong
    proc = run(["consult", CASE], dict(real_env, **extra))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected
    error = run(["cases", "show", "vertébral"], dict(real_env, **extra))
    assert "vertébral" in one_line_error(error, 2)


# -- -o -------------------------------------------------------------------------------------------

def test_an_extension_it_cannot_write_is_refused(env, tmp_path):
    for name in ("c.pdf", "c.docx"):
        proc = run(["consult", CASE, "-o", tmp_path / name], env)
        assert ".txt" in one_line_error(proc, 2) and name[1:] in proc.stderr.decode()
        assert not (tmp_path / name).exists()
    demo = run(["demo", "steroid-relapse", "-o", tmp_path / "d.json"], env)
    one_line_error(demo, 2)
    diagram = run(["pathway", "-o", tmp_path / "p.png"], env)
    assert ".svg" in one_line_error(diagram, 2)


def test_the_extension_chooses_the_format(env, tmp_path):
    for name, check in (("c.json", lambda t: json.loads(t)["schema"]), ("c.md", lambda t: t.startswith("#")),
                        ("c.html", lambda t: "<html" in t)):
        assert run(["consult", CASE, "-o", tmp_path / name], env).returncode == 0
        assert check((tmp_path / name).read_text(encoding="utf-8")), name


def test_dash_is_standard_output(env, tmp_path):
    proc = run(["consult", CASE, "-o", "-", "-f", "json"], env, cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["schema"]
    assert not (tmp_path / "-").exists()


def _umask_run(args, env, mask: str):
    return run(args, env, shell_prefix=f'umask {mask}; exec "$@"')


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(env, tmp_path):
    out = tmp_path / "c.txt"
    assert _umask_run(["consult", CASE, "-o", out], env, "022").returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    other = tmp_path / "d.txt"
    assert _umask_run(["consult", CASE, "-o", other], env, "077").returncode == 0
    assert stat.S_IMODE(other.stat().st_mode) == 0o600
    out.chmod(0o604)
    out.write_text("old", encoding="utf-8")
    assert _umask_run(["consult", CASE, "-o", out], env, "077").returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o604
    assert out.read_bytes() == consult_text(env)
    saved = tmp_path / "p.yaml"
    assert _umask_run(["consult", "--age", "10", "--diagnosis", "cno", "--lesions", "1",
                       "--save", saved, "-o", tmp_path / "e.txt"], env, "022").returncode == 0
    assert stat.S_IMODE(saved.stat().st_mode) == 0o644


def test_a_symlink_and_a_folder_are_refused(env, tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep me", encoding="utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert "symbolic link" in one_line_error(run(["consult", CASE, "-o", link], env), 2)
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "keep me"
    folder = tmp_path / "out.txt"
    folder.mkdir()
    proc = run(["consult", CASE, "-o", folder], env)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr and folder.is_dir()


def test_a_fifo_is_written_through(env, tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    received = {}

    def reader():
        with open(fifo, "rb") as stream:
            received["data"] = stream.read()

    thread = threading.Thread(target=reader)
    thread.start()
    proc = run(["consult", CASE, "-o", fifo], env)
    thread.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert received["data"] == consult_text(env)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not replaced by a file


def test_a_device_is_written_through(env):
    proc = run(["consult", CASE, "-o", "/dev/null"], env)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_a_hard_linked_file_keeps_its_links(env, tmp_path):
    out = tmp_path / "c.txt"
    out.write_text("old", encoding="utf-8")
    twin = tmp_path / "twin.txt"
    os.link(out, twin)
    assert run(["consult", CASE, "-o", out], env).returncode == 0
    assert twin.read_bytes() == consult_text(env)
    assert os.path.samefile(out, twin)


# -- --rules, required flags, did-you-mean, plain words -------------------------------------------

def test_every_rules_command_takes_rules(env, tmp_path, fixture_rules):
    del env["CNO_PATHWAY_RULES"]
    for args in (["lint"], ["test"], ["list"], ["show", "CNO-FL-NAPROXEN"], ["coverage"]):
        proc = run(["rules", *args, "--rules", fixture_rules], env)
        assert b"Traceback" not in proc.stderr and proc.returncode in (0, 1), (args, proc.stderr)
        assert b"no such option" not in proc.stderr.lower()
    listed = run(["rules", "list", "--rules", fixture_rules], env).stdout.decode()
    assert "CNO-FL-NAPROXEN" in listed and "7 rules (7 active)" in listed
    both = run(["rules", "lint", str(ROOT / "rules"), "--rules", fixture_rules], env)
    assert both.returncode == 2 and b"once" in both.stderr


def test_help_names_the_required_flags_and_the_error_their_values(env):
    help_text = run(["consult", "--help"], env).stdout.decode()
    options = help_text[help_text.index("Options:"):]
    for flag in ("--age", "--diagnosis", "--lesions"):
        entry = " ".join(options[options.index(f"  {flag} "):].split()[:14])
        assert "[required with flags]" in entry, (flag, entry)
    assert "[required" not in " ".join(options[options.index("  --sex "):].split()[:8])
    message = one_line_error(run(["consult", "--age", "10", "--lesions", "1"], env), 2)
    assert "--diagnosis" in message
    for value in ("cno", "crmo", "sapho", "suspected"):
        assert value in message


def test_did_you_mean_for_field_names_flags_commands_and_ids(env, tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("age_years: 10\nweigth_kg: 30\ndiagnosis: cno\nlesions: {count: 1}\n",
                       encoding="utf-8")
    assert "did you mean weight_kg" in one_line_error(run(["consult", profile], env), 2)
    flag = run(["consult", CASE, "--weigth", "30"], env)
    assert flag.returncode == 2 and b"--weight" in flag.stderr
    command = run(["rulez"], env)
    assert command.returncode == 2 and b"did you mean rules" in command.stderr
    sub = run(["rules", "lnit"], env)
    assert sub.returncode == 2 and b"did you mean" in sub.stderr and b"lint" in sub.stderr
    rule = one_line_error(run(["rules", "show", "CNO-MON-MRX"], env), 2)
    assert "did you mean CNO-MON-MRI" in rule
    case = one_line_error(run(["cases", "show", "vertebral"], env), 2)
    assert "did you mean vertebral-fracture" in case


def test_cases_run_names_missing_and_extra_rules(env):
    proc = run(["cases", "run", "vertebral-fracture"], env)  # the fixture rule base
    assert proc.returncode == 0
    note = proc.stderr.decode()
    assert "missing" in note and "extra" in note and "CNO-" in note
    assert "['" not in note and "[]" not in note  # no Python lists


# -- control sequences, everywhere ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["escape-in-key.yaml", "escape-in-value.yaml"])
def test_error_messages_are_cleaned(env, name):
    proc = run(["consult", HOSTILE / name], env)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    assert_clean(proc.stderr.decode())


def test_a_hostile_profile_id_is_cleaned_in_every_output(env, tmp_path):
    for fmt in ("text", "markdown", "html", "json"):
        proc = run(["consult", HOSTILE / "escape-in-id.yaml", "-f", fmt], env)
        assert proc.returncode == 0, proc.stderr
        assert_clean(proc.stdout.decode())


def test_rules_list_and_show_are_cleaned(env, tmp_path, fixture_rules):
    rules = tmp_path / "rules"
    shutil.copytree(fixture_rules, rules)
    shutil.copy(HOSTILE / "rule-escape-title.yaml", rules / "60-hostile.yaml")
    del env["CNO_PATHWAY_RULES"]
    for args in (["list"], ["show", "CNO-X-TERM"], ["list", "--format", "json"],
                 ["show", "CNO-X-TERM", "--format", "json"], ["lint"]):
        proc = run(["rules", *args, "--rules", rules], env)
        assert b"Traceback" not in proc.stderr
        assert_clean(proc.stdout.decode() + proc.stderr.decode())
    shown = run(["rules", "show", "CNO-X-TERM", "--rules", rules], env)
    assert shown.returncode == 0 and b"Terminal" in shown.stdout


@pytest.mark.parametrize("args", [["rules", "show", "\x1b]0;owned\x07\u202eX"],
                                  ["evidence", "show", "\x1b[2J\u202eX"],
                                  ["evidence", "show", "x#\x1b[2J"],
                                  ["cases", "show", "\x1b]8;;javascript:x\x07"],
                                  ["\x1b[31mconsult"]])
def test_typed_arguments_are_cleaned_in_errors(env, args):
    proc = run(args, env)
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr
    assert_clean(proc.stderr.decode())


def test_a_full_disk_behind_o_is_one_line_and_exit_1(env):
    proc = run(["consult", CASE, "-o", "/dev/full"], env)
    assert "No space left" in one_line_error(proc, 1)


def test_colour_keeps_only_our_colour_codes(env):
    proc = run(["consult", HOSTILE / "escape-in-id.yaml", "--color"], env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "\x1b[" in text  # our colours
    import re

    without_colours = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert_clean(without_colours)


# -- the helpers themselves -----------------------------------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402

from cno_pathway.terminal import (clean, clean_keeping_colour, clean_line, did_you_mean,  # noqa: E402
                                  json_safe, plural)

FORBIDDEN = set(map(chr, range(0x00, 0x20))) - {"\n", "\t"} | set(map(chr, range(0x7f, 0xa0))) \
    | {"\u061c", "\u200e", "\u200f"} | set(map(chr, range(0x202a, 0x202f))) \
    | set(map(chr, range(0x2066, 0x206a)))


@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(sorted(FORBIDDEN))))
def test_clean_leaves_nothing_a_terminal_acts_on(text):
    cleaned = clean(text)
    assert not set(cleaned) & FORBIDDEN
    assert clean(cleaned) == cleaned
    assert "\n" not in clean_line(text) and not set(clean_line(text)) & FORBIDDEN


@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(sorted(FORBIDDEN) + ["[", "]", "\\"])))
def test_clean_takes_its_shortcut_only_where_the_substitutions_change_nothing(text):
    """clean() returns text with no control character as it is: the same as removing every
    escape sequence and then every control character (each sequence starts with one)."""
    from cno_pathway.terminal import _CONTROL, _SEQUENCE

    assert clean(text) == _CONTROL.sub("", _SEQUENCE.sub("", text))
    assert clean("é " + text) == _CONTROL.sub("", _SEQUENCE.sub("", "é " + text))


@given(st.text())
def test_json_safe_means_the_same_json(text):
    encoded = json.dumps({"v": text}, ensure_ascii=False)
    safe = json_safe(encoded)
    assert json.loads(safe) == {"v": text}
    assert not set(safe) & FORBIDDEN


def test_the_helpers_in_examples():
    assert clean("a\x1b]0;title\x07b\x1b[31mc\u202ed\r\n") == "abcd\n"
    assert clean_keeping_colour("\x1b[1mbold\x1b[0m\x1b]8;;x\x07\u202e") == "\x1b[1mbold\x1b[0m"
    assert plural(1, "error") == "1 error" and plural(0, "error") == "0 errors"
    assert plural(2, "teaching case") == "2 teaching cases"
    assert did_you_mean("CNO-MON-MRX", ["CNO-MON-MRI", "CNO-FL-NAPROXEN"]) == \
        "; did you mean CNO-MON-MRI?"
    assert did_you_mean("zzzz", ["CNO-MON-MRI"]) == ""
    assert did_you_mean("x" * 10_000 + "MRI", ["CNO-MON-MRI"]) == ""  # bounded, no hang
