"""The consult as one JSON line of UTF-8 bytes, the same bytes on every route.

orjson writes the line (about ten times faster than json.dumps) and its bytes go straight to the
output. The bytes are those of `json.dumps(data, ensure_ascii=False, separators=(",", ":"))`:
orjson spells every value the same way except floats between 1e-9 and 1e-4 (orjson `0.00001`
and `1.5e-7`, Python `1e-05` and `1.5e-07`), so a line holding "0.0000" or "e-" and a digit is
written by json instead (a string with those characters costs only the slower path). What
orjson refuses (an integer beyond 64 bits, a lone surrogate from a `\\ud800` escape) is written
by json too; a string that cannot be UTF-8 is then written escaped, so no line ever fails to
encode. tests/test_jsonout.py holds the two paths to the same bytes.
"""

from __future__ import annotations

import json
import re

import orjson

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_orjson = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE


# Where the two writers differ (measured over 300,000 floats from 1e-324 to 1e308): only for
# 1e-9 <= |x| < 1e-4, which orjson writes "0.00001" or "1.5e-7" and Python "1e-05", "1.5e-07".
# Regular expressions with a literal prefix. The exponent of a number follows a digit; "e-1"
# in text ("relapse-1-and-2-years", a finding's id in the built-in evidence) does not, and
# sent one consult in thirteen down the slower path.
_SMALL = re.compile(rb"0\.0000").search
_EXPONENTS = re.compile(rb"e-[1-9]").finditer
_DIGITS = frozenset(b"0123456789")


def spelled_differently(line: bytes) -> bool:
    """Whether JSON text written by orjson may hold a float json.dumps spells otherwise (text
    that merely looks like one only costs the slower writer)."""
    if _SMALL(line) is not None:
        return True
    return any(line[match.start() - 1] in _DIGITS for match in _EXPONENTS(line))


def _written(data, option: int, slow):
    """orjson's bytes of `data`, or `slow(data)` (json's) where orjson refuses it or may spell a
    float otherwise."""
    try:
        raw = _orjson(data, option=option)
    except (orjson.JSONEncodeError, TypeError):
        return slow(data)
    return slow(data) if spelled_differently(raw) else raw


def dumps_line(data) -> bytes:
    """`data` as compact JSON and a newline."""
    return _written(data, _NEWLINE, slow_line)


_INDENTED = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def json_document(data) -> str:
    """json.dumps(data, indent=2, ensure_ascii=False), the consult's JSON format, written by
    orjson where its text is the same (14 -> 1 ms for the 860 KB of a 2,050-rule consult); an
    object json cannot write either (a dataclass, a date: passed through) raises as json does.
    A consult holds no NaN or infinity (the profile and the rule base refuse them), which
    orjson would write as null."""
    def slow(value) -> bytes:
        return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _written(data, _INDENTED, slow).decode("utf-8", "surrogatepass")


def dumps_consult(data: dict) -> bytes:
    """A consult's JSON line (Consult.to_json()), what dumps_line writes. A consult's floats are
    only in its profile, its facts and its suggestions' regimens: the rest is text, integers and
    booleans (tests/test_jsonout.py walks consults of every kind to hold this). So only those
    parts, a few kilobytes of the line's forty, are looked at for floats orjson spells
    differently; scanning the whole line took a twentieth of a batch's time."""
    try:
        line = _orjson(data, option=_NEWLINE)
        floats = _orjson([data["profile"], data["facts"],
                          [s["regimen"] for s in data["suggestions"]]])
    except (orjson.JSONEncodeError, TypeError):
        return slow_line(data)
    if spelled_differently(floats):
        return slow_line(data)
    return line


def slow_line(data) -> bytes:
    """What dumps_line writes, by json alone (the reference)."""
    try:
        return (_dumps(data) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (_dumps_ascii(data) + "\n").encode("ascii")
