"""`cno-pathway evidence list | show ID`: the evidence library, with its quotes."""

from __future__ import annotations

import json

import click

from ..errors import InputError
from ..knowledge.evidence import Finding, Source, load_library
from ..resources import seeds_dir
from ..consult.render import _wrap


@click.group()
def evidence():
    """The evidence library: sources, findings and verbatim quotes."""


def _source_json(source: Source, library, with_findings: bool) -> dict:
    data = {"id": source.id, "authors": source.authors, "title": source.title, "venue": source.venue,
            "year": source.year, "doi": source.doi, "url": source.url, "design": source.design,
            "population": source.population, "n": source.n, "quality": source.quality,
            "known_through": source.known_through, "reference": source.reference(library),
            "findings": len(source.findings)}
    if with_findings:
        data["findings"] = [_finding_json(f) for f in source.findings.values()]
    return data


def _finding_json(f: Finding) -> dict:
    return {"citation": f.citation, "id": f.id, "topic": f.topic, "statement": f.statement,
            "quote": f.quote, "locator": f.locator, "numbers": f.numbers}


@evidence.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_sources(fmt):
    """Sources with design, number of patients, quality and number of findings."""
    library = load_library(seeds_dir())
    if fmt == "json":
        click.echo(json.dumps({"grading": {"scheme": library.grading.scheme,
                                           "grades": library.grading.grades},
                               "sources": [_source_json(s, library, False)
                                           for s in library.sources.values()]}, indent=2))
        return
    click.echo(f"{'source':<24} {'year':<5} {'design':<20} {'population':<10} {'n':>4} "
               f"{'quality':<7} findings")
    for s in library.sources.values():
        n = "-" if s.n is None else str(s.n)
        click.echo(f"{s.id:<24} {s.year or '-':<5} {s.design:<20} {s.population:<10} {n:>4} "
                   f"{s.quality:<7} {len(s.findings)}" + (f"  (via {s.known_through})" if s.known_through else ""))
    click.echo(f"\n{len(library.sources)} sources, {library.finding_count} findings. "
               f"Quality: {library.grading.scheme}:")
    for grade, meaning in library.grading.grades.items():
        click.echo(_wrap(f"{grade}  {meaning}", indent=5, first=2))


@evidence.command("show")
@click.argument("ident")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def show(ident, fmt):
    """A source with its findings, or one finding as SOURCE#FINDING."""
    library = load_library(seeds_dir())
    if "#" in ident:
        try:
            source, finding = library.resolve(ident)
        except KeyError as exc:
            raise InputError(f"{exc.args[0]} (see `cno-pathway evidence list`)", field=ident) from None
        findings = [finding]
    else:
        source = library.sources.get(ident)
        if source is None:
            raise InputError(f"unknown source (known: {', '.join(library.sources)})", field=ident)
        findings = list(source.findings.values())
    if fmt == "json":
        data = _source_json(source, library, False)
        data["findings"] = [_finding_json(f) for f in findings]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(_wrap(source.reference(library)))
    ident_line = f"id {source.id}; {source.design.replace('_', ' ')}; {source.population}; " \
                 f"n = {source.n if source.n is not None else 'not given'}; quality {source.quality} " \
                 f"({library.grading.meaning(source.quality)})"
    click.echo(_wrap(ident_line))
    if source.doi:
        click.echo(f"doi:{source.doi}")
    if source.url:
        click.echo(source.url)
    for f in findings:
        click.echo("")
        click.echo(f"{f.citation}  [{f.topic}]")
        click.echo(_wrap(f.statement, indent=2, first=2))
        click.echo(_wrap(f'"{f.quote}"', indent=2, first=2))
        click.echo(f"  at: {f.locator}")
        if f.numbers:
            click.echo("  numbers: " + ", ".join(f"{k} = {v}" for k, v in f.numbers.items()))
