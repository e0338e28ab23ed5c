"""`cno-pathway consult`: one patient from a file, from flags, or by interview."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..consult.render import render_consult
from ..errors import InputError, ProfileError
from ..patient.durations import EXAMPLES as DURATIONS
from ..patient.intake import (ACTIVITY, profile_data_from_flags,
                              profile_from_file)
from ..patient.profile import validate_profile
from ..terminal import clean
from .common import (FORMATS, VocabularyOption, formulary_option, load_pathway, output_option, pick_format,
                     rules_option, terminal_options, use_colour, write_output)

_FLAG_NAMES = ("id", "age", "sex", "weight", "onset_age", "diagnosis", "lesions", "site",
               "vertebral_fracture", "symmetric", "imaging", "activity", "crp", "esr",
               "cbc_normal", "feature", "red_flag", "biopsy", "hla_b27", "jansson", "tried")
# the flags the patient route cannot do without -> the vocabulary list of their values (or None)
REQUIRED_FLAGS = {"age": None, "diagnosis": "diagnoses", "lesions": None}
_REQUIRED = " [required with flags]"


@click.command()
@click.argument("profile", required=False)
@click.option("--id", "id", help="Profile label, echoed in the output.")
@click.option("--age", type=float, help="Age in years." + _REQUIRED)
@click.option("--sex", cls=VocabularyOption, help=lambda v: f"Sex, one of: {v('sexes')}.")
@click.option("--weight", type=float, help="Weight in kg (absolute doses only when given).")
@click.option("--onset-age", type=float, help="Age at onset in years.")
@click.option("--diagnosis", cls=VocabularyOption,
              help=lambda v: f"Diagnosis, one of: {v('diagnoses')}." + _REQUIRED)
@click.option("--lesions", type=int, help="Number of lesions on the latest imaging." + _REQUIRED)
@click.option("--site", multiple=True, cls=VocabularyOption,
              help=lambda v: f"A lesion site (repeat for each), one of: {v('sites')}.")
@click.option("--vertebral-fracture/--no-vertebral-fracture", default=None,
              help="Vertebral fracture or structural damage.")
@click.option("--symmetric/--asymmetric", default=None, help="Symmetric lesions.")
@click.option("--imaging", cls=VocabularyOption,
              help=lambda v: f"Latest imaging, one of: {v('imaging')}.")
@click.option("--activity", multiple=True, metavar="NAME[=yes|no]",
              help=f"Disease activity (repeat), NAME one of: {', '.join(ACTIVITY)}; e.g. "
                   f"--activity pain --activity swelling=no.")
@click.option("--crp", type=float, help="CRP in mg/L.")
@click.option("--esr", type=float, help="ESR in mm/h.")
@click.option("--cbc-normal/--cbc-abnormal", default=None, help="Blood count normal or not.")
@click.option("--feature", multiple=True, cls=VocabularyOption,
              help=lambda v: f"Associated feature (repeat), one of: {v('features')}.")
@click.option("--red-flag", multiple=True, cls=VocabularyOption,
              help=lambda v: f"Red flag for infection or malignancy (repeat), one of: "
                             f"{v('red_flags')}.")
@click.option("--biopsy", cls=VocabularyOption,
              help=lambda v: f"Biopsy result, one of: {v('biopsy')}.")
@click.option("--hla-b27", cls=VocabularyOption, help=lambda v: f"HLA-B27, one of: {v('hla_b27')}.")
@click.option("--jansson", type=int, metavar="0-63",
              help="Jansson clinical score (0-63), if it was scored.")
@click.option("--tried", multiple=True, metavar="DRUG:DURATION:RESPONSE[:ongoing][:EVENTS]",
              cls=VocabularyOption,
              help=lambda v: f"A treatment tried, oldest first (repeat), e.g. naproxen:4:none or "
                             f"prednisolone:10d:relapse. DURATION: {DURATIONS}. RESPONSE: "
                             f"{v('responses')}. EVENTS, separated by commas: "
                             f"{v('adverse_events')}. DRUG, a drug or class: {v('drugs')}.")
@click.option("-i", "--interactive", is_flag=True,
              help="Ask for each field on the terminal, check each answer at once, and review "
                   "them all before the consult.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path),
              help="With --interactive or flags: save the profile as YAML (also when you stop "
                   "at the review without a consult).")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS),
              help="Output format (default: from the -o extension, else text).")
@output_option(".txt, .md, .html, .json")
@click.option("--explain", is_flag=True,
              help="Show every rule not suggested and why, the fired rules and derived facts.")
@click.option("--what-if", "what_if_edits", multiple=True, metavar="EDIT",
              help="Consult again with an edited profile and show before and after side by side "
                   "(repeat for several edits): FIELD=VALUE, FIELD+=VALUE or FIELD-=VALUE, e.g. "
                   "vertebral_fracture=true, features+=psoriasis, treatments+=etanercept:3w:none.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="For a FHIR Bundle: count ages and treatment months to this day instead of "
                   "today, so that the same Bundle gives the same consult on any day.")
@rules_option
@formulary_option
@terminal_options
def consult(profile, interactive, save, fmt, output, explain, rules_dir, what_if_edits, formulary,
            as_of, **flags):
    """Run a consult for one patient.

    PROFILE is a YAML or JSON file ('-' reads standard input). Without it, describe the patient
    with flags (--age 12 --lesions 6 --diagnosis cno --site tibia --tried naproxen:4:none ...)
    or answer questions with --interactive.
    """
    given_flags = {k: v for k, v in flags.items() if v not in (None, ())}
    routes = sum([profile is not None, bool(given_flags), interactive])
    if routes != 1:
        raise click.UsageError("give exactly one of: a PROFILE file, patient flags, or --interactive")
    fmt = pick_format(fmt, output)  # an output it cannot write is refused before any question
    pathway = load_pathway(rules_dir, formulary)
    vocabulary = pathway.vocabulary
    if as_of is not None and profile is None:
        raise click.UsageError("--as-of applies to a FHIR Bundle file, not to flags or --interactive")
    if profile is not None:
        from ..interop import reading_as_of

        with reading_as_of(as_of.date() if as_of else None):
            patient = profile_from_file(profile, vocabulary)
        if as_of is not None and getattr(patient, "as_of", None) is None:
            raise click.UsageError(f"--as-of applies to a FHIR Bundle; {profile} is not one "
                                   "(its ages and months are as written)")
    elif interactive:
        patient = _interactive(vocabulary, save)
    else:
        _required_flags(given_flags, vocabulary)
        patient = validate_profile(profile_data_from_flags(given_flags, vocabulary), vocabulary,
                                   source="flags")
    if save is not None:
        _save(patient.to_data(), save)
    if what_if_edits:  # --what-if: before and after side by side (cno_pathway/whatif.py)
        from .teaching import print_what_if  # imported here: plain consults skip the teaching code

        print_what_if(pathway, patient, what_if_edits, fmt, output)
        return
    result = pathway.consult(patient, explain=explain)
    colour = use_colour(output) and fmt == "text"
    write_output(render_consult(result, fmt, colour=colour), output, fmt=fmt, colour=colour)


def _required_flags(given: dict, vocabulary) -> None:
    """A flag the profile needs, named as a flag, with the values it takes."""
    missing = [flag for flag in REQUIRED_FLAGS if flag not in given]
    if not missing:
        return
    parts = []
    for flag in missing:
        kind = REQUIRED_FLAGS[flag]
        allowed = f" (one of: {', '.join(vocabulary.values(kind))})" if kind else ""
        parts.append(f"--{flag.replace('_', '-')}{allowed}")
    raise InputError(f"missing {'flag' if len(missing) == 1 else 'flags'} {'; '.join(parts)}",
                     field="flags")


def _save(data: dict, save: Path) -> None:
    import yaml

    write_output(yaml.safe_dump(_compact(data), sort_keys=False), save, fmt="yaml")


def _compact(data):
    """Drop unstated (null) fields so a saved profile reads like one written by hand."""
    if isinstance(data, dict):
        return {k: _compact(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_compact(v) for v in data]
    return data


# -- the interview, on the terminal ---------------------------------------------------------------

def _interactive(vocabulary, save: Path | None):
    """The interview talks on standard error, so standard output holds only the consult;
    --save keeps the answers even when the person stops at the review."""
    from ..patient.interview import InterviewStopped, interview  # only for this route

    click.echo("Answer each question; Enter takes the value in [brackets]. You can review and "
               "change every answer before the consult runs.", err=True)
    try:
        data = interview(vocabulary, _ask, _confirm, _say)
    except InterviewStopped as stopped:
        patient = validate_profile(stopped.data, vocabulary, source="interactive")
        if save is not None:
            _save(patient.to_data(), save)
            click.echo(f"cno-pathway: saved the profile to {clean(str(save))}; no consult run",
                       err=True)
        else:
            click.echo("cno-pathway: stopped at the review; no consult run", err=True)
        sys.exit(0)
    return validate_profile(data, vocabulary, source="interactive")


def _answer(text: str) -> str:
    """One line typed by the person, after the question on standard error."""
    sys.stderr.write(text)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise InputError("the answers ended before the interview was complete "
                         "(standard input closed)", field="--interactive")
    return line.rstrip("\r\n")


def _ask(text, check, default):
    shown = f"{text} [{default}]: " if default not in (None, "") else f"{text}: "
    while True:
        answer = _answer(shown)
        if not answer.strip() and default is not None:
            answer = default
        try:
            return check(answer)
        except (ValueError, ProfileError) as exc:
            reason = exc.message if isinstance(exc, ProfileError) else str(exc)
            click.echo(f"  {clean(reason)}", err=True)


def _confirm(text) -> bool:
    while True:
        answer = _answer(f"{text} [y/N]: ").strip().lower()
        if answer in ("", "n", "no"):
            return False
        if answer in ("y", "yes"):
            return True
        click.echo("  yes or no, please", err=True)


def _say(text) -> None:
    click.echo(clean(text), err=True)


# Number flags are read like numbers in a profile file (yamlio.parse_number): --weight 032 is a
# usage error, not 32 (issue 14). Set here, after the command, to leave the option lines alone.
from ..patient.intake import NUMBER_FLAGS as _NUMBER_FLAGS  # noqa: E402
from ..yamlio import NotANumber as _NotANumber, parse_number as _parse_number  # noqa: E402


class _Number(click.ParamType):
    name = "number"

    def __init__(self, integer: bool = False):
        self.integer = integer
        self.name = "integer" if integer else "number"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return _parse_number(value, integer=self.integer)
        except _NotANumber as exc:
            self.fail(str(exc), param, ctx)


for _param in consult.params:
    if _param.name in _NUMBER_FLAGS:
        _param.type = _Number(integer=_param.name == "lesions")
