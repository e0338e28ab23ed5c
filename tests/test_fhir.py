"""FHIR R4 intake (interop/fhir.py), tested without a server: the same patient as a Bundle and as
YAML gives the same profile and the same suggestions; what is not used is listed; resources that
disagree are an error naming both; the mapping table in docs/fhir.md is the one the code reads."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.errors import ProfileError
from cno_pathway.interop import fhir
from cno_pathway.patient.intake import profile_from_file
from cno_pathway.patient.profile import validate_profile
from cno_pathway.yamlio import read_document

from fhir_builder import AS_OF, LOINC, OBS, bundle_from_profile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["typical-multifocal", "tnf-psoriasis", "unifocal-no-biopsy", "antibiotics-failed",
            "adult-onset-refractory", "arthritis-with-cno", "complete-nsaid-response",
            "nsaid-refractory", "sapho", "red-flags", "vertebral-fracture"]


def _example(name: str) -> dict:
    return copy.deepcopy(read_document(ROOT / "examples" / f"{name}.yaml").data["profile"])


def _suspected() -> dict:
    data = _example("unifocal-no-biopsy")
    data.update(id="suspected-one", diagnosis="suspected", weight_kg=30,
                labs={"crp_mg_l": 12, "esr_mm_h": 30})
    return data


PROFILES = {name: _example(name) for name in EXAMPLES} | {"suspected": _suspected()}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_bundle_and_yaml_give_the_same_profile_and_suggestions(pathway, name):
    data = PROFILES[name]
    yaml_profile = validate_profile(data, pathway.vocabulary)
    bundle = bundle_from_profile(data)
    fhir_profile = fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    assert fhir_profile.to_data() == yaml_profile.to_data()
    by_yaml, by_fhir = pathway.consult(yaml_profile), pathway.consult(fhir_profile)
    assert [s.rule for s in by_fhir.suggestions] == [s.rule for s in by_yaml.suggestions]
    assert [s.regimen for s in by_fhir.suggestions] == [s.regimen for s in by_yaml.suggestions]
    assert by_fhir.stage == by_yaml.stage
    assert by_fhir.to_json()["inputs_not_used"] == []
    assert "inputs_not_used" not in by_yaml.to_json()


def test_the_examples_cover_treatments_labs_and_a_suspected_diagnosis():
    assert any(p.get("treatments") for p in PROFILES.values())
    assert any(t.get("ongoing") and t.get("adverse_events")
               for p in PROFILES.values() for t in p.get("treatments", []))
    assert any((p.get("labs") or {}).get("crp_mg_l") for p in PROFILES.values())
    assert PROFILES["suspected"]["diagnosis"] == "suspected"


@pytest.mark.parametrize("kind", ["collection", "searchset", "transaction"])
def test_every_bundle_type_reads_the_same(pathway, kind):
    data = PROFILES["tnf-psoriasis"]
    profile = fhir.profile_from_bundle(bundle_from_profile(data, kind=kind), pathway.vocabulary,
                                       as_of=AS_OF)
    assert profile.to_data() == validate_profile(data, pathway.vocabulary).to_data()


def test_other_bundle_types_are_refused(pathway):
    bundle = bundle_from_profile(PROFILES["typical-multifocal"])
    bundle["type"] = "document"
    with pytest.raises(ProfileError, match="type 'document' is not read"):
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)


def _bundle(name="typical-multifocal", **kw):
    return bundle_from_profile(PROFILES[name], **kw)


def _add(bundle, resource):
    bundle["entry"].append({"resource": resource})
    return bundle


def test_what_is_not_used_is_listed_with_its_resource(pathway):
    bundle = _bundle()
    bundle["entry"][0]["resource"]["name"] = [{"family": "Doe"}]
    _add(bundle, {"resourceType": "Observation", "id": "hb", "status": "final",
                  "code": {"coding": [{"system": LOINC, "code": "718-7"}]},
                  "valueQuantity": {"value": 12, "unit": "g/dL"}})
    _add(bundle, {"resourceType": "AllergyIntolerance", "id": "al-1",
                  "patient": {"reference": "Patient/typical-multifocal"}})
    _add(bundle, {"resourceType": "Observation", "id": "w-lb", "status": "final",
                  "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                  "effectiveDateTime": "2026-06-02",
                  "valueQuantity": {"value": 70, "unit": "[lb_av]", "code": "[lb_av]"}})
    profile = fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    listed = {(i["resource"], i["element"]) for i in profile.inputs_not_used}
    assert ("Patient/typical-multifocal", "name") in listed
    assert ("Observation/hb", None) in listed
    assert ("AllergyIntolerance/al-1", None) in listed
    assert ("Observation/w-lb", "valueQuantity") in listed
    assert profile.weight_kg == 32                 # the pound value was not converted
    result = pathway.consult(profile)
    assert {i["resource"] for i in result.to_json()["inputs_not_used"]} >= {"Observation/hb",
                                                                         "AllergyIntolerance/al-1"}
    assert any(line.startswith("Observation/hb") for line in result.inputs_not_used_lines)
    assert not any(line.label == "Not used" for line in result.summary)   # listed in the basis


def test_the_latest_value_wins_and_the_earlier_is_listed(pathway):
    bundle = _bundle()
    _add(bundle, {"resourceType": "Observation", "id": "crp-old", "status": "final",
                  "code": {"coding": [{"system": LOINC, "code": "1988-5"}]},
                  "effectiveDateTime": "2025-01-01",
                  "valueQuantity": {"value": 90, "unit": "mg/L", "code": "mg/L"}})
    _add(bundle, {"resourceType": "Observation", "id": "crp-new", "status": "final",
                  "code": {"coding": [{"system": LOINC, "code": "1988-5"}]},
                  "effectiveDateTime": "2026-06-10T08:00:00+02:00",
                  "valueQuantity": {"value": 2.5, "unit": "mg/L", "code": "mg/L"}})
    profile = fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    assert profile.labs.crp_mg_l == 2.5
    reasons = {i["resource"]: i["reason"] for i in profile.inputs_not_used}
    assert "superseded by the later Observation/crp-new" in reasons["Observation/crp-old"]
    assert "superseded by the later Observation/crp-new" in reasons["Observation/crp"]


def test_two_diagnoses_are_a_contradiction_naming_both(pathway):
    bundle = _add(_bundle(), {"resourceType": "Condition", "id": "dx-sapho",
                              "subject": {"reference": "Patient/typical-multifocal"},
                              "code": {"coding": [{"system": "http://www.orpha.net",
                                                   "code": "ORPHA:793"}]}})
    with pytest.raises(fhir.Contradiction) as caught:
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    assert "Condition/dx-1" in str(caught.value) and "Condition/dx-sapho" in str(caught.value)


def test_two_weights_at_the_same_time_are_a_contradiction(pathway):
    bundle = _add(_bundle(), {"resourceType": "Observation", "id": "weight-2", "status": "final",
                              "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                              "effectiveDateTime": "2026-06-01",
                              "valueQuantity": {"value": 40, "unit": "kg", "code": "kg"}})
    with pytest.raises(fhir.Contradiction, match="Observation/weight and Observation/weight-2"):
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)


def test_another_patients_observation_is_refused(pathway):
    bundle = _bundle()
    _add(bundle, {"resourceType": "Patient", "id": "someone-else", "birthDate": "2000-01-01"})
    with pytest.raises(fhir.Contradiction, match="two patients"):
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    bundle = _bundle()
    bundle["entry"][2]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    # a reference to a patient not in the Bundle is still another patient
    with pytest.raises(fhir.Contradiction, match="Observation/obs-1 is about Patient/someone-else"):
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)


def test_unknown_words_in_the_projects_own_codes_are_errors(pathway):
    bundle = _bundle()
    bundle["entry"][1]["resource"]["bodySite"][0]["coding"][0]["code"] = "tibai"
    with pytest.raises(ProfileError, match="tibia") as caught:
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    assert caught.value.field == "Condition/dx-1.bodySite[0]"


def test_foreign_codes_without_a_verified_mapping_are_not_guessed(pathway):
    bundle = _bundle()
    bundle["entry"][1]["resource"]["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10",
                                                          "code": "M86.9"}]}
    with pytest.raises(fhir.MissingData, match="no Condition coded"):
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)


def test_icd10cm_by_site_and_rxnorm_and_units(pathway):
    data = copy.deepcopy(PROFILES["nsaid-refractory"])
    bundle = bundle_from_profile(data, diagnosis_code={"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                       "code": "M86.362"})
    for entry in bundle["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "MedicationStatement" and r["medicationCodeableConcept"]["text"] == "naproxen":
            r["medicationCodeableConcept"] = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                          "code": "7258"}]}
    profile = fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    assert profile.diagnosis == "crmo"
    assert [t.drug for t in profile.treatments] == [t["drug"] for t in data["treatments"]]


def test_orphanet_codes_with_or_without_prefix_and_either_uri(pathway):
    for system, code in (("http://www.orpha.net", "793"), ("https://www.orpha.net", "ORPHA:793")):
        bundle = bundle_from_profile(PROFILES["sapho"], diagnosis_code={"system": system, "code": code})
        assert fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF).diagnosis == "sapho"


def test_missing_lesion_count_names_the_code_to_send(pathway):
    bundle = _bundle()
    bundle["entry"] = [e for e in bundle["entry"]
                       if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") != "lesion-count"]
    with pytest.raises(fhir.MissingData, match=f"{OBS}\\|lesion-count"):
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)


def test_invalid_fhir_names_the_resource_and_element(pathway):
    bundle = _bundle()
    bundle["entry"][2]["resource"]["valueInteger"] = "five"
    with pytest.raises(ProfileError, match="not valid FHIR R4") as caught:
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    assert caught.value.field.startswith("Observation/obs-1.valueInteger")


def test_profile_values_out_of_range_name_their_resource(pathway):
    bundle = _bundle()
    for entry in bundle["entry"]:
        if entry["resource"].get("id") == "weight":
            entry["resource"]["valueQuantity"]["value"] = 900
    with pytest.raises(ProfileError, match=r"from Observation/weight"):
        fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)


def test_ages_and_months_are_calendar_exact():
    from datetime import date

    assert fhir._years(date(2016, 2, 29), date(2026, 2, 28)) == 10.0   # born on 29 February
    assert fhir._years(date(2016, 6, 15), date(2026, 6, 15)) == 10.0
    assert fhir._years(date(2016, 6, 15), date(2026, 12, 15)) == 10.5
    assert fhir._months(date(2026, 1, 31), date(2026, 5, 31)) == 4.0
    assert fhir._months(date(2026, 1, 15), date(2026, 2, 1)) == round(17 / 31, 2)


# -- the mapping table -------------------------------------------------------------------------------

def test_docs_carry_the_table_the_code_reads():
    text = (ROOT / "docs" / "fhir.md").read_text(encoding="utf-8")
    assert fhir.mapping_table() in text


def test_every_mapped_code_names_its_source():
    table = fhir.codes()
    for group in ("diagnoses", "observations", "drugs"):
        for row in table[group]:
            assert row.get("source"), row
    assert {r["diagnosis"] for r in table["diagnoses"]} <= {"cno", "crmo", "sapho"}


# -- the command line and the batch ---------------------------------------------------------------

def test_consult_reads_a_bundle_file(tmp_path):
    path = tmp_path / "patient.json"
    bundle = _add(_bundle(), {"resourceType": "Observation", "id": "hb", "status": "final",
                              "code": {"text": "haemoglobin"}})
    path.write_text(json.dumps(bundle), encoding="utf-8")
    result = CliRunner().invoke(main, ["consult", str(path), "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["profile"]["diagnosis"] == "cno"
    assert {"resource": "Observation/hb", "element": None,
            "reason": "code 'haemoglobin' is not in the mapping table"} in data["inputs_not_used"]
    text = CliRunner().invoke(main, ["consult", str(path)])
    assert "Observation/hb: code 'haemoglobin' is not in the mapping table" in text.output


def test_consult_reports_a_contradiction_in_one_line(tmp_path):
    path = tmp_path / "patient.json"
    bundle = _add(_bundle(), {"resourceType": "Condition", "id": "dx-2",
                              "subject": {"reference": "Patient/typical-multifocal"},
                              "code": {"coding": [{"system": "http://www.orpha.net", "code": "ORPHA:793"}]}})
    path.write_text(json.dumps(bundle), encoding="utf-8")
    result = CliRunner().invoke(main, ["consult", str(path)])
    assert result.exit_code == 2
    assert "Condition/dx-1 says cno but Condition/dx-2 says sapho" in result.output
    assert "Traceback" not in result.output


def test_batch_reads_a_bundle_per_line(tmp_path):
    lines = [json.dumps(_bundle()), json.dumps(PROFILES["typical-multifocal"]),
             json.dumps({"resourceType": "Bundle", "type": "message"})]
    path = tmp_path / "cohort.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["batch", str(path)])
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 2
    assert out[0]["suggestions"] == out[1]["suggestions"]
    assert "cohort.jsonl:3: Bundle.type: type 'message' is not read" in result.stderr


def test_the_yaml_route_does_not_import_the_fhir_models(run_python):
    proc = run_python("import sys\n"
                      "from cno_pathway.cli import main\n"
                      "try:\n"
                      "    main(['consult', 'examples/typical-multifocal.yaml', '-f', 'json'])\n"
                      "except SystemExit:\n"
                      "    pass\n"
                      "print('FHIR', any(m.startswith('fhir') for m in sys.modules))\n"
                      "print('SERVER', any(m.split('.')[0] in ('fastapi', 'uvicorn', 'jwt') for m in sys.modules))\n",
                      timeout=120)
    assert "FHIR False" in proc.stdout and "SERVER False" in proc.stdout, proc.stdout + proc.stderr


def test_intake_reads_a_bundle_through_profile_from_file(tmp_path, pathway):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(_bundle()), encoding="utf-8")
    profile = profile_from_file(path, pathway.vocabulary)
    assert isinstance(profile, fhir.BundleProfile)


# -- as of which day ---------------------------------------------------------------------------------

def _ongoing_bundle_file(tmp_path) -> Path:
    """A Bundle whose age and ongoing treatment depend on the day it is read."""
    path = tmp_path / "ongoing.json"
    path.write_text(json.dumps(_bundle("tnf-psoriasis")), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["text", "markdown", "html", "json"])
def test_the_same_bundle_as_of_the_same_day_gives_byte_identical_consults(tmp_path, fmt):
    path = _ongoing_bundle_file(tmp_path)
    runs = [CliRunner().invoke(main, ["consult", str(path), "--as-of", "2026-06-15", "-f", fmt])
            for _ in range(2)]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    assert runs[0].stdout_bytes == runs[1].stdout_bytes
    assert "2026-06-15" in runs[0].output        # the basis says which day it was read as of


def test_as_of_fixes_ages_and_months_and_shows_in_the_basis(tmp_path):
    path = _ongoing_bundle_file(tmp_path)

    def read(day):
        result = CliRunner().invoke(main, ["consult", str(path), "--as-of", day, "-f", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    then, later = read("2026-06-15"), read("2027-06-15")
    assert then["basis"]["as_of"] == "2026-06-15" and later["basis"]["as_of"] == "2027-06-15"
    assert later["profile"]["age_years"] == then["profile"]["age_years"] + 1
    ongoing = [i for i, t in enumerate(then["profile"]["treatments"]) if t.get("ongoing")]
    assert ongoing, "the case needs an ongoing treatment"
    assert later["profile"]["treatments"][ongoing[0]]["months"] == \
        then["profile"]["treatments"][ongoing[0]]["months"] + 12
    text = CliRunner().invoke(main, ["consult", str(path), "--as-of", "2026-06-15"]).output
    assert "as of 2026-06-15" in text


def test_a_yaml_consult_has_no_as_of_and_refuses_the_option(tmp_path):
    yaml_case = str(ROOT / "examples" / "typical-multifocal.yaml")
    plain = CliRunner().invoke(main, ["consult", yaml_case, "-f", "json"])
    assert "as_of" not in json.loads(plain.output)["basis"]
    refused = CliRunner().invoke(main, ["consult", yaml_case, "--as-of", "2026-06-15"])
    assert refused.exit_code == 2 and "--as-of applies to a FHIR Bundle" in refused.output
    flags = CliRunner().invoke(main, ["consult", "--age", "9", "--lesions", "3", "--diagnosis",
                                      "cno", "--as-of", "2026-06-15"])
    assert flags.exit_code == 2 and "--as-of" in flags.output
    bad = CliRunner().invoke(main, ["consult", yaml_case, "--as-of", "15/06/2026"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_batch_reads_bundles_as_of_the_given_day(tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text(json.dumps(_bundle("tnf-psoriasis")) + "\n", encoding="utf-8")
    runs = [CliRunner().invoke(main, ["batch", str(path), "--as-of", "2026-06-15"]) for _ in range(2)]
    assert runs[0].exit_code == 0, runs[0].output
    assert runs[0].stdout_bytes == runs[1].stdout_bytes
    assert json.loads(runs[0].stdout)["basis"]["as_of"] == "2026-06-15"


def test_a_validated_resource_is_not_validated_again_but_an_invalid_one_always_fails(pathway):
    fhir.clear_validation_cache()
    bundle = _bundle()
    fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)
    kept = len(fhir._VALID)
    assert kept == len(bundle["entry"]) + 1          # each entry and the Bundle's shell
    fhir.profile_from_bundle(copy.deepcopy(bundle), pathway.vocabulary, as_of=AS_OF)
    assert len(fhir._VALID) == kept
    bundle["entry"][2]["resource"]["valueInteger"] = "five"
    for _ in range(2):
        with pytest.raises(ProfileError, match="not valid FHIR R4"):
            fhir.profile_from_bundle(bundle, pathway.vocabulary, as_of=AS_OF)


def test_batch_workers_read_bundles_as_of_the_same_day(tmp_path):
    """Forked workers inherit --as-of: two workers write the bytes one process writes, and
    another day gives other bytes; Dask workers would not inherit it, so --dask refuses it."""
    cohort = tmp_path / "cohort.jsonl"
    lines = [json.dumps(_bundle(name)) for name in ("tnf-psoriasis", "typical-multifocal")]
    cohort.write_text("\n".join(lines * 40) + "\n", encoding="utf-8")

    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "cno_pathway", "batch", str(cohort), *args],
                              capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    one = run("--as-of", "2026-06-15", "--jobs", "1")
    assert run("--as-of", "2026-06-15", "--jobs", "2") == one
    assert run("--as-of", "2027-06-15", "--jobs", "2") != one
    refused = CliRunner().invoke(main, ["batch", str(cohort), "--as-of", "2026-06-15",
                                        "--dask", "local"])
    assert refused.exit_code == 2 and "--as-of" in refused.output
