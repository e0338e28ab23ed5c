"""A cache of parsed rule and evidence files that can only ever be a cache.

Parsing YAML dominates loading rules/ and seeds/ (about 23 of 27 ms; the typed checks take the
rest), so the plain data each file parses to (values and their lines) is kept as JSON, under the
sha256 of the very bytes that were read (and of the parser's own source). On a hit the data
still goes through the same typed checks as a fresh parse. Nothing executable is ever loaded:
no pickle, no marshal, no code.

An entry holds the data and, beside it, the line of each value as a tree that mirrors the data
(a key or an index -> [line, subtree]): a lookup costs the depth of its path, and the 8,000 paths of
the rule base are never decoded or built one by one (that took two thirds of a hit's time).

An entry is used only if it is a regular file owned by this user, not writable by others, holds
its own key and a matching checksum of its payload, and parses back as plain data (a line that
is not a whole number reads as unknown); anything else is ignored and rebuilt, so a corrupted, foreign or stale entry costs time and never changes a
result. The folder is created private (0700); entries unused for PRUNE_DAYS are deleted; a cache
that cannot be written (read-only, full disk) is ignored. CNO_PATHWAY_CACHE=off disables it;
CNO_PATHWAY_CACHE_DIR moves it.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TypeVar

import orjson

from .. import __version__
from ..yamlio import Document, knowledge_snapshot

T = TypeVar("T")

FORMAT = "cno-pathway/document-cache/3"
OBJECT_FORMAT = "cno-pathway/knowledge-cache/2"
PRUNE_DAYS = 30
MAX_ENTRIES = 500
MAX_ENTRY_BYTES = 64 * 1024 * 1024
_PREFIX = "doc-"
_OBJECT_PREFIX = "kb-"


def cache_dir() -> Path | None:
    if os.environ.get("CNO_PATHWAY_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    chosen = os.environ.get("CNO_PATHWAY_CACHE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except (RuntimeError, KeyError, OSError):  # no home folder: no cache, no failure
            return None
    return Path(base) / "cno-pathway"


@functools.lru_cache(maxsize=1)
def _parser_digest() -> str:
    """What an entry depends on besides the bytes: the reader's source and versions, and this
    module's own (how entries are written and read back)."""
    import yaml

    from .. import yamlio

    h = hashlib.sha256(f"{FORMAT}|{__version__}|{yaml.__version__}|".encode())
    h.update(Path(yamlio.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def entry_key(raw: bytes) -> str:
    return hashlib.sha256(_parser_digest().encode() + b"\0" + raw).hexdigest()


class DocumentStore:
    """Parsed documents as JSON files in one private folder (see the module docstring)."""

    def __init__(self, where: Path):
        self.where = where
        self.usable = self._prepare()
        self.wrote = False

    def _prepare(self) -> bool:
        """Create the folder private, or accept an existing one only if it is ours and private."""
        try:
            self.where.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.where)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                return False
            if info.st_mode & 0o077:
                os.chmod(self.where, 0o700)  # a folder an older version left readable to others
            return True
        except OSError:
            return False

    def _path(self, key: str, prefix: str = _PREFIX) -> Path:
        return self.where / f"{prefix}{key}.json"

    def _read(self, path: Path) -> bytes | None:
        """An entry's bytes, if it is a regular file of ours that others cannot write."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            info = os.fstat(fd)  # checked on the open file: no swap between check and read
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                    or info.st_mode & 0o022 or info.st_size > MAX_ENTRY_BYTES):
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.read(MAX_ENTRY_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _write(self, path: Path, make_blob: Callable[[], bytes]) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            blob = make_blob()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                with os.fdopen(fd, "wb", closefd=False) as handle:
                    handle.write(blob)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            self.wrote = True
        except (OSError, ValueError, TypeError, RecursionError):
            # full disk, read-only folder, or data JSON cannot hold: the cache only saves time
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def load(self, raw: bytes, label: str) -> Document | None:
        if not self.usable:
            return None
        key = entry_key(raw)
        blob = self._read(self._path(key))
        return None if blob is None else _decode(blob, key, label)

    def save(self, raw: bytes, doc: Document) -> None:
        if self.usable:
            key = entry_key(raw)
            self._write(self._path(key), lambda: _encode(doc, key))

    def load_objects(self, key: str):
        """The knowledge objects stored under `key` (knowledge/plain.py), or None."""
        if not self.usable:
            return None
        blob = self._read(self._path(key, _OBJECT_PREFIX))
        if blob is None:
            return None
        from .plain import decode

        payload = _checked_payload(blob, key, OBJECT_FORMAT)
        if payload is None:
            return None
        try:
            return decode(orjson.loads(payload))
        except (ValueError, TypeError, KeyError, RecursionError, AttributeError):
            return None

    def save_objects(self, key: str, objects) -> None:
        if self.usable:
            from .plain import encode

            self._write(self._path(key, _OBJECT_PREFIX),
                        lambda: _framed(orjson.dumps(encode(objects)), key, OBJECT_FORMAT))

    def prune(self, now: float | None = None) -> None:
        """Delete entries unused for PRUNE_DAYS, the oldest beyond MAX_ENTRIES, and the pickles and
        jinja2 bytecode older versions left (never loaded)."""
        if not self.usable:
            return
        now = time.time() if now is None else now
        try:
            entries = []
            for entry in os.scandir(self.where):
                name = entry.name
                info = entry.stat(follow_symlinks=False)
                if info.st_uid != os.geteuid():
                    continue
                if name.endswith(".pickle") or (name.endswith(".tmp") and now - info.st_mtime > 3600):
                    os.unlink(entry.path)
                elif name == "templates" and entry.is_dir(follow_symlinks=False):
                    for old in os.scandir(entry.path):
                        if old.name.startswith("__jinja2_") and old.is_file(follow_symlinks=False):
                            os.unlink(old.path)
                    try:
                        os.rmdir(entry.path)
                    except OSError:
                        pass
                elif name.startswith((_PREFIX, _OBJECT_PREFIX)) and name.endswith(".json"):
                    entries.append((max(info.st_mtime, info.st_atime), entry.path))
            entries.sort(reverse=True)
            for index, (used, path) in enumerate(entries):
                if index >= MAX_ENTRIES or now - used > PRUNE_DAYS * 86400:
                    os.unlink(path)
        except OSError:
            pass


def _line_tree(lines: dict) -> tuple[dict | list | None, int | None]:
    """{path: line} -> (tree, line of the whole document). A node is a dict for the keys of a
    mapping and a list for the indexes of a list, like the data; each entry is [line or None,
    node of what it holds or None], a missing index None."""
    tree: dict = {}
    top = None
    for path, line in lines.items():
        if not path:
            top = line
            continue
        node = tree
        for part in path[:-1]:
            entry = node.setdefault(part, [None, None])
            if entry[1] is None:
                entry[1] = {}
            node = entry[1]
        node.setdefault(path[-1], [None, None])[0] = line
    return _as_lists(tree), top


def _as_lists(node):
    """The nodes keyed by list indexes (ints) as lists; keys must be all text or all indexes."""
    if node is None:
        return None
    for entry in node.values():
        entry[1] = _as_lists(entry[1])
    kinds = {type(part) for part in node}
    if kinds == {int}:
        if min(node) < 0:
            raise ValueError("a negative list index")
        out = [None] * (max(node) + 1)
        for index, entry in node.items():
            out[index] = entry
        return out
    if kinds - {str}:
        raise TypeError("a path mixes keys and indexes, or holds another type")
    return node


class TreeLines(Mapping):
    """A cached document's {path: line}, read from the stored tree; the same answers as the dict
    a fresh parse builds. A stored line that is not a whole number (or a node of the wrong
    shape) reads as absent: a message then names the nearest line that is known."""

    __slots__ = ("_tree", "_top", "_flat")

    def __init__(self, tree: dict | list | None, top: int | None):
        self._tree = tree
        self._top = top
        self._flat: dict | None = None

    def nearest(self, path: tuple) -> int | None:
        """The line of `path`, else of its nearest ancestor that has one (Document.line), in
        one walk down the tree."""
        return self._walk(path)[0]

    def _find(self, path) -> int | None:
        """The line of `path` itself; None when it has none or is not there."""
        return self._walk(path)[1] if type(path) is tuple else None

    def _walk(self, path: tuple) -> tuple[int | None, int | None]:
        """(the line of the deepest node along `path` that has one, the line of `path` itself
        or None), one step at a time down the tree."""
        nearest = own = self._top
        node = self._tree
        for part in path:
            kind = type(part)
            if kind is str and type(node) is dict:
                entry = node.get(part)
            elif kind is int and type(node) is list and 0 <= part < len(node):
                entry = node[part]
            else:
                return nearest, None
            if type(entry) is not list or len(entry) != 2:
                return nearest, None
            own, node = entry
            if type(own) is int:
                nearest = own
        return nearest, own if type(own) is int else None

    def __getitem__(self, path) -> int:
        line = self._find(path)
        if line is None:
            raise KeyError(path)
        return line

    def __contains__(self, path) -> bool:
        return self._find(path) is not None

    def _all(self) -> dict:
        if self._flat is None:
            flat = {} if self._top is None else {(): self._top}
            stack = [((), self._tree)]
            while stack:
                prefix, node = stack.pop()
                if type(node) is dict:
                    items = node.items()
                elif type(node) is list:
                    items = enumerate(node)
                else:
                    continue
                for part, entry in items:
                    if type(entry) is not list or len(entry) != 2:
                        continue
                    path = prefix + (part,)
                    if type(entry[0]) is int:
                        flat[path] = entry[0]
                    stack.append((path, entry[1]))
            self._flat = flat
        return self._flat

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class CachedDocument(Document):
    """A Document read from the cache: its lines are a TreeLines, and line() asks it in one walk
    (a parser asks for some 1,200 lines per load, many of them nearest-ancestor lookups)."""

    def line(self, path: tuple | list) -> int | None:
        lines = self.lines
        if isinstance(lines, TreeLines):
            return lines.nearest(tuple(path))
        return super().line(path)


def _framed(payload: bytes, key: str, fmt: str) -> bytes:
    """An entry: a header line naming its format, its key and its payload's checksum."""
    header = json.dumps({"format": fmt, "key": key,
                         "sha256": hashlib.sha256(payload).hexdigest()}).encode("ascii")
    return header + b"\n" + payload


def _checked_payload(blob: bytes, key: str, fmt: str) -> bytes | None:
    """The payload of an entry whose header names this format and key and whose checksum holds."""
    header, sep, payload = blob.partition(b"\n")
    try:
        meta = json.loads(header)
    except (ValueError, RecursionError):
        return None
    if (not sep or not isinstance(meta, dict) or meta.get("format") != fmt
            or meta.get("key") != key
            or meta.get("sha256") != hashlib.sha256(payload).hexdigest()):
        return None
    return payload


def _encode(doc: Document, key: str) -> bytes:
    tree, top = _line_tree(doc.lines)
    payload = json.dumps({"data": doc.data, "lines": tree, "top": top},
                         ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")
    return _framed(payload, key, FORMAT)


def _loads(payload: bytes):
    """orjson reads the payload (it is JSON that json.dumps wrote); json only for what orjson
    refuses and json reads (NaN, numbers beyond 64 bits)."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


def _decode(blob: bytes, key: str, label: str) -> Document | None:
    """The Document in an entry, or None if anything about it is off."""
    payload = _checked_payload(blob, key, FORMAT)
    if payload is None:
        return None
    try:
        body = _loads(payload)
        tree, top = body["lines"], body["top"]
        if type(tree) not in (dict, list, type(None)) or (top is not None and type(top) is not int):
            return None
        return CachedDocument(data=body["data"], source=label, lines=TreeLines(tree, top))
    except (ValueError, TypeError, KeyError, RecursionError, AttributeError):
        return None


@contextmanager
def document_cache():
    """Inside: rule and evidence files are read once each, and parsed from the cache when these
    bytes were parsed before. Yields the store (None when the cache is off or unusable)."""
    where = cache_dir()
    store = DocumentStore(where) if where is not None else None
    with knowledge_snapshot(store):
        yield store if store is not None and store.usable else None
    if store is not None and store.wrote:
        store.prune()


def cached(directories: list[Path], build: Callable[[], T], kind: str = "knowledge",
           code: tuple = ()) -> T:
    """build() with the document cache on: the parse of each file it reads may come from the
    cache. For the knowledge (kind "knowledge": the rule base and the evidence library) the
    finished objects are kept too, under the digest of every file of `directories` and of the
    program's code that builds them (knowledge_key; `code`: functions from other modules the
    build calls): the same files and program give the same objects, read back checked
    (knowledge/plain.py) instead of parsed and checked again."""
    with document_cache() as store:
        key = (knowledge_key(directories, build, code)
               if store is not None and kind == "knowledge" else None)
        if key is not None:
            found = store.load_objects(key)
            if found is not None:
                return _long_lived(found)
        result = build()
        if key is not None:
            store.save_objects(key, result)
        return _long_lived(result) if kind == "knowledge" else result


_keep_frozen = False        # set by a process that keeps its long-lived objects frozen


def keep_knowledge_frozen() -> None:
    """This process keeps its long-lived objects out of the collector's sight (the one-shot
    command line freezes them after start-up): knowledge loaded from now on is frozen too."""
    global _keep_frozen
    _keep_frozen = True


def _long_lived(knowledge: T) -> T:
    """The knowledge lives as long as its pathway, often as long as the process, and holds no
    garbage: it goes straight to the collector's oldest generation instead of being rescanned
    by the young collections it would survive anyway (some 70,000 objects for a 2,050-rule
    base: 6 ms for the first young collection and 7.6 ms for the next, measured in a consult).
    A process that keeps its long-lived objects frozen (keep_knowledge_frozen) freezes these
    with them. In any other, where nothing is frozen, freeze then unfreeze moves every object to
    the oldest generation, where a full collection still looks at it, and leaves nothing
    frozen. Where something else is frozen (the host program's objects; Python 3.12 freezes a
    few hundred of its own at start-up), unfreezing would release those too: nothing is done."""
    if _keep_frozen:
        gc.freeze()
    elif gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    return knowledge


def knowledge_key(directories: list[Path], build: Callable, code: tuple = ()) -> str | None:
    """The key of the objects build() makes from these folders: the names and bytes of every
    file in them (read once: the build reads the same bytes), the folders as given (objects
    remember them), and the source of the code that parses and checks (knowledge/, yamlio, the
    module of `build` and of each function in `code`). None if a folder cannot be digested
    (build() then says why)."""
    from ..errors import InputError
    from .rulebook import content_digest

    modules = tuple(sorted({getattr(f, "__module__", "") or "" for f in (build, *code)}))
    try:
        digest = content_digest(*directories)
        program = _code_digest(modules)
    except (InputError, OSError):
        return None
    h = hashlib.sha256(f"{OBJECT_FORMAT}|{__version__}|{_parser_digest()}|{program}|{digest}|".encode())
    for directory in directories:
        h.update(os.fsencode(str(directory)) + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _code_digest(module_names: tuple[str, ...]) -> str:
    """What the built objects depend on in the program: every module of knowledge/, yamlio and
    the named modules, each by name, size and modification time (as Python itself tells a
    stale .pyc from its source), without reading them at every start."""
    import sys

    from .. import yamlio

    package = Path(__file__).resolve().parent
    files = sorted(package / name for name in os.listdir(package) if name.endswith(".py"))
    files.append(Path(yamlio.__file__))
    for name in module_names:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            files.append(Path(module.__file__))
    h = hashlib.sha256()
    for path in files:
        info = path.stat()
        h.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    return h.hexdigest()
