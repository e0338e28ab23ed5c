"""JSON lines written with orjson are byte for byte what json.dumps writes."""

from __future__ import annotations

import json
import random

import orjson

from hypothesis import given, settings
from hypothesis import strategies as st

from cno_pathway.consult.batch import consult_line
from cno_pathway.consult.jsonout import dumps_line, slow_line
from cno_pathway.patient.profile import validate_profile

_scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.sampled_from([1e-05, 0.0001, 1e16, 1e15, 123.456, -0.0, 5e-324, 2.5e-7, 0.1])
            | st.text() | st.sampled_from(["\ud800", "a\x00\x1f\x7f\u2028\u202e\"\\/", "0.00001e-5"]))
_data = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


@settings(max_examples=2000, deadline=None)
@given(_data)
def test_orjson_lines_are_the_json_dumps_lines(data):
    assert dumps_line(data) == slow_line(data)
    try:
        expected = (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    except UnicodeEncodeError:
        return
    assert dumps_line(data) == expected


def test_consults_of_a_generated_cohort_are_the_same_bytes(fixture_pathway, vocab, gen):
    rng = random.Random(11)
    for number in range(300):
        data = gen.profile(rng, vocab)
        if number % 3 == 0:
            data["weight_kg"] = rng.choice([2.00001, 33.3333333, 70.1])
            data["labs"] = {"crp_mg_l": rng.choice([0.00001, 0.5, 1e-7])}
        consult = fixture_pathway.consult(validate_profile(data, vocab))
        assert dumps_line(consult.to_json()) == slow_line(consult.to_json())
        outcome = consult_line(fixture_pathway, number, json.dumps(data).encode(), "x")
        assert outcome.payload == slow_line(consult.to_json())


def test_floats_of_every_magnitude_are_the_same_bytes():
    rng = random.Random(3)
    values = [rng.choice([1, -1]) * rng.random() * 10.0 ** rng.uniform(-323, 307)
              for _ in range(50_000)]
    values += [1e-05, 1.5e-07, 9.99e-05, 1e-09, 1e-10, 1e16, 1e-4, 5e-324]
    for value in values:
        assert dumps_line([value]) == slow_line([value]), value


def test_text_that_looks_like_an_exponent_keeps_the_fast_writer():
    """'relapse-1' is text, not a number's exponent: the line is orjson's; a number's is not."""
    from cno_pathway.consult.jsonout import _risky

    text = {"finding": "nsaid-relapse-1-and-2-years", "n": 1.5, "age": 0.001}
    assert not _risky(orjson.dumps(text))
    assert dumps_line(text) == slow_line(text)
    for number in (1.5e-7, 1e-6, 2e-9, 1e-5, 3.5e-5):
        data = dict(text, dose=number)
        assert _risky(orjson.dumps(data)), number
        assert dumps_line(data) == slow_line(data)
