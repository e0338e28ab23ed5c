"""The parsed knowledge (rule base, evidence library) as plain JSON data and back, for the cache.

Parsing and checking the rule base and the evidence from their YAML costs a consult some 8 ms
at every start even when the YAML's parse comes from the document cache; the objects they build
depend only on those files and this program. So knowledge/cache.py also keeps the finished
objects, written here as plain data: every value is JSON (text, numbers, booleans, null) or a
list tagged with what it was ("L" list, "T" tuple, "D" mapping, "P" path, "C" an object of one
of the knowledge classes below, with its fields in order), or, for a list or mapping
that holds only JSON itself (a rule's test profiles, a finding's numbers), "J" and that data as
it is (read back without a walk: half the objects of the rule base are such data). The whole
is ["K", [class names], value]: an object names its class by its index in that table (a
small number is no new string to read back, 17,000 times for a 2,050-rule base). Nothing else
can come back: no class outside KNOWLEDGE_MODULES, no callable, no code.

Reading back is checked: a class must be one of ours, with exactly its fields, and each field
must hold the kind of value its declaration says (a number where `float`, a Condition or None
where `Condition | None`, a tuple where `tuple[...]`...). Anything else raises ValueError and
the cache entry is not used.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from pathlib import Path, PurePath

# the modules whose dataclasses the rule base and the evidence library are made of
KNOWLEDGE_MODULES = ("cno_pathway.knowledge.rulebook", "cno_pathway.knowledge.conditions",
                     "cno_pathway.knowledge.vocabulary", "cno_pathway.knowledge.regimens",
                     "cno_pathway.knowledge.evidence", "cno_pathway.knowledge.factschema")
# fields that __post_init__ rebuilds from the others (stored once, not twice)
_REBUILT = {"RuleBook": {"by_id"}, "Vocabulary": {"drug_to_class"}}
_SIMPLE = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
           "None": (type(None),), "tuple": (tuple,), "list": (list,), "dict": (dict,),
           "Path": (PurePath,)}


class _Spec:
    """How one knowledge class is written: its name and the fields, with their kinds."""

    __slots__ = ("cls", "name", "fields", "kinds", "rebuilt", "post_init", "pairs", "size",
                 "finish")

    def __init__(self, cls: type, name: str, fields: tuple[str, ...],
                 kinds: tuple[tuple[type, ...] | None, ...], rebuilt: tuple, post_init):
        self.cls = cls
        self.name = name
        self.fields = fields
        self.kinds = kinds            # per field; None: any value
        self.rebuilt = rebuilt        # fields set to their defaults, then __post_init__
        self.post_init = post_init    # the class's __post_init__, or None
        self.pairs = tuple(zip(fields, kinds))
        self.size = len(fields)
        self.finish = bool(rebuilt) or post_init is not None

    def finished(self, obj):
        """The fields __post_init__ rebuilds set to their defaults, then __post_init__ run."""
        for f in self.rebuilt:
            obj.__dict__[f.name] = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if self.post_init is not None:
            self.post_init(obj)
        return obj


@functools.lru_cache(maxsize=1)
def _registry() -> tuple[dict[type, _Spec], dict[str, _Spec]]:
    by_class, by_name = {}, {}
    for module_name in KNOWLEDGE_MODULES:
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=["_"])
        for obj in vars(module).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj)
                    and obj.__module__ == module_name):
                name = f"{module_name.rsplit('.', 1)[1]}.{obj.__name__}"
                skip = _REBUILT.get(obj.__name__, set())
                fields = [f for f in dataclasses.fields(obj) if f.init and f.name not in skip]
                rebuilt = tuple(f for f in dataclasses.fields(obj) if f.name in skip)
                if len(fields) + len(rebuilt) != len(dataclasses.fields(obj)) or any(
                        hasattr(obj, attr) for attr in ("__slots__", "__setstate__")):
                    continue  # not plain fields only: never written, never read
                spec = _Spec(obj, name, tuple(f.name for f in fields),
                             tuple(_kinds(f.type, vars(module)) for f in fields), rebuilt,
                             getattr(obj, "__post_init__", None))
                by_class[obj] = spec
                by_name[name] = spec
    return by_class, by_name


def _kinds(annotation, namespace: dict) -> tuple[type, ...] | None:
    """The kinds of value an annotation allows, from its text ('Condition | None' ->
    (Condition, NoneType)); None when it allows anything (Any) or names what we do not know."""
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", "")
    kinds: list[type] = []
    depth, start = 0, 0
    parts = []
    for i, char in enumerate(annotation + "|"):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(annotation[start:i].strip())
            start = i + 1
    for part in parts:
        head = part.split("[", 1)[0].strip()
        if head in ("Any", "object"):
            return None
        if head in _SIMPLE:
            kinds.extend(_SIMPLE[head])
        elif isinstance(namespace.get(head), type):
            kinds.append(namespace[head])
        else:
            return None
    return tuple(kinds) or None


def _is_json(obj) -> bool:
    """Lists, text-keyed mappings and scalars only, all the way down (JSON reads back exactly)."""
    kind = type(obj)
    if obj is None or kind is str or kind is bool:
        return True
    if kind is int:
        return -(2 ** 63) <= obj < 2 ** 63
    if kind is float:
        return math.isfinite(obj)
    if kind is list:
        return all(map(_is_json, obj))
    if kind is dict:
        return all(type(key) is str and _is_json(value) for key, value in obj.items())
    return False


def encode(obj):
    """Plain JSON data for a knowledge object: ["K", [class names], value], the value's objects
    naming their class by its index in that table. TypeError or ValueError for anything else
    (a value JSON cannot hold exactly, an object not of the knowledge classes)."""
    table: dict[str, int] = {}
    value = _encode(obj, table)
    return ["K", list(table), value]


def _encode(obj, table: dict[str, int]):
    kind = type(obj)
    if obj is None or kind is str or kind is bool or kind is int:
        if kind is int and not -(2 ** 63) <= obj < 2 ** 63:
            raise ValueError("an integer beyond 64 bits")
        return obj
    if kind is float:
        if not math.isfinite(obj):
            raise ValueError("a number JSON cannot hold")
        return obj
    if (kind is list or kind is dict) and _is_json(obj):
        return ["J", obj]
    if kind is list:
        return ["L", *(_encode(x, table) for x in obj)]
    if kind is tuple:
        return ["T", *(_encode(x, table) for x in obj)]
    if kind is dict:
        if not all(type(key) is str for key in obj):
            raise TypeError("a mapping whose keys are not all text")
        return ["D", {key: _encode(value, table) for key, value in obj.items()}]
    if isinstance(obj, PurePath):
        return ["P", str(obj)]
    spec = _registry()[0].get(kind)
    if spec is None:
        raise TypeError(f"not a knowledge object: {kind.__name__}")
    index = table.setdefault(spec.name, len(table))
    return ["C", index, *(_encode(getattr(obj, name), table) for name in spec.fields)]


_SCALARS = frozenset({str, int, float, bool, type(None)})


def decode(data):
    """The objects encode() wrote, checked as described above; ValueError if anything is off."""
    if (type(data) is not list or len(data) != 3 or data[0] != "K"
            or type(data[1]) is not list):
        raise ValueError("not the objects encode() writes: ['K', [class names], value]")
    by_name = _registry()[1]
    specs = []
    for name in data[1]:
        spec = by_name.get(name) if type(name) is str else None
        if spec is None:
            raise ValueError(f"not one of the knowledge classes: {str(name)[:40]!r}")
        specs.append(spec)
    return _value(data[2], specs)


def _value(data, specs: list[_Spec]):
    if type(data) in _SCALARS:
        return data
    if type(data) is not list or not data:
        raise ValueError(f"unexpected {type(data).__name__}")
    return _decode(data, specs)


def _decode(data: list, specs: list[_Spec]):
    """A non-empty list read back. A 2,050-rule base is some 17,000 objects, read back at every
    consult: an object's class is a small number (orjson makes no new string for it), its
    fields are read in one loop into its own __dict__ (what its __init__ would build, without
    a generated __init__'s frozen setattr per field), and a field holding plain JSON ("J") or
    a tuple is read in place rather than by another call."""
    scalars = _SCALARS
    tag = data[0]
    if tag == "C":
        index = data[1] if len(data) > 1 else None
        if type(index) is not int or not 0 <= index < len(specs):
            raise ValueError("not an object of the knowledge classes")
        spec = specs[index]
        if len(data) - 2 != spec.size:
            raise ValueError(f"{spec.name} not with its fields")
        obj = object.__new__(spec.cls)
        values = obj.__dict__
        at = 2
        for name, kinds in spec.pairs:
            raw = data[at]
            at += 1
            kind = type(raw)
            if kind in scalars:
                value = raw
            elif kind is not list or not raw:
                raise ValueError(f"unexpected {kind.__name__}")
            elif raw[0] == "J" and len(raw) == 2:
                value = raw[1]
            elif raw[0] == "T":
                value = tuple([x if type(x) in scalars else _value(x, specs) for x in raw[1:]])
            else:
                value = _decode(raw, specs)
            if kinds is not None and not isinstance(value, kinds):
                raise ValueError(f"{spec.name}.{name} holds a {type(value).__name__}")
            values[name] = value
        return spec.finished(obj) if spec.finish else obj
    if tag == "J" and len(data) == 2:
        return data[1]   # JSON as read: lists, text-keyed mappings, scalars
    if tag == "L":
        return [x if type(x) in scalars else _value(x, specs) for x in data[1:]]
    if tag == "T":
        return tuple([x if type(x) in scalars else _value(x, specs) for x in data[1:]])
    if tag == "D" and len(data) == 2 and type(data[1]) is dict:
        return {k: v if type(v) in scalars else _value(v, specs) for k, v in data[1].items()}
    if tag == "P" and len(data) == 2 and type(data[1]) is str:
        return Path(data[1])
    raise ValueError(f"unknown tag {str(tag)[:20]!r}")
