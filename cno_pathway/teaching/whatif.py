"""What-if: edit a profile's plain data, consult again, and show what the edits change.

An edit is one of

    PATH=VALUE     set a field:      lesions.vertebral_fracture=true, age_years=15,
                                     treatments[1].response=relapse, lesions.sites=[vertebra, tibia]
    PATH+=VALUE    add to a list:    features+=psoriasis, lesions.sites+=vertebra,
                                     treatments+=etanercept:3:none (as consult --tried writes it)
    PATH-=VALUE    take from a list: features-=arthritis, treatments-=etanercept (every entry)

PATH is a profile field, dotted for nested fields (`lesions.vertebral_fracture`,
`treatments[0].months`, which also takes a unit: `treatments[0].months=3w`). The names of the
consult command's flags work as short aliases (see ALIASES): `vertebral_fracture`, `site`/`sites`, `lesions` (the count), `imaging`, `symmetric`,
`age`, `weight`, `onset_age`, `crp`, `esr`, `cbc_normal`, `feature`, `red_flag`, `tried`, and the
activity names (`pain`, `swelling`, ...). VALUE is read as YAML (`true`, `12`, `[a, b]`, `null`
to unset a field); a list field also takes comma-separated names. The edited profile is
validated like any other; a bad edit is an error naming the edit.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from .changes import Changes, compare
from ..consult.consult import Consult, Pathway
from ..errors import InputError, ProfileError
from ..patient.durations import parse_duration
from ..patient.intake import ACTIVITY, parse_tried
from ..consult.render import render_template
from ..patient.profile import PatientProfile, validate_profile
from ..knowledge.vocabulary import canonical
from ..yamlio import parse_document

SCHEMA = "cno-pathway/what-if/1"
FORMATS = ("text", "markdown", "json")
_TEMPLATES = {"text": "whatif.txt.j2", "markdown": "whatif.md.j2"}

# short names: the consult command's flag names
ALIASES = {
    "age": "age_years", "weight": "weight_kg", "onset_age": "age_at_onset_years",
    "lesions": "lesions.count", "count": "lesions.count", "site": "lesions.sites",
    "sites": "lesions.sites", "vertebral_fracture": "lesions.vertebral_fracture",
    "symmetric": "lesions.symmetric", "imaging": "lesions.imaging",
    "crp": "labs.crp_mg_l", "esr": "labs.esr_mm_h", "cbc_normal": "labs.cbc_normal",
    "feature": "features", "red_flag": "red_flags", "tried": "treatments",
    **{name: f"activity.{name}" for name in ACTIVITY},
}

_EDIT = re.compile(r"^\s*(?P<path>[A-Za-z_][A-Za-z0-9_.\-\[\]]*?)\s*(?P<op>\+=|-=|=)(?P<value>.*)$",
                   re.DOTALL)
_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?P<indexes>(\[\d+\])*)$")


class WhatIfError(InputError):
    """A what-if edit that cannot be read or applied, or gives an invalid profile."""


@dataclass(frozen=True)
class Edit:
    text: str                 # as written
    path: tuple               # resolved: ("lesions", "vertebral_fracture"), ("treatments", 1, "months")
    op: str                   # "=" | "+=" | "-="
    value: Any                # parsed value (for +=/-=: a list of items)

    @property
    def where(self) -> str:
        return f"--what-if {self.text}"

    @property
    def dotted(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
        return out


@dataclass
class WhatIf:
    edits: list[Edit]
    before: Consult
    after: Consult
    changes: Changes
    applied: list[tuple[str, Any, Any]]     # (field, value before, value after) for each edit

    def to_json(self) -> dict:
        return {"schema": SCHEMA,
                "edits": [{"edit": e.text, "field": e.dotted, "op": e.op} for e in self.edits],
                "changes": self.changes.to_json(),
                "before": self.before.to_json(), "after": self.after.to_json()}


# -- reading an edit ------------------------------------------------------------------------------

def _fail(text: str, message: str) -> WhatIfError:
    return WhatIfError(message, field=f"--what-if {text}")


def field_info(path: tuple) -> tuple[bool, bool]:
    """(is_list, is_model) of the profile field at `path`; KeyError names a wrong part."""
    model: type | None = PatientProfile
    is_list = is_model = False
    in_list = False
    for part in path:
        if isinstance(part, int):
            if not in_list:
                raise KeyError(f"{part} is an index but this field is not a list")
            in_list, is_list, is_model = False, False, model is not None
            continue
        if model is None or in_list:
            raise KeyError(f"{part!r}: the field before it has no sub-fields")
        if part not in model.model_fields:
            close = difflib.get_close_matches(part, list(model.model_fields) + list(ALIASES), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise KeyError(f"unknown field {part!r}{hint} (fields here: "
                           f"{', '.join(model.model_fields)})")
        model, is_list = model.model_fields[part]   # (the sub-record or None, whether a list)
        is_model = model is not None and not is_list
        in_list = is_list
    return is_list, is_model


def _resolve(text: str, raw: str) -> tuple:
    raw = raw.strip()
    name = canonical(raw) if "." not in raw and "[" not in raw else raw
    raw = ALIASES.get(name, raw)
    path: list = []
    for chunk in raw.split("."):
        match = _SEGMENT.match(chunk)
        if chunk.isdigit():
            path.append(int(chunk))
            continue
        if not match:
            raise _fail(text, f"cannot read the field path {raw!r} (write e.g. lesions.vertebral_fracture "
                              "or treatments[0].months)")
        path.append(match["name"].replace("-", "_"))
        path.extend(int(i) for i in re.findall(r"\[(\d+)\]", match["indexes"]))
    try:
        field_info(tuple(path))
    except KeyError as exc:
        raise _fail(text, exc.args[0]) from None
    return tuple(path)


def _yaml_value(text: str, raw: str) -> Any:
    if not raw.strip():
        raise _fail(text, "give a value after the operator (null unsets a field)")
    try:
        return parse_document(raw.strip(), source="--what-if", error=WhatIfError).data
    except WhatIfError as exc:
        raise _fail(text, exc.message) from None


def parse_edit(text: str, vocabulary) -> Edit:
    """Read one edit: 'PATH=VALUE', 'PATH+=VALUE' or 'PATH-=VALUE'."""
    match = _EDIT.match(text)
    if not match:
        raise _fail(text, "write FIELD=VALUE, FIELD+=VALUE or FIELD-=VALUE, "
                          "e.g. vertebral_fracture=true or treatments+=etanercept:3:none")
    path, op, raw = _resolve(text, match["path"]), match["op"], match["value"]
    is_list, _ = field_info(path)
    treatments = path == ("treatments",)
    if op in ("+=", "-="):
        if not is_list:
            raise _fail(text, f"{op} works on list fields; {_dotted(path)} is not a list")
        if not raw.strip():
            raise _fail(text, f"give a value after {op}")
        if treatments and op == "+=":
            value = [parse_tried(raw.strip(), vocabulary, where=f"--what-if {text}")]
        elif treatments:
            value = [raw.strip()]
        else:
            value = [item.strip() for item in raw.split(",") if item.strip()]
        return Edit(text, path, op, value)
    value = _yaml_value(text, raw)
    if path[-1] == "months" and isinstance(value, str):  # a course length with its unit: 3w
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise _fail(text, str(exc)) from None
    if is_list and isinstance(value, str):
        if treatments:
            value = [parse_tried(value, vocabulary, where=f"--what-if {text}")]
        else:
            value = [item.strip() for item in value.split(",") if item.strip()]
    return Edit(text, path, op, value)


def _dotted(path: tuple) -> str:
    return Edit("", path, "=", None).dotted


# -- applying edits -------------------------------------------------------------------------------

def _get(data: Any, path: tuple) -> Any:
    for part in path:
        if isinstance(part, int):
            data = data[part] if isinstance(data, list) and part < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data


def _parent(data: dict, edit: Edit) -> tuple[Any, Any]:
    """The container of the edited field and the key in it, creating mappings on the way."""
    node = data
    for part in edit.path[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise _fail(edit.text, f"there is no entry [{part}] ({len(node or [])} in the profile)")
            node = node[part]
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    last = edit.path[-1]
    if isinstance(last, int) and (not isinstance(node, list) or last >= len(node)):
        raise _fail(edit.text, f"there is no entry [{last}] ({len(node or [])} in the profile)")
    return node, last


def apply_edit(data: dict, edit: Edit) -> None:
    node, key = _parent(data, edit)
    if edit.op == "=":
        if isinstance(node, dict) and edit.value is None:
            node.pop(key, None)
        else:
            node[key] = edit.value
        return
    current = list((node.get(key) if isinstance(node, dict) else node[key]) or [])
    if edit.op == "+=":
        node[key] = current + list(edit.value)
        return
    kept = current
    for item in edit.value:
        if edit.path == ("treatments",):
            remaining = [t for t in kept if canonical(str(t.get("drug", ""))) != canonical(item)]
        else:
            remaining = [v for v in kept if canonical(str(v)) != canonical(item)]
        if len(remaining) == len(kept):
            raise _fail(edit.text, f"{item!r} is not in {edit.dotted}")
        kept = remaining
    node[key] = kept


def apply_edits(data: dict, edits: list[Edit], vocabulary) -> PatientProfile:
    """Apply the edits to a copy of `data` and validate the result."""
    edited = copy.deepcopy(data)
    for edit in edits:
        apply_edit(edited, edit)
    try:
        return validate_profile(edited, vocabulary, source="what-if")
    except ProfileError as exc:
        field = exc.field or ""
        culprits = [e for e in edits if field.startswith(e.dotted) or e.dotted.startswith(field)]
        named = ", ".join(e.text for e in culprits or edits)
        raise WhatIfError(f"the edited profile is invalid: {field + ': ' if field else ''}{exc.message}",
                          field=f"--what-if {named}") from None


def what_if(pathway: Pathway, profile: PatientProfile, edits: list[str] | tuple[str, ...]) -> WhatIf:
    """Consult the profile as it is and as edited; the changes between the two."""
    parsed = [parse_edit(text, pathway.vocabulary) for text in edits]
    data = profile.to_data()
    edited = apply_edits(data, parsed, pathway.vocabulary)
    after_data = edited.to_data()
    applied = [(e.dotted, _get(data, e.path), _get(after_data, e.path)) for e in parsed]
    before, after = pathway.consult(profile), pathway.consult(edited)
    return WhatIf(edits=parsed, before=before, after=after, changes=compare(before, after),
                  applied=applied)


def render_what_if(result: WhatIf, fmt: str, *, colour: bool = False) -> str:
    """The before/after comparison as text (side by side), Markdown or JSON."""
    if fmt == "json":
        return json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
    if fmt not in _TEMPLATES:
        raise InputError(f"--what-if writes {', '.join(FORMATS)}, not {fmt}", field="--format")
    return render_template(_TEMPLATES[fmt], colour=colour, w=result)
