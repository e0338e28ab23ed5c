"""The document cache keeps each value's line as a tree beside the data (issue 17, start-up):
every lookup a parser can make gives the answer the fresh parse's {path: line} gives, for the
real rule base and evidence, for awkward keys, and for a tree of the wrong shape (unknown
lines, never an error)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cno_pathway.knowledge.cache import CachedDocument, TreeLines, _decode, _encode, entry_key
from cno_pathway.yamlio import Document, parse_document

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = sorted((ROOT / "rules").glob("*.yaml")) + sorted((ROOT / "seeds").glob("*.yaml"))

AWKWARD = """\
"0": zero as a key
"1": {"0": [a, b]}
"": empty key
"=x": [[1, 2], {"#0": deep}]
list:
  - [x, [y, [z]]]
  - {k: v}
  -
  - null
"""


def _round_trip(doc: Document) -> Document:
    raw = b"whatever the bytes were"
    out = _decode(_encode(doc, entry_key(raw)), entry_key(raw), doc.source)
    assert out is not None
    return out


def _probes(doc: Document, rng: random.Random) -> list[tuple]:
    """Every stored path, their parents, and paths that are not there: a key where an index is,
    an index past the end, a child of a scalar, a part of another type."""
    probes = [()]
    for path in doc.lines:
        probes.append(path)
        probes.append(path + ("no-such-key",))
        probes.append(path + (0,))
        probes.append(path + (10_000,))
        if path and isinstance(path[-1], int):
            probes.append(path[:-1] + (str(path[-1]),))
            probes.append(path[:-1] + (-1,))
        if path and isinstance(path[-1], str):
            probes.append(path[:-1] + (1.5,))
            probes.append(path[:-1] + (True,))
    rng.shuffle(probes)   # order must not matter (the tree remembers paths it was asked)
    return probes


@pytest.mark.parametrize("path", KNOWLEDGE + [None], ids=lambda p: p.name if p else "awkward")
def test_every_lookup_equals_the_fresh_parse(path):
    raw = path.read_bytes() if path else AWKWARD.encode()
    fresh = parse_document(raw, source="x")
    cached = _round_trip(fresh)
    assert isinstance(cached.lines, TreeLines)
    assert cached.data == fresh.data
    for probe in _probes(fresh, random.Random(17)):
        assert (probe in cached.lines) == (probe in fresh.lines), probe
        assert cached.line(probe) == fresh.line(probe), probe
        assert cached.line(list(probe)) == fresh.line(probe), probe
        # the generic lookup (Document.line over the mapping) agrees with the one-walk lookup
        assert Document.line(cached, probe) == fresh.line(probe), probe
    assert dict(cached.lines) == fresh.lines and len(cached.lines) == len(fresh.lines)
    assert (cached.data, cached.source) == (fresh.data, fresh.source)


def test_a_list_document_and_a_scalar_document():
    for text in ("- a\n- [b, c]\n", "just text\n", "[]\n", "{}\n"):
        fresh = parse_document(text.encode(), source="x")
        cached = _round_trip(fresh)
        assert dict(cached.lines) == fresh.lines
        assert cached.line((0,)) == fresh.line((0,))
        assert cached.line((1, 1)) == fresh.line((1, 1))


@pytest.mark.parametrize("tree", [
    {"a": "not an entry"}, {"a": [1]}, {"a": ["7", None]}, {"a": [True, None]},
    {"a": [1.5, None]}, {"a": [3, "not a node"]}, {"a": [3, [None, [4, None]]]}, [[5, 7]],
])
def test_a_tree_of_the_wrong_shape_reads_as_unknown_lines(tree):
    lines = TreeLines(tree, 1)
    doc = CachedDocument(data={"a": {"b": 1}}, source="x", lines=lines)
    for probe in [("a",), ("a", "b"), ("a", 1), (0,), (0, 1)]:
        assert doc.line(probe) in (1, 3, 4, 5), probe   # a whole number, the top's or a stored one
        assert doc.line(probe) == Document.line(doc, probe), probe
    assert doc.line(("a", "b")) in (1, 3)
    assert ("a",) not in lines or lines[("a",)] == 3
    with pytest.raises(KeyError):
        lines[("nowhere",)]
    dict(lines)   # iterating never fails either


def test_an_entry_whose_lines_are_not_a_tree_is_ignored(tmp_path):
    raw = b"a: 1\n"
    key = entry_key(raw)
    blob = _encode(parse_document(raw, source="x"), key)
    header, payload = blob.split(b"\n", 1)
    body = json.loads(payload)
    for bad in ({"lines": "text"}, {"lines": 5}, {"top": "1"}, {"top": 1.5}):
        forged = json.dumps(dict(body, **bad)).encode()
        meta = dict(json.loads(header), sha256=__import__("hashlib").sha256(forged).hexdigest())
        assert _decode(json.dumps(meta).encode() + b"\n" + forged, key, "x") is None, bad


def test_data_json_cannot_hold_still_round_trips_through_json():
    """A payload orjson refuses (NaN) is read by json, as written."""
    doc = Document(data={"x": float("nan"), "big": 2 ** 70}, source="x", lines={("x",): 1})
    cached = _round_trip(doc)
    assert cached.data["x"] != cached.data["x"] and cached.data["big"] == 2 ** 70
    assert cached.line(("x",)) == 1

