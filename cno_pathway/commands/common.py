"""Options and helpers shared by the command modules: the rule folder, the output file and its
format, colour and pager, and writing text where the person asked for it."""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys
from pathlib import Path

import click

from ..files import replace_file
from ..terminal import (Settings, clean, clean_keeping_colour, colour_wanted, did_you_mean,
                        json_safe, pager_wanted)

FORMATS = ("text", "markdown", "html", "json")
_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
               ".html": "html", ".htm": "html", ".json": "json"}


class Group(click.Group):
    """A click group that suggests the command meant when a name is mistyped."""

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            name = args[0] if args else ""
            if name and not name.startswith("-") and name not in self.list_commands(ctx):
                commands = self.list_commands(ctx)
                raise click.UsageError(f"no command {name!r}{did_you_mean(name, commands)} "
                                       f"(commands: {', '.join(commands)})", ctx) from None
            raise


class VocabularyOption(click.Option):
    """An option whose help lists its allowed values from the rule base's vocabulary, so help and
    the error for a wrong value can never disagree. `help` is a function of a lister
    (kind -> 'a, b, c'); the vocabulary is read only when help is shown, never for a consult."""

    def __init__(self, *args, help, **kwargs):  # noqa: A002 (click's own name)
        self.help_from = help
        super().__init__(*args, help="", **kwargs)

    def get_help_record(self, ctx):
        self.help = self.help_from(_listed)
        return super().get_help_record(ctx)


@functools.lru_cache(maxsize=1)
def _help_vocabulary():
    """The vocabulary of the rule base a consult would use (CNO_PATHWAY_RULES, else the built-in
    one); the built-in one if that folder cannot be read: help must always show."""
    from ..errors import InputError
    from ..knowledge.vocabulary import load_vocabulary
    from ..resources import builtin_rules_dir, rules_dir

    try:
        return load_vocabulary(rules_dir())
    except (InputError, OSError):
        return load_vocabulary(builtin_rules_dir())


def _listed(kind: str) -> str:
    return ", ".join(_help_vocabulary().values(kind))


def rules_option(func):
    """--rules DIR (or CNO_PATHWAY_RULES): another rule folder, for rule authors."""
    return click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="CNO_PATHWAY_RULES", show_envvar=True,
                        help="Rule folder to use instead of the built-in rule base.")(func)


def _set_colour(ctx, param, value):
    if value is not None:
        Settings.colour = value


def _set_pager(ctx, param, value):
    if value:
        Settings.pager = False


def terminal_options(func):
    """--color/--no-color and --no-pager, on the main group and on each command."""
    func = click.option("--no-pager", is_flag=True, expose_value=False, callback=_set_pager,
                        help="Never page long output (it is paged only on a terminal).")(func)
    return click.option("--color/--no-color", "colour", default=None, expose_value=False,
                        callback=_set_colour,
                        help="Colour on or off (default: on a terminal, unless NO_COLOR is set "
                             "or TERM=dumb).")(func)


def output_option(extensions: str, what: str = "the consult"):
    """-o FILE ('-' is standard output)."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path,
                                                           allow_dash=True),
                        help=f"Write {what} to FILE, whole or not at all; the format comes from "
                             f"its extension ({extensions}); '-' is standard output.")


def formulary_option(func):
    """--formulary FILE (or CNO_PATHWAY_FORMULARY): the hospital's maximum doses."""
    return click.option("--formulary", "formulary", type=click.Path(dir_okay=False, path_type=Path),
                        envvar="CNO_PATHWAY_FORMULARY", show_envvar=True,
                        help="Local formulary (YAML): per-drug maximum doses, each with its "
                             "reference; computed doses are capped at them. Default: "
                             "formulary.yaml beside the rules, if there is one.")(func)


@functools.lru_cache(maxsize=4)
def load_pathway(rules_dir: Path | None, formulary: Path | None = None):
    from ..consult.consult import Pathway

    return Pathway.load(rules_dir, formulary=formulary)


def to_stdout(output: Path | None) -> bool:
    return output is None or str(output) == "-"


def pick_format(fmt: str | None, output: Path | None, extensions: dict | None = None,
                default: str = "text") -> str:
    """The format asked for, else the one the output file's extension names. An extension the
    command cannot write (.pdf, .docx) is refused rather than filled with another format."""
    table = _EXTENSIONS if extensions is None else extensions
    if to_stdout(output):
        return fmt or default
    suffix = output.suffix.lower()
    if suffix and suffix not in table:
        known = ", ".join(sorted(table))
        raise OutputError(f"cannot write a {suffix} file: the extension names the format "
                          f"({known}){did_you_mean(suffix, table)}")
    if fmt:
        return fmt
    return table.get(suffix, default)


def use_colour(output: Path | None) -> bool:
    return to_stdout(output) and colour_wanted(sys.stdout)


def _safe(text: str, fmt: str | None, colour: bool) -> str:
    """Nothing in the output can drive a terminal: control characters are removed from text
    formats and escaped in JSON; the colours our own templates add are kept when asked for."""
    if fmt is None or fmt == "yaml":
        return text
    if fmt == "json":
        return json_safe(text)
    return clean_keeping_colour(text) if colour else clean(text)


def emit(text: str, *, fmt: str | None = "text", colour: bool = False) -> None:
    """Text to standard output: cleaned, paged when long and on a terminal."""
    text = _safe(text, fmt, colour)
    if not text.endswith("\n"):
        text += "\n"
    if sys.stdout is None:
        raise OSError(errno.EBADF, "standard output is closed")
    if pager_wanted(sys.stdout, text):
        click.echo_via_pager(text, color=colour)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


def write_output(text: str, output: Path | None, *, fmt: str | None = None,
                 colour: bool = False) -> None:
    """Write to standard output (no OUTPUT, or '-') or to a file.

    A regular file (or a new one) is written whole or not at all, through a temporary file
    renamed over it, keeping the mode of the file it replaces (a new file gets the user's umask).
    A FIFO or a device is written through. A symbolic link or a directory is refused.
    `fmt` says how to make the text safe for a terminal (None: write it as it is)."""
    if to_stdout(output):
        emit(text, fmt=fmt, colour=colour)
        return
    text = _safe(text, fmt, False)
    if not text.endswith("\n"):
        text += "\n"
    try:
        st = os.lstat(output)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise OutputError(f"cannot write {output}: it is a symbolic link (write to "
                              f"{os.path.realpath(output)} itself, or remove the link)")
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"cannot write {output}: it is a directory")
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            _write_through(text, output)  # a FIFO, a device, or a file with other names
            return
    _write_atomic(text, output, st)


def _write_through(text: str, output: Path) -> None:
    try:
        with open(output, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as exc:
        raise _write_error(output, exc) from None


def _write_atomic(text: str, output: Path, st: os.stat_result | None) -> None:
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
    try:
        replace_file(output, text, mode)
    except OSError as exc:
        raise _write_error(output, exc) from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# out of space, quota, I/O: the machine, not what the person typed
ENVIRONMENT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EPIPE, errno.EROFS}


def _write_error(output: Path, exc: OSError) -> click.ClickException:
    message = f"cannot write {output}: {exc.strerror or exc}"
    if exc.errno in ENVIRONMENT_ERRORS:
        return EnvironmentFailure(message)
    return OutputError(message)


class OutputError(click.ClickException):
    """An output path that cannot be written as given: exit 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"cno-pathway: error: {clean(self.format_message())}", err=True)


class EnvironmentFailure(OutputError):
    """The machine, not the input: a full disk, a closed stream. Exit 1, one line."""

    exit_code = 1
