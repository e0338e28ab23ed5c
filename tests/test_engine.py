"""The durable_rules adapter (cno_pathway/engine.py) and every durable-rules 2.0.28 sharp edge.

Each edge is pinned twice where that means something: the raw quirk, shown directly against
durable.engine, and our adapter avoiding it. Raw quirks that hang or crash the interpreter (the
absent-only loop, deleting a session where no action ran, the ruleset-size hang, the match-stack
overflow) run only in a child interpreter with a timeout, and the test asserts the bad outcome
there; the suite itself never hangs or crashes. Not demonstrated raw: the extension's lack of
thread safety (a race could crash anything); only our lock is tested.
"""

from __future__ import annotations

import json
import random
import textwrap
import threading

import durable.engine as durable
import pytest

from cno_pathway.engine.durable import MAX_ALPHA_PATHS, MAX_GROUPS, MAX_RULES_PER_RULESET, Engine


class QuietHost(durable.Host):
    """durable's own host layer without its dispatch timer threads: only the raw tests use it,
    to show the host layer's edges (the adapter drives the C extension itself)."""

    def _run(self):
        return None

    def delete_rulesets(self):
        import durable_rules_engine

        for ruleset in self._ruleset_list:
            durable_rules_engine.delete_ruleset(ruleset._handle)
        self._ruleset_list = []
        self._ruleset_directory = {}
from cno_pathway.errors import EngineError, RuleError
from cno_pathway.engine.evaluation import reference_evaluate
from cno_pathway.patient.facts import FACT_SCHEMA, derive_facts
from cno_pathway.patient.profile import validate_profile
from cno_pathway.knowledge.rulebook import MAX_PRIORITY, load_rulebook

# A Host without the dispatch timer threads, written against durable.engine directly: the
# threads would race the main thread inside the (not thread-safe) extension.
RAW = textwrap.dedent("""
    import json, os, sys, threading
    import durable.engine as d
    import durable_rules_engine

    class Host(d.Host):
        def _run(self):
            pass
""")


def _code(body: str) -> str:
    return RAW + textwrap.dedent(body)


def _last_json(stdout: str):
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "the child printed nothing"
    return json.loads(lines[-1])


def _evaluate_both(rules, facts, value_order, **engine_options):
    with Engine(rules, value_order, **engine_options) as engine:
        got = engine.evaluate(facts)
    return got, reference_evaluate(rules, facts, value_order)


def _book(directory, fixture_seeds):
    return load_rulebook(directory, seeds=fixture_seeds)


# -- actions take one parameter -------------------------------------------------------------------

def test_raw_two_parameter_action_is_async_and_stalls_the_session(run_python):
    """A two-parameter action is called with a callback as its 2nd argument and, since nobody
    calls the callback, the session never completes: later facts run no action at all."""
    result = run_python(_code("""
        seen = []
        def act(c, rule_id="CNO-X"):
            seen.append(rule_id if isinstance(rule_id, str) else type(rule_id).__name__)
        host = Host()
        host.register_rulesets({"rs": {"r": {"all": [{"m": {"k": "x"}}], "run": act}}})
        host.assert_fact("rs", {"sid": "1", "k": "x", "n": 1})
        host.assert_fact("rs", {"sid": "1", "k": "x", "n": 2})
        print(json.dumps(seen))
        os._exit(0)
    """), timeout=60)
    assert result.returncode == 0, result.stderr
    # called once, with durable's callback instead of the rule id, then never again
    assert _last_json(result.stdout) == ["function"]


def test_the_adapter_hands_durable_no_actions_and_runs_its_own(fixture_pathway):
    """The definitions given to the C extension hold patterns and priorities only; the actions
    (ours, one argument: the run) are called by the adapter, never by durable's Promise."""
    engine = fixture_pathway.engine
    for name, ruleset in engine.definitions.items():
        for rule_id, definition in ruleset.items():
            assert set(definition) == {"all", "pri"}, (name, rule_id)
    import inspect

    for rule_id, action in engine._actions.items():
        if action is not None:
            assert len(inspect.signature(action).parameters) == 1, rule_id


def test_two_parameter_actions_are_what_durable_treats_as_async():
    def one(c):
        return None

    def two(c, extra=None):
        return None

    assert durable.Promise(one)._sync is True
    assert durable.Promise(two)._sync is False


# -- absent-only patterns -------------------------------------------------------------------------

def test_raw_absent_only_pattern_loops_forever(run_python):
    """A pattern made only of 'field absent' also matches the engine's own state fact, each
    action updates that state, and the rule fires again and again."""
    result = run_python(_code("""
        calls = [0]
        def act(c):
            calls[0] += 1
            if calls[0] > 1000:
                os._exit(3)        # looping: stop the child (sys.exit would be swallowed)
        host = Host()
        host.register_rulesets({"rs": {"r": {"all": [{"m": {"$nex": {"weight_kg": 1}}}],
                                             "run": act}}})
        host.assert_fact("rs", {"sid": "1", "age": 3})
        print(calls[0])
        os._exit(0)
    """), timeout=60)
    assert result.returncode == 3, (result.returncode, result.stdout[-300:], result.stderr[-300:])


def test_every_pattern_starts_with_the_fact_kind_discriminator(fixture_pathway, parse_rules, rule):
    rules = parse_rules([rule("CNO-T-ABSENT", {"absent": "weight_kg"}),
                         rule("CNO-T-NOT-PRESENT", {"not": {"present": "weight_kg"}}),
                         rule("CNO-T-STAGE", {"absent": "sex"}, derive={"stage": "treatment_naive"})])
    with Engine(rules) as own:
        for engine in (fixture_pathway.engine, own):
            for ruleset in engine.definitions.values():
                for definition in ruleset.values():
                    pattern = definition["all"][0]["m"]
                    first = pattern["$and"][0] if "$and" in pattern else pattern
                    assert first == {"cno_kind": "patient"}


def test_absent_only_conditions_fire_once_and_return(run_python, write_rules, rule, fixture_seeds):
    """Through the adapter (in a child, so that a regression cannot hang the suite)."""
    directory = write_rules([
        rule("CNO-T-NO-WEIGHT", {"absent": "weight_kg"}),
        rule("CNO-T-NOT-PRESENT", {"not": {"present": "weight_kg"}}),
        rule("CNO-T-STAGE-NO-SEX", {"absent": "sex"}, derive={"stage": "treatment_naive"}),
        rule("CNO-T-AFTER-STAGE", {"has": {"stage": "treatment_naive"}}),
    ], keep_fixture=False)
    result = run_python(textwrap.dedent(f"""
        import json
        from cno_pathway.engine.durable import Engine
        from cno_pathway.patient.facts import derive_facts
        from cno_pathway.patient.profile import validate_profile
        from cno_pathway.knowledge.rulebook import load_rulebook
        book = load_rulebook({str(directory)!r})
        engine = Engine(book.active, {{"stage": list(book.vocabulary.stages)}})
        out = []
        for data in ({{"age_years": 9, "diagnosis": "cno", "lesions": {{"count": 1}}}},
                     {{"age_years": 9, "weight_kg": 30, "sex": "male", "diagnosis": "cno",
                       "lesions": {{"count": 1}}}}):
            facts = derive_facts(validate_profile(data, book.vocabulary), book.vocabulary)
            out.append(engine.evaluate(facts).fired)
        engine.close()
        print(json.dumps(out))
    """), timeout=60)
    assert result.returncode == 0, result.stderr
    without, with_everything = _last_json(result.stdout)
    assert without == ["CNO-T-STAGE-NO-SEX", "CNO-T-AFTER-STAGE", "CNO-T-NO-WEIGHT",
                       "CNO-T-NOT-PRESENT"]
    assert with_everything == []


# -- sessions where no action ran; facts no rule handles ------------------------------------------

def test_raw_unhandled_fact_raises_and_deleting_its_session_is_undefined(run_python):
    """Raw durable_rules: a fact no rule matches raises MessageNotHandledException, and deleting
    that session afterwards is undefined behaviour in the C extension: on Python 3.11 it is a
    segfault, on 3.12 and 3.13 (another allocator underneath) it happens to survive. So the
    only thing pinned here is the exception; what we rely on is pinned by the next test."""
    result = run_python(_code("""
        def act(c):
            pass
        host = Host()
        host.register_rulesets({"rs": {"r": {"all": [{"m": {"k": "x"}}], "run": act}}})
        try:
            host.assert_fact("rs", {"sid": "1", "k": "no rule matches this"})
        except d.MessageNotHandledException:
            print("MessageNotHandledException", flush=True)
        os._exit(0)
    """), timeout=60)
    assert result.returncode == 0, result.stderr[-300:]
    assert "MessageNotHandledException" in result.stdout


def test_adapter_never_leaves_a_fact_unhandled_nor_deletes_such_a_session(run_python, write_rules,
                                                                          rule, fixture_seeds):
    """Our behaviour, on every interpreter: every ruleset's sink handles each patient fact, so
    no evaluation raises MessageNotHandledException and no session is deleted before an action
    ran in it (which segfaults on 3.11). Profiles no rule matches, many times over, in a child."""
    directory = write_rules([rule("CNO-T-HEAVY", {"gt": {"weight_kg": 200}})], keep_fixture=False)
    result = run_python(textwrap.dedent(f"""
        import json
        from cno_pathway.engine.durable import Engine
        from cno_pathway.patient.facts import derive_facts
        from cno_pathway.patient.profile import validate_profile
        from cno_pathway.knowledge.rulebook import load_rulebook
        book = load_rulebook({str(directory)!r})
        engine = Engine(book.active, {{"stage": list(book.vocabulary.stages)}})
        fired = []
        for age in range(1, 40):
            facts = derive_facts(validate_profile({{"age_years": age, "diagnosis": "cno",
                                                   "lesions": {{"count": 1}}}}, book.vocabulary),
                                 book.vocabulary)
            fired.append(engine.evaluate(facts).fired)
        engine.close()
        print(json.dumps(fired))
    """), timeout=120)
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])
    fired = _last_json(result.stdout)
    assert fired == [[]] * 39


def test_every_ruleset_keeps_a_lowest_priority_sink(fixture_pathway):
    engine = Engine(fixture_pathway.rulebook.active, fixture_pathway.value_order,
                    max_rules_per_ruleset=5)
    try:
        assert len(engine.ruleset_names) > 1
        for ruleset in engine.definitions.values():
            sink = ruleset["cno$sink"]
            assert sink["all"] == [{"m": {"cno_kind": "patient"}}]
            assert sink["pri"] == max(d.get("pri", 0) for d in ruleset.values())
            assert sink["pri"] <= 65535
    finally:
        engine.close()


def test_a_profile_no_rule_matches_evaluates_cleanly(run_python, write_rules, rule):
    """Nothing fires, in any ruleset; sessions are deleted; repeated many times (in a child:
    were the sink missing, deleting those sessions would crash the interpreter)."""
    directory = write_rules([rule(f"CNO-T-NEVER-{i}", {"gt": {"age_years": 100}})
                             for i in range(6)], keep_fixture=False)
    result = run_python(textwrap.dedent(f"""
        import json
        from cno_pathway.engine.durable import Engine
        from cno_pathway.patient.facts import derive_facts
        from cno_pathway.patient.profile import validate_profile
        from cno_pathway.knowledge.rulebook import load_rulebook
        book = load_rulebook({str(directory)!r})
        facts = derive_facts(validate_profile({{"age_years": 9, "diagnosis": "cno",
                                                "lesions": {{"count": 1}}}}, book.vocabulary),
                             book.vocabulary)
        fired, rulesets = [], []
        for size in (400, 3):
            engine = Engine(book.active, max_rules_per_ruleset=size)
            for _ in range(50):
                fired.extend(engine.evaluate(facts).fired)
            rulesets.append(len(engine.ruleset_names))
            engine.close()
        print(json.dumps({{"fired": fired, "rulesets": rulesets}}))
    """), timeout=60)
    assert result.returncode == 0, result.stderr
    outcome = _last_json(result.stdout)
    assert outcome["fired"] == []
    assert outcome["rulesets"][0] == 1 and outcome["rulesets"][1] > 2


# -- exceptions inside actions --------------------------------------------------------------------

def test_raw_action_exceptions_are_swallowed_into_the_session_state():
    def boom(c):
        raise ValueError("boom in an action")

    host = QuietHost()
    host.register_rulesets({"raw_exc": {"r": {"all": [{"m": {"k": "x"}}], "run": boom}}})
    try:
        state = host.assert_fact("raw_exc", {"sid": "1", "k": "x"})  # does not raise
        assert "boom in an action" in state["exception"]
        assert "boom in an action" in host.get_state("raw_exc", "1")["exception"]
        host.delete_state("raw_exc", "1")
    finally:
        host.delete_rulesets()


def _raising_for(rule_id, original):
    def factory(self, rule):
        action = original(self, rule)
        if rule.id != rule_id:
            return action

        def boom(run):
            raise RuntimeError(f"boom from {rule.id}")
        return boom
    return factory


@pytest.mark.parametrize("rule_id, kind", [("CNO-MON-MRI", "_suggest_action"),
                                           ("CNO-STAGE-NAIVE", "_staging_action")])
@pytest.mark.parametrize("size", [MAX_RULES_PER_RULESET, 5])
def test_an_exception_in_an_action_surfaces_as_engine_error(monkeypatch, fixture_book, value_order,
                                                            make_facts, profile_data, rule_id,
                                                            kind, size):
    monkeypatch.setattr(Engine, kind, _raising_for(rule_id, getattr(Engine, kind)))
    with Engine(fixture_book.active, value_order, max_rules_per_ruleset=size) as engine:
        naive = make_facts(profile_data())
        with pytest.raises(EngineError, match=f"boom from {rule_id}"):
            engine.evaluate(naive)
        # the engine stays usable: a patient for whom the failing rule does not fire is fine
        if rule_id == "CNO-STAGE-NAIVE":
            other = make_facts(profile_data(treatments=[
                {"drug": "naproxen", "months": 4, "response": "none"}]))
            assert "CNO-ESC-STEROID" in engine.evaluate(other).fired
        else:
            with pytest.raises(EngineError):
                engine.evaluate(naive)


# -- one engine session shared by consecutive evaluations ------------------------------------------

def _watching_sessions(monkeypatch):
    """(the sid of each fact asserted, the (ruleset, sid) of each session deleted)"""
    from cno_pathway.engine import driver

    asserted, deleted = [], []
    matches, delete_state = driver.Ruleset.matches, driver.Ruleset.delete_state

    def watched_matches(self, text):
        asserted.append(json.loads(text)["sid"])
        return matches(self, text)

    def watched_delete(self, sid):
        deleted.append((self.name, sid))
        return delete_state(self, sid)
    monkeypatch.setattr(driver.Ruleset, "matches", watched_matches)
    monkeypatch.setattr(driver.Ruleset, "delete_state", watched_delete)
    return asserted, deleted


def test_a_session_serves_a_fixed_number_of_evaluations_then_is_deleted(
        monkeypatch, fixture_book, value_order, make_facts, profile_data):
    from cno_pathway.engine.durable import SESSION_EVALUATIONS

    asserted, deleted = _watching_sessions(monkeypatch)
    facts = make_facts(profile_data())
    with Engine(fixture_book.active, value_order, max_rules_per_ruleset=5) as engine:
        rulesets = len(engine.ruleset_names)
        sids = []
        for _ in range(2 * SESSION_EVALUATIONS + 3):
            asserted.clear()
            engine.evaluate(facts)
            assert len(set(asserted)) == 1          # one session for all of one evaluation's facts
            sids.append(asserted[0])
        assert [sids.count(s) for s in dict.fromkeys(sids)] == [SESSION_EVALUATIONS] * 2 + [3]
        # each full session deleted in every ruleset, right after its last evaluation
        assert sorted(deleted) == sorted((name, sid) for sid in dict.fromkeys(sids[:-3])
                                         for name in engine.ruleset_names)
        assert len(deleted) == 2 * rulesets
    # closing deletes the live session too
    assert {sid for _, sid in deleted[2 * rulesets:]} == {sids[-1]}


def test_sharing_a_session_gives_what_a_fresh_session_gives(fixture_pathway, vocab, gen):
    """Facts of earlier patients stay in a shared session: every rule has one pattern, so none
    joins them, and none of their ids comes back. Each evaluation in its own engine is the
    reference."""
    rng = random.Random(11)
    samples = [derive_facts(validate_profile(gen.profile(rng, vocab), vocab), vocab)
               for _ in range(60)]
    book = fixture_pathway.rulebook
    shared = [fixture_pathway.engine.evaluate(f) for f in samples]
    for facts, got in zip(samples, shared):
        with Engine(book.active, fixture_pathway.value_order) as alone:
            want = alone.evaluate(facts)
        assert (got.fired, got.facts, got.derivations) == (want.fired, want.facts,
                                                           want.derivations)


def test_a_failed_evaluation_ends_its_session(monkeypatch, fixture_book, value_order, make_facts,
                                             profile_data):
    monkeypatch.setattr(Engine, "_staging_action",
                        _raising_for("CNO-STAGE-NAIVE", Engine._staging_action))
    asserted, deleted = _watching_sessions(monkeypatch)
    with Engine(fixture_book.active, value_order) as engine:
        engine.evaluate(make_facts(profile_data(treatments=[
            {"drug": "naproxen", "months": 4, "response": "none"}])))   # not naive: no failure
        assert not deleted
        with pytest.raises(EngineError, match="boom"):
            engine.evaluate(make_facts(profile_data()))
        assert {sid for _, sid in deleted} == set(asserted)    # the session the two shared
        assert len(deleted) == len(engine.ruleset_names)


def test_raw_a_fact_whose_id_the_session_has_seen_is_ignored_and_the_driver_refuses_it():
    import durable_rules_engine

    from cno_pathway.engine.driver import Ruleset

    ruleset = Ruleset("raw_seen", {"r": {"all": [{"m": {"k": "x"}}], "pri": 1}})
    try:
        text = '{"sid":"1","id":"a","k":"x"}'
        assert ruleset.matches(text) == ["r"]
        assert durable_rules_engine.assert_fact(ruleset.handle, text)[0] == 2   # raw: ignored
        with pytest.raises(EngineError, match="already holds a fact with this id"):
            ruleset.matches(text)
        assert ruleset.matches('{"sid":"1","id":"b","k":"x"}') == ["r"]
        ruleset.delete_state("1")
    finally:
        ruleset.close()


# -- the 1,024-session limit ----------------------------------------------------------------------

def test_raw_more_than_1024_live_sessions_raise_memory_error(run_python):
    result = run_python(_code("""
        def act(c):
            pass
        host = Host()
        host.register_rulesets({"rs": {"r": {"all": [{"m": {"k": "x"}}], "run": act}}})
        failed_at = None
        for i in range(1100):
            try:
                host.assert_fact("rs", {"sid": str(i), "k": "x"})
            except MemoryError:
                failed_at = i
                break
        print(json.dumps(failed_at))
        os._exit(0)
    """), timeout=60)
    assert result.returncode == 0, result.stderr
    assert _last_json(result.stdout) == 1024


def test_two_thousand_sequential_evaluations(fixture_pathway, vocab, gen):
    rng = random.Random(2024)
    book = fixture_pathway.rulebook
    samples = [derive_facts(validate_profile(gen.profile(rng, vocab), vocab), vocab) for _ in range(40)]
    expected = [reference_evaluate(book.active, f, fixture_pathway.value_order) for f in samples]
    engine = fixture_pathway.engine
    for i in range(2000):
        got = engine.evaluate(samples[i % len(samples)])
        want = expected[i % len(samples)]
        assert (got.fired, got.facts) == (want.fired, want.facts), i


# -- timer threads --------------------------------------------------------------------------------

def test_raw_host_starts_two_timer_threads(run_python):
    result = run_python(textwrap.dedent("""
        import json, os, threading
        import durable.engine as d
        before = threading.active_count()
        host = d.Host()
        print(json.dumps([before, threading.active_count()]))
        os._exit(0)
    """), timeout=60)
    assert result.returncode == 0, result.stderr
    before, after = _last_json(result.stdout)
    assert after == before + 2


def test_engine_construction_evaluation_and_close_start_no_threads(fixture_book, value_order,
                                                                     make_facts, profile_data):
    before = threading.active_count()
    host = QuietHost()
    assert threading.active_count() == before
    engine = Engine(fixture_book.active, value_order, max_rules_per_ruleset=5)
    assert threading.active_count() == before
    engine.evaluate(make_facts(profile_data()))
    assert threading.active_count() == before
    handles = [ruleset for ruleset in engine._rulesets]
    engine.close()
    assert engine.closed and all(ruleset.handle is None for ruleset in handles)
    engine.close()  # closing twice is harmless
    with pytest.raises(EngineError, match="closed"):
        engine.evaluate(make_facts(profile_data()))
    assert threading.active_count() == before
    host.delete_rulesets()


# -- thread safety --------------------------------------------------------------------------------

def test_concurrent_evaluations_agree_with_sequential_ones(fixture_pathway, fixture_book, vocab,
                                                          value_order, gen):
    rng = random.Random(7)
    samples = [derive_facts(validate_profile(gen.profile(rng, vocab), vocab), vocab) for _ in range(60)]
    split = Engine(fixture_book.active, value_order, max_rules_per_ruleset=5)
    engines = [fixture_pathway.engine, split]
    sequential = [[(e.evaluate(f).fired, e.evaluate(f).facts) for f in samples] for e in engines]
    results: dict = {}
    errors: list = []
    start = threading.Barrier(8)

    def work(worker):
        try:
            start.wait()
            engine = engines[worker % 2]
            order = list(range(len(samples)))
            random.Random(worker).shuffle(order)
            results[worker] = {i: (engine.evaluate(samples[i]).fired, engine.evaluate(samples[i]).facts)
                               for i in order * 3}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    split.close()
    assert not errors, errors
    assert len(results) == 8
    for worker, got in results.items():
        for i, outcome in got.items():
            assert outcome == sequential[worker % 2][i], (worker, i)


# -- registering strips `run` ---------------------------------------------------------------------

def test_raw_register_deletes_the_run_keys_of_the_dict_passed():
    def act(c):
        return None

    definitions = {"raw_run": {"r": {"all": [{"m": {"k": "x"}}], "run": act}}}
    host = QuietHost()
    try:
        host.register_rulesets(definitions)
        assert "run" not in definitions["raw_run"]["r"]
    finally:
        host.delete_rulesets()


def test_engine_definitions_stay_whole_after_the_rulesets_are_created(fixture_book, value_order):
    with Engine(fixture_book.active, value_order, max_rules_per_ruleset=5) as engine:
        for ruleset in engine.definitions.values():
            for rule_id, definition in ruleset.items():
                assert definition["all"] and "pri" in definition, rule_id
        assert set(engine._actions) >= {r.id for r in fixture_book.active}
        assert {r.id for r in fixture_book.active} <= {
            rid for ruleset in engine.definitions.values() for rid in ruleset}


# -- priority is an unsigned short ----------------------------------------------------------------

def test_raw_priority_wraps_around_above_65535():
    fired = []
    host = QuietHost()
    host.register_rulesets({"raw_pri": {
        "a": {"all": [{"m": {"t": "p"}}], "pri": 2, "run": lambda c: fired.append("pri 2")},
        "b": {"all": [{"m": {"t": "p"}}], "pri": 65537, "run": lambda c: fired.append("pri 65537")},
        "c": {"all": [{"m": {"t": "p"}}], "pri": 3, "run": lambda c: fired.append("pri 3")}}})
    try:
        host.assert_fact("raw_pri", {"sid": "1", "t": "p"})
        host.delete_state("raw_pri", "1")
    finally:
        host.delete_rulesets()
    assert fired == ["pri 65537", "pri 2", "pri 3"]  # 65537 became 1


@pytest.mark.parametrize("priority", [MAX_PRIORITY + 1, 65536, 70000, -1, 1.5, True])
def test_parser_caps_priority(write_rules, rule, fixture_seeds, priority):
    directory = write_rules([rule("CNO-T-PRI", {"all": []}, priority=priority)])
    with pytest.raises(RuleError) as caught:
        _book(directory, fixture_seeds)
    assert caught.value.rule == "CNO-T-PRI"
    assert caught.value.file.endswith("50-extra.yaml") and caught.value.line
    assert "priority" in caught.value.message


def test_extreme_priorities_fire_in_priority_order_below_the_engine_s_own_rules(
        write_rules, rule, fixture_seeds, make_facts, profile_data):
    directory = write_rules([
        rule("CNO-T-LATE-STAGE", {"all": []}, derive={"stage": "nsaid_trial_too_short"},
             priority=MAX_PRIORITY),
        rule("CNO-T-TOP", {"has": {"stage": "nsaid_trial_too_short"}}, priority=MAX_PRIORITY),
        rule("CNO-T-ZERO", {"all": []}, priority=0),
        rule("CNO-T-MID", {"all": []}, priority=5),
    ], keep_fixture=False)
    book = _book(directory, fixture_seeds)
    with Engine(book.active, {"stage": list(book.vocabulary.stages)}) as engine:
        for ruleset in engine.definitions.values():
            pris = {rid: d["pri"] for rid, d in ruleset.items()}
            own = {rid: p for rid, p in pris.items() if rid.startswith("cno$")}
            assert max(p for rid, p in pris.items() if rid not in own) < min(own.values())
            assert max(pris.values()) <= 65535
        got = engine.evaluate(make_facts(profile_data()))
    assert got.fired == ["CNO-T-LATE-STAGE", "CNO-T-ZERO", "CNO-T-MID", "CNO-T-TOP"]


# -- ruleset size: the ~540-rule hang -------------------------------------------------------------

def test_raw_ruleset_of_several_hundred_rules_hangs_at_creation(run_python):
    """Distinct tests under one alpha node go into a 512-bucket hash set probed linearly:
    once it is full, creating the ruleset spins forever. 510 rules are instant."""
    code = _code("""
        import time
        n = int(os.environ["N_RULES"])
        rules = {f"r{i}": {"all": [{"m": {"$and": [{"t": "p"}, {"$gt": {"x": i}}]}}],
                           "run": lambda c: None} for i in range(n)}
        Host().register_rulesets({"big": rules})
        print("created", flush=True)
        os._exit(0)
    """)
    small = run_python(code, timeout=60, env={"N_RULES": "510"})
    assert small.returncode == 0 and "created" in small.stdout, small.stderr
    import subprocess
    with pytest.raises(subprocess.TimeoutExpired):
        run_python(code, timeout=5, env={"N_RULES": "600"})


def test_split_rulesets_compile_and_fire_like_the_reference(fixture_book, value_order, vocab,
                                                            make_facts, gen):
    """The fixture rule base split into tiny rulesets gives exactly the reference's results."""
    rng = random.Random(11)
    samples = [derive_facts(validate_profile(gen.profile(rng, vocab), vocab), vocab) for _ in range(150)]
    for size in (5, 6, 7):
        with Engine(fixture_book.active, value_order, max_rules_per_ruleset=size) as engine:
            assert len(engine.ruleset_names) > 1
            assert all(len(d) <= size + 1 for d in engine.definitions.values())
            for facts in samples:
                got = engine.evaluate(facts)
                want = reference_evaluate(fixture_book.active, facts, value_order)
                assert (got.fired, got.facts, got.derivations) == (want.fired, want.facts,
                                                                   want.derivations)


def test_too_many_staging_rules_for_one_ruleset_is_a_rule_error(parse_rules, rule):
    rules = parse_rules([rule(f"CNO-T-S{i}", {"all": []}, derive={"stage": "treatment_naive"})
                         for i in range(5)])
    with pytest.raises(RuleError, match="staging rules"):
        Engine(rules, max_rules_per_ruleset=5)


def test_a_thousand_generated_rules_compile_and_fire_like_the_reference(run_python):
    """1,000 random suggestion rules (plus chained staging rules) compile into several rulesets
    and fire exactly like the reference; in a child, so a regression cannot hang the suite."""
    result = run_python(textwrap.dedent("""
        import json, random, sys
        sys.path.insert(0, "tests")
        import yaml
        from conftest import FIXTURE_RULES, random_profile_data, random_rule_base
        from cno_pathway.engine.durable import Engine, MAX_ALPHA_PATHS, _paths
        from cno_pathway.engine.evaluation import reference_evaluate
        from cno_pathway.patient.facts import derive_facts
        from cno_pathway.patient.profile import validate_profile
        from cno_pathway.knowledge.rulebook import load_rulebook, parse_rule_file
        from cno_pathway.yamlio import parse_document
        book = load_rulebook(FIXTURE_RULES)
        vocab = book.vocabulary
        order = {"stage": list(vocab.stages)}
        rng = random.Random(1000)
        data = random_rule_base(rng, vocab, staging=12, suggesting=1000)
        rules = parse_rule_file(parse_document(yaml.safe_dump(data), source="rules/gen.yaml"),
                                vocab, book.sections)
        engine = Engine(rules, order)
        budget_ok = all(
            sum(_paths(d["all"][0]["m"]) for rid, d in rs.items()
                if {"phase": phase} in d["all"][0]["m"].get("$and", [])) <= MAX_ALPHA_PATHS
            for rs in engine.definitions.values() for phase in ("derive", "suggest"))
        mismatches, fired = 0, 0
        for _ in range(120):
            facts = derive_facts(validate_profile(random_profile_data(rng, vocab), vocab), vocab)
            got = engine.evaluate(facts)
            want = reference_evaluate(rules, facts, order)
            mismatches += (got.fired, got.facts) != (want.fired, want.facts)
            fired += len(got.fired)
        engine.close()
        print(json.dumps({"rules": len(rules), "rulesets": len(engine.ruleset_names),
                          "budget_ok": budget_ok, "mismatches": mismatches, "fired": fired}))
    """), timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = _last_json(result.stdout)
    assert summary["rules"] == 1012
    assert summary["rulesets"] > 1
    assert summary["budget_ok"]
    assert summary["mismatches"] == 0
    assert summary["fired"] > 120  # the comparison is not vacuous


# -- the alpha match stack and the expression sequence (found while testing) ----------------------

def test_raw_more_than_64_pending_alpha_nodes_fail_the_assertion(run_python):
    code = _code("""
        n = int(os.environ["N_RULES"])
        rules = {f"r{i}": {"all": [{"m": {"$and": [{"t": "p"}, {f"f{i}": False}]}}],
                           "run": lambda c: None} for i in range(n)}
        host = Host()
        host.register_rulesets({"s": rules})
        fact = {"sid": "1", "t": "p"}
        fact.update({f"f{i}": False for i in range(n)})
        try:
            host.assert_fact("s", fact)
            print(json.dumps("ok"))
        except durable_rules_engine.error as exc:
            print(json.dumps(str(exc)))
        os._exit(0)
    """)
    assert _last_json(run_python(code, timeout=60, env={"N_RULES": "64"}).stdout) == "ok"
    assert "error code: 303" in _last_json(run_python(code, timeout=60, env={"N_RULES": "65"}).stdout)


def test_raw_more_than_15_groups_in_one_pattern_fail_creation(run_python):
    code = _code("""
        g = int(os.environ["GROUPS"])
        pattern = {"$and": [{"t": "p"}] + [{"$or": [{"a": i}, {"b": i}]} for i in range(g - 1)]}
        try:
            Host().register_rulesets({"g": {"r": {"all": [{"m": pattern}], "run": lambda c: None}}})
            print(json.dumps("ok"))
        except durable_rules_engine.error as exc:
            print(json.dumps(str(exc)))
        os._exit(0)
    """)
    assert _last_json(run_python(code, timeout=60, env={"GROUPS": "15"}).stdout) == "ok"
    assert "error code: 113" in _last_json(run_python(code, timeout=60, env={"GROUPS": "16"}).stdout)


def test_many_simultaneously_matching_rules_are_split_by_the_path_budget(parse_rules, rule, vocab,
                                                                         make_facts, profile_data):
    drugs = vocab.values("drugs")
    rules = parse_rules([rule(f"CNO-T-LACKS-{i}", {"lacks": {fact: drug}})
                         for i, (fact, drug) in enumerate(
                             (f, d) for f in ("tried_drugs", "failed_drugs", "ongoing_drugs",
                                              "intolerant_drugs") for d in drugs)])
    assert len(rules) > 64
    facts = make_facts(profile_data())
    got, want = _evaluate_both(rules, facts, {})
    assert got.fired == want.fired and len(got.fired) == len(rules)
    with Engine(rules) as engine:
        assert len(engine.ruleset_names) >= len(rules) // MAX_ALPHA_PATHS


def test_a_rule_too_complex_for_the_engine_is_a_rule_error_naming_it(parse_rules, rule):
    wide = rule("CNO-T-WIDE", {"all": [{"in": {"age_years": [1, 2, 3, 4, 5]}},
                                       {"in": {"weight_kg": [10, 20, 30, 40, 50]}},
                                       {"in": {"lesions.count": [1, 2, 3, 4, 5]}}]})
    deep: dict = {"eq": {"vertebral": True}}
    for i in range(MAX_GROUPS):
        deep = {"any": [{"eq": {"lesions.count": i}}, {"all": [{"eq": {"multifocal": True}}, deep]}]}
    for data in (wide, rule("CNO-T-DEEP", deep)):
        rules = parse_rules([data], source="rules/70-complex.yaml")
        with pytest.raises(RuleError) as caught:
            Engine(rules)
        assert caught.value.rule == data["id"]
        assert caught.value.file == "rules/70-complex.yaml" and caught.value.line == 1
        assert "too complex" in caught.value.message


# -- typed facts only -----------------------------------------------------------------------------

def test_raw_engine_compares_strings_with_numbers():
    got = []
    host = QuietHost()
    host.register_rulesets({"raw_cmp": {
        "gt": {"all": [{"m": {"$and": [{"t": "p"}, {"$gt": {"v": 75}}]}}],
               "run": lambda c: got.append(("gt", c.m.v))},
        "eq": {"all": [{"m": {"$and": [{"t": "p"}, {"w": 80}]}}],
               "run": lambda c: got.append(("eq", c.m.w))},
        "sink": {"all": [{"m": {"t": "p"}}], "pri": 60000, "run": lambda c: None}}})
    try:
        for sid, fact in enumerate(({"v": "abc"}, {"w": "80"})):
            host.assert_fact("raw_cmp", {"sid": str(sid), "t": "p", **fact})
            host.delete_state("raw_cmp", str(sid))
    finally:
        host.delete_rulesets()
    assert got == [("gt", "abc"), ("eq", "80")]  # "abc" > 75 and "80" == 80 both hold


def test_only_typed_facts_reach_the_engine(fixture_pathway, vocab, gen):
    engine = fixture_pathway.engine
    rng = random.Random(3)
    for _ in range(200):
        facts = derive_facts(validate_profile(gen.profile(rng, vocab), vocab), vocab)
        encoded = engine._fact(facts, "sid", "suggest", 0)
        for name, ftype in FACT_SCHEMA.items():
            key = name.replace(".", "_")
            if ftype.kind == "list" or name not in facts:
                assert key not in encoded, name
            elif ftype.kind == "number":
                assert type(encoded[key]) is float
            elif ftype.kind == "bool":
                assert type(encoded[key]) is bool
            else:
                assert encoded[key] in vocab.values(ftype.vocabulary)
        for fact, value in engine.flags:      # a held value's flag is true; others are absent
            assert encoded.get(f"{fact.replace('.', '_')}__{value}") is (
                True if value in facts[fact] else None)
        flags = {f"{fact.replace('.', '_')}__{value}" for fact, value in engine.flags}
        assert all(encoded[key] is True for key in encoded if key in flags)


@pytest.mark.parametrize("when", [{"gt": {"labs.crp_mg_l": "75"}}, {"eq": {"lesions.count": "80"}},
                                  {"eq": {"vertebral": "yes"}}, {"eq": {"sex": 1}},
                                  {"in": {"age_years": [1, "2"]}}, {"gt": {"sex": "female"}},
                                  {"eq": {"features": "ibd"}}, {"has": {"age_years": 3}}])
def test_rule_values_are_typed_by_the_parser(parse_rules, rule, when):
    with pytest.raises(RuleError) as caught:
        parse_rules([rule("CNO-T-TYPED", when)])
    assert caught.value.rule == "CNO-T-TYPED" and caught.value.line


def test_profiles_with_strings_for_numbers_never_reach_the_engine(vocab, profile_data):
    from cno_pathway.errors import ProfileError

    with pytest.raises(ProfileError):
        validate_profile(profile_data(labs={"crp_mg_l": "abc"}), vocab)
    with pytest.raises(ProfileError):
        validate_profile(profile_data(lesions={"count": "80"}), vocab)


# -- forward chaining -----------------------------------------------------------------------------

def test_forward_chaining_in_one_evaluation(fixture_pathway, make_facts, profile_data):
    facts = make_facts(profile_data(treatments=[
        {"drug": "naproxen", "months": 4, "response": "none"},
        {"drug": "prednisolone", "months": 1, "response": "relapse"}]))
    got = fixture_pathway.engine.evaluate(facts)
    assert got.fired == ["CNO-STAGE-NSAID-REFRACTORY", "CNO-STAGE-MULTI", "CNO-REF-MULTI",
                         "CNO-MON-MRI"]
    assert got.derivations == [("CNO-STAGE-NSAID-REFRACTORY", "stage", "nsaid_refractory"),
                               ("CNO-STAGE-MULTI", "stage", "multi_class_refractory")]
    assert got.facts["stage"] == ["nsaid_refractory", "multi_class_refractory"]
    assert facts["stage"] == []  # the caller's facts are not changed


def test_a_chain_of_staging_rules_over_several_rounds(write_rules, rule, fixture_seeds, make_facts,
                                                      profile_data):
    directory = write_rules([
        rule("CNO-T-S3", {"has": {"stage": "nsaid_refractory"}}, derive={"stage": "csdmard_failed"},
             priority=1),
        rule("CNO-T-S2", {"has": {"stage": "nsaid_trial_too_short"}},
             derive={"stage": "nsaid_refractory"}, priority=2),
        rule("CNO-T-S1", {"eq": {"treatment_count": 0}}, derive={"stage": "nsaid_trial_too_short"},
             priority=3),
        rule("CNO-T-ONCE", {"lacks": {"stage": "diagnosis_unconfirmed"}},
             derive={"stage": "treatment_naive"}, priority=4),
        rule("CNO-T-END", {"all": [{"has": {"stage": "csdmard_failed"}},
                                   {"has": {"stage": "treatment_naive"}}]}),
        rule("CNO-T-NOT-YET", {"lacks": {"stage": "csdmard_failed"}}),
    ], keep_fixture=False)
    book = _book(directory, fixture_seeds)
    order = {"stage": list(book.vocabulary.stages)}
    facts = make_facts(profile_data())
    got, want = _evaluate_both(book.active, facts, order)
    assert got.fired == ["CNO-T-S1", "CNO-T-ONCE", "CNO-T-S2", "CNO-T-S3", "CNO-T-END"]
    assert got.fired == want.fired and got.facts == want.facts
    assert got.facts["stage"] == ["treatment_naive", "nsaid_trial_too_short", "nsaid_refractory",
                                  "csdmard_failed"]  # vocabulary order


def test_presence_tests_on_list_facts_agree_with_the_reference(parse_rules, rule, make_facts,
                                                               profile_data):
    """List facts always have a value (possibly empty): `present` holds and `absent` does not.
    (A bug found here: the engine encodes list facts as flags only, so it used to say absent.)"""
    rules = parse_rules([rule("CNO-T-P", {"present": "features"}),
                         rule("CNO-T-A", {"absent": "stage"}),
                         rule("CNO-T-NP", {"not": {"present": "failed_classes"}}),
                         rule("CNO-T-NA", {"not": {"absent": "red_flags"}})])
    got, want = _evaluate_both(rules, make_facts(profile_data()), {})
    assert got.fired == want.fired == ["CNO-T-NA", "CNO-T-P"]


def test_edge_conditions_agree_with_the_reference(parse_rules, rule, make_facts, profile_data):
    whens = [{"any": []}, {"all": []}, {"not": {"any": []}}, {"not": {"all": []}},
             {"ne": {"sex": "female"}}, {"not": {"ne": {"sex": "female"}}},
             {"ne": {"weight_kg": 30}}, {"not": {"gt": {"weight_kg": 30}}},
             {"in": {"lesions.symmetric": [True]}}, {"not": {"in": {"sex": ["male"]}}},
             {"lacks": {"features": ["ibd", "acne"]}}, {"not": {"has": {"features": ["ibd", "acne"]}}},
             {"has": {"features": ["ibd", "acne"]}}, {"eq": {"vertebral": False, "multifocal": True}}]
    rules = parse_rules([rule(f"CNO-T-E{i}", when) for i, when in enumerate(whens)])
    for data in (profile_data(), profile_data(sex="male", weight_kg=30, features=["ibd"],
                                              lesions={"count": 1, "symmetric": True})):
        got, want = _evaluate_both(rules, make_facts(data), {})
        assert got.fired == want.fired
        assert got.fired  # some fire, some do not
        assert len(got.fired) < len(rules)


# -- numbers durable's JSON reader rejects (found by the differential test) -----------------------

def test_raw_numbers_with_an_exponent_but_no_fraction_are_rejected(run_python):
    result = run_python(_code("""
        host = Host()
        host.register_rulesets({"n": {"r": {"all": [{"m": {"t": "p"}}], "run": lambda c: None}}})
        out = {}
        for i, value in enumerate([1e-05, 1e+16, 5e-324, 1.5e-07, 0.0001, 12.5]):
            try:
                host.assert_fact("n", {"sid": str(i), "t": "p", "v": value})
                out[repr(value)] = "ok"
            except durable_rules_engine.error as exc:
                out[repr(value)] = str(exc)
        print(json.dumps(out))
        os._exit(0)
    """), timeout=60)
    assert result.returncode == 0, result.stderr
    out = _last_json(result.stdout)
    for bad in ("1e-05", "1e+16", "5e-324"):
        assert "error code: 204" in out[bad]
    assert out["1.5e-07"] == out["0.0001"] == out["12.5"] == "ok"


def test_tiny_numbers_in_facts_and_rules_agree_with_the_reference(parse_rules, rule, make_facts,
                                                                   profile_data):
    rules = parse_rules([rule("CNO-T-ABOVE-TINY", {"gt": {"labs.crp_mg_l": 1e-05}}),
                         rule("CNO-T-IS-TINY", {"eq": {"labs.crp_mg_l": 1e-05}}),
                         rule("CNO-T-ONSET-POSITIVE", {"gt": {"age_at_onset_years": 0}}),
                         rule("CNO-T-BELOW-TINY", {"lt": {"labs.esr_mm_h": 1e-05}}),
                         rule("CNO-T-IN-TINY", {"in": {"labs.esr_mm_h": [5e-324, 1]}})])
    cases = [({"crp_mg_l": 1e-05, "esr_mm_h": 5e-324}, 1e-05),
             ({"crp_mg_l": 2e-05, "esr_mm_h": 0}, 1e-06),
             ({"crp_mg_l": 0, "esr_mm_h": 1e-05}, 0)]
    seen = set()
    for labs, onset in cases:
        facts = make_facts(profile_data(labs=labs, age_at_onset_years=onset))
        got, want = _evaluate_both(rules, facts, {})
        assert got.fired == want.fired
        seen.update(got.fired)
    assert seen == {r.id for r in rules}


# -- the driver: the C extension without durable's host layer ---------------------------------------

def test_the_driver_reads_rule_names_without_parsing_the_match():
    from cno_pathway.engine.driver import _rule_name

    assert _rule_name('{"CNO-FL-NAPROXEN":{"m":{"sid": "1", "x": "a\\"b"}}}') == "CNO-FL-NAPROXEN"
    assert _rule_name('{"cno$sink":{"m":{}}}') == "cno$sink"
    assert _rule_name('{"odd\\"name":{"m":{}}}') == 'odd"name'     # escapes: parsed properly


def test_the_fact_text_is_the_fact_as_json(fixture_book, value_order, make_facts, profile_data):
    """Assembled once per patient from prebuilt key names; what the engine reads is the same
    fact the host layer's json.dumps wrote: encoded names, engine-safe numbers, flags."""
    with Engine(fixture_book.active, value_order) as engine:
        facts = make_facts(profile_data(weight_kg=0.00001 + 30, labs={"crp_mg_l": 1e-05}))
        fact = engine._fact(facts, "7", "derive", 2)
        assert fact["sid"] == "7" and fact["phase"] == "derive" and fact["gen"] == 2
        assert fact["cno_kind"] == "patient"
        # an id of its own per round: the engine skips hashing the fact into one, and a fact
        # whose id the session has seen would be ignored as already observed
        ids = {engine._fact(facts, "7", phase, gen)["id"] for phase in ("derive", "suggest")
               for gen in range(3)}
        assert len(ids) == 6
        assert fact["labs_crp_mg_l"] > 1e-05 and "e" in repr(1e-05)   # moved off 1e-05 (_number)
        assert fact["lesions_count"] == 3.0 and isinstance(fact["lesions_count"], float)
        for name, value in engine.flags:     # a flag for each value held; none for the others
            assert fact.get(f"{name.replace('.', '_')}__{value}") is (
                True if value in facts.get(name, ()) else None)
        assert all(isinstance(v, (str, int, float, bool)) for v in fact.values())


def test_rulesets_are_created_from_the_json_of_their_definitions(pathway, fixture_book,
                                                                  value_order):
    """The engine writes each ruleset's JSON from pattern texts kept with the compiled rule base:
    the very text json.dumps gives for its definition."""
    from cno_pathway.engine.durable import compile_rules

    for rules, order, size in ((pathway.rulebook.active, pathway.value_order, 400),
                               (fixture_book.active, value_order, 5)):
        compiled = compile_rules(rules, size)
        assert compiled["texts"] == {rid: json.dumps(p, ensure_ascii=False)
                                     for rid, p in compiled["patterns"].items()}
        with Engine(rules, order, max_rules_per_ruleset=size, compiled=compiled) as engine:
            assert engine.definition_texts == {
                name: json.dumps(definition, ensure_ascii=False)
                for name, definition in engine.definitions.items()}


def test_the_adapter_does_not_import_durables_host_layer(run_python):
    result = run_python(textwrap.dedent("""
        import sys
        import cno_pathway.engine.durable
        print("durable.engine" in sys.modules)
    """), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
