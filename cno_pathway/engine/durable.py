"""The durable_rules adapter: compile parsed rules to rulesets, evaluate one patient's facts.

The engine is durable_rules' C extension, driven by engine/driver.py rather than durable's own
Python host layer (which spent four fifths of an evaluation in json.dumps/json.loads and glue).
durable-rules 2.0.28 has sharp edges; this module is the only place that knows them, and
tests/test_engine.py pins each one (the host layer's own edges are pinned there too, raw, to
show why we do not use it):
- the host layer treats a two-parameter action as async and never fires it, swallows the
  exceptions of actions into the session state, starts two timer threads per Host and deletes
  the `run` keys of the definitions it is given: our actions are plain Python run by us after
  the engine has listed its matches; an exception in one is an EngineError; no thread starts,
  and the definitions we compile hold patterns and priorities only;
- a pattern made only of "field absent" tests also matches the engine's own state fact and
  loops: every pattern starts with the discriminator {cno_kind: patient};
- deleting a session in which no action ran segfaults: every ruleset keeps a lowest-priority
  sink rule that always fires (it also keeps every fact handled);
- more than 1,024 live sessions raise MemoryError: an engine keeps one live session, which
  serves SESSION_EVALUATIONS evaluations and is then deleted (see Engine._session_for);
- a fact whose id its session has seen is ignored (status 2): every fact gets an id of its own,
  and the driver raises should one ever come back;
- the extension is not thread-safe: one lock around every evaluation;
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

Forward chaining: staging rules match the patient fact in phase "derive"; when the engine has
no more matches for a round's fact, the next round's fact is asserted if anything new was
derived, else the final fact in phase "suggest", which the suggestion rules (in every
ruleset) match. The fact is JSON text assembled once per patient (the members no round
changes) plus the few members staging derives; key names are built once per rule base, and the
text of list-fact flags and numbers is kept by value. A list fact is one flag member for each
value it holds that some rule tests ("features__ibd":true); `has` matches the member and `lacks`
its absence ($nex): a fact carries a few flags instead of one per tested value, and since the
engine parses every member and walks them all at each alpha node it visits, this halved its
time ($nex tests pend on the same alpha stack as the others: MAX_ALPHA_PATHS counts them
alike). Each fact has an id of its own (the evaluation's number, its phase and round), which spares
the engine hashing the whole fact into one. A fact in phase "derive" carries only the
members staging rules read, and a next round is asserted only when a staging rule that has not
fired reads a value the last round derived (a rule's match depends only on what it reads).
"""

from __future__ import annotations

import itertools
import json
import math
import threading

from ..knowledge.conditions import All, Any_, Compare, Condition, Has, Not, Presence, leaves
from ..errors import EngineError, RuleError
from .driver import Ruleset
from .evaluation import MAX_ROUNDS, Evaluation, add_derivation
from ..knowledge.factschema import FACT_SCHEMA
from ..knowledge.rulebook import Rule

MAX_RULES_PER_RULESET = 400
MAX_ALPHA_PATHS = 60      # the engine's alpha match stack holds 64 pending nodes
MAX_GROUPS = 15           # a pattern's expression sequence holds 31 entries, two per group
_TEXT_MEMO = 4096          # entries of fact text kept (bounded: cleared when full)
_SINK_PRI = 65500
_SINK = "cno$sink"
_KIND = {"cno_kind": "patient"}
_NEVER = {"$nex": {"cno_kind": 1}}          # false for every patient fact
_LOCK = threading.RLock()
_ruleset_names = itertools.count(1)
_session_ids = itertools.count(1)
_fact_ids = itertools.count(1)      # a fact's id: never seen before in any session
SESSION_EVALUATIONS = 16            # evaluations one engine session serves before it is deleted


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

    def _held(self, fact: str, value: str, held: bool) -> dict:
        """A list fact holds (or lacks) one value: its flag member is present (or absent). The
        fact carries only the flags of values held, a third of its members at most."""
        self.flags.add((fact, value))
        name = flag_name(fact, value)
        return {name: True} if held else {"$nex": {name: 1}}

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
            return self._group("$and", [self._held(c.fact, v, c.op == "has") for v in c.values])
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
            return self._group("$or", [self._held(c.fact, v, c.op != "has") for v in c.values])
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


class _Session:
    """An engine session (a durable_rules sid) shared by consecutive evaluations."""

    def __init__(self, sid: str):
        self.sid = sid
        self.evaluations = 0
        self.touched: set = set()        # the rulesets in which the session exists


class _Run:
    """What the actions of one evaluation write to."""

    def __init__(self, facts: dict):
        self.facts = facts
        self.fired: list[str] = []
        self.fired_set: set[str] = set()
        self.order: dict[str, tuple] = {}   # rule id -> sort key: the reference's firing order
        self.derivations: list[tuple[str, str, str]] = []
        self.changed = False
        self.rounds = 0


def compile_rules(rules: list[Rule], max_rules_per_ruleset: int = MAX_RULES_PER_RULESET) -> dict:
    """The engine's pattern for each rule, as data that depends on the rules alone:
    {"patterns": {rule id: definition}, "paths": {rule id: alternative paths}, "flags": sorted
    [(fact, value)], "texts": {rule id: its definition as the JSON the engine reads}}. Pathway.load keeps it in the knowledge cache beside the rule base, so a
    start need not compile again (Engine(..., compiled=...)). A rule too complex for the engine
    is a RuleError naming it."""
    staging = [r for r in rules if r.is_staging]
    _check_staging(staging, max_rules_per_ruleset)
    compiler = _Compiler()
    patterns, paths = {}, {}
    for rule in staging + [r for r in rules if not r.is_staging]:
        expression = compiler.compile(rule.when)
        phase = "derive" if rule.is_staging else "suggest"
        parts = _flatten("$and", [_KIND, {"phase": phase}]
                         + ([expression] if expression is not None else []))
        pattern = {"$and": parts}
        groups = _groups(pattern)
        count = paths[rule.id] = _paths(pattern)
        if groups > MAX_GROUPS or count > MAX_ALPHA_PATHS:
            raise RuleError(f"the condition is too complex for the rule engine ({groups} groups, "
                            f"at most {MAX_GROUPS}; {count} alternative paths, at most "
                            f"{MAX_ALPHA_PATHS}): split the rule or simplify its any/in/not",
                            file=rule.file, line=rule.line, rule=rule.id)
        patterns[rule.id] = {"all": [{"m": pattern}], "pri": rule.priority + 1}
    # each pattern as the JSON the engine reads, kept too: a large rule base spent a fifth of
    # building its engine writing them
    texts = {rid: json.dumps(p, ensure_ascii=False) for rid, p in patterns.items()}
    return {"patterns": patterns, "paths": paths, "flags": sorted(compiler.flags), "texts": texts}


def _check_staging(staging: list[Rule], max_rules_per_ruleset: int) -> None:
    if len(staging) > max_rules_per_ruleset - 1:
        raise RuleError(f"{len(staging)} staging rules: the engine holds at most "
                        f"{max_rules_per_ruleset - 1} staging rules in one ruleset")


def _covers(compiled, rules: list[Rule]) -> bool:
    """Whether `compiled` has the shape compile_rules gives, for exactly these rules."""
    if not isinstance(compiled, dict) or set(compiled) != {"patterns", "paths", "flags", "texts"}:
        return False
    patterns, paths, flags = compiled["patterns"], compiled["paths"], compiled["flags"]
    texts = compiled["texts"]
    ids = {rule.id for rule in rules}
    return (isinstance(patterns, dict) and isinstance(paths, dict) and isinstance(flags, list)
            and isinstance(texts, dict) and set(patterns) == ids and set(paths) == ids
            and set(texts) == ids and all(isinstance(t, str) for t in texts.values())
            and all(isinstance(p, dict) for p in patterns.values())
            and all(type(n) is int for n in paths.values())
            and all(isinstance(f, (tuple, list)) and len(f) == 2
                    and all(isinstance(x, str) for x in f) for f in flags))


class Engine:
    """A compiled rule base. Use as a context manager, or call close()."""

    def __init__(self, rules: list[Rule], value_order: dict[str, list[str]] | None = None,
                 *, max_rules_per_ruleset: int = MAX_RULES_PER_RULESET,
                 compiled: dict | None = None):
        """`compiled`: what compile_rules(rules) returned, kept with the rule base in the
        knowledge cache (used only if it covers exactly these rules; else compiled here)."""
        self.value_order = value_order or {}
        self.rules = list(rules)
        staging = [r for r in self.rules if r.is_staging]
        suggesting = [r for r in self.rules if not r.is_staging]
        _check_staging(staging, max_rules_per_ruleset)
        if not _covers(compiled, self.rules):
            compiled = compile_rules(self.rules, max_rules_per_ruleset)
        patterns, paths = compiled["patterns"], compiled["paths"]
        self._actions = {rule.id: self._staging_action(rule) for rule in staging}
        self._actions.update({rule.id: self._suggest_action(rule) for rule in suggesting})
        self._actions[_SINK] = None
        staging_paths = sum(paths[r.id] for r in staging)
        if staging_paths > MAX_ALPHA_PATHS:
            raise RuleError(f"the staging rules have {staging_paths} alternative condition paths; "
                            f"the engine holds at most {MAX_ALPHA_PATHS} in one ruleset "
                            "(simplify their any/in/not)")
        chunks: list[list[Rule]] = [[]]
        room, used = max_rules_per_ruleset - len(staging) - 1, 0
        for rule in suggesting:
            if len(chunks[-1]) >= room or used + paths[rule.id] > MAX_ALPHA_PATHS:
                chunks.append([])
                room, used = max_rules_per_ruleset - 1, 0
            chunks[-1].append(rule)
            used += paths[rule.id]
        base = f"cno{next(_ruleset_names)}"
        self.ruleset_names = [f"{base}_{i}" for i in range(len(chunks))]
        definitions, texts = {}, compiled["texts"]
        sink = {"all": [{"m": _KIND}], "pri": _SINK_PRI}
        for index, chunk in enumerate(chunks):
            ruleset: dict = {}
            if index == 0:
                for rule in staging:
                    ruleset[rule.id] = patterns[rule.id]
            for rule in chunk:
                ruleset[rule.id] = patterns[rule.id]
            ruleset[_SINK] = sink
            definitions[self.ruleset_names[index]] = ruleset
        self.definitions = definitions
        # what json.dumps(definition, ensure_ascii=False) writes, from the kept pattern texts
        sink_text = json.dumps(sink)
        self.definition_texts = {
            name: "{" + ", ".join(f"{json.dumps(rid, ensure_ascii=False)}: "
                                  f"{sink_text if rid == _SINK else texts[rid]}"
                                  for rid in ruleset) + "}"
            for name, ruleset in definitions.items()}
        self.flags = [tuple(flag) for flag in compiled["flags"]]
        self._prepare_fact_text(staging)
        self._rulesets: list[Ruleset] | None = []
        self._session: _Session | None = None
        with _LOCK:
            try:
                for name, text in self.definition_texts.items():
                    self._rulesets.append(Ruleset(name, text))
            except BaseException:
                self.close()
                raise

    def _staging_action(self, rule: Rule):
        derive = list(rule.derive.items())
        orders = [self.value_order.get(fact) for fact, _ in derive]

        def action(run: _Run):
            if rule.id in run.fired_set:
                return
            run.fired_set.add(rule.id)
            run.fired.append(rule.id)
            run.order[rule.id] = (0, run.rounds, rule.priority, rule.id)
            for (fact, value), order in zip(derive, orders):
                run.derivations.append((rule.id, fact, value))
                run.changed |= add_derivation(run.facts, fact, value, order)
        return action

    def _suggest_action(self, rule: Rule):
        key = (1, 0, rule.priority, rule.id)

        def action(run: _Run):
            if rule.id not in run.fired_set:
                run.fired_set.add(rule.id)
                run.fired.append(rule.id)
                run.order[rule.id] = key
        return action

    # -- facts as the engine reads them -----------------------------------------------------
    def _prepare_fact_text(self, staging: list[Rule]) -> None:
        """Key names and the JSON of constant values, built once for the rule base. Facts that
        staging rules derive are the only ones that change between rounds."""
        self._derived = {fact for rule in staging for fact in rule.derive}
        self._scalar_keys = {name: json.dumps(encode_name(name)) + ":"
                             for name, ftype in FACT_SCHEMA.items() if ftype.kind != "list"}
        self._number_facts = {name for name, ftype in FACT_SCHEMA.items() if ftype.kind == "number"}
        flags = [(fact, value, json.dumps(flag_name(fact, value)))
                 for fact, value in self.flags]
        self._static_flags = [(f, v, k + ":true") for f, v, k in flags if f not in self._derived]
        self._derived_flags = [(f, v, k + ":true") for f, v, k in flags if f in self._derived]
        self._derived_scalars = sorted(name for name in self._derived if name in self._scalar_keys)
        # the flags of one list fact, in the order above: their text is kept by the list's
        # values (few distinct lists of features, classes, drugs...), as are scalar members
        groups: dict[str, list] = {}
        for fact, value, member in self._static_flags:
            groups.setdefault(fact, []).append((value, member))
        self._flag_groups = list(groups.items())
        groups = {}
        for fact, value, member in self._derived_flags:
            groups.setdefault(fact, []).append((value, member))
        self._derived_flag_groups = list(groups.items())
        self._text_memo: dict[tuple, str] = {}
        self._staging_reads = frozenset(leaf.fact for rule in staging for leaf in leaves(rule.when))
        # (fact, key, a number?, read by staging?) for each scalar fact no round changes
        self._static_scalars = [(name, key, name in self._number_facts, name in self._staging_reads)
                                for name, key in self._scalar_keys.items()
                                if name not in self._derived]
        # staging rules that read a derived fact, and what they read of it: another round is
        # needed only when one that has not fired reads a value the last round added
        self._watchers = []
        for rule in staging:
            values, whole = set(), set()
            for leaf in leaves(rule.when):
                if leaf.fact not in self._derived:
                    continue
                if isinstance(leaf, Has):
                    values.update((leaf.fact, v) for v in leaf.values)
                else:
                    whole.add(leaf.fact)
            if values or whole:
                self._watchers.append((rule.id, values, whole))

    def _kept(self, key, build) -> str:
        """Text for a key from the bounded memo of fact text."""
        memo = self._text_memo
        text = memo.get(key)
        if text is None:
            text = build()
            if len(memo) >= _TEXT_MEMO:
                memo.clear()
            memo[key] = text
        return text

    def _flags_text(self, fact: str, have, flags: list) -> str:
        """The flag members of one list fact ("name":true for each value rules test that the
        list holds; none for the others), kept by the list's values; "" when it holds none."""
        if not have:
            return ""                 # holds nothing (most lists): no member
        def build():
            return ",".join([member for value, member in flags if value in have])
        try:
            return self._kept((fact, tuple(have)), build)
        except TypeError:             # unhashable values: written without the memo
            return build()

    def _static_text(self, facts: dict) -> str:
        """The part of a patient's fact that no round changes, as JSON members."""
        return self._static_texts(facts)[0]

    def _static_texts(self, facts: dict) -> tuple[str, str]:
        """The part of a patient's fact that no round changes, as JSON members: all of them,
        and those of the facts staging rules read (a fact in phase "derive" only meets staging
        rules, since every other pattern asks for phase "suggest")."""
        every, staged = [], []
        get, memo = facts.get, self._text_memo
        for name, key, number, read in self._static_scalars:
            value = get(name)
            if value is None:
                continue
            if number:
                text = memo.get((name, value.__class__, value))
                if text is None:
                    text = self._kept((name, value.__class__, value),
                                      lambda: key + _number_text(value))
            else:
                text = key + _value_text(value)
            every.append(text)
            if read:
                staged.append(text)
        read = self._staging_reads
        for fact, flags in self._flag_groups:
            have = get(fact)
            if not have:
                continue              # holds nothing (most lists): no member
            text = self._flags_text(fact, have, flags)
            if text:
                every.append(text)
                if fact in read:
                    staged.append(text)
        return ",".join(every), ",".join(staged)

    def _fact_text(self, static: str, facts: dict, sid: str, phase: str, gen: int,
                   serial: int = 0) -> str:
        """`serial`: the evaluation's number, which makes the fact's id unique in its session."""
        parts = [f'{{"sid":"{sid}","id":"{serial}{phase}{gen}","cno_kind":"patient",'
                 f'"phase":"{phase}","gen":{gen}']
        if static:
            parts.append(static)
        keys, numbers = self._scalar_keys, self._number_facts
        for name in self._derived_scalars:
            value = facts.get(name)
            if value is not None:
                parts.append(keys[name] + (_number_text(value) if name in numbers
                                           else _value_text(value)))
        get = facts.get
        for fact, flags in self._derived_flag_groups:
            text = self._flags_text(fact, get(fact, ()), flags)
            if text:
                parts.append(text)
        return ",".join(parts) + "}"

    def _another_round(self, run: "_Run", before: dict) -> bool:
        """Whether a staging rule that has not fired reads something the last round derived
        (`before`: each derived fact's values before the round). A rule's match depends only on
        what it reads: one that did not match before, on unchanged inputs, does not match now."""
        added, changed = set(), set()
        for fact, old in before.items():
            new = run.facts.get(fact)
            if new != old:
                if not (isinstance(new, list) and isinstance(old, list)):
                    return True                       # not a list of values: assume it matters
                changed.add(fact)
                added.update((fact, v) for v in new if v not in old)
        for rule_id, values, whole in self._watchers:
            if rule_id not in run.fired_set and (whole & changed or not values.isdisjoint(added)):
                return True
        return False

    def _fact(self, facts: dict, sid: str, phase: str, gen: int) -> dict:
        """The fact as data (what _fact_text writes), for tests and for reading."""
        return json.loads(self._fact_text(self._static_text(facts), facts, sid, phase, gen))

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, facts: dict) -> Evaluation:
        """Run one patient's facts through the engine, in the engine's live session (see
        _session_for)."""
        own = dict(facts)              # the caller's facts stay as given: staging adds to copies
        for name in self._derived:
            if isinstance(own.get(name), list):
                own[name] = list(own[name])
        run = _Run(own)
        static, staged = self._static_texts(run.facts)
        actions = self._actions
        with _LOCK:
            rulesets = self._rulesets
            if rulesets is None:
                raise EngineError("the engine is closed")
            session = self._session_for()
            sid, touched = session.sid, session.touched
            serial = next(_fact_ids)
            finished = False
            try:
                first = rulesets[0]
                touched.add(first)
                names = first.matches(self._fact_text(staged, run.facts, sid, "derive", 0, serial))
                while True:
                    before = {fact: _copy(run.facts.get(fact)) for fact in self._derived}
                    _run_actions(actions, names, run)
                    run.rounds += 1
                    if not (run.changed and run.rounds < MAX_ROUNDS
                            and self._another_round(run, before)):
                        break
                    run.changed = False
                    names = first.matches(self._fact_text(staged, run.facts, sid, "derive",
                                                          run.rounds, serial))
                final = self._fact_text(static, run.facts, sid, "suggest", run.rounds, serial)
                for ruleset in rulesets:
                    touched.add(ruleset)
                    _run_actions(actions, ruleset.matches(final), run)
                finished = True
            finally:
                session.evaluations += 1
                if not finished or session.evaluations >= SESSION_EVALUATIONS:
                    self._end_session()
        # the engine breaks priority ties its own way and fires split rulesets one after the
        # other: report staging rules by round, then everything by (priority, id), as the
        # reference evaluator does
        fired = sorted(run.fired, key=run.order.__getitem__)
        derivations = sorted(run.derivations, key=lambda d: run.order[d[0]])
        return Evaluation(facts=run.facts, fired=fired, derivations=derivations)

    def _session_for(self) -> "_Session":
        """The live engine session, or a new one. Creating a session costs the engine about a
        third of an evaluation (it clears an index for every rule), so one session serves
        SESSION_EVALUATIONS evaluations and is then deleted. Sharing is sound because every rule
        has a single pattern (a fact never joins an earlier one: it matches alone or not at all)
        and every fact has an id of its own (a fact whose id the session has seen is ignored;
        Ruleset.matches refuses that). The facts of a few patients stay in the engine's memory
        meanwhile; an evaluation that fails deletes the session."""
        session = self._session
        if session is None:
            session = self._session = _Session(str(next(_session_ids)))
        return session

    def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        for ruleset in session.touched:
            try:
                ruleset.delete_state(session.sid)
            except Exception:  # noqa: BLE001 - a session never created has nothing to delete
                pass

    def close(self):
        with _LOCK:
            if getattr(self, "_session", None) is not None:
                self._end_session()
            rulesets, self._rulesets = getattr(self, "_rulesets", None), None
            for ruleset in rulesets or ():
                ruleset.close()

    @property
    def closed(self) -> bool:
        return self._rulesets is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _run_actions(actions: dict, names: list[str], run: _Run) -> None:
    """Run our action for each rule the engine matched; a failure is an EngineError (a bug in
    an action, not bad input), raised after the engine has finished with the fact."""
    for name in names:
        action = actions.get(name)
        if action is None:
            continue
        try:
            action(run)
        except Exception as exc:  # noqa: BLE001 - reported as the engine's failure
            raise EngineError(f"a rule action failed inside the engine: {name}: {exc}") from exc


def _copy(value):
    return list(value) if isinstance(value, list) else value


_VALUE_TEXT: dict = {}


def _value_text(value) -> str:
    """JSON of a boolean or vocabulary value (few distinct ones: kept)."""
    text = _VALUE_TEXT.get((type(value), value))
    if text is None:
        text = json.dumps(value, ensure_ascii=False)
        if len(_VALUE_TEXT) < 4096:
            _VALUE_TEXT[(type(value), value)] = text
    return text


def _number_text(value) -> str:
    """JSON of a number fact, as _number maps it (the repr of a float: what json.dumps writes)."""
    if value is True or value is False:
        return "true" if value else "false"
    text = repr(float(value))
    if "e" in text and "." not in text:
        text = repr(_number(value))
    return text


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
