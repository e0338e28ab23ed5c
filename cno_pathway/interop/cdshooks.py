"""CDS Hooks 2.0 without HTTP: discovery, the resources of a hook request, and cards.

The server (server.py) only moves bytes; everything a card says is decided here, from the same
consult the command line prints. One card per suggestion: a summary under 140 characters, a
Markdown detail with the rationale, the grade and the numbered quotes, an indicator (critical
for the diagnostic gates that must come first, warning for what to avoid and for safety
alerts, info otherwise), the source (its label, the DOI and a topic Coding whose code is the
rule id) and a uuid; warning cards offer override reasons.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from ..consult.consult import Consult, Pathway, Suggestion
from ..consult.render import KIND_HEADINGS, _markdown, _span, render_template
from ..errors import ProfileError
from . import fhir

RULE_SYSTEM = f"{fhir.BASE}/CodeSystem/rule"
OVERRIDE_SYSTEM = f"{fhir.BASE}/CodeSystem/override-reason"
# The response's extension listing what the consult did not read (docs/fhir.md).
NOT_USED_EXTENSION = f"{fhir.BASE}/cds-hooks/inputs-not-used"
# uuid5 namespace of the cards: the same hook call gives the same card ids (same input, same
# output), different calls give different ids.
CARD_NAMESPACE = uuid.UUID("1b1e7c3a-6a57-5c1e-9c55-5f3d1f0b8a11")
SUMMARY_LIMIT = 139
OVERRIDE_REASONS = [
    {"code": "patient-specific", "display": "Does not fit this patient's circumstances"},
    {"code": "already-addressed", "display": "Already addressed or planned"},
    {"code": "disagree-evidence", "display": "Disagree with the evidence or its reading"},
    {"code": "data-wrong", "display": "The record the consult read is wrong or incomplete"},
]
GATE_SECTIONS = {"diagnosis"}

PATIENT_VIEW = "cno-pathway-patient-view"
ORDER_SELECT = "cno-pathway-order-select"
ORDER_SIGN = "cno-pathway-order-sign"
_PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "medications": "MedicationStatement?patient={{context.patientId}}",
}
SERVICES = {
    PATIENT_VIEW: {"hook": "patient-view", "title": "CNO treatment pathway",
                   "description": "Suggestions of the CNO/CRMO step-up pathway for this patient, "
                                  "each with its rule, grade and quoted source."},
    ORDER_SELECT: {"hook": "order-select", "title": "CNO pathway: check a medication order",
                   "description": "Checks the selected draft MedicationRequest against the CNO "
                                  "pathway consult (drugs to avoid, source doses)."},
    ORDER_SIGN: {"hook": "order-sign", "title": "CNO pathway: check orders before signing",
                 "description": "Checks every draft MedicationRequest against the CNO pathway "
                                "consult (drugs to avoid, source doses)."},
}


class HookError(Exception):
    """A request the service cannot answer: `status` is the HTTP status to send."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def discovery() -> dict:
    return {"services": [dict(spec, id=ident, prefetch=dict(_PREFETCH))
                         for ident, spec in SERVICES.items()]}


@dataclass
class HookCall:
    service: str
    hook_instance: str
    resources: list[dict]
    selections: list[str]


def parse_request(service: str, body) -> HookCall:
    """The resources of every prefetch entry (a resource or a Bundle, whatever its key) and,
    for the order hooks, the draft orders of the context."""
    if service not in SERVICES:
        raise HookError(404, f"no CDS service {service!r}")
    if not isinstance(body, dict):
        raise HookError(400, "the request body must be a JSON object")
    hook = body.get("hook")
    if hook != SERVICES[service]["hook"]:
        raise HookError(400, f"hook {hook!r} does not match the service ({SERVICES[service]['hook']})")
    instance = body.get("hookInstance")
    if not isinstance(instance, str) or not instance:
        raise HookError(400, "hookInstance is required")
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise HookError(400, "context must be a JSON object")
    resources: list[dict] = []
    prefetch = body.get("prefetch") or {}
    if not isinstance(prefetch, dict):
        raise HookError(400, "prefetch must be a JSON object")
    for key in sorted(prefetch):
        item = prefetch[key]
        if item is None:
            continue
        try:
            resources += fhir.resources_of(item, source=f"prefetch.{key}")
        except ProfileError as exc:
            raise HookError(400, str(exc)) from None
    selections: list[str] = []
    if hook in ("order-select", "order-sign"):
        drafts = context.get("draftOrders")
        if drafts is not None:
            try:
                resources += fhir.resources_of(drafts, source="context.draftOrders")
            except ProfileError as exc:
                raise HookError(400, str(exc)) from None
        selections = [s for s in context.get("selections") or [] if isinstance(s, str)]
    patient = context.get("patientId")
    if isinstance(patient, str):
        for r in resources:
            if r["resourceType"] == "Patient" and r.get("id") and r["id"] != patient:
                raise HookError(400, f"prefetch Patient/{r['id']} is not context.patientId "
                                     f"{patient}")
    return HookCall(service, instance, resources, selections)


def consult_for(call: HookCall, pathway: Pathway, *, as_of=None) -> tuple[Consult | None, list[dict],
                                                                            list[dict]]:
    """(consult, cards, not used) for a hook call; 412 when the resources hold nothing usable."""
    usable = [r for r in call.resources if r["resourceType"] in
              ("Patient", "Condition", "Observation", "MedicationStatement")]
    if not usable:
        raise HookError(412, "no usable prefetch: send the Patient, Conditions, Observations and "
                             "MedicationStatements (see the prefetch templates of discovery)")
    mapped = fhir.map_resources(call.resources, pathway.vocabulary, source="prefetch", as_of=as_of)
    try:
        profile = mapped.profile(pathway.vocabulary, source="prefetch")
    except fhir.MissingData as exc:
        raise HookError(412, f"{exc.field}: {exc.message}") from None
    consult = pathway.consult(profile)
    cards = [card_for(s, consult, call, index) for index, s in enumerate(consult.suggestions)]
    if call.service != PATIENT_VIEW:
        cards = order_cards(call, mapped.draft_orders, consult, pathway)
    return consult, cards, consult.inputs_not_used or []


def contradiction_card(call: HookCall, message: str) -> dict:
    """Records that disagree are shown to the clinician, not resolved for them."""
    return {"uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{call.hook_instance}:contradiction")),
            "summary": _fit("The record disagrees with itself: no consult"),
            "detail": _markdown(message),
            "indicator": "warning",
            "source": {"label": "cno-pathway FHIR intake",
                       "topic": {"system": RULE_SYSTEM, "code": "FHIR-CONTRADICTION"}},
            "overrideReasons": _override_reasons()}


# -- cards ----------------------------------------------------------------------------------------

def indicator(s: Suggestion) -> str:
    if s.section in GATE_SECTIONS and s.kind in ("investigate", "alert"):
        return "critical"
    if s.kind in ("avoid", "alert"):
        return "warning"
    return "info"


def card_for(s: Suggestion, consult: Consult, call: HookCall, index: int, *,
             summary: str | None = None, extra: str | None = None) -> dict:
    first_doi = next((c for c in s.citations if c.doi), None)
    source = {"label": _source_label(s, consult),
              "topic": {"system": RULE_SYSTEM, "code": s.rule, "display": s.title}}
    if first_doi is not None:
        source["url"] = first_doi.doi_url
    card = {"uuid": str(uuid.uuid5(CARD_NAMESPACE, f"{call.hook_instance}:{index}:{s.rule}")),
            "summary": _fit(summary or f"{KIND_HEADINGS.get(s.kind, s.kind)}: {s.title}"),
            "detail": detail(s, consult, extra=extra),
            "indicator": indicator(s),
            "source": source}
    if card["indicator"] == "warning":
        card["overrideReasons"] = _override_reasons()
    return card


def _override_reasons() -> list[dict]:
    return [dict(r, system=OVERRIDE_SYSTEM) for r in OVERRIDE_REASONS]


def _source_label(s: Suggestion, consult: Consult) -> str:
    book = consult.rulebook
    cited = ", ".join(dict.fromkeys(c.short for c in s.citations if c.short))
    label = f"{book['name']} {book['version']}, rule {s.rule}"
    return f"{label} ({cited})" if cited else label


def _fit(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LIMIT else text[:SUMMARY_LIMIT - 1].rstrip() + "…"


def detail(s: Suggestion, consult: Consult, *, extra: str | None = None) -> str:
    """The card's Markdown (templates/cds_card.md.j2): every value escaped there. A card's text
    depends only on what the key holds, so a worker renders each distinct card once."""
    key = (consult.rulebook["digest"], s.rule, json.dumps(s.to_json(), sort_keys=True), extra)
    text = _DETAILS.get(key)
    if text is None:
        text = render_template("cds_card.md.j2", s=s, c=consult, extra=extra)
        text = "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"
        if len(_DETAILS) >= 4096:
            _DETAILS.clear()
        _DETAILS[key] = text
    return text


_DETAILS: dict[tuple, str] = {}


def dose_summary(s: Suggestion) -> str:
    """'10-15 mg/kg per day = 320-480 mg per day': the first step, for a summary line."""
    steps = (s.regimen or {}).get("steps") or []
    if not steps:
        return (s.regimen or {}).get("text") or "see the source"
    step = steps[0]
    text = f"{_span(step['mg_per_kg'])} mg/kg per {step['per']}"
    if step.get("computed_mg"):
        text += f" = {_span(step['computed_mg'])} mg per {step['per']}"
    return text


def order_cards(call: HookCall, orders: list[dict], consult: Consult, pathway: Pathway) -> list[dict]:
    """Each draft MedicationRequest (for order-select: each selected one) against the consult:
    any drug ordered while a diagnostic gate stands (a critical card) gets that gate's warning
    card; a drug the consult says to avoid (the drug or its class) gets that rule's warning card;
    a drug the consult suggests with a source regimen gets an info card with the dose."""
    vocab = pathway.vocabulary
    chosen = [o for o in orders if call.service == ORDER_SIGN or not call.selections
              or o["resource"] in call.selections]
    cards = []
    for order in chosen:
        drug = order["drug"]
        if drug is None:
            continue
        drug_class = vocab.class_of(drug)
        name = drug.replace("_", " ")
        for s in consult.suggestions:      # a gate that must come first comes before any drug
            if indicator(s) == "critical":
                cards.append(card_for(s, consult, call, len(cards),
                                      summary=f"Order {name}: first {s.title}",
                                      extra=f"The draft order {order['resource']} ({name}) comes "
                                            "before a step the consult puts first."))
                cards[-1]["indicator"] = "warning"
                cards[-1]["overrideReasons"] = _override_reasons()
        for index, s in enumerate(consult.suggestions):
            same = s.therapy == drug or (drug_class and vocab.class_of(s.therapy) == drug_class)
            if not same:
                continue
            if s.kind == "avoid":
                cards.append(card_for(s, consult, call, len(cards),
                                      summary=f"Order {name}: {s.title}",
                                      extra=f"The draft order {order['resource']} ({name}) meets "
                                            f"this rule of the consult."))
                cards[-1]["indicator"] = "warning"
                cards[-1]["overrideReasons"] = _override_reasons()
            elif s.therapy == drug and s.regimen and s.kind in ("recommend", "consider"):
                cards.append(card_for(s, consult, call, len(cards),
                                      summary=f"Order {name}: source dose {dose_summary(s)}",
                                      extra=f"The draft order {order['resource']} ({name}) is "
                                            f"suggested by the consult; the source dose follows."))
                cards[-1]["indicator"] = "info"
                cards[-1].pop("overrideReasons", None)
    return cards
