"""`cno-pathway batch`: JSON Lines in, consults out; bad lines reported and skipped; lines
limited while read; Ctrl-C and a closed output end with the counts and the right status;
`--jobs N` writes the same bytes as one process, and a worker that dies costs only its lines."""

from __future__ import annotations

import json

from click.testing import CliRunner

import io
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest

from cno_pathway.cli import main
from cno_pathway.consult import parallel
from cno_pathway.consult.batch import (GAVE_UP, MAX_LINE_BYTES, TOO_LONG, BatchResult, LineReader,
                                       run_batch)

GOOD = '{"id": "a", "age_years": 10, "diagnosis": "cno", "lesions": {"count": 3}}'
REFRACTORY = ('{"id": "b", "age_years": 11, "diagnosis": "cno", "lesions": {"count": 3}, '
              '"treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}')


def test_batch_writes_one_consult_per_line(fixture_env, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text(GOOD + "\n\n" + REFRACTORY + "\n")
    result = CliRunner().invoke(main, ["batch", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [c["profile"]["id"] for c in lines] == ["a", "b"]
    assert lines[0]["schema"] == "cno-pathway/consult/1"
    assert "nsaid_refractory" in lines[1]["stage"]


def test_bad_lines_are_reported_with_their_number_and_the_others_go_on(fixture_env, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_bytes("\n".join([
        GOOD,
        "not json",
        '{"age_years": 10, "diagnosis": "cno", "lesions": {"count": 3}, "age_years": 11}',
        '{"age_years": NaN, "diagnosis": "cno", "lesions": {"count": 3}}',
        '{"age_years": 10, "diagnosis": "cno", "lesions": {"count": 3}, "treatments": '
        '[{"drug": "naproxin", "months": 1, "response": "none"}]}',
        REFRACTORY,
    ]).encode() + b"\n\xff\xfe\n")
    result = CliRunner().invoke(main, ["batch", str(path)])
    assert result.exit_code == 2
    assert len(result.stdout.splitlines()) == 2
    err = result.stderr
    assert f"{path}:2: not a JSON profile" in err
    assert f"{path}:3: not a JSON profile: duplicate key 'age_years'" in err
    assert f"{path}:4:" in err and "NaN" in err
    assert f"{path}:5: treatments[0].drug: unknown drug 'naproxin'; did you mean naproxen?" in err
    assert f"{path}:7: not valid UTF-8" in err
    assert "5 of 7 lines failed" in err
    assert "Traceback" not in result.output


def test_stdin_and_summary(fixture_env):
    result = CliRunner().invoke(main, ["batch", "-", "--summary"], input=GOOD + "\n" + REFRACTORY + "\n")
    assert result.exit_code == 0, result.output
    assert "profiles consulted: 2" in result.stdout
    assert "treatment_naive" in result.stdout and "nsaid_refractory" in result.stdout
    assert "CNO-MON-MRI" in result.stdout


def test_run_batch_keeps_only_counters(fixture_pathway):
    lines = [(n, (GOOD + "\n").encode()) for n in range(1, 51)]
    seen = []
    result = run_batch(fixture_pathway, iter(lines), "mem", emit=seen.append, write_json=False)
    assert result.ok == 50 and result.failed == 0
    assert result.stages["treatment_naive"] == 50
    assert len(seen) == 50 and all(o.payload is None for o in seen)


# -- lines are limited while they are read ------------------------------------------------------

class _Endless(io.RawIOBase):
    """An endless stream of one byte (like /dev/zero), counting what was asked of it."""

    def __init__(self, byte=b"\0"):
        self.byte, self.given, self.largest = byte, 0, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        size = len(buffer)
        buffer[:size] = self.byte * size
        self.given += size
        self.largest = max(self.largest, size)
        return size


def test_a_line_without_end_is_refused_while_read_not_after():
    stream = _Endless()
    reader = LineReader(io.BufferedReader(stream), limit=1000, skip_limit=100_000)
    assert list(reader) == [(1, GAVE_UP)]
    assert stream.given < 200_000          # read in bounded steps, then given up


def test_an_over_long_line_is_skipped_and_the_next_one_read():
    data = b'{"a": 1}\n' + b"x" * 5000 + b"\n\n" + b'{"b": 2}\n'
    reader = LineReader(io.BufferedReader(io.BytesIO(data)), limit=1000)
    assert list(reader) == [(1, b'{"a": 1}\n'), (2, TOO_LONG), (4, b'{"b": 2}\n')]
    assert reader.consumed == len(data)


def test_a_line_at_the_limit_is_read():
    line = b"x" * 1000 + b"\n"
    assert list(LineReader(io.BytesIO(line), limit=1000)) == [(1, line)]
    assert list(LineReader(io.BytesIO(line[:-1] + b"y\n"), limit=1000)) == [(1, TOO_LONG)]


def test_batch_dev_zero_ends_with_a_message_in_bounded_memory(fixture_env, tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero on this system")
    code = ("import resource, subprocess, sys;"
            "p = subprocess.run([sys.executable, '-m', 'cno_pathway', 'batch', '/dev/zero', "
            "'--jobs', '1'], capture_output=True, text=True, timeout=120);"
            "print(p.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
            "print(p.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=150, env=dict(os.environ, **fixture_env))
    status, peak_kib, err = proc.stdout.split("\n", 2)
    assert status == "2", err
    assert f"/dev/zero:1: line longer than {MAX_LINE_BYTES} bytes and no line end" in err
    assert "Traceback" not in err
    assert int(peak_kib) < 300 * 1024      # about 70 MiB; unbounded reading took 4 GB


def test_an_over_long_line_is_reported_and_the_others_consulted(fixture_env, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + b" " * (MAX_LINE_BYTES + 10) + b"x\n"
                     + REFRACTORY.encode() + b"\n")
    result = CliRunner().invoke(main, ["batch", str(path), "--jobs", "1"])
    assert result.exit_code == 2
    assert [json.loads(line)["profile"]["id"] for line in result.stdout.splitlines()] == ["a", "b"]
    assert f"{path}:2: line longer than {MAX_LINE_BYTES} bytes; skipped" in result.stderr
    assert "1 of 3 lines failed" in result.stderr


def test_json_numbers_with_an_exponent_are_numbers(fixture_env, tmp_path):
    """JSON (RFC 8259) writes 10 as 1e1 too; a line is read as JSON, whatever YAML would do."""
    path = tmp_path / "cohort.jsonl"
    path.write_text(GOOD.replace('"age_years": 10', '"age_years": 1e1') + "\n"
                    + GOOD.replace('"age_years": 10', '"age_years": 01') + "\n")
    result = CliRunner().invoke(main, ["batch", str(path), "--jobs", "1"])
    assert result.exit_code == 2
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["profile"]["age_years"] == 10
    assert f"{path}:2: not a JSON profile" in result.stderr   # a leading zero is not JSON


# -- Ctrl-C and a closed output -----------------------------------------------------------------

def _cohort(vocab, gen, n, seed=3, bad_every=0):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        data = gen.profile(rng, vocab)
        data["id"] = f"p{i}"
        lines.append(json.dumps(data) if not (bad_every and i % bad_every == 1) else "{broken")
    return "\n".join(lines) + "\n"


def _rest(proc, timeout=60):
    """The rest of stdout through the same buffered reader that readline() used (communicate()
    would read the pipe directly and lose what readline had buffered), then stderr."""
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=timeout)
    return out, err


def _cli(*args):
    return [sys.executable, "-m", "cno_pathway", *args]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_finishes_the_line_under_way_prints_the_counts_and_exits_130(
        fixture_env, vocab, gen, jobs):
    env = dict(os.environ, **fixture_env)
    proc = subprocess.Popen(_cli("batch", "-", "--jobs", jobs), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdin.write(("{broken\n" + _cohort(vocab, gen, 40)).encode())
    proc.stdin.flush()                        # stdin stays open: the batch waits for more
    first = b"".join(proc.stdout.readline() for _ in range(40))   # all consulted; it waits
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.stdin.close()
    out, err = _rest(proc)
    assert proc.returncode == 130, err
    text = err.decode()
    lines = (first + out).decode().splitlines()
    assert len(lines) == 40 and all(json.loads(line)["schema"] for line in lines)
    assert (first + out).endswith(b"\n")
    assert "<stdin>:1: not a JSON profile" in text
    assert "interrupted after 41 lines (40 consulted, 1 failed)" in text
    assert "Traceback" not in text


def test_ctrl_c_in_the_middle_of_a_file_keeps_whole_lines(fixture_env, vocab, gen, tmp_path):
    path = tmp_path / "cohort.jsonl"
    # 40,000 lines: far more than a fast machine consults in the half second before Ctrl-C
    path.write_text(_cohort(vocab, gen, 40) * 1000)
    env = dict(os.environ, **fixture_env)
    proc = subprocess.Popen(_cli("batch", str(path), "--jobs", "1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.readline()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = _rest(proc)
    assert proc.returncode == 130
    lines = out.decode().splitlines()
    assert 0 < len(lines) < 39999 and all(json.loads(line) for line in lines)
    assert out.endswith(b"\n")
    assert b"interrupted after " in err


def test_a_closed_output_after_failed_lines_exits_non_zero(fixture_env, vocab, gen, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text("{broken\n" + _cohort(vocab, gen, 40) * 20)
    env = dict(os.environ, **fixture_env)
    proc = subprocess.Popen(_cli("batch", str(path), "--jobs", "1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.readline()
    proc.stdout.close()                      # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 2
    assert "output closed; 1 of" in err and "Traceback" not in err


def test_a_closed_output_without_failures_exits_0(fixture_env, vocab, gen, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text(_cohort(vocab, gen, 40) * 20)
    env = dict(os.environ, **fixture_env)
    proc = subprocess.Popen(_cli("batch", str(path), "--jobs", "2"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


# -- progress -----------------------------------------------------------------------------------

def test_progress_shows_count_rate_share_and_time_left(fixture_env, tmp_path, monkeypatch):
    from cno_pathway.commands import batch as command

    path = tmp_path / "cohort.jsonl"
    path.write_text((GOOD + "\n") * 4)
    clock = iter(range(0, 1000))
    monkeypatch.setattr(command.time, "monotonic", lambda: float(next(clock)))
    result = CliRunner().invoke(main, ["batch", str(path), "--jobs", "1", "--progress"])
    assert result.exit_code == 0
    assert "lines, " in result.stderr and "/s" in result.stderr and "% " not in result.stderr
    assert "100%, 0 s left" in result.stderr
    assert "25%" not in result.stderr or "left" in result.stderr


def test_no_progress_when_standard_error_is_not_a_terminal(fixture_env, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text((GOOD + "\n") * 4)
    result = CliRunner().invoke(main, ["batch", str(path), "--jobs", "1"])
    assert result.exit_code == 0 and result.stderr == ""


# -- --jobs -------------------------------------------------------------------------------------

def test_jobs_write_the_same_bytes_as_one_process(fixture_env, vocab, gen, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text(_cohort(vocab, gen, 300, bad_every=37))
    runs = {}
    for jobs in ("1", "2", "3"):
        result = CliRunner().invoke(main, ["batch", str(path), "--jobs", jobs])
        assert result.exit_code == 2
        runs[jobs] = (result.stdout_bytes, result.stderr)
    assert runs["1"] == runs["2"] == runs["3"]
    assert len(runs["1"][0].splitlines()) == 300 - len(range(1, 300, 37))
    summaries = {jobs: CliRunner().invoke(main, ["batch", str(path), "--summary", "--jobs", jobs]).stdout
                 for jobs in ("1", "2")}
    assert summaries["1"] == summaries["2"] and "profiles consulted: 291" in summaries["1"]


def test_default_jobs_are_the_cores_this_process_may_use():
    assert parallel.available_cores() == len(os.sched_getaffinity(0))


def _crashing_on_crash():
    """consult_line, but a line holding "crash" kills its process (as a crash in the C engine
    would)."""
    real = parallel.consult_line

    def crashing(pathway, number, raw, source, **kw):
        if b"crash" in raw:
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(pathway, number, raw, source, **kw)
    return crashing


def test_a_worker_that_dies_costs_only_its_line(fixture_env, fixture_pathway, vocab, gen,
                                                 monkeypatch):
    """A line that kills its worker (as a crash in the C engine would) is reported as failed
    with the signal; every other line is consulted as by one process."""
    lines = [(n, line.encode()) for n, line in enumerate(
        _cohort(vocab, gen, 150).splitlines(), start=1)]
    lines[70] = (71, b'{"id": "crash"}\n')
    lines[120] = (121, b'{"id": "crash"}\n')
    monkeypatch.setattr(parallel, "consult_line", _crashing_on_crash())   # workers are forked
    got = []
    result = parallel.run_parallel(iter(lines), "c.jsonl", jobs=2, rules_dir=None, emit=got.append,
                                   chunk_lines=16)
    assert [o.number for o in got] == [n for n, _ in lines]
    errors = {o.number: o.error for o in got if o.error}
    assert set(errors) == {71, 121}
    assert "c.jsonl:71: the worker process consulting this line stopped (killed by SIGSEGV)" in errors[71]
    expected = run_batch(fixture_pathway, iter(lines[:70]), "c.jsonl", emit=lambda o: None)
    assert [o.payload for o in got[:70]] == [
        o.payload for o in (lambda out: (run_batch(fixture_pathway, iter(lines[:70]), "c.jsonl",
                                                   emit=out.append), out)[1])([])]
    assert result.ok == 148 and result.failed == 2 and expected.ok == 70


def test_forked_workers_take_the_parents_pathway_without_loading_it(fixture_env, fixture_pathway,
                                                                  vocab, gen, monkeypatch):
    """Forked workers (and one that replaces a dead worker) consult with their copy of the
    pathway the parent loaded: nothing loads the rule base again, and the bytes are those of
    one process."""
    if parallel._context().get_start_method() != "fork":
        pytest.skip("workers are forked only where the platform offers fork")
    lines = [(n, line.encode()) for n, line in enumerate(
        _cohort(vocab, gen, 60).splitlines(), start=1)]
    lines[30] = (31, b'{"id": "crash"}\n')
    def no_load(*args):
        raise AssertionError("a worker loaded the rule base")
    monkeypatch.setattr(parallel, "_load", no_load)
    monkeypatch.setattr(parallel, "consult_line", _crashing_on_crash())
    got = []
    result = parallel.run_parallel(iter(lines), "c.jsonl", jobs=2, rules_dir=None, emit=got.append,
                                   chunk_lines=8, pathway=fixture_pathway)
    assert result.ok == 59 and result.failed == 1 and "SIGSEGV" in got[30].error
    alone = []
    run_batch(fixture_pathway, iter(lines[:30] + lines[31:]), "c.jsonl", emit=alone.append)
    assert [o.payload for o in got if not o.error] == [o.payload for o in alone]


def test_workers_go_on_while_the_parent_writes(fixture_env, vocab, gen, monkeypatch):
    """A slow reader of the output holds up the parent, never the workers: each has its next
    chunk queued, and work is handed out before anything is written. The first write here waits
    until the workers have consulted three chunks; a parent that hands out work only after
    writing would leave them idle, and the wait would time out. (Handing out first, the worker
    whose chunk came back has two more queued: 4 + 8 lines at least, whatever the other worker
    does; the old loop reached at most 4 + 4.)"""
    import multiprocessing

    lines = [(n, line.encode()) for n, line in enumerate(
        _cohort(vocab, gen, 40).splitlines(), start=1)]
    done = multiprocessing.get_context("fork").Value("i", 0)
    real = parallel.consult_line

    def counting(pathway, number, raw, source, **kw):
        outcome = real(pathway, number, raw, source, **kw)
        with done.get_lock():
            done.value += 1
        return outcome

    monkeypatch.setattr(parallel, "consult_line", counting)   # forked workers see it
    waited = []

    def slow_reader(outcome):
        if not waited:
            deadline = time.monotonic() + 60
            while done.value < 12 and time.monotonic() < deadline:
                time.sleep(0.01)
            waited.append(done.value)
        got.append(outcome.number)
    got: list[int] = []
    parallel.run_parallel(iter(lines), "c.jsonl", jobs=2, rules_dir=None, emit=slow_reader,
                          chunk_lines=4)
    assert waited[0] >= 12, f"the workers stopped at {waited[0]} lines while the parent wrote"
    assert got == [n for n, _ in lines]


def test_a_batch_reads_its_input_in_flat_memory(fixture_env, vocab, gen, tmp_path):
    """The parent holds a few chunks, not the cohort: its peak memory does not grow with it."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    cohort = _cohort(vocab, gen, 200)
    small.write_text(cohort)
    large.write_text(cohort * 15)
    peaks = {}
    for path in (small, large):
        code = ("import resource, subprocess, sys;"
                f"subprocess.run([sys.executable, '-m', 'cno_pathway', 'batch', {str(path)!r}, "
                "'--jobs', '2', '--summary'], stdout=subprocess.DEVNULL, check=True);"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, env=dict(os.environ, **fixture_env), check=True)
        peaks[path.name] = int(proc.stdout)
    assert peaks["large.jsonl"] < peaks["small.jsonl"] * 1.25


def test_a_short_write_is_completed():
    """A buffered writer interrupted by a signal on a full pipe may take only part of a line
    (Ctrl-C lets the line under way finish, so nothing raises): the rest is written too.
    Without it, Ctrl-C cut the last line in about one run in five of the test above."""
    from cno_pathway.commands.batch import write_all

    class Stingy(io.RawIOBase):
        def __init__(self):
            self.got = bytearray()

        def writable(self):
            return True

        def write(self, data):
            taken = bytes(data[:7])
            self.got += taken
            return len(taken)
    out = Stingy()
    line = b'{"id":"p1","text":"' + b"x" * 100 + b'"}\n'
    write_all(out, line)
    assert bytes(out.got) == line
