"""Benchmarks, run by hand or with `make bench`. Each prints ratios measured in the same run
(this machine is shared: absolute times move with its load, ratios much less).

1. A single consult as a whole process against the bare import of the dependencies
   (goal: at most 1.3x), and what building the profile models costs at start-up.
2. Batch: consults per second with --jobs 1 (goal: at least 2,000 per core) against the C engine
   alone on the same facts (goal: our overhead at most 2x); the engine adapter now against
   durable's Python host layer (the adapter before the driver, read from git history); the
   consult with and without its memo; JSON lines by orjson against json.dumps; --jobs 2 against
   --jobs 1 (goal: at least 1.7x when both cores are free); peak memory of 100,000 profiles
   against 10,000 (goal: at most 1.1x).
3. A generated rule base of 2,000 rules: load, lint and compile; `rules test` on it (goal: under
   30 s); a consult on it against the 51-rule consult (goal: under 2x).
4. Every hostile profile (tests/hostile/ and the generated ones) refused with exit 2: the
   slowest refusal and the largest peak memory, against a normal consult.

Where a figure can be compared with the code before this round's performance work, the same run
also measures that code (BEFORE_REV, extracted with git archive): "before" and "now" share the load.

Usage: python benchmarks/run.py [--quick] [--before REV|none]
"""

from __future__ import annotations

import hashlib
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


# The code before this round's performance work, run in the same benchmark so that "before"
# and "after" share the machine's load: `--before REV` (a git revision) or `--before none`.
BEFORE_REV = "fd549df"
BEFORE: dict | None = None      # subprocess keywords (cwd, env) that run the code of BEFORE_REV


def _before_tree(rev: str, tmp: Path) -> dict | None:
    """Extract `rev` of this repository into tmp and return the keywords that run its CLI with
    this venv (its own knowledge cache, its bytecode compiled as `make install` does); None
    outside a git checkout."""
    tree = tmp / "before"
    tree.mkdir()
    try:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    subprocess.run([PY, "-m", "compileall", "-q", str(tree / "cno_pathway")], check=True)
    env = dict(os.environ, CNO_PATHWAY_CACHE_DIR=str(tmp / "before-cache"))
    return {"cwd": str(tree), "env": env}


def _interleaved(runs: int, commands: dict) -> dict[str, tuple[float, float]]:
    """name -> (best, median) seconds. The commands take turns, so a burst of noise on this
    shared machine slows all of them alike instead of one. A command is an argument list, or
    (argument list, subprocess keywords)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            command, keywords = command if isinstance(command, tuple) else (command, {})
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **keywords)
            times[name].append(time.perf_counter() - start)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def bench_single(runs: int):
    example = str(ROOT / "examples/typical-multifocal.yaml")
    # one warm-up run fills the parsed-rule-base cache, as any second consult on a machine finds it
    subprocess.run(CLI + ["consult", example], check=True, stdout=subprocess.DEVNULL)
    if BEFORE:
        subprocess.run(CLI + ["consult", example], check=True, stdout=subprocess.DEVNULL, **BEFORE)
    deps = "import durable_rules_engine, pydantic, click, jinja2, yaml, orjson"
    t = _interleaved(runs, {
        # the declared dependencies as the project imports them: durable_rules' C extension
        # (not its Python host layer, which the adapter no longer loads), orjson
        "bare": [PY, "-c", deps],
        "bare_host": [PY, "-c", "import durable.engine, pydantic, click, jinja2, yaml"],
        # for scale: the baseline's `import pydantic` is lazy, while a first model imports
        # pydantic's schema machinery, which any consult validated by a pydantic model needs
        "floor": [PY, "-c", deps + "\nclass M(pydantic.BaseModel):\n    x: int"],
        # the profile contract's models built, nothing else of a consult
        "models": [PY, "-c", deps + "\nimport cno_pathway.patient.profile"],
        "consult": CLI + ["consult", example],
        **({"before": (CLI + ["consult", example], BEFORE)} if BEFORE else {}),
    })
    bare, consult = t["bare"], t["consult"]
    print(f"1. single consult process: best {consult[0]*1000:.0f} ms, bare import best {bare[0]*1000:.0f} ms "
          f"-> ratio {consult[0]/bare[0]:.2f}x (median {consult[1]/bare[1]:.2f}x; goal <= 1.3x); "
          f"against the old baseline with durable.engine {consult[0]/t['bare_host'][0]:.2f}x")
    if BEFORE:
        print(f"   before ({BEFORE_REV}): best {t['before'][0]*1000:.0f} ms -> {t['before'][0]/bare[0]:.2f}x "
              f"(median {t['before'][1]/bare[1]:.2f}x); now {t['before'][0]/consult[0]:.2f}x as fast")
    for name, label in (("floor", "the bare import plus one pydantic model"),
                        ("models", "the bare import plus the profile models (patient/profile.py)")):
        print(f"   for scale: {label} takes {t[name][0]*1000:.0f} ms -> "
              f"{t[name][0]/bare[0]:.2f}x (median {t[name][1]/bare[1]:.2f}x)")


def generated_profiles(n: int, seed: int = 7):
    """Deterministic varied profiles over the vocabulary, as JSON lines."""
    from cno_pathway.consult.consult import Pathway

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


def _host_adapter():
    """The engine adapter as it was before the driver (through durable.engine's host layer),
    read from git history, to measure what the driver buys; None outside a git checkout."""
    import types

    try:
        code = subprocess.run(["git", "show", f"{HOST_ADAPTER_COMMIT}:cno_pathway/engine/durable.py"],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("cno_pathway.engine._host_adapter")
    module.__package__ = "cno_pathway.engine"
    exec(compile(code, "host_adapter.py", "exec"), module.__dict__)
    return module


HOST_ADAPTER_COMMIT = "28bf75c"   # the last commit whose adapter used durable.engine


def _best(runs: int, **work) -> dict[str, float]:
    """name -> best seconds of `runs` turns, the works taking turns. A work that returns a
    float has timed itself (what it does after the part measured is left out)."""
    times = {name: [] for name in work}
    for _ in range(runs):
        for name, fn in work.items():
            start = time.perf_counter()
            took = fn()
            times[name].append(took if isinstance(took, float) else time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def c_engine_alone(engine, facts: list):
    """A run of the C engine alone: the very fact texts the engine adapter asserts for these
    facts, replayed through the driver, each session deleted after its last fact as the adapter
    deletes it (one session serves several evaluations: engine.durable.SESSION_EVALUATIONS)."""
    from cno_pathway.engine import durable as adapter

    evaluations: list[list] = []
    real = adapter.Ruleset.matches

    def recording(self, text):
        evaluations[-1].append((self, text))
        return real(self, text)
    adapter.Ruleset.matches = recording
    try:
        for f in facts:
            evaluations.append([])
            engine.evaluate(f)
    finally:
        adapter.Ruleset.matches = real
        engine._end_session()       # the replay asserts the same fact ids in sessions of its own
    sids = [json.loads(asserted[0][1])["sid"] for asserted in evaluations]
    replay = []
    for i, asserted in enumerate(evaluations):
        ends = i + 1 == len(sids) or sids[i + 1] != sids[i]
        replay.append((asserted, list({id(r): r for r, _ in asserted}.values()) if ends else (),
                       sids[i]))

    def run():
        for asserted, rulesets, sid in replay:
            for ruleset, text in asserted:
                ruleset.matches(text)
            for ruleset in rulesets:
                ruleset.delete_state(sid)
    return run


def bench_batch(n: int, big: int):
    from cno_pathway.consult.consult import Pathway
    from cno_pathway.consult.jsonout import dumps_line, slow_line
    from cno_pathway.consult.document import reasons
    from cno_pathway.consult.memo import PlainMemo
    from cno_pathway.patient.facts import derive_facts
    from cno_pathway.patient.profile import validate_profile

    pathway = Pathway.load()
    engine = pathway.engine
    tmp = Path(tempfile.mkdtemp())
    # the batches write into files in memory where there is a tmpfs: ~380 MB a run written to
    # disk kept the kernel's writeback threads busy on the cores the next runs were measured on
    shm = Path("/dev/shm")
    outdir = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp
    try:
        small = tmp / "small.jsonl"
        small.write_text("\n".join(generated_profiles(n)) + "\n")
        profiles = [validate_profile(json.loads(line), pathway.vocabulary)
                    for line in small.read_text().splitlines()]
        facts = [derive_facts(p, pathway.vocabulary) for p in profiles]
        c_alone = c_engine_alone(engine, facts)

        def ours():
            for f in facts:
                engine.evaluate(f)
        work = {"c": c_alone, "adapter": ours}
        host = _host_adapter()
        if host is not None:
            old = host.Engine(pathway.rulebook.active, pathway.value_order)
            for f in facts[:200]:
                a, b = old.evaluate(f), engine.evaluate(f)
                assert (a.fired, a.facts) == (b.fired, b.facts), "the two adapters disagree"
            work["host"] = lambda: [old.evaluate(f) for f in facts]

        no_memo = PlainMemo(pathway.rulebook.label,
                            reasons=lambda cond, facts: reasons(cond, facts, pathway.rulebook))
        memo = pathway._memo

        def consult_with(m):
            def run():
                pathway._memo = m
                for p in profiles:
                    pathway.consult(p)
                pathway._memo = memo
            return run
        work["memo"], work["no_memo"] = consult_with(memo), consult_with(no_memo)
        documents = [pathway.consult(p).to_json() for p in profiles[:2000]]
        work["orjson"] = lambda: [dumps_line(d) for d in documents]
        work["json"] = lambda: [slow_line(d) for d in documents]
        outputs: dict[str, bytes] = {}

        def batch_with(*option):
            # into a file, not a pipe this process reads: reading ~40 KB a consult would take
            # this process a share of the two cores the workers are measured on
            target = outdir / ("out" + "".join(option).replace("-", "_") + ".jsonl")

            keywords = BEFORE if option[:1] == ("before",) else {}
            command = CLI + ["batch", str(small), *option[1:]] if keywords else CLI + ["batch", str(small), *option]

            def run() -> float:
                start = time.perf_counter()
                with target.open("wb") as out:
                    subprocess.run(command, check=True, stdout=out, **keywords)
                took = time.perf_counter() - start
                # checking the output (reading and hashing ~380 MB) is not the batch's time
                outputs[" ".join(option)] = hashlib.sha256(target.read_bytes()).hexdigest()
                sizes[" ".join(option)] = target.stat().st_size
                target.unlink()
                return took
            return run
        sizes: dict[str, int] = {}
        work["jobs1"], work["jobs2"] = batch_with("--jobs", "1"), batch_with("--jobs", "2")
        if BEFORE:
            work["before"] = batch_with("before", "--jobs", "1")
        load = os.getloadavg()[0]   # another job on the machine takes the second core
        best = _best(3, **work)   # taking turns, best of three: this machine's noise comes in bursts
        c, jobs1 = best["c"], best["jobs1"]
        cores = len(os.sched_getaffinity(0))
        print(f"2a. batch of {n}, --jobs 1: {n/jobs1:.0f} consults/s (whole process, JSON out; goal >= "
              f"2000 per core); the C engine alone on the same facts {n/c:.0f}/s -> our overhead "
              f"{jobs1/c:.2f}x (goal <= 2x)")
        if BEFORE:
            print(f"    before ({BEFORE_REV}), --jobs 1: {n/best['before']:.0f} consults/s -> now "
                  f"{best['before']/jobs1:.2f}x as fast")
        line = (f"2b. engine adapter (driver) {n/best['adapter']:.0f} evaluations/s = "
                f"{best['adapter']/c:.2f}x the C engine alone")
        if "host" in best:
            line += (f"; through durable's host layer (before) {n/best['host']:.0f}/s -> the driver "
                     f"is {best['host']/best['adapter']:.2f}x faster")
        print(line)
        print(f"2c. consults in-process: with the memo {n/best['memo']:.0f}/s, without "
              f"{n/best['no_memo']:.0f}/s -> {best['no_memo']/best['memo']:.2f}x; JSON lines: orjson "
              f"{best['json']/best['orjson']:.2f}x json.dumps ({len(documents)} consults, same bytes)")
        print(f"2d. --jobs 2 against --jobs 1: {jobs1/best['jobs2']:.2f}x faster ({n/best['jobs2']:.0f} "
              f"consults/s; {cores} cores in this process's affinity; goal >= 1.7x when both are "
              f"free; load average before the runs {load:.2f})")
        try:
            import distributed  # noqa: F401 - the optional [cluster] extra
            dask = _best(1, dask=batch_with("--dask", "local"))["dask"]
            print(f"2d. --dask local (a LocalCluster of {cores} processes, started by the run): "
                  f"{n/dask:.0f} consults/s -> {jobs1/dask:.2f}x --jobs 1")
        except ImportError:
            print("2d. --dask: skipped (the [cluster] extra is not installed)")
        same = len(set(outputs.values())) == 1
        print(f"2d. output bytes of {', '.join(sorted(outputs))} on the {n} profiles: "
              f"{'identical' if same else 'DIFFERENT'} ({sizes['--jobs 1']} bytes)")
        large = tmp / "large.jsonl"
        with large.open("w") as out:
            for _ in range(big // n):
                out.write(small.read_text())
        for jobs in ("1", "2"):
            rss_small = _peak_rss_of(CLI + ["batch", "-", "--summary", "--jobs", jobs], small)
            rss_large = _peak_rss_of(CLI + ["batch", "-", "--summary", "--jobs", jobs], large)
            print(f"2e. peak memory, --jobs {jobs}: {big} profiles {rss_large/1024:.0f} MiB, {n} "
                  f"profiles {rss_small/1024:.0f} MiB -> ratio {rss_large/rss_small:.2f}x (goal <= 1.1x; "
                  "the largest process)")
    finally:
        shutil.rmtree(tmp)
        if outdir is not tmp:
            shutil.rmtree(outdir)


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
                "from cno_pathway.engine.durable import Engine; from cno_pathway.authoring.lint import lint_rule_base;"
                "from cno_pathway.knowledge.cache import cached;"
                f"r, s = Path({str(rules)!r}), Path({seeds!r});"
                "result = cached([r, s], lambda: lint_rule_base(r, s), kind='lint-and-load');"
                "assert result.ok, result.problems[:3];"
                "e=Engine(result.book.active, {'stage': list(result.book.vocabulary.stages)});"
                "print(time.perf_counter()-t, len(e.ruleset_names))")
        def run(cache: Path):
            start = time.perf_counter()
            proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120,
                                  cwd=ROOT, env=dict(os.environ, CNO_PATHWAY_CACHE_DIR=str(cache)))
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            inner, rulesets = proc.stdout.split()
            return float(inner), wall, rulesets

        try:  # three cold runs, each with an empty cache, then three warm ones on the last cache
            cold = [run(tmp / f"cache-{i}") for i in range(3)]
            warm = [run(tmp / "cache-2") for _ in range(3)]
        except RuntimeError as exc:
            print(f"3. {count}-rule base: FAILED\n{exc}")
            return
        for label, runs in (("cold (parse, lint, compile)", cold), ("warm (parsed and checked base cached)", warm)):
            inner = sorted(r[0] for r in runs)
            print(f"3. {count + 50}-rule base, {label}: load+lint+compile best {inner[0]:.2f} s, "
                  f"median {inner[1]:.2f} s in-process (best {min(r[1] for r in runs):.2f} s whole "
                  f"process), {runs[0][2]} rulesets (goal < 1 s)")
        start = time.perf_counter()
        proc = subprocess.run(CLI + ["rules", "test", str(rules)], capture_output=True, text=True,
                              timeout=600)
        took = time.perf_counter() - start
        print(f"3. `rules test` on the {count + 50}-rule base: {took:.1f} s, exit {proc.returncode} "
              f"({proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-200:]}; "
              "goal < 30 s)")
        example = str(ROOT / "examples/typical-multifocal.yaml")
        subprocess.run(CLI + ["consult", example, "--rules", str(rules)], check=True,
                       stdout=subprocess.DEVNULL)   # the parsed base cached, as for the 51 rules
        t = _interleaved(5, {"small": CLI + ["consult", example],
                             "large": CLI + ["consult", example, "--rules", str(rules)]})
        print(f"3. consult on the {count + 50}-rule base: best {t['large'][0]*1000:.0f} ms against "
              f"{t['small'][0]*1000:.0f} ms on the 51-rule base -> {t['large'][0]/t['small'][0]:.2f}x "
              f"(median {t['large'][1]/t['small'][1]:.2f}x; goal < 2x)")
    finally:
        shutil.rmtree(tmp)


def bench_hostile():
    """Every hostile input refused: the profiles (stored and generated) and the broken rule files
    (each laid into a copy of the rule base, uncached, so the whole rule base is parsed before
    the refusal). The slowest refusal and the largest peak memory of each kind, against a normal
    consult in the same run (each in its own process)."""
    sys.path.insert(0, str(ROOT))
    from tests.hostile_inputs import HOSTILE, generated_profiles, stored_profiles

    example = str(ROOT / "examples/typical-multifocal.yaml")
    tmp = Path(tempfile.mkdtemp())
    try:
        profiles = list(stored_profiles())
        for name, (content, _) in sorted(generated_profiles().items()):
            (tmp / name).write_bytes(content)
            profiles.append(tmp / name)
        normal = _measured(CLI + ["consult", example])
        rows = {"profiles": [(path.name, *_measured(CLI + ["consult", str(path)])) for path in profiles]}
        rows["rule files"] = []
        for path in sorted((HOSTILE / "rules").iterdir()):
            rules = tmp / f"rules-{path.stem}"
            shutil.copytree(ROOT / "rules", rules)
            shutil.copy(path, rules / path.name)
            rows["rule files"].append((path.name, *_measured(
                CLI + ["consult", example, "--rules", str(rules)], env={"CNO_PATHWAY_CACHE": "off"})))
    finally:
        shutil.rmtree(tmp)
    for kind, found in rows.items():
        bad = [name for name, _, _, status in found if status != 2]
        slowest = max(found, key=lambda r: r[1])
        largest = max(found, key=lambda r: r[2])
        print(f"4. {len(found)} hostile {kind}: {len(found) - len(bad)} refused with exit 2"
              f"{' (NOT: ' + ', '.join(bad) + ')' if bad else ''}; slowest {slowest[0]} "
              f"{slowest[1]*1000:.0f} ms ({slowest[1]/normal[0]:.2f}x a normal consult, goal < 1 s); "
              f"largest peak memory {largest[0]} {largest[2]:.0f} MiB ({largest[2]/normal[1]:.2f}x)")


# runs the command in a small process of its own: a child forked from this (large) benchmark
# process would count the parent's pages in its peak memory
_MEASURE = ("import os, subprocess, sys, time; t = time.perf_counter();"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
            "_, status, usage = os.wait4(p.pid, 0);"
            "print(time.perf_counter() - t, usage.ru_maxrss, os.waitstatus_to_exitcode(status))")


def _measured(command, runs: int = 3, env: dict | None = None):
    """(best seconds, peak resident MiB, exit status) of a process run `runs` times."""
    walls, peaks, statuses = [], [], set()
    for _ in range(runs):
        out = subprocess.run([PY, "-c", _MEASURE, *command], capture_output=True, text=True,
                             check=True, env=dict(os.environ, **(env or {}))).stdout.split()
        walls.append(float(out[0]))
        peaks.append(int(out[1]) / 1024)
        statuses.add(int(out[2]))
    return min(walls), max(peaks), statuses.pop() if len(statuses) == 1 else sorted(statuses)


def main():
    global BEFORE, BEFORE_REV
    quick = "--quick" in sys.argv
    if "--before" in sys.argv:
        BEFORE_REV = sys.argv[sys.argv.index("--before") + 1]
    workdir = Path(tempfile.mkdtemp())
    try:
        if BEFORE_REV != "none":
            BEFORE = _before_tree(BEFORE_REV, workdir)
            if BEFORE is None:
                print(f"(no 'before' figures: cannot extract {BEFORE_REV} with git)")
        _run(quick)
    finally:
        shutil.rmtree(workdir)


def _run(quick: bool):
    bench_single(5 if quick else 15)
    bench_batch(1000 if quick else 10_000, 10_000 if quick else 100_000)
    bench_large_rule_base(2000)
    bench_hostile()


if __name__ == "__main__":
    main()
