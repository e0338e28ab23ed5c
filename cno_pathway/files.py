"""Replacing a file atomically: the one way the CLI (`-o`) and the diagram (`--embed`) write.

The text goes to a temporary file beside the target, takes the mode asked for and is renamed
over the target, so a reader never sees half a file and a failure leaves the target as it was.
Errors stay OSError: each caller says in its own words what could not be written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(target: Path, text: str, mode: int) -> None:
    """Write `text` as UTF-8 over `target` (a path, not a symlink: callers resolve links)."""
    target = Path(target)
    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                                       prefix=f".{target.name}.", suffix=".partial")
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(text.encode("utf-8"))
        os.replace(tmp, target)
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
