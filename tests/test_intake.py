"""Three routes to one profile: a file, flags, and interactive prompts (library and CLI)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.errors import ProfileError
from cno_pathway.patient.facts import derive_facts
from cno_pathway.patient.intake import (interview, parse_tried, profile_data_from_flags, profile_from_file,
                                profile_from_flags)
from cno_pathway.patient.profile import validate_profile

PROFILE_YAML = """\
id: same-patient
age_years: 12
sex: female
weight_kg: 38
age_at_onset_years: 10.5
diagnosis: cno
lesions:
  count: 6
  sites: [vertebra, tibia]
  vertebral_fracture: true
  symmetric: true
  imaging: whole_body_mri
activity: {pain: true, swelling: false}
labs: {crp_mg_l: 16, esr_mm_h: 30, cbc_normal: true}
features: [arthritis]
red_flags: [fever]
biopsy: inflammatory
hla_b27: negative
jansson_score: 35
treatments:
  - {drug: naproxen, months: 4, response: none}
  - {drug: methotrexate, months: 3, response: partial, adverse_events: [gastrointestinal], ongoing: true}
"""

FLAGS = {"id": "same-patient", "age": 12.0, "sex": "female", "weight": 38.0, "onset_age": 10.5,
         "diagnosis": "cno", "lesions": 6, "site": ("vertebra", "tibia"), "vertebral_fracture": True,
         "symmetric": True, "imaging": "whole_body_mri", "activity": ("pain", "swelling=no"),
         "crp": 16.0, "esr": 30.0, "cbc_normal": True, "feature": ("arthritis",),
         "red_flag": ("fever",), "biopsy": "inflammatory", "hla_b27": "negative",
         "jansson": 35, "tried": ("naproxen:4:none", "methotrexate:3:partial:ongoing:gastrointestinal")}

CLI_FLAGS = ["--id", "same-patient", "--age", "12", "--sex", "female", "--weight", "38",
             "--onset-age", "10.5", "--diagnosis", "cno", "--lesions", "6", "--site", "vertebra",
             "--site", "tibia", "--vertebral-fracture", "--symmetric", "--imaging", "whole_body_mri",
             "--activity", "pain", "--activity", "swelling=no", "--crp", "16", "--esr", "30",
             "--cbc-normal", "--feature", "arthritis", "--red-flag", "fever", "--biopsy",
             "inflammatory", "--hla-b27", "negative", "--jansson", "35", "--tried", "naproxen:4:none",
             "--tried", "methotrexate:3:partial:ongoing:gastrointestinal"]

# (prompt starts with, answers: wrong ones first, each re-asked until one is accepted)
ANSWERS = [
    ("Profile label", ["same-patient"]),
    ("Age in years", ["twelve", "0", "12"]),
    ("Sex", ["F", "female"]),
    ("Weight in kg", ["38"]),
    ("Age at onset", ["10.5"]),
    ("Diagnosis", ["cno"]),
    ("Number of lesions", ["6.5", "6"]),
    ("Sites", ["vertebra tibai", "Vertebra, tibia"]),
    ("Vertebral fracture", ["maybe", "yes"]),
    ("Symmetric", ["y"]),
    ("Latest imaging", ["Whole body MRI"]),
    ("Pain", ["yes"]),
    ("Swelling", ["no"]),
    ("Functional impairment", [""]),
    ("Active lesions on MRI", ["unknown"]),
    ("New lesions", ["-"]),
    ("CRP", ["16"]),
    ("ESR", ["30"]),
    ("Blood count normal", ["yes"]),
    ("Associated features", ["arthritis"]),
    ("Red flags", ["fever"]),
    ("Biopsy", ["inflammatory"]),
    ("HLA-B27", ["negative"]),
    ("Jansson clinical score", ["64", "35.5", "35"]),
    ("Add a treatment", ["yes"]),
    ("  Drug or class", ["naproxen"]),
    ("  How long", ["4"]),
    ("  Response", ["great", "none"]),
    ("  Adverse events", [""]),
    ("  Still ongoing", ["no"]),
    ("Add a treatment", ["yes"]),
    ("  Drug or class", ["methotrexate"]),
    ("  How long", ["3"]),
    ("  Response", ["partial"]),
    ("  Adverse events", ["gastrointestinal"]),
    ("  Still ongoing", ["yes"]),
    ("Add a treatment", ["no"]),
    ("Change an answer", [""]),
]


class Script:
    """Scripted answers for interview(): checks each prompt and re-asks on a refused answer."""

    def __init__(self, answers):
        self.answers = [(prompt, list(replies)) for prompt, replies in answers]
        self.refused: list[tuple[str, str]] = []
        self.said: list[str] = []

    def _next(self, text):
        prompt, replies = self.answers[0]
        assert text.startswith(prompt), (text, prompt)
        reply = replies.pop(0)
        if not replies:
            self.answers.pop(0)
        return reply

    def ask(self, text, check, default):
        while True:
            reply = self._next(text)
            try:
                return check(reply)
            except (ValueError, ProfileError) as exc:
                self.refused.append((text, str(exc)))

    def confirm(self, text):
        return self._next(text) == "yes"

    def say(self, text):
        self.said.append(text)


def _cli_input() -> str:
    """The same answers typed at the terminal, one a line."""
    return "\n".join(reply for _, replies in ANSWERS for reply in replies) + "\n"


@pytest.fixture
def file_profile(tmp_path, vocab):
    path = tmp_path / "patient.yaml"
    path.write_text(PROFILE_YAML, encoding="utf-8")
    return profile_from_file(path, vocab)


# -- the three routes agree -----------------------------------------------------------------------

def test_the_file_route(file_profile):
    assert file_profile.id == "same-patient"
    assert file_profile.lesions.sites == ["vertebra", "tibia"]
    assert file_profile.treatments[1].adverse_events == ["gastrointestinal"]
    assert file_profile.activity.pain is True and file_profile.activity.swelling is False
    assert file_profile.activity.new_lesions is None


def test_the_flags_route_gives_the_same_profile(file_profile, vocab):
    data = profile_data_from_flags(FLAGS, vocab)
    assert validate_profile(data, vocab) == file_profile
    assert profile_from_flags(FLAGS, vocab) == file_profile


def test_the_interview_gives_the_same_profile(file_profile, vocab):
    script = Script(ANSWERS)
    data = interview(vocab, script.ask, script.confirm, script.say)
    assert script.answers == []  # every prompt was asked, in order
    assert validate_profile(data, vocab) == file_profile
    # each refused answer was checked as it was given, with a reason
    def reasons(prefix):
        return [reason for text, reason in script.refused if text.startswith(prefix)]

    assert len(script.refused) == 9
    assert "less than or equal to 63" in reasons("Jansson")[0]  # the profile's own range
    assert reasons("Jansson")[1] == "a number, please (a whole number like 3)"
    assert reasons("Age in years")[0] == "a number, please (like 12 or 12.5)"
    assert "greater than 0" in reasons("Age in years")[1]  # the profile's own check
    assert "unknown sex 'F'" in reasons("Sex")[0]
    assert reasons("Number of lesions") == ["a number, please (a whole number like 3)"]
    assert "did you mean tibia" in reasons("Sites")[0]
    assert reasons("Vertebral fracture") == ["yes, no or unknown, please"]
    assert "unknown response 'great'" in reasons("  Response")[0]
    assert script.said[:2] == ["  added naproxen", "  added methotrexate"]
    review = "\n".join(script.said[2:])  # every answer shown before the consult runs
    assert "Your answers:" in review
    assert "Age at onset" in review and "10.5" in review
    assert "Jansson score" in review and "35" in review
    assert ("naproxen, 4 months: no response; methotrexate, 3 months: partial response, ongoing "
            "(adverse events: gastrointestinal)") in review  # in the consult's words


def test_the_same_facts_by_any_route(file_profile, vocab):
    script = Script(ANSWERS)
    routes = [file_profile, profile_from_flags(FLAGS, vocab),
              validate_profile(interview(vocab, script.ask, script.confirm, script.say), vocab)]
    facts = [derive_facts(p, vocab) for p in routes]
    assert facts[0] == facts[1] == facts[2]


def test_the_cli_routes_give_the_same_profile(tmp_path, fixture_env, file_profile):
    runner = CliRunner()
    profile_file = tmp_path / "patient.yaml"
    profile_file.write_text(PROFILE_YAML, encoding="utf-8")
    outputs = {}
    for route, args, given in (
            ("file", [str(profile_file)], None),
            ("stdin", ["-"], PROFILE_YAML),
            ("flags", CLI_FLAGS, None),
            ("interactive", ["--interactive"], _cli_input())):
        out = tmp_path / f"{route}.json"
        result = runner.invoke(main, ["consult", *args, "-o", str(out)], input=given)
        assert result.exit_code == 0, (route, result.output)
        outputs[route] = json.loads(out.read_text(encoding="utf-8"))
    expected = file_profile.to_data()
    for route, consult in outputs.items():
        assert consult["profile"] == expected, route
        assert consult["facts"] == outputs["file"]["facts"], route
        assert consult["suggestions"] == outputs["file"]["suggestions"], route


def test_interactive_cli_rechecks_a_refused_answer(tmp_path, fixture_env):
    result = CliRunner().invoke(main, ["consult", "--interactive", "-o", str(tmp_path / "c.json")],
                                input=_cli_input())
    assert result.exit_code == 0, result.output
    assert "unknown site 'tibai'; did you mean tibia?" in result.stderr
    assert "a number, please" in result.stderr
    assert "unknown response 'great'" in result.stderr
    assert "added methotrexate" in result.stderr and "Your answers:" in result.stderr
    assert "Age in years" not in result.stdout  # questions on the terminal, never on stdout


# -- --save ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ["flags", "interactive"])
def test_save_writes_a_profile_that_reloads_equal(tmp_path, fixture_env, vocab, file_profile, route):
    saved = tmp_path / f"saved-{route}.yaml"
    args = CLI_FLAGS if route == "flags" else ["--interactive"]
    given = None if route == "flags" else _cli_input()
    result = CliRunner().invoke(main, ["consult", *args, "--save", str(saved),
                                       "-o", str(tmp_path / "c.json")], input=given)
    assert result.exit_code == 0, result.output
    text = saved.read_text(encoding="utf-8")
    assert "null" not in text  # unstated fields are left out, as a person would write it
    reloaded = profile_from_file(saved, vocab)
    assert reloaded == file_profile
    assert yaml.safe_load(text)["treatments"][1]["ongoing"] is True


def test_save_without_a_path_directory_fails_cleanly(tmp_path, fixture_env):
    result = CliRunner().invoke(main, ["consult", *CLI_FLAGS, "--save",
                                       str(tmp_path / "no-such-dir" / "p.yaml")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "cannot write" in result.output


# -- parse_tried ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, entry", [
    ("naproxen:4:none", {"drug": "naproxen", "months": 4.0, "response": "none"}),
    ("naproxen:0.5:partial:ongoing", {"drug": "naproxen", "months": 0.5, "response": "partial",
                                      "ongoing": True}),
    ("naproxen:4:none:psoriasis,fever", {"drug": "naproxen", "months": 4.0, "response": "none",
                                         "adverse_events": ["psoriasis", "fever"]}),
    ("etanercept:6:partial:ongoing:psoriasis", {"drug": "etanercept", "months": 6.0,
                                                "response": "partial", "ongoing": True,
                                                "adverse_events": ["psoriasis"]}),
    ("etanercept:6:partial:psoriasis:Ongoing", {"drug": "etanercept", "months": 6.0,
                                                "response": "partial", "ongoing": True,
                                                "adverse_events": ["psoriasis"]}),
    ("Zoledronic acid:1:complete", {"drug": "Zoledronic acid", "months": 1.0, "response": "complete"}),
    ("naproxen:4:none:", {"drug": "naproxen", "months": 4.0, "response": "none"}),
    ("prednisolone:10d:relapse", {"drug": "prednisolone", "months": 0.3285, "response": "relapse"}),
    ("etanercept:3w:none", {"drug": "etanercept", "months": 0.6899, "response": "none"}),
    ("etanercept:3 weeks:none", {"drug": "etanercept", "months": 0.6899, "response": "none"}),
    ("naproxen:4m:none", {"drug": "naproxen", "months": 4.0, "response": "none"}),
    ("naproxen:1y:none", {"drug": "naproxen", "months": 12.0, "response": "none"}),
    ("naproxen:1.5M:none", {"drug": "naproxen", "months": 1.5, "response": "none"}),
])
def test_parse_tried_formats(vocab, spec, entry):
    assert parse_tried(spec, vocab) == entry


@pytest.mark.parametrize("spec, words", [
    ("naproxen", "DRUG:DURATION:RESPONSE"),
    ("naproxen:4", "DRUG:DURATION:RESPONSE"),
    ("", "DRUG:DURATION:RESPONSE"),
    ("naproxen:four:none", "'four' is not a duration"),
    ("naproxen::none", "'' is not a duration"),
    ("naproxen:-1:none", "'-1' is not a duration"),
    ("naproxen:nan:none", "'nan' is not a duration"),
    ("naproxen:3 fortnights:none", "is not a duration (write 10d, 3w, 4m or 1y"),
    ("naproxen:0x10:none", "'0x10' is not a duration"),
    ("naproxen:1_0:none", "'1_0' is not a duration"),
    ("naproxen:04:none", "'04' is not a duration"),
])
def test_parse_tried_errors(vocab, spec, words):
    with pytest.raises(ProfileError) as caught:
        parse_tried(spec, vocab, where=f"--tried {spec}")
    assert caught.value.field == f"--tried {spec}"
    assert words in caught.value.message


@pytest.mark.parametrize("spec, field, words", [
    ("aspirin:4:none", "treatments[0].drug", "unknown drug 'aspirin'"),
    ("naproxen:1201:none", "treatments[0].months", "less than or equal to 1200"),
    ("naproxen:4:maybe", "treatments[0].response", "unknown response"),
    ("naproxen:4:none:rashh", "treatments[0].adverse_events", "did you mean rash"),
])
def test_tried_values_are_validated_with_the_profile(vocab, spec, field, words):
    with pytest.raises(ProfileError) as caught:
        profile_from_flags({"age": 10.0, "diagnosis": "cno", "lesions": 1, "tried": (spec,)}, vocab)
    assert caught.value.field == field and words in caught.value.message
    assert caught.value.file == "flags"


def test_tried_is_oldest_first_and_two_ongoing_is_a_contradiction(vocab):
    flags = {"age": 10.0, "diagnosis": "cno", "lesions": 1,
             "tried": ("naproxen:4:none", "methotrexate:2:partial:ongoing")}
    profile = profile_from_flags(flags, vocab)
    assert [t.drug for t in profile.treatments] == ["naproxen", "methotrexate"]
    flags["tried"] = ("naproxen:1:partial:ongoing", "Naproxen:2:partial:ongoing")
    with pytest.raises(ProfileError, match="listed twice as ongoing"):
        profile_from_flags(flags, vocab)


# -- flags ----------------------------------------------------------------------------------------

def test_only_given_flags_are_used(vocab):
    data = profile_data_from_flags({"age": 9.0, "diagnosis": "cno", "lesions": 2, "site": (),
                                    "sex": None, "activity": (), "tried": ()}, vocab)
    assert data == {"age_years": 9.0, "diagnosis": "cno", "lesions": {"count": 2}}


@pytest.mark.parametrize("activity, field, words", [
    (("itching",), "--activity", "unknown activity 'itching'"),
    (("pain=maybe",), "--activity pain", "'maybe' is not yes or no"),
])
def test_activity_flag_errors(vocab, activity, field, words):
    with pytest.raises(ProfileError) as caught:
        profile_data_from_flags({"activity": activity}, vocab)
    assert caught.value.field == field and words in caught.value.message


def test_activity_flag_values(vocab):
    data = profile_data_from_flags({"activity": ("pain", "swelling=no", "new_lesions=YES",
                                                 "functional_impairment=0")}, vocab)
    assert data["activity"] == {"pain": True, "swelling": False, "new_lesions": True,
                                "functional_impairment": False}


def test_missing_required_fields_from_flags_name_them(vocab):
    with pytest.raises(ProfileError) as caught:
        profile_from_flags({"age": 10.0, "lesions": 1}, vocab)
    assert caught.value.field == "diagnosis" and caught.value.file == "flags"


# -- files ----------------------------------------------------------------------------------------

def test_a_teaching_case_file_is_read_through_its_profile(tmp_path, vocab):
    case = tmp_path / "case.yaml"
    case.write_text("title: A case\nsource: [x]\nteaches: t\nexpect: {stage: []}\nprofile:\n"
                    + "".join("  " + line + "\n" for line in PROFILE_YAML.splitlines()),
                    encoding="utf-8")
    assert profile_from_file(case, vocab).id == "same-patient"
    case.write_text(case.read_text().replace("response: partial", "response: great"))
    with pytest.raises(ProfileError) as caught:
        profile_from_file(case, vocab)
    assert caught.value.field == "treatments[1].response"
    assert caught.value.line == 27  # the line in the case file, not in the profile part


def test_json_file_route(tmp_path, vocab, file_profile):
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(yaml.safe_load(PROFILE_YAML)), encoding="utf-8")
    assert profile_from_file(path, vocab) == file_profile


# -- the interview checks each answer against the others, and reviews them all --------------------

def _answers(**changes):
    """ANSWERS with some prompts' replies replaced, and extra steps at the review."""
    review = changes.pop("review", [""])
    out = [(prompt, changes.get(prompt, replies)) for prompt, replies in ANSWERS
           if prompt != "Change an answer"]
    return out + [("Change an answer", review[:1])] + [(p, [r]) for p, r in review[1:]]


def test_an_onset_after_the_current_age_is_refused_at_once(vocab):
    script = Script(_answers(**{"Age at onset": ["14", "10.5"]}))
    data = interview(vocab, script.ask, script.confirm, script.say)
    assert script.answers == []
    refused = [reason for text, reason in script.refused if text.startswith("Age at onset")]
    assert refused == ["onset at 14 is after the current age 12"]  # numbers as written
    assert data["age_at_onset_years"] == 10.5


def test_more_sites_than_lesions_and_a_fracture_without_a_vertebra_are_refused_at_once(vocab):
    script = Script(_answers(**{"Number of lesions": ["1"], "Sites": ["vertebra tibia", "vertebra"],
                                "Vertebral fracture": ["yes"]}))
    interview(vocab, script.ask, script.confirm, script.say)
    assert ("Sites", "2 sites listed but lesions.count is 1") in [
        (text.split(" (")[0].split(",")[0], reason) for text, reason in script.refused]
    script = Script(_answers(**{"Sites": ["tibia"], "Vertebral fracture": ["yes", "no"]}))
    interview(vocab, script.ask, script.confirm, script.say)
    assert any("needs 'vertebra'" in reason for _, reason in script.refused)


def test_two_ongoing_courses_of_one_drug_are_refused_at_once(vocab):
    answers = [a for a in _answers() if a[0] not in ("Change an answer",)]
    cut = [i for i, (p, _) in enumerate(answers) if p == "Add a treatment"][-1]
    extra = [("Add a treatment", ["yes"]), ("  Drug or class", ["methotrexate"]),
             ("  How long", ["1m"]), ("  Response", ["partial"]), ("  Adverse events", [""]),
             ("  Still ongoing", ["yes", "no"])]
    script = Script(answers[:cut] + extra + answers[cut:] + [("Change an answer", [""])])
    data = interview(vocab, script.ask, script.confirm, script.say)
    assert any("listed twice as ongoing" in reason for _, reason in script.refused)
    assert [t.get("ongoing", False) for t in data["treatments"]] == [False, True, False]


def test_the_review_changes_an_answer_and_asks_again_what_it_contradicts(vocab, file_profile):
    # lower the age to 9: the onset of 10.5 now contradicts it and is asked again
    script = Script(_answers(review=["2", ("Age in years", "9"), ("Age at onset", "8"),
                                     ("Change an answer", "")]))
    data = interview(vocab, script.ask, script.confirm, script.say)
    assert script.answers == []
    assert data["age_years"] == 9 and data["age_at_onset_years"] == 8
    assert any("after the current age 9" in line for line in script.said)
    assert validate_profile(data, vocab).age_years == 9


def test_stopping_at_the_review_hands_back_the_answers(vocab):
    from cno_pathway.patient.intake import InterviewStopped

    script = Script(_answers(review=["q"]))
    with pytest.raises(InterviewStopped) as stopped:
        interview(vocab, script.ask, script.confirm, script.say)
    assert validate_profile(stopped.value.data, vocab).id == "same-patient"


def test_the_jansson_score_can_be_skipped(vocab):
    script = Script(_answers(**{"Jansson clinical score": [""]}))
    data = interview(vocab, script.ask, script.confirm, script.say)
    assert "jansson_score" not in data
    assert validate_profile(data, vocab).jansson_score is None
    assert any("Jansson score" in line and line.rstrip().endswith("-") for line in script.said)


def test_the_consult_summary_shows_the_jansson_score(tmp_path, fixture_env):
    result = CliRunner().invoke(main, ["consult", *CLI_FLAGS, "-f", "text"])
    assert result.exit_code == 0, result.output
    assert "Jansson score: 35 of 63" in result.stdout
    without = [a for a in CLI_FLAGS if a not in ("--jansson", "35")]
    result = CliRunner().invoke(main, ["consult", *without, "-f", "text"])
    assert result.exit_code == 0, result.output
    assert "Jansson" not in result.stdout  # not scored: no line


def test_the_jansson_flag_is_checked_by_the_profile(fixture_env):
    result = CliRunner().invoke(main, ["consult", "--age", "10", "--lesions", "1",
                                       "--diagnosis", "cno", "--jansson", "64"])
    assert result.exit_code == 2
    assert "jansson_score" in result.stderr and "Traceback" not in result.output


def test_durations_with_units_in_the_interview(vocab):
    script = Script(_answers(**{"  How long": ["two weeks", "2w"]}))
    data = interview(vocab, script.ask, script.confirm, script.say)
    assert [t["months"] for t in data["treatments"]] == [0.46, 0.46]
    assert any("is not a duration" in reason for _, reason in script.refused)


def test_what_if_takes_a_duration_with_its_unit(tmp_path, fixture_env):
    result = CliRunner().invoke(main, ["consult", *CLI_FLAGS, "-f", "json",
                                       "--what-if", "treatments+=etanercept:3w:none"])
    assert result.exit_code == 0, result.output
