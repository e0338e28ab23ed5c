"""The pathway diagram (issues 7, 14 and 15): drawn from the rule base in Mermaid, DOT and SVG as
a step-up pathway a person can read, highlighted for one patient, escaped against hostile text,
embedded safely in Markdown, and never stale in docs/pathway.mmd or the README."""

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cno_pathway.cli import main
from cno_pathway.knowledge.rulebook import load_rulebook
from cno_pathway.teaching import diagram
from cno_pathway.teaching.cases import find_case

from diagram_syntax import SVG, parse_dot, parse_mermaid, parse_svg

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"


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


def _spine(graph):
    return [u for band in graph.bands for u in band.units
            if graph.nodes[u.nodes[0]].role == "stage"]


# -- the model: a step-up pathway a person can read -----------------------------------------------

def test_stages_run_top_to_bottom_in_step_order(book, graph):
    stages = book.vocabulary.stages
    spine = _spine(graph)
    steps = [[stages[graph.nodes[n].stage].step for n in unit.nodes] for unit in spine]
    assert all(len(set(step)) == 1 for step in steps), "a unit holds the stages of one step"
    assert [s[0] for s in steps] == sorted({st.step for st in stages.values() if st.step})
    placed = [n for unit in spine for n in unit.nodes]
    assert sorted(placed) == sorted(graph.stage_node[s] for s, st in stages.items() if st.step)
    # one arrow from each step to the next, and nothing else between pathway stages
    step_edges = [(e.source, e.target) for e in graph.edges if e.role == "step"]
    assert step_edges == [(a.id, b.id) for a, b in zip(spine, spine[1:])]


def test_gates_come_first_and_only_staging_rules_link_them(book, graph):
    stages = book.vocabulary.stages
    gates = {graph.stage_node[s] for s, st in stages.items() if st.step == diagram.GATE_STEP}
    first = graph.bands[0]
    assert gates <= {n for u in first.units for n in u.nodes}
    for edge in graph.edges:
        if edge.role == "gate":
            assert edge.rules and all(book.by_id[r].is_staging for r in edge.rules)
            # a dashed link touches a gate, or links stages of one step (e.g. a treatment that
            # works makes escalation wait): never a step up, which the spine already draws
            steps = {graph.stage_node[s]: st.step for s, st in stages.items()}
            assert (edge.source in gates or edge.target in gates
                    or steps[edge.source] >= steps[edge.target])


def test_bands_follow_the_rulebook_sections(book, graph):
    order = [name for name, _ in sorted(book.sections.items(), key=lambda item: item[1].step)]
    labels = {book.sections[name].label: i for i, name in enumerate(order)}
    drawn = [band.label for band in graph.bands if band.id != diagram.ANY_BAND]
    assert [labels[label] for label in drawn] == sorted(labels[label] for label in drawn)
    assert graph.bands[-1].id == diagram.ANY_BAND


def test_no_node_links_to_everything(graph):
    assert "profile" not in graph.nodes
    fan_out = {}
    for edge in graph.edges:
        fan_out[edge.source] = fan_out.get(edge.source, 0) + 1
    assert max(fan_out.values()) <= 2, fan_out
    assert len(graph.edges) < len(graph.nodes)


def test_every_suggestion_rule_is_a_line_in_clinical_words(book, graph):
    """Each active suggestion rule is a line of a box: its kind, its therapy in vocabulary
    words and its grade; the rule id is only in the line's tooltip."""
    rows = {}
    for node in graph.nodes.values():
        for row in node.rows:
            rows.setdefault(row.rule, []).append((node, row))
    suggesting = [r for r in book.active if not r.is_staging]
    assert set(rows) == {r.id for r in suggesting}
    for rule in suggesting:
        for node, row in rows[rule.id]:
            assert row.kind == rule.suggest.kind
            assert row.grade == rule.evidence.grade
            label = diagram.therapy_label(book, rule.suggest.therapy)
            assert row.what == (label or rule.title)
            assert row.tooltip.startswith(rule.id)
            assert rule.id not in row.what + row.note + node.title
    naproxen = next(row for _, row in rows["CNO-FL-NAPROXEN"])
    assert naproxen.what == "Naproxen (NSAID)"


def test_rules_hang_off_the_stages_they_name(book, graph):
    stages = book.vocabulary.stages
    anywhere = {n.id for n in graph.nodes.values() if n.role == "any"}
    for rule in (r for r in book.active if not r.is_staging):
        mentioned, standalone = diagram._attachments(rule, stages)
        holders = {nid for nid, n in graph.nodes.items() if any(r.rule == rule.id for r in n.rows)}
        if holders & anywhere:
            assert holders <= anywhere, f"{rule.id}: an any-stage rule is in one box only"
            assert standalone
            continue
        expected = {graph.stage_node[s] for s in mentioned}
        if standalone:
            expected.add(next(n for n in holders if graph.nodes[n].role == "findings"))
        assert holders == expected, rule.id


def test_any_stage_rules_are_grouped_in_one_band(book, graph):
    band = graph.bands[-1]
    assert band.id == diagram.ANY_BAND and not band.units
    titles = [graph.nodes[n].title for n in band.extra]
    assert titles == [book.sections["safety"].label, book.sections["monitoring"].label]
    assert sum(1 for n in graph.nodes.values() if n.role == "any") == len(band.extra)


def test_steps_stay_in_or_below_the_band_of_the_step_before(graph):
    index = {u.id: i for i, band in enumerate(graph.bands) for u in band.units}
    spine = _spine(graph)
    assert [index[u.id] for u in spine] == sorted(index[u.id] for u in spine)


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


def test_fixture_rule_base(fixture_book):
    graph = diagram.build_graph(fixture_book)
    holders = {}
    for node in graph.nodes.values():
        for row in node.rows:
            holders.setdefault(row.rule, set()).add(node.role)
    # CNO-REF-MULTI: any(stage multi_class_refractory, a CRP test): at the stage and on findings
    assert holders["CNO-REF-MULTI"] == {"stage", "findings"}
    # CNO-MON-MRI: monitoring needs no stage: the "at any stage" band
    assert holders["CNO-MON-MRI"] == {"any"}
    # CNO-STAGE-MULTI chains nsaid_refractory -> multi_class_refractory: a step up, no extra edge
    assert all(e.role == "step" for e in graph.edges)


@pytest.mark.parametrize("seed", range(12))
def test_random_rule_bases_draw_every_rule_once_per_place(seed, gen, vocab, parse_rules, fixture_book):
    """Whatever the rule base: every suggestion rule is a line somewhere, steps run down in
    order and never climb back a band, and both writers give exactly the model."""
    import dataclasses
    import random
    rng = random.Random(seed)
    rules = parse_rules(gen.rule_base(rng, vocab, staging=rng.randint(0, 6),
                                      suggesting=rng.randint(0, 14)))
    book = dataclasses.replace(fixture_book, rules=rules)
    graph = diagram.build_graph(book)
    drawn = {row.rule for node in graph.nodes.values() for row in node.rows}
    assert drawn == {r.id for r in rules if not r.is_staging}
    index = {u.id: i for i, band in enumerate(graph.bands) for u in band.units}
    spine = _spine(graph)
    assert [index[u.id] for u in spine] == sorted(index[u.id] for u in spine)
    steps = [vocab.stages[graph.nodes[u.nodes[0]].stage].step for u in spine]
    assert steps == sorted(set(steps))
    parsed = parse_mermaid(diagram.to_mermaid(graph))
    assert sorted(parsed.nodes) == sorted(graph.nodes)
    assert sorted(parse_dot(diagram.to_dot(graph)).nodes) == sorted(graph.nodes)


# -- the three formats parse into exactly the model -----------------------------------------------

def _expected(graph):
    nodes = list(graph.nodes)
    edges = [(e.source, e.target) for e in graph.edges]
    return nodes, edges


def test_mermaid_is_exactly_the_model(graph):
    parsed = parse_mermaid(diagram.to_mermaid(graph))
    nodes, edges = _expected(graph)
    assert sorted(parsed.nodes) == sorted(nodes)
    assert [(s, t) for s, t, style in parsed.edges if style != "~~~"] == edges
    assert set(parsed.groups) == {b.id for b in graph.bands} | {u.id for u in graph.units.values()
                                                                   if u.grouped}
    assert not parsed.link_styles
    for node in graph.nodes.values():          # rule ids are comments, not labels
        for row in node.rows:
            assert row.rule not in parsed.labels[node.id]
            assert any(c.startswith(f"{node.id} lines:") and row.rule in c for c in parsed.comments)


def test_dot_is_exactly_the_model(graph):
    parsed = parse_dot(diagram.to_dot(graph))
    nodes, edges = _expected(graph)
    assert sorted(parsed.nodes) == sorted(nodes)
    units = graph.units
    visible = [(s, t) for s, t, style in parsed.edges if style != "invis"]
    assert len(visible) == len(edges)
    for (tail, head), (source, target) in zip(visible, edges):
        assert tail in graph.endpoints(source) and head in graph.endpoints(target)
    for node in graph.nodes.values():
        label = parsed.attrs[node.id]["label"]
        for row in node.rows:
            assert f'TOOLTIP="{row.rule}:' in label and row.rule not in label.split("TOOLTIP")[0]
    assert {f"cluster_{u.id}" for u in units.values() if u.grouped} <= set(parsed.groups)


def test_svg_is_well_formed_and_links_only_to_its_own_rows(book, graph, dot_program):
    svg = diagram.to_svg(diagram.to_dot(graph))
    parsed = parse_svg(svg)
    assert sorted(parsed["nodes"]) == sorted(graph.nodes)
    assert parsed["edges"] == len(graph.edges)
    root = ET.fromstring(svg)
    words = " ".join(" ".join(el.itertext()) for el in root.iter(SVG + "text"))
    for stage in book.vocabulary.stages.values():
        for line in diagram._wrap(stage.label, diagram.WRAP):
            assert line in words, line
    assert any("CNO-FL-NAPROXEN" in title for title in parsed["titles"])


def test_svg_scales_down_to_a_narrow_window(graph, dot_program):
    svg = diagram.to_svg(diagram.to_dot(graph))
    root = re.search(r"<svg [^>]*>", svg)[0]
    assert 'width="100%"' in root and "max-width:" in root and "viewBox=" in root
    width = float(re.search(r'viewBox="[0-9.]+ [0-9.]+ ([0-9.]+) ', root)[1])
    assert width < 600, f"the drawing is {width}pt wide: too wide to read on a phone"


def test_cli_formats(runner, dot_program, tmp_path):
    mermaid = _invoke(runner, "pathway")
    assert mermaid.exit_code == 0, mermaid.output
    parse_mermaid(mermaid.output)
    dot = _invoke(runner, "pathway", "--format", "dot")
    assert dot.exit_code == 0
    parse_dot(dot.output)
    out = tmp_path / "pathway.svg"
    svg = _invoke(runner, "pathway", "-o", str(out))     # format from the extension
    assert svg.exit_code == 0, svg.output
    parse_svg(out.read_text(encoding="utf-8"))


def test_output_is_deterministic(runner):
    first, second = _invoke(runner, "pathway", "-f", "dot"), _invoke(runner, "pathway", "-f", "dot")
    assert first.output == second.output
    assert not re.search(r"\d{4}-\d\d-\d\d", first.output)


def test_svg_without_graphviz_names_the_package(runner, monkeypatch):
    monkeypatch.setattr(diagram.shutil, "which", lambda name: None)
    result = _invoke(runner, "pathway", "--format", "svg")
    assert result.exit_code == 2
    assert "graphviz" in result.stderr and "Traceback" not in result.stderr


# -- escaping: hostile text cannot add a statement ------------------------------------------------

HOSTILE = [
    'x"]\n  click stage_a href "javascript:alert(1)"\n  fake["RECOMMEND methotrexate 50 mg/kg"]',
    'a\n}\ngraph [URL="javascript:alert(1)"]\n//',
    '"]; evil [label="x"]; a -> evil; //',
    "\\N \\G \\n \\\\ &#x202E; &amp; <b>bold</b> <script>alert(1)</script>",
    "```\n<!-- end of generated diagram -->\n%%{init: {'securityLevel': 'loose'}}%%",
    "pipe | [bracket] {brace} (paren) `tick` 'single' \"double\" # hash; semi % per",
    "\u202eevil\u202c \u2066iso\u2069 \x00nul\x07bell\x1b[31mred\x1b]8;;http://x\x07 \u2028ls\u2029ps",
    "javascript:alert(document.domain)",
    "&#x202E;evil &#8238; #8238;evil #quot; #amp; &lt;script&gt;",
    "-->|x| a\nend\nsubgraph s\nclassDef x fill:red\nlinkStyle 0 stroke:red",
]

hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.sampled_from(list('"\'`<>[]{}()|#;%&\\\n\r\t\x00\x1b\u202e\u2028:= -ab')),
            max_size=40),
    st.text(max_size=30))


def _hostile_graph(draw) -> diagram.Graph:
    """A small graph in which every piece of text is hostile (ids stay ours, as in build_graph)."""
    text = lambda: draw(hostile_text)          # noqa: E731
    rows = lambda: tuple(diagram.Row(rule=text(), kind=draw(st.sampled_from(  # noqa: E731
        ["recommend", "alert", text()])), what=text(), grade=draw(st.none() | hostile_text),
        note=text(), tooltip=text()) for _ in range(draw(st.integers(0, 2))))
    nodes = {
        "stage_gate": diagram.Node("stage_gate", text(), "gate", rows(), text(), "gate"),
        "stage_a": diagram.Node("stage_a", text(), "stage", rows(), text(), "a"),
        "stage_b": diagram.Node("stage_b", text(), "stage", rows(), text(), "b"),
        "stage_c": diagram.Node("stage_c", text(), "stage", rows(), text(), "c"),
        "findings_x": diagram.Node("findings_x", text(), "findings", rows(), text()),
        "any_x": diagram.Node("any_x", text(), "any", rows(), text()),
    }
    bands = [diagram.Band("band_one", text(), (diagram.Unit("stage_gate", ("stage_gate",)),
                                              diagram.Unit("stage_a", ("stage_a",))), ("findings_x",)),
             diagram.Band("band_two", text(), (diagram.Unit("step_2", ("stage_b", "stage_c")),)),
             diagram.Band(diagram.ANY_BAND, text(), (), ("any_x",))]
    edges = [diagram.Edge("stage_a", "step_2", "step", text()),
             diagram.Edge("stage_gate", "stage_a", "gate", text(), (text(),))]
    graph = diagram.Graph(text(), nodes, bands, edges,
                          stage_node={"gate": "stage_gate", "a": "stage_a", "b": "stage_b", "c": "stage_c"})
    if draw(st.booleans()):
        graph.highlight = diagram.Highlight(
            label=text(), stages=frozenset({"stage_a", "stage_b"}), current=frozenset({"stage_b"}),
            rows=frozenset((nid, r.rule) for nid, n in nodes.items() for r in n.rows[:1]),
            edges=frozenset({0}))
    return graph


@st.composite
def hostile_graphs(draw):
    return _hostile_graph(draw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_graphs())
def test_hostile_text_cannot_add_a_mermaid_statement(graph):
    text = diagram.to_mermaid(graph)
    parsed = parse_mermaid(text)
    assert sorted(parsed.nodes) == sorted(graph.nodes)
    assert [(s, t) for s, t, style in parsed.edges if style != "~~~"] == \
        [(e.source, e.target) for e in graph.edges]
    assert set(parsed.groups) == {"band_one", "band_two", "step_2", diagram.ANY_BAND}
    assert not re.search(r"^\s*click\b", text, re.M)
    assert "```" not in text and diagram.EMBED_END not in text and diagram.EMBED_START not in text
    assert not re.search(r"[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", text)
    if graph.highlight:
        assert parsed.link_styles == [0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_graphs())
def test_hostile_text_cannot_add_a_dot_statement(graph):
    text = diagram.to_dot(graph)
    parsed = parse_dot(text)
    assert sorted(parsed.nodes) == sorted(graph.nodes)
    assert len([e for e in parsed.edges if e[2] != "invis"]) == len(graph.edges)
    assert set(parsed.groups) == {"cluster_band_one", "cluster_band_two", "cluster_step_2",
                                  f"cluster_{diagram.ANY_BAND}"}
    for attrs in list(parsed.attrs.values()) + parsed.edge_attrs:
        assert not {"URL", "href", "tailURL", "headURL", "labelURL", "edgeURL"} & set(attrs)
        for value in attrs.values():
            assert "\\" not in value.replace('\\"', ""), "Graphviz would expand a backslash escape"
    assert not re.search(r"[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_graphs())
def test_hostile_text_cannot_add_an_svg_link(dot_program, graph):
    parsed = parse_svg(diagram.to_svg(diagram.to_dot(graph)))
    assert sorted(parsed["nodes"]) == sorted(graph.nodes)
    assert parsed["edges"] == len(graph.edges)
    rows = sum(len(n.rows) for n in graph.nodes.values())
    assert len(parsed["hrefs"]) == 2 * rows     # the kind and the text cell of each line


def _hostile_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    path = rules / "rulebook.yaml"
    data = path.read_text(encoding="utf-8")
    name = 'CNO\n}\ngraph [URL="javascript:alert(1)"]\n//\u202e %%{init: {"securityLevel": "loose"}}%%'
    path.write_text(data.replace("name: CNO step-up pathway", f"name: {yaml.safe_dump(name).strip()}"
                                 .replace("\n...", "")), encoding="utf-8")
    return rules


def test_a_hostile_rule_base_name_reaches_no_link(runner, dot_program, tmp_path):
    rules = _hostile_rules(tmp_path)
    svg = runner.invoke(main, ["pathway", "--rules", str(rules), "-f", "svg"])
    if svg.exit_code == 2:        # a rule base check may refuse such a name: then say so clearly
        assert "rulebook.yaml" in svg.stderr and "Traceback" not in svg.stderr
        return
    assert svg.exit_code == 0, svg.output
    assert "javascript" in svg.output                       # shown as text ...
    parsed = parse_svg(svg.output)                          # ... never as a link
    assert all(href.startswith("#rule_") for href in parsed["hrefs"])
    dot = runner.invoke(main, ["pathway", "--rules", str(rules), "-f", "dot"])
    assert "URL" not in parse_dot(dot.output).attrs["graph"]
    mermaid = runner.invoke(main, ["pathway", "--rules", str(rules)])
    parse_mermaid(mermaid.output)
    assert "%%{init: {#34;securityLevel" not in mermaid.output
    assert mermaid.output.count("%%{") == 1


def test_a_hostile_profile_id_adds_no_mermaid_statement(runner, tmp_path, examples_dir):
    profile = yaml.safe_load((examples_dir / "red-flags.yaml").read_text(encoding="utf-8"))
    profile = profile.get("profile", profile)
    profile["id"] = ('x\n  click stage_treatment_naive href "javascript:alert(1)"\n'
                     '  fake["RECOMMEND methotrexate 50 mg/kg"]')
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(profile), encoding="utf-8")
    plain = parse_mermaid(_invoke(runner, "pathway").output)
    result = _invoke(runner, "pathway", "--profile", str(path))
    if result.exit_code == 2:     # a profile check may refuse such an id: then say so clearly
        assert "id" in result.stderr and "Traceback" not in result.stderr
        return
    assert result.exit_code == 0, result.output
    parsed = parse_mermaid(result.output)
    assert parsed.nodes == plain.nodes and "fake" not in parsed.nodes
    assert not re.search(r"^\s*click\b", result.output, re.M)


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
    rule = book.by_id["CNO-FL-NAPROXEN"]
    new_grade = "A" if rule.evidence.grade != "A" else "B"

    def change(raw):
        raw["evidence"]["grade"] = new_grade
        raw["then"]["suggest"]["therapy"] = "ibuprofen"
        raw["then"]["suggest"].pop("regimen", None)

    rules = _edit_rules(tmp_path, rule.id, change)
    before = _invoke(runner, "pathway").output
    after = runner.invoke(main, ["pathway", "--rules", str(rules)]).output
    line = f"{rule.suggest.kind}: Ibuprofen (NSAID) · grade {new_grade}"
    assert line in after and line not in before


def test_a_rule_naming_another_stage_moves_to_it(runner, tmp_path):
    rules = _edit_rules(tmp_path, "CNO-REF-ANAKINRA",
                        lambda raw: raw["when"]["all"].append({"has": {"stage": "csdmard_failed"}}))
    graph = diagram.build_graph(load_rulebook(rules))
    assert any(r.rule == "CNO-REF-ANAKINRA" for r in graph.nodes["stage_csdmard_failed"].rows)
    plain = diagram.build_graph(load_rulebook(RULES))
    assert not any(r.rule == "CNO-REF-ANAKINRA" for r in plain.nodes["stage_csdmard_failed"].rows)


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
    assert h.rules == set(case.expect_suggestions)
    for nid, rule in h.rows:                  # a line lights up only where the patient is
        node = graph.nodes[nid]
        assert node.role in ("findings", "any") or nid in h.stages, (nid, rule)
    for index in h.edges:
        edge = graph.edges[index]
        assert set(graph.endpoints(edge.source)) & h.stages
        assert set(graph.endpoints(edge.target)) & h.stages

    mermaid = _invoke(runner, "pathway", "--case", case.name).output
    parsed = parse_mermaid(mermaid)
    assert set(parsed.classes["here"]) == set(h.current)
    assert parsed.link_styles == sorted(h.edges)
    assert "► " not in _invoke(runner, "pathway").output
    for nid in h.current:
        assert diagram.HERE_LABEL in parsed.labels[nid]
    dot = _invoke(runner, "pathway", "--case", case.name, "-f", "dot").output
    parsed_dot = parse_dot(dot)
    for nid in h.current:
        label = parsed_dot.attrs[nid]["label"]
        assert f'BGCOLOR="{diagram._HERE_FILL}"' in label and 'BORDER="4"' in label
    assert "Highlighted: steroid-relapse" in dot
    lit = [e for e in parsed_dot.edge_attrs if e.get("color") == diagram._PATH_COLOUR]
    assert len(lit) == len(h.edges)


def test_profile_file_highlights_too(runner, examples_dir):
    result = _invoke(runner, "pathway", "--profile", str(examples_dir / "red-flags.yaml"))
    assert result.exit_code == 0, result.output
    parsed = parse_mermaid(result.output)
    assert parsed.classes.get("here") and "Highlighted: red-flags" in result.output


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


# -- --embed: only the marked block changes -------------------------------------------------------

START, END = diagram.EMBED_START, diagram.EMBED_END


def _notes(tmp_path, text: str, name="notes.md") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_embed_replaces_only_the_generated_block(runner, tmp_path):
    notes = _notes(tmp_path, f"# Notes\n\nbefore\n\n{START}\nold\n{END}\n\nafter\n")
    result = _invoke(runner, "pathway", "--embed", str(notes))
    assert result.exit_code == 0, result.output
    text = notes.read_text(encoding="utf-8")
    assert text.startswith(f"# Notes\n\nbefore\n\n{START}\n```mermaid\n")
    assert text.endswith(f"```\n{END}\n\nafter\n")
    assert diagram.embedded_mermaid(text) == _invoke(runner, "pathway").output
    again = _invoke(runner, "pathway", "--embed", str(notes))        # idempotent
    assert again.exit_code == 0 and notes.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("text, words", [
    (f"> quoting {START} in a note\n\n{START}\nold\n{END}\nafter\n", "appears 2 times"),
    (f"{START}\nold\n{END}\n\n{START}\n{END}\n", "appears 2 times"),
    (f"{START}\nold\n{END}\nkeep\n{END}\n", "end marker appears 2 times"),
    (f"intro\n{END}\nafter\n", "without the start marker"),
    (f"intro\n{START}\nall of this must stay\n", "without the end marker"),
    (f"{END}\nmiddle\n{START}\n", "comes before the start marker"),
    (f"text {START}\nold\n{END}\n", "alone on its line"),
    ("# no markers\n", "no place for the diagram"),
])
def test_embed_refuses_an_ambiguous_marker_and_changes_nothing(runner, tmp_path, text, words):
    notes = _notes(tmp_path, text)
    result = _invoke(runner, "pathway", "--embed", str(notes))
    assert result.exit_code == 2, result.output
    assert words in result.stderr and "Traceback" not in result.stderr
    assert str(notes) in result.stderr
    assert notes.read_bytes() == text.encode("utf-8")


def test_embed_keeps_crlf_line_endings(runner, tmp_path):
    text = f"# Notes\r\n\r\n{START}\r\nold\r\n{END}\r\n\r\nafter\r\n"
    notes = _notes(tmp_path, text)
    result = _invoke(runner, "pathway", "--embed", str(notes))
    assert result.exit_code == 0, result.output
    data = notes.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b""), "a bare LF in a CRLF file"
    assert data.startswith(f"# Notes\r\n\r\n{START}\r\n```mermaid\r\n".encode())
    assert data.endswith(f"```\r\n{END}\r\n\r\nafter\r\n".encode())
    assert diagram.embedded_mermaid(data.decode("utf-8")) == _invoke(runner, "pathway").output


def test_embed_writes_through_a_symlink_and_keeps_the_mode(runner, tmp_path):
    target = _notes(tmp_path, f"{START}\n{END}\n", "real.md")
    target.chmod(0o644)
    link = tmp_path / "link.md"
    link.symlink_to(target)
    result = _invoke(runner, "pathway", "--embed", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "```mermaid" in target.read_text(encoding="utf-8")
    assert target.stat().st_mode & 0o777 == 0o644


def test_embed_refuses_what_is_not_a_regular_file(runner, tmp_path):
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    result = _invoke(runner, "pathway", "--embed", str(fifo))
    assert result.exit_code == 2 and "regular" in result.stderr
    assert fifo.exists() and not fifo.is_file()


@settings(max_examples=60, deadline=None)
@given(before=st.text(alphabet=st.sampled_from(list("ab\n\r<-!` ")), max_size=60),
       after=st.text(alphabet=st.sampled_from(list("ab\n\r<-!` ")), max_size=60))
def test_embed_never_touches_text_outside_the_block(before, after):
    before = before if before.endswith("\n") or not before else before + "\n"
    text = f"{before}{START}\nold\n{END}\n{after}"
    out = diagram.embed_mermaid(text, "flowchart TB\n")
    assert out.startswith(before + START) and out.endswith(f"{END}\n{after}")
    assert diagram.embedded_mermaid(out) == "flowchart TB\n"


# -- the SVG in a browser -------------------------------------------------------------------------

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless Chromium installed (Debian package chromium)")


@pytest.mark.parametrize("width", [1200, 420])
def test_svg_needs_no_sideways_scroll_in_chromium(graph, dot_program, tmp_path, width):
    """Opened in a browser 420 px wide (a phone), the picture shrinks to the window instead of
    scrolling sideways; at 1200 px it is drawn at its own size, not blown up."""
    browser = _chromium()
    svg = diagram.to_svg(diagram.to_dot(graph))
    svg = svg[svg.index("<svg"):]
    page = tmp_path / "page.html"
    page.write_text(
        # headless Chromium lays pages out at least 500 px wide, so a box plays the window
        "<!doctype html><html><head><meta charset='utf-8'><style>body{margin:0}</style></head>"
        f"<body><div id='w' style='width:{width}px;overflow:auto'>{svg}</div><script>"
        "const w = document.getElementById('w'), s = w.querySelector('svg').getBoundingClientRect();"
        "document.title = [w.scrollWidth, Math.round(s.width)].join(' ');"
        "</script></body></html>", encoding="utf-8")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--window-size=1300,900", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    title = re.search(r"<title>(\d+) (\d+)</title>", result.stdout)
    assert title, result.stderr[-500:]
    scroll, drawn = int(title[1]), int(title[2])
    natural = float(re.search(r'max-width:([0-9.]+)pt', svg)[1]) * 4 / 3
    assert scroll <= width, f"scrolls sideways at {width} px ({scroll} px wide)"
    assert drawn <= min(width, natural + 1)
