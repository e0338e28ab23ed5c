"""Safe YAML/JSON reading that remembers the line of every value.

Profiles, rule files and evidence files all come through here, so that every later error can
name file:line. Only plain data is built: tags that would construct objects, merge keys,
duplicate keys, alias bombs, deep nesting, huge files and bytes that are not UTF-8 are refused
with a message instead of being guessed at.
"""

from __future__ import annotations

import gc
import math
import os
import re
import stat
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

MAX_BYTES = 20 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"
_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
# libyaml's parser when PyYAML was built with it (much faster); same nodes, same marks
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple  # a path into the document: keys and list indexes


@dataclass
class Document:
    """Parsed data plus the line (1-based) where each path starts."""

    data: Any
    source: str
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path: tuple | list) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def read_document(path: Path | str, *, error: type[InputError] = InputError,
                  label: str | None = None, regular_only: bool = False) -> Document:
    """Read a YAML or JSON file (or '-' for stdin) into a Document.

    `regular_only` (the rule base and the evidence library): refuse anything but a regular file
    before reading it, so a FIFO or a device named *.yaml cannot hang or flood the program.
    Inside `knowledge_snapshot()` the bytes are read once and the parse may come from the
    document cache (knowledge/cache.py), keyed by those very bytes."""
    import sys

    label = label or str(path)
    if str(path) == "-":
        try:
            raw = sys.stdin.buffer.read(MAX_BYTES + 1)
        except (OSError, ValueError, AttributeError):
            raise error("cannot read standard input (closed?)", file="<stdin>") from None
        return parse_document(raw, source="<stdin>", error=error)
    raw = read_bytes(path, error=error, label=label, regular_only=regular_only)
    store = _DOCUMENT_STORE.get()
    if store is not None:
        doc = store.load(raw, label)
        if doc is not None:
            return doc
    doc = parse_document(raw, source=label, error=error)
    if store is not None:
        store.save(raw, doc)
    return doc


def read_bytes(path: Path | str, *, error: type[InputError] = InputError, label: str | None = None,
               regular_only: bool = False) -> bytes:
    """The bytes of a file, at most MAX_BYTES, with one clear error for every way reading fails.

    Inside `knowledge_snapshot()` a file is read once: the digest a consult prints and the rules
    it runs come from the same bytes, even if the file is edited meanwhile."""
    label = label or str(path)
    snapshot = _SNAPSHOT.get()
    key = os.path.abspath(path)
    if snapshot is not None and key in snapshot:
        return snapshot[key]
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if regular_only:
        flags |= getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not wait for a writer
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error("file not found", file=label) from None
    except IsADirectoryError:
        raise error("is a directory, not a file", file=label) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", file=label) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error("is a directory, not a file", file=label)
        if regular_only and not stat.S_ISREG(info.st_mode):
            raise error("not a regular file (a FIFO, device or socket is never read)", file=label)
        if stat.S_ISREG(info.st_mode) and info.st_size > MAX_BYTES:
            raise error(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", file=label)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", file=label) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise error(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", file=label)
    if snapshot is not None:
        snapshot[key] = raw
    return raw


# The bytes of every file read while the knowledge is loaded (see read_bytes), and the cache of
# parsed documents (knowledge/cache.py sets it): both live only for one load.
_SNAPSHOT: ContextVar[dict | None] = ContextVar("cno_pathway_snapshot", default=None)
_DOCUMENT_STORE: ContextVar[Any] = ContextVar("cno_pathway_document_store", default=None)


@contextmanager
def knowledge_snapshot(store=None):
    """Read each file once for the duration (nested calls share the outer snapshot); with
    `store`, parsed documents are looked up in and saved to it (an object with load(raw, label)
    -> Document | None and save(raw, Document))."""
    outer = _SNAPSHOT.get()
    token = _SNAPSHOT.set({} if outer is None else outer)
    store_token = _DOCUMENT_STORE.set(store) if store is not None else None
    try:
        yield
    finally:
        if store_token is not None:
            _DOCUMENT_STORE.reset(store_token)
        _SNAPSHOT.reset(token)


def parse_document(raw: bytes | str, *, source: str, error: type[InputError] = InputError) -> Document:
    """Parse YAML (JSON is a subset) into plain data with a line map."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_BYTES:
            raise error(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", file=source)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise error(f"not valid UTF-8 text (byte {exc.start} of the file)", file=source,
                        line=line) from None
    else:
        text = raw
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise error("contains a NUL byte: binary data, not a YAML or JSON document", file=source,
                    line=line)
    if not text.strip():
        raise error("the file is empty", file=source)
    with collector_paused():
        return _parse_text(text, source, error)


@contextmanager
def collector_paused():
    """Pause the cyclic garbage collector while a large, long-lived structure is built.

    Parsing a big file (or a whole rule base) allocates hundreds of thousands of objects that
    all stay alive; the collector would rescan them again and again (measured: a 36,000-line
    rule file parsed 5x slower with it running). Nothing built here is cyclic garbage, so
    collection simply waits until the build ends. Nested pauses are harmless."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_text(text: str, source: str, error) -> Document:
    loader = _Loader(text)
    try:
        return _EventBuilder(loader, source, error).document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"invalid YAML or JSON: {escape_controls(str(problem)[:200])}", file=source,
                    line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML or JSON: {escape_controls(str(exc)[:200])}", file=source) from None
    finally:
        loader.dispose()


class _EventBuilder:
    """Plain data straight from libyaml's event stream, in one pass and without recursion.

    Building from events rather than composed nodes means nesting is counted before anything
    deep is built (libyaml's own composer recurses in C and would crash on 100,000 brackets),
    aliases are expanded by copying with their size counted first (an alias bomb stops at
    MAX_NODES, not in memory), and each value's line is recorded as it is read."""

    def __init__(self, loader, source, error):
        self.loader = loader
        self.source = source
        self.error = error
        self.count = 0
        self.lines: dict[tuple, int] = {}
        self.anchors: dict[str, tuple[Any, int] | None] = {}  # None: still open (recursive)

    def fail(self, message, mark):
        raise self.error(message, file=self.source, line=mark.line + 1 if mark else None)

    def document(self) -> Document:
        get = self.loader.get_event
        get()  # the stream start
        event = get()
        if isinstance(event, yaml.StreamEndEvent):
            raise self.error("the file holds no document", file=self.source)
        data = self._value()
        get()  # the document end
        event = get()
        if not isinstance(event, yaml.StreamEndEvent):
            self.fail("invalid YAML or JSON: expected a single document, but found another "
                      "document", event.start_mark)
        return Document(data=data, source=self.source, lines=self.lines)

    def _counted(self, size, mark):
        self.count += size
        if self.count > MAX_NODES:
            self.fail(f"more than {MAX_NODES} values (YAML aliases expanding?); refused", mark)

    def _scalar(self, event, where=None):
        self._counted(1, event.start_mark)
        tag = event.tag
        text = event.value
        try:
            if tag is None and text == "<<" and event.implicit[0]:
                tag = _MERGE  # refused below, as YAML 1.1 would merge
            elif tag is None or tag == "!":
                # plain (unquoted) text is resolved by YAML 1.2 / JSON number syntax; quoted
                # text and the non-specific tag '!' are always text
                return resolve_plain(text) if event.implicit[0] and tag is None else text
            if tag == _STR or tag == _TIMESTAMP:
                return text  # dates stay text: nothing here needs a date object
            if tag in _EXPLICIT:
                return _EXPLICIT[tag](text)
        except NotANumber as exc:
            hint = ", or quote it if it is text" if "as written here" in str(exc) else ""
            raise self.error(f"{exc}{hint}", file=self.source, line=event.start_mark.line + 1,
                             field=where() if where else None) from None
        if tag == _MERGE:
            self.fail("YAML merge keys ('<<') are not allowed: write the keys out", event.start_mark)
        self.fail(f"YAML tag {bounded(tag)} is not allowed: only plain text, numbers, booleans and "
                  "null", event.start_mark)

    def _key(self, event, top):
        if event.tag is None or event.tag in ("!", _STR):
            self._counted(1, event.start_mark)
            if event.tag is None and event.value == "<<" and event.implicit[0]:
                self.fail("YAML merge keys ('<<') are not allowed: write the keys out", event.start_mark)
            return event.value
        return self._scalar(event, lambda: f"a key in {field_name(top[1])}" if top[1] else "a top-level key")

    def _alias(self, event):
        if event.anchor not in self.anchors:
            self.fail(f"invalid YAML or JSON: found undefined alias {bounded(event.anchor)}",
                      event.start_mark)
        anchored = self.anchors[event.anchor]
        if anchored is None:
            self.fail(f"YAML alias *{bounded(event.anchor)[1:-1]} refers to the value that contains it; refused",
                      event.start_mark)
        value, size = anchored
        self._counted(size, event.start_mark)
        return plain_copy(value)

    def _value(self):
        """The value whose first event the loader holds next, built with an explicit stack."""
        get = self.loader.get_event
        lines = self.lines
        stack: list = []  # open collections: [container, path, pending key, anchor, count at start]
        while True:
            event = get()
            kind = type(event)
            top = stack[-1] if stack else None
            if top is not None and isinstance(top[0], dict) and top[2] is _NO_KEY:
                # a mapping key: plain text only, and its line is where the path starts
                if kind is yaml.MappingEndEvent:
                    done = stack.pop()
                    value = done[0]
                    self._close(done)
                elif kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
                    # a key is the text written, never resolved: `1e1:` or `null:` stay as typed
                    key = (self._key(event, top) if kind is yaml.ScalarEvent else self._alias(event))
                    if isinstance(key, (dict, list)):
                        self.fail("a mapping key must be plain text", event.start_mark)
                    if not isinstance(key, str):
                        key = str(key)
                    if key in top[0]:
                        self.fail(f"duplicate key {bounded(key)}", event.start_mark)
                    if kind is yaml.ScalarEvent and event.anchor:
                        self.anchors[event.anchor] = (key, 1)
                    top[2] = key
                    lines[top[1] + (key,)] = event.start_mark.line + 1
                    continue
                else:
                    self.fail("a mapping key must be plain text", event.start_mark)
            elif kind is yaml.ScalarEvent:
                value = self._scalar(event, lambda: field_name(self._child_path(top)))
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
            elif kind is yaml.AliasEvent:
                value = self._alias(event)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                mapping = kind is yaml.MappingStartEvent
                if event.tag not in (None, "!", _MAP if mapping else _SEQ):
                    self.fail(f"YAML tag {bounded(event.tag)} is not allowed on a "
                              f"{'mapping' if mapping else 'list'}", event.start_mark)
                if len(stack) >= MAX_DEPTH:
                    self.fail(f"nested more than {MAX_DEPTH} levels deep; refused", event.start_mark)
                self._counted(1, event.start_mark)
                path = self._child_path(top)
                lines.setdefault(path, event.start_mark.line + 1)
                if event.anchor:
                    self.anchors[event.anchor] = None  # open: an alias to it now is recursive
                stack.append([{} if mapping else [], path, _NO_KEY, event.anchor, self.count])
                continue
            elif kind is yaml.SequenceEndEvent:
                done = stack.pop()
                value = done[0]
                self._close(done)
            else:  # pragma: no cover - the parser emits no other event inside a document
                self.fail("unsupported YAML event", event.start_mark)
            # `value` is complete: put it where it belongs
            if not stack:
                lines.setdefault((), event.start_mark.line + 1)
                return value
            top = stack[-1]
            if isinstance(top[0], dict):
                top[0][top[2]] = value
                top[2] = _NO_KEY
            else:
                if kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
                    lines.setdefault(top[1] + (len(top[0]),), event.start_mark.line + 1)
                top[0].append(value)

    def _child_path(self, top) -> tuple:
        if top is None:
            return ()
        return top[1] + ((top[2],) if isinstance(top[0], dict) else (len(top[0]),))

    def _close(self, done):
        container, _, _, anchor, started = done
        if anchor:
            self.anchors[anchor] = (container, self.count - started + 1)


_NO_KEY = object()
_MERGE = "tag:yaml.org,2002:merge"


# -- numbers as people write them ----------------------------------------------------------------
# YAML 1.1 (PyYAML's resolver) reads 032 as 26 (octal), 1:30 as 90 (base 60), 0x20 as 32 and
# 1_0 as 10, and yes/no/on/off as booleans. Profile and rule values follow YAML 1.2 / JSON
# instead: a number is a plain decimal (JSON's syntax, plus a leading '+', '.5' and '5.'), a
# boolean is true or false, and null is null, ~ or nothing. yes/no/on/off stay text (so a
# boolean field refuses them and a text field keeps them as written). The forms nobody writes
# for a clinical value (leading zeros, octal, hex, binary, sexagesimal, underscores) are
# refused with a message naming the field: never converted, and never silently taken as text.

_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"[-+]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
                  ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan}
_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_REFUSED = (  # (pattern, why), tried in order on text that is not a plain decimal
    (re.compile(r"[-+]?0[xXoObB][0-9a-fA-F_]*"), "hexadecimal, octal or binary"),
    (re.compile(r"[-+]?[0-9][0-9_]*(:[0-9_]+)+(\.[0-9_]*)?"), "sexagesimal (base 60, like a time)"),
    (re.compile(r"[-+]?[0-9]*[0-9_]*_[0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?"), "digits grouped with '_'"),
    (re.compile(r"[-+]?[0-9_]*\.[0-9_]*_[0-9_]*([eE][-+]?[0-9]+)?"), "digits grouped with '_'"),
    (re.compile(r"[-+]?0[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?"), "a leading zero (YAML 1.1 reads it as octal)"),
)


class NotANumber(ValueError):
    """A value written in a number form that is refused (see above)."""


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """Control characters (terminal escape sequences) and bidi overrides as visible escapes."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def bounded(value, limit: int = 60) -> str:
    """repr() of a value cut to `limit` characters: messages never echo a whole 1 MB string, and
    show control characters as escapes, never raw."""
    if isinstance(value, str):
        if len(value) > limit:
            return escape_controls(repr(value[:limit])) + f"... ({len(value)} characters)"
        return escape_controls(repr(value))
    text = escape_controls(repr(value))
    return text if len(text) <= limit else text[:limit] + "..."


def resolve_plain(text: str):
    """An unquoted scalar: null, a boolean, a number, or text (see above)."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    first = text[:1]
    if first.isdigit() or first in "+-.":
        return _number_or_text(text)
    return text


def _number_or_text(text: str):
    if _INT.fullmatch(text):
        if len(text) > 40:  # Python refuses to convert past 4,300 digits; nobody writes 40
            raise NotANumber(f"{bounded(text)} has more digits than any value here needs")
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    special = _SPECIAL_FLOAT.get(text.lstrip("+-"))
    if special is not None and (text[:1] not in "+-" or special == math.inf):
        return -special if text.startswith("-") else special
    for pattern, why in _REFUSED:
        if pattern.fullmatch(text):
            raise NotANumber(f"{bounded(text)} is not a number as written here: {why}; write a "
                             "plain decimal such as 32 or 1.5")
    return text


def parse_number(text: str, *, integer: bool = False):
    """A number typed as text (a command-line flag, a batch or FHIR value): the same syntax as
    in a profile file. Raises NotANumber (a ValueError) with a message to show."""
    stripped = text.strip()
    try:
        value = _number_or_text(stripped) if stripped else text
    except NotANumber:
        raise
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NotANumber(f"{bounded(text)} is not a number")
    if not math.isfinite(value):
        raise NotANumber(f"{bounded(text)} is not a finite number")
    if integer and not isinstance(value, int):
        raise NotANumber(f"{bounded(text)} is not a whole number")
    return value


def _explicit_int(text):
    if not _INT.fullmatch(text):
        raise NotANumber(f"!!int {bounded(text)} is not a whole number written in decimal")
    return int(text)


def _explicit_float(text):
    value = _number_or_text(text) if text else text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NotANumber(f"!!float {bounded(text)} is not a number")
    return float(value)


def _explicit_bool(text):
    if text not in _BOOL:
        raise NotANumber(f"!!bool {bounded(text)} is not true or false")
    return _BOOL[text]


def _explicit_null(text):
    if text not in _NULL:
        raise NotANumber(f"!!null {bounded(text)} is not null")
    return None


_EXPLICIT = {"tag:yaml.org,2002:int": _explicit_int, "tag:yaml.org,2002:float": _explicit_float,
             "tag:yaml.org,2002:bool": _explicit_bool, "tag:yaml.org,2002:null": _explicit_null}


def field_name(path: tuple) -> str:
    """('treatments', 0, 'months') -> 'treatments[0].months' (keys shown bounded)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if len(part) <= 60 else part[:60] + "..."
            out += ("." if out else "") + escape_controls(text)
    return out or "(the document)"


def plain_copy(value):
    """A deep copy of plain data (dicts, lists, scalars): an alias expands into its own copy, as
    PyYAML would, and a test profile completed from defaults shares nothing with them."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value


def short_label(path: Path) -> str:
    """rules/20-first-line.yaml rather than an absolute path: how messages name the project's
    own files (a user's profile keeps the path they gave)."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"
