"""The consult: profile -> facts -> engine -> finished suggestions with citations and doses.

`Pathway` holds what is costly and does not change between patients (the parsed rule base, the
evidence library, the compiled engine). `Pathway.consult(profile)` returns a `Consult`: finished
objects the templates only lay out, and the JSON contract other programs read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..engine.durable import Engine, compile_rules
from ..errors import RuleError
from ..engine.evaluation import Evaluation
from .memo import ConsultMemo
from ..knowledge.evidence import EvidenceLibrary, load_library
from ..patient.facts import ADULT_AGE, FACT_SCHEMA, derive_facts, not_tolerated
from ..patient.profile import PatientProfile
from ..knowledge.regimens import ADULT_MESSAGES, dose_plan, population_problems
from ..resources import rules_dir, seeds_dir
from ..knowledge.rulebook import Rule, RuleBook, fill, find_formulary, load_rulebook
from .document import KIND_ORDER, arrange, profile_extra, reasons, why_not
from ..patient.durations import duration_words
from ..wording import plain_number

if TYPE_CHECKING:
    from ..knowledge.formulary import Formulary

SCHEMA = "cno-pathway/consult/1"


@dataclass
class Citation:
    """A quoted passage as the consult cites it, numbered."""

    number: int
    source: str
    finding: str
    quote: str
    locator: str
    reference: str
    doi: str | None
    url: str | None
    design: str
    population: str
    n: int | None
    quality: str
    known_through: str | None
    year: int | None = None
    short: str = ""                 # "Schnabel A et al. 2017": for a source cited again
    same_as: int | None = None      # number of the earlier citation of the same source
    ref: int | None = None          # the source's number in the consult's reference list
    quoted_below: bool = False      # a dose passage also quoted among the suggestion's evidence

    @property
    def doi_url(self) -> str | None:
        return f"https://doi.org/{self.doi}" if self.doi else None

    def copy(self) -> "Citation":
        """A shallow copy (what copy.copy gives, without its generic machinery): a consult
        numbers its own copies, the memo keeps the originals."""
        new = object.__new__(Citation)
        new.__dict__ = self.__dict__.copy()
        return new

    def to_json(self) -> dict:
        return {"number": self.number, "source": self.source, "finding": self.finding,
                "quote": self.quote, "locator": self.locator, "reference": self.reference,
                "doi": self.doi, "url": self.url, "year": self.year,
                "reference_number": self.ref}


@dataclass
class Suggestion:
    """One finished suggestion: rule, therapy, dose, grade and citations."""

    rule: str
    kind: str
    title: str
    therapy: str | None
    therapy_label: str | None
    drug_class: str | None
    drug_class_label: str | None
    regimen: dict | None
    rationale: str
    grade: str
    grade_meaning: str
    citations: list[Citation]
    section: str
    section_label: str
    step: int
    priority: int
    where: str
    notes: list[str] = field(default_factory=list)
    dose_citations: list[Citation] = field(default_factory=list)   # the passages giving the dose
    status: str = "reviewed"        # the rule's status: a draft rule's suggestion says so
    alerts: list["Suggestion"] = field(default_factory=list)   # safety alerts shown with it
    shown_with: str | None = None   # for an alert: the rule of the suggestion it is shown with
    urgent: bool = False            # a gate that must come first: no treatment is suggested

    def to_json(self) -> dict:
        regimen = self.regimen
        if regimen is not None:
            regimen = dict(regimen, citations=[c.to_json() for c in self.dose_citations])
        return {"rule": self.rule, "kind": self.kind, "title": self.title,
                "therapy": self.therapy, "drug_class": self.drug_class, "regimen": regimen,
                "rationale": self.rationale, "grade": self.grade,
                "grade_meaning": self.grade_meaning,
                "citations": [c.to_json() for c in self.citations], "notes": self.notes,
                "where": self.where, "section": self.section, "step": self.step,
                "status": self.status, "shown_with": self.shown_with, "urgent": self.urgent,
                "reference_numbers": sorted({c.ref for c in self.citations if c.ref})}


@dataclass
class NotSuggested:
    """A rule that did not fire, and the conditions it missed."""

    rule: str
    title: str
    therapy: str | None
    kind: str
    section: str
    unmet: list[str]
    therapy_label: str | None = None
    section_label: str = ""
    step: int = 0
    where: str = ""
    why_not: str = ""               # one line in clinical words (document.why_not)
    why_not_authored: bool = False  # from the rule's `why_not:` rather than from labels
    condition: str = ""             # the rule's whole condition in words (under --explain)

    def to_json(self) -> dict:
        return {"rule": self.rule, "title": self.title, "therapy": self.therapy, "unmet": self.unmet,
                "kind": self.kind, "section": self.section, "where": self.where,
                "why_not": self.why_not, "why_not_authored": self.why_not_authored}


@dataclass
class TraceEntry:
    """One rule the engine fired, in engine order: what it derived or what it suggested."""

    number: int
    rule: str
    title: str
    where: str
    derived: list[tuple[str, str]]     # (fact, value) for a staging rule
    kind: str | None                    # the suggestion's kind for a suggestion rule


@dataclass
class SummaryLine:
    """One line of the patient summary: a label and finished text (vocabulary labels)."""

    label: str
    value: str


@dataclass
class Consult:
    """One patient's finished consult: what the templates lay out and JSON holds."""

    profile: PatientProfile
    facts: dict
    stage: list[str]
    stage_labels: list[str]
    rulebook: dict
    program_version: str
    suggestions: list[Suggestion]
    not_suggested: list[NotSuggested]
    outside_pathway: str | None
    disclaimer: str
    grading: dict
    evaluation: Evaluation
    explain: bool = False
    not_suggested_scope: list[str] | None = None   # section labels shown; None: every rule
    document: Any = None            # document.Document: bottom line, references, basis
    # what a FHIR intake could not use (interop/fhir.py); None for a profile given as such
    inputs_not_used: list[dict] | None = None
    # the pathway that made the consult: the parts only a rendered page shows are built from it
    # when first read (a batch writing JSON never reads them)
    pathway: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def summary(self) -> list[SummaryLine]:
        """The patient as the consult's first lines (vocabulary labels)."""
        return self.pathway._summary(self.profile)

    @cached_property
    def treatments(self) -> list[str]:
        """One finished line per treatment."""
        return self.pathway._treatments(self.profile)

    @cached_property
    def trace(self) -> list[TraceEntry]:
        """The rules fired, in engine order."""
        return self.pathway._trace(self.evaluation)

    @property
    def inputs_not_used_lines(self) -> list[str]:
        """What the intake could not use, one line each, for the basis section."""
        lines = []
        for item in self.inputs_not_used or ():
            where = item["resource"] + (f" ({item['element']})" if item.get("element") else "")
            lines.append(f"{where}: {item['reason']}")
        return lines

    @property
    def label(self) -> str | None:
        """The profile's id, as given (templates escape or sanitise it for their format)."""
        return self.profile.id

    @property
    def groups(self) -> list[tuple[str, list[Suggestion]]]:
        """Suggestions by kind in consult order (alerts and investigations first)."""
        return [(kind, [s for s in self.suggestions if s.kind == kind])
                for kind in KIND_ORDER if any(s.kind == kind for s in self.suggestions)]

    def to_json(self) -> dict:
        data = {
            "schema": SCHEMA,
            "program": {"name": "cno-pathway", "version": self.program_version},
            "profile": self.profile.to_data(),
            "facts": self.facts,
            "stage": self.stage,
            "rulebook": self.rulebook,
            "suggestions": [s.to_json() for s in self.suggestions],
            "not_suggested": [n.to_json() for n in self.not_suggested],
            "outside_pathway": self.outside_pathway,
            "grading": self.grading,
            "disclaimer": self.disclaimer,
        }
        if self.document is not None:
            data["bottom_line"] = self.document.bottom_line.to_json()
            data["references"] = [r.to_json() for r in self.document.references]
            data["basis"] = self.document.basis.to_json(self.inputs_not_used or [])
        if self.inputs_not_used is not None:
            data["inputs_not_used"] = self.inputs_not_used
        if self.explain:
            data["trace"] = {"fired": self.evaluation.fired,
                             "derivations": [{"rule": r, "fact": f, "value": v}
                                             for r, f, v in self.evaluation.derivations]}
        return data


class Pathway:
    """The loaded knowledge: rule base, evidence library and compiled engine."""

    def __init__(self, rulebook: RuleBook, library: EvidenceLibrary,
                 formulary: Formulary | None = None, *, compiled: dict | None = None):
        self.rulebook = rulebook
        self.library = library
        self.formulary = formulary      # the hospital's maximum doses, when one is given
        self.value_order = {"stage": list(rulebook.vocabulary.stages)}
        # compiled: the engine's patterns kept with the rule base (engine.durable.compile_rules)
        self.engine = Engine(rulebook.active, self.value_order, compiled=compiled)
        self._memo = ConsultMemo(rulebook.label,
                                 reasons=lambda cond, facts: reasons(cond, facts, rulebook))
        # built on first use, then the same for every patient
        self._disclaimers: dict[str, str] = {}              # populations -> disclaimer
        self._constants_of_suggestions: dict[str, dict] = {}
        self._not_suggested_order: list[tuple] | None = None

    @classmethod
    def load(cls, rules: str | Path | None = None, seeds: str | Path | None = None,
             formulary: str | Path | None = None) -> "Pathway":
        """Parse and check the rule base and the evidence (from the knowledge cache when their
        content was parsed before), then compile the engine. The local formulary is the file
        given, else `formulary.yaml` beside the rules, else none. Everything built here lives as
        long as the pathway: the cyclic collector waits (yamlio.collector_paused)."""
        from ..knowledge.cache import cached
        from ..yamlio import collector_paused

        rdir, sdir = Path(rules_dir(rules)), Path(seeds_dir(seeds))

        def build():
            rulebook = load_rulebook(rdir, seeds=sdir)
            library = load_library(sdir)
            check_citations(rulebook, library)
            return rulebook, library, compile_rules(rulebook.active)

        with collector_paused():
            rulebook, library, compiled = cached([rdir, sdir], build, code=(compile_rules,))
            found = find_formulary(rdir, formulary)
            if found is None:
                return cls(rulebook, library, compiled=compiled)
            from ..knowledge.formulary import load_formulary  # only with a formulary

            return cls(rulebook, library, load_formulary(found, rulebook.vocabulary),
                       compiled=compiled)

    @property
    def vocabulary(self):
        return self.rulebook.vocabulary

    def close(self):
        self.engine.close()

    def evaluate(self, profile: PatientProfile) -> Evaluation:
        return self.engine.evaluate(derive_facts(profile, self.vocabulary))

    def consult(self, profile: PatientProfile, *, explain: bool = False) -> Consult:
        book = self.rulebook
        evaluation = self.evaluate(profile)
        facts = evaluation.facts
        fired = evaluation.fired_set
        suggestions = [self._suggestion(book.by_id[rid], profile, facts)
                       for rid in evaluation.fired if not book.by_id[rid].is_staging]
        suggestions.sort(key=lambda s: (KIND_ORDER.index(s.kind), s.step, s.priority, s.rule))
        populations = sorted({c.population for s in suggestions for c in s.citations}) or ["pediatric"]
        stage = list(facts.get("stage", []))
        outside = None
        not_suggested, scope = self._not_suggested(fired, facts, suggestions, complete=explain)
        if not suggestions:
            outside = fill(book.messages.get("outside_pathway", "No rule applies."),
                           stage=", ".join(stage) or "none derived")
        consult = Consult(
            profile=profile,
            facts=facts,
            stage=stage,
            stage_labels=[self.vocabulary.stages[s].label for s in stage],
            rulebook={"name": book.name, "version": book.version, "digest": book.digest},
            program_version=__version__,
            suggestions=suggestions,
            not_suggested=not_suggested,
            outside_pathway=outside,
            disclaimer=self._disclaimer(" and ".join(populations)),
            grading={"scheme": self.library.grading.scheme, "reference": self.library.grading.reference,
                     "grades": self.library.grading.grades},
            evaluation=evaluation,
            explain=explain,
            not_suggested_scope=scope,
            inputs_not_used=profile_extra(profile, "inputs_not_used"),
            pathway=self,
        )
        consult.document = arrange(consult, self)
        return consult

    # -- pieces ---------------------------------------------------------------------------
    def _disclaimer(self, populations: str) -> str:
        """The disclaimer for the populations of the evidence cited (a few combinations: kept)."""
        kept = self._disclaimers
        text = kept.get(populations)
        if text is None:
            text = kept[populations] = fill(self.rulebook.messages.get("disclaimer", ""),
                                            populations=populations)
        return text

    def _suggestion_constants(self, rule: Rule) -> dict:
        """The fields of a rule's suggestion that are the same for every patient, built once."""
        cache = self._constants_of_suggestions
        found = cache.get(rule.id)
        if found is None:
            book, vocab, s = self.rulebook, self.vocabulary, rule.suggest
            drug_class = vocab.class_of(s.therapy)
            section = book.sections[rule.stage]
            grade = rule.evidence.grade if rule.evidence else ""
            found = cache[rule.id] = dict(
                rule=rule.id, kind=s.kind, title=rule.title, therapy=s.therapy,
                therapy_label=self._therapy_label(s.therapy), drug_class=drug_class,
                drug_class_label=vocab.drug_classes[drug_class].label if drug_class else None,
                rationale=s.rationale, grade=grade,
                grade_meaning=self.library.grading.meaning(grade),
                section=rule.stage, section_label=section.label, step=section.step,
                priority=rule.priority, where=rule.where, status=rule.status,
                shown_with=None, urgent=False)
        return found

    def _suggestion(self, rule: Rule, profile: PatientProfile, facts: dict) -> Suggestion:
        book, vocab = self.rulebook, self.vocabulary
        s = rule.suggest
        def cite():
            citations = self._citations(rule.evidence.cites if rule.evidence else ())
            regimen = self.rulebook.regimens.get(s.regimen) if s.regimen else None
            return citations, self._citations(regimen.cites if regimen else (), cited=citations)
        citations, dose_citations = self._memo.cited(rule.id, cite)
        constants = self._suggestion_constants(rule)
        drug_class = constants["drug_class"]
        notes = []
        if (profile.age_years >= ADULT_AGE and citations
                and all(c.population == "pediatric" for c in citations)):
            notes.append(book.messages.get("adult_on_pediatric_evidence", ""))
        if s.kind in ("recommend", "consider") and drug_class and (
                drug_class in facts.get("intolerant_classes", ())
                or drug_class in facts.get("adverse_event_classes", ())):
            detail = "; ".join(
                f"{t.drug}: {t.response}" + (f" ({', '.join(t.adverse_events)})" if t.adverse_events else "")
                for t in profile.treatments if vocab.class_of(t.drug) == drug_class and not_tolerated(t))
            notes.append(fill(book.messages.get("history_intolerance", ""), detail=detail))
        suggestion = Suggestion.__new__(Suggestion)     # every field set here: no __init__
        suggestion.__dict__ = constants.copy()
        suggestion.regimen = self._regimen(s.regimen, profile)
        suggestion.citations = citations
        suggestion.dose_citations = dose_citations
        suggestion.notes = [n for n in notes if n]
        suggestion.alerts = []
        return suggestion

    def _citations(self, cites, *, cited: list[Citation] | None = None) -> list[Citation]:
        """Numbered citations; a source cited again points at its first citation (for a dose's
        passages: at the suggestion's own citation of that source, when there is one)."""
        out: list[Citation] = []
        first_of = {c.source: c.number for c in cited or () if c.same_as is None}
        for number, cite in enumerate(cites, start=1):
            source, finding = self.library.resolve(cite)
            out.append(Citation(
                number=number, source=source.id, finding=finding.id, quote=finding.quote,
                locator=finding.locator, reference=source.reference(self.library), doi=source.doi,
                url=source.url, design=source.design, population=source.population, n=source.n,
                quality=source.quality, known_through=source.known_through, year=source.year,
                short=_short_reference(source), same_as=first_of.get(source.id)))
            if cited is None:
                first_of.setdefault(source.id, number)
        return out

    def _regimen(self, regimen_id: str | None, profile: PatientProfile) -> dict | None:
        if regimen_id is None:
            return None
        regimen = self.rulebook.regimens.get(regimen_id)
        plan = dose_plan(regimen, profile.weight_kg, profile.age_years, self.formulary)
        if not regimen.steps:
            plan["text"] = regimen.text or self.rulebook.messages.get("no_dose", "")
        message = ADULT_MESSAGES.get(plan["not_computed"])
        plan["adult_dose"] = (fill(self.rulebook.messages.get(message, ""),
                                   population=regimen.population or "") or None) if message else None
        return {"id": regimen.id, **plan,
                "where": f"{regimen.file}:{regimen.line}" if regimen.line else regimen.file}

    def _therapy_label(self, therapy: str | None) -> str | None:
        vocab = self.vocabulary
        if therapy is None:
            return None
        if therapy in vocab.drug_classes:      # a class as the therapy: its label ("NSAID")
            return vocab.drug_classes[therapy].label
        return vocab.label("procedures", therapy) if therapy in vocab.procedures \
            else therapy.replace("_", " ")

    def _label(self, kind: str, value: str | None) -> str:
        return self.vocabulary.label(kind, value) if value else ""

    def _summary(self, profile: PatientProfile) -> list[SummaryLine]:
        """The patient as the consult's first lines: what was given, in vocabulary labels."""
        num = plain_number
        who = [f"{num(profile.age_years)} years"]
        if profile.sex:
            who.append(profile.sex)
        who.append(f"{num(profile.weight_kg)} kg" if profile.weight_kg is not None
                   else "weight not given")
        if profile.age_at_onset_years is not None:
            who.append(f"onset at {num(profile.age_at_onset_years)} years")
        les = profile.lesions
        lesion = [f"{les.count}" + (f" ({', '.join(les.sites)})" if les.sites else "")]
        if les.symmetric is not None:
            lesion.append("symmetric" if les.symmetric else "asymmetric")
        if les.vertebral_fracture:
            lesion.append("vertebral fracture")
        lesion.append("imaging: " + (self._label("imaging", les.imaging) if les.imaging
                                     else "not stated"))
        lines = [SummaryLine("Patient", ", ".join(who)),
                 SummaryLine("Diagnosis", self._label("diagnoses", profile.diagnosis)),
                 SummaryLine("Lesions", "; ".join(lesion))]
        if profile.jansson_score is not None:
            lines.insert(2, SummaryLine("Jansson score", f"{profile.jansson_score} of 63"))
        act = profile.activity
        words = {name: FACT_SCHEMA[f"activity.{name}"].description if f"activity.{name}" in FACT_SCHEMA
                 else name.replace("_", " ") for name in act.model_dump()}
        present = [words[name] for name, v in act.model_dump().items() if v is True]
        absent = [words[name] for name, v in act.model_dump().items() if v is False]
        if present or absent:
            parts = [", ".join(present)] if present else []
            parts += ["no " + ", no ".join(absent)] if absent else []
            lines.append(SummaryLine("Activity", "; ".join(parts)))
        labs = profile.labs
        lab = []
        if labs.crp_mg_l is not None:
            lab.append(f"CRP {num(labs.crp_mg_l)} mg/L")
        if labs.esr_mm_h is not None:
            lab.append(f"ESR {num(labs.esr_mm_h)} mm/h")
        if labs.cbc_normal is not None:
            lab.append("blood count " + ("normal" if labs.cbc_normal else "abnormal"))
        if lab:
            lines.append(SummaryLine("Labs", ", ".join(lab)))
        features = [self._label("features", f) for f in profile.features]
        red_flags = [self._label("red_flags", f) for f in profile.red_flags]
        lines.append(SummaryLine("Features", ", ".join(features) or "none"))
        lines.append(SummaryLine("Red flags", ", ".join(red_flags) or "none"))
        lines.append(SummaryLine("Biopsy", self._label("biopsy", profile.biopsy)))
        lines.append(SummaryLine("HLA-B27", profile.hla_b27))
        return lines

    def _treatments(self, profile: PatientProfile) -> list[str]:
        out = []
        for t in profile.treatments:
            response = self._label("responses", t.response).lower()
            line = f"{t.drug.replace('_', ' ')}, {duration_words(t.months)}: {response}"
            if t.ongoing:
                line += ", ongoing"
            if t.adverse_events:
                events = ", ".join(self._label("adverse_events", e) for e in t.adverse_events)
                line += f" (adverse events: {events})"
            out.append(line)
        return out

    def _trace(self, evaluation: Evaluation) -> list[TraceEntry]:
        book = self.rulebook
        out = []
        for number, rid in enumerate(evaluation.fired, start=1):
            rule = book.by_id[rid]
            out.append(TraceEntry(
                number=number, rule=rid, title=rule.title, where=rule.where,
                derived=[(f, v) for r, f, v in evaluation.derivations if r == rid],
                kind=None if rule.is_staging else rule.suggest.kind))
        return out

    def _not_suggested_rules(self) -> list[tuple]:
        """(rule, section step, the fields of its "not suggested" entry that are the same for
        every patient) for every suggestion rule, in the order "not suggested" lists them. An
        authored why-not line is one of those fields."""
        found = self._not_suggested_order
        if found is None:
            book = self.rulebook
            found = self._not_suggested_order = []
            for rule in sorted(book.active, key=lambda r: (book.sections[r.stage].step, r.priority, r.id)):
                if rule.is_staging:
                    continue
                section = book.sections[rule.stage]
                fields = dict(
                    rule=rule.id, title=rule.title, therapy=rule.suggest.therapy,
                    kind=rule.suggest.kind, section=rule.stage, unmet=[],
                    therapy_label=self._therapy_label(rule.suggest.therapy),
                    section_label=section.label, step=section.step, where=rule.where,
                    why_not="", why_not_authored=False, condition="")
                if rule.why_not:
                    fields["why_not"], fields["why_not_authored"] = why_not(rule, {}, book)
                found.append((rule, section.step, fields))
        return found

    def _not_suggested(self, fired, facts, suggestions, *,
                       complete: bool) -> tuple[list[NotSuggested], list[str] | None]:
        book = self.rulebook
        steps = [s.step for s in suggestions if s.section not in ("safety", "monitoring")]
        current = max(steps) if steps else min(sec.step for sec in book.sections.values()
                                                if sec.name != "staging")
        shown = (current, current + 1)
        explain, why_not_line = self._memo.explain, self._memo.why_not_line
        words: dict[str, str] = {}           # fact -> its value in words, for this patient
        out = []
        for rule, step, fields in self._not_suggested_rules():
            if rule.id in fired or (not complete and step not in shown):
                continue
            entry = NotSuggested.__new__(NotSuggested)     # the fields are complete: no __init__
            entry.__dict__ = fields.copy()
            entry.unmet, reasons = explain(rule, facts, words)
            if not entry.why_not_authored:
                entry.why_not = why_not_line(
                    reasons, lambda: why_not(rule, facts, book, known=list(reasons))[0])
            out.append(entry)
        scope = None if complete else [
            sec.label for sec in sorted(book.sections.values(), key=lambda s: s.step)
            if sec.step in shown and sec.name != "staging"]
        return out, scope


def _short_reference(source) -> str:
    """'Schnabel A et al. 2017': how a source cited again within one suggestion is named."""
    first = source.authors[0] if source.authors else source.id
    if first.endswith("et al.") or first.endswith("et al"):
        first = first.rsplit(",", 1)[0]
    name = first + (" et al." if len(source.authors) > 1 else "")
    return f"{name} {source.year}" if source.year else name


def check_citations(rulebook: RuleBook, library: EvidenceLibrary) -> None:
    """Every citation in rules and regimens must resolve: a consult never shows a broken one."""
    for rule in rulebook.rules:
        for cite in rule.evidence.cites if rule.evidence else ():
            _resolve(library, cite, "citation", file=rule.file, line=rule.line, rule=rule.id)
        if rule.suggest and rule.suggest.regimen and rulebook.regimens.get(rule.suggest.regimen) is None:
            raise RuleError(f"unknown regimen {rule.suggest.regimen!r} (not in regimens.yaml)",
                            file=rule.file, line=rule.line, rule=rule.id)
    for regimen in rulebook.regimens.by_id.values():
        for cite in regimen.cites:
            _resolve(library, cite, f"regimen {regimen.id}: citation", file=regimen.file,
                     line=regimen.line)
    missing = [m for m in ADULT_MESSAGES.values() if not rulebook.messages.get(m)]
    if missing and any(r.steps for r in rulebook.regimens.by_id.values()):
        raise RuleError(f"messages lacks {', '.join(missing)}: what an adult's consult says in "
                        "place of a dose computed from a regimen", file="rulebook.yaml",
                        field="messages")
    for regimen, problem in population_problems(
            rulebook.regimens, lambda cite: library.resolve(cite)[0].population):
        raise RuleError(f"regimen {regimen.id}: {problem}", file=regimen.file, line=regimen.line)
    for cls in rulebook.vocabulary.drug_classes.values():
        for cite in cls.adequate_trial_basis:
            _resolve(library, cite, f"drug class {cls.name}: adequate_trial_basis",
                     file=rulebook.vocabulary.source)


def _resolve(library: EvidenceLibrary, cite: str, what: str, **where) -> None:
    """A citation that does not resolve is a RuleError naming what cites it and where."""
    try:
        library.resolve(cite)
    except KeyError as exc:
        raise RuleError(f"{what} {cite!r}: {exc.args[0]}", **where) from None
