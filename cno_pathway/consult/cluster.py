"""`batch --dask ADDRESS|local`: a cohort consulted by Dask workers, written in input order.

For a cohort one machine cannot finish in time (a registry or a simulated population): the
JSON Lines input is cut into partitions of lines, each partition is consulted on a Dask worker
with the same `consult_line` as every other route (so the bytes are the same), and the parent
writes the partitions in input order, holding only a few in flight (memory stays flat).
Each worker process builds the pathway once and keeps it (per rule folder).

Needs the optional extra: `pip install cno-pathway[cluster]`. The rule folder (`--rules`) must
be readable at the same path on the workers; the built-in rules travel with the package.
A partition whose worker dies is consulted again line by line, and a line that kills its
worker again is reported as failed; the batch goes on.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

from .batch import GAVE_UP, BatchResult, Outcome, consult_line

PARTITION_LINES = 256
IN_FLIGHT_PER_WORKER = 2
_PATHWAYS: dict = {}      # in each worker process: rule folder -> Pathway, built once


class ClusterUnavailable(Exception):
    """Dask is not installed, or the scheduler cannot be reached."""


def consult_partition(rules_dir: str | None, formulary: str | None, source: str, items: list,
                      write_json: bool) -> list:
    """Runs on a worker: consult a partition's numbered lines."""
    pathway = _PATHWAYS.get((rules_dir, formulary))
    if pathway is None:
        from .consult import Pathway

        pathway = _PATHWAYS[(rules_dir, formulary)] = Pathway.load(rules_dir, formulary=formulary)
    return [consult_line(pathway, number, raw, source, write_json=write_json)
            for number, raw in items]


def _client(address: str):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterUnavailable("--dask needs the optional extra: pip install "
                                 "'cno-pathway[cluster]'") from None
    if address == "local":
        from .parallel import available_cores

        cluster = LocalCluster(n_workers=available_cores(), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.ERROR)
        return Client(cluster), cluster
    try:
        return Client(address, timeout="20s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterUnavailable(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def run_dask(lines: Iterator[tuple[int, bytes | str]], source: str, *, address: str,
             rules_dir: Path | None, emit: Callable[[Outcome], None],
             formulary: Path | None = None, write_json: bool = True,
             stop: Callable[[], bool] = lambda: False, result: BatchResult | None = None,
             partition_lines: int = PARTITION_LINES, client=None) -> BatchResult:
    """Consult numbered lines on a Dask cluster (`address`, or "local" for a local cluster of
    processes, or an existing `client`); `emit` receives the Outcomes in input order."""
    result = result or BatchResult()
    cluster = None
    if client is None:
        client, cluster = _client(address)
        own = True
    else:
        own = False
    rules = str(rules_dir) if rules_dir is not None else None
    formulary_file = str(formulary) if formulary is not None else None
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        pending: deque = deque()        # futures of partitions in input order
        source_iter = iter(lines)
        reading = True
        while reading or pending:
            while reading and len(pending) < IN_FLIGHT_PER_WORKER * workers:
                if stop():
                    reading, result.interrupted = False, True
                    break
                items = []
                try:
                    for number, raw in source_iter:
                        items.append((number, raw))
                        if raw == GAVE_UP:
                            result.stopped, reading = GAVE_UP, False
                            break
                        if len(items) >= partition_lines:
                            break
                    else:
                        reading = False
                except KeyboardInterrupt:   # while waiting for input: lines read so far are done
                    reading, result.interrupted = False, True
                if items:
                    pending.append((items, client.submit(consult_partition, rules, formulary_file, source, items,
                                                         write_json, pure=False)))
            if not pending:
                break
            items, future = pending.popleft()
            for outcome in _gather(client, future, rules, source, items, write_json):
                result.add(outcome)
                emit(outcome)
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    return result


def _gather(client, future, rules, source, items, write_json) -> list[Outcome]:
    """A partition's outcomes; when its worker died, its lines one by one on fresh workers."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        if len(items) == 1:
            number = items[0][0]
            return [Outcome(number, error=(
                f"{source}:{number}: the worker process consulting this line stopped "
                f"({exc.__class__.__name__}); this line was not consulted"))]
        singles = [client.submit(consult_partition, rules, formulary_file, source, [item], write_json, pure=False)
                   for item in items]
        out = []
        for item, single in zip(items, singles):
            out.extend(_gather(client, single, rules, source, [item], write_json))
        return out
