"""The consult as one JSON line of UTF-8 bytes, the same bytes on every route.

orjson writes the line (about ten times faster than json.dumps) and its bytes go straight to the
output. The bytes are those of `json.dumps(data, ensure_ascii=False, separators=(",", ":"))`:
orjson spells every value the same way except floats below 1e-4 (orjson `0.00001`, Python
`1e-05`), so a line holding "0.0000" or a digit, "e" and a minus is written by json instead (a string with
those characters costs only the slower path). What orjson refuses (an integer beyond 64 bits, a
lone surrogate from a `\\ud800` escape) is written by json too; a string that cannot be UTF-8 is
then written escaped, so no line ever fails to encode. tests/test_jsonout.py holds the two
paths to the same bytes.
"""

from __future__ import annotations

import json
import re

import orjson

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
_orjson = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE
# where the two writers could differ: orjson's small floats, any exponent with a minus sign
_RISKY = re.compile(rb"0\.0000|[0-9][eE]-").search


def dumps_line(data) -> bytes:
    """`data` as compact JSON and a newline."""
    try:
        line = _orjson(data, option=_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):
        return slow_line(data)
    if _RISKY(line):
        return slow_line(data)
    return line


def slow_line(data) -> bytes:
    """What dumps_line writes, by json alone (the reference)."""
    try:
        return (_dumps(data) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (_dumps_ascii(data) + "\n").encode("ascii")
