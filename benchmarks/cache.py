"""What the document cache buys (issue 14): consult and `rules lint`, with and without it, as
ratios measured in one run, interleaved so the machine's load hits both alike.

    .venv/bin/python benchmarks/cache.py [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
COMMANDS = {"consult": ["consult", "examples/typical-multifocal.yaml"], "rules lint": ["rules", "lint"]}
LOAD = ("import time; t=time.perf_counter(); from cno_pathway.consult.consult import Pathway;"
        "t=time.perf_counter(); p=Pathway.load(); print(time.perf_counter()-t)")


def main(rounds: int) -> None:
    cache = tempfile.mkdtemp()
    variants = {"no cache": {"CNO_PATHWAY_CACHE": "off"}, "cache": {"CNO_PATHWAY_CACHE_DIR": cache}}
    runs: dict = {}
    for round_ in range(rounds + 1):  # round 0 fills the cache and is not counted
        for name, argv in list(COMMANDS.items()) + [("Pathway.load (in process)", None)]:
            for variant, extra in variants.items():
                env = {k: v for k, v in os.environ.items() if not k.startswith("CNO_PATHWAY_CACHE")}
                env.update(extra)
                command = [PY, "-m", "cno_pathway", *argv] if argv else [PY, "-c", LOAD]
                start = time.perf_counter()
                proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-2000:])
                if round_:
                    runs.setdefault((name, variant), []).append(float(proc.stdout) if argv is None else wall)
    for name in list(COMMANDS) + ["Pathway.load (in process)"]:
        off = statistics.median(runs[(name, "no cache")])
        on = statistics.median(runs[(name, "cache")])
        print(f"{name:26s} no cache {off * 1000:6.1f} ms   cache {on * 1000:6.1f} ms   ratio {on / off:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
