"""The consult: profile -> facts -> engine -> finished suggestions with citations and doses.

`Pathway` holds what is costly and does not change between patients (the parsed rule base, the
evidence library, the compiled engine). `Pathway.consult(profile)` returns a `Consult`: finished
objects the templates only lay out, and the JSON contract other programs read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .conditions import unmet
from .engine import Engine
from .errors import RuleError
from .evaluation import Evaluation, reference_evaluate
from .evidence import EvidenceLibrary, load_library
from .facts import derive_facts
from .profile import PatientProfile
from .regimens import compute_step
from .resources import rules_dir, seeds_dir
from .rulebook import KINDS, Rule, RuleBook, load_rulebook

SCHEMA = "cno-pathway/consult/1"
KIND_ORDER = ("alert", "investigate", "recommend", "consider", "avoid", "monitor")
ADULT_AGE = 18


@dataclass
class Citation:
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

    def to_json(self) -> dict:
        return {"source": self.source, "finding": self.finding, "quote": self.quote,
                "locator": self.locator, "reference": self.reference, "doi": self.doi,
                "url": self.url}


@dataclass
class Suggestion:
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

    def to_json(self) -> dict:
        return {"rule": self.rule, "kind": self.kind, "title": self.title,
                "therapy": self.therapy, "drug_class": self.drug_class, "regimen": self.regimen,
                "rationale": self.rationale, "grade": self.grade,
                "citations": [c.to_json() for c in self.citations], "notes": self.notes}


@dataclass
class NotSuggested:
    rule: str
    title: str
    therapy: str | None
    kind: str
    section: str
    unmet: list[str]

    def to_json(self) -> dict:
        return {"rule": self.rule, "title": self.title, "therapy": self.therapy, "unmet": self.unmet}


@dataclass
class Consult:
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
        if self.explain:
            data["trace"] = {"fired": self.evaluation.fired,
                             "derivations": [{"rule": r, "fact": f, "value": v}
                                             for r, f, v in self.evaluation.derivations]}
        return data


class Pathway:
    """The loaded knowledge: rule base, evidence library and compiled engine."""

    def __init__(self, rulebook: RuleBook, library: EvidenceLibrary):
        self.rulebook = rulebook
        self.library = library
        self.value_order = {"stage": list(rulebook.vocabulary.stages)}
        self.engine = Engine(rulebook.active, self.value_order)

    @classmethod
    def load(cls, rules: str | Path | None = None, seeds: str | Path | None = None) -> "Pathway":
        rdir, sdir = rules_dir(rules), seeds_dir(seeds)
        rulebook = load_rulebook(rdir, seeds=sdir)
        library = load_library(sdir)
        check_citations(rulebook, library)
        return cls(rulebook, library)

    @property
    def vocabulary(self):
        return self.rulebook.vocabulary

    def close(self):
        self.engine.close()

    def evaluate(self, profile: PatientProfile, *, reference: bool = False) -> Evaluation:
        facts = derive_facts(profile, self.vocabulary)
        if reference:
            return reference_evaluate(self.rulebook.active, facts, self.value_order)
        return self.engine.evaluate(facts)

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
        if not suggestions:
            outside = book.messages.get("outside_pathway", "No rule applies.").format(
                stage=", ".join(stage) or "none derived")
        return Consult(
            profile=profile,
            facts=facts,
            stage=stage,
            stage_labels=[self.vocabulary.stages[s].label for s in stage],
            rulebook={"name": book.name, "version": book.version, "digest": book.digest},
            program_version=__version__,
            suggestions=suggestions,
            not_suggested=self._not_suggested(fired, facts, suggestions, complete=explain),
            outside_pathway=outside,
            disclaimer=book.messages.get("disclaimer", "").format(populations=" and ".join(populations)),
            grading={"scheme": self.library.grading.scheme, "reference": self.library.grading.reference,
                     "grades": self.library.grading.grades},
            evaluation=evaluation,
            explain=explain,
        )

    # -- pieces ---------------------------------------------------------------------------
    def _suggestion(self, rule: Rule, profile: PatientProfile, facts: dict) -> Suggestion:
        book, vocab = self.rulebook, self.vocabulary
        s = rule.suggest
        citations = []
        for number, cite in enumerate(rule.evidence.cites if rule.evidence else (), start=1):
            source, finding = self.library.resolve(cite)
            citations.append(Citation(
                number=number, source=source.id, finding=finding.id, quote=finding.quote,
                locator=finding.locator, reference=source.reference(self.library), doi=source.doi,
                url=source.url, design=source.design, population=source.population, n=source.n,
                quality=source.quality, known_through=source.known_through))
        drug_class = vocab.class_of(s.therapy)
        section = book.sections[rule.stage]
        notes = []
        if (profile.age_years >= ADULT_AGE and citations
                and all(c.population == "pediatric" for c in citations)):
            notes.append(book.messages.get("adult_on_pediatric_evidence", ""))
        if s.kind in ("recommend", "consider") and drug_class and (
                drug_class in facts.get("intolerant_classes", ())
                or drug_class in facts.get("adverse_event_classes", ())):
            detail = "; ".join(
                f"{t.drug}: {t.response}" + (f" ({', '.join(t.adverse_events)})" if t.adverse_events else "")
                for t in profile.treatments if vocab.class_of(t.drug) == drug_class
                and (t.response in ("intolerance", "adverse_event") or t.adverse_events))
            notes.append(book.messages.get("history_intolerance", "").format(detail=detail))
        grade = rule.evidence.grade if rule.evidence else ""
        return Suggestion(
            rule=rule.id, kind=s.kind, title=rule.title, therapy=s.therapy,
            therapy_label=(vocab.label("procedures", s.therapy) if s.therapy in vocab.procedures
                           else s.therapy.replace("_", " ") if s.therapy else None),
            drug_class=drug_class,
            drug_class_label=vocab.drug_classes[drug_class].label if drug_class else None,
            regimen=self._regimen(s.regimen, profile),
            rationale=s.rationale, grade=grade,
            grade_meaning=self.library.grading.meaning(grade), citations=citations,
            section=rule.stage, section_label=section.label, step=section.step,
            priority=rule.priority, where=rule.where, notes=[n for n in notes if n])

    def _regimen(self, regimen_id: str | None, profile: PatientProfile) -> dict | None:
        if regimen_id is None:
            return None
        regimen = self.rulebook.regimens.get(regimen_id)
        steps = [compute_step(step, profile.weight_kg) for step in regimen.steps]
        text = regimen.text if steps else (regimen.text or self.rulebook.messages.get("no_dose", ""))
        return {"id": regimen.id, "text": text, "steps": steps}

    def _not_suggested(self, fired, facts, suggestions, *, complete: bool) -> list[NotSuggested]:
        book = self.rulebook
        steps = [s.step for s in suggestions if s.section not in ("safety", "monitoring")]
        current = max(steps) if steps else min(sec.step for sec in book.sections.values()
                                                if sec.name != "staging")
        out = []
        for rule in sorted(book.active, key=lambda r: (book.sections[r.stage].step, r.priority, r.id)):
            if rule.is_staging or rule.id in fired:
                continue
            step = book.sections[rule.stage].step
            if not complete and step not in (current, current + 1):
                continue
            out.append(NotSuggested(rule=rule.id, title=rule.title, therapy=rule.suggest.therapy,
                                    kind=rule.suggest.kind, section=rule.stage,
                                    unmet=unmet(rule.when, facts, book.label)))
        return out


def check_citations(rulebook: RuleBook, library: EvidenceLibrary) -> None:
    """Every citation in rules and regimens must resolve: a consult never shows a broken one."""
    for rule in rulebook.rules:
        for cite in rule.evidence.cites if rule.evidence else ():
            try:
                library.resolve(cite)
            except KeyError as exc:
                raise RuleError(f"citation {cite!r}: {exc.args[0]}", file=rule.file, line=rule.line,
                                rule=rule.id) from None
        if rule.suggest and rule.suggest.regimen and rulebook.regimens.get(rule.suggest.regimen) is None:
            raise RuleError(f"unknown regimen {rule.suggest.regimen!r} (not in regimens.yaml)",
                            file=rule.file, line=rule.line, rule=rule.id)
    for regimen in rulebook.regimens.by_id.values():
        for cite in regimen.cites:
            try:
                library.resolve(cite)
            except KeyError as exc:
                raise RuleError(f"regimen {regimen.id}: citation {cite!r}: {exc.args[0]}",
                                file=regimen.file, line=regimen.line) from None
    for cls in rulebook.vocabulary.drug_classes.values():
        for cite in cls.adequate_trial_basis:
            try:
                library.resolve(cite)
            except KeyError as exc:
                raise RuleError(f"drug class {cls.name}: adequate_trial_basis {cite!r}: {exc.args[0]}",
                                file=rulebook.vocabulary.source) from None
