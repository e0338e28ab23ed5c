"""How text reaches a person at a terminal: cleaned of control sequences, coloured only when
wanted, paged when long, and worded for people (plurals, did-you-mean).

Plumbing: no click and nothing from the layers above, so every layer can clean what it prints.
"""

from __future__ import annotations

import os
import re

# Escape sequences whole (CSI `ESC [ ... final`, OSC/DCS/APC/PM/SOS `ESC ] ... BEL|ESC \`, and
# two-character `ESC x`), then any other C0/C1 control character (tab and newline kept), and the
# bidirectional controls that reorder what a reader sees (U+202A-202E, U+2066-2069, marks).
_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?"
                       r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
                       r"|\x9b[0-?]*[ -/]*[@-~]?"
                       r"|[\x9d\x90\x98\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                       r"|\x1b[ -~]?")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# characters JSON leaves raw that a terminal would act on: written as \\uXXXX escapes instead
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def clean(text: str) -> str:
    """Text safe to show on a terminal: escape sequences and control characters removed
    (newlines and tabs kept), bidirectional overrides removed."""
    if text.isascii() and text.isprintable():
        return text
    # every escape sequence starts with a control character: without one there is nothing to
    # remove (one scan instead of two substitutions over a consult of 250 KB)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


_COLOUR = re.compile(r"(\x1b\[[0-9;]*m)")


def clean_keeping_colour(text: str) -> str:
    """As clean(), but the colour codes (SGR: ESC [ digits m) that our own templates add stay."""
    if text.isascii() and "\x1b" not in text:
        return clean(text)
    return "".join(part if _COLOUR.fullmatch(part) else clean(part)
                   for part in _COLOUR.split(text))


def clean_line(text: str) -> str:
    """One line for a message: as clean(), with line breaks shown as spaces."""
    return clean(text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


def json_safe(text: str) -> str:
    """JSON text whose strings hold no raw C1 or bidirectional control: such characters are
    written as \\uXXXX escapes, so the JSON means the same and shows safely on a terminal."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# -- colour and pager -----------------------------------------------------------------------------

class Settings:
    """What the person asked for with --color/--no-color and --no-pager (None: decide)."""

    colour: bool | None = None
    pager: bool = True


def colour_wanted(stream) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (any value but empty) or TERM=dumb,
    unless --color asked for it."""
    if Settings.colour is not None:
        return Settings.colour
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, OSError):
        return False


def pager_wanted(stream, text: str) -> bool:
    """A pager for text longer than the terminal, only when both ends are a terminal."""
    import shutil
    import sys

    if not Settings.pager or os.environ.get("TERM") == "dumb":
        return False
    try:
        if not (stream is not None and stream.isatty() and sys.stdin is not None
                and sys.stdin.isatty()):
            return False
    except (ValueError, OSError):
        return False
    return text.count("\n") >= shutil.get_terminal_size((80, 24)).lines - 1


# -- words ----------------------------------------------------------------------------------------

def plural(count: int, word: str, many: str | None = None) -> str:
    """plural(1, 'error') -> '1 error'; plural(2, 'error') -> '2 errors'."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def did_you_mean(word: str, choices, *, limit: int = 3) -> str:
    """'; did you mean X?' for the closest choices (compared on a bounded prefix), or ''."""
    import difflib  # only for a message: not imported at every start

    word = str(word)[:80]
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=limit, cutoff=0.6)
    if not close:
        lowered = {str(c).lower(): str(c) for c in choices}
        close = [lowered[w] for w in difflib.get_close_matches(word.lower(), list(lowered),
                                                                 n=limit, cutoff=0.6)]
    return f"; did you mean {' or '.join(close)}?" if close else ""
