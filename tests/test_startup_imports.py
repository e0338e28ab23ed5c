"""What a consult process imports (issue 17, start-up): the consult's own modules, never the
FHIR models, the service, the interview, the teaching or authoring tools, nor modules only an
error message needs, unless the command uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, sys
sys.argv = ["cno-pathway", *sys.argv[1:]]
from cno_pathway.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(sys.modules)))
"""
NEVER_FOR_A_CONSULT = ("cno_pathway.patient.interview", "cno_pathway.interop.fhir",
                       "cno_pathway.interop.server", "cno_pathway.interop.cdshooks",
                       "cno_pathway.interop.webform", "cno_pathway.teaching",
                       "cno_pathway.authoring", "cno_pathway.consult.batch",
                       "cno_pathway.consult.parallel", "cno_pathway.consult.cluster",
                       "cno_pathway.knowledge.formulary",   # without a formulary
                       "fhir", "fastapi", "uvicorn", "jwt", "dask", "distributed", "difflib")


def _modules(*args) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNO_PATHWAY_")}
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                            timeout=120, env=env, cwd=str(ROOT))
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def _imported(modules: set[str], prefix: str) -> bool:
    return any(m == prefix or m.startswith(prefix + ".") for m in modules)


def test_a_consult_imports_only_what_it_uses():
    modules = _modules("consult", str(ROOT / "examples" / "typical-multifocal.yaml"))
    assert "cno_pathway.consult.consult" in modules and "cno_pathway.consult.render" in modules
    found = [name for name in NEVER_FOR_A_CONSULT if _imported(modules, name)]
    assert not found, f"a consult imported {found}"


def test_the_formulary_reader_is_imported_with_a_formulary(tmp_path):
    formulary = tmp_path / "formulary.yaml"
    formulary.write_text("name: Test formulary\nmaxima:\n  - drug: naproxen\n    max_mg: 1000\n"
                         "    per: day\n    reference: Test reference\n", encoding="utf-8")
    modules = _modules("consult", str(ROOT / "examples" / "typical-multifocal.yaml"),
                       "--formulary", str(formulary))
    assert "cno_pathway.knowledge.formulary" in modules


def test_the_interview_is_imported_when_it_is_used():
    modules = _modules("consult", "--interactive")   # standard input is empty: it stops at once
    assert "cno_pathway.patient.interview" in modules


def test_a_misspelt_command_still_suggests_one():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNO_PATHWAY_")}
    result = subprocess.run([sys.executable, "-m", "cno_pathway", "consul"], capture_output=True,
                            text=True, timeout=120, env=env, cwd=str(ROOT))
    assert result.returncode == 2 and "did you mean consult" in result.stderr
