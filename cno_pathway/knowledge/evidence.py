"""The evidence library (seeds/): sources, passage-level findings, quotes and quality grades.

Each source file is parsed into typed records with file:line errors; a citation
`source-id#finding-id` resolves to its finding. The grading scheme (seeds/grading.yaml) says
which quality each study design earns, and a source's quality must agree with its design.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .folders import check_folder
from ..errors import EvidenceError
from ..yamlio import Document, bounded, knowledge_snapshot, read_document

GRADING_FILE = "grading.yaml"
POPULATIONS = ("pediatric", "adult", "mixed")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SOURCE_KEYS = {"id", "authors", "title", "venue", "year", "doi", "url", "document",
                "known_through", "design", "population", "n", "quality", "findings"}
_FINDING_KEYS = {"id", "topic", "statement", "quote", "locator", "numbers"}


@dataclass(frozen=True)
class Finding:
    """One quoted passage of a source, with its locator."""

    id: str
    source: str
    topic: str
    statement: str
    quote: str
    locator: str
    numbers: dict
    line: int | None

    @property
    def citation(self) -> str:
        return f"{self.source}#{self.id}"


@dataclass
class Source:
    """One source of the evidence library: reference, design, population, findings."""

    id: str
    authors: list[str]
    title: str
    venue: str
    year: int | None
    doi: str | None
    url: str | None
    document: str
    known_through: str | None
    design: str
    population: str
    n: int | None
    quality: str
    findings: dict[str, Finding]
    file: str

    def reference(self, library: "EvidenceLibrary | None" = None) -> str:
        """'Schnabel A, Range U, et al. Title. J Rheumatol 2017;44:1058-65.' (+ 'as reported in')."""
        authors = ", ".join(self.authors[:3]) + (", et al." if len(self.authors) > 3 else "")
        parts = [p for p in (authors, self.title, self.venue) if p]
        text = ". ".join(p.rstrip(".") for p in parts) + "."
        if self.known_through:
            via = library.sources.get(self.known_through) if library else None
            text += f" As reported in: {via.reference() if via else self.known_through}"
        return text


@dataclass
class GradingScheme:
    """The evidence grades (seeds/grading.yaml) and what each means."""

    scheme: str
    reference: str
    grades: dict[str, str]          # strongest first
    designs: dict[str, str]
    topics: list[str]

    def rank(self, grade: str) -> int:
        """0 for the strongest grade; larger is weaker."""
        return list(self.grades).index(grade)

    def meaning(self, grade: str) -> str:
        return self.grades.get(grade, "")


@dataclass
class EvidenceLibrary:
    """Every source of seeds/, by id, and the grading scheme."""

    sources: dict[str, Source]
    grading: GradingScheme
    directory: Path
    finding_count: int = field(default=0)

    def resolve(self, citation: str) -> tuple[Source, Finding]:
        """'schnabel-2017#naproxen-dose' -> (source, finding), or KeyError naming what is missing."""
        source_id, _, finding_id = citation.partition("#")
        source = self.sources.get(source_id)
        if source is None:
            raise KeyError(f"unknown source {source_id!r}")
        finding = source.findings.get(finding_id)
        if finding is None:
            raise KeyError(f"source {source_id!r} has no finding {finding_id!r}")
        return source, finding

    def findings(self) -> list[Finding]:
        return [f for s in self.sources.values() for f in s.findings.values()]


def check_seed_folder(directory: Path) -> list[Path]:
    """An evidence folder is checked before anything in it is read (see folders.check_folder)."""
    return check_folder(Path(directory), (GRADING_FILE,), "evidence", EvidenceError)


def load_library(directory: Path) -> EvidenceLibrary:
    directory = Path(directory)
    check_seed_folder(directory)
    with knowledge_snapshot():
        return _load_library(directory)


def _load_library(directory: Path) -> EvidenceLibrary:
    grading = _load_grading(read_document(directory / GRADING_FILE, error=EvidenceError,
                                          label=f"{directory.name}/{GRADING_FILE}", regular_only=True))
    sources: dict[str, Source] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name == GRADING_FILE:
            continue
        doc = read_document(path, error=EvidenceError, label=f"{directory.name}/{path.name}",
                            regular_only=True)
        source = _parse_source(doc, grading, path.stem)
        if source.id in sources:
            raise EvidenceError(f"duplicate source id {source.id!r}", file=doc.source, line=doc.line(("id",)))
        sources[source.id] = source
    for source in sources.values():
        if source.known_through and source.known_through not in sources:
            raise EvidenceError(f"known_through names unknown source {source.known_through!r}",
                                file=source.file)
    library = EvidenceLibrary(sources=dict(sorted(sources.items())), grading=grading,
                              directory=directory)
    library.finding_count = sum(len(s.findings) for s in sources.values())
    return library


def _load_grading(doc: Document) -> GradingScheme:
    data = doc.data

    def fail(message, path=()):
        raise EvidenceError(message, file=doc.source, line=doc.line(path))

    if not isinstance(data, dict):
        fail("grading.yaml must be a mapping")
    for key in data:
        if key not in {"scheme", "reference", "grades", "designs", "topics"}:
            fail(f"unknown key {bounded(key)}", (key,))
    for key in ("scheme", "reference"):
        if not isinstance(data.get(key, ""), str):
            fail(f"{key} must be text", (key,))
    grades = data.get("grades")
    if not isinstance(grades, dict) or not grades or not all(isinstance(v, str) for v in grades.values()):
        fail("grades must map each grade to its meaning (text)", ("grades",))
    designs = data.get("designs")
    if not isinstance(designs, dict):
        fail("designs must map each study design to the quality it earns", ("designs",))
    for design, quality in designs.items():
        if not isinstance(quality, str) or quality not in grades:
            fail(f"design {bounded(design)} earns unknown grade {bounded(quality)}", ("designs", design))
    topics = data.get("topics") or []
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        fail("topics must be a list of names", ("topics",))
    return GradingScheme(scheme=str(data.get("scheme", "")), reference=str(data.get("reference", "")),
                         grades={str(k): str(v) for k, v in grades.items()},
                         designs=dict(designs), topics=[str(t) for t in topics])


def _parse_source(doc: Document, grading: GradingScheme, stem: str) -> Source:
    data = doc.data

    def fail(message, path=()):
        raise EvidenceError(message, file=doc.source, line=doc.line(path))

    if not isinstance(data, dict):
        fail("a source file is a mapping (id, authors, title, ..., findings)")
    for key in data:
        if key not in _SOURCE_KEYS:
            fail(f"unknown key {bounded(key)} (allowed: {', '.join(sorted(_SOURCE_KEYS))})", (key,))
    for key in ("id", "title", "document", "design", "population", "quality", "findings"):
        if key not in data:
            fail(f"missing required key {key!r}")
    sid = data["id"]
    if not isinstance(sid, str) or not _ID.match(sid):
        fail(f"source id {bounded(sid)} is malformed (lowercase words joined by '-')", ("id",))
    if sid != stem:
        fail(f"source id {sid!r} must equal the file name {stem!r}", ("id",))
    for key in ("title", "document", "venue", "doi", "url", "known_through"):
        value = data.get(key)
        if not isinstance(value, str) and not (value is None and key not in ("title", "document")):
            fail(f"{key} must be text", (key,))
    design = data["design"]
    if not isinstance(design, str) or design not in grading.designs:
        fail(f"design {bounded(design)} is not in grading.yaml (allowed: {', '.join(grading.designs)})", ("design",))
    if data["quality"] != grading.designs[design]:
        fail(f"quality {bounded(data['quality'])} disagrees with design {design!r}, which earns "
             f"{grading.designs[design]!r}", ("quality",))
    if data["population"] not in POPULATIONS:
        fail(f"population must be one of {', '.join(POPULATIONS)}", ("population",))
    n = data.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        fail("n must be a whole number of patients, or null", ("n",))
    authors = data.get("authors") or []
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        fail("authors must be a list of names", ("authors",))
    year = data.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        fail("year must be a whole number, or null", ("year",))
    findings: dict[str, Finding] = {}
    raw_findings = data["findings"]
    if not isinstance(raw_findings, list):
        fail("findings must be a list", ("findings",))
    for i, raw in enumerate(raw_findings):
        p = ("findings", i)
        if not isinstance(raw, dict):
            fail("a finding is a mapping with id, topic, statement, quote, locator", p)
        for key in raw:
            if key not in _FINDING_KEYS:
                fail(f"unknown key {bounded(key)} in a finding (allowed: {', '.join(sorted(_FINDING_KEYS))})", p + (key,))
        fid = raw.get("id")
        if not isinstance(fid, str) or not _ID.match(fid):
            fail(f"finding id {bounded(fid)} is malformed (lowercase words joined by '-')", p + ("id",))
        if fid in findings:
            fail(f"duplicate finding id {fid!r}", p + ("id",))
        for key in ("statement", "quote", "locator"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                fail(f"finding {fid!r} needs a non-empty {key}", p + (key,))
        topic = raw.get("topic")
        if grading.topics and (not isinstance(topic, str) or topic not in grading.topics):
            fail(f"finding {fid!r}: topic {bounded(topic)} is not in grading.yaml's topics", p + ("topic",))
        numbers = raw.get("numbers") or {}
        if not isinstance(numbers, dict) or not all(
                isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in numbers.values()):
            fail(f"finding {fid!r}: numbers must map names to numbers or text", p + ("numbers",))
        findings[fid] = Finding(id=fid, source=sid, topic=str(topic or ""),
                                statement=raw["statement"].strip(), quote=" ".join(raw["quote"].split()),
                                locator=raw["locator"].strip(), numbers=dict(numbers),
                                line=doc.line(p))
    return Source(id=sid, authors=list(authors), title=str(data["title"]), venue=str(data.get("venue") or ""),
                  year=year, doi=data.get("doi"), url=data.get("url"), document=str(data["document"]),
                  known_through=data.get("known_through"), design=design,
                  population=data["population"], n=n, quality=data["quality"], findings=findings,
                  file=doc.source)
