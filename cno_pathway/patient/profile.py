"""The patient profile: the input contract, validated once, with errors that name the field.

The contract is declared in contract.py (pydantic models). Building those models costs a start-up
more than everything else a consult imports, so the consult validates with the core schema
pydantic builds from them, stored as data in profile_schema.json (stored_schema.py writes it;
tests/test_profile_schema.py checks it against the declaration). pydantic-core, which the
declaration runs on too, validates with it: same checks, same errors, same values. The result is
made of the light read-only records below, which offer what the program uses of a model
(attributes, `to_data`, `model_dump`, `model_fields`, `model_copy`).

When profile_schema.json does not match the declaration's sources (an edited contract.py before
`make profile-schema`), the schema is built from the declaration instead: slower, never stale.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import orjson
from pydantic_core import SchemaError, SchemaSerializer, SchemaValidator, ValidationError

from . import checks
from .checks import Contradiction
from ..errors import ProfileError
from ..knowledge.vocabulary import Vocabulary
from ..wording import plain_number
from ..yamlio import Document, bounded, field_name


class FieldShape(NamedTuple):
    """What a field holds, for the code that walks the contract: a sub-record (`model`), a list
    (`many`), or neither (a value)."""

    model: type | None
    many: bool


def _dump(value):
    if isinstance(value, Record):
        return value.model_dump()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _record(cls, fields: dict, fields_set=()):
    """An instance as pydantic-core builds one (its fields in __dict__, in declared order)."""
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class Record:
    """A validated, read-only part of a profile. pydantic-core fills the slots (the public
    `model` core schema takes any class); the fields are set by `profile_schema.json`."""

    __slots__ = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
    model_fields: dict[str, FieldShape] = {}

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only (validate a new profile)")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self):  # as a frozen model: fails if a field holds a list
        return hash((type(self),) + tuple(self.__dict__.values()))

    def __repr__(self):
        shown = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({shown})"

    def __reduce__(self):
        return (_record, (type(self), dict(self.__dict__), set(self.__pydantic_fields_set__)))

    def model_dump(self, mode: str = "python") -> dict:
        """The fields as plain data (the same in "python" and "json" mode: every value is a str,
        int, float, bool, None, list or record)."""
        if mode not in ("python", "json"):
            raise ValueError(f"mode must be 'python' or 'json', not {mode!r}")
        return {name: _dump(value) for name, value in self.__dict__.items()}

    def model_copy(self, *, update: dict | None = None):
        """A copy with some fields replaced, unvalidated (as pydantic's model_copy)."""
        fields = dict(self.__dict__)
        fields.update(update or {})
        return _record(type(self), fields, self.__pydantic_fields_set__ | set(update or ()))


class Lesions(Record):
    __slots__ = ()


class Activity(Record):
    __slots__ = ()


class Labs(Record):
    __slots__ = ()


class Treatment(Record):
    __slots__ = ()


class PatientProfile(Record):
    """One patient, as a clinician describes them (validated: see validate_profile)."""

    __slots__ = ()

    @classmethod
    def model_validate(cls, data: Any, *, context: dict | None = None) -> PatientProfile:
        return _VALIDATOR.validate_python(data, context=context)

    def model_dump(self, mode: str = "python") -> dict:
        """pydantic-core's serializer of the same schema: as the model dumps, twice as fast as
        the records' own walk (the consult's JSON echoes the profile)."""
        if mode not in ("python", "json"):
            raise ValueError(f"mode must be 'python' or 'json', not {mode!r}")
        return _SERIALIZER.to_python(self, mode=mode)

    def to_data(self) -> dict:
        """The validated profile as plain data (what the JSON output echoes)."""
        return _SERIALIZER.to_python(self, mode="json")


_RECORDS = {cls.__name__: cls for cls in (PatientProfile, Lesions, Activity, Labs, Treatment)}


def _shape(schema: dict) -> FieldShape:
    many = False
    while True:
        kind = schema["type"]
        if kind == "model":
            return FieldShape(schema["cls"], many)
        if kind == "list":
            many, schema = True, schema["items_schema"]
        elif "schema" in schema and kind in ("default", "nullable", "function-before",
                                             "function-after", "model-field"):
            schema = schema["schema"]
        else:
            return FieldShape(None, many)


def _revive(value, key=None):
    """Stored data -> the core schema: class names to the records above, check specs to the
    checks of checks.py, default sub-records to records. Nothing else is turned into code."""
    if isinstance(value, list):
        return [_revive(v) for v in value]
    if not isinstance(value, dict):
        return _RECORDS[value] if key == "cls" else value
    if key == "function" and "check" in value:
        return checks.revive(value)
    if key == "default" and "$record" in value:
        return _record(_RECORDS[value["$record"]], dict(value["data"]))
    out = {k: _revive(v, k) for k, v in value.items()}
    if out.get("type") == "model":
        out["cls"].model_fields = {name: _shape(field)
                                   for name, field in out["schema"]["fields"].items()}
    return out


def _built(schema: dict) -> tuple[SchemaValidator, SchemaSerializer]:
    """As pydantic builds a model's validator and serializer: the model's own config at the top
    too (it titles the errors "for PatientProfile")."""
    top = schema
    while top["type"] != "model":
        top = top["schema"]
    return SchemaValidator(schema, top.get("config")), SchemaSerializer(schema, top.get("config"))


def _load() -> tuple[SchemaValidator, SchemaSerializer]:
    from . import stored_schema

    try:
        stored = orjson.loads(stored_schema.SCHEMA_FILE.read_bytes())
        if isinstance(stored, dict) and stored.get("sources") == stored_schema.sources_digest():
            return _built(_revive(stored["schema"]))
    except (OSError, ValueError, LookupError, TypeError, AttributeError, SchemaError):
        pass                           # missing or damaged: as good as stale
    return _built(_revive(stored_schema.build()["schema"]))   # the declaration itself


_VALIDATOR, _SERIALIZER = _load()


def field_path(loc: tuple) -> str:
    """('treatments', 1, 'response') -> 'treatments[1].response'; a key as typed is shown
    bounded, with control characters and bidi overrides escaped (yamlio.field_name)."""
    return field_name(loc) if loc else ""


def _path_tuple(path: str) -> tuple:
    parts: list = []
    for chunk in path.replace("]", "").split("."):
        name, *indexes = chunk.split("[")
        parts.append(name)
        parts.extend(int(i) for i in indexes if i.isdigit())
    return tuple(parts)


def validate_profile(data: Any, vocabulary: Vocabulary, *, document: Document | None = None,
                     source: str | None = None) -> PatientProfile:
    """Validate plain data into a PatientProfile, or raise one ProfileError naming the field."""
    source = source or (document.source if document else None)
    if not isinstance(data, dict):
        raise ProfileError("a profile must be a mapping of fields (age_years, lesions, ...)",
                           file=source, line=document.line(()) if document else None)
    try:
        return _VALIDATOR.validate_python(data, context={"vocabulary": vocabulary})
    except ValidationError as exc:
        raise profile_error(exc, document=document, source=source) from None


def profile_error(exc: ValidationError, *, document: Document | None = None,
                  source: str | None = None) -> ProfileError:
    """One ProfileError for a failed validation: the first problem's field and line, the others
    listed after it (at most ten)."""
    problems = []
    first_path = first_loc = None
    for err in exc.errors(include_url=False):
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, Contradiction):
            path, message = ctx_error.field, ctx_error.message
            loc = _path_tuple(path)
        else:
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            path = field_path(loc) or "profile"
            message = _plain(err)
        if first_path is None:
            first_path, first_loc = path, loc  # the key as given: it may hold '[' or '.'
        problems.append((path, message))
    line = document.line(first_loc) if document and first_path != "profile" else None
    head_path, head_message = problems[0]
    message = head_message
    if len(problems) > 1:
        message += "".join(f"\n  also {p}: {m}" for p, m in problems[1:10])
        if len(problems) > 10:
            message += f"\n  ... and {len(problems) - 10} more problems"
    return ProfileError(message, file=source, line=line, field=head_path)


def _field_hint(loc: tuple) -> str:
    """'; did you mean weight_kg?' for a mistyped field name (the fields beside it)."""
    import difflib

    model: Any = PatientProfile
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or field.model is None:
            return ""
        model = field.model
    close = difflib.get_close_matches(str(loc[-1])[:80], list(model.model_fields), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _plain(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return f"unknown field{_field_hint(err['loc'])} (check its spelling against the profile format)"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "must be a finite number (NaN and infinity are not values)"
    if isinstance(value, (dict, list)):
        return msg
    return f"{msg} (got {plain_number(value) if isinstance(value, float) else bounded(value)})"
