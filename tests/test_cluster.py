"""`batch --dask`: a cohort consulted on a Dask cluster of processes (a distributed.LocalCluster
on 127.0.0.1) writes the same bytes, in the same order, as one process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

distributed = pytest.importorskip("distributed", reason="the optional [cluster] extra "
                                  "(dask, distributed) is not installed")

from cno_pathway.consult.batch import run_batch  # noqa: E402
from cno_pathway.consult.cluster import run_dask  # noqa: E402


@pytest.fixture(scope="module")
def client(fixture_rules, fixture_seeds):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNO_PATHWAY_SEEDS", str(fixture_seeds))   # the workers inherit it
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


def _lines(vocab, gen, n=120):
    rng = random.Random(21)
    out = []
    for i in range(n):
        data = gen.profile(rng, vocab)
        data["id"] = f"p{i}"
        out.append((i + 1, (json.dumps(data) if i % 29 != 3 else "{broken").encode() + b"\n"))
    return out


def test_a_dask_batch_gives_the_outcomes_of_one_process_in_order(client, fixture_pathway,
                                                                  fixture_rules, vocab, gen):
    lines = _lines(vocab, gen)
    serial, clustered = [], []
    run_batch(fixture_pathway, iter(lines), "c.jsonl", emit=serial.append)
    result = run_dask(iter(lines), "c.jsonl", address="unused", rules_dir=fixture_rules,
                      emit=clustered.append, client=client, partition_lines=16)
    assert clustered == serial
    assert result.failed == len([n for n, raw in lines if raw.startswith(b"{broken")]) > 0
    assert result.ok + result.failed == len(lines)


def test_batch_dask_local_writes_the_bytes_of_jobs_1(fixture_env, vocab, gen, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_bytes(b"".join(raw for _, raw in _lines(vocab, gen, 60)))
    env = dict(os.environ, **fixture_env)
    runs = {}
    for option in (["--jobs", "1"], ["--dask", "local"]):
        proc = subprocess.run([sys.executable, "-m", "cno_pathway", "batch", str(path), *option],
                              capture_output=True, env=env, timeout=300)
        assert proc.returncode == 2, proc.stderr[-500:]
        runs[option[0]] = (proc.stdout, [line for line in proc.stderr.splitlines()
                                         if line.startswith(b"cno-pathway:")])
    assert runs["--jobs"] == runs["--dask"]
    assert len(runs["--jobs"][0].splitlines()) == 58


def test_an_unreachable_scheduler_is_one_line_and_exit_1(fixture_env, tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text('{"age_years": 10, "diagnosis": "cno", "lesions": {"count": 3}}\n')
    env = dict(os.environ, **fixture_env)
    proc = subprocess.run([sys.executable, "-m", "cno_pathway", "batch", str(path), "--dask",
                           "tcp://127.0.0.1:9"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr
