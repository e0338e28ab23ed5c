"""`cno-pathway batch`: JSON Lines in, consults out; bad lines reported and skipped."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cno_pathway.consult.batch import BatchResult, run_batch
from cno_pathway.cli import main

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
    lines = [(GOOD + "\n").encode()] * 50
    seen = []
    result = run_batch(fixture_pathway, iter(lines), "mem", on_result=lambda c: seen.append(1),
                       on_error=lambda e: None, summary=BatchResult())
    assert result.ok == 50 and result.failed == 0
    assert result.stages["treatment_naive"] == 50
    assert len(seen) == 50
