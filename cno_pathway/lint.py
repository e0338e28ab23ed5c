"""`rules lint`: check a rule base the way a reviewer would, pointing at file, line and rule.

Schema problems come from the parser (rulebook.py), file by file, so one broken file does not
hide the others. Semantic checks: duplicate ids, citations that do not resolve, grades stronger
than the cited evidence, suggestion rules without citations or tests, unknown regimens and dose
numbers missing from the cited passages, stages used but never derived (or derived but never
used), conditions that can never hold, opposite kinds for one therapy on one profile, and more
staging rules than one engine ruleset holds.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .conditions import All, Any_, Compare, Condition, Has, Not, walk
from .engine import MAX_RULES_PER_RULESET
from .errors import InputError, RuleError
from .evaluation import reference_evaluate
from .evidence import EvidenceLibrary, load_library
from .facts import derive_facts
from .profile import validate_profile
from .regimens import load_regimens
from .resources import seeds_dir as default_seeds
from .rulebook import RULEBOOK_FILE, RuleBook, _parse_meta, parse_rule_file, rule_files
from .ruletest import complete
from .vocabulary import load_vocabulary
from .yamlio import read_document


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


def _from_error(exc: InputError, code: str) -> Problem:
    return Problem("error", code, exc.message, exc.file, exc.line, exc.rule)


def lint(rules_dir: Path | str, seeds: Path | str | None = None) -> list[Problem]:
    """Every problem found in the rule base, errors and warnings, in file/line order."""
    rules_dir = Path(rules_dir)
    problems: list[Problem] = []
    try:
        vocabulary = load_vocabulary(rules_dir)
        sections, defaults, name, version, messages = _parse_meta(
            read_document(rules_dir / RULEBOOK_FILE, error=RuleError))
    except InputError as exc:
        return [_from_error(exc, "E100")]
    rules = []
    for path in rule_files(rules_dir):
        try:
            doc = read_document(path, error=RuleError, label=f"{path.parent.name}/{path.name}")
            rules.extend(parse_rule_file(doc, vocabulary, sections))
        except InputError as exc:
            problems.append(_from_error(exc, "E101"))
    book = RuleBook(rules=rules, vocabulary=vocabulary, sections=sections, test_defaults=defaults,
                    name=name, version=version, directory=rules_dir, messages=messages)
    try:
        book.regimens = load_regimens(rules_dir, vocabulary)
    except InputError as exc:
        problems.append(_from_error(exc, "E102"))
    library = None
    try:
        library = load_library(Path(seeds) if seeds else default_seeds())
    except InputError as exc:
        problems.append(_from_error(exc, "E103"))
    problems += _duplicates(book)
    if library is not None:
        problems += _citations(book, library)
    problems += _tests_present(book)
    problems += _regimens(book, library)
    problems += _stages(book)
    problems += _never_true(book)
    problems += _capacity(book)
    if not any(p.level == "error" for p in problems):
        problems += _conflicts(book)
    return sorted(set(problems), key=lambda p: (p.file or "", p.line or 0, p.code, p.message))


# -- checks -------------------------------------------------------------------------------------

def _p(level, code, message, rule=None, file=None, line=None):
    return Problem(level, code, message, file or (rule.file if rule else None),
                   line or (rule.line if rule else None), rule.id if rule else None)


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


def _citations(book, library: EvidenceLibrary):
    out = []
    grading = library.grading
    for rule in book.rules:
        if not rule.evidence:
            continue
        best = None
        for cite in rule.evidence.cites:
            try:
                source, _ = library.resolve(cite)
            except KeyError as exc:
                out.append(_p("error", "E210", f"citation {cite!r}: {exc.args[0]}", rule))
                continue
            if best is None or grading.rank(source.quality) < grading.rank(best):
                best = source.quality
        if best is not None and grading.rank(rule.evidence.grade) < grading.rank(best):
            out.append(_p("error", "E211", f"grade {rule.evidence.grade} is stronger than the best "
                          f"cited source supports ({best})", rule))
    for regimen in book.regimens.by_id.values() if book.regimens else ():
        for cite in regimen.cites:
            try:
                library.resolve(cite)
            except KeyError as exc:
                out.append(Problem("error", "E212", f"regimen {regimen.id}: citation {cite!r}: "
                                   f"{exc.args[0]}", regimen.file, regimen.line))
    return out


def _tests_present(book):
    out = []
    for rule in book.rules:
        kinds = {t.expect for t in rule.tests}
        if rule.suggest is not None:
            if not rule.evidence or not rule.evidence.cites:
                out.append(_p("error", "E220", "a suggestion rule needs evidence with citations", rule))
            always = isinstance(rule.when, All) and not rule.when.items  # no silent test possible
            for expect in ("fires",) if always else ("fires", "silent"):
                if expect not in kinds:
                    out.append(_p("error", "E221", f"a suggestion rule needs `{expect}` tests", rule))
        elif "fires" not in kinds:
            out.append(_p("error", "E222", "a staging rule needs at least one `fires` test", rule))
        for test in rule.tests:
            try:
                validate_profile(complete(book.test_defaults, test.profile), book.vocabulary)
            except InputError as exc:
                out.append(_p("error", "E223", f"invalid `{test.expect}` test profile: "
                              f"{exc.field + ': ' if exc.field else ''}{exc.message}", rule,
                              line=test.line))
    return out


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _regimens(book, library):
    out = []
    regimens = book.regimens
    for rule in book.rules:
        rid = rule.suggest.regimen if rule.suggest else None
        if rid and (regimens is None or regimens.get(rid) is None):
            out.append(_p("error", "E230", f"unknown regimen {rid!r} (not in regimens.yaml)", rule))
    if regimens is None or library is None:
        return out
    for regimen in regimens.by_id.values():
        quotes = []
        for cite in regimen.cites:
            try:
                quotes.append(library.resolve(cite)[1].quote)
            except KeyError:
                pass
        numbers = {float(n) for q in quotes for n in _NUMBER.findall(q)}
        for step in regimen.steps:
            for value in set(step.mg_per_kg) | ({step.max_mg} if step.max_mg else set()):
                if value not in numbers:
                    out.append(Problem("error", "E231", f"regimen {regimen.id}: {value:g} does not "
                                       "appear in any cited passage (no dose the sources do not give)",
                                       regimen.file, step.line))
    return out


def _stages(book):
    out = []
    derived = {v for r in book.rules if r.derive for v in [r.derive.get("stage")] if v}
    used: dict[str, list] = {}
    for rule in book.rules:
        for node in walk(rule.when):
            if isinstance(node, Has) and node.fact == "stage":
                for value in node.values:
                    used.setdefault(value, []).append(rule)
    for stage, users in sorted(used.items()):
        if stage not in derived:
            for rule in users:
                out.append(_p("error", "E240", f"stage {stage!r} is tested but no staging rule "
                              "derives it", rule))
    for rule in book.rules:
        if rule.derive and rule.derive.get("stage") and rule.derive["stage"] not in used:
            out.append(_p("warning", "W241", f"stage {rule.derive['stage']!r} is derived but no "
                          "rule uses it", rule))
    return out


def _satisfiable(cond: Condition | None) -> bool:
    """False only when the condition provably never holds (interval and set reasoning)."""
    if cond is None:
        return True
    if isinstance(cond, Any_):
        return any(_satisfiable(c) for c in cond.items) if cond.items else False
    if isinstance(cond, Not):
        return True
    if not isinstance(cond, All):
        return _conjunction_ok([cond])
    leaves, others = [], []
    for item in cond.items:
        (others if isinstance(item, (Any_, Not, All)) else leaves).append(item)
    nested = [c for c in others if isinstance(c, All)]
    for inner in nested:
        leaves += [c for c in inner.items if not isinstance(c, (Any_, Not, All))]
    return _conjunction_ok(leaves) and all(_satisfiable(c) for c in others)


def _conjunction_ok(leaves) -> bool:
    low: dict[str, tuple[float, bool]] = {}
    high: dict[str, tuple[float, bool]] = {}
    equal: dict[str, set] = {}
    allowed: dict[str, set] = {}
    have: dict[str, set] = {}
    lack: dict[str, set] = {}
    present, absent = set(), set()
    for c in leaves:
        if isinstance(c, Has):
            (have if c.op == "has" else lack).setdefault(c.fact, set()).update(c.values)
        elif isinstance(c, Compare):
            present.add(c.fact)
            if c.op == "eq":
                equal.setdefault(c.fact, set()).add(c.value)
            elif c.op == "in":
                allowed[c.fact] = allowed.get(c.fact, set(c.value)) & set(c.value)
            elif c.op in ("gt", "gte"):
                bound = (c.value, c.op == "gt")
                if c.fact not in low or bound > low[c.fact]:
                    low[c.fact] = bound
            elif c.op in ("lt", "lte"):
                bound = (c.value, c.op == "lt")
                if c.fact not in high or (bound[0], not bound[1]) < (high[c.fact][0], not high[c.fact][1]):
                    high[c.fact] = bound
            elif c.op == "ne":
                allowed.setdefault(c.fact, None)
        else:
            (present if c.op == "present" else absent).add(c.fact)
    if present & absent:
        return False
    if any(have[f] & lack.get(f, set()) for f in have):
        return False
    for fact, values in equal.items():
        if len(values) > 1:
            return False
        if allowed.get(fact) is not None and not values <= allowed[fact]:
            return False
    for fact, values in allowed.items():
        if values is not None and not values:
            return False
    for fact in set(low) & set(high):
        (lo, lo_strict), (hi, hi_strict) = low[fact], high[fact]
        if lo > hi or (lo == hi and (lo_strict or hi_strict)):
            return False
    for fact, values in equal.items():
        value = next(iter(values))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if fact in low and (value < low[fact][0] or (value == low[fact][0] and low[fact][1])):
                return False
            if fact in high and (value > high[fact][0] or (value == high[fact][0] and high[fact][1])):
                return False
    return True


def _never_true(book):
    return [_p("error", "E250", "this condition can never hold (contradictory tests on one fact)", rule)
            for rule in book.rules if not _satisfiable(rule.when)]


def _capacity(book):
    staging = [r for r in book.active if r.is_staging]
    out = []
    if len(staging) > MAX_RULES_PER_RULESET - 2:
        out.append(Problem("error", "E260", f"{len(staging)} staging rules: one engine ruleset holds "
                           f"at most {MAX_RULES_PER_RULESET - 2}", str(book.directory)))
    return out


def _conflicts(book):
    """Opposite kinds for one therapy: look for a witness among the rules' own test profiles and
    the gaps grid."""
    from .gaps import grid

    pairs = [(a, b) for a, b in itertools.combinations([r for r in book.active if r.suggest], 2)
             if a.suggest.therapy and a.suggest.therapy == b.suggest.therapy
             and {a.suggest.kind, b.suggest.kind} in ({"recommend", "avoid"}, {"consider", "avoid"})]
    if not pairs:
        return []
    candidates = [(f"{r.id} test at line {t.line}", complete(book.test_defaults, t.profile))
                  for r in book.rules for t in r.tests] + grid(book, small=True)
    order = {"stage": list(book.vocabulary.stages)}
    involved = {r.id for pair in pairs for r in pair}
    rules = [r for r in book.active if r.is_staging or r.id in involved]
    fired_sets = []
    for label, data in candidates:
        try:
            profile = validate_profile(data, book.vocabulary)
        except InputError:
            continue
        fired_sets.append((label, reference_evaluate(rules, derive_facts(profile, book.vocabulary),
                                                     order).fired_set))
    out = []
    for a, b in pairs:
        witness = next((label for label, fired in fired_sets if a.id in fired and b.id in fired), None)
        if witness:
            level, code = (("error", "E270") if "recommend" in (a.suggest.kind, b.suggest.kind)
                           else ("warning", "W271"))
            out.append(_p(level, code, f"{a.suggest.kind} and {b.id} ({b.suggest.kind}) name "
                          f"{a.suggest.therapy} on the same profile: {witness}", a))
    return out

