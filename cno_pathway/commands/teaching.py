"""Commands for teaching: `pathway` (the diagram), `demo CASE` (a case step by step) and
`cases list | show NAME | run NAME` (the teaching cases in examples/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from ..teaching import diagram
from ..teaching.cases import Case, find_case, load_case, load_cases
from ..teaching.demo import FORMATS as DEMO_FORMATS, render_demo, render_demo_parts, replay
from ..errors import InputError
from ..knowledge.evidence import load_library
from ..patient.intake import profile_from_file
from ..consult.render import _wrap, render_consult
from ..resources import rules_dir as resolve_rules_dir, seeds_dir
from ..knowledge.rulebook import load_rulebook
from ..knowledge.vocabulary import load_vocabulary
from ..teaching.whatif import FORMATS as WHAT_IF_FORMATS, render_what_if, what_if
from .common import (FORMATS, formulary_option, load_pathway, pick_format, rules_option,
                     use_colour, write_output)

_DIAGRAM_EXTENSIONS = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot",
                       ".svg": "svg"}


def _case(name: str) -> Case:
    """A teaching case by name (examples/NAME.yaml) or by the path of a case file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        return load_case(path)
    return find_case(name)


# -- pathway --------------------------------------------------------------------------------------

@click.command()
@click.option("-f", "--format", "fmt", type=click.Choice(diagram.FORMATS),
              help="mermaid (default; renders on code-hosting sites), dot (Graphviz) or svg "
                   "(needs Graphviz's `dot`).")
@click.option("--case", "case_name", metavar="NAME",
              help="Highlight the path of a teaching case (see `cno-pathway cases list`).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Highlight the path of the patient in a profile file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the diagram to a file (format from its extension: .mmd, .dot, .svg).")
@click.option("--embed", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Write the Mermaid diagram into this Markdown file, between its "
                   "generated-diagram markers, each alone on its line and present once (what "
                   "`make diagram` does to README.md). A symlink is written through to its "
                   "target; line endings are kept.")
@rules_option
def pathway(fmt, case_name, profile_path, output, embed, rules_dir):
    """Draw the pathway from the rule base, top to bottom in step-up order: the stages in
    bands per pathway section, each listing its suggestions (kind, therapy, grade); the rules
    that apply at any stage in one band. Rule ids are tooltips (SVG) or comments (Mermaid).

    With --case or --profile, the stages that patient reaches, the rules that fire and the
    stage where they stand are highlighted.
    """
    if case_name and profile_path:
        raise click.UsageError("give --case or --profile, not both")
    if fmt is None and output is not None:
        fmt = _DIAGRAM_EXTENSIONS.get(output.suffix.lower())
    fmt = fmt or "mermaid"
    if embed is not None and fmt != "mermaid":
        raise click.UsageError("--embed writes a Mermaid block: use --format mermaid")
    book = load_rulebook(resolve_rules_dir(rules_dir))
    evaluation, patient = None, ""
    if case_name:
        case = _case(case_name)
        evaluation, patient = diagram.evaluate_profile(book, case.profile(book.vocabulary)), case.name
    elif profile_path:
        profile = profile_from_file(profile_path, book.vocabulary)
        evaluation = diagram.evaluate_profile(book, profile)
        patient = profile.id or ("<stdin>" if profile_path == "-" else Path(profile_path).name)
    graph = diagram.build_graph(book, evaluation, patient=patient)
    text = diagram.render(graph, fmt)
    if embed is not None:
        # through a symlink to its target; line endings and every line outside the block kept
        markdown = diagram.read_markdown(embed)
        diagram.write_markdown(embed, diagram.embed_mermaid(markdown, text, source=str(embed)))
        if output is None:
            return
    write_output(text, output)


def _terminal() -> bool:
    """Pause between demo steps only when someone is at a terminal on both ends."""
    return sys.stdin.isatty() and sys.stdout.isatty()


# -- demo -----------------------------------------------------------------------------------------

@click.command()
@click.argument("case_name", metavar="CASE")
@click.option("--no-pause", is_flag=True, help="Print every step at once (for scripts and tests).")
@click.option("-f", "--format", "fmt", type=click.Choice(DEMO_FORMATS),
              help="text (default), or markdown / html for one handout of the whole walk-through.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to a file (format from its extension: .txt, .md, .html).")
@rules_option
@formulary_option
def demo(case_name, no_pause, fmt, output, rules_dir, formulary):
    """Replay a teaching case one treatment at a time.

    Step 1 is the patient before any treatment; each next step adds the next treatment of the
    case with its response. Each step shows the stage, the suggestions and what changed since the
    step before. In a terminal it pauses between steps (--no-pause prints them all). CASE is a
    name from `cno-pathway cases list` or the path of a case file.
    """
    fmt = pick_format(fmt, output)
    if fmt not in DEMO_FORMATS:
        raise click.UsageError(f"demo writes {', '.join(DEMO_FORMATS)}, not {fmt}")
    pathway_ = load_pathway(rules_dir, formulary)
    walk = replay(pathway_, _case(case_name))
    colour = use_colour(output) and fmt == "text"
    interactive = not no_pause and fmt == "text" and output is None and _terminal()
    if not interactive:
        write_output(render_demo(walk, fmt, pathway_.vocabulary, colour=colour), output)
        return
    head, *steps, foot = render_demo_parts(walk, pathway_.vocabulary, colour=colour)
    sys.stdout.write(head)
    for number, part in enumerate(steps, start=1):
        sys.stdout.write(part)
        sys.stdout.flush()
        if number < len(steps):
            click.pause(f"\n-- press any key for step {number + 1} of {len(steps)} --")
    write_output(foot, None)


# -- cases ----------------------------------------------------------------------------------------

@click.group()
def cases():
    """The teaching cases in examples/: their source, the point each teaches, their consult."""


@cases.command("list")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_cases(fmt):
    """Every teaching case with its title, source and what it teaches."""
    found = load_cases()
    if not found:
        raise InputError("no teaching cases found: they live in examples/ of a source checkout")
    if fmt == "json":
        click.echo(json.dumps([{"name": c.name, "title": c.title, "source": c.source,
                                "teaches": c.teaches} for c in found], indent=2, ensure_ascii=False))
        return
    for c in found:
        click.echo(c.name)
        click.echo(_wrap(c.title, indent=4))
        if c.source:
            click.echo(_wrap("source: " + ", ".join(c.source), indent=6, first=4))
        if c.teaches:
            click.echo(_wrap("teaches: " + c.teaches, indent=6, first=4))
    click.echo(f"\n{len(found)} teaching cases. `cno-pathway cases show NAME`, "
               "`cno-pathway cases run NAME`, `cno-pathway demo NAME`.")


@cases.command("show")
@click.argument("name")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@rules_option
def show_case(name, fmt, rules_dir):
    """A teaching case: its source (with the reference), what it teaches, what it must give,
    and the patient profile."""
    case = _case(name)
    if fmt == "json":
        click.echo(json.dumps({"name": case.name, "title": case.title, "source": case.source,
                               "teaches": case.teaches,
                               "expect": {"stage": case.expect_stage,
                                          "suggestions": case.expect_suggestions},
                               "profile": case.profile_data}, indent=2, ensure_ascii=False))
        return
    vocabulary = load_vocabulary(resolve_rules_dir(rules_dir))
    library = load_library(seeds_dir())
    click.echo(_wrap(case.title))
    click.echo(f"{case.name} ({case.document.source})")
    if case.teaches:
        click.echo(_wrap("Teaches: " + case.teaches, indent=2, first=0))
    if case.source:
        click.echo("Sources:")
    for source_id in case.source:
        source = library.sources.get(source_id)
        reference = source.reference(library) if source else "(not in the evidence library)"
        click.echo(_wrap(f"{source_id}: {reference}", indent=4, first=2))
    stages = [vocabulary.stages[s].label if s in vocabulary.stages else s for s in case.expect_stage]
    click.echo(_wrap("Expected stage: " + ("; ".join(stages) or "none"), indent=2, first=0))
    click.echo(_wrap("Expected suggestions: " + (", ".join(case.expect_suggestions) or "none"),
                     indent=2, first=0))
    click.echo("\nProfile:")
    dumped = yaml.safe_dump(case.profile_data, sort_keys=False, default_flow_style=None,
                            allow_unicode=True, width=96)
    click.echo("".join("  " + line for line in dumped.splitlines(keepends=True)), nl=False)


@cases.command("run")
@click.argument("name")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), help="Output format (default text).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the consult to a file (format from its extension).")
@click.option("--explain", is_flag=True, help="Show every rule not suggested and why.")
@rules_option
@formulary_option
def run_case(name, fmt, output, explain, rules_dir, formulary):
    """The consult of a teaching case (and a note on standard error when it differs from what
    the case expects)."""
    case = _case(name)
    pathway_ = load_pathway(rules_dir, formulary)
    result = pathway_.consult(case.profile(pathway_.vocabulary), explain=explain)
    fmt = pick_format(fmt, output)
    write_output(render_consult(result, fmt, colour=use_colour(output) and fmt == "text"), output)
    given = sorted(s.rule for s in result.suggestions)
    if case.expect_suggestions and (given != sorted(case.expect_suggestions)
                                    or list(result.stage) != list(case.expect_stage)):
        click.echo(f"cno-pathway: note: the consult differs from what {case.name} expects "
                   f"(stage {case.expect_stage}, suggestions {sorted(case.expect_suggestions)})",
                   err=True)


# -- what-if (an option of `consult`) -------------------------------------------------------------

def print_what_if(pathway_, patient, edits, fmt: str, output: Path | None) -> None:
    """The what-if comparison for `consult --what-if` (text, markdown or json)."""
    if fmt not in WHAT_IF_FORMATS:
        raise click.UsageError(f"--what-if writes {', '.join(WHAT_IF_FORMATS)}, not {fmt}")
    result = what_if(pathway_, patient, edits)
    write_output(render_what_if(result, fmt, colour=use_colour(output) and fmt == "text"), output)
