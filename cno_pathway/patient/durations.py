"""How long a treatment was given, as people say it: `10d`, `3w`, `4m`, `1y` (a bare number is
months). The profile file keeps `months` (other tools write it); this turns the short forms of
the flag and interactive routes into months, and months back into words for people."""

from __future__ import annotations

import re

DAYS_PER_MONTH = 365.25 / 12  # the mean calendar month
_UNITS = {"d": 1 / DAYS_PER_MONTH, "day": 1 / DAYS_PER_MONTH, "days": 1 / DAYS_PER_MONTH,
          "w": 7 / DAYS_PER_MONTH, "wk": 7 / DAYS_PER_MONTH, "week": 7 / DAYS_PER_MONTH,
          "weeks": 7 / DAYS_PER_MONTH,
          "m": 1.0, "mo": 1.0, "month": 1.0, "months": 1.0,
          "y": 12.0, "yr": 12.0, "year": 12.0, "years": 12.0}
# a plain decimal: no sign, no leading zeros, no exponent, hex, underscores or sexagesimal
_DURATION = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?\s*([a-z]*)")

EXAMPLES = "10d, 3w, 4m or 1y; a bare number is months"


def parse_duration(text: str) -> float:
    """'3w' -> months (0.69); '4' -> 4.0. Raises ValueError with what is accepted."""
    raw = str(text).strip().lower()
    found = _DURATION.fullmatch(raw)
    if not found or (found.group(3) and found.group(3) not in _UNITS):
        shown = str(text)[:40]
        raise ValueError(f"{shown!r} is not a duration (write {EXAMPLES})")
    number = float(found.group(1) + (found.group(2) or ""))
    months = number * _UNITS[found.group(3) or "m"]
    return round(months, 4)


def duration_words(months: float) -> str:
    """Months in the unit a person would use: '10 days', '3 weeks', '4 months'."""
    days = months * DAYS_PER_MONTH
    if months < 1:  # under a month: never "0.9 months"
        whole = round(days)
        if whole == 0 and months > 0:
            return "under 1 day"
        if whole % 7 == 0 and whole >= 7:
            weeks = whole // 7
            return f"{weeks} week{'s' if weeks != 1 else ''}"
        return f"{whole} day{'s' if whole != 1 else ''}"
    shown = f"{months:.1f}".rstrip("0").rstrip(".")
    return f"{shown} month{'s' if shown != '1' else ''}"
