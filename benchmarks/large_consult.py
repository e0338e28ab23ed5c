"""Where the time of one consult goes, phase by phase, on the 51-rule base and on the generated
2,050-rule base of `run.py` (figure 3), the two processes interleaved.

Each run is a fresh process that does what `cno-pathway consult FILE [--rules DIR]` does, in
the same order, and reports the time of each phase: import (the command's modules), load
(Pathway.load: the cached knowledge read back and the engine built), profile (read and
validate), consult, render, write (cleaning and writing to /dev/null). The best of each phase
over the runs is shown, with the large base's time as a ratio of the small one's; the last
line gives the whole processes as `run.py` measures them (best of the runs, interleaved).

With --before REV (repeatable) the code of that revision (extracted with git archive, its own
knowledge cache) is measured in the same runs, phase by phase and as whole processes.

Usage: python benchmarks/large_consult.py [--runs N] [--count 2000] [--format text] [--before REV]
       python benchmarks/large_consult.py --profile [--rules DIR]   (cProfile, in-process)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
PY = sys.executable
EXAMPLE = str(ROOT / "examples/typical-multifocal.yaml")

# One consult as the command runs it, each phase timed; prints one JSON line.
_PHASES = r"""
import time, sys, os, json
t0 = time.perf_counter()
from pathlib import Path
from cno_pathway.commands.consult import consult  # the command's own imports
from cno_pathway.commands.common import load_pathway, write_output
from cno_pathway.consult.render import render_consult
from cno_pathway.patient.intake import profile_from_file
t1 = time.perf_counter()
rules = Path(sys.argv[2]) if sys.argv[2] != "-" else None
pathway = load_pathway(rules, None)
t2 = time.perf_counter()
patient = profile_from_file(sys.argv[1], pathway.vocabulary)
t3 = time.perf_counter()
result = pathway.consult(patient, explain=False)
t4 = time.perf_counter()
text = render_consult(result, sys.argv[3])
t5 = time.perf_counter()
sys.stdout = open(os.devnull, "w")
write_output(text, None, fmt=sys.argv[3])
t6 = time.perf_counter()
sys.stderr.write(json.dumps({"import": t1 - t0, "load": t2 - t1, "profile": t3 - t2,
                             "consult": t4 - t3, "render": t5 - t4, "write": t6 - t5}) + "\n")
"""

PHASES = ("import", "load", "profile", "consult", "render", "write")


def _phases(rules: str, fmt: str, tree: dict) -> dict[str, float]:
    proc = subprocess.run([PY, "-c", _PHASES, EXAMPLE, rules, fmt], capture_output=True,
                          text=True, check=True, **tree)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def _whole(rules: str, fmt: str, tree: dict) -> float:
    command = [PY, "-m", "cno_pathway", "consult", EXAMPLE, "-f", fmt]
    if rules != "-":
        command += ["--rules", rules]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **tree)
    return time.perf_counter() - start


def breakdown(rules: Path, runs: int, fmt: str, trees: dict[str, dict]) -> None:
    """trees: label -> subprocess keywords (cwd, env) of a code tree; all measured in turn."""
    bases = {"small": "-", "large": str(rules)}
    runs_of = [(label, name, base) for label in trees for name, base in bases.items()]
    for label, _, base in runs_of:       # warm: the parsed bases cached, as run.py does
        _whole(base, fmt, trees[label])
    phases: dict[tuple, list[dict]] = {(label, name): [] for label, name, _ in runs_of}
    whole: dict[tuple, list[float]] = {(label, name): [] for label, name, _ in runs_of}
    for _ in range(runs):
        for label, name, base in runs_of:
            phases[label, name].append(_phases(base, fmt, trees[label]))
            whole[label, name].append(_whole(base, fmt, trees[label]))
    for label in trees:
        print(f"{label}: phase  51 rules   2,050 rules   ratio   (best of {runs}, ms, "
              f"interleaved; {fmt})")
        for phase in PHASES + ("sum",):
            best = {}
            for name in bases:
                values = [sum(p.values()) if phase == "sum" else p[phase]
                          for p in phases[label, name]]
                best[name] = min(values) * 1000
            extra = best["large"] - best["small"]
            ratio = best["large"] / best["small"] if best["small"] else float("inf")
            print(f"  {phase:9} {best['small']:8.1f} {best['large']:12.1f} {ratio:7.2f}x   "
                  f"(+{extra:.1f})")
        small, large = min(whole[label, "small"]), min(whole[label, "large"])
        print(f"  whole process: {large*1000:.0f} ms against {small*1000:.0f} ms -> "
              f"{large/small:.2f}x (goal < 2x)")


def _before(rev: str, tmp: Path) -> dict:
    """The code of `rev` extracted beside this tree, run with this venv and its own cache."""
    from run import _before_tree

    tree = _before_tree(rev, tmp)
    if tree is None:
        raise SystemExit(f"cannot extract {rev} with git")
    precompile = [PY, "-m", "cno_pathway.consult.precompile"]
    subprocess.run(precompile, check=True, stdout=subprocess.DEVNULL, **tree)
    subprocess.run([PY, "-m", "compileall", "-q", "cno_pathway"], check=True, **tree)
    return tree


def profile(rules: Path, fmt: str) -> None:
    """cProfile of the load, consult and render in-process (a warm cache), sorted by own time."""
    import cProfile
    import pstats

    from cno_pathway.commands.common import load_pathway
    from cno_pathway.consult.render import render_consult
    from cno_pathway.patient.intake import profile_from_file

    def work():
        pathway = load_pathway(rules, None)
        patient = profile_from_file(EXAMPLE, pathway.vocabulary)
        render_consult(pathway.consult(patient, explain=False), fmt)

    profiler = cProfile.Profile()
    profiler.runcall(work)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(35)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--format", default="text", choices=["text", "markdown", "html", "json"])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rules", type=Path, help="a generated rule base already made")
    parser.add_argument("--before", action="append", default=[],
                        help="a git revision measured in the same runs (repeat for several; "
                             "`--before HEAD` puts this code in a tree like the others, so "
                             "that where the code lies does not tell them apart)")
    args = parser.parse_args()
    from run import generated_rule_base

    tmp = Path(tempfile.mkdtemp())
    try:
        rules = args.rules
        if rules is None:
            rules = tmp / "rules"
            generated_rule_base(rules, args.count)
        if args.profile:
            _whole(str(rules), args.format, {"cwd": ROOT})   # the parsed base cached
            profile(rules, args.format)
        else:
            trees = {"now": {"cwd": ROOT}}
            for index, rev in enumerate(args.before):
                where = tmp / f"tree-{index}"
                where.mkdir()
                trees[rev] = _before(rev, where)
            breakdown(rules, args.runs, args.format, trees)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
