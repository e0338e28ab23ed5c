"""What the stored profile schema buys (issue 17, point 5): run by hand, ratios from one run.

1. Start-up, each command taking turns (interleaved): the bare import of the dependencies;
   that plus one pydantic model (pydantic's schema machinery and plugin loader); that plus the
   pydantic declaration of the profile (patient/contract.py: what importing the profile cost
   before); that plus the profile as a consult imports it now (patient/profile.py: the stored
   schema); a consult; and the same consult with the declaration built first (the consult as it
   was, the rest unchanged).
2. validate_profile per profile on the same generated profiles (valid ones, then the same ones
   refused for a string age): the stored schema against the declaration, each with and without
   the exact-name shortcut of patient/checks.py (the declaration without it: the code before).
3. to_data (what the consult's JSON echoes), records against the pydantic models.

Usage: python benchmarks/startup_models.py [--runs N]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
PY = sys.executable
DEPS = "import durable_rules_engine, pydantic, click, jinja2, yaml, orjson"
EXAMPLE = str(ROOT / "examples/typical-multifocal.yaml")
CONSULT = ("import sys\nsys.argv = ['cno-pathway', 'consult', {example!r}]\n{before}"
           "from cno_pathway.cli import run\nrun()\n")


def startup(runs: int) -> None:
    commands = {
        "bare": [PY, "-c", DEPS],
        "one model": [PY, "-c", DEPS + "\nclass M(pydantic.BaseModel):\n    x: int"],
        "declaration": [PY, "-c", DEPS + "\nimport cno_pathway.patient.contract"],
        "stored schema": [PY, "-c", DEPS + "\nimport cno_pathway.patient.profile"],
        "consult": [PY, "-c", CONSULT.format(example=EXAMPLE, before="")],
        "consult, declaration built": [PY, "-c", CONSULT.format(
            example=EXAMPLE, before="import cno_pathway.patient.contract\n")],
    }
    subprocess.run(commands["consult"], check=True, stdout=subprocess.DEVNULL)   # warm caches
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
            times[name].append(time.perf_counter() - start)
    bare_best, bare_median = min(times["bare"]), statistics.median(times["bare"])
    print(f"1. start-up, {runs} interleaved runs (best; ratio to the bare import, best and median)")
    for name, t in times.items():
        print(f"   {name:28s} {min(t) * 1000:6.1f} ms  {min(t) / bare_best:5.2f}x  "
              f"(median {statistics.median(t) / bare_median:5.2f}x)")


def per_profile(n: int, rounds: int = 5) -> None:
    from run import generated_profiles

    from cno_pathway.consult.consult import Pathway
    from cno_pathway.errors import ProfileError
    from cno_pathway.patient import checks, contract
    from cno_pathway.patient.profile import profile_error, validate_profile
    from pydantic import ValidationError

    vocabulary = Pathway.load().vocabulary
    valid = [json.loads(line) for line in generated_profiles(n)]
    refused = [dict(p, age_years=str(p["age_years"])) for p in valid]

    def declared(data):
        try:
            return contract.PatientProfile.model_validate(data, context={"vocabulary": vocabulary})
        except ValidationError as exc:
            raise profile_error(exc) from None

    def stored(data):
        return validate_profile(data, vocabulary)

    def run(fn, profiles):
        for data in profiles:
            try:
                fn(data)
            except ProfileError:
                pass

    exact = checks._exact
    best: dict[tuple, float] = {}
    for _ in range(rounds):
        for shortcut in (True, False):
            checks._exact = exact if shortcut else (lambda vocabulary, kind: frozenset())
            for how, fn in (("stored schema", stored), ("declaration", declared)):
                for kind, profiles in (("valid", valid), ("refused", refused)):
                    start = time.perf_counter()
                    run(fn, profiles)
                    key = (how, shortcut, kind)
                    best[key] = min(best.get(key, 1e9), (time.perf_counter() - start) / n)
    checks._exact = exact
    print(f"2. validate_profile per profile, us ({n} generated profiles, best of {rounds}; "
          "'refused': the same profiles with the age as a string)")
    print("   validator       exact-name shortcut    valid  refused")
    for how in ("declaration", "stored schema"):
        for shortcut in (False, True):
            print(f"   {how:15s} {'with' if shortcut else 'without':21s} "
                  f"{best[(how, shortcut, 'valid')] * 1e6:6.1f}   {best[(how, shortcut, 'refused')] * 1e6:6.1f}")
    before, after = best[("declaration", False, "valid")], best[("stored schema", True, "valid")]
    print(f"   -> valid profiles {before / after:.2f}x faster than before (declaration, no shortcut)")

    records = [validate_profile(data, vocabulary) for data in valid]
    models = [declared(data) for data in valid]
    dumped = {}
    for _ in range(rounds):
        for name, items in (("records", records), ("models", models)):
            start = time.perf_counter()
            for item in items:
                item.to_data()
            dumped[name] = min(dumped.get(name, 1e9), (time.perf_counter() - start) / n)
    print(f"3. to_data per profile: records {dumped['records'] * 1e6:.1f} us (pydantic-core's serializer "
          f"of the stored schema), pydantic models {dumped['models'] * 1e6:.1f} us")


if __name__ == "__main__":
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 15
    startup(runs)
    per_profile(2000)
