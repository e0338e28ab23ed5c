"""rules/README.md lists every fact a condition may use, and only those, so the author guide
cannot drift from the code."""

from pathlib import Path

from cno_pathway.patient.facts import FACT_SCHEMA

README = Path(__file__).resolve().parent.parent / "rules" / "README.md"


def test_every_fact_is_documented():
    section = README.read_text().split("## Facts", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip().strip("`") for line in section.splitlines()
            if line.startswith("| `")]
    assert rows == list(FACT_SCHEMA)
