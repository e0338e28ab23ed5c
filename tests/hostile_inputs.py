"""The very large hostile profiles, generated rather than stored: the hostile-input tests assert
how each is refused, and the benchmarks time the refusals (wall time and peak memory)."""

from __future__ import annotations

from pathlib import Path

HOSTILE = Path(__file__).resolve().parent / "hostile"


def generated_profiles() -> dict[str, tuple[bytes, list[str]]]:
    """name -> (file content, texts the one-line refusal must contain)."""
    head = "age_years: 12\ndiagnosis: cno\nlesions: {count: 3}\n"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
    treatments = head + "treatments:\n" + "".join(
        "  - {drug: naproxen, months: 1, response: none}\n" for _ in range(10_000))
    return {
        "alias-bomb.yaml": (bomb.encode(), ["alias-bomb.yaml", "refused"]),
        # Refused on line 1 whoever notices first: libyaml's own depth limit (its wording varies
        # between PyYAML releases, so it is not asserted) or ours, asserted just below
        "deep-flow.yaml": (("a: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
                           ["deep-flow.yaml:1"]),
        "deep-flow-65.yaml": (("a: " + "[" * 65 + "]" * 65 + "\n").encode(),
                              ["deep-flow-65.yaml:1", "nested more than 64 levels"]),
        # a 1 MB string reused by 400 treatments: did-you-mean and messages see a bounded prefix
        "megabyte-alias.yaml": ((head + "treatments:\n  - {drug: &big " + "x" * 1024 * 1024
                                 + ", months: 1, response: none}\n"
                                 + "  - {drug: *big, months: 1, response: none}\n" * 399).encode(),
                                ["megabyte-alias.yaml:5", "treatments[0].drug", "1048576 characters"]),
        "deep-block.yaml": ("".join("  " * i + f"k{i}:\n" for i in range(200)).encode(),
                            ["deep-block.yaml", "nested"]),
        "ten-thousand-treatments.yaml": (treatments.encode(), ["treatments", "1000"]),
        "huge-file.yaml": ((head + "id: " + "x" * (21 * 1024 * 1024) + "\n").encode(),
                           ["huge-file.yaml", "MiB"]),
    }


def stored_profiles() -> list[Path]:
    """The hostile profiles kept in tests/hostile/profiles."""
    return sorted((HOSTILE / "profiles").iterdir())
