"""The evidence library: loader, its error cases, the quote check, and `evidence list|show`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.errors import EvidenceError
from cno_pathway.knowledge.evidence import load_library

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"
CHECK_QUOTES = SHARED / "tools" / "check-quotes"


@pytest.fixture(scope="module")
def library():
    return load_library(SEEDS)


def test_every_source_document_has_a_record(library):
    documents = {s.document for s in library.sources.values()}
    # the four documents of ../shared/seeds (there is no document 002)
    assert documents == {"000_40adb23acca94577.txt", "001_021a1284d49fb9cb.txt",
                         "003_471c3795e46ff34a.txt", "004_b2ef603fba89735b.txt"}
    for required in ("schnabel-2017", "pardeo-anakinra", "zhao-2020-mimickers", "inpharmd-tocilizumab",
                     "kaut-2022", "cam-2025", "sato-2017", "campbell-2018", "fujita-2015", "sun-2018",
                     "hedrich-2023-carra"):
        assert required in library.sources


def test_studies_known_through_the_summary_are_marked(library):
    for sid in ("kaut-2022", "cam-2025", "sato-2017", "campbell-2018", "fujita-2015", "sun-2018",
                "hedrich-2023-carra", "roberts-2024"):
        source = library.sources[sid]
        assert source.known_through == "inpharmd-tocilizumab"
        assert source.document == "004_b2ef603fba89735b.txt"
        assert "As reported in: InpharmD" in source.reference(library)


def test_design_and_quality_agree_with_the_scheme(library):
    grading = library.grading
    assert list(grading.grades) == ["A", "B", "C", "D"]
    for source in library.sources.values():
        assert source.quality == grading.designs[source.design], source.id
    assert library.sources["schnabel-2017"].quality == "C"
    assert library.sources["sato-2017"].quality == "D"
    assert library.sources["hedrich-2023-carra"].quality == "D"


def test_sixty_or_more_findings_with_quotes_and_locators(library):
    findings = library.findings()
    assert len(findings) >= 60
    for f in findings:
        assert f.quote and f.locator and f.statement


def test_resolve_citations(library):
    source, finding = library.resolve("schnabel-2017#prednisolone-dose")
    assert source.id == "schnabel-2017"
    assert "60 mg/day" in finding.quote
    with pytest.raises(KeyError, match="unknown source 'nope'"):
        library.resolve("nope#x")
    with pytest.raises(KeyError, match="has no finding 'nope'"):
        library.resolve("schnabel-2017#nope")


@pytest.mark.skipif(not CHECK_QUOTES.exists(), reason="../shared/tools/check-quotes is absent "
                    "(a fresh clone without ../shared): the quote check runs in CI")
def test_every_quote_stands_verbatim_in_the_sources():
    proc = subprocess.run([sys.executable, str(CHECK_QUOTES), str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    found, total = proc.stdout.strip().splitlines()[-1].split(" of ")[0], \
        proc.stdout.strip().splitlines()[-1].split(" of ")[1].split()[0]
    assert found == total and int(total) >= 60


# -- loader errors ------------------------------------------------------------------------------

@pytest.fixture
def seeds_copy(tmp_path):
    target = tmp_path / "seeds"
    shutil.copytree(ROOT / "tests" / "fixtures" / "seeds", target)
    return target


def _edit(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, message, marker", [
    ("n: 10\n", "n: 10\nsample: 3\n", "unknown key 'sample'", "sample: 3"),
    ("quality: C", "quality: B", "quality 'B' disagrees with design 'retrospective_cohort'", "quality: B"),
    ("design: retrospective_cohort", "design: anecdote", "design 'anecdote' is not in grading.yaml",
     "design: anecdote"),
    ("  - id: naproxen-dose", "  - id: nsaid-works", "duplicate finding id 'nsaid-works'", None),
    ("    locator: Methods", "    locator: Methods\n    page: 3", "unknown key 'page' in a finding", "page: 3"),
    ("id: fixture-cohort", "id: other-name", "must equal the file name", "id: other-name"),
    ("    topic: nsaid\n    statement: Naproxen", "    topic: dosing\n    statement: Naproxen",
     "topic 'dosing' is not in grading.yaml", "topic: dosing"),
    ("n: 10", "n: ten", "n must be a whole number", "n: ten"),
])
def test_loader_errors_name_file_and_line(seeds_copy, old, new, message, marker):
    path = seeds_copy / "fixture-cohort.yaml"
    _edit(path, old, new)
    lines = path.read_text().splitlines()
    if marker is None:  # the second finding with that id: its line
        marker_line = [i for i, text in enumerate(lines, 1) if text == "  - id: nsaid-works"][1]
    else:
        marker_line = next(i for i, text in enumerate(lines, 1) if text.strip() == marker)
    with pytest.raises(EvidenceError) as info:
        load_library(seeds_copy)
    assert message in str(info.value)
    assert info.value.file == "seeds/fixture-cohort.yaml"
    assert info.value.line == marker_line


def test_known_through_must_name_a_source(seeds_copy):
    _edit(seeds_copy / "fixture-case.yaml", "design: case_report", "known_through: ghost\ndesign: case_report")
    with pytest.raises(EvidenceError, match="known_through names unknown source 'ghost'"):
        load_library(seeds_copy)


def test_grading_errors(seeds_copy):
    _edit(seeds_copy / "grading.yaml", "case_report: D", "case_report: E")
    with pytest.raises(EvidenceError, match="design 'case_report' earns unknown grade 'E'") as info:
        load_library(seeds_copy)
    assert info.value.file == "seeds/grading.yaml"


# -- the commands -------------------------------------------------------------------------------

def test_evidence_list_text_and_json():
    runner = CliRunner()
    text = runner.invoke(main, ["evidence", "list"])
    assert text.exit_code == 0
    assert "schnabel-2017" in text.output and "retrospective_cohort" in text.output
    assert "AAP evidence quality" in text.output
    data = json.loads(runner.invoke(main, ["evidence", "list", "--format", "json"]).output)
    by_id = {s["id"]: s for s in data["sources"]}
    assert by_id["schnabel-2017"]["n"] == 56 and by_id["schnabel-2017"]["findings"] >= 40
    assert by_id["sun-2018"]["known_through"] == "inpharmd-tocilizumab"


def test_evidence_show_source_and_finding():
    runner = CliRunner()
    result = runner.invoke(main, ["evidence", "show", "pardeo-anakinra"])
    assert result.exit_code == 0
    assert "pardeo-anakinra#anakinra-dose" in result.output and "2 mg/kg/day" in result.output
    one = json.loads(runner.invoke(main, ["evidence", "show", "schnabel-2017#pamidronate-schedule",
                                          "--format", "json"]).output)
    assert [f["id"] for f in one["findings"]] == ["pamidronate-schedule"]
    assert "0.5 mg/kg" in one["findings"][0]["quote"]


@pytest.mark.parametrize("ident, message", [("nobody", "unknown source"),
                                            ("schnabel-2017#nothing", "has no finding 'nothing'")])
def test_evidence_show_unknown_is_exit_2(ident, message):
    result = CliRunner().invoke(main, ["evidence", "show", ident])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
