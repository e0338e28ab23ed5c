"""Consults for a cohort: JSON Lines in, JSON Lines (or a summary) out, streaming.

One profile a line. A bad line is reported with its line number and does not stop the others;
memory stays flat because nothing is kept per patient (the summary keeps only counters).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Iterator

from .consult import Pathway
from ..errors import InputError, ProfileError
from ..patient.intake import profile_from_data

MAX_LINE_BYTES = 1024 * 1024


@dataclass
class BatchResult:
    ok: int = 0
    failed: int = 0
    stages: Counter = field(default_factory=Counter)
    suggestions: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    outside: int = 0


def _reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_line(text: str) -> dict:
    data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    for value in _numbers(data):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("numbers must be finite")
    return data


def _numbers(node) -> Iterator:
    if isinstance(node, dict):
        for v in node.values():
            yield from _numbers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _numbers(v)
    else:
        yield node


def run_batch(pathway: Pathway, lines: IO[bytes], source: str, *, on_result, on_error,
              summary: BatchResult | None = None) -> BatchResult:
    """Consult each line; `on_result(consult)` and `on_error(InputError)` receive the outcomes."""
    result = summary or BatchResult()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            if len(raw) > MAX_LINE_BYTES:
                raise ProfileError(f"line longer than {MAX_LINE_BYTES} bytes", file=source, line=number)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ProfileError("not valid UTF-8 text", file=source, line=number) from None
            try:
                data = parse_line(text)
            except (ValueError, RecursionError) as exc:
                raise ProfileError(f"not a JSON profile: {exc}", file=source, line=number) from None
            try:
                profile = profile_from_data(data, pathway.vocabulary, source=source)
            except ProfileError as exc:
                exc.line = number
                raise
            consult = pathway.consult(profile)
        except InputError as exc:
            result.failed += 1
            on_error(exc)
            continue
        result.ok += 1
        result.stages.update(consult.stage)
        result.suggestions.update(s.rule for s in consult.suggestions)
        result.kinds.update(s.kind for s in consult.suggestions)
        result.outside += consult.outside_pathway is not None
        on_result(consult)
    return result
