"""Options and helpers shared by the command modules."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..consult.consult import Pathway

FORMATS = ("text", "markdown", "html", "json")
_EXTENSIONS = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html",
               ".htm": "html", ".json": "json"}


def rules_option(func):
    """--rules DIR (or CNO_PATHWAY_RULES): another rule folder, for rule authors."""
    return click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="CNO_PATHWAY_RULES", show_envvar=True,
                        help="Rule folder to use instead of the built-in rule base.")(func)


def formulary_option(func):
    """--formulary FILE (or CNO_PATHWAY_FORMULARY): the hospital's maximum doses."""
    return click.option("--formulary", "formulary", type=click.Path(dir_okay=False, path_type=Path),
                        envvar="CNO_PATHWAY_FORMULARY", show_envvar=True,
                        help="Local formulary (YAML): per-drug maximum doses, each with its "
                             "reference; computed doses are capped at them. Default: "
                             "formulary.yaml beside the rules, if there is one.")(func)


@functools.lru_cache(maxsize=4)
def load_pathway(rules_dir: Path | None, formulary: Path | None = None) -> Pathway:
    return Pathway.load(rules_dir, formulary=formulary)


def pick_format(fmt: str | None, output: Path | None) -> str:
    if fmt:
        return fmt
    if output is not None:
        return _EXTENSIONS.get(output.suffix.lower(), "text")
    return "text"


def write_output(text: str, output: Path | None) -> None:
    """Write to a file (all at once, so a failure leaves no partial file) or to stdout."""
    if not text.endswith("\n"):
        text += "\n"
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    import os
    import tempfile

    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(dir=output.parent if str(output.parent) else ".",
                                       prefix=f".{output.name}.", suffix=".partial")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None


def use_colour(output: Path | None) -> bool:
    return output is None and sys.stdout.isatty()


class OutputError(click.ClickException):
    exit_code = 2
