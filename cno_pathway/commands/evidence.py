"""`cno-pathway evidence list | show ID`: the evidence library, with its quotes."""

from __future__ import annotations

import json

import click

from ..errors import InputError
from ..knowledge.evidence import Finding, Source, load_library
from ..resources import seeds_dir
from ..consult.render import _wrap
from ..terminal import clean, did_you_mean, plural
from .common import Group, emit, terminal_options


@click.group(cls=Group)
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
@terminal_options
def list_sources(fmt):
    """Sources with design, number of patients, quality and number of findings."""
    library = load_library(seeds_dir())
    if fmt == "json":
        emit(json.dumps({"grading": {"scheme": library.grading.scheme,
                                     "grades": library.grading.grades},
                         "sources": [_source_json(s, library, False)
                                     for s in library.sources.values()]}, indent=2), fmt="json")
        return
    lines: list[str] = []
    lines.append(f"{'source':<24} {'year':<5} {'design':<20} {'population':<10} {'n':>4} "
                 f"{'quality':<7} findings")
    for s in library.sources.values():
        n = "-" if s.n is None else str(s.n)
        lines.append(f"{s.id:<24} {s.year or '-':<5} {s.design:<20} {s.population:<10} {n:>4} "
                     f"{s.quality:<7} {len(s.findings)}"
                     + (f"  (via {s.known_through})" if s.known_through else ""))
    lines.append(f"\n{plural(len(library.sources), 'source')}, "
                 f"{plural(library.finding_count, 'finding')}. Quality: {library.grading.scheme}:")
    for grade, meaning in library.grading.grades.items():
        lines.append(_wrap(f"{grade}  {meaning}", indent=5, first=2))
    emit("\n".join(lines))


@evidence.command("show")
@click.argument("ident")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@terminal_options
def show(ident, fmt):
    """A source with its findings, or one finding as SOURCE#FINDING."""
    library = load_library(seeds_dir())
    if "#" in ident:
        try:
            source, finding = library.resolve(ident)
        except KeyError as exc:
            raise InputError(f"{exc.args[0]} (see `cno-pathway evidence list`)",
                             field=clean(ident)[:80]) from None
        findings = [finding]
    else:
        source = library.sources.get(ident)
        if source is None:
            raise InputError(f"unknown source{did_you_mean(ident, library.sources)} "
                             f"(known: {', '.join(library.sources)})", field=clean(ident)[:80])
        findings = list(source.findings.values())
    if fmt == "json":
        data = _source_json(source, library, False)
        data["findings"] = [_finding_json(f) for f in findings]
        emit(json.dumps(data, indent=2, ensure_ascii=False), fmt="json")
        return
    lines: list[str] = []
    lines.append(_wrap(source.reference(library)))
    ident_line = f"id {source.id}; {source.design.replace('_', ' ')}; {source.population}; " \
                 f"n = {source.n if source.n is not None else 'not given'}; quality {source.quality} " \
                 f"({library.grading.meaning(source.quality)})"
    lines.append(_wrap(ident_line))
    if source.doi:
        lines.append(f"doi:{source.doi}")
    if source.url:
        lines.append(source.url)
    for f in findings:
        lines.append("")
        lines.append(f"{f.citation}  [{f.topic}]")
        lines.append(_wrap(f.statement, indent=2, first=2))
        lines.append(_wrap(f'"{f.quote}"', indent=2, first=2))
        lines.append(f"  at: {f.locator}")
        if f.numbers:
            lines.append("  numbers: " + ", ".join(f"{k} = {v}" for k, v in f.numbers.items()))
    emit("\n".join(lines))
