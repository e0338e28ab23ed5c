"""The consult web page: a form with every field of the profile contract (the vocabulary's words
as choices) or an uploaded YAML, JSON or FHIR file; the answer is the HTML consult. Also the
pathway diagram page. No HTTP here: the server hands over the form fields and sends the HTML."""

from __future__ import annotations

from ..consult.consult import Pathway
from ..consult.render import render_consult, render_template
from ..errors import ProfileError
from ..patient.intake import ACTIVITY, profile_data_from_flags, profile_document, profile_from_data
from ..yamlio import parse_document

TREATMENT_ROWS = 6
_TRISTATE = {"": None, "yes": True, "no": False}


def _choices(pathway: Pathway, kind: str) -> list[tuple[str, str]]:
    v = pathway.vocabulary
    return [(word, v.label(kind, word) if kind != "drugs" else word.replace("_", " "))
            for word in v.values(kind)]


def form_page(pathway: Pathway, *, error: str | None = None, values: dict | None = None) -> str:
    lists = {kind: _choices(pathway, kind) for kind in
             ("sexes", "diagnoses", "imaging", "sites", "features", "red_flags", "biopsy",
              "hla_b27", "responses", "adverse_events", "drugs")}
    return render_template("web_form.html.j2", autoescape=True, lists=lists, activity=ACTIVITY,
                           rows=range(TREATMENT_ROWS), error=error, values=values or {},
                           book=pathway.rulebook)


def _field(form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number(form, name: str, *, whole: bool = False):
    text = _field(form, name)
    if not text:
        return None
    try:
        return int(text) if whole else float(text)
    except ValueError:
        raise ProfileError(f"{text!r} is not a {'whole ' if whole else ''}number",
                           field=name) from None


def profile_data_from_form(form, pathway: Pathway) -> dict:
    """The form's fields as plain profile data: only what was filled in, nothing converted
    beyond reading numbers (the profile's validation then checks every value)."""
    flags: dict = {"id": _field(form, "id") or None, "age": _number(form, "age_years"),
                   "sex": _field(form, "sex") or None, "weight": _number(form, "weight_kg"),
                   "onset_age": _number(form, "age_at_onset_years"),
                   "diagnosis": _field(form, "diagnosis") or None,
                   "lesions": _number(form, "lesions.count", whole=True),
                   "site": form.getlist("lesions.sites"),
                   "imaging": _field(form, "lesions.imaging") or None,
                   "crp": _number(form, "labs.crp_mg_l"), "esr": _number(form, "labs.esr_mm_h"),
                   "feature": form.getlist("features"), "red_flag": form.getlist("red_flags"),
                   "biopsy": _field(form, "biopsy") or None, "hla_b27": _field(form, "hla_b27") or None}
    for name, key in (("lesions.vertebral_fracture", "vertebral_fracture"),
                      ("lesions.symmetric", "symmetric"), ("labs.cbc_normal", "cbc_normal")):
        flags[key] = _TRISTATE.get(_field(form, name))
    flags["activity"] = [f"{name}={_field(form, 'activity.' + name)}" for name in ACTIVITY
                         if _field(form, "activity." + name) in ("yes", "no")]
    data = profile_data_from_flags({k: v for k, v in flags.items() if v not in (None, [], ())},
                                   pathway.vocabulary)
    treatments = []
    for row in range(TREATMENT_ROWS):
        prefix = f"treatments.{row}."
        drug = _field(form, prefix + "drug")
        if not drug:
            continue
        entry: dict = {"drug": drug, "months": _number(form, prefix + "months"),
                       "response": _field(form, prefix + "response")}
        if entry["months"] is None:
            raise ProfileError("months is required for a treatment", field=prefix + "months")
        events = form.getlist(prefix + "adverse_events")
        if events:
            entry["adverse_events"] = list(events)
        if _field(form, prefix + "ongoing") == "yes":
            entry["ongoing"] = True
        treatments.append(entry)
    if treatments:
        data["treatments"] = treatments
    return data


async def consult_page(pathway: Pathway, form) -> str:
    """An uploaded file wins over the fields; either way the consult as one HTML page."""
    upload = form.get("profile_file")
    raw = await upload.read() if upload is not None and hasattr(upload, "read") else b""
    if raw:
        name = (getattr(upload, "filename", None) or "upload")[:100]
        doc = profile_document(parse_document(raw, source=name, error=ProfileError))
        profile = profile_from_data(doc.data, pathway.vocabulary, document=doc)
    else:
        profile = profile_from_data(profile_data_from_form(form, pathway), pathway.vocabulary,
                                    source="form")
    return render_consult(pathway.consult(profile), "html")


def pathway_page(pathway: Pathway) -> str:
    """The diagram as an SVG image (Graphviz) or, without Graphviz, its Mermaid text."""
    import base64

    from ..teaching import diagram

    graph = diagram.build_graph(pathway.rulebook)
    svg = None
    try:
        svg = diagram.to_svg(diagram.to_dot(graph))
    except Exception:  # noqa: BLE001 - no Graphviz (or it failed): show the Mermaid source
        svg = None
    image = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode() if svg else None
    return render_template("web_pathway.html.j2", autoescape=True, image=image,
                           mermaid=None if svg else diagram.to_mermaid(graph), book=pathway.rulebook)
