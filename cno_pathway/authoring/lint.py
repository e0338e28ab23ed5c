"""`rules lint`: check a rule base the way a reviewer would, pointing at file, line and rule.

Schema problems come from the parser (knowledge/rulebook.py), file by file, so one broken file does not
hide the others. Semantic checks: duplicate ids, citations that do not resolve, grades stronger
than the cited evidence, suggestion rules without citations or tests, unknown or mismatched
regimens and dose numbers missing from the cited passages, stages used but never derived (or
derived but never used), conditions that can never hold (satisfiable.py), opposite kinds for one
therapy on one profile (with a witness profile), more than the engine can hold, and teaching
cases that expect a rule which is unknown or retired.

Errors make `rules lint` exit 1; warnings are shown and do not.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..knowledge.conditions import All, Has, walk
from ..engine.durable import MAX_RULES_PER_RULESET, Engine
from ..errors import InputError, RuleError
from ..engine.evaluation import reference_evaluate
from ..knowledge.regimens import population_problems
from ..knowledge.evidence import EvidenceLibrary, check_seed_folder, load_library
from ..patient.facts import derive_facts
from ..patient.profile import PatientProfile, validate_profile
from ..resources import seeds_dir as default_seeds
from ..knowledge.folders import check_folder
from ..knowledge.rulebook import (RULEBOOK_FILE, VOCABULARY_FILE, RuleBook,
                                  load_rulebook)
from .ruletest import complete
from .satisfiable import contradiction, dead_alternatives
from ..yamlio import collector_paused, read_document, short_label

LEVELS = ("error", "warning")


@dataclass(frozen=True)
class Problem:
    level: str          # "error" | "warning"
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or "rules")
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{where}: {self.level} {self.code}{rule}: {self.message}"

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def sort_key(self):
        return (self.file or "", self.line or 0, self.code, self.rule or "", self.message)


def _from_error(exc: InputError, code: str) -> Problem:
    return Problem("error", code, exc.message, exc.file, exc.line, exc.rule)


def _p(level, code, message, rule=None, *, file=None, line=None) -> Problem:
    return Problem(level, code, message, file or (rule.file if rule else None),
                   line or (rule.line if rule else None), rule.id if rule else None)


# -- loading, file by file ------------------------------------------------------------------------

_SKIPPED_CODES = {"rules": "E101", "regimens": "E102"}


def load_rule_base(rules_dir: Path | str, *, seeds: Path | None = None
                   ) -> tuple[RuleBook | None, list[Problem]]:
    """Parse the rule base file by file: every schema problem becomes a lint error (E100-E102)
    instead of stopping at the first. The book holds the rules of the files that parsed; it is
    None when the vocabulary or rulebook.yaml (which every rule needs) does not parse."""
    rules_dir = Path(rules_dir)
    check_folder(rules_dir, (RULEBOOK_FILE, VOCABULARY_FILE), "rule")  # not one: exit 2, not lint
    if seeds is not None:
        check_seed_folder(seeds)
    skipped: list = []
    try:
        book = load_rulebook(rules_dir, seeds=seeds, skipped=skipped)
    except InputError as exc:
        return None, [_from_error(exc, "E100")]
    return book, [_from_error(exc, _SKIPPED_CODES[what]) for what, exc in skipped]


@dataclass
class LintResult:
    """What one pass over the rule base gives: the problems, and (when nothing stopped the
    parse) the book and the evidence library, ready to compile without reading them again."""

    problems: list[Problem]
    book: RuleBook | None
    library: EvidenceLibrary | None

    @property
    def ok(self) -> bool:
        return self.book is not None and not any(p.level == "error" for p in self.problems)


def lint(rules_dir: Path | str, seeds: Path | str | None = None, *,
         examples: Path | None = None) -> list[Problem]:
    """Every problem found in the rule base, errors and warnings, in file/line order.

    `seeds` is the evidence library citations resolve against (default: resources.seeds_dir());
    `examples` a folder of teaching cases whose `expect:` must name live rules (not checked when
    None: another rule folder need not match the repository's cases)."""
    return lint_rule_base(rules_dir, seeds, examples=examples).problems


def lint_rule_base(rules_dir: Path | str, seeds: Path | str | None = None, *,
                   examples: Path | None = None) -> LintResult:
    """lint(), keeping the parsed book and library: load, lint and compile read each file once."""
    with collector_paused():
        return _lint_rule_base(rules_dir, seeds, examples)


def _lint_rule_base(rules_dir, seeds, examples) -> LintResult:
    seeds = Path(seeds) if seeds else default_seeds()
    book, problems = load_rule_base(rules_dir, seeds=seeds)
    if book is None:
        return LintResult(problems, None, None)
    library = None
    try:
        library = load_library(seeds)
    except InputError as exc:
        problems.append(_from_error(exc, "E103"))
    problems += _duplicates(book)
    if library is not None:
        problems += _citations(book, library)
    profiles = _Profiles(book.vocabulary)
    problems += _tests_present(book, profiles)
    problems += _regimens(book, library)
    problems += _stages(book)
    problems += _never_true(book)
    problems += _capacity(book)
    if examples is not None:
        problems += _cases(book, examples)
    problems += _conflicts(book, profiles)
    return LintResult(sorted(set(problems), key=lambda p: p.sort_key), book, library)


# -- checks ---------------------------------------------------------------------------------------

def _duplicates(book):
    out = []
    seen = {}
    for rule in book.rules:
        if rule.id in seen:
            first = seen[rule.id]
            out.append(_p("error", "E200", f"duplicate rule id (also at {first.where})", rule))
            out.append(_p("error", "E200", f"duplicate rule id (also at {rule.where})", first))
        else:
            seen[rule.id] = rule
    return out


def _resolve(library, cite):
    """(source, None) or (None, the reason the citation does not resolve)."""
    try:
        return library.resolve(cite)[0], None
    except KeyError as exc:
        return None, exc.args[0]


def _citations(book, library: EvidenceLibrary):
    out = []
    grading = library.grading
    for rule in book.rules:
        if not rule.evidence:
            continue
        best = None
        for cite in rule.evidence.cites:
            source, missing = _resolve(library, cite)
            if missing:
                out.append(_p("error", "E210", f"citation {cite!r}: {missing}", rule))
            elif best is None or grading.rank(source.quality) < grading.rank(best):
                best = source.quality
        if best is not None and rule.evidence.grade in grading.grades \
                and grading.rank(rule.evidence.grade) < grading.rank(best):
            out.append(_p("error", "E211", f"grade {rule.evidence.grade} is stronger than the best "
                          f"cited source supports ({best})", rule))
    for regimen in book.regimens.by_id.values() if book.regimens else ():
        for cite in regimen.cites:
            _, missing = _resolve(library, cite)
            if missing:
                out.append(Problem("error", "E212", f"regimen {regimen.id}: citation {cite!r}: "
                                   f"{missing}", regimen.file, regimen.line))
    for cls in book.vocabulary.drug_classes.values():
        for cite in cls.adequate_trial_basis:
            _, missing = _resolve(library, cite)
            if missing:
                out.append(Problem("error", "E213", f"drug class {cls.name}: adequate_trial_basis "
                                   f"{cite!r}: {missing}", book.vocabulary.source))
    return out


def _tests_present(book, profiles: _Profiles):
    out = []
    for rule in book.rules:
        kinds = {t.expect for t in rule.tests}
        if rule.suggest is not None:
            if not rule.evidence or not rule.evidence.cites:
                out.append(_p("error", "E220", "a suggestion rule needs evidence with citations", rule))
            always = _always(rule.when)
            for expect in ("fires",) if always else ("fires", "silent"):
                if expect not in kinds:
                    out.append(_p("error", "E221", f"a suggestion rule needs `{expect}` tests", rule))
        elif "fires" not in kinds:
            out.append(_p("error", "E222", "a staging rule needs at least one `fires` test", rule))
        for test in rule.tests:
            _, _, exc = profiles.check(complete(book.test_defaults, test.profile))
            if exc is not None:
                out.append(_p("error", "E223", f"invalid `{test.expect}` test profile: "
                              f"{exc.field + ': ' if exc.field else ''}{exc.message}", rule,
                              line=test.line))
    return out


class _Profiles:
    """Test profiles validated once per distinct content: many rules share test profiles (a
    generated rule base repeats one thousands of times), and lint reads them twice, for E223
    and as witnesses of the conflict search."""

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary
        self._seen: dict[str, tuple] = {}

    def check(self, data) -> tuple[str, PatientProfile | None, InputError | None]:
        """(content key, the profile or None, the ProfileError or None)."""
        key = json.dumps(data, sort_keys=True, default=str)
        if key not in self._seen:
            try:
                self._seen[key] = (validate_profile(data, self.vocabulary), None)
            except InputError as exc:
                self._seen[key] = (None, exc)
        return (key, *self._seen[key])


def _always(when) -> bool:
    """`{all: []}`: a rule that always applies cannot have a silent test."""
    return when is None or (isinstance(when, All) and not when.items)


# a number as a quote prints it: 1,000 and 1 000 are 1000; 0.5 and 0,5 are both read
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0 ](?=\d{3}\b)")


def numbers_in(text: str) -> set[float]:
    """Every number printed in a passage (a dose range '10-15' gives 10 and 15)."""
    text = _THOUSANDS.sub("", text)
    return {float(n.replace(",", ".")) for n in _NUMBER.findall(text)}


def _regimens(book, library):
    """Doses are shown to clinicians, so each number must be one the cited passages print: an
    error, not a warning (a dose no source gives must never reach a consult)."""
    out = []
    regimens = book.regimens
    if regimens is None:
        return out  # regimens.yaml does not parse (E102): nothing to check against
    named = set()
    for rule in book.rules:
        rid = rule.suggest.regimen if rule.suggest else None
        if not rid:
            continue
        named.add(rid)
        regimen = regimens.get(rid)
        if regimen is None:
            out.append(_p("error", "E230", f"unknown regimen {rid!r} (not in regimens.yaml)", rule))
        elif regimen.therapy != rule.suggest.therapy:
            out.append(_p("error", "E232", f"regimen {rid!r} is for {regimen.therapy}, but the rule "
                          f"suggests {rule.suggest.therapy or 'no therapy'}", rule))
    for regimen in regimens.by_id.values():
        if regimen.id not in named:
            out.append(Problem("warning", "W233", f"regimen {regimen.id} is named by no rule",
                               regimen.file, regimen.line))
        if library is None:
            continue
        quoted: set[float] = set()
        for cite in regimen.cites:
            try:
                quoted |= numbers_in(library.resolve(cite)[1].quote)
            except KeyError:
                pass  # reported as E212
        for step in regimen.steps:
            for value in sorted(set(step.mg_per_kg) | ({step.max_mg} if step.max_mg else set())):
                if value not in quoted:
                    out.append(Problem("error", "E231", f"regimen {regimen.id}: {value:g} does not "
                                       "appear in any cited passage (no dose the sources do not "
                                       "give)", regimen.file, step.line))
    if library is not None:  # who the dose was given to decides who gets mg (regimens.py)
        def population_of(cite):
            try:
                return library.resolve(cite)[0].population
            except KeyError:
                return None  # reported as E212
        for regimen, problem in population_problems(regimens, population_of):
            if None not in {population_of(c) for c in regimen.cites}:
                out.append(Problem("error", "E234", f"regimen {regimen.id}: {problem}",
                                   regimen.file, regimen.line))
    return out


def _stage_tests(rule):
    for node in walk(rule.when):
        if isinstance(node, Has) and node.fact == "stage":
            yield node


def _stages(book):
    """Only live rules count: a stage derived by a retired rule is derived by nothing."""
    out = []
    active = book.active
    derived = {r.derive["stage"] for r in active if r.derive and "stage" in r.derive}
    used = {v for r in active for node in _stage_tests(r) for v in node.values}
    for rule in active:
        for node in _stage_tests(rule):
            for stage in node.values:
                if stage not in derived:
                    out.append(_p("error", "E240", f"stage {stage!r} is tested but no staging rule "
                                  "derives it", rule, line=node.line))
    for rule in active:
        stage = (rule.derive or {}).get("stage")
        if stage and stage not in used:
            out.append(_p("warning", "W241", f"stage {stage!r} is derived but no rule uses it", rule))
    return out


def _never_true(book):
    out = []
    for rule in book.rules:
        why = contradiction(rule.when, book.vocabulary)
        if why is not None:
            out.append(_p("error", "E250", f"this condition can never hold: {why}", rule,
                          line=rule.when.line if rule.when else None))
            continue
        for alternative, why in dead_alternatives(rule.when, book.vocabulary):
            out.append(_p("warning", "W251", f"this alternative of `any` can never hold with the "
                          f"rest of the condition: {why}", rule, line=alternative.line))
    return out


def _capacity(book):
    """The engine's own limits: staging rules share one ruleset (suggestion rules are split), and
    a condition may be too complex for its matcher. Build it to find out."""
    staging = [r for r in book.active if r.is_staging]
    if len(staging) > MAX_RULES_PER_RULESET - 1:
        return [Problem("error", "E260", f"{len(staging)} staging rules: the engine holds at most "
                        f"{MAX_RULES_PER_RULESET - 1} in one ruleset (suggestion rules are split "
                        "automatically)", staging[-1].file, staging[-1].line, staging[-1].id)]
    try:
        Engine(book.active, {"stage": list(book.vocabulary.stages)}).close()
    except RuleError as exc:
        return [Problem("error", "E261", f"the engine cannot hold this: {exc.message}",
                        exc.file or str(book.directory), exc.line, exc.rule)]
    return []


def _cases(book, examples: Path):
    """A teaching case whose `expect:` names a rule that is unknown or retired (still cited)."""
    from ..patient.intake import is_case
    from ..teaching.cases import case_paths

    out = []
    for path in case_paths(Path(examples)):
        try:
            doc = read_document(path, label=short_label(path))
        except InputError as exc:
            out.append(_from_error(exc, "E280"))
            continue
        if not is_case(doc.data):
            continue  # a bare profile expects nothing
        expect = doc.data.get("expect") or {}
        names = expect.get("suggestions") if isinstance(expect, dict) else None
        for i, rid in enumerate(names if isinstance(names, list) else []):
            rule = book.by_id.get(rid)
            if rule is None or rule.status == "retired":
                why = "is not in the rule base" if rule is None else f"is retired ({rule.where})"
                out.append(Problem("error", "E280", f"the case expects rule {rid}, which {why}",
                                   doc.source, doc.line(("expect", "suggestions", i)), rid))
    return out


def _opposed_pairs(book):
    """(a, b, level) for every two live suggestion rules of opposite kind for one therapy, in
    rule-base order. Only rules of opposable kinds are paired, and only within one family (a
    class with its drugs), so a large rule base is not compared rule by rule."""
    from .gaps import OPPOSABLE_KINDS, opposed

    vocabulary = book.vocabulary
    families: dict[str, list] = {}
    for index, rule in enumerate(r for r in book.active if r.suggest):
        therapy = rule.suggest.therapy
        if therapy and rule.suggest.kind in OPPOSABLE_KINDS:
            family = vocabulary.class_of(therapy) or therapy
            families.setdefault(family, []).append((index, rule))
    pairs = []
    for members in families.values():
        for (i, a), (j, b) in itertools.combinations(members, 2):
            level = opposed(a, b, vocabulary)
            if level:
                pairs.append((i, j, a, b, level))
    return [(a, b, level) for _, _, a, b, level in sorted(pairs, key=lambda p: p[:2])]


def _conflicts(book, profiles: _Profiles):
    """Opposite kinds for one therapy (or a drug and its class) that fire on one profile. The
    witness is searched among the rules' own test profiles and the gaps grid."""
    from .gaps import grid

    # a pair whose conditions contradict each other can never fire together: no witness to seek
    pairs = [(a, b, level) for a, b, level in _opposed_pairs(book)
             if contradiction(All(a.line, tuple(w for w in (a.when, b.when) if w is not None)),
                              book.vocabulary) is None]
    if not pairs:
        return []
    candidates = [(f"the {t.expect} test of {r.id} ({r.file}:{t.line})",
                   complete(book.test_defaults, t.profile))
                  for r in book.rules for t in r.tests] + grid(book, small=True)
    order = {"stage": list(book.vocabulary.stages)}
    involved = {r.id for a, b, _ in pairs for r in (a, b)}
    rules = [r for r in book.active if r.is_staging or r.id in involved]
    fired_sets, seen = [], set()
    for label, data in candidates:
        key, profile, _ = profiles.check(data)
        if profile is None or key in seen:
            continue  # an invalid profile is reported as E223; a repeated one was evaluated
        seen.add(key)
        facts = derive_facts(profile, book.vocabulary)
        fired_sets.append((label, reference_evaluate(rules, facts, order).fired_set))
    out = []
    for a, b, level in pairs:
        witness = next((label for label, fired in fired_sets if a.id in fired and b.id in fired), None)
        if witness:  # reported at both rules, each naming the other
            code = "E270" if level == "error" else "W271"
            for one, other in ((a, b), (b, a)):
                out.append(_p(level, code, f"{one.suggest.kind} {one.suggest.therapy}, but "
                              f"{other.id} ({other.where}) says {other.suggest.kind} "
                              f"{other.suggest.therapy}; both fire on {witness}", one))
    return out


def summary(problems: list[Problem]) -> dict:
    errors = sum(p.level == "error" for p in problems)
    return {"errors": errors, "warnings": len(problems) - errors}
