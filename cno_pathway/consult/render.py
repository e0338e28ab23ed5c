"""Consults as text, Markdown, HTML (jinja2 templates in templates/) or JSON.

Templates hold presentation only: they receive the finished Consult and compute nothing
clinical. JSON is the stable contract (schema cno-pathway/consult/1). Every format carries the
disclaimer, the rule base's name, version and digest, the program version and the rule id of
every suggestion, and no timestamp: the same consult renders to the same bytes.

Text is for a terminal at 80 columns (colour only when `colour=True`, i.e. a terminal); Markdown
escapes every character that could become markup; HTML is one self-contained, autoescaped page.
"""

from __future__ import annotations

import functools
import json
import re
import textwrap

import jinja2
import markupsafe

from ..resources import templates_dir
from ..patient.durations import duration_words
from ..wording import plain_number

_TEMPLATES = {"text": "consult.txt.j2", "markdown": "consult.md.j2", "html": "consult.html.j2"}
_ANSI = {"alert": "1;31", "investigate": "1;33", "recommend": "1;32", "consider": "1;36",
         "avoid": "1;35", "monitor": "1;34", "bold": "1", "dim": "2"}
WIDTH = 80

# Headings of the consult's sections, one per suggestion kind, in consult order.
KIND_HEADINGS = {"alert": "Alerts", "investigate": "Investigations first",
                 "recommend": "Recommended", "consider": "To consider", "avoid": "To avoid",
                 "monitor": "Monitoring"}

_UNBREAKABLE = re.compile(r"^\(?(https?://|doi:|sha256:)")
# control characters, and the bidi controls that reorder what a reader sees (U+202E...)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")      # markup anywhere in a line
_MD_START = re.compile(r"^([-+=#]|\d{1,9}(?=[.)](\s|$)))")  # markup at the start of a block


@functools.lru_cache(maxsize=4)
def environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             finalize=_no_controls if autoescape else None)
    # No bytecode cache: it would load marshal data from a folder others may write (issue 14).
    env.filters["wrap"] = _wrap
    env.filters["number"] = plain_number
    env.filters["duration"] = duration_words
    env.filters["span"] = _span
    env.filters["plain"] = _plain
    env.filters["md"] = _markdown
    env.filters["code"] = _code_span
    env.filters["web_url"] = _web_url
    env.filters["show"] = _show
    env.filters["rule_line"] = _rule_line
    env.globals["KIND_HEADINGS"] = KIND_HEADINGS
    env.globals["WIDTH"] = WIDTH
    return env


def _wrap(text: str, indent: int = 0, first: int | None = None, width: int = WIDTH) -> str:
    """Fill to `width` columns. Words are never broken, except a word too long for any line
    that is not a URL or digest (a 150-character label is cut; a link is kept whole)."""
    room = width - max(indent, indent if first is None else first)
    words = []
    for word in _plain(" ".join(str(text).split())).split(" "):
        if len(word) > room > 0 and not _UNBREAKABLE.match(word):
            words.extend(word[i:i + room] for i in range(0, len(word), room))
        else:
            words.append(word)
    return textwrap.fill(" ".join(words), width=width,
                         initial_indent=" " * (indent if first is None else first),
                         subsequent_indent=" " * indent, break_on_hyphens=False,
                         break_long_words=False)


def _span(pair) -> str:
    """[10.0, 15.0] -> '10-15'; [2.0, 2.0] -> '2' (a dose range as the source gives it)."""
    low, high = pair
    return plain_number(low) if low == high else f"{plain_number(low)}-{plain_number(high)}"


def _no_controls(value):
    """HTML: every value printed loses its control and bidi characters (a U+202E in a label
    would reverse the text around it); markup the templates built (macros) passes unchanged."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return _CONTROL.sub("?", value)
    return value


def _plain(text) -> str:
    """Text for a terminal: control characters (escape sequences, newlines) become '?'."""
    return _CONTROL.sub("?", str(text))


def _markdown(text, block: bool = False) -> str:
    """Literal text in Markdown: every character that could start markup is escaped; with
    `block`, also what would start a list or heading when the text begins a block."""
    text = _plain(" ".join(str(text).split()))
    text = _MD_SPECIAL.sub(r"\\\1", text)
    start = _MD_START.match(text) if block else None
    if start and start.group(1)[0].isdigit():      # '1986. ' would start a list
        end = start.end()
        return text[:end] + "\\" + text[end:]
    return "\\" + text if start else text


def _code_span(text, table: bool = False) -> str:
    """A Markdown code span no value can break out of: the fence is one backtick longer than
    the longest run inside, padded with a space when the value starts or ends with one. In a
    table cell (`table`), a pipe is escaped too (GitHub tables split cells on it first)."""
    text = _plain(" ".join(str(text).split()))
    if table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _web_url(url) -> str | None:
    """A link target only when it is an http(s) address (never javascript: or data:)."""
    if isinstance(url, str) and re.match(r"^https?://[^\s<>\"']+$", url):
        return url
    return None


def _show(value) -> str:
    """A fact's value in words: lists joined, booleans as yes/no, None as 'not stated'."""
    if value is None:
        return "not stated"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) if value else "none"
    return plain_number(value)


def _rule_line(text: str, fill: str = "=", width: int = WIDTH) -> str:
    """'== Heading ======...' filling the line to `width`."""
    head = f"{fill * 2} {text} "
    return head + fill * max(3, width - len(head))


def _paint(enabled: bool):
    def paint(text: str, style: str) -> str:
        return f"\033[{_ANSI[style]}m{text}\033[0m" if enabled and style in _ANSI else text
    return paint


def render_template(name: str, *, autoescape: bool = False, colour: bool = False, **context) -> str:
    template = environment(autoescape).get_template(name)
    return template.render(paint=_paint(colour), **context)


def _tidy(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"


def render_consult(consult, fmt: str, *, colour: bool = False) -> str:
    if fmt == "json":
        return json.dumps(consult.to_json(), indent=2, ensure_ascii=False) + "\n"
    if fmt not in _TEMPLATES:
        raise ValueError(f"unknown format {fmt!r}")
    text = render_template(_TEMPLATES[fmt], autoescape=fmt == "html",
                           colour=colour and fmt == "text", c=consult)
    return _tidy(text)
