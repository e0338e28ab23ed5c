"""Where the rule base, the evidence library and the templates live.

In a wheel they ship inside the package (`cno_pathway/_data/...`); in a checkout or an editable
install they sit at the project's top level. `--rules DIR` or CNO_PATHWAY_RULES points a rule
author at another rule folder.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ folder of cno-pathway "
                            f"(looked in {_PACKAGE / '_data'} and {_PACKAGE.parent})")


def rules_dir(override: str | os.PathLike | None = None) -> Path:
    chosen = override or os.environ.get("CNO_PATHWAY_RULES")
    return Path(chosen) if chosen else _data_dir("rules")


def builtin_rules_dir() -> Path:
    """The rule base that ships with the program (whatever --rules or the environment say)."""
    return _data_dir("rules")


def seeds_dir(override: str | os.PathLike | None = None) -> Path:
    chosen = override or os.environ.get("CNO_PATHWAY_SEEDS")
    return Path(chosen) if chosen else _data_dir("seeds")


def templates_dir() -> Path:
    return _data_dir("templates")


def examples_dir() -> Path | None:
    """Teaching cases: inside the package in a wheel (`cno_pathway/_data/examples`), beside it in
    a checkout; None if neither is there."""
    try:
        return _data_dir("examples")
    except FileNotFoundError:
        return None
