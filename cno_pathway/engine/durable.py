"""The durable_rules adapter: compile parsed rules to a ruleset, evaluate one patient's facts.

durable-rules 2.0.28 has sharp edges; this module is the only place that knows them, and
tests/test_engine.py pins each one:
- an action taking two parameters is silently treated as async and never fires: actions here
  take exactly one (`c`), built by closures;
- a pattern made only of "field absent" tests also matches the engine's own state fact and
  loops: every pattern starts with the discriminator {cno_kind: patient};
- deleting a session in which no action ran segfaults, and a fact that matches no rule raises
  MessageNotHandledException: every ruleset keeps a lowest-priority sink rule that always fires;
- exceptions raised in actions are swallowed into the session state: we read
  get_state(...)["exception"] after each evaluation and raise EngineError;
- more than 1,024 live sessions raise MemoryError: each evaluation deletes its session;
- each Host starts two timer threads that never end: QuietHost starts none, and close()
  deletes the rulesets;
- the extension is not thread-safe: one lock around every evaluation;
- registering a ruleset deletes the `run` keys of the dict passed: we pass a copy;
- priority is an unsigned short: rule priorities are capped by the parser (MAX_PRIORITY);
- a ruleset of about 540 rules hangs at creation (the distinct tests under one alpha node sit in
  a 512-bucket hash set probed until an empty bucket turns up): rules are split into rulesets of
  at most MAX_RULES_PER_RULESET (and MAX_ALPHA_PATHS, below), staging rules in the first;
- matching a fact keeps the alpha nodes still to visit on a stack of 64 entries and fails with
  "error code: 303" when more are pending (each alternative path through a rule's any/in/not
  can be pending once): rulesets are also split so that the paths of one phase stay within
  MAX_ALPHA_PATHS, and a single rule with more paths is a RuleError;
- a pattern holds at most 31 expression entries, two per $and/$or group ("error code: 113" at
  creation): nested groups of the same kind are flattened, and a rule still over the limit is a
  RuleError naming it;
- "abc" > 75 and "80" == 80 hold in the engine: only validated, typed facts are asserted;
- its JSON reader rejects numbers such as 1e-05 (exponent, no fraction): see _number.

Forward chaining happens inside the engine: staging rules match the patient fact in phase
"derive"; a catch-all "round done" rule (below every rule's priority) asserts the next round's
fact, or, when nothing new was derived, the final fact in phase "suggest", which the suggestion
rules match.
"""

from __future__ import annotations

import copy
import itertools
import math
import threading

import durable.engine as durable
import durable_rules_engine

from ..knowledge.conditions import All, Any_, Compare, Condition, Has, Not, Presence
from ..errors import EngineError, RuleError
from .evaluation import MAX_ROUNDS, Evaluation, add_derivation
from ..knowledge.factschema import FACT_SCHEMA
from ..knowledge.rulebook import Rule

MAX_RULES_PER_RULESET = 400
MAX_ALPHA_PATHS = 60      # the engine's alpha match stack holds 64 pending nodes
MAX_GROUPS = 15           # a pattern's expression sequence holds 31 entries, two per group
_ROUND_DONE_PRI = 65000
_SINK_PRI = 65500
_KIND = {"cno_kind": "patient"}
_NEVER = {"$nex": {"cno_kind": 1}}          # false for every patient fact
_LOCK = threading.RLock()
_ruleset_names = itertools.count(1)
_session_ids = itertools.count(1)


class QuietHost(durable.Host):
    """A Host without the two dispatch timer threads (we never use timers or queues)."""

    def _run(self):
        return None

    def delete_rulesets(self):
        for ruleset in self._ruleset_list:
            durable_rules_engine.delete_ruleset(ruleset._handle)
        self._ruleset_list = []
        self._ruleset_directory = {}


def encode_name(fact: str) -> str:
    return fact.replace(".", "_")


def flag_name(fact: str, value: str) -> str:
    return f"{encode_name(fact)}__{value}"


class _Compiler:
    """Condition tree -> durable_rules JSON expression, with negation pushed down."""

    def __init__(self):
        self.flags: set[tuple[str, str]] = set()

    def compile(self, cond: Condition | None) -> dict | None:
        """None means 'always true'."""
        if cond is None:
            return None
        return self._pos(cond)

    def _group(self, op: str, parts: list) -> dict | None:
        parts = [p for p in parts if p is not None] if op == "$and" else parts
        parts = _flatten(op, parts)
        if op == "$and":
            if not parts:
                return None
            return parts[0] if len(parts) == 1 else {"$and": parts}
        parts = [{"$and": [{"cno_kind": "patient"}]} if p is None else p for p in parts]
        if not parts:
            return _NEVER
        return parts[0] if len(parts) == 1 else {"$or": parts}

    def _flag(self, fact, value):
        self.flags.add((fact, value))
        return flag_name(fact, value)

    def _pos(self, c: Condition) -> dict | None:
        if isinstance(c, All):
            return self._group("$and", [self._pos(i) for i in c.items])
        if isinstance(c, Any_):
            return self._group("$or", [self._pos(i) for i in c.items])
        if isinstance(c, Not):
            return self._neg(c.item)
        if isinstance(c, Presence):
            if FACT_SCHEMA[c.fact].kind == "list":
                # list facts always have a value (possibly empty) and are encoded as flags,
                # not as a field: `present` always holds, `absent` never does
                return None if c.op == "present" else _NEVER
            return {"$ex" if c.op == "present" else "$nex": {encode_name(c.fact): 1}}
        if isinstance(c, Has):
            want = c.op == "has"
            return self._group("$and", [{self._flag(c.fact, v): want} for v in c.values])
        if isinstance(c, Compare):
            name = encode_name(c.fact)
            if c.op == "eq":
                return {name: _number(c.value)}
            if c.op == "in":
                return self._group("$or", [{name: _number(v)} for v in c.value])
            op = {"ne": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}[c.op]
            return {op: {name: _number(c.value)}}
        raise TypeError(c)

    def _neg(self, c: Condition) -> dict | None:
        if isinstance(c, All):
            return self._group("$or", [self._neg(i) for i in c.items])
        if isinstance(c, Any_):
            return self._group("$and", [self._neg(i) for i in c.items])
        if isinstance(c, Not):
            return self._pos(c.item)
        if isinstance(c, Presence):
            if FACT_SCHEMA[c.fact].kind == "list":
                return _NEVER if c.op == "present" else None
            return {"$nex" if c.op == "present" else "$ex": {encode_name(c.fact): 1}}
        if isinstance(c, Has):
            want = c.op != "has"
            return self._group("$or", [{self._flag(c.fact, v): want} for v in c.values])
        if isinstance(c, Compare):
            name = encode_name(c.fact)
            absent = {"$nex": {name: 1}}
            if c.op == "eq":
                inner = {"$neq": {name: _number(c.value)}}
            elif c.op == "ne":
                inner = {name: _number(c.value)}
            elif c.op == "in":
                inner = self._group("$and", [{"$neq": {name: _number(v)}} for v in c.value])
            else:
                op = {"gt": "$lte", "gte": "$lt", "lt": "$gte", "lte": "$gt"}[c.op]
                inner = {op: {name: _number(c.value)}}
            return {"$or": [absent, inner]}
        raise TypeError(c)


class _Run:
    """What the actions of one evaluation write to (actions see only `c`)."""

    def __init__(self, facts: dict):
        self.facts = facts
        self.fired: list[str] = []
        self.fired_set: set[str] = set()
        self.order: dict[str, tuple] = {}   # rule id -> sort key: the reference's firing order
        self.derivations: list[tuple[str, str, str]] = []
        self.changed = False
        self.rounds = 0


class Engine:
    """A compiled rule base. Use as a context manager, or call close()."""

    def __init__(self, rules: list[Rule], value_order: dict[str, list[str]] | None = None,
                 *, max_rules_per_ruleset: int = MAX_RULES_PER_RULESET):
        self.value_order = value_order or {}
        self.rules = list(rules)
        staging = [r for r in self.rules if r.is_staging]
        suggesting = [r for r in self.rules if not r.is_staging]
        if len(staging) > max_rules_per_ruleset - 1:
            raise RuleError(f"{len(staging)} staging rules: the engine holds at most "
                            f"{max_rules_per_ruleset - 1} staging rules in one ruleset")
        self._compiler = _Compiler()
        self._runs: dict[str, _Run] = {}
        self._paths: dict[str, int] = {}   # rule id -> alternative paths, set by _compile_rule
        compiled = {rule.id: self._compile_rule(rule, "derive", self._staging_action(rule))
                    for rule in staging}
        compiled.update({rule.id: self._compile_rule(rule, "suggest", self._suggest_action(rule))
                         for rule in suggesting})
        paths = self._paths
        staging_paths = sum(paths[r.id] for r in staging)
        if staging_paths > MAX_ALPHA_PATHS:
            raise RuleError(f"the staging rules have {staging_paths} alternative condition paths; "
                            f"the engine holds at most {MAX_ALPHA_PATHS} in one ruleset "
                            "(simplify their any/in/not)")
        chunks: list[list[Rule]] = [[]]
        room, used = max_rules_per_ruleset - len(staging) - 2, 0
        for rule in suggesting:
            if len(chunks[-1]) >= room or used + paths[rule.id] > MAX_ALPHA_PATHS:
                chunks.append([])
                room, used = max_rules_per_ruleset - 1, 0
            chunks[-1].append(rule)
            used += paths[rule.id]
        base = f"cno{next(_ruleset_names)}"
        self.ruleset_names = [f"{base}_{i}" for i in range(len(chunks))]
        definitions = {}
        for index, chunk in enumerate(chunks):
            ruleset: dict = {}
            if index == 0:
                for rule in staging:
                    ruleset[rule.id] = compiled[rule.id]
                ruleset["cno$round-done"] = {
                    "all": [{"m": {"$and": [_KIND, {"phase": "derive"}]}}],
                    "pri": _ROUND_DONE_PRI, "run": self._round_done}
            for rule in chunk:
                ruleset[rule.id] = compiled[rule.id]
            ruleset["cno$sink"] = {"all": [{"m": _KIND}], "pri": _SINK_PRI, "run": _sink}
            definitions[self.ruleset_names[index]] = ruleset
        self.flags = sorted(self._compiler.flags)
        with _LOCK:
            self.host = QuietHost()
            # registering deletes the `run` keys of the dict it is given: keep ours intact
            self.host.register_rulesets(copy.copy({k: {r: dict(v) for r, v in d.items()}
                                                   for k, d in definitions.items()}))
        self.definitions = definitions

    # -- compilation ----------------------------------------------------------------------
    def _compile_rule(self, rule: Rule, phase: str, action) -> dict:
        expression = self._compiler.compile(rule.when)
        parts = _flatten("$and", [_KIND, {"phase": phase}]
                         + ([expression] if expression is not None else []))
        pattern = {"$and": parts}
        groups = _groups(pattern)
        paths = self._paths[rule.id] = _paths(pattern)
        if groups > MAX_GROUPS or paths > MAX_ALPHA_PATHS:
            raise RuleError(f"the condition is too complex for the rule engine ({groups} groups, "
                            f"at most {MAX_GROUPS}; {paths} alternative paths, at most "
                            f"{MAX_ALPHA_PATHS}): split the rule or simplify its any/in/not",
                            file=rule.file, line=rule.line, rule=rule.id)
        return {"all": [{"m": pattern}], "pri": rule.priority + 1, "run": action}

    def _staging_action(self, rule: Rule):
        def action(c):
            run = self._runs[c.s.sid]
            if rule.id in run.fired_set:
                return
            run.fired_set.add(rule.id)
            run.fired.append(rule.id)
            run.order[rule.id] = (0, run.rounds, rule.priority, rule.id)
            for fact, value in rule.derive.items():
                run.derivations.append((rule.id, fact, value))
                run.changed |= add_derivation(run.facts, fact, value, self.value_order.get(fact))
        return action

    def _suggest_action(self, rule: Rule):
        def action(c):
            run = self._runs[c.s.sid]
            if rule.id not in run.fired_set:
                run.fired_set.add(rule.id)
                run.fired.append(rule.id)
                run.order[rule.id] = (1, 0, rule.priority, rule.id)
        return action

    def _round_done(self, c):
        run = self._runs[c.s.sid]
        run.rounds += 1
        if c.m["gen"] + 1 != run.rounds:
            return  # a stale round (cannot happen: each round asserts one fact)
        if run.changed and run.rounds < MAX_ROUNDS:
            run.changed = False
            c.assert_fact(self._fact(run.facts, c.s.sid, "derive", run.rounds))
            return
        final = self._fact(run.facts, c.s.sid, "suggest", run.rounds)
        c.assert_fact(dict(final))
        for name in self.ruleset_names[1:]:
            c.assert_fact(name, dict(final))

    # -- facts ----------------------------------------------------------------------------
    def _fact(self, facts: dict, sid: str, phase: str, gen: int) -> dict:
        fact = {"sid": sid, "cno_kind": "patient", "phase": phase, "gen": gen}
        for name, value in facts.items():
            ftype = FACT_SCHEMA.get(name)
            if ftype is None or ftype.kind == "list" or value is None:
                continue
            fact[encode_name(name)] = _number(value) if ftype.kind == "number" else value
        for name, value in self.flags:
            fact[flag_name(name, value)] = value in facts.get(name, ())
        return fact

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, facts: dict) -> Evaluation:
        """Run one patient's facts through the engine; the session is deleted afterwards."""
        with _LOCK:
            sid = str(next(_session_ids))
            run = _Run({k: (list(v) if isinstance(v, list) else v) for k, v in facts.items()})
            self._runs[sid] = run
            try:
                self.host.assert_fact(self.ruleset_names[0], self._fact(run.facts, sid, "derive", 0))
                for name in self.ruleset_names:
                    error = self.host.get_state(name, sid).get("exception")
                    if error:
                        raise EngineError(f"a rule action failed inside the engine: {error}")
            finally:
                del self._runs[sid]
                for name in self.ruleset_names:
                    try:
                        self.host.delete_state(name, sid)
                    except Exception:  # noqa: BLE001 - a session never created has nothing to delete
                        pass
        # the engine breaks priority ties its own way and fires split rulesets one after the
        # other: report staging rules by round, then everything by (priority, id), as the
        # reference evaluator does
        fired = sorted(run.fired, key=run.order.__getitem__)
        derivations = sorted(run.derivations, key=lambda d: run.order[d[0]])
        return Evaluation(facts=run.facts, fired=fired, derivations=derivations)

    def close(self):
        with _LOCK:
            if getattr(self, "host", None) is not None:
                self.host.delete_rulesets()
                self.host = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _number(value):
    """A number as durable's JSON reader accepts it. The reader rejects an exponent without a
    fraction ('1e-05', '1e+16': "error code: 204"), so such a float moves up to the next float,
    whose repr has a fraction. Facts and rule values go through the same mapping, which keeps
    equality and order (only a value one ulp above such a float would collide with it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    number = float(value)
    while "e" in repr(number) and "." not in repr(number) and math.isfinite(number):
        number = math.nextafter(number, math.inf)
    return number


def _flatten(op: str, parts: list) -> list:
    """Inline nested groups of the same kind: ($and a ($and b c)) -> ($and a b c)."""
    out = []
    for part in parts:
        if isinstance(part, dict) and len(part) == 1 and op in part:
            out.extend(part[op])
        else:
            out.append(part)
    return out


def _groups(expression) -> int:
    """$and/$or groups in a compiled expression (each takes two of the pattern's entries)."""
    if isinstance(expression, dict) and len(expression) == 1:
        (op, arg), = expression.items()
        if op in ("$and", "$or"):
            return 1 + sum(_groups(part) for part in arg)
    return 0


def _paths(expression) -> int:
    """Alternative paths through a compiled expression's alpha network: products over $and,
    sums over $or (the most match-stack entries one rule can leave pending)."""
    if isinstance(expression, dict) and len(expression) == 1:
        (op, arg), = expression.items()
        if op == "$and":
            total = 1
            for part in arg:
                total *= _paths(part)
            return total
        if op == "$or":
            return sum(_paths(part) for part in arg)
    return 1


def _sink(c):
    """Lowest priority: keeps every fact handled and every session with one action run."""
    return None
