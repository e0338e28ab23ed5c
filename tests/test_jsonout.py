"""JSON lines written with orjson are byte for byte what json.dumps writes."""

from __future__ import annotations

import json
import random

import orjson

from hypothesis import given, settings
from tests.strategies import JSON_DATA

from cno_pathway.consult.batch import consult_line
from cno_pathway.consult.jsonout import dumps_line, slow_line
from cno_pathway.patient.profile import validate_profile


@settings(max_examples=2000, deadline=None)
@given(JSON_DATA)
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
    from cno_pathway.consult.jsonout import spelled_differently

    text = {"finding": "nsaid-relapse-1-and-2-years", "n": 1.5, "age": 0.001}
    assert not spelled_differently(orjson.dumps(text))
    assert dumps_line(text) == slow_line(text)
    for number in (1.5e-7, 1e-6, 2e-9, 1e-5, 3.5e-5):
        data = dict(text, dose=number)
        assert spelled_differently(orjson.dumps(data)), number
        assert dumps_line(data) == slow_line(data)


def _float_paths(data, path=""):
    """The path of every float in a document ("suggestions[].regimen.weight_kg")."""
    if isinstance(data, float):
        yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _float_paths(value, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        for value in data:
            yield from _float_paths(value, path + "[]")


_WHERE_FLOATS_ARE = ("profile.", "facts.", "suggestions[].regimen.")


def test_a_consults_floats_are_only_where_dumps_consult_looks(pathway, fixture_pathway, gen,
                                                            examples_dir):
    """dumps_consult looks for floats orjson spells differently only in the profile, the facts
    and the suggestions' regimens: every other part of every kind of consult holds none (small
    and odd numbers, every example with --explain's complete lists and trace, a FHIR bundle's
    consult with the inputs it could not use)."""
    from fhir_builder import AS_OF, bundle_from_profile

    from cno_pathway.interop import fhir
    from cno_pathway.patient.intake import profile_from_file
    from cno_pathway.yamlio import read_document

    consults = []
    for which in (pathway, fixture_pathway):
        vocab, rng = which.vocabulary, random.Random(17)
        for number in range(150):
            data = gen.profile(rng, vocab)
            if number % 2:
                data["weight_kg"] = rng.choice([2.00001, 33.3333333, 2.5])
                data["labs"] = {"crp_mg_l": rng.choice([0.00001, 0.5, 1e-7, 2.5e-9]),
                                "esr_mm_h": rng.choice([1e-5, 12.75])}
            consults.append(which.consult(validate_profile(data, vocab), explain=number % 3 == 0))
    for example in sorted(examples_dir.glob("*.yaml")):
        consults.append(pathway.consult(profile_from_file(example, pathway.vocabulary),
                                        explain=True))
    # a consult of a FHIR bundle lists what it could not use (the builder's test example)
    bundle = bundle_from_profile(read_document(examples_dir / "typical-multifocal.yaml").data["profile"])
    bundle["entry"].append({"fullUrl": "urn:uuid:allergy-1", "resource": {
        "resourceType": "AllergyIntolerance", "id": "al-1",
        "patient": {"reference": "Patient/typical-multifocal"}}})
    consults.append(pathway.consult(fhir.profile_from_bundle(bundle, pathway.vocabulary,
                                                             as_of=AS_OF)))
    assert consults[-1].to_json()["inputs_not_used"]
    seen = set()
    for consult in consults:
        for path in _float_paths(consult.to_json()):
            assert path.startswith(_WHERE_FLOATS_ARE), path
            seen.add(path.split(".")[0])
    assert seen == {"profile", "facts", "suggestions[]"}        # the walk does find floats


def test_consult_lines_are_the_json_dumps_lines_whatever_their_floats(fixture_pathway, vocab,
                                                                     gen):
    from cno_pathway.consult.jsonout import dumps_consult

    rng = random.Random(23)
    slow = 0
    for number in range(200):
        data = gen.profile(rng, vocab)
        data["weight_kg"] = rng.choice([2.00001, 45.0, 70.1])
        data["labs"] = {"crp_mg_l": rng.choice([0.00001, 1.5e-7, 3.0])}
        document = fixture_pathway.consult(validate_profile(data, vocab)).to_json()
        assert dumps_consult(document) == dumps_line(document) == slow_line(document)
        slow += dumps_consult(document) != orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)
    assert slow > 50              # the profiles above do reach the slower writer
