"""A rule or evidence folder is checked before anything in it is read.

Both the rule base (rulebook.py) and the evidence library (evidence.py) use this check, so it
lives below both of them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InputError, RuleError
from ..yamlio import MAX_BYTES, short_label


MAX_FOLDER_FILES = 2000


def check_folder(directory: Path, required: tuple[str, ...], what: str,
                 error: type[InputError] = RuleError) -> list[Path]:
    """The files of a rule or evidence folder, checked before any is read.

    It must be a folder holding `required` as regular files (so `--rules /` or a home folder is
    refused at once, not digested), with a bounded number of entries; every *.yaml in it must
    be a regular file within the size limit (a FIFO or a device would hang or flood a read)."""
    directory = Path(directory)
    label = str(directory)
    a_what = ("an " if what[0] in "aeiou" else "a ") + what
    if not directory.is_dir():
        raise error(f"{what} folder not found", file=label)
    try:
        with os.scandir(directory) as listing:
            entries = []
            for entry in listing:
                entries.append(Path(entry.path))
                if len(entries) > MAX_FOLDER_FILES:
                    raise error(f"not {a_what} folder: more than {MAX_FOLDER_FILES} entries", file=label)
    except OSError as exc:
        raise error(f"cannot read the {what} folder: {exc.strerror or exc}", file=label) from None
    names = {p.name for p in entries}
    for name in required:
        if name not in names:
            raise error(f"not {a_what} folder: it has no {name} ({a_what} folder holds "
                        f"{', '.join(required)} and *.yaml files)", file=label)
    files = []
    for path in sorted(entries):
        try:
            info = path.stat()
        except OSError:
            if path.suffix == ".yaml" or path.name in required:
                raise error("cannot read (a broken link?)", file=short_label(path)) from None
            continue
        regular = stat.S_ISREG(info.st_mode)
        if path.suffix == ".yaml" or path.name in required:
            if not regular:
                raise error("not a regular file (a FIFO, device, socket or folder named *.yaml "
                            "is never read)", file=short_label(path))
        if regular:
            if info.st_size > MAX_BYTES:
                raise error(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                            file=short_label(path))
            files.append(path)
    return files
