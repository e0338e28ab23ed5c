"""Errors that reach the user as one clear message and exit status 2.

Every error names where the problem is: a field path in a profile (`treatments[1].response`) or a
file and line in a rule or evidence file, so that the CLI can print it without a traceback.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: a profile, a rule file, an evidence file, a command-line value."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.rule = rule

    @property
    def location(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        parts = [p for p in (where, f"rule {self.rule}" if self.rule else "",
                             self.field or "") if p]
        return ": ".join(parts)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ProfileError(InputError):
    """A patient profile that is invalid or contradicts itself."""


class RuleError(InputError):
    """A rule file that does not parse or does not validate."""


class EvidenceError(InputError):
    """An evidence (seeds) file that does not parse or does not validate."""


class EngineError(Exception):
    """The rule engine failed in a way the input cannot explain (a bug, not bad input)."""
