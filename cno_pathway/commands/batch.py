"""`cno-pathway batch FILE`: consults for a cohort in JSON Lines."""

from __future__ import annotations

import json
import sys

import click

from ..consult.batch import BatchResult, run_batch
from ..errors import InputError
from .common import formulary_option, load_pathway, rules_option


@click.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--summary", is_flag=True, help="Print counts of stages and suggestions instead of consults.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="For lines that are FHIR Bundles: count ages and treatment months to this "
                   "day instead of today.")
@rules_option
@formulary_option
def batch(file, summary, rules_dir, formulary, as_of):
    """Consult every profile of a JSON Lines FILE ('-' reads standard input).

    Writes one JSON consult a line. A bad line is reported on standard error with its line
    number and the others go on; the exit status is 2 when any line failed.
    """
    pathway = load_pathway(rules_dir, formulary)
    source = "<stdin>" if file == "-" else file
    try:
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=file) from None
    out = sys.stdout
    show_progress = sys.stderr.isatty() and file != "-"

    def on_result(consult):
        if not summary:
            out.write(json.dumps(consult.to_json(), ensure_ascii=False, separators=(",", ":")))
            out.write("\n")

    def on_error(exc):
        click.echo(f"cno-pathway: error: {exc}", err=True)

    from ..interop import reading_as_of

    with stream, reading_as_of(as_of.date() if as_of else None):
        if show_progress:
            with click.progressbar(stream, label="consults", file=sys.stderr) as lines:
                result = run_batch(pathway, lines, source, on_result=on_result, on_error=on_error)
        else:
            result = run_batch(pathway, stream, source, on_result=on_result, on_error=on_error)
    out.flush()
    if summary:
        click.echo(_summary_table(result, pathway))
    if result.failed:
        click.echo(f"cno-pathway: {result.failed} of {result.ok + result.failed} lines failed", err=True)
        sys.exit(2)


def _summary_table(result: BatchResult, pathway) -> str:
    lines = [f"profiles consulted: {result.ok}", f"profiles failed:    {result.failed}",
             f"outside the pathway: {result.outside}", "", "stages:"]
    for stage in pathway.vocabulary.stages:
        if result.stages[stage]:
            lines.append(f"  {result.stages[stage]:>8}  {stage}")
    lines += ["", "suggestions by kind:"]
    for kind, count in sorted(result.kinds.items()):
        lines.append(f"  {count:>8}  {kind}")
    lines += ["", "suggestions by rule:"]
    for rule, count in sorted(result.suggestions.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {count:>8}  {rule}")
    return "\n".join(lines)
