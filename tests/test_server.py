"""The CDS Hooks 2.0 service, run for real (`cno-pathway serve` on a free 127.0.0.1 port):
discovery, cards against the CDS Hooks card rules, 412, 400, 413, the order services, the
request log, JWT accepted and refused, a killed worker replaced, safe defaults."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import signal
import time
import uuid as uuidlib

import pytest
from click.testing import CliRunner

from cno_pathway.cli import main
from cno_pathway.patient.profile import validate_profile
from cno_pathway.yamlio import read_document

from fhir_builder import AS_OF, bundle_from_profile
from server_harness import ROOT, Server, hook_body

pytest.importorskip("fastapi", reason="the [server] extra is not installed (make install installs it)")

PATIENT_VIEW = "/cds-services/cno-pathway-patient-view"
ORDER_SIGN = "/cds-services/cno-pathway-order-sign"
ORDER_SELECT = "/cds-services/cno-pathway-order-select"


def _profile(name: str) -> dict:
    return read_document(ROOT / "examples" / f"{name}.yaml").data["profile"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


def test_discovery_lists_the_services_with_prefetch_templates(server):
    status, body = server.get("/cds-services")
    assert status == 200
    by_id = {s["id"]: s for s in body["services"]}
    assert {s["hook"] for s in body["services"]} == {"patient-view", "order-select", "order-sign"}
    for service in by_id.values():
        assert service["title"] and service["description"]
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert set(service["prefetch"]) == {"patient", "conditions", "observations", "medications"}
        assert all("{{context.patientId}}" in t for t in service["prefetch"].values())


def test_patient_view_cards_follow_the_card_rules(server, pathway):
    data = _profile("tnf-psoriasis")
    status, body = server.post(PATIENT_VIEW, hook_body(bundle_from_profile(data), instance="pv-1"))
    assert status == 200, body
    cards = body["cards"]
    # the consult the service ran is the consult of the same patient in-process (age as of today
    # differs from the builder's date only by days: the suggestions do not depend on it here)
    expected = pathway.consult(validate_profile(data, pathway.vocabulary))
    assert [c["source"]["topic"]["code"] for c in cards] == [s.rule for s in expected.suggestions]
    seen = set()
    for card, s in zip(cards, expected.suggestions):
        assert str(uuidlib.UUID(card["uuid"])) == card["uuid"] and card["uuid"] not in seen
        seen.add(card["uuid"])
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] and s.rule in card["source"]["label"]
        assert card["source"]["topic"]["code"] == s.rule
        doi = next((c.doi for c in s.citations if c.doi), None)
        if doi:
            assert card["source"]["url"] == f"https://doi.org/{doi}"
        detail = card["detail"]
        assert f"Grade {s.grade}" in detail
        for cite in s.citations:
            assert re.search(rf"^{cite.number}\. “", detail, re.M)
        assert ("overrideReasons" in card) == (card["indicator"] == "warning")
        for reason in card.get("overrideReasons", []):
            assert reason["code"] and reason["display"] and reason["system"]
    kinds = {s.rule: s.kind for s in expected.suggestions}
    by_rule = {c["source"]["topic"]["code"]: c for c in cards}
    assert by_rule["CNO-REF-TOCILIZUMAB-AVOID"]["indicator"] == "warning"
    assert all(by_rule[r]["indicator"] == "info" for r, k in kinds.items() if k == "monitor")


def test_gates_that_must_come_first_are_critical(server):
    status, body = server.post(PATIENT_VIEW, hook_body(bundle_from_profile(_profile("unifocal-no-biopsy"))))
    assert status == 200
    indicators = {c["source"]["topic"]["code"]: c["indicator"] for c in body["cards"]}
    assert indicators["CNO-DX-UNIFOCAL-BIOPSY"] == "critical"
    assert indicators["CNO-DX-WHOLE-BODY-IMAGING"] == "critical"


def test_card_detail_escapes_markup_in_rule_text(pathway):
    """Rule text is data: in a card's Markdown it cannot become a link, a heading or HTML."""
    from cno_pathway.interop import cdshooks

    consult = pathway.consult(validate_profile(_profile("typical-multifocal"), pathway.vocabulary))
    s = copy.copy(consult.suggestions[0])
    s.title = "# [click](javascript:alert(1)) <script>x</script>"
    s.rationale = "1. not a list *nor bold*"
    text = cdshooks.detail(s, consult, extra="[x](http://evil.test)")
    assert not re.search(r"(?<!\\)\]\(", text)           # no unescaped ](: no link
    assert "<script>" not in text
    assert "\\[click\\]" in text and "\\<script\\>" in text
    assert "1\\. not a list \\*nor bold\\*" in text


def test_412_when_nothing_usable_and_when_essentials_are_missing(server):
    status, body = server.post(PATIENT_VIEW, {"hook": "patient-view", "hookInstance": "h412",
                                              "context": {"patientId": "p"}, "prefetch": {}})
    assert status == 412 and "prefetch" in body["error"]
    bundle = bundle_from_profile(_profile("typical-multifocal"))
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
                       or e["resource"]["resourceType"] == "Condition"]
    status, body = server.post(PATIENT_VIEW, hook_body(bundle))
    assert status == 412 and "lesion-count" in body["error"]


def test_400_on_malformed_json_with_a_json_body(server):
    status, body = server.post(PATIENT_VIEW, raw=b'{"hook": "patient-view", ')
    assert status == 400 and body["error"].startswith("malformed JSON")
    status, body = server.post(PATIENT_VIEW, raw=b'{"a": NaN}')
    assert status == 400
    status, body = server.post(PATIENT_VIEW, {"hook": "order-sign", "hookInstance": "x"})
    assert status == 400 and "does not match" in body["error"]
    bad = hook_body(bundle_from_profile(_profile("typical-multifocal")))
    bad["prefetch"]["patient"]["birthDate"] = "yesterday"
    status, body = server.post(PATIENT_VIEW, bad)
    assert status == 400 and "not valid FHIR R4" in body["error"]


def test_only_json_bodies_and_only_loopback_hosts(server):
    body = hook_body(bundle_from_profile(_profile("typical-multifocal")))
    status, answer = server.post(PATIENT_VIEW, body, headers={"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in answer["error"]
    status, answer = server.post(PATIENT_VIEW, body, headers={"Host": "evil.test:8000"})
    assert status == 421
    status, _ = server.post(PATIENT_VIEW, body, headers={"Host": f"localhost:{server.port}"})
    assert status == 200


def test_what_the_consult_did_not_read_is_in_the_response(server):
    bundle = bundle_from_profile(_profile("typical-multifocal"))
    bundle["entry"].append({"resource": {"resourceType": "Immunization", "id": "imm-1",
                                         "status": "completed", "occurrenceDateTime": "2020-01-01",
                                         "vaccineCode": {"text": "MMR"},
                                         "patient": {"reference": "Patient/typical-multifocal"}}})
    status, answer = server.post(PATIENT_VIEW, hook_body(bundle))
    assert status == 200
    [listed] = answer["extension"].values()
    assert {"resource": "Immunization/imm-1", "element": None,
            "reason": "Immunization is not read by the pathway"} in listed
    status, answer = server.post(PATIENT_VIEW, hook_body(bundle_from_profile(_profile("sapho"))))
    assert "extension" not in answer


def test_413_for_a_body_over_the_limit(server):
    """Refused from its Content-Length, before the body is read: the client sends only the
    headers (sending the 2 MB would race the server closing the connection)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("POST", PATIENT_VIEW)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(2 * 1024 * 1024))
        conn.endheaders()
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 413 and "over" in body["error"]


def test_a_contradiction_is_a_warning_card_not_a_consult(server):
    bundle = bundle_from_profile(_profile("typical-multifocal"))
    bundle["entry"].append({"resource": {"resourceType": "Condition", "id": "dx-2",
                                         "subject": {"reference": "Patient/typical-multifocal"},
                                         "code": {"coding": [{"system": "http://www.orpha.net",
                                                              "code": "ORPHA:793"}]}}})
    status, body = server.post(PATIENT_VIEW, hook_body(bundle))
    assert status == 200
    [card] = body["cards"]
    assert card["indicator"] == "warning" and "Condition/dx-2" in card["detail"]


def _request(ident, drug, patient):
    return {"resourceType": "MedicationRequest", "id": ident, "status": "draft", "intent": "order",
            "subject": {"reference": f"Patient/{patient}"},
            "medicationCodeableConcept": {"text": drug}}


def test_order_sign_warns_on_a_drug_to_avoid_and_a_repeat_glucocorticoid_course(server):
    data = copy.deepcopy(_profile("nsaid-refractory"))
    data["treatments"] = list(data.get("treatments", [])) + [
        {"drug": "prednisolone", "months": 1, "response": "relapse"}]
    data["features"] = ["psoriasis"]
    bundle = bundle_from_profile(data)
    drafts = [_request("mr-1", "Tocilizumab", data["id"]), _request("mr-2", "prednisolone", data["id"])]
    status, body = server.post(ORDER_SIGN, hook_body(bundle, hook="order-sign", drafts=drafts))
    assert status == 200, body
    rules = {c["source"]["topic"]["code"]: c for c in body["cards"]}
    assert rules["CNO-REF-TOCILIZUMAB-AVOID"]["indicator"] == "warning"
    assert rules["CNO-ESC-GC-NO-REPEAT"]["indicator"] == "warning"
    assert "mr-2" in rules["CNO-ESC-GC-NO-REPEAT"]["detail"]
    assert all("overrideReasons" in c for c in body["cards"] if c["indicator"] == "warning")


def test_an_order_before_a_diagnostic_gate_is_warned(server):
    data = _profile("unifocal-no-biopsy")
    drafts = [_request("mr-1", "naproxen", data["id"])]
    status, body = server.post(ORDER_SIGN, hook_body(bundle_from_profile(data), hook="order-sign",
                                                     drafts=drafts))
    assert status == 200, body
    rules = {c["source"]["topic"]["code"]: c for c in body["cards"]}
    assert {"CNO-DX-UNIFOCAL-BIOPSY", "CNO-DX-WHOLE-BODY-IMAGING"} <= set(rules)
    assert all(c["indicator"] == "warning" and c["overrideReasons"] for c in rules.values())
    assert all(len(c["summary"]) < 140 for c in body["cards"])


def test_order_select_gives_the_source_dose_for_a_suggested_drug(server, pathway):
    data = _profile("typical-multifocal")
    expected = pathway.consult(validate_profile(data, pathway.vocabulary))
    dosed = next(s for s in expected.suggestions if s.regimen and s.regimen["steps"]
                 and s.kind in ("recommend", "consider"))
    drafts = [_request("mr-1", dosed.therapy, data["id"]), _request("mr-2", "etanercept", data["id"])]
    body = hook_body(bundle_from_profile(data), hook="order-select", drafts=drafts)
    body["context"]["selections"] = ["MedicationRequest/mr-1"]
    status, answer = server.post(ORDER_SELECT, body)
    assert status == 200, answer
    [card] = answer["cards"]
    step = dosed.regimen["steps"][0]
    assert card["indicator"] == "info" and card["source"]["topic"]["code"] == dosed.rule
    assert "mg/kg" in card["summary"] and len(card["summary"]) < 140
    assert str(step["computed_mg"][0]).rstrip("0").rstrip(".") in card["summary"]


def test_every_request_is_logged_with_its_hook_instance(server):
    server.post(PATIENT_VIEW, hook_body(bundle_from_profile(_profile("sapho")), instance="log-me-42"))
    time.sleep(0.3)
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("hookInstance") == "log-me-42"]
    assert mine and mine[0]["status"] == 200 and mine[0]["path"] == PATIENT_VIEW
    assert "Traceback" not in server.log_text()


def test_no_traceback_reaches_a_client():
    """The outermost layer turns any exception into a JSON 500 and logs it server-side."""
    from cno_pathway.interop.server import Edge, ServeConfig

    async def broken(scope, receive, send):
        raise RuntimeError("secret internal detail")

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(Edge(broken, ServeConfig(access_log=False))(
        {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", b"127.0.0.1")]},
        receive, send))
    assert sent[0]["status"] == 500
    assert b"secret" not in sent[1]["body"] and b"Traceback" not in sent[1]["body"]
    assert json.loads(sent[1]["body"])["error"].startswith("internal error")


# -- safe by default -----------------------------------------------------------------------------

def test_a_public_address_without_authentication_is_refused():
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2 and "without authentication" in result.output
    result = CliRunner().invoke(main, ["serve", "--jwks", __file__])
    assert result.exit_code == 2 and "--issuer" in result.output
    result = CliRunner().invoke(main, ["serve", "--jwks", __file__, "--issuer", "x"])
    assert result.exit_code == 2 and "not a JWKS" in result.output
    result = CliRunner().invoke(main, ["serve", "--rules", "/nonexistent/rules"])
    assert result.exit_code == 2 and "rule folder not found" in result.output


def test_the_command_line_does_not_import_the_server(run_python):
    proc = run_python("import sys\nfrom cno_pathway.cli import main\n"
                      "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
                      "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in "
                      "('fastapi', 'uvicorn', 'jwt', 'starlette', 'fhir')))\n", timeout=120)
    assert "LOADED []" in proc.stdout, proc.stdout + proc.stderr


# -- JWT -------------------------------------------------------------------------------------------

ISSUER = "https://ehr.test"


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    other = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update(kid="ehr-1", alg="ES384", use="sig")
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    return {"key": key, "other": other, "jwks": path}


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory, signing):
    srv = Server(tmp_path_factory.mktemp("jwt"), "--jwks", str(signing["jwks"]),
                 "--issuer", ISSUER).start()
    yield srv
    srv.stop()


def _token(signing, server, path, *, key=None, **claims):
    import jwt

    now = int(time.time())
    payload = {"iss": ISSUER, "aud": server.base + path, "exp": now + 300, "iat": now,
               "jti": str(uuidlib.uuid4()), "sub": "client"}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key or signing["key"], algorithm="ES384", headers={"kid": "ehr-1"})


def test_jwt_accepted_and_refused(jwt_server, signing):
    body = hook_body(bundle_from_profile(_profile("typical-multifocal")))
    path = PATIENT_VIEW

    def call(token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return jwt_server.post(path, body, headers=headers)

    good = _token(signing, jwt_server, path)
    status, answer = call(good)
    assert status == 200 and answer["cards"]
    status, answer = call(good)                                  # the same jti again
    assert status == 401 and "replayed" in answer["error"]
    assert call()[0] == 401
    assert call(_token(signing, jwt_server, path, key=signing["other"]))[0] == 401   # signature
    assert call(_token(signing, jwt_server, path, iss="https://intruder.test"))[0] == 401
    assert call(_token(signing, jwt_server, path, aud="http://127.0.0.1:1/elsewhere"))[0] == 401
    assert call(_token(signing, jwt_server, path, exp=int(time.time()) - 3600))[0] == 401
    assert call(_token(signing, jwt_server, path, jti=None))[0] == 401
    assert jwt_server.get("/cds-services")[0] == 200             # discovery stays open


# -- feedback across a restart, and a killed worker ----------------------------------------------

def test_feedback_is_kept_across_a_restart(tmp_path):
    srv = Server(tmp_path).start()
    try:
        status, body = srv.post(PATIENT_VIEW, hook_body(bundle_from_profile(_profile("tnf-psoriasis")),
                                                        instance="fb-1"))
        cards = body["cards"]
        warning = next(c for c in cards if c["indicator"] == "warning")
        info = next(c for c in cards if c["indicator"] == "info")
        feedback = {"feedback": [
            {"card": info["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-06-15T10:00:00Z"},
            {"card": warning["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-06-15T10:01:00Z",
             "overrideReason": {"reason": warning["overrideReasons"][0], "userComment": "seen by derm"}}]}
        status, answer = srv.post(PATIENT_VIEW + "/feedback", feedback)
        assert status == 200 and answer == {"stored": 2}
        status, answer = srv.post(PATIENT_VIEW + "/feedback",
                                  {"feedback": [{"card": str(uuidlib.uuid4()), "outcome": "accepted"}]})
        assert status == 400 and "not a card this service served" in answer["error"]
    finally:
        srv.stop()
    srv2 = Server(tmp_path, db=srv.db).start()
    srv2.stop()
    result = CliRunner().invoke(main, ["feedback", "--db", str(srv.db), "--json"])
    rows = json.loads(result.output)
    assert [(r["rule"], r["outcome"]) for r in rows] == [
        (info["source"]["topic"]["code"], "accepted"), (warning["source"]["topic"]["code"], "overridden")]
    assert rows[1]["comment"] == "seen by derm" and rows[1]["digest"].startswith("sha256:")
    summary = CliRunner().invoke(main, ["feedback", "--db", str(srv.db), "--summary", "--json"])
    per_rule = {r["rule"]: r for r in json.loads(summary.output)}
    assert per_rule[warning["source"]["topic"]["code"]]["override_rate"] == 1.0
    assert per_rule[warning["source"]["topic"]["code"]]["top_override_reasons"][0]["reason"] == \
        warning["overrideReasons"][0]["display"]
    assert per_rule[info["source"]["topic"]["code"]]["served"] >= 1
    text = CliRunner().invoke(main, ["feedback", "--db", str(srv.db), "--summary"])
    assert text.exit_code == 0 and warning["source"]["topic"]["code"] in text.output


def _worker_pids(srv, tries=40):
    pids = set()
    for _ in range(tries):
        status, body = srv.get("/healthz")
        if status == 200:
            pids.add(body["pid"])
    return pids


def _connection_header(port: int) -> str | None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        return response.getheader("connection")
    finally:
        conn.close()


def test_one_worker_keeps_connections_alive(server):
    assert _connection_header(server.port) is None


def test_a_killed_worker_is_replaced(tmp_path):
    srv = Server(tmp_path, workers=2).start()
    try:
        deadline = time.monotonic() + 60
        pids: set = set()
        while len(pids) < 2 and time.monotonic() < deadline:
            pids |= _worker_pids(srv)
        assert len(pids) == 2, pids
        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        body = hook_body(bundle_from_profile(_profile("typical-multifocal")))
        status, answer = srv.post(PATIENT_VIEW, body)            # the other worker answers
        assert status == 200 and answer["cards"]
        new: set = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (new - pids):
            new |= _worker_pids(srv, tries=10)
            time.sleep(0.5)
        assert new - pids, f"no new worker after killing {victim}: {new}"
        assert victim not in new
        assert "died" in srv.log_text()
        # several workers: each answer closes its connection, so that the next request goes
        # to whichever worker is free rather than to the one that accepted the connection
        assert _connection_header(srv.port) == "close"
        # every worker, the replacement too, logs each request it answers
        logged = {json.loads(line)["pid"] for line in srv.log_text().splitlines()
                  if line.startswith("{")}
        assert pids | new <= logged, (pids | new, logged)
    finally:
        srv.stop()


def test_jwks_from_a_url_on_the_loopback(tmp_path, signing):
    """The key set fetched from a URL (served here by a tiny server on 127.0.0.1)."""
    import http.server
    import threading

    from server_harness import free_port

    jwks = signing["jwks"].read_bytes()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args):
            pass

    keys = http.server.HTTPServer(("127.0.0.1", free_port()), Keys)
    thread = threading.Thread(target=keys.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{keys.server_port}/jwks.json"
        srv = Server(tmp_path, "--jwks", url, "--issuer", ISSUER).start()
        try:
            body = hook_body(bundle_from_profile(_profile("typical-multifocal")))
            token = _token(signing, srv, PATIENT_VIEW)
            assert srv.post(PATIENT_VIEW, body, headers={"Authorization": f"Bearer {token}"})[0] == 200
            bad = _token(signing, srv, PATIENT_VIEW, key=signing["other"])
            assert srv.post(PATIENT_VIEW, body, headers={"Authorization": f"Bearer {bad}"})[0] == 401
        finally:
            srv.stop()
    finally:
        keys.shutdown()


def test_a_jwks_url_in_the_clear_elsewhere_is_refused():
    result = CliRunner().invoke(main, ["serve", "--jwks", "http://keys.example/jwks.json",
                                       "--issuer", ISSUER])
    assert result.exit_code == 2 and "use https" in result.output
