"""The interactive route to a profile: one question at a time, each answer checked at once
against the answers before it, then a review of every answer with the chance to change any.

The checks are the profile's own (profile.validate_profile): after each answer the answers so
far are validated, with neutral stand-ins for required fields not asked yet, and an error that
names this question's field asks it again with the reason. So the interview and the file route
refuse the same things (an onset after the current age, more sites than lesions, ...).

The questions talk through three callables, so the CLI and the tests drive the same code:
`ask(text, check, default)` returns the checked value (asking again until `check` accepts it),
`confirm(text)` returns True or False, `say(text)` shows a line.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ProfileError
from ..knowledge.vocabulary import Vocabulary
from .durations import EXAMPLES as DURATION_EXAMPLES, duration_words, parse_duration
from .profile import Activity, validate_profile
from ..wording import fact_words

ACTIVITY = tuple(Activity.model_fields)
_YES = {"yes": True, "true": True, "y": True, "no": False, "false": False, "n": False}
_NUMBER = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_WHOLE = re.compile(r"0|[1-9][0-9]*")

Ask = Callable[..., Any]


class InterviewStopped(Exception):
    """The person chose at the review to stop without a consult; `data` holds the answers."""

    def __init__(self, data: dict):
        super().__init__("stopped at the review")
        self.data = data


@dataclass
class Question:
    key: str                        # the field path: "age_years", "lesions.sites"
    label: str                      # how the review names it
    text: str                       # the prompt
    parse: Callable[[str], Any]     # text -> value (None: not stated); ValueError to ask again
    default: str = ""


# -- answers into values --------------------------------------------------------------------------

def _number(text: str) -> float:
    if not _NUMBER.fullmatch(text.strip()):
        raise ValueError("a number, please (like 12 or 12.5)")
    return float(text)


def _whole(text: str) -> int:
    if not _WHOLE.fullmatch(text.strip()):
        raise ValueError("a number, please (a whole number like 3)")
    return int(text)


def _optional(parse):
    return lambda text: None if text.strip() in ("", "-") else parse(text)


def _yes_no_unknown(text: str):
    key = text.strip().lower()
    if key in ("", "-", "unknown", "?"):
        return None
    if key not in _YES:
        raise ValueError("yes, no or unknown, please")
    return _YES[key]


def _yes_no(text: str) -> bool:
    key = text.strip().lower()
    if key not in _YES:
        raise ValueError("yes or no, please")
    return _YES[key]


def _fracture(text: str) -> bool:
    """Yes or no; 'unknown' reads as no, as a profile without the field does."""
    return bool(_yes_no_unknown(text))


# -- the answers as plain profile data ------------------------------------------------------------

def _set(data: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


def _get(data: dict, key: str):
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _concerns(field: str | None, key: str) -> bool:
    """Whether an error about `field` is about the question `key`. A treatment's part concerns
    the same part of every treatment (two entries ongoing: the error names the first)."""
    if not field:
        return False
    if field == key or field.startswith((key + ".", key + "[")):
        return True
    part = re.fullmatch(r"treatments\[\d+\]\.(\w+)", key)
    return bool(part) and re.fullmatch(rf"treatments\[\d+\]\.{part.group(1)}", field) is not None


class _Interview:
    def __init__(self, vocabulary: Vocabulary, ask: Ask, confirm: Callable[[str], bool],
                 say: Callable[[str], None]):
        self.v, self.ask, self.confirm, self.say = vocabulary, ask, confirm, say
        self.data: dict = {}
        self.shown: dict[str, str] = {}     # key -> the answer as typed, for the review
        self.asked: set[str] = set()
        self.questions = self._questions()

    # the questions, in the order a clinician takes a history
    def _questions(self) -> list[Question]:
        v = self.v

        def word(kind):
            return lambda text: v.match(kind, text)

        def words(kind):
            return lambda text: [v.match(kind, t) for t in text.replace(",", " ").split()]

        def listed(kind):
            return ", ".join(v.values(kind))

        questions = [
            Question("id", "Profile label", "Profile label (optional)",
                     _optional(lambda t: t.strip())),
            Question("age_years", "Age", "Age in years", _number),
            Question("sex", "Sex", f"Sex ({listed('sexes')}; blank if not stated)",
                     _optional(word("sexes"))),
            Question("weight_kg", "Weight (kg)",
                     "Weight in kg (blank if unknown; doses then in mg/kg only)", _optional(_number)),
            Question("age_at_onset_years", "Age at onset", "Age at onset in years (blank if unknown)",
                     _optional(_number)),
            Question("diagnosis", "Diagnosis", f"Diagnosis ({listed('diagnoses')})", word("diagnoses")),
            Question("lesions.count", "Lesions", "Number of lesions on the latest imaging", _whole),
            Question("lesions.sites", "Sites", f"Sites, separated by spaces ({listed('sites')})",
                     words("sites")),
            Question("lesions.vertebral_fracture", "Vertebral fracture",
                     "Vertebral fracture or structural damage? (yes/no)", _fracture, "no"),
            Question("lesions.symmetric", "Symmetric", "Symmetric lesions? (yes/no/unknown)",
                     _yes_no_unknown, "unknown"),
            Question("lesions.imaging", "Latest imaging",
                     f"Latest imaging ({listed('imaging')}; blank if unknown)",
                     _optional(word("imaging"))),
        ]
        for name in ACTIVITY:
            words_ = fact_words(f"activity.{name}")
            words_ = words_[:1].upper() + words_[1:]
            questions.append(Question(f"activity.{name}", words_, f"{words_}? (yes/no/unknown)",
                                      _yes_no_unknown, "unknown"))
        questions += [
            Question("labs.crp_mg_l", "CRP (mg/L)", "CRP in mg/L (blank if unknown)",
                     _optional(_number)),
            Question("labs.esr_mm_h", "ESR (mm/h)", "ESR in mm/h (blank if unknown)",
                     _optional(_number)),
            Question("labs.cbc_normal", "Blood count normal", "Blood count normal? (yes/no/unknown)",
                     _yes_no_unknown, "unknown"),
            Question("features", "Associated features",
                     f"Associated features ({listed('features')}; blank if none)", words("features")),
            Question("red_flags", "Red flags", f"Red flags ({listed('red_flags')}; blank if none)",
                     words("red_flags")),
            Question("biopsy", "Biopsy", f"Biopsy ({listed('biopsy')})", word("biopsy"), "none"),
            Question("hla_b27", "HLA-B27", "HLA-B27 (positive/negative/unknown)", word("hla_b27"),
                     "unknown"),
            Question("jansson_score", "Jansson score",
                     "Jansson clinical score, 0-63 (blank if not scored)", _optional(_whole)),
        ]
        return questions

    # -- checking an answer against the others ----------------------------------------------------

    def _stand_ins(self, data: dict) -> dict:
        """Required fields not asked yet get values that contradict nothing."""
        data = copy.deepcopy(data)
        data.setdefault("age_years", 100)
        data.setdefault("diagnosis", self.v.values("diagnoses")[0])
        lesions = data.setdefault("lesions", {})
        lesions.setdefault("count", 200)
        return data

    def _problem(self, data: dict) -> ProfileError | None:
        try:
            validate_profile(self._stand_ins(data), self.v, source="answers")
        except ProfileError as exc:
            return exc
        return None

    def _checked(self, key: str, parse: Callable[[str], Any], data_with: Callable[[Any], dict]):
        """A check for ask(): parse, then validate the answers with this one in; an error about
        this question's field refuses the answer with the profile's own reason."""
        def check(text: str):
            value = parse(text)
            problem = self._problem(data_with(value))
            if problem is not None and _concerns(problem.field, key):
                raise ValueError(problem.message.split("\n")[0])
            return value
        return check

    def ask_question(self, q: Question, default: str | None = None) -> None:
        def with_value(value):
            data = copy.deepcopy(self.data)
            _set(data, q.key, value)
            return data

        typed: list[str] = []

        def parse(text):
            value = q.parse(text)
            typed.append(text.strip())
            return value

        value = self.ask(q.text, self._checked(q.key, parse, with_value),
                         q.default if default is None else default)
        _set(self.data, q.key, value)
        self.shown[q.key] = _shown(value, typed[-1] if typed else "")
        self.asked.add(q.key)

    # -- treatments -------------------------------------------------------------------------------

    def ask_treatments(self) -> None:
        v = self.v
        self.data["treatments"] = []
        while self.confirm("Add a treatment (oldest first)?"):
            index = len(self.data["treatments"])
            entry: dict = {}

            def with_entry(field):
                def data_with(value):
                    data = copy.deepcopy(self.data)
                    trial = dict(entry)
                    if value is not None:
                        trial[field] = value
                    trial.setdefault("drug", v.values("drugs")[0])
                    trial.setdefault("months", 0)
                    trial.setdefault("response", v.values("responses")[0])
                    data["treatments"].append(trial)
                    return data
                return data_with

            def ask_part(field, text, parse, default=None):
                key = f"treatments[{index}].{field}"
                value = self.ask(text, self._checked(key, parse, with_entry(field)), default)
                if value not in (None, [], False):
                    entry[field] = value

            ask_part("drug", "  Drug or class", lambda t: v.match("drugs", t))
            ask_part("months", f"  How long ({DURATION_EXAMPLES})", parse_duration)
            ask_part("response", f"  Response ({', '.join(v.values('responses'))})",
                     lambda t: v.match("responses", t))
            ask_part("adverse_events",
                     f"  Adverse events ({', '.join(v.values('adverse_events'))}; blank if none)",
                     lambda t: [v.match("adverse_events", w) for w in t.replace(",", " ").split()],
                     "")
            ask_part("ongoing", "  Still ongoing? (yes/no)", _yes_no, "no")
            self.data["treatments"].append(entry)
            self.say(f"  added {entry['drug']}")
        self.asked.add("treatments")

    # -- the review -------------------------------------------------------------------------------

    def review_lines(self) -> list[str]:
        width = max(len(q.label) for q in self.questions)
        lines = ["", "Your answers:"]
        for number, q in enumerate(self.questions, start=1):
            lines.append(f"  {number:>2}  {q.label:<{width}}  {self.shown.get(q.key, '-')}")
        treatments = "; ".join(_treatment_words(t, self.v)
                               for t in self.data.get("treatments", [])) or "none"
        lines.append(f"  {len(self.questions) + 1:>2}  {'Treatments':<{width}}  {treatments}")
        return lines

    def review(self) -> None:
        last = len(self.questions) + 1

        def choice(text: str):
            key = text.strip().lower()
            if key in ("", "q"):
                return key
            if key.isdigit() and 1 <= int(key) <= last:
                return int(key)
            raise ValueError(f"a number from 1 to {last}, Enter to go on, or q to stop")

        while True:
            for line in self.review_lines():
                self.say(line)
            picked = self.ask(f"Change an answer? Its number; Enter runs the consult; q stops "
                              f"without one", choice, "")
            if picked == "":
                return
            if picked == "q":
                raise InterviewStopped(self.data)
            if picked == last:
                self.ask_treatments()
            else:
                q = self.questions[picked - 1]
                current = self.shown.get(q.key)
                self.ask_question(q, default=current if current not in (None, "-") else "")
            self.settle()

    def settle(self) -> None:
        """After a change, an answer given earlier may now contradict it (age lowered below the
        onset): that question is asked again, with the reason."""
        for _ in range(len(self.questions) + 1):
            problem = self._problem(self.data)
            if problem is None:
                return
            q = next((q for q in self.questions if _concerns(problem.field, q.key)), None)
            if q is None and not _concerns(problem.field, "treatments"):
                raise problem  # nothing to ask again: said as the file route would say it
            self.say(f"  {problem.message.splitlines()[0]}")
            if q is None:
                self.say("  the treatments need entering again")
                self.ask_treatments()
            else:
                self.ask_question(q, default="")

    def run(self, review: bool) -> dict:
        for q in self.questions:
            self.ask_question(q)
        self.ask_treatments()
        if review:
            self.review()
        return self.data


def _shown(value, typed: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    if isinstance(value, float):
        return typed or f"{value:g}"
    return str(value)


def _treatment_words(entry: dict, v: Vocabulary) -> str:
    """One course as the consult lists it: 'naproxen, 3 weeks: no response, ongoing'."""
    response = v.label("responses", entry.get("response", "")).lower()
    words = f"{entry.get('drug')}, {duration_words(entry.get('months', 0))}: {response}"
    if entry.get("ongoing"):
        words += ", ongoing"
    events = [v.label("adverse_events", e) for e in entry.get("adverse_events") or []]
    return words + (f" (adverse events: {', '.join(events)})" if events else "")


def interview(vocabulary: Vocabulary, ask: Ask, confirm: Callable[[str], bool],
              say: Callable[[str], None], *, review: bool = True) -> dict:
    """Ask for each field, checking every answer against the others as it is given; then show
    every answer for review. Returns plain profile data; raises InterviewStopped when the person
    chooses at the review to stop without a consult."""
    return _Interview(vocabulary, ask, confirm, say).run(review)
