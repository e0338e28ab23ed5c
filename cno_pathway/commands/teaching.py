"""Commands for teaching: `pathway` (the diagram), `demo CASE` (a case step by step) and
`cases list | show NAME | run NAME` (the teaching cases in examples/)."""

from __future__ import annotations

import json
import os
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
from ..terminal import clean, clean_keeping_colour, plural
from .common import (FORMATS, Group, emit, formulary_option, load_pathway, output_option,
                     pick_format, rules_option, terminal_options, use_colour, write_output)

_DIAGRAM_EXTENSIONS = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot",
                       ".svg": "svg"}
_DEMO_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
                    ".html": "html", ".htm": "html"}


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
@output_option(".mmd, .dot, .svg", "the diagram")
@click.option("--embed", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Write the Mermaid diagram into this Markdown file, between its "
                   "generated-diagram markers, each alone on its line and present once (what "
                   "`make diagram` does to README.md). A symlink is written through to its "
                   "target; line endings are kept.")
@rules_option
@terminal_options
def pathway(fmt, case_name, profile_path, output, embed, rules_dir):
    """Draw the pathway from the rule base, top to bottom in step-up order: the stages in
    bands per pathway section, each listing its suggestions (kind, therapy, grade); the rules
    that apply at any stage in one band. Rule ids are tooltips (SVG) or comments (Mermaid).

    With --case or --profile, the stages that patient reaches, the rules that fire and the
    stage where they stand are highlighted.
    """
    if case_name and profile_path:
        raise click.UsageError("give --case or --profile, not both")
    fmt = pick_format(fmt, output, _DIAGRAM_EXTENSIONS, default="mermaid")
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
    write_output(text, output, fmt=fmt)


def _terminal() -> bool:
    """Pause between demo steps only when someone is at a terminal on both ends."""
    return sys.stdin.isatty() and sys.stdout.isatty()


# -- demo -----------------------------------------------------------------------------------------

@click.command()
@click.argument("case_name", metavar="CASE")
@click.option("--no-pause", is_flag=True, help="Print every step at once (for scripts and tests).")
@click.option("-f", "--format", "fmt", type=click.Choice(DEMO_FORMATS),
              help="text (default), or markdown / html for one handout of the whole walk-through.")
@output_option(".txt, .md, .html", "the walk-through")
@rules_option
@formulary_option
@terminal_options
def demo(case_name, no_pause, fmt, output, rules_dir, formulary):
    """Replay a teaching case one treatment at a time.

    Step 1 is the patient before any treatment; each next step adds the next treatment of the
    case with its response. Each step shows the stage, the suggestions and what changed since the
    step before. In a terminal it pauses between steps (--no-pause prints them all). CASE is a
    name from `cno-pathway cases list` or the path of a case file.
    """
    fmt = pick_format(fmt, output, _DEMO_EXTENSIONS)
    pathway_ = load_pathway(rules_dir, formulary)
    walk = replay(pathway_, _case(case_name))
    colour = use_colour(output) and fmt == "text"
    interactive = not no_pause and fmt == "text" and output is None and _terminal()
    if not interactive:
        write_output(render_demo(walk, fmt, pathway_.vocabulary, colour=colour), output, fmt=fmt,
                     colour=colour)
        return
    shown = clean_keeping_colour if colour else clean
    head, *steps, foot = render_demo_parts(walk, pathway_.vocabulary, colour=colour)
    sys.stdout.write(shown(head))
    for number, part in enumerate(steps, start=1):
        sys.stdout.write(shown(part))
        sys.stdout.flush()
        if number < len(steps):
            _pause(f"-- press any key for step {number + 1} of {len(steps)} (Ctrl-C stops) --")
    sys.stdout.write(shown(foot))
    sys.stdout.flush()


def _pause(text: str) -> None:
    """Wait for a key. Unlike click.pause, Ctrl-C stops the demo (exit 130 through cli.py), and
    a key typed while the step was printing is kept, not flushed away."""
    click.echo("\n" + text, err=True)
    try:
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, AttributeError, OSError, ValueError):
        try:
            click.getchar()
        except EOFError:  # Ctrl-D: go on, as any other key
            pass
        return
    try:
        tty.setraw(fd, termios.TCSANOW)
        key = os.read(fd, 32)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    if b"\x03" in key:
        raise KeyboardInterrupt


# -- cases ----------------------------------------------------------------------------------------

@click.group(cls=Group)
def cases():
    """The teaching cases (shipped with the program): their source, the point each teaches,
    their consult."""


@cases.command("list")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@terminal_options
def list_cases(fmt):
    """Every teaching case with its title, source and what it teaches."""
    found = load_cases()
    if not found:
        raise InputError("no teaching cases found (the installation is missing its examples)")
    if fmt == "json":
        emit(json.dumps([{"name": c.name, "title": c.title, "source": c.source,
                          "teaches": c.teaches} for c in found], indent=2, ensure_ascii=False),
             fmt="json")
        return
    lines = []
    for c in found:
        lines.append(c.name)
        lines.append(_wrap(c.title, indent=4))
        if c.source:
            lines.append(_wrap("source: " + ", ".join(c.source), indent=6, first=4))
        if c.teaches:
            lines.append(_wrap("teaches: " + c.teaches, indent=6, first=4))
    lines.append(f"\n{plural(len(found), 'teaching case')}. `cno-pathway cases show NAME`, "
                 "`cno-pathway cases run NAME`, `cno-pathway demo NAME`.")
    emit("\n".join(lines))


@cases.command("show")
@click.argument("name")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@rules_option
@terminal_options
def show_case(name, fmt, rules_dir):
    """A teaching case: its source (with the reference), what it teaches, what it must give,
    and the patient profile."""
    case = _case(name)
    if fmt == "json":
        emit(json.dumps({"name": case.name, "title": case.title, "source": case.source,
                         "teaches": case.teaches,
                         "expect": {"stage": case.expect_stage,
                                    "suggestions": case.expect_suggestions},
                         "profile": case.profile_data}, indent=2, ensure_ascii=False), fmt="json")
        return
    vocabulary = load_vocabulary(resolve_rules_dir(rules_dir))
    library = load_library(seeds_dir())
    lines: list[str] = []
    lines.append(_wrap(case.title))
    lines.append(f"{case.name} ({case.document.source})")
    if case.teaches:
        lines.append(_wrap("Teaches: " + case.teaches, indent=2, first=0))
    if case.source:
        lines.append("Sources:")
    for source_id in case.source:
        source = library.sources.get(source_id)
        reference = source.reference(library) if source else "(not in the evidence library)"
        lines.append(_wrap(f"{source_id}: {reference}", indent=4, first=2))
    stages = [vocabulary.stages[s].label if s in vocabulary.stages else s for s in case.expect_stage]
    lines.append(_wrap("Expected stage: " + ("; ".join(stages) or "none"), indent=2, first=0))
    lines.append(_wrap("Expected suggestions: " + (", ".join(case.expect_suggestions) or "none"),
                     indent=2, first=0))
    lines.append("\nProfile:")
    dumped = yaml.safe_dump(case.profile_data, sort_keys=False, default_flow_style=None,
                            allow_unicode=True, width=96)
    lines.append("".join("  " + line for line in dumped.splitlines(keepends=True)).rstrip("\n"))
    emit("\n".join(lines))


@cases.command("run")
@click.argument("name")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), help="Output format (default text).")
@output_option(".txt, .md, .html, .json")
@click.option("--explain", is_flag=True, help="Show every rule not suggested and why.")
@rules_option
@formulary_option
@terminal_options
def run_case(name, fmt, output, explain, rules_dir, formulary):
    """The consult of a teaching case (and a note on standard error when it differs from what
    the case expects)."""
    fmt = pick_format(fmt, output)
    case = _case(name)
    pathway_ = load_pathway(rules_dir, formulary)
    result = pathway_.consult(case.profile(pathway_.vocabulary), explain=explain)
    colour = use_colour(output) and fmt == "text"
    write_output(render_consult(result, fmt, colour=colour), output, fmt=fmt, colour=colour)
    for line in case_differences(case, result, pathway_.rulebook):
        click.echo(f"cno-pathway: note: {clean(line)}", err=True)


def case_differences(case: Case, result, rulebook) -> list[str]:
    """How a consult differs from what the case expects, in words: the expected rules it did
    not give, the ones it gave beyond them (each with its title), and the stage."""
    if not case.expect_suggestions and not case.expect_stage:
        return []
    vocabulary = rulebook.vocabulary

    def named(rule_id: str) -> str:
        rule = rulebook.by_id.get(rule_id)
        return f"{rule_id} ({rule.title})" if rule else f"{rule_id} (not in this rule base)"

    given = {s.rule for s in result.suggestions}
    expected = set(case.expect_suggestions)
    out = []
    if case.expect_suggestions and given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        if missing:
            out.append(f"  missing {plural(len(missing), 'rule')}: "
                       + "; ".join(named(r) for r in missing))
        if extra:
            out.append(f"  extra {plural(len(extra), 'rule')}: " + "; ".join(named(r) for r in extra))
    if case.expect_stage and list(result.stage) != list(case.expect_stage):
        def words(stages):
            return "; ".join(vocabulary.stages[s].label if s in vocabulary.stages else s
                             for s in stages) or "none"
        out.append(f"  stage: expected {words(case.expect_stage)}, got {words(result.stage)}")
    if out:
        out.insert(0, f"the consult differs from what {case.name} expects")
    return out


# -- what-if (an option of `consult`) -------------------------------------------------------------

def print_what_if(pathway_, patient, edits, fmt: str, output: Path | None) -> None:
    """The what-if comparison for `consult --what-if` (text, markdown or json)."""
    if fmt not in WHAT_IF_FORMATS:
        raise click.UsageError(f"--what-if writes {', '.join(WHAT_IF_FORMATS)}, not {fmt}")
    result = what_if(pathway_, patient, edits)
    colour = use_colour(output) and fmt == "text"
    write_output(render_what_if(result, fmt, colour=colour), output, fmt=fmt, colour=colour)
