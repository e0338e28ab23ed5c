"""One consult as a whole process, at several revisions, against the bare import of the
dependencies, all interleaved in one run (issue 17, start-up): what each step bought.

Each revision is exported from git into a temporary folder (its templates compiled ahead of time
and its code byte-compiled, as `make install` does) and run with this checkout's interpreter and
dependencies, the export first on the path. The knowledge cache is a private one for this run,
warm (one run of each first), as any second consult on a machine finds it.

Usage: python benchmarks/startup_load.py [--runs N] [REV ...]   (default: main HEAD)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEPS = "import durable_rules_engine, pydantic, click, jinja2, yaml, orjson"


def export(rev: str, where: Path) -> Path:
    target = where / rev.replace("/", "_")
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    if (target / "cno_pathway" / "consult" / "precompile.py").is_file():
        subprocess.run([PY, "-m", "cno_pathway.consult.precompile"], env=env, check=True,
                       cwd=target, capture_output=True)
    subprocess.run([PY, "-m", "compileall", "-q", "cno_pathway"], env=env, check=True, cwd=target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("revs", nargs="*", default=["main", "HEAD"])
    args = parser.parse_args()
    example = str(ROOT / "examples" / "typical-multifocal.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"bare": ([PY, "-c", DEPS], None, None)}
        for rev in args.revs:
            target = export(rev, Path(tmp))
            env = dict(os.environ, PYTHONPATH=str(target), CNO_PATHWAY_CACHE_DIR=str(Path(tmp) / "cache"))
            # run from the export: `-m` puts the working folder first on the path
            commands[rev] = ([PY, "-m", "cno_pathway", "consult", example], env, target)
            subprocess.run(commands[rev][0], env=env, cwd=target, check=True,
                           stdout=subprocess.DEVNULL)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (command, env, cwd) in commands.items():
                start = time.perf_counter()
                subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
    bare = min(times["bare"]), statistics.median(times["bare"])
    for name, t in times.items():
        best, median = min(t), statistics.median(t)
        print(f"{name:>24}: best {best * 1000:6.1f} ms, median {median * 1000:6.1f} ms -> "
              f"{best / bare[0]:.2f}x bare (median {median / bare[1]:.2f}x)")


if __name__ == "__main__":
    main()
