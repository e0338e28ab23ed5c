"""The interactive consult and the demo, driven through a pseudo-terminal as a person would:
each answer checked against the earlier ones at once and asked again, the questions on the
terminal and never on standard output, a review where any answer can be changed, --save even
when no consult runs, durations with units, and Ctrl-C ending in exit status 130."""

from __future__ import annotations

import json

import pytest
import yaml

from cno_pathway.patient.intake import profile_from_file
from tests.terminal_session import Session, base_env

# the questions after the onset, in order, answered with Enter (their default) unless given
LATER = ["Diagnosis", "Number of lesions", "Sites", "Vertebral fracture", "Symmetric",
         "Latest imaging", "Pain", "Swelling", "Functional impairment", "Active lesions on MRI",
         "New lesions", "CRP", "ESR", "Blood count normal", "Associated features", "Red flags",
         "Biopsy", "HLA-B27", "Jansson clinical score"]


@pytest.fixture
def env(tmp_path, fixture_rules, fixture_seeds):
    return base_env(tmp_path, CNO_PATHWAY_RULES=str(fixture_rules),
                    CNO_PATHWAY_SEEDS=str(fixture_seeds))


def _through_onset(session: Session, onset_answers=("10",)) -> str:
    session.answer("Profile label", "pty-patient")
    session.answer("Age in years", "12")
    session.answer("Sex", "")
    session.answer("Weight in kg", "")
    shown = ""
    for reply in onset_answers:
        shown += session.answer("Age at onset", reply)
    return shown


def _rest(session: Session, answers: dict) -> None:
    for prompt in LATER:
        session.answer(prompt, answers.get(prompt, ""))


def test_an_answer_that_contradicts_an_earlier_one_is_asked_again_at_once(tmp_path, env):
    saved = tmp_path / "saved.yaml"
    session = Session(["consult", "-i", "-f", "json", "--save", saved], env=env, cwd=tmp_path)
    _through_onset(session, onset_answers=("14",))
    # the onset of 14 for a 12-year-old is refused on the spot, with the reason, and asked again
    refused = session.expect("Age at onset")
    assert "onset at 14" in refused and "after the current age 12" in refused
    session.send("10\r")
    _rest(session, {"Diagnosis": "cno", "Number of lesions": "2", "Sites": "tibia"})
    session.answer("Add a treatment", "y")
    session.answer("Drug or class", "naproxen")
    session.answer("How long", "3w")
    session.answer("Response", "none")
    session.answer("Adverse events", "")
    session.answer("Still ongoing", "")
    session.answer("Add a treatment", "")
    review = session.expect("Change an answer")
    assert "Your answers:" in review
    assert "Age at onset" in review and "naproxen, 3 weeks: no response" in review
    # lower the age below the onset: the onset is asked again, with the reason
    session.send("2\r")
    session.answer("Age in years", "9")
    again = session.expect("Age at onset")
    assert "after the current age 9" in again
    session.send("8\r")
    session.answer("Change an answer", "")
    code, terminal, out = session.finish()
    assert code == 0, terminal
    assert "Traceback" not in terminal
    consult = json.loads(out)  # standard output holds the consult and nothing else
    assert consult["profile"]["age_years"] == 9 and consult["profile"]["age_at_onset_years"] == 8
    assert consult["profile"]["treatments"][0]["months"] == pytest.approx(21 / (365.25 / 12), abs=1e-3)
    assert b"Age in years" not in out and b"Your answers" not in out
    reloaded = profile_from_file(saved, _vocab(env))
    assert reloaded.age_years == 9 and reloaded.treatments[0].drug == "naproxen"


def test_stopping_at_the_review_still_saves_and_runs_no_consult(tmp_path, env):
    saved = tmp_path / "saved.yaml"
    session = Session(["consult", "-i", "--save", saved], env=env, cwd=tmp_path)
    _through_onset(session)
    _rest(session, {"Diagnosis": "crmo", "Number of lesions": "3"})
    session.answer("Add a treatment", "n")
    session.answer("Change an answer", "q")
    code, terminal, out = session.finish()
    assert code == 0, terminal
    assert out == b""  # no consult
    assert "no consult run" in terminal
    data = yaml.safe_load(saved.read_text(encoding="utf-8"))
    assert data["diagnosis"] == "crmo" and data["lesions"]["count"] == 3


def test_a_refused_review_choice_and_a_bad_duration_are_asked_again(tmp_path, env):
    session = Session(["consult", "-i", "-f", "json"], env=env, cwd=tmp_path)
    _through_onset(session)
    _rest(session, {"Diagnosis": "cno", "Number of lesions": "1"})
    session.answer("Add a treatment", "yes")
    session.answer("Drug or class", "prednisolone")
    session.answer("How long", "3 fortnights")
    assert "is not a duration" in session.expect("How long")
    session.send("10d\r")
    session.answer("Response", "relapse")
    session.answer("Adverse events", "")
    session.answer("Still ongoing", "")
    session.answer("Add a treatment", "")
    session.answer("Change an answer", "99")
    assert "a number from 1 to" in session.expect("Change an answer")
    session.send("\r")
    code, terminal, out = session.finish()
    assert code == 0, terminal
    months = json.loads(out)["profile"]["treatments"][0]["months"]
    assert months == pytest.approx(10 / (365.25 / 12), abs=1e-3)


def test_ctrl_c_during_the_interview_exits_130_without_a_traceback(tmp_path, env):
    saved = tmp_path / "saved.yaml"
    session = Session(["consult", "-i", "--save", saved], env=env, cwd=tmp_path)
    session.answer("Profile label", "x")
    session.expect("Age in years")
    session.send("\x03")
    code, terminal, out = session.finish()
    assert code == 130, terminal
    assert "Traceback" not in terminal and "interrupted" in terminal
    assert out == b"" and not saved.exists()


def test_the_demo_stops_on_ctrl_c_at_its_pause(tmp_path):
    env = base_env(tmp_path)
    session = Session(["demo", "steroid-relapse", "--no-pager"], env=env, cwd=tmp_path,
                      stdout_on_terminal=True)
    session.expect("press any key for step 2")
    session.send("x")  # any key goes on
    session.expect("press any key for step 3")
    session.send("\x03")
    code, terminal, _ = session.finish()
    assert code == 130, terminal
    assert "Traceback" not in terminal
    assert "Step 3" not in terminal.split("press any key for step 3")[-1]


def _vocab(env):
    from cno_pathway.knowledge.vocabulary import load_vocabulary

    return load_vocabulary(env["CNO_PATHWAY_RULES"])
