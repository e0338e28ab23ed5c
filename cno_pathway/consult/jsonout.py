"""The consult as one JSON line of UTF-8 bytes, the same bytes on every route.

Written as UTF-8 whatever the locale; a string that cannot be UTF-8 (a lone surrogate from a
`\\ud800` escape in the input) is written escaped instead, so no line ever fails to encode.
"""

from __future__ import annotations

import json

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def dumps_line(data) -> bytes:
    """`data` as compact JSON and a newline."""
    try:
        return (_dumps(data) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (_dumps_ascii(data) + "\n").encode("ascii")
