"""Teaching cases (examples/*.yaml, shipped inside the wheel): a profile plus what it teaches
and what it must produce.

A case file holds `title`, `source` (evidence ids it is built from), `teaches`, `expect`
(the stages and the exact set of suggestion rules the consult must give) and `profile`.
`cno-pathway consult CASE.yaml` reads the profile part, so a case is also a valid input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, ProfileError
from ..patient.profile import PatientProfile, validate_profile
from ..resources import examples_dir
from ..knowledge.vocabulary import Vocabulary
from ..patient.intake import CaseView, is_case
from ..terminal import clean, did_you_mean
from ..yamlio import Document, read_document, short_label


@dataclass
class Case:
    name: str
    title: str
    source: list[str]
    teaches: str
    expect_stage: list[str]
    expect_suggestions: list[str]
    profile_data: dict
    document: Document
    path: Path

    def profile(self, vocabulary: Vocabulary) -> PatientProfile:
        return validate_profile(self.profile_data, vocabulary, document=CaseView(self.document, "profile"),
                                source=self.document.source)


def load_case(path: Path) -> Case:
    doc = read_document(path, error=ProfileError, label=short_label(path))
    data = doc.data
    if not is_case(data):
        raise InputError("a teaching case needs title, source, teaches, expect and profile",
                         file=doc.source)
    expect = data.get("expect") or {}
    if not isinstance(expect, dict) or set(expect) - {"stage", "suggestions"}:
        raise InputError("expect holds `stage` and `suggestions` lists", file=doc.source,
                         line=doc.line(("expect",)))
    return Case(name=path.stem, title=str(data.get("title", path.stem)),
                source=list(data.get("source") or []), teaches=str(data.get("teaches", "")),
                expect_stage=list(expect.get("stage") or []),
                expect_suggestions=list(expect.get("suggestions") or []),
                profile_data=data["profile"], document=doc, path=path)


def case_paths(directory: Path | None = None) -> list[Path]:
    directory = directory or examples_dir()
    return sorted(directory.glob("*.yaml")) if directory else []


def load_cases(directory: Path | None = None) -> list[Case]:
    return [load_case(p) for p in case_paths(directory)]


def find_case(name: str, directory: Path | None = None) -> Case:
    for path in case_paths(directory):
        if path.stem == name:
            return load_case(path)
    names = [p.stem for p in case_paths(directory)]
    raise InputError(f"unknown teaching case {clean(name)[:80]!r}{did_you_mean(name, names)} "
                     f"(known: {', '.join(names) or 'none'})")
