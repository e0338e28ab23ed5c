"""Where one batch line's time goes, piece by piece, against the C engine alone.

    .venv/bin/python benchmarks/throughput.py [N]

Runs N generated profiles (benchmarks/run.py's `generated_profiles`) through each step of
`consult_line` separately, best of three rounds, and prints microseconds per profile for each
step and for the whole line, and the C engine alone on the very fact texts the adapter asserts
(replayed through the driver, as `make bench` does). Times are CPU time of this process, not
wall-clock: this machine is shared, and no profiler runs (cProfile distorts small functions).
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import c_engine_alone, generated_profiles  # noqa: E402

from cno_pathway.consult.batch import consult_line, parse_line  # noqa: E402
from cno_pathway.consult.consult import Pathway  # noqa: E402
from cno_pathway.consult.jsonout import dumps_line  # noqa: E402
from cno_pathway.consult.memo import PlainMemo  # noqa: E402
from cno_pathway.consult.document import reasons  # noqa: E402
from cno_pathway.patient.facts import derive_facts  # noqa: E402
from cno_pathway.patient.intake import profile_from_data  # noqa: E402


def best(rounds: int, run) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def main(n: int = 3000) -> None:
    pathway = Pathway.load()
    vocab = pathway.vocabulary
    lines = [line.encode() for line in generated_profiles(n)]
    for number, line in enumerate(lines[:300]):          # warm the memos
        consult_line(pathway, number, line, "x")
    datas = [parse_line(line.decode()) for line in lines]
    profiles = [profile_from_data(d, vocab, source="x") for d in datas]
    facts = [derive_facts(p, vocab) for p in profiles]
    consults = [pathway.consult(p) for p in profiles]
    documents = [c.to_json() for c in consults]
    plain = Pathway(pathway.rulebook, pathway.library, pathway.formulary)
    plain._memo = PlainMemo(pathway.rulebook.label,
                            reasons=lambda cond, f: reasons(cond, f, pathway.rulebook))
    gc.collect()
    gc.freeze()           # the cohort held here is not the batch's garbage to collect
    steps = {
        "parse": lambda: [parse_line(line.decode()) for line in lines],
        "validate": lambda: [profile_from_data(d, vocab, source="x") for d in datas],
        "derive_facts": lambda: [derive_facts(p, vocab) for p in profiles],
        "engine.evaluate": lambda: [pathway.engine.evaluate(f) for f in facts],
        "C engine alone": c_engine_alone(pathway.engine, facts),
        "consult": lambda: [pathway.consult(p) for p in profiles],
        "consult, no memo": lambda: [plain.consult(p) for p in profiles],
        "to_json": lambda: [c.to_json() for c in consults],
        "dumps_line": lambda: [dumps_line(d) for d in documents],
        "consult_line": lambda: [consult_line(pathway, i, line, "x") for i, line in enumerate(lines)],
    }
    seconds = {}
    for name, run in steps.items():
        seconds[name] = best(3, run)
        print(f"{name:17s} {seconds[name] / n * 1e6:7.1f} us/profile")
    line, c = seconds["consult_line"], seconds["C engine alone"]
    print(f"consult_line {n / line:.0f}/s; C engine alone {n / c:.0f}/s -> {line / c:.2f}x "
          f"(a whole batch adds start-up and writing)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
