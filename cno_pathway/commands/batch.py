"""`cno-pathway batch FILE`: consults for a cohort in JSON Lines."""

from __future__ import annotations

import os
import signal
import stat
import sys
import time

import click

from ..consult.batch import BatchResult, LineReader, run_batch
from ..errors import InputError
from .common import formulary_option, load_pathway, rules_option

SMALL_INPUT_BYTES = 256 * 1024


@click.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--summary", is_flag=True, help="Print counts of stages and suggestions instead of consults.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: the cores this process may use; one for a file "
                   "under 256 KiB). "
                   "The output is the same, in input order, for any number.")
@click.option("--dask", "dask_address", metavar="ADDRESS|local", default=None,
              help="Consult on a Dask cluster: a scheduler address, or 'local' for a local "
                   "cluster of processes (needs: pip install 'cno-pathway[cluster]').")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress line on standard error (default: when it is a terminal).")
@rules_option
@formulary_option
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="For lines that are FHIR Bundles: count ages and treatment months to this "
                   "day instead of today.")
def batch(file, summary, jobs, dask_address, progress, rules_dir, formulary, as_of):
    """Consult every profile of a JSON Lines FILE ('-' reads standard input).

    Writes one JSON consult a line. A bad line is reported on standard error with its line
    number and the others go on; the exit status is 2 when any line failed, 130 after Ctrl-C
    (the line under way is finished and the counts are printed).
    """
    from ..consult.parallel import available_cores

    if dask_address is not None and jobs is not None:
        raise click.UsageError("--jobs and --dask exclude each other (Dask sizes its own workers)")
    if dask_address is not None and as_of is not None:
        raise click.UsageError("--as-of is not passed to Dask workers; use --jobs")
    pathway = load_pathway(rules_dir, formulary)   # checks the rule base before any worker starts
    source = "<stdin>" if file == "-" else file
    try:
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=file) from None
    size = _size_of(stream)
    if jobs is None:
        # a small file is done before workers would have loaded the rule base
        jobs = 1 if size is not None and size < SMALL_INPUT_BYTES else available_cores()
    reader = LineReader(stream)
    if progress is None:
        progress = _is_terminal(sys.stderr)
    bar = _Progress(reader, size) if progress else None
    out = sys.stdout.buffer
    sys.stdout.flush()

    def emit(outcome):
        if outcome.error is not None:
            if bar:
                bar.clear()
            sys.stderr.write(f"cno-pathway: error: {outcome.error}\n")
        elif outcome.payload is not None:
            write_all(out, outcome.payload)
        if bar:
            bar.tick()

    from ..interop import reading_as_of

    interrupt = _Interrupt(reader)
    result = BatchResult()
    try:
        # forked workers inherit the day; Dask workers would not, so --as-of refuses --dask
        with stream, interrupt, reading_as_of(as_of.date() if as_of else None):
            try:
                if dask_address is not None:
                    from ..consult.cluster import ClusterUnavailable, run_dask

                    try:
                        run_dask(reader, source, address=dask_address, rules_dir=rules_dir,
                                 formulary=formulary,
                                 emit=emit, write_json=not summary, stop=interrupt.requested,
                                 result=result)
                    except ClusterUnavailable as exc:
                        click.echo(f"cno-pathway: error: {exc}", err=True)
                        sys.exit(1)
                elif jobs == 1:
                    run_batch(pathway, reader, source, emit=emit, write_json=not summary,
                              stop=interrupt.requested, result=result)
                else:
                    from ..consult.parallel import run_parallel

                    run_parallel(reader, source, jobs=jobs, rules_dir=rules_dir, formulary=formulary,
                                 emit=emit,
                                 write_json=not summary, stop=interrupt.requested, result=result,
                                 ready=reader.ready, pathway=pathway)
            except KeyboardInterrupt:   # raised only while waiting for input: nothing is lost
                result.interrupted = True
            if bar:
                bar.clear()
            out.flush()
            if summary:
                click.echo(_summary_table(result, pathway))
    except BrokenPipeError:
        _stdout_gone()
        if result.failed:
            click.echo(f"cno-pathway: output closed; {_failed_line(result)}", err=True)
            sys.exit(2)
        sys.exit(0)
    result.interrupted |= interrupt.seen
    if result.interrupted:
        click.echo(f"cno-pathway: interrupted after {result.ok + result.failed} lines "
                   f"({result.ok} consulted, {result.failed} failed)", err=True)
        sys.exit(130)
    if result.failed:
        click.echo(f"cno-pathway: {_failed_line(result)}", err=True)
        sys.exit(2)


def write_all(out, data: bytes) -> None:
    """Write every byte of `data`. A buffered writer blocked on a full pipe can return a short
    count when a signal arrives (our Ctrl-C handler lets the line under way finish, so nothing
    raises): the rest is written too, or the last line would be cut."""
    view = memoryview(data)
    while view:
        written = out.write(view)
        if written is None:            # a non-blocking stream took nothing: wait until it can
            import select

            select.select([], [out], [])
            continue
        view = view[written:]


def _failed_line(result: BatchResult) -> str:
    return f"{result.failed} of {result.ok + result.failed} lines failed"


def _stdout_gone():
    """The reader of our output went away: later writes (and Python's own flush at exit) go
    nowhere instead of failing again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _Interrupt:
    """Ctrl-C asks the batch to stop after the line under way; while the reader waits for input
    (a terminal, a slow pipe) it stops at once, since no line is under way then."""

    def __init__(self, reader):
        self.reader = reader
        self.seen = False
        self._previous = None

    def requested(self) -> bool:
        return self.seen

    def _handler(self, signum, frame):
        self.seen = True
        if getattr(self.reader, "waiting", False):
            raise KeyboardInterrupt

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:          # not the main thread (a test runner): no handler
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _size_of(stream) -> int | None:
    """The input's size when it is a regular file (then the time left can be told)."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, AttributeError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) and info.st_size else None


class _Progress:
    """One line on standard error: count, rate, and with a known size the share done and the
    time left (from the bytes read so far). Redrawn at most five times a second."""

    def __init__(self, reader, total_bytes: int | None):
        self.reader = reader
        self.total = total_bytes
        self.count = 0
        self.start = self.last = time.monotonic()
        self.shown = False

    def tick(self):
        self.count += 1
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.last = now
            self.draw(now)

    def draw(self, now):
        elapsed = max(now - self.start, 1e-6)
        text = f"{self.count} lines, {self.count / elapsed:.0f}/s"
        done = self.reader.consumed
        if self.total and done:
            share = min(done / self.total, 1.0)
            left = elapsed * (1 - share) / share if share > 0 else 0
            text += f", {share * 100:.0f}%, {_duration(left)} left"
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _summary_table(result: BatchResult, pathway) -> str:
    lines = [f"profiles consulted: {result.ok}", f"profiles failed:    {result.failed}",
             f"outside the pathway: {result.outside}", "", "stages:"]
    for stage in pathway.vocabulary.stages:
        if result.stages[stage]:
            lines.append(f"  {result.stages[stage]:>8}  {stage}")
    lines += ["", "suggestions by kind:"]
    for kind, count in sorted(result.kinds.items()):
        lines.append(f"  {count:>8}  {kind}")
    lines += ["", "suggestions by rule:"]
    for rule, count in sorted(result.suggestions.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {count:>8}  {rule}")
    return "\n".join(lines)
