"""`cno-pathway rules lint | test | coverage | gaps | list | show`: tools for rule authors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import InputError
from ..resources import rules_dir as default_rules_dir
from ..rulebook import load_rulebook

_DIR = click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))


def _book(directory):
    return load_rulebook(directory or default_rules_dir())


@click.group()
def rules():
    """Check, test and inspect the rule base (default: the built-in rules/)."""


@rules.command()
@_DIR
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def lint(directory, fmt):
    """Schema and semantic checks with file:line and rule id; exit 1 on errors."""
    from ..lint import lint as run_lint

    problems = run_lint(directory or default_rules_dir())
    errors = sum(p.level == "error" for p in problems)
    if fmt == "json":
        click.echo(json.dumps({"errors": errors, "warnings": len(problems) - errors,
                               "problems": [p.to_json() for p in problems]}, indent=2))
    else:
        for problem in problems:
            click.echo(str(problem))
        click.echo(f"{errors} errors, {len(problems) - errors} warnings")
    sys.exit(1 if errors else 0)


@rules.command("test")
@_DIR
@click.option("--rule", "only", help="Run one rule's tests.")
def test_rules(directory, only):
    """Run every rule's own tests through the real engine; exit 1 on any failure."""
    from ..ruletest import run_rule_tests

    book = _book(directory)
    if only and only not in book.by_id:
        raise InputError(f"unknown rule {only!r}")
    results = run_rule_tests(book, only)
    failed = 0
    for result in results:
        rule = result.rule
        if result.ok:
            click.echo(f"PASS  {rule.id}  ({result.passed} tests)")
            continue
        failed += 1
        click.echo(f"FAIL  {rule.id}  {rule.where}")
        for failure in result.failures:
            where = f"line {failure.test.line}: " if failure.test else ""
            click.echo(f"      {where}{failure.test.expect + ': ' if failure.test else ''}{failure.reason}")
            if failure.test:
                click.echo(f"        profile: {json.dumps(failure.test.profile, sort_keys=True)}")
            for detail in failure.details:
                click.echo(f"        {detail}")
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


@rules.command()
@_DIR
def coverage(directory):
    """Which rules and condition branches the rule tests and teaching cases exercise."""
    from ..coverage import coverage as run_coverage

    results = run_coverage(_book(directory))
    never = [c for c in results if c.fired_by == 0]
    for cov in never:
        click.echo(f"NEVER FIRED  {cov.rule.id}  {cov.rule.where}")
    total = sum(len(c.branches) for c in results)
    covered = sum(c.branches_covered for c in results)
    for cov in results:
        missing = [f"{text} ({'never true' if not seen[0] else 'never false'})"
                   for text, seen in cov.branches.items() if not all(seen)]
        click.echo(f"{cov.rule.id:<44} fired by {cov.fired_by:>3}  branches "
                   f"{cov.branches_covered}/{len(cov.branches)}")
        for text in missing:
            click.echo(f"    not exercised: {text}")
    click.echo(f"{len(results) - len(never)} of {len(results)} rules fired by a test or case; "
               f"{covered} of {total} condition branches seen both true and false")
    sys.exit(1 if never else 0)


@rules.command()
@_DIR
def gaps(directory):
    """Profiles of a grid that get no suggestion, and contradictory suggestions."""
    from ..gaps import find_gaps

    count, found_gaps, conflicts = find_gaps(_book(directory))
    for gap in found_gaps:
        click.echo(f"NO SUGGESTION  {gap.label}  (stage: {', '.join(gap.stage) or 'none'})")
    for conflict in conflicts:
        click.echo(f"CONFLICT  {conflict.therapy}: {conflict.rules[0]} vs {conflict.rules[1]}  "
                   f"on {conflict.label}")
    click.echo(f"{count} profiles: {len(found_gaps)} without a suggestion, {len(conflicts)} conflicts")
    sys.exit(1 if found_gaps or conflicts else 0)


def _rule_json(rule) -> dict:
    return {"id": rule.id, "title": rule.title, "status": rule.status, "stage": rule.stage,
            "kind": rule.suggest.kind if rule.suggest else "derive",
            "therapy": rule.suggest.therapy if rule.suggest else None,
            "derives": rule.derive, "grade": rule.evidence.grade if rule.evidence else None,
            "cites": list(rule.evidence.cites) if rule.evidence else [],
            "file": rule.file, "line": rule.line}


@rules.command("list")
@_DIR
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def list_rules(directory, fmt):
    """Every rule: id, status, stage, kind, therapy, grade, file:line."""
    book = _book(directory)
    if fmt == "json":
        click.echo(json.dumps([_rule_json(r) for r in book.rules], indent=2))
        return
    for r in book.rules:
        kind = r.suggest.kind if r.suggest else "derive"
        what = (r.suggest.therapy or "-") if r.suggest else ", ".join(f"{k}={v}" for k, v in r.derive.items())
        grade = r.evidence.grade if r.evidence else "-"
        click.echo(f"{r.id:<44} {r.status:<8} {r.stage:<11} {kind:<11} {what:<24} {grade}  {r.where}")


@rules.command()
@click.argument("rule_id")
@click.option("--rules", "directory", type=click.Path(file_okay=False, path_type=Path),
              envvar="CNO_PATHWAY_RULES", help="Rule folder (default: the built-in rules/).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def show(rule_id, directory, fmt):
    """One rule in full: its condition in words, evidence and tests."""
    from ..conditions import describe

    book = _book(directory)
    rule = book.by_id.get(rule_id)
    if rule is None:
        raise InputError(f"unknown rule {rule_id!r} (see `cno-pathway rules list`)")
    data = _rule_json(rule)
    data["when"] = describe(rule.when, book.label) if rule.when else "always"
    data["rationale"] = rule.suggest.rationale if rule.suggest else None
    data["tests"] = [{"expect": t.expect, "line": t.line, "profile": t.profile} for t in rule.tests]
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    for key in ("id", "title", "status", "stage", "kind", "therapy", "derives", "grade", "cites",
                "when", "rationale"):
        if data.get(key) not in (None, [], ""):
            click.echo(f"{key + ':':<10} {data[key]}")
    click.echo(f"{'where:':<10} {rule.where}")
    for t in data["tests"]:
        click.echo(f"test      {t['expect']} (line {t['line']}): {json.dumps(t['profile'], sort_keys=True)}")
