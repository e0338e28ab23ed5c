"""Consults for a cohort: JSON Lines in, JSON Lines (or a summary) out, streaming.

One profile a line. A bad line is reported with its line number and does not stop the others;
memory stays flat because nothing is kept per patient (the summary keeps only counters) and a
line is limited while it is read, never after (`batch /dev/zero` must not fill the memory).

The work of one line is `consult_line`: the same function runs in this process (`--jobs 1`) and
in worker processes (consult/parallel.py), and returns a small `Outcome` (the finished JSON
bytes, or the error message, plus what the summary counts), so every route writes the same bytes.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator, NamedTuple

from ..errors import InputError, ProfileError
from ..patient.intake import profile_from_data
from .jsonout import dumps_consult

MAX_LINE_BYTES = 1024 * 1024
# a line over the limit is skipped up to its end; input with no line end for this long (a device
# such as /dev/zero, a binary file) is not a JSON Lines file, and the rest of it is not read
MAX_SKIP_BYTES = 64 * 1024 * 1024
_SKIP_CHUNK = 64 * 1024

TOO_LONG = "too long"        # markers read_lines yields instead of a line's bytes
GAVE_UP = "gave up"


class Outcome(NamedTuple):
    """What one line gave: small and picklable, so workers can send it back."""

    number: int
    error: str | None = None             # the message (with file:line) when the line failed
    payload: bytes | None = None         # the consult as one JSON line, when asked for
    stages: tuple = ()
    rules: tuple = ()
    kinds: tuple = ()
    outside: bool = False


@dataclass
class BatchResult:
    ok: int = 0
    failed: int = 0
    stages: Counter = field(default_factory=Counter)
    suggestions: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    outside: int = 0
    interrupted: bool = False
    stopped: str | None = None       # why the input was not read to its end, if it was not

    def add(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            self.failed += 1
            return
        self.ok += 1
        self.stages.update(outcome.stages)
        self.suggestions.update(outcome.rules)
        self.kinds.update(outcome.kinds)
        self.outside += outcome.outside


class LineReader:
    """Numbered lines of a binary stream, each limited while it is read. Yields (number, bytes)
    or (number, TOO_LONG) for a line over the limit (skipped to its end), and (number, GAVE_UP)
    last when no line end came within MAX_SKIP_BYTES. `consumed` counts bytes read (progress).

    It keeps its own buffer (read1: what is there, at most one read of the file), so that
    `ready()` can tell whether the next line is available without waiting: the parallel route
    hands out a short chunk rather than wait for a slow pipe to fill a long one."""

    def __init__(self, stream: IO[bytes], *, limit: int = MAX_LINE_BYTES,
                 skip_limit: int = MAX_SKIP_BYTES):
        self.stream = stream
        self.limit = limit
        self.skip_limit = skip_limit
        self.consumed = 0
        self.number = 0
        self.waiting = False     # True while blocked reading: Ctrl-C may stop at once then
        self._buffer = b""
        self._pos = 0
        self._eof = False
        read1 = getattr(stream, "read1", None)
        self._read = read1 if read1 is not None else stream.read
        try:
            self._fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def _more(self) -> bytes:
        self.waiting = True
        try:
            chunk = self._read(_SKIP_CHUNK)
        finally:
            self.waiting = False
        self.consumed += len(chunk)
        if not chunk:
            self._eof = True
        return chunk

    def ready(self) -> bool:
        """True when the next line (or the end) can be had without waiting for the writer."""
        if self._eof or self._fd is None or self._buffer.find(b"\n", self._pos) >= 0:
            return True
        import select

        try:
            return bool(select.select([self._fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def __iter__(self) -> Iterator[tuple[int, bytes | str]]:
        limit = self.limit
        while True:
            buffer, pos = self._buffer, self._pos
            end = buffer.find(b"\n", pos)
            if end < 0 and len(buffer) - pos <= limit and not self._eof:
                chunk = self._more()
                self._buffer, self._pos = buffer[pos:] + chunk, 0
                continue
            if end < 0:
                if pos == len(buffer):
                    return                                  # the end, nothing pending
                if len(buffer) - pos <= limit:              # a last line without a line end
                    end = len(buffer) - 1
                else:
                    self.number += 1
                    self._buffer, self._pos = b"", 0
                    if not self._skip_rest():
                        yield self.number, GAVE_UP
                        return
                    yield self.number, TOO_LONG
                    continue
            self._pos = end + 1
            self.number += 1
            if end - pos > limit:
                yield self.number, TOO_LONG
                continue
            raw = buffer[pos:end + 1]
            if raw.isspace():
                continue
            yield self.number, raw

    def _skip_rest(self) -> bool:
        """Read up to the end of an over-long line; False when it did not end in time."""
        skipped = 0
        while skipped < self.skip_limit:
            chunk = self._more()
            if not chunk:
                return True
            end = chunk.find(b"\n")
            if end >= 0:
                self._buffer, self._pos = chunk[end + 1:], 0
                return True
            skipped += len(chunk)
        return False


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
    """A line as JSON (RFC 8259: no NaN or Infinity, no duplicate keys, finite numbers)."""
    infinite = []

    def number(literal: str) -> float:      # 1e999 reads as inf: noted, refused once parsed
        value = float(literal)
        if not math.isfinite(value):
            infinite.append(literal)
        return value
    data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant,
                      parse_float=number)
    if infinite:
        raise ValueError("numbers must be finite")
    return data


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # glibc's mallopt parameters
_heap_kept = False


def keep_heap() -> None:
    """Let the C heap keep what one consult frees for the next (once per process; glibc only).

    By default glibc gives freed memory at the top of the heap back to the system and serves
    blocks over 128 KiB (adjusted as it goes) from fresh mappings; a consult allocates and frees
    about half a megabyte, so every line of a batch paid about 130 page faults: a fifth of its
    CPU time, in the kernel. With both thresholds raised the heap stays at the size the largest
    line needed (peak memory does not grow: it only stops shrinking between lines)."""
    global _heap_kept
    if _heap_kept:
        return
    _heap_kept = True
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 * 1024 * 1024)
    except (ValueError, OSError, AttributeError):
        pass                 # not glibc: its allocator, its defaults


def consult_line(pathway, number: int, raw: bytes | str, source: str, *,
                 write_json: bool = True) -> Outcome:
    """Consult one line; bad input becomes an Outcome with the message, never an exception."""
    if not _heap_kept:
        keep_heap()
    try:
        if raw == TOO_LONG:
            raise ProfileError(f"line longer than {MAX_LINE_BYTES} bytes; skipped", file=source,
                               line=number)
        if raw == GAVE_UP:
            raise ProfileError(f"line longer than {MAX_LINE_BYTES} bytes and no line end within "
                               f"{MAX_SKIP_BYTES} bytes: not JSON Lines; the rest is not read",
                               file=source, line=number)
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
        return Outcome(number, error=str(exc))
    suggestions = consult.suggestions
    return Outcome(number, payload=dumps_consult(consult.to_json()) if write_json else None,
                   stages=tuple(consult.stage), rules=tuple(s.rule for s in suggestions),
                   kinds=tuple(s.kind for s in suggestions),
                   outside=consult.outside_pathway is not None)


def run_batch(pathway, lines: Iterator[tuple[int, bytes | str]], source: str, *,
              emit: Callable[[Outcome], None], write_json: bool = True,
              stop: Callable[[], bool] = lambda: False,
              result: BatchResult | None = None) -> BatchResult:
    """Consult numbered lines in this process, in order; `emit` receives each Outcome.
    `stop()` is asked before each line (Ctrl-C): the line under way is always finished."""
    result = result or BatchResult()
    for number, raw in lines:
        outcome = consult_line(pathway, number, raw, source, write_json=write_json)
        result.add(outcome)
        emit(outcome)
        if raw == GAVE_UP:
            result.stopped = GAVE_UP
            break
        if stop():
            result.interrupted = True
            break
    return result
