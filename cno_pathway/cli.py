"""The command line: a thin edge over the library. Each command group lives in commands/.

Bad input of any kind (a profile, a rule file, a flag) ends in one message naming the field or
file:line and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .commands.batch import batch
from .commands.consult import consult
from .commands.evidence import evidence
from .commands.teaching import cases, demo, pathway
from .errors import InputError


class _Main(click.Group):
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


main.add_command(consult)
main.add_command(evidence)
main.add_command(batch)
main.add_command(pathway)
main.add_command(demo)
main.add_command(cases)

