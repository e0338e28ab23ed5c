"""Safe YAML/JSON reading that remembers the line of every value.

Profiles, rule files and evidence files all come through here, so that every later error can
name file:line. Only plain data is built: tags that would construct objects, merge keys,
duplicate keys, alias bombs, deep nesting, huge files and bytes that are not UTF-8 are refused
with a message instead of being guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

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
    loader = _Loader(text)
    try:
        _check_depth(text, source, error)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"invalid YAML or JSON: {problem}", file=source,
                    line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML or JSON: {exc}", file=source) from None
    except RecursionError:
        raise error(f"nesting deeper than the reader allows (limit {MAX_DEPTH})", file=source) from None
    finally:
        loader.dispose()
    if node is None:
        raise error("the file holds no document", file=source)
    builder = _Builder(loader, source, error)
    data = builder.build(node, (), 0)
    return Document(data=data, source=source, lines=builder.lines)


_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_depth(text: str, source: str, error) -> None:
    """Refuse deep nesting before composing: libyaml's composer recurses in C and would crash."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                raise error(f"nested more than {MAX_DEPTH} levels deep; refused", file=source,
                            line=event.start_mark.line + 1)
        elif isinstance(event, _CLOSE):
            depth -= 1


class _Builder:
    def __init__(self, loader, source, error):
        self.loader = loader
        self.source = source
        self.error = error
        self.count = 0
        self.lines: dict[tuple, int] = {}

    def fail(self, message, node):
        raise self.error(message, file=self.source, line=node.start_mark.line + 1)

    def build(self, node, path, depth):
        self.count += 1
        if self.count > MAX_NODES:
            self.fail(f"more than {MAX_NODES} values (YAML aliases expanding?); refused", node)
        if depth > MAX_DEPTH:
            self.fail(f"nested more than {MAX_DEPTH} levels deep; refused", node)
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            if node.tag == _TIMESTAMP:
                return node.value  # dates stay text: nothing here needs a date object
            if node.tag == _STR:
                return node.value  # most scalars: no constructor call needed
            if node.tag not in _PLAIN_TAGS:
                self.fail(f"YAML tag {node.tag!r} is not allowed: only plain text, numbers, "
                          "booleans and null", node)
            return self.loader.construct_object(node, deep=True)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self.fail(f"YAML tag {node.tag!r} is not allowed on a list", node)
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != _MAP:
                self.fail(f"YAML tag {node.tag!r} is not allowed on a mapping", node)
            result: dict = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.fail("YAML merge keys ('<<') are not allowed: write the keys out", key_node)
                if not isinstance(key_node, ScalarNode):
                    self.fail("a mapping key must be plain text", key_node)
                key = self.build(key_node, path + ("<key>",), depth + 1)
                if not isinstance(key, str):
                    key = str(key) if isinstance(key, (int, float, bool)) or key is None else key
                if key in result:
                    self.fail(f"duplicate key {key!r}", key_node)
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, path + (key,), depth + 1)
            self.lines.pop(path + ("<key>",), None)
            return result
        self.fail("unsupported YAML node", node)  # pragma: no cover - PyYAML has only three kinds
