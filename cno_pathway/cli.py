"""The command line: a thin edge over the library. Each command group lives in commands/.

Commands are imported only when invoked, so a consult does not pay for the diagram or batch
code at start-up. Bad input of any kind (a profile, a rule file, a flag) ends in one message
naming the field or file:line and exit status 2, never a traceback; the machine failing under
us (a full disk, a closed stream) ends in one line and exit status 1; Ctrl-C in exit status 130.
Every message is cleaned of control sequences before it reaches the terminal.
"""

from __future__ import annotations

import codecs
import errno
import gc
import importlib
import os
import sys

import click

from . import __version__
from .commands.common import Group, terminal_options
from .errors import InputError
from .terminal import Settings, clean, clean_line

# command name -> "module:attribute" under cno_pathway.commands
COMMANDS = {
    "consult": "consult:consult",
    "batch": "batch:batch",
    "evidence": "evidence:evidence",
    "pathway": "teaching:pathway",
    "demo": "teaching:demo",
    "cases": "teaching:cases",
    "rules": "rules:rules",
    "serve": "serve:serve",
    "feedback": "serve:feedback",
}

INTERRUPTED = 130

# Commands that leave nothing to clean up once their output is flushed: when run() is the
# process's own entry point, it ends the process at once (os._exit) rather than tearing down
# every module and object first (about 5 ms of a 200 ms consult). Only when nothing could miss
# the teardown: the files they write are closed by then, no other thread runs, no exit handler
# is registered, and the process's main module is ours (`python -m cno_pathway` or the console
# script, not a program or a test that calls run()).
QUICK_EXIT = frozenset({"consult"})


class CleanWriter:
    """A stream that drops control sequences from what is written (click's own messages echo
    what the person typed)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._stream.write(clean(text))

    def flush(self):
        self._stream.flush()

    def isatty(self):
        return False


def _error(message: str) -> None:
    click.echo(f"cno-pathway: error: {clean(message)}", err=True)


def environment_message(exc: OSError) -> str:
    """One line for an OSError from the machine: what failed and why, in words."""
    what = exc.strerror or str(exc)
    if exc.filename:
        return clean_line(f"{exc.filename}: {what}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG):
        return clean_line(f"cannot write the output: {what}")
    return clean_line(what)


class _Main(Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(f"cno_pathway.commands.{module}"), attribute)
        _start_up_done()
        return command

    def make_context(self, info_name, args, parent=None, **extra):
        Settings.colour, Settings.pager = None, True  # each invocation decides afresh
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as exc:
            exc.show(file=CleanWriter(sys.stderr))
            sys.exit(exc.exit_code)

    def invoke(self, ctx):
        global _invoked
        try:
            return super().invoke(ctx)
        except InputError as exc:
            _error(str(exc))
            ctx.exit(2)
        except RecursionError:
            _error("input nested too deeply")
            ctx.exit(2)
        except MemoryError:
            _error("input too large")
            ctx.exit(2)
        except (KeyboardInterrupt, click.Abort):
            _interrupted()
            ctx.exit(INTERRUPTED)
        except BrokenPipeError:
            _silence_stdout()
            sys.stderr.close()
            ctx.exit(0)
        except click.ClickException as exc:
            exc.show(file=CleanWriter(sys.stderr))
            ctx.exit(exc.exit_code)
        except OSError as exc:  # not the input (those are InputErrors): the machine under us
            _silence_stdout()
            _error(environment_message(exc))
            ctx.exit(1)
        finally:
            _invoked = ctx.invoked_subcommand


def _interrupted() -> None:
    try:
        click.echo("\ncno-pathway: interrupted", err=True)
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """After a failed write, point standard output at /dev/null so that the interpreter's last
    flush of what is still buffered cannot fail again (a second message, a changed status)."""
    try:
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (AttributeError, OSError, ValueError):
        pass


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cno-pathway")
@terminal_options
def main():
    """Treatment-pathway decision aid for chronic nonbacterial osteomyelitis (CNO/CRMO).

    It supports, and does not replace, clinical judgement.
    """


# -- the one-shot process -------------------------------------------------------------------------
# Start-up creates some 35,000 objects that live until the process ends (modules, pydantic's
# schemas, click's commands). The cyclic collector rescans them again and again while they are
# imported and twice more at exit, and frees none of them: measured, about 70 ms of a 230 ms
# consult on these machines. So the console script imports with the collector paused, then
# freezes what exists out of its sight (gc.freeze) and turns it back on before the command works
# (a batch of 100,000 profiles is collected as usual), and freezes again at exit. main() called
# in-process (tests, other programs) changes nothing.

_starting_up = False
_invoked: str | None = None   # the command main() ran last (QUICK_EXIT)


class _Closed:
    """Stands in for a standard stream that was closed before we started (`>&-`, `<&-`): using
    it fails with one clear OSError rather than an AttributeError on None."""

    def __init__(self, name: str):
        self.name = name

    def _fail(self, *args, **kwargs):
        raise OSError(errno.EBADF, f"{self.name} is closed")

    write = read = readline = fileno = _fail

    def flush(self):
        pass

    @property
    def buffer(self):
        return self

    def isatty(self):
        return False


def _undecodable(exc: UnicodeError):
    """Encode error handler: a byte the locale could not decode (a file name or argument read
    as surrogate escapes) goes out as that byte; any other unencodable character as \\uXXXX."""
    if isinstance(exc, UnicodeEncodeError):
        text = exc.object[exc.start:exc.end]
        if all(0xDC80 <= ord(c) <= 0xDCFF for c in text):
            return bytes(ord(c) - 0xDC00 for c in text), exc.end
    return codecs.backslashreplace_errors(exc)


def _as_utf8(arg: str) -> str:
    if arg.isascii() or not any(0xDC80 <= ord(c) <= 0xDCFF for c in arg):
        return arg
    try:
        return os.fsencode(arg).decode("utf-8")
    except UnicodeError:
        return arg


def _prepare_streams() -> None:
    """Output is UTF-8 whatever the locale says (an ASCII-only locale cannot fail a consult on
    a dash), and a closed stream is a clear error when it is used, not a crash."""
    codecs.register_error("cno-pathway", _undecodable)
    # arguments the locale could not decode (an ASCII locale, a UTF-8 name): read as UTF-8
    sys.argv = [_as_utf8(arg) for arg in sys.argv]
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, _Closed(f"standard {'output' if name == 'stdout' else 'error'}"))
            continue
        try:
            stream.reconfigure(encoding="utf-8", errors="cno-pathway")
        except (AttributeError, ValueError, OSError):
            pass
    if sys.stdin is None:
        sys.stdin = _Closed("standard input")


def run() -> None:
    """The console script and `python -m cno_pathway`: main() in a process of its own."""
    global _starting_up
    _prepare_streams()
    _starting_up = gc.isenabled()
    gc.disable()
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        _interrupted()
        code = INTERRUPTED
    except BrokenPipeError:  # `--help | head -1`: the reader has what it wanted
        _silence_stdout()
    except OSError as exc:  # writing --help or --version to a full or closed stream
        _silence_stdout()
        try:
            click.echo(f"cno-pathway: error: {environment_message(exc)}", err=True)
        except (OSError, ValueError):
            pass
        code = 1
    finally:
        _start_up_done()
        gc.freeze()  # the process ends now: no last rescan of objects the exit frees anyway
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError) as exc:
        _silence_stdout()
        if isinstance(exc, OSError):
            try:
                click.echo(f"cno-pathway: error: cannot write to standard output: "
                           f"{environment_message(exc)}", err=True)
            except (OSError, ValueError):
                pass
        code = code or 1
    if _invoked in QUICK_EXIT and (code is None or isinstance(code, int)) and _nothing_to_tear_down():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code or 0)
    sys.exit(code)


def _nothing_to_tear_down() -> bool:
    """This process is ours alone: its main module is our entry point, no other thread runs
    and no exit handler waits (CPython tells how many; elsewhere, never a quick exit)."""
    import atexit

    main_module = sys.modules.get("__main__")
    threading = sys.modules.get("threading")
    handlers = getattr(atexit, "_ncallbacks", None)
    return (getattr(main_module, "run", None) is run
            and (threading is None or threading.active_count() == 1)
            and handlers is not None and handlers() == 0)


def _start_up_done() -> None:
    global _starting_up
    if _starting_up:
        _starting_up = False
        gc.freeze()
        gc.enable()
        from .knowledge.cache import keep_knowledge_frozen

        keep_knowledge_frozen()     # the knowledge a command loads joins the start-up objects
