"""The command line: a thin edge over the library. Each command group lives in commands/.

Commands are imported only when invoked, so a consult does not pay for the diagram or batch
code at start-up. Bad input of any kind (a profile, a rule file, a flag) ends in one message
naming the field or file:line and exit status 2, never a traceback.
"""

from __future__ import annotations

import gc
import importlib
import sys

import click

from . import __version__
from .errors import InputError

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


class _Main(click.Group):
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

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"cno-pathway: error: {exc}", err=True)
            ctx.exit(2)
        except RecursionError:
            click.echo("cno-pathway: error: input nested too deeply", err=True)
            ctx.exit(2)
        except MemoryError:
            click.echo("cno-pathway: error: input too large", err=True)
            ctx.exit(2)
        except BrokenPipeError:
            sys.stderr.close()
            ctx.exit(0)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cno-pathway")
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


def run() -> None:
    """The console script and `python -m cno_pathway`: main() in a process of its own."""
    global _starting_up
    _starting_up = gc.isenabled()
    gc.disable()
    try:
        main()
    finally:
        _start_up_done()
        gc.freeze()  # the process ends now: no last rescan of objects the exit frees anyway


def _start_up_done() -> None:
    global _starting_up
    if _starting_up:
        _starting_up = False
        gc.freeze()
        gc.enable()
