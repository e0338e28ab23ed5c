"""Replay a teaching case one treatment at a time, for teaching how the pathway steps up.

Step 1 is the patient with no treatment history; each later step adds the next treatment of the
case (oldest first) with its recorded response. Everything else in the profile stays as the case
describes it. At each step the demo holds the consult and what changed since the step before.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cases import Case
from .changes import Changes, compare
from ..consult.consult import Consult, Pathway
from ..errors import ProfileError
from ..patient.profile import PatientProfile, Treatment, validate_profile
from ..consult.render import render_template

FORMATS = ("text", "markdown", "html")


@dataclass
class DemoStep:
    number: int                 # 1-based
    added: Treatment | None     # the treatment this step adds (None for the first step)
    profile: PatientProfile
    consult: Consult
    changes: Changes            # since the step before (all new at step 1)

    @property
    def history(self) -> list[Treatment]:
        return list(self.profile.treatments)


@dataclass
class Demo:
    case: Case
    profile: PatientProfile     # the case's full profile
    steps: list[DemoStep]

    @property
    def final(self) -> DemoStep:
        return self.steps[-1]

    @property
    def rulebook(self) -> dict:
        return self.final.consult.rulebook

    @property
    def disclaimer(self) -> str:
        return self.final.consult.disclaimer


def history_profiles(profile: PatientProfile, vocabulary) -> list[PatientProfile]:
    """The profile with no treatments, then with the first, the first two, ... all of them."""
    data = profile.to_data()
    out = []
    for count in range(len(profile.treatments) + 1):
        step = dict(data, treatments=data["treatments"][:count])
        try:
            out.append(validate_profile(step, vocabulary, source=f"step {count + 1}"))
        except ProfileError as exc:  # cannot happen for a valid profile; say where if it does
            raise ProfileError(f"the history cut after {count} treatments is not a valid profile: "
                               f"{exc.message}", field=exc.field) from None
    return out


def replay(pathway: Pathway, case: Case) -> Demo:
    """Consult the case at every step of its treatment history."""
    full = case.profile(pathway.vocabulary)
    steps: list[DemoStep] = []
    previous: Consult | None = None
    for index, profile in enumerate(history_profiles(full, pathway.vocabulary)):
        consult = pathway.consult(profile)
        added = full.treatments[index - 1] if index else None
        steps.append(DemoStep(index + 1, added, profile, consult, compare(previous, consult)))
        previous = consult
    return Demo(case=case, profile=full, steps=steps)


def render_demo_parts(demo: Demo, vocabulary, *, colour: bool = False) -> list[str]:
    """The text walk-through in pieces: the case, each step, the closing notes (for pausing)."""
    context = {"demo": demo, "vocab": vocabulary}
    return ([render_template("demo_head.txt.j2", colour=colour, **context)]
            + [render_template("demo_step.txt.j2", colour=colour, step=step, **context)
               for step in demo.steps]
            + [render_template("demo_foot.txt.j2", colour=colour, **context)])


def render_demo(demo: Demo, fmt: str, vocabulary, *, colour: bool = False) -> str:
    """The whole walk-through as text, or as one Markdown or HTML handout."""
    if fmt == "text":
        return "".join(render_demo_parts(demo, vocabulary, colour=colour))
    if fmt == "markdown":
        return render_template("demo.md.j2", demo=demo, vocab=vocabulary)
    if fmt == "html":
        return render_template("demo.html.j2", autoescape=True, demo=demo, vocab=vocabulary)
    raise ValueError(f"unknown demo format {fmt!r} (allowed: {', '.join(FORMATS)})")
