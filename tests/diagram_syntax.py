"""Small checkers for the diagram writers' output: they read Mermaid and DOT statement by
statement (the way the real parsers split them) and say exactly which nodes, edges, groups and
links the text declares, so a test can compare them with the model it came from. Anything a
checker does not recognise is an error: an injected statement cannot hide as "unknown"."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from cno_pathway.teaching import diagram

ID = r"[a-z0-9_]+"
MERMAID_TAGS = re.compile(r"<b>|</b>|<i>|</i>|<br/>")
# what may stand inside a label or comment once escaped: letters, digits, safe punctuation and
# #code; entities (no quote, bracket, pipe, backtick, percent, brace or angle bracket)
MERMAID_SAFE = set(" .,;:-_/+()'!?*=·–—")
# control characters and bidi overrides, which must not survive into a drawing (entities decoded)
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


@dataclass
class Parsed:
    nodes: list[str] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)    # (source, target, style)
    groups: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    edge_attrs: list[dict[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=dict)
    link_styles: list[int] = field(default_factory=list)


def _mermaid_label(text: str, where: str) -> None:
    bare = re.sub(r"#[0-9]+;", "", MERMAID_TAGS.sub("", text))
    bad = [ch for ch in bare if not (ch.isalnum() or ch in MERMAID_SAFE)]
    assert not bad, f"{where}: unescaped {bad!r} in {text!r}"
    decoded = re.sub(r"#([0-9]+);", lambda m: chr(int(m[1])) if int(m[1]) < 0x110000 else "", text)
    assert not INVISIBLE.search(decoded), f"{where}: a control or bidi character in {text!r}"


def parse_mermaid(text: str) -> Parsed:
    """Statements of our Mermaid subset; AssertionError on anything else."""
    lines = text.split("\n")
    assert lines[-1] == "", "the text ends with a newline"
    lines = lines[:-1]
    assert lines[0] == diagram.MERMAID_INIT and lines[1] == "flowchart TB", lines[:2]
    out = Parsed()
    depth = 0
    for number, line in enumerate(lines[2:], start=3):
        assert "\r" not in line and "%%{" not in line, f"line {number}: {line!r}"
        s = line.strip()
        if s.startswith("%% "):
            _mermaid_label(s[3:].replace(": ", " ", 1), f"comment line {number}")
            out.comments.append(s[3:])
            continue
        m = re.fullmatch(rf'subgraph ({ID})\["([^"]*)"\]', s)
        if m:
            _mermaid_label(m[2], f"line {number}")
            out.groups.append(m[1])
            out.labels[m[1]] = m[2]
            depth += 1
            continue
        if s == "end":
            depth -= 1
            assert depth >= 0, f"line {number}: end without subgraph"
            continue
        m = re.fullmatch(rf'({ID})(\{{\{{"|\[")([^"]*)("\}}\}}|"\])', s)
        if m:
            assert (m[2], m[4]) in (('{{"', '"}}'), ('["', '"]')), s
            _mermaid_label(m[3], f"line {number}")
            out.nodes.append(m[1])
            out.labels[m[1]] = m[3]
            continue
        m = re.fullmatch(rf"({ID}) (==>|-\.->|~~~) ({ID})", s)
        if m:
            out.edges.append((m[1], m[3], m[2]))
            continue
        m = re.fullmatch(rf"classDef ({ID}|[A-Za-z]+) [a-z\-]+:[#a-z0-9]+(,[a-z\-]+:[#a-z0-9]+)*", s)
        if m:
            continue
        m = re.fullmatch(rf"class ({ID}(?:,{ID})*) ([A-Za-z]+)", s)
        if m:
            out.classes.setdefault(m[2], []).extend(m[1].split(","))
            continue
        m = re.fullmatch(r"linkStyle ([0-9]+(?:,[0-9]+)*) stroke:#[0-9a-f]{6},stroke-width:[0-9]+px", s)
        if m:
            out.link_styles.extend(int(i) for i in m[1].split(","))
            continue
        raise AssertionError(f"unexpected Mermaid line {number}: {line!r}")
    assert depth == 0, "unclosed subgraph"
    known = set(out.nodes) | set(out.groups)
    for source, target, _ in out.edges:
        assert source in known and target in known, (source, target)
    for ids in out.classes.values():
        assert set(ids) <= set(out.nodes), ids
    assert all(i < len(out.edges) for i in out.link_styles)
    assert len(out.nodes) == len(set(out.nodes)) and len(out.groups) == len(set(out.groups))
    return out


# -- DOT ------------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s+|//[^\n]*|->|[{}\[\]=;,]|"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.\-]+|<')


def _tokens(text: str):
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        assert m, f"DOT: cannot read at {text[i:i + 40]!r}"
        tok = m.group()
        if tok == "<":                       # an HTML string: up to the matching >
            depth, j = 0, i
            while True:
                assert j < len(text), "DOT: unterminated HTML string"
                if text[j] == "<":
                    depth += 1
                elif text[j] == ">":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            yield ("html", text[i + 1:j])
            i = j + 1
            continue
        i = m.end()
        if tok.isspace() or tok.startswith("//"):
            assert "\n" not in tok.strip("\n") or tok.isspace(), tok
            continue
        if tok.startswith('"'):
            yield ("str", tok[1:-1])
        elif re.fullmatch(r"[A-Za-z0-9_.\-]+", tok):
            yield ("id", tok)
        else:
            yield ("op", tok)


def _attr_list(tokens, pos):
    attrs = {}
    assert tokens[pos] == ("op", "[")
    pos += 1
    while tokens[pos] != ("op", "]"):
        key = tokens[pos]
        assert key[0] == "id" and tokens[pos + 1] == ("op", "="), tokens[pos:pos + 3]
        value = tokens[pos + 2]
        assert value[0] in ("str", "id", "html"), value
        attrs[key[1]] = value[1]
        pos += 3
        if tokens[pos] == ("op", ","):
            pos += 1
    return attrs, pos + 1


def parse_dot(text: str) -> Parsed:
    """Statements of our DOT subset; AssertionError on anything else."""
    for line in text.split("\n"):
        assert not line.lstrip().startswith("#"), f"DOT would drop a line starting with #: {line!r}"
    tokens = list(_tokens(text))
    assert tokens[:3] == [("id", "digraph"), ("id", "pathway"), ("op", "{")], tokens[:3]
    out = Parsed()
    pos, depth = 3, 1
    while depth:
        tok = tokens[pos]
        if tok == ("op", "}"):
            depth -= 1
            pos += 1
            continue
        if tok[0] == "id" and tok[1] in ("graph", "node", "edge") and tokens[pos + 1] == ("op", "["):
            attrs, pos = _attr_list(tokens, pos + 1)
            out.attrs[tok[1]] = attrs
        elif tok == ("id", "subgraph"):
            name = tokens[pos + 1]
            assert name[0] == "id" and re.fullmatch(rf"cluster_{ID}", name[1]), name
            assert tokens[pos + 2] == ("op", "{")
            out.groups.append(name[1])
            pos, depth = pos + 3, depth + 1
            continue
        elif tok[0] == "id" and tokens[pos + 1] == ("op", "="):
            value = tokens[pos + 2]
            assert tok[1] in ("label", "style", "color", "fontname", "fontsize", "labeljust"), tok
            assert value[0] in ("str", "id", "html"), value
            if tok[1] == "label":
                out.labels[out.groups[-1]] = value[1]
            pos += 3
        elif tok[0] == "id" and tokens[pos + 1] == ("op", "->"):
            target = tokens[pos + 2]
            assert re.fullmatch(ID, tok[1]) and target[0] == "id" and re.fullmatch(ID, target[1])
            attrs, pos = _attr_list(tokens, pos + 3)
            out.edges.append((tok[1], target[1], attrs.get("style", "")))
            out.edge_attrs.append(attrs)
        elif tok[0] == "id" and tokens[pos + 1] == ("op", "["):
            assert re.fullmatch(ID, tok[1]), tok
            attrs, pos = _attr_list(tokens, pos + 1)
            out.nodes.append(tok[1])
            out.attrs[tok[1]] = attrs
        else:
            raise AssertionError(f"unexpected DOT token {tok!r} near {tokens[pos:pos + 4]}")
        assert tokens[pos] == ("op", ";"), tokens[pos:pos + 3]
        pos += 1
    assert pos == len(tokens), f"DOT: text after the graph: {tokens[pos:pos + 5]}"
    declared = set(out.nodes)
    for source, target, _ in out.edges:
        assert source in declared and target in declared, (source, target)
    for name, attrs in out.attrs.items():
        if "label" in attrs and name not in ("graph", "node", "edge"):
            check_html_label(attrs["label"])
    check_html_label(out.attrs["graph"]["label"])
    return out


def check_html_label(label: str) -> ET.Element:
    """An HTML-like label is well-formed XML; its only links are our #rule_ anchors."""
    root = ET.fromstring(f"<L>{label}</L>")
    for element in root.iter():
        for key, value in element.attrib.items():
            if key.upper() == "HREF":
                assert re.fullmatch(rf"#rule_{ID}", value), value
            assert not key.lower().startswith("on"), key
            assert key.upper() in ("HREF", "TOOLTIP", "BORDER", "COLOR", "CELLBORDER", "CELLSPACING",
                                   "CELLPADDING", "BGCOLOR", "STYLE", "COLSPAN", "ALIGN", "BALIGN",
                                   "VALIGN", "POINT-SIZE"), key
    return root


# -- SVG ------------------------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"


def parse_svg(svg: str) -> dict:
    """Nodes, edges and links of Graphviz's SVG; AssertionError on a script, an event handler, or
    a link that is not one of our #rule_ anchors."""
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    out = {"nodes": [], "edges": 0, "hrefs": [], "titles": []}
    for element in root.iter():
        for value in [element.text or "", element.tail or ""] + list(element.attrib.values()):
            assert not INVISIBLE.search(value.replace("\n", "")), f"a control or bidi character: {value!r}"
        tag = element.tag.split("}")[-1]
        assert tag not in ("script", "foreignObject", "iframe", "object", "embed", "use"), tag
        for key, value in element.attrib.items():
            name = key.split("}")[-1]
            assert not name.lower().startswith("on"), key
            if name == "href":
                assert re.fullmatch(rf"#rule_{ID}", value), value
                out["hrefs"].append(value)
            if name == "title":
                out["titles"].append(value)
        if tag == "g" and element.get("class") == "node":
            out["nodes"].append(element.find(SVG + "title").text)
        if tag == "g" and element.get("class") == "edge":
            out["edges"] += 1
    return out
