"""A cache of the parsed rule base and evidence library, keyed by their content digest.

Parsing and checking rules/ and seeds/ dominates the start-up of a one-off consult; their
content rarely changes, so the parsed objects are pickled under the digest of every file in
both folders (plus the program and Python versions). Any edit changes the digest and the
cache is simply missed. CNO_PATHWAY_CACHE=off disables it; CNO_PATHWAY_CACHE_DIR moves it.
A cache that cannot be read or written is ignored: it only ever saves time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
from pathlib import Path
from typing import Callable, TypeVar

from .. import __version__
from .rulebook import content_digest

T = TypeVar("T")


def cache_dir() -> Path | None:
    if os.environ.get("CNO_PATHWAY_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    chosen = os.environ.get("CNO_PATHWAY_CACHE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "cno-pathway"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The program's own source: a changed parser must not read an old parse."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cached(directories: list[Path], build: Callable[[], T], kind: str = "knowledge") -> T:
    """Return build(), from the cache when the folders' content has been built before.
    `kind` names what is cached (the parsed knowledge, a lint report...)."""
    where = cache_dir()
    if where is None:
        return build()
    digest = content_digest(*directories)
    key = hashlib.sha256(f"{digest}|{_code_digest()}|{__version__}|{sys.version}|"
                         f"{[str(d.resolve()) for d in directories]}".encode()).hexdigest()[:32]
    path = where / f"{kind}-{key}.pickle"
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        pass
    value = build()
    try:
        where.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except OSError:
        pass
    return value
