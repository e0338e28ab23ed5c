"""`consult --help` lists the allowed values of the vocabulary flags from the rule base's
vocabulary.yaml (as the error for a wrong value does), read only when help is shown."""

from __future__ import annotations

import re

import click
import pytest
import yaml
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.commands import common
from cno_pathway.commands.consult import consult
from tests.conftest import FIXTURE_RULES, ROOT

# flag -> the vocabulary.yaml lists its help names, in the order the help gives them
FLAGS = {"--sex": ["sexes"], "--diagnosis": ["diagnoses"], "--site": ["sites"],
         "--imaging": ["imaging"], "--feature": ["features"], "--red-flag": ["red_flags"],
         "--biopsy": ["biopsy"], "--hla-b27": ["hla_b27"],
         "--tried": ["responses", "adverse_events", "drugs"]}


def _yaml_values(rules_dir, key) -> list[str]:
    data = yaml.safe_load((rules_dir / "vocabulary.yaml").read_text(encoding="utf-8"))
    if key == "drugs":  # the drugs of every class, and the class names themselves
        classes = data["drug_classes"]
        return sorted(set(classes) | {d for c in classes.values() for d in c["drugs"]})
    value = data[key]
    return list(value) if isinstance(value, (list, dict)) else []


def _help_lists(flag: str) -> list[list[str]]:
    """The value lists in one option's help: after 'one of:' or 'RESPONSE:', 'EVENTS, ...:',
    'DRUG, ...:', each up to the full stop."""
    option = next(p for p in consult.params if flag in p.opts)
    with click.Context(consult) as ctx:
        text = option.get_help_record(ctx)[1]
    found = re.findall(r"(?:one of|RESPONSE|EVENTS, separated by commas|DRUG, a drug or class): "
                       r"([a-z0-9_, ]+)\.", text)
    return [[v.strip() for v in part.split(",")] for part in found]


@pytest.fixture
def fresh_help(monkeypatch):
    common._help_vocabulary.cache_clear()
    yield monkeypatch
    common._help_vocabulary.cache_clear()


@pytest.mark.parametrize("flag", FLAGS)
def test_every_allowed_value_in_help_comes_from_the_vocabulary(fresh_help, flag):
    fresh_help.delenv("CNO_PATHWAY_RULES", raising=False)
    lists = _help_lists(flag)
    assert lists == [_yaml_values(ROOT / "rules", key) for key in FLAGS[flag]]
    assert all(lists)


def test_help_follows_the_rule_folder_a_consult_would_use(fresh_help):
    fresh_help.setenv("CNO_PATHWAY_RULES", str(FIXTURE_RULES))
    assert _help_lists("--site") == [_yaml_values(FIXTURE_RULES, "sites")]


def test_help_shows_even_when_the_rule_folder_cannot_be_read(fresh_help, tmp_path):
    fresh_help.setenv("CNO_PATHWAY_RULES", str(tmp_path / "missing"))
    result = CliRunner().invoke(main, ["consult", "--help"])
    assert result.exit_code == 0, result.output
    assert _help_lists("--diagnosis") == [_yaml_values(ROOT / "rules", "diagnoses")]


def test_a_consult_does_not_read_the_vocabulary_for_help(fresh_help, fixture_env, examples_dir):
    result = CliRunner().invoke(main, ["consult", str(examples_dir / "steroid-relapse.yaml")])
    assert result.exit_code == 0, result.output
    assert common._help_vocabulary.cache_info().misses == 0
    result = CliRunner().invoke(main, ["consult", "--help"])
    assert common._help_vocabulary.cache_info().misses == 1
    assert "Diagnosis, one of: " in result.output


def test_help_lists_the_activity_names_the_flag_takes():
    from cno_pathway.patient.profile import Activity

    option = next(p for p in consult.params if "--activity" in p.opts)
    with click.Context(consult) as ctx:
        text = option.get_help_record(ctx)[1]
    listed = re.search(r"NAME one of: ([a-z_, ]+);", text).group(1).split(", ")
    assert listed == list(Activity.model_fields)
