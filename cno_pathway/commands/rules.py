"""`cno-pathway rules lint | test | coverage | gaps | list | show | facts | path | init`: tools
for rule authors.

Each takes the rule folder as --rules DIR, like every other command, or as an optional DIR
argument (default: CNO_PATHWAY_RULES, else the built-in rules/). Findings exit 1 (lint errors,
failing tests, rules no test fires, gaps and conflicts); bad input (a folder that does not exist,
an unknown rule id) exits 2 through cli.py. What is printed is cleaned of control sequences.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import InputError
from ..resources import (builtin_rules_dir, examples_dir, rules_dir as default_rules_dir,
                         seeds_dir as default_seeds_dir)
from ..knowledge.rulebook import Rule, RuleBook, load_rulebook
from ..terminal import clean, did_you_mean, json_safe, plural
from .common import Group, emit, terminal_options

_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="json: for editors and other programs.")


def _one_folder(ctx, param, value):
    """DIR and --rules DIR name the same thing: either, or both alike."""
    given = {k: ctx.params.get(k) for k in ("directory", "rules_dir")}
    given[param.name] = value
    if given["directory"] and given["rules_dir"] and \
            Path(given["directory"]) != Path(given["rules_dir"]):
        raise click.UsageError("give the rule folder once: as DIR or as --rules DIR")
    return value


def _dir_argument(func):
    func = click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
                        callback=_one_folder, metavar="DIR",
                        help="Rule folder (default: CNO_PATHWAY_RULES, else the built-in "
                             "rules); the same as the DIR argument.")(func)
    func = click.argument("directory", required=False, callback=_one_folder,
                          type=click.Path(file_okay=False, path_type=Path))(func)
    return terminal_options(func)


def _resolve(directory: Path | None) -> Path:
    return Path(directory) if directory else default_rules_dir()


def _book(directory: Path | None) -> RuleBook:
    return load_rulebook(_resolve(directory))


def _echo(text: str = "") -> None:
    """A line of a report: rule ids, titles and file names are authored text, shown cleaned."""
    click.echo(clean(text))


def _json(data) -> None:
    emit(json.dumps(data, indent=2, ensure_ascii=False), fmt="json")


def _unknown_rule(rule_id: str, book: RuleBook) -> InputError:
    return InputError(f"unknown rule {clean(rule_id)[:80]!r}{did_you_mean(rule_id, book.by_id)} "
                      f"(see `cno-pathway rules list`)")


def _column(names) -> int:
    return max((len(n) for n in names), default=0)


@click.group(cls=Group)
def rules():
    """Check, test and inspect the rule base (default: the built-in rules/)."""


# -- lint -----------------------------------------------------------------------------------------

@rules.command()
@_dir_argument
@click.option("--seeds", type=click.Path(file_okay=False, path_type=Path), envvar="CNO_PATHWAY_SEEDS",
              help="Evidence library that citations must resolve in (default: the built-in seeds/).")
@_FORMAT
def lint(directory, rules_dir, seeds, fmt):
    """Schema and semantic checks with file:line and rule id; exit 1 on errors (warnings: 0).

    Teaching cases (examples/) are checked too when DIR is the rule base they belong to."""
    from ..knowledge.cache import cached
    from ..authoring.lint import lint as run_lint, summary

    rules_dir, seeds = _resolve(directory or rules_dir), Path(seeds) if seeds else default_seeds_dir()
    cases = examples_dir()
    if cases is not None and (cases.parent / "rules").resolve() != rules_dir.resolve():
        cases = None
    if not rules_dir.is_dir():
        raise InputError("rule folder not found", file=str(rules_dir))
    # the report depends only on these folders and the program: cached by their digest
    problems = cached([rules_dir, seeds] + ([cases] if cases else []),
                      lambda: run_lint(rules_dir, seeds, examples=cases), kind="lint")
    counts = summary(problems)
    if fmt == "json":
        _json({**counts, "problems": [p.to_json() for p in problems]})
    else:
        emit("".join(f"{problem}\n" for problem in problems)
             + f"{plural(counts['errors'], 'error')}, {plural(counts['warnings'], 'warning')}")
    sys.exit(1 if counts["errors"] else 0)


# -- test -----------------------------------------------------------------------------------------

@rules.command("test")
@_dir_argument
@click.option("--rule", "only", metavar="ID", help="Run one rule's tests.")
@_FORMAT
def test_rules(directory, rules_dir, only, fmt):
    """Run every rule's own tests through the real engine; exit 1 on any failure.

    An invalid rule file fails the run: every schema error is listed and no test runs."""
    from ..authoring.lint import load_rule_base
    from ..authoring.ruletest import run_rule_tests

    book, problems = load_rule_base(_resolve(directory or rules_dir))
    if problems:
        if fmt == "json":
            _json({"invalid": [p.to_json() for p in problems], "results": []})
        else:
            for problem in problems:
                _echo(f"INVALID  {problem}")
            _echo(f"the rule base does not parse ({plural(len(problems), 'error')}): "
                       "no test ran")
        sys.exit(1)
    if only and only not in book.by_id:
        raise _unknown_rule(only, book)
    results = run_rule_tests(book, only)
    failed = [r for r in results if not r.ok]
    if fmt == "json":
        _json({"invalid": [], "results": [r.to_json() for r in results]})
        sys.exit(1 if failed else 0)
    width = _column(r.rule.id for r in results)
    for result in results:
        rule = result.rule
        if result.skipped:
            _echo(f"SKIP  {rule.id:<{width}}  {rule.where}  ({result.skipped})")
        elif result.ok:
            _echo(f"PASS  {rule.id:<{width}}  {rule.where}  ({result.passed} tests)")
        else:
            _echo(f"FAIL  {rule.id:<{width}}  {rule.where}  ({result.passed} passed, "
                       f"{len(result.failures)} failed)")
            for failure in result.failures:
                test = failure.test
                head = f"{test.expect} test at {rule.file}:{test.line}: " if test else ""
                _echo(f"      {head}{failure.reason}")
                if test:
                    _echo(f"        profile: {json.dumps(test.profile, sort_keys=True)}")
                for detail in failure.details:
                    _echo(f"        {detail}")
    skipped = sum(1 for r in results if r.skipped)
    _echo(f"{len(results) - len(failed) - skipped} passed, {len(failed)} failed, "
               f"{skipped} skipped (retired)")
    sys.exit(1 if failed else 0)


# -- coverage -------------------------------------------------------------------------------------

@rules.command()
@_dir_argument
@_FORMAT
def coverage(directory, rules_dir, fmt):
    """Which rules and condition branches the rule tests and teaching cases exercise; exit 1
    when a rule is fired by none of them."""
    from ..authoring.coverage import coverage as run_coverage

    report = run_coverage(_book(directory or rules_dir))
    if fmt == "json":
        _json(report.to_json())
        sys.exit(1 if report.never_fired else 0)
    width = _column(c.rule.id for c in report.rules)
    for cov in report.never_fired:
        _echo(f"NEVER FIRED  {cov.rule.id}  {cov.rule.where}")
    for cov in report.rules:
        _echo(f"{cov.rule.id:<{width}}  fired by {cov.fired_by_tests:>3} tests, "
                   f"{cov.fired_by_cases:>3} cases  branches {cov.branches_covered}/{len(cov.branches)}")
        for _, branch in cov.branches:
            if not branch.covered:
                _echo(f"    line {branch.line}: {branch.text} ({branch.missing})")
    for reason in report.skipped:
        _echo(f"skipped: {reason}")
    covered, total = report.branch_totals
    _echo(f"{len(report.rules) - len(report.never_fired)} of {len(report.rules)} rules fired by "
               f"{report.tests} test profiles and {report.cases} teaching cases; {covered} of "
               f"{total} branches covered")
    sys.exit(1 if report.never_fired else 0)


# -- gaps -----------------------------------------------------------------------------------------

@rules.command()
@_dir_argument
@_FORMAT
def gaps(directory, rules_dir, fmt):
    """A grid of profiles (lesion count, spine, red flags, diagnosis, onset, features, biopsy,
    treatment history): every profile without a suggestion and every recommend/avoid pair for one
    therapy; exit 1 when there is any."""
    from ..authoring.gaps import find_gaps

    report = find_gaps(_book(directory or rules_dir))
    if fmt == "json":
        _json(report.to_json())
        sys.exit(0 if report.clean else 1)
    for gap in report.gaps:
        _echo(f"NO SUGGESTION  {gap.label}  (stage: {', '.join(gap.stage) or 'none'})")
    for conflict in report.conflicts:
        _echo(f"CONFLICT  {conflict.therapy}: {conflict.rules[0]} vs {conflict.rules[1]}  "
                   f"on {conflict.label}")
    _echo(f"{report.profiles} profiles: {len(report.gaps)} without a suggestion, "
               f"{len(report.conflicts)} conflicts")
    sys.exit(0 if report.clean else 1)


# -- list, show, facts ----------------------------------------------------------------------------

def rule_json(rule: Rule) -> dict:
    return {"id": rule.id, "title": rule.title, "status": rule.status, "stage": rule.stage,
            "priority": rule.priority,
            "kind": rule.suggest.kind if rule.suggest else "derive",
            "therapy": rule.suggest.therapy if rule.suggest else None,
            "regimen": rule.suggest.regimen if rule.suggest else None,
            "derives": rule.derive, "grade": rule.evidence.grade if rule.evidence else None,
            "citations": list(rule.evidence.cites) if rule.evidence else [],
            "file": rule.file, "line": rule.line}


@rules.command("list")
@_dir_argument
@_FORMAT
def list_rules(directory, rules_dir, fmt):
    """Every rule: id, status, stage, kind, therapy, grade, citations, file:line, title."""
    book = _book(directory or rules_dir)
    if fmt == "json":
        _json([rule_json(r) for r in book.rules])
        return
    def what(r):
        if r.suggest:
            return r.suggest.therapy or "-"
        return ", ".join(f"{k}={v}" for k, v in r.derive.items())

    width, what_width = _column(r.id for r in book.rules), _column(what(r) for r in book.rules)
    where_width = _column(r.where for r in book.rules)
    lines = []
    for r in book.rules:
        kind = r.suggest.kind if r.suggest else "derive"
        grade = r.evidence.grade if r.evidence else "-"
        cites = len(r.evidence.cites) if r.evidence else 0
        where = f"{r.where:<{where_width}}"
        lines.append(f"{r.id:<{width}}  {r.status:<8} {r.stage:<11} {kind:<10} "
                     f"{what(r):<{what_width}}  {grade}  {cites} cit.  {where}  {r.title}")
    lines.append(f"{plural(len(book.rules), 'rule')} ({len(book.active)} active)")
    emit("\n".join(clean(line.replace("\n", " ")) for line in lines))


@rules.command()
@click.argument("rule_id", metavar="ID")
@_dir_argument
@_FORMAT
def show(rule_id, directory, rules_dir, fmt):
    """One rule in full: its condition in words, evidence and tests."""
    from ..knowledge.conditions import describe

    book = _book(directory or rules_dir)
    rule = book.by_id.get(rule_id)
    if rule is None:
        raise _unknown_rule(rule_id, book)
    data = rule_json(rule)
    data["title"] = rule.title
    data["when"] = describe(rule.when, book.label) if rule.when else "always"
    data["rationale"] = rule.suggest.rationale if rule.suggest else None
    data["tests"] = [{"expect": t.expect, "line": t.line, "profile": t.profile} for t in rule.tests]
    if fmt == "json":
        _json(data)
        return
    lines = []
    for key in ("id", "title", "status", "stage", "priority", "kind", "therapy", "regimen",
                "derives", "grade", "when", "rationale"):
        if data.get(key) not in (None, [], ""):
            lines.append(f"{key + ':':<11}{data[key]}")
    for cite in data["citations"]:
        lines.append(f"{'cites:':<11}{cite}")
    lines.append(f"{'where:':<11}{rule.where}")
    for t in data["tests"]:
        lines.append(f"test       {t['expect']} (line {t['line']}): "
                     f"{json_safe(json.dumps(t['profile'], sort_keys=True))}")
    emit("\n".join(lines))


def facts_table() -> str:
    """The facts a condition may use, as the Markdown table rules/README.md carries."""
    from ..knowledge.factschema import FACT_SCHEMA

    lines = ["| fact | type | meaning |", "| --- | --- | --- |"]
    for name, ftype in FACT_SCHEMA.items():
        kind = f"{ftype.kind} ({ftype.vocabulary})" if ftype.vocabulary else ftype.kind
        lines.append(f"| `{name}` | {kind} | {ftype.description} |")
    return "\n".join(lines)


@rules.command()
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@terminal_options
def facts(fmt):
    """The facts a rule condition may use, with type and meaning (rules/README.md's table)."""
    from ..knowledge.factschema import FACT_SCHEMA

    if fmt == "json":
        _json({name: {"type": t.kind, "vocabulary": t.vocabulary, "meaning": t.description,
                      "derived_by_rules": t.derived_by_rules} for name, t in FACT_SCHEMA.items()})
        return
    emit(facts_table())


# -- path, init -----------------------------------------------------------------------------------

@rules.command("path")
def rules_path():
    """Where the built-in rule base lives (read-only in an install: copy it with `rules init`)."""
    _echo(str(builtin_rules_dir()))


@rules.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def rules_init(directory):
    """Copy the built-in rule base into DIRECTORY (new or empty) to edit it; then use it with
    --rules DIRECTORY (or CNO_PATHWAY_RULES)."""
    import shutil

    source = builtin_rules_dir()
    target = Path(directory)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise InputError("exists and is not a folder", file=str(target))
    if target.is_dir() and any(target.iterdir()):
        raise InputError("folder is not empty: give a new or empty folder", file=str(target))
    try:
        target.mkdir(parents=True, exist_ok=True)
        copied = 0
        for path in sorted(source.rglob("*")):
            if "__pycache__" in path.parts or path.name.startswith("."):
                continue
            relative = path.relative_to(source)
            if path.is_dir():
                (target / relative).mkdir(exist_ok=True)
            elif path.is_file():
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / relative)
                copied += 1
    except OSError as exc:
        raise InputError(f"cannot copy the rules: {exc.strerror or exc}", file=str(target)) from None
    shown = clean(str(target))
    _echo(f"copied {plural(copied, 'file')} of the built-in rule base to {shown}")
    _echo(f"next: edit them, then `cno-pathway rules lint --rules {shown}` and "
               f"`cno-pathway consult PROFILE --rules {shown}`")
