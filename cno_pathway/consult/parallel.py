"""`batch --jobs N`: the cohort consulted by worker processes, written in input order.

Each worker has its own Pathway (a forked worker its copy of the parent's, already loaded: no
second load per worker; elsewhere it loads one) and consults chunks of lines with the same
`consult_line` as the single-process route, so the output is byte for byte the same. The parent
reads the input, hands out chunks, and writes the outcomes of chunk k only after those of chunk
k-1: at most a few chunks per worker are in flight, so memory stays flat in the cohort size.
Each worker has its next chunk waiting in its pipe while it consults the current one, and the
parent hands out work before it writes: a worker never waits for the parent's output (a slow
reader of stdout) between two chunks.

A worker that dies (durable_rules' C extension could crash on an input nobody has found yet)
costs only its lines: its chunk is consulted again one line at a time in fresh workers, and a
line on which a worker dies again is reported as failed with the signal; the batch goes on.
Workers ignore SIGINT: the parent decides (it finishes the chunks under way, then stops).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from .batch import GAVE_UP, BatchResult, Outcome, consult_line

CHUNK_LINES = 64
QUEUED_PER_WORKER = 2        # chunks sent to a worker and not yet back: the one under way, the next
READ_AHEAD_PER_WORKER = 3    # chunks read and not yet written, per worker


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _context():
    # fork starts a worker in milliseconds with the code already imported; elsewhere spawn
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class _Setup(NamedTuple):
    """What a worker starts from: the rule base to load, or (forked workers) the parent's
    loaded pathway, which the worker then has as its own copy without loading it again."""

    rules_dir: Path | None
    formulary: Path | None
    write_json: bool
    pathway: object = None


def _load(rules_dir, formulary):
    from .consult import Pathway

    return Pathway.load(rules_dir, formulary=formulary)


def _worker_main(conn, setup: _Setup) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    write_json = setup.write_json
    try:
        pathway = (setup.pathway if setup.pathway is not None
                   else _load(setup.rules_dir, setup.formulary))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the batch
        conn.send(("fatal", f"a worker could not load the rule base: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        key, source, items = job
        outcomes = [consult_line(pathway, number, raw, source, write_json=write_json)
                    for number, raw in items]
        conn.send((key, outcomes))


class WorkerFailed(Exception):
    """No worker could start (the rule base did not load in a worker)."""


class _Worker:
    def __init__(self, ctx, setup: _Setup):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, setup), daemon=True)
        self.proc.start()
        child.close()
        self.jobs: deque = deque()   # (chunk index, offset, items) sent, in the order sent
        self.ready = False
        self.broken = False          # a send to it failed: it is dying

    def stop(self):
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.conn.close()
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()

    def death_note(self) -> str:
        self.proc.join(timeout=5)
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}"
        return f"exit status {code}"


def run_parallel(lines: Iterator[tuple[int, bytes | str]], source: str, *, jobs: int,
                 rules_dir: Path | None, emit: Callable[[Outcome], None],
                 formulary: Path | None = None, write_json: bool = True, stop: Callable[[], bool] = lambda: False,
                 result: BatchResult | None = None, ready: Callable[[], bool] = lambda: True,
                 chunk_lines: int = CHUNK_LINES, pathway=None) -> BatchResult:
    """Consult numbered lines with `jobs` worker processes; `emit` receives the Outcomes in
    input order. `stop()` (Ctrl-C) ends the reading; chunks already read are finished.
    `ready()` tells whether another line can be read without waiting (else the chunk goes
    out short: a slow pipe gets its consults as its lines come). `pathway`: the one loaded
    from rules_dir and formulary, which forked workers take as it is (a worker started
    otherwise loads its own)."""
    result = result or BatchResult()
    ctx = _context()
    setup = _Setup(rules_dir, formulary, write_json,
                   pathway if ctx.get_start_method() == "fork" else None)
    workers = [_Worker(ctx, setup) for _ in range(jobs)]
    todo: deque = deque()          # (chunk index, offset, items) waiting for a worker
    slots: dict[int, list] = {}    # chunk index -> its outcomes so far (None: not back yet)
    next_chunk = next_write = 0
    reading = True
    start_failures = 0
    source_iter = iter(lines)

    def read_chunk() -> bool:
        nonlocal next_chunk, reading
        items = []
        try:
            for number, raw in source_iter:
                items.append((number, raw))
                if raw == GAVE_UP:
                    result.stopped = GAVE_UP
                    reading = False
                    break
                if len(items) >= chunk_lines or not ready():
                    break
            else:
                reading = False
        except KeyboardInterrupt:   # while waiting for input: the lines read so far are done
            reading, result.interrupted = False, True
        if not items:
            return False
        slots[next_chunk] = [None] * len(items)
        todo.append((next_chunk, 0, items))
        next_chunk += 1
        return True

    def dispatch():
        """Keep every ready worker's queue full, the least loaded first."""
        while todo:
            open_ = [w for w in workers
                     if w.ready and not w.broken and len(w.jobs) < QUEUED_PER_WORKER]
            if not open_:
                return
            worker = min(open_, key=lambda w: len(w.jobs))
            job = todo.popleft()
            worker.jobs.append(job)
            key, offset, items = job
            try:
                worker.conn.send(((key, offset), source, items))
            except OSError:     # it died meanwhile: its sentinel wakes the loop, which requeues
                worker.broken = True    # its chunks (this one too); nothing more is sent to it

    def flush_done():
        nonlocal next_write
        while next_write in slots and all(o is not None for o in slots[next_write]):
            for outcome in slots.pop(next_write):
                result.add(outcome)
                emit(outcome)
            next_write += 1

    try:
        while True:
            if reading and stop():
                reading, result.interrupted = False, True
            # wait for input only when nothing else is under way (a slow pipe still gets the
            # consults of the lines it sent)
            while (reading and len(slots) < READ_AHEAD_PER_WORKER * len(workers)
                   and (not slots or ready())):
                if not read_chunk():
                    break
            dispatch()
            flush_done()
            if not slots and not reading:
                break
            busy = [w for w in workers if w.jobs or not w.ready]
            if not busy:
                continue
            woken = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
            for worker in busy:
                if worker.conn not in woken and worker.proc.sentinel not in woken:
                    continue
                message = None
                try:
                    if worker.conn.poll():
                        message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is None:
                    if not worker.ready:
                        start_failures += 1
                        if start_failures > 3 * jobs:
                            raise WorkerFailed("worker processes keep stopping while they start "
                                               f"({worker.death_note()})")
                    _replace(workers, worker, ctx, setup, todo, slots, source)
                    continue
                tag, payload = message
                if tag == "fatal":
                    raise WorkerFailed(payload)
                if tag == "ready":
                    worker.ready = True
                    continue
                key, offset = tag
                sent = worker.jobs.popleft()     # a worker answers its chunks in the order sent
                assert sent[:2] == (key, offset), (sent[:2], tag)
                for i, outcome in enumerate(payload):
                    slots[key][offset + i] = outcome
            dispatch()          # before writing: the workers go on while the parent writes
            flush_done()
    finally:
        for worker in workers:
            worker.stop()
    return result


def _replace(workers, worker, ctx, setup, todo, slots, source):
    """A worker died: the lines of the chunk it was consulting are tried again one at a time
    (or fail, if alone), the chunks queued behind it go back as they were, and a fresh worker
    takes its place."""
    note = worker.death_note()
    worker.conn.close()
    for queued in reversed(list(worker.jobs)[1:]):
        todo.appendleft(queued)
    if worker.jobs:
        key, offset, items = worker.jobs[0]
        if len(items) > 1:
            for i in reversed(range(len(items))):
                todo.appendleft((key, offset + i, [items[i]]))
        else:
            number, _ = items[0]
            slots[key][offset] = Outcome(number, error=(
                f"{source}:{number}: the worker process consulting this line stopped ({note}); "
                "this line was not consulted"))
    workers[workers.index(worker)] = _Worker(ctx, setup)
