"""The pathway diagram (issue 7): drawn from the rule base in Mermaid, DOT and SVG, highlighted
for one patient, and never stale in docs/pathway.mmd or the README."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cno_pathway.teaching import diagram
from cno_pathway.teaching.cases import find_case
from cno_pathway.cli import main
from cno_pathway.knowledge.rulebook import load_rulebook

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def book():
    return load_rulebook(RULES)


@pytest.fixture(scope="module")
def graph(book):
    return diagram.build_graph(book)


@pytest.fixture(scope="module")
def dot_program():
    """Graphviz's `dot`: installed on demand when we are root, else the SVG tests are skipped."""
    if shutil.which("dot") is None and hasattr(os, "geteuid") and os.geteuid() == 0 \
            and shutil.which("apt-get"):
        subprocess.run("apt-get update -qq && apt-get install -y -qq graphviz", shell=True,
                       capture_output=True, timeout=900, check=False)
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed (Debian package graphviz)")
    return shutil.which("dot")


@pytest.fixture
def runner():
    return CliRunner()


def _invoke(runner, *args):
    return runner.invoke(main, list(args), env={"CNO_PATHWAY_RULES": None, "CNO_PATHWAY_SEEDS": None})


# -- the graph model ------------------------------------------------------------------------------

def test_every_stage_is_a_node_grouped_into_gates_and_pathway_steps(book, graph):
    stages = book.vocabulary.stages
    for name in stages:
        assert graph.stage_node[name] in graph.nodes
    groups = {g.id: g for g in graph.groups}
    gates = {n for n in groups["gates"].nodes}
    assert gates == {graph.stage_node[s] for s, st in stages.items() if st.step == diagram.GATE_STEP}
    steps = [[stages[s].step for s in stages if graph.stage_node[s] in rank]
             for rank in groups["pathway"].ranks]
    assert all(len(set(rank)) == 1 for rank in steps)
    assert [rank[0] for rank in steps] == sorted(rank[0] for rank in steps)


def test_every_active_suggestion_rule_is_a_node_with_kind_therapy_and_grade(book, graph):
    suggesting = [r for r in book.active if not r.is_staging]
    assert suggesting
    for rule in suggesting:
        node = graph.nodes[graph.rule_node[rule.id]]
        text = " ".join(node.lines)
        assert node.lines[0] == rule.id
        assert rule.suggest.kind in text
        assert f"grade {rule.evidence.grade}" in text
        therapy = diagram._therapy_label(book, rule.suggest.therapy)
        if therapy:
            assert therapy in text
        assert any(e.target == node.id for e in graph.edges), f"{rule.id} hangs off nothing"


def test_every_staging_rule_is_a_transition_into_the_stage_it_derives(book, graph):
    for rule in (r for r in book.active if r.is_staging):
        target = graph.stage_node[rule.derive["stage"]]
        edges = [e for e in graph.edges if e.rule == rule.id]
        assert edges and all(e.target == target and e.label == rule.id for e in edges)


def test_stage_alternatives_follow_the_condition_tree(parse_rules):
    (rule,) = parse_rules([{
        "id": "CNO-X", "title": "x", "status": "draft", "stage": "escalation",
        "when": {"all": [
            {"has": {"stage": "nsaid_refractory"}},
            {"lacks": {"stage": "treatment_naive"}},
            {"any": [{"has": {"stage": "multi_class_refractory"}}, {"eq": {"vertebral": True}}]},
            {"not": {"lacks": {"stage": "treatment_naive"}}},
        ]},
        "then": {"suggest": {"kind": "consider", "rationale": "r"}}}])
    alternatives = diagram.stage_alternatives(rule.when)
    assert alternatives == {frozenset({"nsaid_refractory", "multi_class_refractory", "treatment_naive"}),
                            frozenset({"nsaid_refractory", "treatment_naive"})}


def test_fixture_rule_base_edges_solid_dotted_and_any_stage(fixture_book):
    graph = diagram.build_graph(fixture_book)
    by_rule = {}
    for edge in graph.edges:
        by_rule.setdefault(edge.rule, []).append(edge)
    # CNO-REF-MULTI: any(stage multi_class_refractory, a CRP test) -> two dotted alternatives
    multi = {(e.source, e.required) for e in by_rule["CNO-REF-MULTI"]}
    assert multi == {(graph.stage_node["multi_class_refractory"], False), ("any_stage_refractory", False)}
    # CNO-MON-MRI: no condition on a stage -> its section's "any stage", solid
    assert [(e.source, e.required) for e in by_rule["CNO-MON-MRI"]] == [("any_stage_monitoring", True)]
    # CNO-STAGE-MULTI chains on a stage: nsaid_refractory -> multi_class_refractory
    assert [(e.source, e.target) for e in by_rule["CNO-STAGE-MULTI"]] == [
        (graph.stage_node["nsaid_refractory"], graph.stage_node["multi_class_refractory"])]
    assert [e.source for e in by_rule["CNO-STAGE-NAIVE"]] == [diagram.START]


# -- the three formats ----------------------------------------------------------------------------

def _mermaid_check(text: str) -> None:
    """Syntax sanity: declared nodes, matched subgraphs, valid link indexes and classes."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    declared = set()
    edges = 0
    depth = 0
    for line in lines[1:]:
        s = line.strip()
        if not s or s.startswith("%%"):
            continue
        if s.startswith("subgraph "):
            depth += 1
            continue
        if s == "end":
            depth -= 1
            assert depth >= 0
            continue
        m = re.match(r'^([a-z0-9_]+)(\(\[|\{\{|\[|\()"([^"]*)"(\]\)|\}\}|\]|\))$', s)
        if m:
            declared.add(m[1])
            assert "<" not in m[3].replace("<br/>", ""), s
            continue
        m = re.match(r'^([a-z0-9_]+) (-->|-\.->)(\|"[^"]+"\|)? ([a-z0-9_]+)$', s)
        if m:
            assert m[1] in declared and m[4] in declared, s
            edges += 1
            continue
        if s.startswith("classDef "):
            continue
        m = re.match(r"^class ([a-z0-9_,]+) ([A-Za-z]+)$", s)
        if m:
            assert set(m[1].split(",")) <= declared, s
            continue
        m = re.match(r"^linkStyle ([0-9,]+) ", s)
        if m:
            assert all(int(i) < edges for i in m[1].split(",")), s
            continue
        raise AssertionError(f"unexpected Mermaid line: {line!r}")
    assert depth == 0


def _dot_check(text: str) -> None:
    """Syntax sanity: balanced braces and quotes, edges between declared nodes."""
    body = [line for line in text.splitlines() if not line.startswith("//")]
    assert body[0] == "digraph pathway {" and body[-1] == "}"
    assert text.count("{") == text.count("}")
    declared, used = set(), set()
    for line in body:
        assert len(re.findall(r'(?<!\\)"', line)) % 2 == 0, line
        m = re.match(r"^\s*([a-z0-9_]+) \[label=", line)
        if m:
            declared.add(m[1])
        m = re.match(r"^\s*([a-z0-9_]+) -> ([a-z0-9_]+) ", line)
        if m:
            used.update((m[1], m[2]))
    assert used and used <= declared


def test_mermaid_of_the_repository_rules(book, graph):
    text = diagram.to_mermaid(graph)
    _mermaid_check(text)
    for name, stage in book.vocabulary.stages.items():
        assert f"{name} · " in text


def test_dot_of_the_repository_rules(graph):
    text = diagram.to_dot(graph)
    _dot_check(text)
    assert "subgraph cluster_gates" in text and "subgraph cluster_pathway" in text


def _svg_text(svg: str) -> str:
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    return " ".join(" ".join(el.itertext()) for el in root.iter(SVG + "text"))


def test_svg_is_well_formed_and_names_every_stage(book, graph, dot_program):
    text = _svg_text(diagram.to_svg(diagram.to_dot(graph)))
    words = " ".join(text.split())
    for name, stage in book.vocabulary.stages.items():
        assert name in words, name
        assert " ".join(stage.label.split()) in words, stage.label


def test_cli_formats(runner, dot_program, tmp_path):
    mermaid = _invoke(runner, "pathway")
    assert mermaid.exit_code == 0, mermaid.output
    _mermaid_check(mermaid.output)
    dot = _invoke(runner, "pathway", "--format", "dot")
    assert dot.exit_code == 0
    _dot_check(dot.output)
    out = tmp_path / "pathway.svg"
    svg = _invoke(runner, "pathway", "-o", str(out))     # format from the extension
    assert svg.exit_code == 0, svg.output
    _svg_text(out.read_text(encoding="utf-8"))


def test_output_is_deterministic(runner):
    first, second = _invoke(runner, "pathway", "-f", "dot"), _invoke(runner, "pathway", "-f", "dot")
    assert first.output == second.output
    assert not re.search(r"\d{4}-\d\d-\d\d", first.output)


def test_svg_without_graphviz_names_the_package(runner, monkeypatch):
    monkeypatch.setattr(diagram.shutil, "which", lambda name: None)
    result = _invoke(runner, "pathway", "--format", "svg")
    assert result.exit_code == 2
    assert "graphviz" in result.stderr and "Traceback" not in result.stderr


# -- the diagram follows the rules ----------------------------------------------------------------

def _edit_rules(tmp_path: Path, rule_id: str, change) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    for path in sorted(rules.glob("[0-9]*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for rule in data or []:
            if rule["id"] == rule_id:
                change(rule)
                path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
                return rules
    raise AssertionError(f"{rule_id} not found")


def test_changing_a_rule_changes_the_diagram(runner, book, tmp_path):
    rule = next(r for r in book.active if not r.is_staging and r.suggest.therapy and r.evidence)
    new_grade = "A" if rule.evidence.grade != "A" else "B"
    other = next(d for d in book.vocabulary.values("drugs") if d != rule.suggest.therapy)

    def change(raw):
        raw["evidence"]["grade"] = new_grade
        raw["then"]["suggest"]["therapy"] = other
        raw["then"]["suggest"].pop("regimen", None)

    rules = _edit_rules(tmp_path, rule.id, change)
    before = _invoke(runner, "pathway").output
    after = runner.invoke(main, ["pathway", "--rules", str(rules)]).output
    assert before != after
    node = f"{rule.id}<br/>{rule.suggest.kind} {other.replace('_', ' ')}<br/>grade {new_grade}"
    assert node in after and node not in before


def test_a_new_staging_rule_is_a_new_transition(runner, tmp_path):
    rules = _edit_rules(tmp_path, "CNO-STAGE-MULTI-CLASS-REFRACTORY",
                        lambda raw: raw["when"]["all"].append({"has": {"stage": "csdmard_failed"}}))
    after = runner.invoke(main, ["pathway", "--rules", str(rules)]).output
    assert 'stage_csdmard_failed -->|"CNO-STAGE-MULTI-CLASS-REFRACTORY"| stage_multi_class_refractory' in after
    assert "stage_csdmard_failed -->|\"CNO-STAGE-MULTI-CLASS-REFRACTORY\"" not in _invoke(runner, "pathway").output


# -- one patient's path ---------------------------------------------------------------------------

def test_case_highlights_the_path_and_where_the_patient_stands(book, runner):
    case = find_case("steroid-relapse")
    evaluation = diagram.evaluate_profile(book, case.profile(book.vocabulary))
    graph = diagram.build_graph(book, evaluation, patient=case.name)
    h = graph.highlight
    stages = book.vocabulary.stages
    top = max(stages[s].step for s in case.expect_stage)
    assert h.stages == {graph.stage_node[s] for s in case.expect_stage}
    assert h.current == {graph.stage_node[s] for s in case.expect_stage if stages[s].step == top}
    assert h.rules == {graph.rule_node[r] for r in case.expect_suggestions}
    for index in h.edges:
        assert graph.edges[index].rule in evaluation.fired_set

    mermaid = _invoke(runner, "pathway", "--case", case.name).output
    _mermaid_check(mermaid)
    here = re.search(r"^  class (\S+) here$", mermaid, re.M)[1].split(",")
    assert set(here) == set(h.current)
    assert "linkStyle" in mermaid and "onPath" in mermaid
    dot = _invoke(runner, "pathway", "--case", case.name, "-f", "dot").output
    _dot_check(dot)
    for nid in h.current:
        assert re.search(rf"^\s*{nid} \[.*fillcolor=\"{diagram._HERE_FILL}\".*penwidth=\"4\"", dot, re.M)
    assert "highlighted: steroid-relapse" in dot
    assert "onPath" not in _invoke(runner, "pathway").output


def test_profile_file_highlights_too(runner, examples_dir):
    result = _invoke(runner, "pathway", "--profile", str(examples_dir / "red-flags.yaml"))
    assert result.exit_code == 0, result.output
    assert " here" in result.output and "Highlighted: red-flags" in result.output


def test_bad_arguments_exit_2(runner, examples_dir):
    both = _invoke(runner, "pathway", "--case", "steroid-relapse", "--profile",
                   str(examples_dir / "red-flags.yaml"))
    assert both.exit_code == 2
    unknown = _invoke(runner, "pathway", "--case", "no-such-case")
    assert unknown.exit_code == 2 and "no-such-case" in unknown.stderr


# -- the committed diagrams are current -----------------------------------------------------------

def test_docs_pathway_mmd_is_current(graph):
    committed = (ROOT / "docs" / "pathway.mmd").read_text(encoding="utf-8")
    assert committed == diagram.to_mermaid(graph), \
        "docs/pathway.mmd is stale: run `make diagram` and commit the result"


def test_readme_diagram_is_current(graph):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    embedded = diagram.embedded_mermaid(readme)
    assert embedded is not None, "README.md has no generated Mermaid block: run `make diagram`"
    assert embedded == diagram.to_mermaid(graph), \
        "the README's pathway diagram is stale: run `make diagram` and commit the result"


def test_embed_replaces_only_the_generated_block(runner, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text(f"# Notes\n\nbefore\n\n{diagram.EMBED_START}\nold\n{diagram.EMBED_END}\n\nafter\n",
                     encoding="utf-8")
    result = _invoke(runner, "pathway", "--embed", str(notes))
    assert result.exit_code == 0, result.output
    text = notes.read_text(encoding="utf-8")
    assert text.startswith("# Notes\n\nbefore\n\n") and text.endswith(f"{diagram.EMBED_END}\n\nafter\n")
    assert diagram.embedded_mermaid(text) == _invoke(runner, "pathway").output
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n", encoding="utf-8")
    assert _invoke(runner, "pathway", "--embed", str(plain)).exit_code == 2
