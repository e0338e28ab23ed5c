"""The consult as a document a clinician reads: bottom line first, one reference list, a basis.

`arrange(consult, pathway)` takes the finished suggestions of a consult and adds what the
templates lay out (issue 15):

- the *bottom line*: the stage in words, the gates that hold treatment back (marked urgent when
  no treatment is suggested at all, so the gate must come first), and the plan at this step
  (start, continue, consider, stop or avoid), each therapy named once;
- safety alerts attached to the therapy suggestion they concern (same therapy, or its class),
  so an alert about a drug that is only being considered sits with that drug, not above the plan;
- citations numbered once per consult, Vancouver style: a source gets the number of its first
  citation in reading order, every later passage from it reuses that number, and the reference
  list at the end names each source once;
- a *basis* section: intended use, the populations and designs of the cited evidence, the inputs
  used and those missing that rules read (derived from the rule conditions and the regimens, not
  from a list here), the rule base's provenance (built-in or custom, drafts), how rules are tested;
- one *why not* line per option not suggested: the rule author's `why_not:` text, or failing that
  the failed conditions in clinical words (vocabulary labels and fact descriptions).

No clinical fact lives here: every word about the patient or a therapy comes from the rule base
(titles, labels, fact descriptions, authored text) or the evidence library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..knowledge.conditions import All, Any_, Compare, Has, Not, Presence, evaluate, leaves
from ..knowledge.factschema import FACT_SCHEMA
from ..resources import _data_dir
from ..wording import fact_words, plain_number

THERAPY_KINDS = ("recommend", "consider")       # kinds that propose using a therapy
# the order in which kinds of suggestion are grouped and sorted, alerts first
KIND_ORDER = ("alert", "investigate", "recommend", "consider", "avoid", "monitor")
GATE_KINDS = ("investigate", "alert")           # kinds that can hold treatment back


@dataclass
class Reference:
    """One source in the consult's reference list (Vancouver style)."""

    number: int
    source: str
    text: str
    doi: str | None
    url: str | None
    design: str
    population: str
    n: int | None

    @property
    def doi_url(self) -> str | None:
        return f"https://doi.org/{self.doi}" if self.doi else None

    @property
    def evidence(self) -> str:
        """'retrospective cohort, 56 patients, pediatric': what the source is based on."""
        parts = [self.design.replace("_", " ")]
        if self.n is not None:
            parts.append(f"{self.n} patients")
        parts.append(self.population)
        return ", ".join(parts)

    def to_json(self) -> dict:
        return {"number": self.number, "source": self.source, "text": self.text, "doi": self.doi,
                "url": self.url, "design": self.design, "population": self.population, "n": self.n}


@dataclass
class PlanItem:
    """One line of the bottom line: an action and the therapies (or steps) it concerns."""

    action: str                  # first | also | start | continue | consider | stop | avoid | follow up
    therapies: list[str]         # labels, each named once
    rules: list[str]
    urgent: bool = False
    detail: str = ""             # the rules' titles, for a gate
    alerted: list[str] = field(default_factory=list)   # therapies with a safety alert attached

    def to_json(self) -> dict:
        return {"action": self.action, "therapies": self.therapies, "rules": self.rules,
                "urgent": self.urgent, "detail": self.detail,
                "with_safety_alert": self.alerted}


@dataclass
class BottomLine:
    """The consult's first section: the stage and the plan, in a few lines."""

    stage: str                   # the treatment stage in words
    held_by: list[str]           # gate stages (vocabulary labels)
    items: list[PlanItem]
    safety: list[str]            # alerts not attached to a therapy (titles)
    outside: str | None

    def to_json(self) -> dict:
        return {"stage": self.stage, "held_by": self.held_by,
                "plan": [i.to_json() for i in self.items], "safety": self.safety,
                "outside_pathway": self.outside}


@dataclass
class Basis:
    """What the consult rests on: intended use, rule base, evidence, inputs."""

    intended_use: str
    evidence: list[str]          # '[1] retrospective cohort, 56 patients, pediatric'
    populations: list[str]
    inputs_used: list[str]
    inputs_missing: list[str]    # 'CRP in mg/L: not given (read by CNO-A, CNO-B)'
    rulebook: dict               # name, version, digest, builtin, drafts
    testing: str
    as_of: str | None = None     # FHIR input: the day ages and months were counted to

    def to_json(self, inputs_not_used: list[str]) -> dict:
        data = {"intended_use": self.intended_use, "populations": self.populations,
                "inputs_used": self.inputs_used, "inputs_missing": self.inputs_missing,
                "inputs_not_used": list(inputs_not_used), "rulebook": self.rulebook,
                "testing": self.testing}
        if self.as_of is not None:
            data["as_of"] = self.as_of
        return data


@dataclass
class Document:
    """The consult laid out as a clinical document: bottom line, references, basis."""

    bottom_line: BottomLine
    groups: list[tuple[str, list]]        # (kind, suggestions), attached alerts left out
    references: list[Reference]
    basis: Basis


# -- entry point ---------------------------------------------------------------------------------

def arrange(consult, pathway) -> Document:
    book, vocab = pathway.rulebook, pathway.vocabulary
    suggestions = consult.suggestions
    _attach_alerts(suggestions, vocab)
    groups = [(kind, [s for s in suggestions if s.kind == kind and s.shown_with is None])
              for kind in KIND_ORDER]
    groups = [(k, items) for k, items in groups if items]
    references = _number_references(groups, pathway)
    bottom = _bottom_line(consult, book)
    conditions = _cached(pathway, "conditions", dict)
    for n in consult.not_suggested:
        rule = book.by_id[n.rule]
        if not n.why_not:               # the consult fills it in from its memo
            n.why_not, n.why_not_authored = why_not(rule, consult.facts, book)
        if n.rule not in conditions:
            conditions[n.rule] = needs(rule.when, book)
        n.condition = conditions[n.rule]
    return Document(bottom_line=bottom, groups=groups, references=references,
                    basis=_basis(consult, pathway, references))


def _cached(pathway, name: str, build):
    """What depends only on the loaded rule base and evidence, built once per pathway."""
    cache = pathway.__dict__.setdefault("_document_cache", {})
    if name not in cache:
        cache[name] = build()
    return cache[name]


# -- safety alerts with the therapy they concern ------------------------------------------------

def _attach_alerts(suggestions, vocab) -> None:
    """An alert about a therapy goes with the first suggestion to use that therapy (or a drug of
    the class the alert names); an alert about nothing suggested stays an alert of its own."""
    for alert in (s for s in suggestions if s.kind == "alert" and s.therapy):
        for s in suggestions:
            if s.kind in THERAPY_KINDS and s.therapy and (
                    s.therapy == alert.therapy or vocab.class_of(s.therapy) == alert.therapy):
                s.alerts.append(alert)
                alert.shown_with = s.rule
                break


# -- references, Vancouver style ------------------------------------------------------------------

def vancouver(source, library) -> str:
    """'Schnabel A, Range U, Hahn G, Berner R, Hedrich CM. Title. Venue.' (six authors, then et al.)."""
    authors = list(source.authors)
    if len(authors) > 6:
        authors = authors[:6] + ["et al."]
    names = ", ".join(authors).replace(", et al.", ", et al")
    parts = [p.strip().rstrip(".") for p in (names, source.title, source.venue) if p and p.strip()]
    text = ". ".join(parts) + "." if parts else source.id
    if source.doi:
        text += f" doi:{source.doi}"
    if source.known_through:
        via = library.sources.get(source.known_through)
        text += " As reported in: " + (vancouver(via, library) if via else source.known_through)
    return text


def _number_references(groups, pathway) -> list[Reference]:
    """Number sources in reading order (suggestion by suggestion, an attached alert after its
    therapy); every citation gets its source's number in `ref`."""
    numbers: dict[str, int] = {}
    out: list[Reference] = []
    sources = _cached(pathway, "reference fields", dict)   # source id -> Reference fields
    for _, items in groups:
        for s in items:
            for block in [s, *s.alerts]:
                for cite in [*block.dose_citations, *block.citations]:
                    number = numbers.get(cite.source)
                    if number is None:
                        number = numbers[cite.source] = len(numbers) + 1
                        fields = sources.get(cite.source) or _reference_fields(pathway, cite.source)
                        out.append(Reference(number=number, **fields))
                    cite.ref = number
                if block.dose_citations:
                    quoted = {(c.source, c.finding) for c in block.citations}
                    for cite in block.dose_citations:
                        cite.quoted_below = (cite.source, cite.finding) in quoted
    return out


def _reference_fields(pathway, source_id: str) -> dict:
    """A source's entry in the reference list but its number (built once per pathway)."""
    library = pathway.library
    src = library.sources[source_id]
    fields = dict(source=src.id, text=vancouver(src, library), doi=src.doi, url=src.url,
                  design=src.design, population=src.population, n=src.n)
    _cached(pathway, "reference fields", dict)[source_id] = fields
    return fields


# -- the bottom line ------------------------------------------------------------------------------

def _bottom_line(consult, book) -> BottomLine:
    vocab = book.vocabulary
    stages = [s for s in consult.stage if s in vocab.stages]
    treatment = [vocab.stages[s].label for s in stages if vocab.stages[s].step > 0]
    gates = [vocab.stages[s].label for s in stages if vocab.stages[s].step <= 0]
    first = _first_clinical_step(book)
    ongoing = set(consult.facts.get("ongoing_drugs", ())) | set(consult.facts.get("ongoing_classes", ()))
    plan: dict[str, PlanItem] = {}

    def add(action, s, urgent=False):
        label = s.therapy_label or s.title
        key = f"{action}:{label}" if action in ("first", "also") else action  # a gate per step
        item = plan.setdefault(key, PlanItem(action, [], [], urgent))
        if label not in item.therapies:
            item.therapies.append(label)
        item.rules.append(s.rule)
        if s.alerts and label not in item.alerted:
            item.alerted.append(label)
        if action in ("first", "also") and s.title != label:   # a title is not said twice
            item.detail = "; ".join(filter(None, [item.detail, s.title]))

    treats = [s for s in consult.suggestions if s.kind in THERAPY_KINDS and s.drug_class]
    for s in consult.suggestions:
        # a work-up step, or a diagnostic alert while a gate stage holds treatment back; an
        # alert that only informs the diagnosis (a Jansson score) holds nothing back
        is_gate = s.kind == "investigate" or (s.kind == "alert" and s.step == first and bool(gates))
        if is_gate:
            s.urgent = not treats
            add("first" if not treats else "also", s, urgent=not treats)
        elif s.kind in THERAPY_KINDS and s.drug_class:
            if s.therapy in ongoing:
                add("continue", s)
            else:
                add("start" if s.kind == "recommend" else "consider", s)
        elif s.kind == "avoid" and s.therapy:
            add("stop" if s.therapy in ongoing else "avoid", s)
        elif s.kind == "monitor" and s.therapy:
            add("follow up", s)
    order = ("first", "also", "stop", "start", "continue", "consider", "avoid", "follow up")
    items = sorted(plan.values(), key=lambda i: order.index(i.action))
    safety = [s.title for s in consult.suggestions
              if s.kind == "alert" and s.shown_with is None and not (s.step == first)]
    return BottomLine(stage="; ".join(treatment) or "not derived", held_by=gates, items=items,
                      safety=safety, outside=consult.outside_pathway)


def _first_clinical_step(book) -> int:
    steps = [sec.step for sec in book.sections.values() if sec.name != "staging"]
    return min(steps) if steps else 0


# -- why not ------------------------------------------------------------------------------------

def _vocabulary_of(fact: str) -> str | None:
    ftype = FACT_SCHEMA.get(fact)
    return ftype.vocabulary if ftype else None


def _label(book, fact: str, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, str):
        return plain_number(value)
    kind = _vocabulary_of(fact)
    vocab = book.vocabulary
    if kind == "drugs" or kind == "therapies":
        return book.label(value)
    if kind == "drug_classes":
        return vocab.drug_classes[value].label if value in vocab.drug_classes else value
    try:
        return vocab.label(kind, value) if kind else value
    except KeyError:
        return value.replace("_", " ")


def _words(fact: str) -> str:
    ftype = FACT_SCHEMA.get(fact)
    return ftype.description if ftype and ftype.description else fact_words(fact)


def _list(labels: list[str], joiner: str = "and") -> str:
    """Labels joined so that a label containing 'or' stays readable: '“A”, “B” and “C”'
    is not needed when no label contains a joining word; then commas and the joiner do."""
    if any(f" {joiner} " in label or "," in label for label in labels):
        return "; ".join(labels)
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + f" {joiner} " + labels[-1]


def _no(words: str) -> str:
    """'a vertebral lesion' -> 'no vertebral lesion'."""
    for article in ("a ", "an "):
        if words.startswith(article):
            words = words[len(article):]
    return f"no {words}"


def _among(words: str) -> str:
    """' (associated features)', or ' among classes failed (...)' when the words hold brackets."""
    return f" among {words}" if "(" in words else f" ({words})"


_OP = {"gt": "above", "gte": "at least", "lt": "below", "lte": "at most"}


def _need(cond, book) -> str:
    """What a condition asks for, in clinical words."""
    if isinstance(cond, All):
        return "; ".join(_need(c, book) for c in cond.items) or "always"
    if isinstance(cond, Any_):
        return "(one of: " + " / ".join(_need(c, book) for c in cond.items) + ")"
    if isinstance(cond, Not):
        return "not (" + _need(cond.item, book) + ")"
    fact = cond.fact
    words = _words(fact)
    if isinstance(cond, Presence):
        return f"{words} {'stated' if cond.op == 'present' else 'not stated'}"
    if isinstance(cond, Has):
        labels = [_label(book, fact, v) for v in cond.values]
        derived = FACT_SCHEMA[fact].derived_by_rules if fact in FACT_SCHEMA else False
        if cond.op == "has":
            return (f"stage {_list(labels)}" if derived else f"{_list(labels)}{_among(words)}")
        return (f"not at stage {_list(labels, 'or')}" if derived
                else f"no {_list(labels, 'or')}{_among(words)}")
    if isinstance(cond, Compare):
        if isinstance(cond.value, bool):
            positive = cond.value if cond.op == "eq" else not cond.value
            return words if positive else _no(words)
        if cond.op == "in":
            return f"{words}: " + _list([_label(book, fact, v) for v in cond.value], "or")
        if cond.op in _OP:
            return f"{words} {_OP[cond.op]} {plain_number(cond.value)}"
        value = _label(book, fact, cond.value)
        return f"{words}: {value}" if cond.op == "eq" else f"{words} other than {value}"
    raise TypeError(cond)


def needs(cond, book) -> str:
    """A rule's whole condition in clinical words (shown under --explain)."""
    return "always" if cond is None else _need(cond, book)


def reasons(cond, facts, book) -> list[str]:
    """Why a condition does not hold for these facts: what the patient has instead. A
    conjunction's reasons are its parts' one after the other (consult/memo.py relies on it)."""
    if cond is None:
        return []
    if isinstance(cond, All):            # each part is checked once, by the recursion
        return [r for c in cond.items for r in reasons(c, facts, book)]
    if evaluate(cond, facts):
        return []
    if isinstance(cond, Any_):
        return ["none of: " + "; ".join(_need(c, book) for c in cond.items)]
    if isinstance(cond, Not):
        return ["excluded: " + _need(cond.item, book)]
    fact = cond.fact
    words = _words(fact)
    if isinstance(cond, Presence):
        return [f"{words} {'not stated' if cond.op == 'present' else 'stated'}"]
    if isinstance(cond, Has):
        have = facts.get(fact, ())
        derived = FACT_SCHEMA[fact].derived_by_rules if fact in FACT_SCHEMA else False
        if cond.op == "has":
            missing = [_label(book, fact, v) for v in cond.values if v not in have]
            return [f"not at stage {_list(missing)}" if derived else f"no {_list(missing)}{_among(words)}"]
        present = [_label(book, fact, v) for v in cond.values if v in have]
        return [_list(present) if derived else f"{_list(present)}{_among(words)}"]
    if isinstance(cond, Compare):
        if fact not in facts:
            return [f"{words} not stated"]
        actual = facts[fact]
        if isinstance(actual, bool):
            return [words if actual else _no(words)]
        shown = _label(book, fact, actual)
        if cond.op in _OP:
            return [f"{words} {shown} (needs {_OP[cond.op]} {plain_number(cond.value)})"]
        if cond.op == "eq":
            return [f"{words}: {shown} (needs {_label(book, fact, cond.value)})"]
        if cond.op == "in":
            needed = _list([_label(book, fact, v) for v in cond.value], "or")
            return [f"{words}: {shown} (needs {needed})"]
        return [f"{words}: {shown}"]
    raise TypeError(cond)


def why_not(rule, facts, book, *, known: list[str] | None = None) -> tuple[str, bool]:
    """(one short line, authored?) saying why a rule's option is not suggested. `known`:
    `reasons(rule.when, facts, book)` when the caller has it already (from the memo)."""
    authored = getattr(rule, "why_not", "") or ""
    if authored:
        return " ".join(authored.split()), True
    found = reasons(rule.when, facts, book) if known is None else known
    return "; ".join(dict.fromkeys(found)) or "its condition does not hold", False


# -- basis of this consult ------------------------------------------------------------------------

def _is_builtin(directory) -> bool:
    """The rule base shipped with the program (not a folder given with --rules or
    CNO_PATHWAY_RULES, even a copy of it: a copy may have been edited)."""
    try:
        return Path(directory).resolve() == _data_dir("rules").resolve()
    except (OSError, FileNotFoundError):
        return False


def _readers(pathway) -> dict[str, list[str]]:
    """Fact -> the active rules whose condition reads it; once per loaded pathway."""
    def build():
        readers: dict[str, dict[str, None]] = {}   # dicts as ordered sets: linear in the rules
        for rule in pathway.rulebook.active:
            for leaf in leaves(rule.when):
                readers.setdefault(leaf.fact, {})[rule.id] = None
        return {fact: list(ids) for fact, ids in readers.items()}
    return _cached(pathway, "readers", build)


def _testing(book) -> str:
    active = book.active
    tests = sum(len(r.tests) for r in active)
    tested = sum(1 for r in active if r.tests)
    return (f"{tested} of the {len(active)} active rules carry test patients that must make them "
            f"fire or stay silent ({tests} in all; `cno-pathway rules test`); `cno-pathway rules "
            "lint` checks that every citation resolves to a quoted passage, that grades do not "
            "exceed the evidence, and that no two rules conflict.")


def _inputs(pathway, profile_type) -> tuple[list, dict]:
    """What the basis says of each fact rules read, built once per pathway (and profile type):
    [(fact, the line saying it is missing)] in order, and {fact: its words} for those used."""
    def build():
        fields = set(profile_type.model_fields)
        missing, used = [], {}
        for fact, rules in sorted(_readers(pathway).items()):
            ftype = FACT_SCHEMA.get(fact)
            if ftype is None or ftype.derived_by_rules:
                continue
            given = "not given" if fact.split(".")[0] in fields else "cannot be told from the profile"
            missing.append((fact, f"{_words(fact)}: {given} (read by {', '.join(sorted(rules))})"))
            used[fact] = _words(fact)
        return missing, used
    return _cached(pathway, ("inputs", profile_type), build)


def _basis(consult, pathway, references) -> Basis:
    book = pathway.rulebook
    profile = consult.profile
    facts = consult.facts
    missing = []
    doses = [s for s in consult.suggestions if s.regimen and s.regimen.get("steps")]
    if profile.weight_kg is None and doses:
        names = _list(sorted({s.therapy_label or s.title for s in doses}))
        missing.append(f"{_words('weight_kg')}: not given, so doses of {names} are in mg/kg only")
    # the inputs used and missing depend only on which facts have a value: kept by their names
    kept = _cached(pathway, "inputs by facts", dict)
    key = (type(profile), *facts)
    found = kept.get(key)
    if found is None:
        not_read, words = _inputs(pathway, type(profile))
        if len(kept) >= 4096:
            kept.clear()
        found = kept[key] = ([line for fact, line in not_read if fact not in facts],
                             sorted({words[f] for f in facts if f in words}))
    missing += found[0]
    used = list(found[1])
    populations = sorted({r.population for r in references})
    drafts = _cached(pathway, "drafts", lambda: sorted(r.id for r in book.active if r.status == "draft"))
    builtin = _cached(pathway, "builtin", lambda: _is_builtin(book.directory))
    testing = _cached(pathway, "testing", lambda: _testing(book))
    intended = _cached(pathway, "intended_use",
                       lambda: " ".join(book.messages.get("intended_use", "").split()))
    return Basis(
        intended_use=intended,
        evidence=[f"[{r.number}] {r.evidence}" for r in references],
        populations=populations,
        inputs_used=used,
        inputs_missing=missing,
        rulebook={"name": book.name, "version": book.version, "digest": book.digest,
                  "builtin": builtin, "drafts": list(drafts),
                  "drafts_suggesting": [s.rule for s in consult.suggestions
                                        if book.by_id[s.rule].status == "draft"]},
        testing=testing,
        as_of=profile_extra(consult.profile, "as_of"))


def profile_extra(profile, name: str):
    """What only some kinds of profile carry (a FHIR bundle's `inputs_not_used`, `as_of`): None
    for the others, asked of the class (pydantic takes microseconds to refuse a missing one)."""
    return getattr(profile, name) if hasattr(type(profile), name) else None
