"""The feedback store (interop/feedback.py) without a server: WAL mode, concurrent writers in
several processes, feedback kept against the served card's rule and rule-base digest, refusals
that name the item, token replay, and the per-rule summary."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3
import uuid

import pytest

from cno_pathway.interop.feedback import FeedbackError, FeedbackStore, default_path


def _card(rule: str, indicator: str = "info") -> dict:
    return {"uuid": str(uuid.uuid4()), "indicator": indicator, "summary": f"card of {rule}",
            "source": {"label": "x", "topic": {"code": rule}}}


def test_wal_mode_and_a_per_user_default(tmp_path, monkeypatch):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "cno-pathway" / "feedback.sqlite3"


def _writer(path: str, worker: int, count: int) -> None:
    store = FeedbackStore(path)
    for n in range(count):
        card = _card(f"RULE-{worker}")
        store.log_cards("svc", f"hook-{worker}-{n}", "sha256:abc", [card])
        store.record("svc", {"feedback": [{"card": card["uuid"], "outcome": "accepted"}]})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "fb.sqlite3")
    FeedbackStore(path)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    summary = {r["rule"]: r for r in FeedbackStore(path).summary()}
    assert {r: (s["served"], s["accepted"]) for r, s in summary.items()} == \
        {f"RULE-{w}": (25, 25) for w in range(4)}


def test_feedback_is_stored_against_the_rule_and_digest_of_the_card(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    a, b = _card("CNO-A"), _card("CNO-B", "warning")
    store.log_cards("svc", "h1", "sha256:one", [a, b])
    stored = store.record("svc", {"feedback": [
        {"card": a["uuid"], "outcome": "accepted"},
        {"card": b["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z",
         "overrideReason": {"reason": {"code": "patient-specific", "display": "Does not fit"},
                            "userComment": "twin sister had the same"}}]})
    assert stored == 2
    rows = store.outcomes()
    assert [(r["rule"], r["digest"], r["outcome"]) for r in rows] == [
        ("CNO-A", "sha256:one", "accepted"), ("CNO-B", "sha256:one", "overridden")]
    assert rows[1]["override_code"] == "patient-specific" and rows[1]["comment"] == "twin sister had the same"
    summary = {r["rule"]: r for r in store.summary()}
    assert summary["CNO-B"]["override_rate"] == 1.0
    assert summary["CNO-B"]["top_override_reasons"] == [{"reason": "Does not fit", "count": 1}]
    assert summary["CNO-A"]["acceptance_rate"] == 1.0


@pytest.mark.parametrize("body, message", [
    ({}, "at least one item"),
    ({"feedback": [{"card": "nope", "outcome": "accepted"}]}, "feedback[0].card"),
    ({"feedback": [{"card": "CARD", "outcome": "maybe"}]}, "feedback[0].outcome"),
    ({"feedback": [{"card": "CARD", "outcome": "accepted", "overrideReason": {"userComment": "x"}}]},
     "needs outcome overridden"),
    ({"feedback": [{"card": "CARD", "outcome": "accepted", "score": 5}]}, "feedback[0].score"),
    ({"feedback": [{"card": "CARD", "outcome": "accepted", "acceptedSuggestions": [{"id": "x"}]}]},
     "carry no suggestions"),
])
def test_feedback_that_cannot_be_kept_is_refused_whole(tmp_path, body, message):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    card = _card("CNO-A")
    store.log_cards("svc", "h1", "sha256:one", [card])
    text = json.dumps(body).replace("CARD", card["uuid"])
    with pytest.raises(FeedbackError, match=re.escape(message)):
        store.record("svc", json.loads(text))
    assert store.outcomes() == []


def test_feedback_for_another_services_card_is_refused(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    card = _card("CNO-A")
    store.log_cards("svc-1", "h1", "sha256:one", [card])
    with pytest.raises(FeedbackError, match="served by svc-1"):
        store.record("svc-2", {"feedback": [{"card": card["uuid"], "outcome": "accepted"}]})


def test_a_token_id_is_claimed_once(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    assert store.claim_token("jti-1", 2_000_000_000) is True
    assert store.claim_token("jti-1", 2_000_000_000) is False
    assert FeedbackStore(store.path).claim_token("jti-1", 2_000_000_000) is False



def test_a_worker_opening_the_database_waits_for_another_workers_write(tmp_path):
    """uvicorn starts its workers at once: one may switch the new database to WAL while another
    holds a write lock, which SQLite refuses at once rather than waiting; the store waits."""
    import threading

    path = tmp_path / "new.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (a)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        store = FeedbackStore(path)
    finally:
        release.join()
        other.close()
    assert store.outcomes() == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
