"""The consult as JSON (-f json, -o x.json) is written by orjson, byte for byte what
json.dumps(indent=2, ensure_ascii=False) writes (jsonout.json_document)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from tests.strategies import JSON_DATA

from cno_pathway.consult.jsonout import json_document
from cno_pathway.consult.render import render_consult
from cno_pathway.patient.profile import validate_profile


def _reference(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


@settings(max_examples=1500, deadline=None)
@given(JSON_DATA)
def test_the_same_text_as_json_dumps(data):
    assert json_document(data) == _reference(data)


def test_empty_containers_and_nesting_indent_alike():
    data = {"a": [], "b": {}, "c": [[], {}, [1, [2, {"d": None}]]], "": "x"}
    assert json_document(data) == _reference(data)


def test_what_json_cannot_write_fails_as_it_did():
    @dataclasses.dataclass
    class Thing:
        x: int

    for value in ({"a": Thing(1)}, {"a": {1, 2}}, {1.5: "float key"}):
        try:
            _reference(value)
        except TypeError:
            with pytest.raises(TypeError):
                json_document(value)
        else:
            assert json_document(value) == _reference(value)
    assert json_document({1: "int key"}) == _reference({1: "int key"})


def test_consults_are_the_bytes_json_dumps_gives(fixture_pathway, vocab, gen):
    import random

    rng = random.Random(5)
    for number in range(60):
        data = gen.profile(rng, vocab)
        if number % 3 == 0:
            data["weight_kg"] = rng.choice([2.00001, 33.3333333, 70.1])
        consult = fixture_pathway.consult(validate_profile(data, vocab), explain=number % 2 == 0)
        assert render_consult(consult, "json") == _reference(consult.to_json()) + "\n"
