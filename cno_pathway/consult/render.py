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
import hashlib
import re
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import jinja2
import markupsafe

from ..resources import templates_dir
from ..patient.durations import duration_words
from ..wording import plain_number
from .jsonout import json_document

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


# Templates compiled to Python ahead of time, inside the installed package (`make install`
# writes them: consult/precompile.py). Never a cache folder: code is loaded from the package only.
PRECOMPILED = Path(__file__).resolve().parent / "_templates"
_PRECOMPILED_FORMAT = "cno-pathway/template/1"


class PackagedLoader(jinja2.FileSystemLoader):
    """The templates folder, with the compile step done at install time.

    Compiling a template from source (jinja2's parse and code generation, then Python's
    compile) costs 40-110 ms at every start, more than the rest of a consult. `make install`
    therefore writes each template's generated Python into the package (`_templates/`, its
    bytecode by compileall beside it, as for any module of the package), under a key over
    everything the generated code depends on: the template's name and source, jinja2's version,
    the environment's compile-time settings and the source of the modules the filters come from
    (jinja2 folds a filter over constant arguments into the code). A template that was edited,
    a new jinja2 or a changed filter gives another key: the module is not found and the template
    is compiled from its source, as without the ahead-of-time step (a wheel, a plain pip
    install). There is no bytecode cache: nothing is loaded from a folder others may write,
    and nothing is written at run time (issue 14)."""

    def __init__(self, searchpath, compiled: Path | None = PRECOMPILED):
        super().__init__(searchpath)
        self.compiled = compiled

    def load(self, environment, name, globals=None):
        source, filename, uptodate = self.get_source(environment, name)
        code = self.precompiled(environment, name, source)
        if code is None:
            code = environment.compile(source, name, filename)
        return environment.template_class.from_code(
            environment, code, {} if globals is None else globals, uptodate)

    def precompiled(self, environment, name: str, source: str):
        """The code compiled ahead of time from exactly this source, else None."""
        if self.compiled is None:
            return None
        path = self.compiled / module_file(environment, name, source)
        try:
            return SourceFileLoader(path.stem, str(path)).get_code(path.stem)
        except (OSError, ImportError, SyntaxError, ValueError, EOFError):
            return None


def _compile_settings(env: jinja2.Environment) -> str:
    """Everything of the environment that its compiler reads (jinja2's lexer, parser, code
    generator and constant folding), as text."""
    def named(obj):
        if obj is None:
            return "-"
        return (f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
                f"/{getattr(obj, 'jinja_pass_arg', '')}")

    settings = [jinja2.__version__, env.block_start_string, env.block_end_string,
                env.variable_start_string, env.variable_end_string, env.comment_start_string,
                env.comment_end_string, env.line_statement_prefix, env.line_comment_prefix,
                env.trim_blocks, env.lstrip_blocks, env.newline_sequence,
                env.keep_trailing_newline, env.optimized, env.is_async, env.sandboxed,
                named(env.autoescape) if callable(env.autoescape) else env.autoescape,
                named(env.finalize), named(env.code_generator_class),
                sorted(env.extensions), sorted(getattr(env, "intercepted_binops", ())),
                sorted(getattr(env, "intercepted_unops", ())),
                sorted((k, named(f)) for k, f in env.filters.items()),
                sorted((k, named(f)) for k, f in env.tests.items())]
    return repr(settings)


@functools.lru_cache(maxsize=8)
def _filter_sources(modules: tuple[str, ...]) -> bytes:
    """The source of the modules our filters come from (jinja2's own are under its version)."""
    h = hashlib.sha256()
    for name in modules:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        h.update(f"{name}\0".encode())
        if path:
            try:
                h.update(Path(path).read_bytes())
            except OSError:
                h.update(b"unreadable")
        h.update(b"\0")
    return h.digest()


@functools.lru_cache(maxsize=8)
def _environment_key(env: jinja2.Environment) -> bytes:
    modules = sorted({getattr(f, "__module__", "") or "" for f in
                      (*env.filters.values(), *env.tests.values(), env.finalize)
                      if f is not None} - {""})
    modules = tuple(m for m in modules if m != "jinja2" and not m.startswith("jinja2."))
    h = hashlib.sha256(_PRECOMPILED_FORMAT.encode())
    h.update(_compile_settings(env).encode())
    h.update(_filter_sources(modules))
    return h.digest()


def module_file(env: jinja2.Environment, name: str, source: str) -> str:
    """The file name of the module compiled ahead of time for this template in this
    environment: t_<sha256 over everything the generated code depends on>.py."""
    h = hashlib.sha256(_environment_key(env))
    h.update(name.encode("utf-8", "surrogatepass") + b"\0")
    h.update(source.encode("utf-8", "surrogatepass"))
    return f"t_{h.hexdigest()}.py"


@functools.lru_cache(maxsize=4)
def environment(autoescape: bool) -> jinja2.Environment:
    return make_environment(autoescape, templates_dir(), PRECOMPILED)


def make_environment(autoescape: bool, directory: Path, compiled: Path | None) -> jinja2.Environment:
    env = jinja2.Environment(loader=PackagedLoader(str(directory), compiled),
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


def _wrap(text, indent: int = 0, first: int | None = None, width: int = WIDTH) -> str:
    """Fill to `width` columns. Words are never broken, except a word too long for any line
    that is not a URL or digest (a 150-character label is cut; a link is kept whole)."""
    return _wrapped(str(text), indent, first, width)


@functools.lru_cache(maxsize=4096)
def _wrapped(text: str, indent: int, first: int | None, width: int) -> str:
    """_wrap, kept by its arguments: a large rule base repeats the same paragraphs (a quote
    cited by hundreds of rules) in one consult."""
    lead = indent if first is None else first
    room = width - max(indent, lead)
    text = _plain(" ".join(text.split()))
    if 0 < len(text) <= room:
        return " " * lead + text     # one line, no word to cut: what the fill below gives
    words = []
    for word in text.split(" "):
        if len(word) > room > 0 and not _UNBREAKABLE.match(word):
            words.extend(word[i:i + room] for i in range(0, len(word), room))
        else:
            words.append(word)
    return fill_single(words, width, " " * lead, " " * indent)


def fill_single(words: list[str], width: int, initial: str, subsequent: str) -> str:
    """textwrap.fill(" ".join(words), width, initial_indent=initial, subsequent_indent=subsequent,
    break_on_hyphens=False, break_long_words=False) for words that are all non-empty and hold
    no whitespace (what _wrap makes), in one greedy pass over the words, without building a
    TextWrapper and its chunk stack for each of the thousands of paragraphs of a large consult
    (tests/test_render_fill.py compares the two). A word goes on the line when it fits after
    one space, else starts the next line, where it stays even when it is longer than the line;
    [""] (an empty paragraph) fills to ""."""
    if width <= 0:
        raise ValueError(f"invalid width {width!r} (must be > 0)")
    if not words or (len(words) == 1 and not words[0]):
        return ""
    room = width - len(initial)
    lines = []
    head, line = initial, []
    length = -1                 # the first word of a line has no space before it
    for word in words:
        if length < 0:
            line.append(word)
            length = len(word)
        elif length + 1 + len(word) <= room:
            line.append(word)
            length += 1 + len(word)
        else:
            lines.append(head + " ".join(line))
            head, line, length = subsequent, [word], len(word)
            room = width - len(subsequent)
    lines.append(head + " ".join(line))
    return "\n".join(lines)


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


# three or more line breaks; written with its literal start, which the regex engine searches
# for quickly (`\n{3,}` tried a match at every character: 4 ms over a 260 KB consult)
_BLANK_LINES = re.compile(r"\n\n\n+")


def _tidy(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    out = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")
    return out + "\n"


def render_consult(consult, fmt: str, *, colour: bool = False) -> str:
    if fmt == "json":
        return json_document(consult.to_json()) + "\n"
    if fmt not in _TEMPLATES:
        raise ValueError(f"unknown format {fmt!r}")
    text = render_template(_TEMPLATES[fmt], autoescape=fmt == "html",
                           colour=colour and fmt == "text", c=consult)
    return _tidy(text)
