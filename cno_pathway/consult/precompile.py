"""Compile the templates to Python inside the package, once, at install time (`make install`).

`python -m cno_pathway.consult.precompile` writes, for every template and both environments
(plain and autoescaped), the module jinja2 generates for it into consult/_templates/, under the
key render.module_file gives; `make install` then byte-compiles the package, these modules
included. Modules of an earlier key (an edited template, another jinja2) are removed. Nothing
here runs in a consult: a consult only looks the module up by its key (render.PackagedLoader)
and compiles from source when it is not there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..resources import templates_dir
from .render import PRECOMPILED, make_environment, module_file


def precompile(target: Path = PRECOMPILED, directory: Path | None = None) -> list[Path]:
    """Write the modules; return their paths (sorted). Old t_*.py files in `target` go."""
    directory = templates_dir() if directory is None else Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for autoescape in (False, True):
        env = make_environment(autoescape, directory, None)
        for name in env.list_templates(filter_func=lambda n: n.endswith(".j2")):
            source, filename, _ = env.loader.get_source(env, name)
            code = env.compile(source, name, filename, raw=True)
            path = target / module_file(env, name, source)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(code, encoding="utf-8")  # as generated: its line table stays right
            os.replace(tmp, path)
            written.append(path)
    keep = {p.name for p in written}
    for old in target.glob("t_*.py"):
        if old.name not in keep:
            old.unlink()
            for cached in (target / "__pycache__").glob(f"{old.stem}.*.pyc"):
                cached.unlink()
    return sorted(written)


def main() -> None:
    written = precompile()
    print(f"cno-pathway: {len(written)} template modules in {PRECOMPILED}", file=sys.stderr)


if __name__ == "__main__":
    main()
