"""What clinicians did with the cards, rule by rule, kept in SQLite for the rule authors.

Every card served is logged (its uuid, rule id and the rule base's digest), so that feedback
about a card is stored against the rule and the exact rule base that produced it. WAL mode and
short transactions let several server workers write at once; a card's uuid and a token's jti
are primary keys, so the database itself refuses a duplicate.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    uuid TEXT PRIMARY KEY, service TEXT NOT NULL, hook_instance TEXT NOT NULL,
    rule TEXT NOT NULL, digest TEXT NOT NULL, indicator TEXT NOT NULL, summary TEXT NOT NULL,
    served_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, card TEXT NOT NULL REFERENCES cards(uuid),
    service TEXT NOT NULL, rule TEXT NOT NULL, digest TEXT NOT NULL, outcome TEXT NOT NULL,
    override_code TEXT, override_display TEXT, comment TEXT, outcome_time TEXT,
    received_at TEXT NOT NULL, extension TEXT);
CREATE TABLE IF NOT EXISTS tokens (jti TEXT PRIMARY KEY, expires INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS feedback_rule ON feedback(rule);
"""
OUTCOMES = ("accepted", "overridden")
_ITEM_KEYS = {"card", "outcome", "outcomeTimestamp", "overrideReason", "acceptedSuggestions",
              "extension"}


class FeedbackError(ValueError):
    """Feedback the store cannot keep as given (the server answers 400 with the message)."""


class _Borrowed:
    """A kept connection lent to a `with closing(...)` block: closing it keeps it open, and a
    transaction the block left open (an exception) is rolled back."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __getattr__(self, name):
        return getattr(self._db, name)

    def close(self):
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")


def default_path() -> Path:
    """Per user: $XDG_DATA_HOME/cno-pathway/feedback.sqlite3 (~/.local/share/... by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "cno-pathway" / "feedback.sqlite3"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FeedbackStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._connections: dict[tuple, sqlite3.Connection] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Workers start together: switching a new database to WAL can meet another worker's
        # lock without SQLite's busy handler waiting for it, so the setup is tried again.
        for attempt in range(100):
            try:
                with closing(self._connect()) as db:
                    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05 + 0.01 * attempt)

    def _connect(self) -> sqlite3.Connection:
        """One connection per process and thread, kept open (opening one costs more than the
        write). synchronous=NORMAL in WAL mode: a commit survives a crash of the service; only
        a power cut may lose the last commits, never the database's consistency."""
        key = (os.getpid(), threading.get_ident())
        db = self._connections.get(key)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA synchronous=NORMAL")
            self._connections[key] = db
        return _Borrowed(db)

    def log_cards(self, service: str, hook_instance: str, digest: str, cards: list[dict]) -> None:
        rows = [(c["uuid"], service, hook_instance, c["source"]["topic"]["code"], digest,
                 c["indicator"], c["summary"], _now()) for c in cards]
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR IGNORE INTO cards VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def record(self, service: str, body) -> int:
        """Store a CDS Hooks feedback body ({"feedback": [...]}); all items or none."""
        items = body.get("feedback") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise FeedbackError("the body must be {\"feedback\": [ ... ]} with at least one item")
        rows = []
        with closing(self._connect()) as db:
            for index, item in enumerate(items):
                where = f"feedback[{index}]"
                if not isinstance(item, dict):
                    raise FeedbackError(f"{where}: must be an object")
                unknown = sorted(set(item) - _ITEM_KEYS)
                if unknown:
                    raise FeedbackError(f"{where}.{unknown[0]}: not a CDS Hooks feedback field")
                if item.get("acceptedSuggestions"):
                    raise FeedbackError(f"{where}.acceptedSuggestions: this service's cards carry "
                                        "no suggestions")
                card, outcome = item.get("card"), item.get("outcome")
                if outcome not in OUTCOMES:
                    raise FeedbackError(f"{where}.outcome: must be one of {', '.join(OUTCOMES)}")
                found = db.execute("SELECT rule, digest, service FROM cards WHERE uuid = ?",
                                   (card,)).fetchone() if isinstance(card, str) else None
                if found is None:
                    raise FeedbackError(f"{where}.card: {card!r} is not a card this service served")
                if found[2] != service:
                    raise FeedbackError(f"{where}.card: served by {found[2]}, not {service}")
                override = item.get("overrideReason") or {}
                if not isinstance(override, dict):
                    raise FeedbackError(f"{where}.overrideReason: must be an object")
                if override and outcome != "overridden":
                    raise FeedbackError(f"{where}: an overrideReason needs outcome overridden")
                reason = override.get("reason") or {}
                comment = override.get("userComment")
                if comment is not None and not isinstance(comment, str):
                    raise FeedbackError(f"{where}.overrideReason.userComment: must be text")
                when = item.get("outcomeTimestamp")
                extension = item.get("extension")
                rows.append((card, service, found[0], found[1], outcome,
                             reason.get("code") if isinstance(reason, dict) else None,
                             reason.get("display") if isinstance(reason, dict) else None,
                             comment, when if isinstance(when, str) else None, _now(),
                             json.dumps(extension, sort_keys=True) if extension is not None else None))
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO feedback (card, service, rule, digest, outcome, "
                           "override_code, override_display, comment, outcome_time, received_at, "
                           "extension) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        return len(rows)

    def claim_token(self, jti: str, expires: int) -> bool:
        """True the first time a token id is seen; False for a replay."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM tokens WHERE expires < ?", (int(time.time()) - 3600,))
            try:
                db.execute("INSERT INTO tokens VALUES (?, ?)", (jti, expires))
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                return False
            db.execute("COMMIT")
            return True

    # -- reading -------------------------------------------------------------------------------------
    def outcomes(self) -> list[dict]:
        with closing(self._connect()) as db:
            cursor = db.execute("SELECT f.*, c.summary FROM feedback f JOIN cards c ON "
                                "c.uuid = f.card ORDER BY f.id")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def summary(self) -> list[dict]:
        """Per rule: cards served, accepted, overridden, rates, the commonest override reasons."""
        with closing(self._connect()) as db:
            served = Counter(dict(db.execute("SELECT rule, COUNT(*) FROM cards GROUP BY rule")))
            rows = db.execute("SELECT rule, outcome, override_code, override_display FROM feedback "
                              "ORDER BY id").fetchall()
        out = []
        for rule in sorted(set(served) | {r[0] for r in rows}):
            mine = [r for r in rows if r[0] == rule]
            accepted = sum(r[1] == "accepted" for r in mine)
            overridden = sum(r[1] == "overridden" for r in mine)
            answered = accepted + overridden
            reasons = Counter(r[3] or r[2] or "(no reason given)" for r in mine if r[1] == "overridden")
            out.append({"rule": rule, "served": served.get(rule, 0), "accepted": accepted,
                        "overridden": overridden,
                        "acceptance_rate": round(accepted / answered, 3) if answered else None,
                        "override_rate": round(overridden / answered, 3) if answered else None,
                        "top_override_reasons": [{"reason": k, "count": v} for k, v in
                                                 sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]})
        return out
