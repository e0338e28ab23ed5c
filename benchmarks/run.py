"""Benchmarks, run by hand or with `make bench`. Each prints ratios measured in the same run.

1. A single consult as a whole process against the bare import of the dependencies
   (goal: at most 1.5x).
2. Batch consults per second for generated profiles against the durable_rules adapter alone on
   the same facts (goal: overhead at most 2.5x), and peak memory of 100,000 profiles against
   10,000 (goal: within 1.2x).
3. Loading, linting and compiling a generated rule base of 2,000 rules (goal: under a second;
   the engine's one-ruleset ceiling handled by splitting).

Usage: python benchmarks/run.py [--quick]
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
CLI = [PY, "-m", "cno_pathway"]


def _best_of(n, command, env=None):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def bench_single(runs: int):
    env = dict(os.environ)
    bare = _best_of(runs, [PY, "-c", "import durable.engine, pydantic, click, jinja2, yaml"])
    # one warm-up run fills the parsed-rule-base cache, as any second consult on a machine finds it
    subprocess.run(CLI + ["consult", str(ROOT / "examples/typical-multifocal.yaml")], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    consult = _best_of(runs, CLI + ["consult", str(ROOT / "examples/typical-multifocal.yaml")], env=env)
    print(f"1. single consult process: best {consult[0]*1000:.0f} ms, bare import best {bare[0]*1000:.0f} ms "
          f"-> ratio {consult[0]/bare[0]:.2f}x (median {consult[1]/bare[1]:.2f}x; goal <= 1.5x)")


def generated_profiles(n: int, seed: int = 7):
    """Deterministic varied profiles over the vocabulary, as JSON lines."""
    from cno_pathway.consult import Pathway

    vocab = Pathway.load().vocabulary
    rng = random.Random(seed)
    drugs = sorted(vocab.drug_to_class)
    responses = vocab.values("responses")
    for i in range(n):
        count = rng.choice([1, 2, 3, 5, 8, 12])
        sites = rng.sample(vocab.values("sites"), k=min(count, rng.randint(0, 4)))
        treatments = [{"drug": rng.choice(drugs), "months": rng.choice([1, 3, 4, 6, 12]),
                       "response": rng.choice(responses)} for _ in range(rng.randint(0, 4))]
        profile = {"id": f"p{i}", "age_years": rng.choice([6, 9, 12, 15, 22, 40]),
                   "weight_kg": rng.choice([20, 32, 45, 60]), "diagnosis": rng.choice(vocab.values("diagnoses")),
                   "lesions": {"count": count, "sites": sites, "imaging": rng.choice(vocab.values("imaging"))},
                   "features": rng.sample(vocab.values("features"), k=rng.randint(0, 2)),
                   "red_flags": rng.sample(vocab.values("red_flags"), k=rng.choice([0, 0, 0, 1])),
                   "biopsy": rng.choice(vocab.values("biopsy")), "treatments": treatments}
        yield json.dumps(profile)


def _peak_rss_of(command, stdin_path):
    with open(stdin_path, "rb") as stdin:
        proc = subprocess.run([PY, "-c", (
            "import resource, subprocess, sys;"
            f"p = subprocess.run({command!r}, stdin=sys.stdin, stdout=subprocess.DEVNULL);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")],
            stdin=stdin, capture_output=True, text=True, check=True)
    return int(proc.stdout.strip())


def bench_batch(n: int, big: int):
    from cno_pathway.consult import Pathway
    from cno_pathway.facts import derive_facts
    from cno_pathway.profile import validate_profile

    pathway = Pathway.load()
    tmp = Path(tempfile.mkdtemp())
    try:
        small = tmp / "small.jsonl"
        small.write_text("\n".join(generated_profiles(n)) + "\n")
        facts = [derive_facts(validate_profile(json.loads(line), pathway.vocabulary), pathway.vocabulary)
                 for line in small.read_text().splitlines()]
        start = time.perf_counter()
        for f in facts:
            pathway.engine.evaluate(f)
        adapter = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(CLI + ["batch", str(small)], check=True, stdout=subprocess.DEVNULL)
        whole = time.perf_counter() - start
        print(f"2a. batch of {n}: {n/whole:.0f} consults/s (whole process, JSON out); adapter alone "
              f"{n/adapter:.0f} evaluations/s -> overhead {whole/adapter:.2f}x (goal <= 2.5x)")
        large = tmp / "large.jsonl"
        with large.open("w") as out:
            for _ in range(big // n):
                out.write(small.read_text())
        rss_small = _peak_rss_of(CLI + ["batch", "-", "--summary"], small)
        rss_large = _peak_rss_of(CLI + ["batch", "-", "--summary"], large)
        print(f"2b. peak memory: {big} profiles {rss_large/1024:.0f} MiB, {n} profiles "
              f"{rss_small/1024:.0f} MiB -> ratio {rss_large/rss_small:.2f}x (goal <= 1.2x)")
    finally:
        shutil.rmtree(tmp)


def generated_rule_base(directory: Path, count: int):
    """A copy of the real rule base plus `count` generated suggestion rules."""
    shutil.copytree(ROOT / "rules", directory)
    therapies = ["naproxen", "pamidronate", "etanercept", "anakinra", "methotrexate"]
    lines = []
    for i in range(count):
        lines += [f"- id: CNO-GEN-R{i:05d}", f"  title: Generated rule {i}", "  status: draft",
                  "  stage: monitoring", f"  priority: {100 + i % 500}",
                  "  when:", "    all:", f"      - gte: {{lesions.count: {i % 20}}}",
                  "      - lacks: {stage: therapy_on_hold}",
                  "  then:", "    suggest:", "      kind: monitor",
                  f"      therapy: {therapies[i % len(therapies)]}", "      rationale: Generated for the benchmark.",
                  "  evidence: {grade: C, cites: [schnabel-2017#assessment-time-points]}",
                  "  tests:", "    fires: [{lesions: {count: 20}}]", "    silent: [{diagnosis: suspected}]"]
    (directory / "90-generated.yaml").write_text("\n".join(lines) + "\n")


def bench_large_rule_base(count: int):
    tmp = Path(tempfile.mkdtemp())
    try:
        rules = tmp / "rules"
        generated_rule_base(rules, count)
        seeds = str(ROOT / "seeds")
        # one pass: lint_rule_base reads every file once and hands the checked book to the compiler
        code = ("import time; from pathlib import Path; t=time.perf_counter();"
                "from cno_pathway.engine import Engine; from cno_pathway.lint import lint_rule_base;"
                "from cno_pathway.knowledge_cache import cached;"
                f"r, s = Path({str(rules)!r}), Path({seeds!r});"
                "result = cached([r, s], lambda: lint_rule_base(r, s), kind='lint-and-load');"
                "assert result.ok, result.problems[:3];"
                "e=Engine(result.book.active, {'stage': list(result.book.vocabulary.stages)});"
                "print(time.perf_counter()-t, len(e.ruleset_names))")
        env = dict(os.environ, CNO_PATHWAY_CACHE_DIR=str(tmp / "cache"))
        for label in ("cold (first run: parse, lint, compile)", "warm (parsed rule base and lint report cached)"):
            start = time.perf_counter()
            proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                                  env=env)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                print(f"3. {count}-rule base: FAILED\n{proc.stderr[-2000:]}")
                return
            inner, rulesets = proc.stdout.split()
            print(f"3. {count + 50}-rule base, {label}: load+lint+compile {float(inner):.2f} s in-process "
                  f"({wall:.2f} s whole process), {rulesets} rulesets (goal < 1 s)")
    finally:
        shutil.rmtree(tmp)


def main():
    quick = "--quick" in sys.argv
    bench_single(3 if quick else 7)
    bench_batch(1000 if quick else 10_000, 10_000 if quick else 100_000)
    bench_large_rule_base(2000)


if __name__ == "__main__":
    main()
