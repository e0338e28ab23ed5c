"""`cno-pathway consult`: one patient from a file, from flags, or by interview."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ProfileError
from ..patient.intake import interview, profile_data_from_flags, profile_from_file
from ..patient.profile import validate_profile
from ..consult.render import render_consult
from .common import FORMATS, load_pathway, pick_format, rules_option, use_colour, write_output

_FLAG_NAMES = ("id", "age", "sex", "weight", "onset_age", "diagnosis", "lesions", "site",
               "vertebral_fracture", "symmetric", "imaging", "activity", "crp", "esr",
               "cbc_normal", "feature", "red_flag", "biopsy", "hla_b27", "tried")


@click.command()
@click.argument("profile", required=False)
@click.option("--id", "id", help="Profile label, echoed in the output.")
@click.option("--age", type=float, help="Age in years.")
@click.option("--sex", help="female, male or other.")
@click.option("--weight", type=float, help="Weight in kg (absolute doses only when given).")
@click.option("--onset-age", type=float, help="Age at onset in years.")
@click.option("--diagnosis", help="cno, crmo, sapho or suspected.")
@click.option("--lesions", type=int, help="Number of lesions on the latest imaging.")
@click.option("--site", multiple=True, help="A lesion site (repeat for each).")
@click.option("--vertebral-fracture/--no-vertebral-fracture", default=None,
              help="Vertebral fracture or structural damage.")
@click.option("--symmetric/--asymmetric", default=None, help="Symmetric lesions.")
@click.option("--imaging", help="whole_body_mri, regional_mri, bone_scintigraphy, radiograph, none.")
@click.option("--activity", multiple=True, metavar="NAME[=yes|no]",
              help="Disease activity, e.g. --activity pain --activity swelling=no.")
@click.option("--crp", type=float, help="CRP in mg/L.")
@click.option("--esr", type=float, help="ESR in mm/h.")
@click.option("--cbc-normal/--cbc-abnormal", default=None, help="Blood count normal or not.")
@click.option("--feature", multiple=True, help="Associated feature (repeat).")
@click.option("--red-flag", multiple=True, help="Red flag for infection or malignancy (repeat).")
@click.option("--biopsy", help="none, inflammatory, infection, malignancy, nondiagnostic.")
@click.option("--hla-b27", help="positive, negative or unknown.")
@click.option("--tried", multiple=True, metavar="DRUG:MONTHS:RESPONSE[:ongoing][:EVENTS]",
              help="A treatment tried, oldest first (repeat), e.g. naproxen:4:none.")
@click.option("-i", "--interactive", is_flag=True, help="Ask for each field with prompts.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path),
              help="With --interactive or flags: save the profile as YAML.")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS),
              help="Output format (default: from the -o extension, else text).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the consult to a file, whole or not at all (format from its "
                   "extension: .txt, .md, .html, .json).")
@click.option("--explain", is_flag=True,
              help="Show every rule not suggested and why, the fired rules and derived facts.")
@click.option("--what-if", "what_if_edits", multiple=True, metavar="EDIT",
              help="Consult again with an edited profile and show before and after side by side "
                   "(repeat for several edits): FIELD=VALUE, FIELD+=VALUE or FIELD-=VALUE, e.g. "
                   "vertebral_fracture=true, features+=psoriasis, treatments+=etanercept:3:none.")
@rules_option
def consult(profile, interactive, save, fmt, output, explain, rules_dir, what_if_edits, **flags):
    """Run a consult for one patient.

    PROFILE is a YAML or JSON file ('-' reads standard input). Without it, describe the patient
    with flags (--age 12 --lesions 6 --diagnosis cno --site tibia --tried naproxen:4:none ...)
    or answer prompts with --interactive.
    """
    pathway = load_pathway(rules_dir)
    vocabulary = pathway.vocabulary
    given_flags = {k: v for k, v in flags.items() if v not in (None, ())}
    routes = sum([profile is not None, bool(given_flags), interactive])
    if routes != 1:
        raise click.UsageError("give exactly one of: a PROFILE file, patient flags, or --interactive")
    if profile is not None:
        patient = profile_from_file(profile, vocabulary)
    else:
        if interactive:
            data = interview(vocabulary, _prompt, lambda text: click.confirm(text, default=False),
                             click.echo)
        else:
            data = profile_data_from_flags(given_flags, vocabulary)
        patient = validate_profile(data, vocabulary, source="interactive" if interactive else "flags")
    if save is not None:
        import yaml

        write_output(yaml.safe_dump(_compact(patient.to_data()), sort_keys=False), save)
    fmt = pick_format(fmt, output)
    if what_if_edits:  # --what-if: before and after side by side (cno_pathway/whatif.py)
        from .teaching import print_what_if  # imported here: plain consults skip the teaching code

        print_what_if(pathway, patient, what_if_edits, fmt, output)
        return
    result = pathway.consult(patient, explain=explain)
    write_output(render_consult(result, fmt, colour=use_colour(output) and fmt == "text"), output)


def _compact(data):
    """Drop unstated (null) fields so a saved profile reads like one written by hand."""
    if isinstance(data, dict):
        return {k: _compact(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_compact(v) for v in data]
    return data


def _prompt(text, check, default):
    while True:
        answer = click.prompt(text, default=default if default is not None else None,
                              show_default=default not in (None, ""), type=str)
        try:
            return check(answer)
        except (ValueError, ProfileError) as exc:
            click.echo(f"  {exc}", err=True)


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
