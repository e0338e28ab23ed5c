"""Safe YAML/JSON reading that remembers the line of every value.

Profiles, rule files and evidence files all come through here, so that every later error can
name file:line. Only plain data is built: tags that would construct objects, merge keys,
duplicate keys, alias bombs, deep nesting, huge files and bytes that are not UTF-8 are refused
with a message instead of being guessed at.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from .errors import InputError

MAX_BYTES = 20 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
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
                  label: str | None = None) -> Document:
    """Read a YAML or JSON file (or '-' for stdin) into a Document."""
    import sys

    label = label or str(path)
    try:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(MAX_BYTES + 1)
            label = "<stdin>"
        else:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise error("file not found", file=label) from None
    except IsADirectoryError:
        raise error("is a directory, not a file", file=label) from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", file=label) from None
    return parse_document(raw, source=label, error=error)


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
        raise error(f"invalid YAML or JSON: {problem}", file=source,
                    line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML or JSON: {exc}", file=source) from None
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
        self.resolved: dict[tuple, str] = {}

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

    def _scalar(self, event):
        self._counted(1, event.start_mark)
        tag = event.tag
        if tag is None or tag == "!":
            key = (event.value, event.implicit)
            tag = self.resolved.get(key)
            if tag is None:
                tag = self.resolved[key] = self.loader.resolve(ScalarNode, event.value, event.implicit)
        if tag == _STR or tag == _TIMESTAMP:
            return event.value  # dates stay text: nothing here needs a date object
        if tag not in _PLAIN_TAGS:
            if tag == _MERGE:
                self.fail("YAML merge keys ('<<') are not allowed: write the keys out", event.start_mark)
            self.fail(f"YAML tag {tag!r} is not allowed: only plain text, numbers, booleans and "
                      "null", event.start_mark)
        return _CONSTRUCT[tag](self.loader, ScalarNode(tag, event.value))

    def _alias(self, event):
        if event.anchor not in self.anchors:
            self.fail(f"invalid YAML or JSON: found undefined alias {event.anchor!r}", event.start_mark)
        anchored = self.anchors[event.anchor]
        if anchored is None:
            self.fail(f"YAML alias *{event.anchor} refers to the value that contains it; refused",
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
                    key = self._scalar(event) if kind is yaml.ScalarEvent else self._alias(event)
                    if isinstance(key, (dict, list)):
                        self.fail("a mapping key must be plain text", event.start_mark)
                    if not isinstance(key, str):
                        key = str(key)
                    if key in top[0]:
                        self.fail(f"duplicate key {key!r}", event.start_mark)
                    if kind is yaml.ScalarEvent and event.anchor:
                        self.anchors[event.anchor] = (key, 1)
                    top[2] = key
                    lines[top[1] + (key,)] = event.start_mark.line + 1
                    continue
                else:
                    self.fail("a mapping key must be plain text", event.start_mark)
            elif kind is yaml.ScalarEvent:
                value = self._scalar(event)
                if event.anchor:
                    self.anchors[event.anchor] = (value, 1)
            elif kind is yaml.AliasEvent:
                value = self._alias(event)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                mapping = kind is yaml.MappingStartEvent
                if event.tag not in (None, "!", _MAP if mapping else _SEQ):
                    self.fail(f"YAML tag {event.tag!r} is not allowed on a "
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
_CONSTRUCT = {tag: yaml.SafeLoader.yaml_constructors[tag] for tag in _PLAIN_TAGS}


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
