"""The safe YAML/JSON reader: plain data only, refusals with file and line, a line map."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cno_pathway import yamlio
from cno_pathway.errors import InputError, ProfileError, RuleError
from cno_pathway.yamlio import (Document, NotANumber, parse_document, parse_number, read_document,
                               resolve_plain)


def _refused(text, source="t.yaml") -> InputError:
    with pytest.raises(InputError) as caught:
        parse_document(text, source=source)
    assert caught.value.file == source
    return caught.value


# -- plain data -----------------------------------------------------------------------------------

def test_plain_yaml_and_json_give_plain_data():
    doc = parse_document("a: 1\nb: [x, 2.5, true, null]\nc: {d: e}\n", source="t.yaml")
    assert doc.data == {"a": 1, "b": ["x", 2.5, True, None], "c": {"d": "e"}}
    assert doc.source == "t.yaml"
    doc = parse_document(b'{"a": [1, 2], "b": {"c": "d"}}', source="t.json")
    assert doc.data == {"a": [1, 2], "b": {"c": "d"}}


def test_utf8_with_a_byte_order_mark_and_non_ascii_text():
    doc = parse_document("\ufeffname: Zoé\n".encode("utf-8"), source="t.yaml")
    assert doc.data == {"name": "Zoé"}


def test_dates_stay_text_and_explicit_str_tag_is_plain():
    doc = parse_document("d: 2024-01-02\nx: !!str 12\n", source="t.yaml")
    assert doc.data == {"d": "2024-01-02", "x": "12"}


def test_small_aliases_are_expanded():
    doc = parse_document("a: &x [1, 2]\nb: *x\n", source="t.yaml")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}


def test_scalar_keys_become_text():
    assert parse_document("1: a\n1.5: b\n", source="t.yaml").data == {"1": "a", "1.5": "b"}


# -- duplicates -----------------------------------------------------------------------------------

def test_duplicate_key_is_refused_with_its_line():
    error = _refused("a: 1\nb: 2\na: 3\n")
    assert error.line == 3
    assert "duplicate key 'a'" in error.message
    assert str(error).startswith("t.yaml:3: ")


def test_nested_duplicate_key_line():
    error = _refused("lesions:\n  count: 2\n  sites: [tibia]\n  count: 3\n")
    assert error.line == 4 and "'count'" in error.message


def test_duplicate_key_in_json_and_after_key_text_conversion():
    assert _refused('{\n "a": 1,\n "a": 2\n}', source="t.json").line == 3
    assert _refused("1: a\n'1': b\n").line == 2


# -- tags -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "x: !!python/object/apply:os.system ['echo pwned']\n",
    "x: !!python/name:os.system\n",
    "x: !!python/object:collections.OrderedDict {}\n",
    "x: !!python/tuple [1, 2]\n",
])
def test_python_tags_are_refused(text):
    error = _refused(text)
    assert "python/" in error.message and "not allowed" in error.message
    assert error.line == 1


def test_python_tags_construct_nothing(tmp_path):
    target = tmp_path / "created-by-yaml"
    _refused(f"x: !!python/object/apply:os.makedirs ['{target}']\n")
    assert not target.exists()


@pytest.mark.parametrize("text, line", [
    ("a: 1\nx: !custom 3\n", 2),
    ("s: !!set {a, b}\n", 1),
    ("b: !!binary aGVsbG8=\n", 1),
    ("o: !!omap [a: 1]\n", 1),
    ("- !thing {a: 1}\n", 1),
    ("a:\n  - 1\n  - !!float 2\n  - !local [1]\n", 4),
])
def test_custom_and_non_plain_tags_are_refused(text, line):
    error = _refused(text)
    assert "tag" in error.message and "not allowed" in error.message
    assert error.line == line


def test_merge_keys_are_refused():
    error = _refused("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert error.line == 3
    assert "merge keys" in error.message


# -- bombs and nesting ----------------------------------------------------------------------------

def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused():
    error = _refused(_laughs(9))  # a billion values if expanded
    assert "more than" in error.message and "values" in error.message


def test_alias_expansion_is_bounded_by_max_nodes(monkeypatch):
    assert parse_document(_laughs(3), source="t.yaml").data["a2"][0][0] == ["lol"] * 10
    monkeypatch.setattr(yamlio, "MAX_NODES", 500)
    assert "more than 500 values" in _refused(_laughs(3)).message


def test_deep_nesting_is_refused():
    assert parse_document("[" * 50 + "]" * 50, source="t.yaml").data is not None
    error = _refused("[" * 100 + "]" * 100)
    assert "nested more than" in error.message
    deep_map = "\n".join("  " * i + f"k{i}:" for i in range(80)) + " 1\n"
    error = _refused(deep_map)
    assert "nested more than" in error.message and error.line == yamlio.MAX_DEPTH + 1


def test_very_deep_nesting_does_not_overflow_the_stack():
    error = _refused("[" * 100_000 + "]" * 100_000)
    assert "nest" in error.message


# -- bytes ----------------------------------------------------------------------------------------

def test_non_utf8_bytes_are_refused_with_their_line():
    error = _refused(b"a: 1\nb: caf\xe9\nc: 3\n")
    assert error.line == 2
    assert "not valid UTF-8" in error.message


def test_latin1_file_is_refused(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: Zoë\nage_years: 10\n".encode("latin-1"))
    with pytest.raises(InputError) as caught:
        read_document(path)
    assert caught.value.line == 1 and caught.value.file == str(path)


def test_nul_bytes_are_refused_with_their_line():
    error = _refused(b"a: 1\nb: 2\x00\x01\x02\n")
    assert error.line == 2 and "NUL" in error.message


@pytest.mark.parametrize("raw", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"\x00\x00\x00\x00",
                                 bytes(range(256))])
def test_binary_data_is_refused(raw):
    _refused(raw)


def test_large_input_is_refused(monkeypatch):
    monkeypatch.setattr(yamlio, "MAX_BYTES", 100)
    error = _refused(b"a: " + b"x" * 200 + b"\n")
    assert "larger than" in error.message


# -- empty and multiple documents -----------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"", b"   \n\n", "\n\t\n"])
def test_empty_file(raw):
    assert "empty" in _refused(raw).message


def test_comment_only_file_holds_no_document():
    assert "no document" in _refused("# nothing but a comment\n").message


def test_multiple_documents_are_refused():
    error = _refused("a: 1\n---\nb: 2\n")
    assert error.line == 2
    assert "another document" in error.message


def test_invalid_yaml_names_its_line():
    assert _refused("a: [1, 2\nb: 3\n").line == 2
    assert _refused("a:\n\t- 1\n").line == 2


def test_a_mapping_key_must_be_plain_text():
    assert "plain text" in _refused("? [a, b]\n: 1\n").message


# -- line map -------------------------------------------------------------------------------------

PROFILE = """\
id: demo
age_years: 12
lesions:
  count: 6
  sites:
    - tibia
    - femur
  imaging: whole_body_mri
treatments:
  - {drug: naproxen, months: 4, response: none}
  - drug: methotrexate
    months: 3
    response: partial
"""


def test_line_map_paths():
    doc = parse_document(PROFILE, source="p.yaml")
    assert doc.line(()) == 1
    assert doc.line(("age_years",)) == 2
    assert doc.line(("lesions",)) == 3
    assert doc.line(("lesions", "count")) == 4
    assert doc.line(("lesions", "sites", 0)) == 6
    assert doc.line(("lesions", "sites", 1)) == 7
    assert doc.line(("lesions", "imaging")) == 8
    assert doc.line(("treatments", 0)) == 10
    assert doc.line(("treatments", 0, "response")) == 10
    assert doc.line(("treatments", 1)) == 11
    assert doc.line(("treatments", 1, "response")) == 13
    assert doc.line(["treatments", 1, "months"]) == 12


def test_line_of_an_unknown_path_falls_back_to_its_nearest_ancestor():
    doc = parse_document(PROFILE, source="p.yaml")
    assert doc.line(("treatments", 1, "adverse_events", 0)) == 11
    assert doc.line(("lesions", "sites", 7)) == 5
    assert doc.line(("nowhere", "at", "all")) == 1
    assert Document(data=None, source="x").line(("a",)) is None


def test_line_map_of_json():
    doc = parse_document('{\n  "a": 1,\n  "b": [\n    10,\n    {"c": 2}\n  ]\n}\n', source="t.json")
    assert doc.line(("a",)) == 2
    assert doc.line(("b", 0)) == 4
    assert doc.line(("b", 1, "c")) == 5


# -- reading files --------------------------------------------------------------------------------

def test_read_document_from_a_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE, encoding="utf-8")
    doc = read_document(path)
    assert doc.data["id"] == "demo" and doc.source == str(path)
    assert read_document(path, label="nice/p.yaml").source == "nice/p.yaml"


def test_read_document_errors_name_the_file_and_use_the_error_class(tmp_path):
    with pytest.raises(ProfileError, match="file not found") as caught:
        read_document(tmp_path / "missing.yaml", error=ProfileError)
    assert caught.value.file == str(tmp_path / "missing.yaml")
    with pytest.raises(RuleError, match="directory"):
        read_document(tmp_path, error=RuleError)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\na: 2\n")
    with pytest.raises(RuleError) as caught:
        read_document(bad, error=RuleError)
    assert caught.value.line == 2


def test_read_document_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"a": 1,\n "a": 2}')))
    with pytest.raises(InputError) as caught:
        read_document("-")
    assert caught.value.file == "<stdin>" and caught.value.line == 2
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"age_years: 3\n")))
    doc = read_document("-")
    assert doc.data == {"age_years": 3} and doc.source == "<stdin>"


# -- the event builder against PyYAML's own loader ------------------------------------------------
# yamlio builds data straight from libyaml's events (one pass, no recursion). PyYAML's
# composer and SafeLoader are the oracle: same data, and the same line for every path as the
# composed nodes give.

def _plain_in_both(text: str) -> bool:
    """Text that PyYAML (YAML 1.1) writes unquoted and yamlio (YAML 1.2) would read as something
    else: '1e1' (a number in 1.2), '0o3' (refused). The resolvers differ there on purpose (tested
    above); this oracle compares structure and lines, so it leaves those texts out."""
    try:
        return parse_document(yaml.safe_dump({"k": text}), source="t").data == {"k": text}
    except InputError:
        return False


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                     st.floats(allow_nan=False, allow_infinity=False),
                     st.text(max_size=12).filter(_plain_in_both))
_DATA = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8).filter(_plain_in_both), inner,
                                                 max_size=4)),
    max_leaves=25)


def _oracle_lines(node, path=(), lines=None) -> dict:
    """The line map as a recursive walk over PyYAML's composed nodes gives it."""
    lines = {} if lines is None else lines
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node.value, list):
        for i, item in enumerate(node.value):
            if isinstance(item, tuple):
                key_node, value_node = item
                key = path + (key_node.value,)
                lines[key] = key_node.start_mark.line + 1
                _oracle_lines(value_node, key, lines)
            else:
                _oracle_lines(item, path + (i,), lines)
    return lines


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_DATA, flow=st.sampled_from([None, True, False]))
def test_same_data_and_lines_as_pyyaml(data, flow):
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    if not text.strip() or "\x00" in text:
        return  # refused before parsing, by design (tested above)
    doc = parse_document(text, source="t.yaml")
    assert doc.data == yaml.safe_load(text)
    assert doc.lines == _oracle_lines(yaml.compose(text, Loader=yaml.SafeLoader))


def test_every_file_of_the_repository_reads_as_pyyaml_reads_it():
    root = Path(__file__).resolve().parent.parent
    files = [p for folder in ("rules", "seeds", "examples") for p in sorted((root / folder).glob("*.yaml"))]
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        doc = parse_document(text, source=path.name)
        expected = yaml.load(text, Loader=_DatesAsText)
        assert doc.data == expected, path.name
        assert doc.lines == _oracle_lines(yaml.compose(text, Loader=yaml.SafeLoader)), path.name


class _DatesAsText(yaml.SafeLoader):
    """yamlio keeps dates as the text written: so does the oracle."""


_DatesAsText.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: node.value)


def test_aliases_anchors_and_their_lines():
    doc = parse_document("base: &b {x: 1, y: [2, 3]}\nname: &n tibia\nother: *b\nsite: *n\n*n : 4\n",
                         source="t.yaml")
    assert doc.data == {"base": {"x": 1, "y": [2, 3]}, "name": "tibia", "other": {"x": 1, "y": [2, 3]},
                        "site": "tibia", "tibia": 4}
    assert doc.data["other"] is not doc.data["base"], "an alias is a copy, never shared state"
    assert doc.line(("other", "y", 1)) == 3  # inside an alias: the line that uses it


def test_an_alias_to_the_value_that_contains_it_is_refused():
    error = _refused("a: &a\n  b: *a\n")
    assert error.line == 2 and "contains it" in error.message
    error = _refused("&s [1, *s]\n")
    assert error.line == 1 and "contains it" in error.message


def test_an_undefined_alias_names_its_line():
    error = _refused("a: 1\nb: *nowhere\n")
    assert error.line == 2 and "undefined alias" in error.message


def test_a_collection_as_a_key_is_refused_even_through_an_alias():
    assert "plain text" in _refused("a: &k [1]\n? *k\n: 2\n").message


# -- issue 14: numbers as people write them (YAML 1.2 / JSON), never converted ------------------


@pytest.mark.parametrize("text,why", [
    ("032", "leading zero"), ("00.5", "leading zero"), ("-07", "leading zero"),
    ("0x20", "hexadecimal"), ("0o17", "octal"), ("0b101", "binary"), ("0x", "hexadecimal"),
    ("1:30", "sexagesimal"), ("190:20:30", "sexagesimal"), ("1_0", "'_'"), ("1_000.5", "'_'"),
])
def test_number_forms_nobody_writes_are_refused_naming_the_field(text, why):
    error = _refused(f"weight_kg: 1\ntreatments:\n  - {{months: {text}}}\n")
    assert error.field == "treatments[0].months" and error.line == 3
    assert repr(text) in error.message and why in error.message


@pytest.mark.parametrize("text,value", [
    ("32", 32), ("-4", -4), ("+3", 3), ("0", 0), ("1.5", 1.5), (".5", 0.5), ("5.", 5.0),
    ("1e1", 10.0), ("1E-2", 0.01), ("true", True), ("False", False), ("null", None), ("~", None),
    ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"), ("N", "N"),
    ("2024-01-31", "2024-01-31"), ("1:30pm", "1:30pm"), ("v1_0", "v1_0"),
])
def test_plain_values_read_as_yaml_1_2(text, value):
    got = parse_document(f"a: {text}\n", source="t").data["a"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["!!float abc", "!!int 0x", "!!int 1.5", "!!int 032", "!!bool yes",
                                  "!!null x", "!!float 1_0", "!!int ''"])
def test_malformed_tags_are_refused_not_raised(text):
    error = _refused(f"a:\n  b: {text}\n")
    assert error.field == "a.b" and error.line == 2


def test_quoted_text_stays_text():
    assert parse_document("a: '032'\nb: \"1:30\"\nc: ! 0x20\n", source="t").data == \
        {"a": "032", "b": "1:30", "c": "0x20"}


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.text(alphabet="0123456789+-._:eExXoObB", max_size=9))
def test_a_plain_scalar_is_its_decimal_value_text_or_refused(text):
    """Never a number other than the decimal reading, and never text where YAML 1.1 read a
    number (that would silently change its type)."""
    import yaml

    try:
        value = resolve_plain(text)
    except NotANumber:
        return
    try:
        legacy = yaml.safe_load(f"a: {text}\n")["a"]
    except yaml.YAMLError:
        legacy = text
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        assert "_" not in text and value == float(text)
    else:
        assert value == text
        assert isinstance(legacy, bool) or not isinstance(legacy, (int, float)), (text, legacy)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.one_of(st.integers(-10**15, 10**15),
                   st.floats(allow_nan=False, allow_infinity=False)))
def test_numbers_round_trip_as_written_by_json(number):
    import json

    text = json.dumps(number)
    assert parse_document(f"a: {text}\n", source="t").data["a"] == number
    assert parse_number(text) == number


def test_parse_number_for_flags_and_batch():
    assert parse_number("1e1") == 10.0 and parse_number(" 32 ") == 32
    assert parse_number("3", integer=True) == 3
    for bad in ("032", "1_0", "0x20", "1:30", "nan", "inf", "abc", "", "true", "2.5"):
        with pytest.raises(NotANumber):
            parse_number(bad, integer=bad == "2.5")
