"""Consults as text, Markdown, HTML (jinja2 templates in templates/) or JSON.

Templates hold presentation only: they receive the finished Consult and compute nothing
clinical. JSON is the stable contract (schema cno-pathway/consult/1).
"""

from __future__ import annotations

import functools
import json
import textwrap

import jinja2

from .resources import templates_dir

_TEMPLATES = {"text": "consult.txt.j2", "markdown": "consult.md.j2", "html": "consult.html.j2"}
_ANSI = {"alert": "1;31", "investigate": "1;33", "recommend": "1;32", "consider": "1;36",
         "avoid": "1;35", "monitor": "1;34", "bold": "1", "dim": "2"}
WIDTH = 80


@functools.lru_cache(maxsize=4)
def environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["wrap"] = _wrap
    env.filters["number"] = _number
    return env


def _wrap(text: str, indent: int = 0, first: int | None = None, width: int = WIDTH) -> str:
    pad = " " * indent
    return textwrap.fill(" ".join(str(text).split()), width=width,
                         initial_indent=" " * (indent if first is None else first),
                         subsequent_indent=pad, break_on_hyphens=False, break_long_words=False)


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _paint(enabled: bool):
    def paint(text: str, style: str) -> str:
        return f"\033[{_ANSI[style]}m{text}\033[0m" if enabled and style in _ANSI else text
    return paint


def render_template(name: str, *, autoescape: bool = False, colour: bool = False, **context) -> str:
    template = environment(autoescape).get_template(name)
    return template.render(paint=_paint(colour), **context)


def render_consult(consult, fmt: str, *, colour: bool = False) -> str:
    if fmt == "json":
        return json.dumps(consult.to_json(), indent=2, ensure_ascii=False) + "\n"
    if fmt not in _TEMPLATES:
        raise ValueError(f"unknown format {fmt!r}")
    return render_template(_TEMPLATES[fmt], autoescape=fmt == "html", colour=colour, c=consult)
