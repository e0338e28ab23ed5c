"""Shared fixtures: the fixture rule base and evidence library, a loaded fixture Pathway, its
vocabulary, helpers that build rules and profiles, and seeded random generators of valid profiles
and rule bases (used by the engine tests and the differential test).

The fixture rule base (tests/fixtures/rules) and seeds (tests/fixtures/seeds) are small and
stable; tests never depend on the real rules/ and seeds/. Nothing here sets CNO_PATHWAY_RULES for
the whole session (other test modules read the real rule base through it): tests that need the
variable use the `fixture_env` fixture, which sets it for one test only.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from cno_pathway.consult.consult import Pathway
from cno_pathway.patient.facts import FACT_SCHEMA, derive_facts
from cno_pathway.patient.profile import validate_profile
from cno_pathway.knowledge.rulebook import load_rulebook, parse_rule_file
from cno_pathway.knowledge.vocabulary import load_vocabulary
from cno_pathway.yamlio import parse_document

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FIXTURE_RULES = FIXTURES / "rules"
FIXTURE_SEEDS = FIXTURES / "seeds"
EXAMPLES = ROOT / "examples"


# -- paths and loaded knowledge -----------------------------------------------------------------

@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fixture_rules() -> Path:
    return FIXTURE_RULES


@pytest.fixture(scope="session")
def fixture_seeds() -> Path:
    return FIXTURE_SEEDS


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def vocab():
    """The fixture rule base's vocabulary."""
    return load_vocabulary(FIXTURE_RULES)


@pytest.fixture(scope="session")
def fixture_book():
    """The fixture rule base, parsed."""
    return load_rulebook(FIXTURE_RULES, seeds=FIXTURE_SEEDS)


@pytest.fixture(scope="session")
def fixture_pathway():
    """The fixture rule base and seeds, loaded and compiled once for the session."""
    pathway = Pathway.load(FIXTURE_RULES, FIXTURE_SEEDS)
    yield pathway
    pathway.close()


@pytest.fixture(scope="session")
def pathway():
    """The repository's own rule base and evidence, loaded and compiled once for the session."""
    loaded = Pathway.load(ROOT / "rules", ROOT / "seeds")
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def value_order(vocab) -> dict:
    return {"stage": list(vocab.stages)}


@pytest.fixture
def fixture_env(monkeypatch):
    """CNO_PATHWAY_RULES / CNO_PATHWAY_SEEDS point at the fixtures for this test only."""
    from cno_pathway.commands.common import load_pathway

    monkeypatch.setenv("CNO_PATHWAY_RULES", str(FIXTURE_RULES))
    monkeypatch.setenv("CNO_PATHWAY_SEEDS", str(FIXTURE_SEEDS))
    load_pathway.cache_clear()
    yield {"CNO_PATHWAY_RULES": str(FIXTURE_RULES), "CNO_PATHWAY_SEEDS": str(FIXTURE_SEEDS)}
    load_pathway.cache_clear()


# -- profiles ---------------------------------------------------------------------------------

def _profile_data(**overrides) -> dict:
    data = {"age_years": 10, "diagnosis": "cno", "lesions": {"count": 3, "sites": ["tibia"]}}
    for key, value in overrides.items():
        data[key] = value
    return data


@pytest.fixture(scope="session")
def profile_data():
    """profile_data(**fields) -> a fresh minimal valid profile dict with fields replaced."""
    return _profile_data


@pytest.fixture(scope="session")
def make_profile(vocab):
    """make_profile(**fields) -> a validated PatientProfile (fixture vocabulary)."""
    def make(**overrides):
        return validate_profile(_profile_data(**overrides), vocab)
    return make


@pytest.fixture(scope="session")
def make_facts(vocab):
    """make_facts(data) -> derived facts of a plain profile dict (validated first)."""
    def make(data: dict) -> dict:
        return derive_facts(validate_profile(data, vocab), vocab)
    return make


# -- rules ------------------------------------------------------------------------------------

def _rule(rid: str, when, *, derive=None, suggest=None, priority=None, stage=None,
          status="reviewed") -> dict:
    rule: dict = {"id": rid, "title": f"rule {rid}", "status": status,
                  "stage": stage or ("staging" if derive is not None else "first_line"),
                  "when": when}
    if priority is not None:
        rule["priority"] = priority
    if derive is not None:
        rule["then"] = {"derive": derive}
    else:
        rule["then"] = {"suggest": suggest or {"kind": "consider", "rationale": f"because {rid}"}}
    return rule


@pytest.fixture(scope="session")
def rule():
    """rule(id, when, derive=..., suggest=..., priority=...) -> a rule as YAML-ready data."""
    return _rule


@pytest.fixture(scope="session")
def parse_rules(vocab, fixture_book):
    """parse_rules([rule dicts]) -> parsed Rule objects (no files: fast enough for properties)."""
    def parse(rules: list[dict], source: str = "rules/90-generated.yaml"):
        doc = parse_document(yaml.safe_dump(rules, sort_keys=False), source=source)
        return parse_rule_file(doc, vocab, fixture_book.sections)
    return parse


@pytest.fixture
def write_rules(tmp_path):
    """write_rules(rules, keep_fixture=True, name=...) -> a tmp copy of the fixture rule base
    with `rules` (a list of rule dicts, or YAML text) written to one more rule file."""
    counter = iter(range(1, 1000))

    def write(rules, *, keep_fixture: bool = True, name: str = "50-extra.yaml") -> Path:
        directory = tmp_path / f"rules-{next(counter)}"
        shutil.copytree(FIXTURE_RULES, directory)
        if not keep_fixture:
            (directory / "10-fixture.yaml").unlink()
        text = rules if isinstance(rules, str) else yaml.safe_dump(rules, sort_keys=False)
        (directory / name).write_text(text, encoding="utf-8")
        return directory
    return write


# -- subprocesses -----------------------------------------------------------------------------

def _run_python(code: str, *, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (for engine quirks that hang or crash the process)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT), env=full_env)


@pytest.fixture(scope="session")
def run_python():
    """run_python(code, timeout=...) -> CompletedProcess; raises TimeoutExpired on a hang."""
    return _run_python


# -- seeded random generators -----------------------------------------------------------------

# numbers a generated rule compares against, close to what generated profiles hold
NUMBER_VALUES = {
    "age_years": [1, 4, 9.5, 10, 12, 17.9, 18, 40, 100],
    "weight_kg": [2, 20, 32, 40, 80, 250],
    "age_at_onset_years": [0, 3, 9, 17, 18, 30],
    "lesions.count": [0, 1, 2, 3, 5, 10, 200],
    "labs.crp_mg_l": [0, 3, 10, 20, 100, 100.5],
    "labs.esr_mm_h": [0, 10, 30, 60, 200],
    "red_flag_count": [0, 1, 2, 3],
    "treatment_count": [0, 1, 2, 4],
    "failed_class_count": [0, 1, 2, 3],
}
OPS_BY_KIND = {
    "number": ["eq", "ne", "gt", "gte", "lt", "lte", "in", "present", "absent"],
    "bool": ["eq", "ne", "in", "present", "absent"],
    "enum": ["eq", "ne", "in", "present", "absent"],
    "list": ["has", "lacks", "present", "absent"],
}


def _vocab_values(vocab, fact: str) -> list:
    ftype = FACT_SCHEMA[fact]
    if ftype.kind == "number":
        return NUMBER_VALUES.get(fact, [0, 1, 2, 3, 10, 100])
    if ftype.kind == "bool":
        return [True, False]
    return vocab.values(ftype.vocabulary)


def _spelled(rng: random.Random, name: str) -> str:
    """A vocabulary name as a person might write it (case, spaces): the profile forgives it."""
    roll = rng.random()
    if roll < 0.1:
        return name.replace("_", " ").title()
    if roll < 0.15:
        return f" {name.upper()} "
    return name


def random_profile_data(rng: random.Random, vocab) -> dict:
    """Plain data of a valid profile (validate_profile accepts every one)."""
    count = rng.choice([0, 1, 1, 2, 3, 4, 6, 10, 25, 200])
    sites = rng.sample(vocab.values("sites"), rng.randint(0, min(count, 6)))
    age = rng.choice([0.5, 1, 4, 9.5, 10, 12, 15, 17.9, 18, 30, 65, 100])
    data: dict = {"age_years": age, "diagnosis": _spelled(rng, rng.choice(vocab.values("diagnoses"))),
                  "lesions": {"count": count, "sites": [_spelled(rng, s) for s in sites]}}
    lesions = data["lesions"]
    if "vertebra" in sites and rng.random() < 0.5:
        lesions["vertebral_fracture"] = True
    elif rng.random() < 0.3:
        lesions["vertebral_fracture"] = False
    if rng.random() < 0.5:
        lesions["symmetric"] = rng.random() < 0.5
    if rng.random() < 0.6:
        lesions["imaging"] = rng.choice(vocab.values("imaging"))
    if rng.random() < 0.5:
        data["sex"] = rng.choice(vocab.values("sexes"))
    if rng.random() < 0.5:
        data["weight_kg"] = rng.choice([2, 8, 20, 32, 40, 55, 80, 250])
    if rng.random() < 0.6:
        data["age_at_onset_years"] = rng.choice([x for x in (0, 1, 3, 9, 12, 17, 17.9, 18, 20, 35, 99)
                                                 if x <= age])
    if rng.random() < 0.7:
        data["activity"] = {name: rng.random() < 0.5 for name in
                            rng.sample(["pain", "swelling", "functional_impairment",
                                        "active_lesions_on_mri", "new_lesions"], rng.randint(0, 5))}
    labs: dict = {}
    if rng.random() < 0.5:
        labs["crp_mg_l"] = rng.choice([0, 3, 9.9, 10, 20, 100, 100.5, 300])
    if rng.random() < 0.5:
        labs["esr_mm_h"] = rng.choice([0, 10, 30, 31, 60, 200])
    if rng.random() < 0.4:
        labs["cbc_normal"] = rng.random() < 0.7
    if labs:
        data["labs"] = labs
    data["features"] = [_spelled(rng, f) for f in rng.sample(vocab.values("features"), rng.randint(0, 3))]
    if rng.random() < 0.4:
        data["red_flags"] = rng.sample(vocab.values("red_flags"), rng.randint(0, 3))
    if rng.random() < 0.7:
        data["biopsy"] = rng.choice(vocab.values("biopsy"))
    if rng.random() < 0.5:
        data["hla_b27"] = rng.choice(vocab.values("hla_b27"))
    treatments = []
    ongoing: set = set()
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 5])):
        drug = rng.choice(vocab.values("drugs"))
        entry: dict = {"drug": _spelled(rng, drug),
                       "months": rng.choice([0, 0.5, 1, 2.9, 3, 4, 6, 12, 36]),
                       "response": rng.choice(vocab.values("responses"))}
        if rng.random() < 0.3:
            entry["adverse_events"] = rng.sample(vocab.values("adverse_events"), rng.randint(0, 2))
        if rng.random() < 0.4 and drug not in ongoing:
            entry["ongoing"] = True
            ongoing.add(drug)
        treatments.append(entry)
    data["treatments"] = treatments
    return data


def random_condition(rng: random.Random, vocab, depth: int = 0) -> dict:
    """A random condition tree over FACT_SCHEMA using every operator."""
    if depth < 3 and rng.random() < 0.35:
        op = rng.choice(["all", "any", "not"])
        if op == "not":
            return {"not": random_condition(rng, vocab, depth + 1)}
        return {op: [random_condition(rng, vocab, depth + 1) for _ in range(rng.randint(0, 3))]}
    fact = rng.choice(list(FACT_SCHEMA))
    op = rng.choice(OPS_BY_KIND[FACT_SCHEMA[fact].kind])
    if op in ("present", "absent"):
        return {op: fact}
    facts = [fact]
    if rng.random() < 0.15:  # one operator over two facts: {eq: {a: 1, b: 2}} means both
        facts.append(rng.choice([f for f, t in FACT_SCHEMA.items()
                                 if op in OPS_BY_KIND[t.kind] and f != fact]))
    parts = {}
    for fact in facts:
        values = _vocab_values(vocab, fact)
        if op in ("has", "lacks"):
            picked = rng.sample(values, rng.randint(1, min(2, len(values))))
            parts[fact] = picked if len(picked) > 1 or rng.random() < 0.5 else picked[0]
        elif op == "in":
            parts[fact] = rng.sample(values, rng.randint(1, min(3, len(values))))
        else:
            parts[fact] = rng.choice(values)
    return {op: parts}


def engine_cost(when: dict, vocab) -> tuple[int, int]:
    """(alternative paths, $and/$or groups) of a condition once compiled for the engine: the
    engine refuses a rule over MAX_ALPHA_PATHS or MAX_GROUPS, and the staging rules together
    must stay within MAX_ALPHA_PATHS, so generated rule bases stay within these."""
    from cno_pathway.engine.durable import _Compiler, _flatten, _groups, _paths
    from cno_pathway.knowledge.rulebook import _RuleParser
    from cno_pathway.yamlio import Document

    condition = _RuleParser(Document(data=None, source="generated"), vocab, {}).condition(when, ())
    expression = _Compiler().compile(condition)
    pattern = {"$and": _flatten("$and", [{"kind": 1}, {"phase": 1}]
                                + ([expression] if expression is not None else []))}
    return _paths(pattern), _groups(pattern)


def bounded_condition(rng: random.Random, vocab, max_paths: int) -> dict:
    """A random condition the engine accepts, with at most `max_paths` alternative paths."""
    from cno_pathway.engine.durable import MAX_GROUPS

    while True:
        when = random_condition(rng, vocab)
        paths, groups = engine_cost(when, vocab)
        if paths <= max_paths and groups <= MAX_GROUPS:
            return when


def random_rule_base(rng: random.Random, vocab, *, staging: int, suggesting: int,
                     prefix: str = "GEN") -> list[dict]:
    """Staging rules deriving random stages (which other rules test) and suggestion rules,
    within what the engine accepts (see engine_cost)."""
    stages = list(vocab.stages)
    sections = ["diagnosis", "first_line", "escalation", "refractory", "safety", "monitoring"]
    rules = []
    for i in range(staging):
        when = bounded_condition(rng, vocab, max(1, 48 // max(staging, 1)))
        if rng.random() < 0.5:  # chain on a stage another staging rule may derive
            when = {"all": [{rng.choice(["has", "lacks"]): {"stage": rng.choice(stages)}}, when]}
        rules.append(_rule(f"CNO-{prefix}-STAGE-{i}", when, derive={"stage": rng.choice(stages)},
                           priority=rng.choice([0, 1, 5, 50, 100, 60000, rng.randint(0, 60000)])))
    for i in range(suggesting):
        when = bounded_condition(rng, vocab, 30)
        if rng.random() < 0.4:
            when = {"all": [{rng.choice(["has", "lacks"]): {"stage": rng.choice(stages)}}, when]}
        rules.append(_rule(f"CNO-{prefix}-R{i}", when, stage=rng.choice(sections),
                           suggest={"kind": rng.choice(["recommend", "consider", "avoid", "alert",
                                                        "investigate", "monitor"]),
                                    "rationale": "generated"},
                           priority=rng.choice([0, 1, 5, 50, 100, 60000, rng.randint(0, 60000)])))
    return rules


@pytest.fixture(scope="session")
def gen():
    """Seeded generators: gen.profile(rng, vocab), gen.condition(rng, vocab),
    gen.rule_base(rng, vocab, staging=, suggesting=)."""
    return types.SimpleNamespace(profile=random_profile_data, condition=random_condition,
                                 bounded_condition=bounded_condition, engine_cost=engine_cost,
                                 rule_base=random_rule_base, number_values=NUMBER_VALUES,
                                 ops_by_kind=OPS_BY_KIND)


# -- the fast subset (`make test-fast`, CI on the second and third Python) -------------------------
# Tests that take several seconds each on the 2-core machine: the full suite runs them on one
# interpreter; the other two run everything else. Named here so their files stay untouched.
SLOW_TESTS = {
    "test_engine_and_reference_agree_on_random_rule_bases", "test_no_gaps_and_no_conflicts",
    "test_gaps_on_the_fixture_are_clean_and_fast", "test_pathway_invariants_on_generated_profiles",
    "test_gaps_and_conflicts_are_reported", "test_cli_commands_are_clean_on_the_repository",
    "test_same_data_and_lines_as_pyyaml", "test_two_processes_give_the_same_bytes",
    "test_engine_and_reference_agree_on_the_fixture_rule_base", "test_safety_invariants",
    "test_a_thousand_generated_rules_compile_and_fire_like_the_reference",
    "test_raw_ruleset_of_several_hundred_rules_hangs_at_creation",
    "test_every_file_of_the_repository_reads_as_pyyaml_reads_it",
    "test_valid_profiles_always_get_a_consult_and_invalid_ones_a_message",
    "test_knowledge_files_never_crash_on_confused_types",
}


# Whole modules whose tests start processes, servers, browsers or clusters, or build wheels:
# what they check does not depend on the interpreter's minor version, and together they are
# about half of the suite's time. The full suite on 3.11 runs them.
SLOW_MODULES = {
    "test_cluster", "test_server", "test_webform", "test_feedback", "test_html_browser",
    "test_packaging", "test_interactive", "test_terminal", "test_hostile", "test_hostile_knowledge",
    "test_differential", "test_batch", "test_jsonout",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if (item.originalname in SLOW_TESTS or module in SLOW_MODULES
                or item.get_closest_marker("slow")):
            item.add_marker(pytest.mark.slow)
