"""The consult web page of `cno-pathway serve`, in headless Chromium: the form has every field of
the profile contract with the vocabulary's words as choices; the browser submits it (with the
field names and choices read from the page it rendered) and gets the HTML consult; an uploaded
YAML, JSON or FHIR file gives the same consult; GET /pathway shows the diagram."""

from __future__ import annotations

import copy
import json
import re
import uuid
from html.parser import HTMLParser

import pytest

from cno_pathway.patient.profile import validate_profile
from cno_pathway.yamlio import read_document

from fhir_builder import bundle_from_profile
from server_harness import ROOT, Server
from test_html_browser import _parse, _run, chromium  # noqa: F401  (the chromium fixture)

pytest.importorskip("fastapi", reason="the [server] extra is not installed (make install installs it)")

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("web")).start()
    yield srv
    srv.stop()


class _Form(HTMLParser):
    """The form as the browser built it: field names, their options, and script elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, dict] = {}
        self.tags: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag in ("input", "select") and a.get("name"):
            f = self.fields.setdefault(a["name"], {"tag": tag, "type": a.get("type", ""), "options": []})
            if tag == "input" and a.get("type") == "checkbox":
                f["options"].append(a.get("value"))
            if tag == "select":
                self._select = a["name"]
        if tag == "option" and self._select:
            self.fields[self._select]["options"].append(a.get("value"))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


@pytest.fixture(scope="module")
def form_dom(chromium, server, tmp_path_factory):  # noqa: F811
    proc = _run(chromium, tmp_path_factory.mktemp("form"), "--dump-dom", server.base + "/")
    assert proc.returncode == 0 and "</form>" in proc.stdout, proc.stderr[-2000:]
    form = _Form()
    form.feed(proc.stdout)
    return form


CONTRACT = ["id", "age_years", "sex", "weight_kg", "age_at_onset_years", "diagnosis", "lesions.count",
            "lesions.sites", "lesions.vertebral_fracture", "lesions.symmetric", "lesions.imaging",
            "activity.pain", "activity.swelling", "activity.functional_impairment",
            "activity.active_lesions_on_mri", "activity.new_lesions", "labs.crp_mg_l",
            "labs.esr_mm_h", "labs.cbc_normal", "features", "red_flags", "biopsy", "hla_b27",
            "treatments.0.drug", "treatments.0.months", "treatments.0.response",
            "treatments.0.adverse_events", "treatments.0.ongoing", "profile_file"]


def test_the_form_has_every_field_with_the_vocabulary_as_choices(form_dom, pathway):
    v = pathway.vocabulary
    assert set(CONTRACT) <= set(form_dom.fields)
    assert "script" not in form_dom.tags
    opts = {name: [o for o in f["options"] if o] for name, f in form_dom.fields.items()}
    assert opts["diagnosis"] == v.values("diagnoses")
    assert opts["lesions.sites"] == v.values("sites")
    assert opts["lesions.imaging"] == v.values("imaging")
    assert opts["features"] == v.values("features")
    assert opts["red_flags"] == v.values("red_flags")
    assert opts["biopsy"] == v.values("biopsy")
    assert opts["treatments.0.drug"] == v.values("drugs")
    assert opts["treatments.0.response"] == v.values("responses")
    assert opts["treatments.0.adverse_events"] == v.values("adverse_events")
    assert form_dom.fields["profile_file"]["type"] == "file"


def _submit_page(base: str, form, values: dict) -> str:
    """A page whose form the browser submits on load, with the real form's encoding, using only
    field names and choices that the rendered form offers."""
    fields = []
    for name, value in values.items():
        assert name in form.fields, name
        options = form.fields[name]["options"]
        for item in value if isinstance(value, list) else [value]:
            if options:
                assert item in options, (name, item)
            escaped = str(item).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            fields.append(f'<input type="hidden" name="{name}" value="{escaped}">')
    return ("<!DOCTYPE html><html><body onload=\"document.forms[0].submit()\">"
            f"<form method=\"post\" action=\"{base}/\" enctype=\"multipart/form-data\">"
            + "".join(fields) + "</form></body></html>")


def test_chromium_submits_the_form_and_gets_the_html_consult(chromium, server, form_dom, pathway,  # noqa: F811
                                                             tmp_path):
    values = {"id": HOSTILE, "age_years": "12", "sex": "female", "weight_kg": "38",
              "diagnosis": "cno", "lesions.count": "5", "lesions.sites": ["tibia", "clavicle"],
              "lesions.imaging": "whole_body_mri", "lesions.symmetric": "yes",
              "activity.pain": "yes", "labs.crp_mg_l": "9", "features": ["psoriasis"],
              "biopsy": "inflammatory", "hla_b27": "unknown",
              "treatments.0.drug": "naproxen", "treatments.0.months": "4",
              "treatments.0.response": "none", "treatments.0.adverse_events": ["gastrointestinal"]}
    page = tmp_path / "submit.html"
    page.write_text(_submit_page(server.base, form_dom, values), encoding="utf-8")
    # On a loaded machine the browser now and then dumps the page between the two documents
    # (an empty DOM): the submission is tried up to three times, each a fresh browser.
    for attempt in range(3):
        (tmp_path / f"try-{attempt}").mkdir()
        proc = _run(chromium, tmp_path / f"try-{attempt}", "--virtual-time-budget=20000",
                    "--dump-dom", page.as_uri())
        assert proc.returncode == 0, proc.stderr[-2000:]
        dom = proc.stdout
        if "</html>" in dom:
            break
    assert "CNO pathway consult" in dom, dom[:2000]
    profile = validate_profile({"id": HOSTILE, "age_years": 12, "sex": "female", "weight_kg": 38,
                                "diagnosis": "cno",
                                "lesions": {"count": 5, "sites": ["tibia", "clavicle"],
                                            "imaging": "whole_body_mri", "symmetric": True},
                                "activity": {"pain": True}, "labs": {"crp_mg_l": 9},
                                "features": ["psoriasis"], "biopsy": "inflammatory",
                                "treatments": [{"drug": "naproxen", "months": 4, "response": "none",
                                                "adverse_events": ["gastrointestinal"]}]},
                               pathway.vocabulary)
    expected = pathway.consult(profile)
    page_text = _parse(dom).flat
    for s in expected.suggestions:
        assert s.rule in page_text and s.title in page_text
    assert "".join(_parse(dom).h1).strip() == f"CNO pathway consult: {HOSTILE}"
    assert "script" not in _parse(dom).tags


def _multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    for name, (filename, data) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def _rules_in(html: str) -> list[str]:
    return sorted(set(re.findall(r"CNO-[A-Z0-9-]+[A-Z0-9]", html)))


@pytest.mark.parametrize("kind", ["yaml", "json", "fhir"])
def test_an_uploaded_file_gives_the_same_consult(server, pathway, kind):
    data = read_document(ROOT / "examples" / "tnf-psoriasis.yaml").data["profile"]
    if kind == "yaml":
        payload = (ROOT / "examples" / "tnf-psoriasis.yaml").read_bytes()
    elif kind == "json":
        payload = json.dumps(data).encode()
    else:
        payload = json.dumps(bundle_from_profile(data)).encode()
    body, ctype = _multipart({"age_years": ""}, {"profile_file": (f"patient.{kind}", payload)})
    status, html = server.post("/", raw=body, headers={"Content-Type": ctype})
    assert status == 200, html[:500]
    expected = pathway.consult(validate_profile(data, pathway.vocabulary))
    for s in expected.suggestions:
        assert s.rule in html
    assert "Not used" not in html          # the Bundle says all the YAML says, nothing more


def test_a_bad_field_shows_the_form_again_with_the_error_and_the_values(server):
    body, ctype = _multipart({"age_years": "twelve", "diagnosis": "cno", "lesions.count": "3"}, {})
    status, html = server.post("/", raw=body, headers={"Content-Type": ctype})
    assert status == 400
    assert "age_years: &#39;twelve&#39; is not a number" in html
    assert 'value="twelve"' in html
    body, ctype = _multipart({"age_years": "12", "diagnosis": "cnoo", "lesions.count": "3"}, {})
    status, html = server.post("/", raw=body, headers={"Content-Type": ctype})
    assert status == 400 and "diagnosis" in html and "did you mean cno" in html


def test_the_pathway_page_shows_the_diagram(chromium, server, tmp_path):  # noqa: F811
    proc = _run(chromium, tmp_path, "--dump-dom", server.base + "/pathway")
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = _parse(proc.stdout)
    assert "img" in page.tags or "pre" in page.tags
    assert "script" not in page.tags
    assert 'id="diagram"' in proc.stdout or 'id="mermaid"' in proc.stdout
    assert "The CNO pathway" in page.flat
