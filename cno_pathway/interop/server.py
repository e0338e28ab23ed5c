"""The HTTP edge of the CDS Hooks service: transport, authentication, limits and logging only.

What a card says is decided in cdshooks.py, what feedback is kept in feedback.py, what the web
page shows in webform.py. Each worker process loads the pathway once (the app's lifespan) and
serves consults one at a time on its event loop: the rule engine is not shared between threads,
and a consult is CPU work that threads would not speed up. FastAPI, uvicorn and PyJWT are
imported here only, so the command line never pays for them.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ..consult.consult import Pathway
from ..errors import InputError, ProfileError
from . import cdshooks
from .feedback import FeedbackError, FeedbackStore

ENVIRONMENT = "CNO_PATHWAY_SERVE"
ALGORITHMS = ["ES384", "RS384"]        # the two CDS Hooks 2.0 requires clients to use
log = logging.getLogger("cno_pathway.serve")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    db: str = ""
    rules: str | None = None
    jwks: str | None = None
    issuers: list[str] = field(default_factory=list)
    audiences: list[str] = field(default_factory=list)
    insecure: bool = False
    max_body: int = 1024 * 1024
    access_log: bool = True

    def to_environment(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_environment(cls) -> "ServeConfig":
        return cls(**json.loads(os.environ[ENVIRONMENT]))


def app_from_environment():
    """uvicorn's factory in each worker process: the configuration travels in the environment."""
    _log_to_stderr()
    return create_app(ServeConfig.from_environment())


def _log_to_stderr() -> None:
    """The request log, in this process: a worker that uvicorn spawns (--workers 2 and more)
    starts with bare logging, and without a handler of its own every line would be lost."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def create_app(config: ServeConfig) -> "Edge":
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pathway = Pathway.load(config.rules)
        app.state.store = FeedbackStore(config.db)
        app.state.keys = load_jwks(config.jwks) if config.jwks else None
        warm_up()
        # What the worker loaded (rule base, models, templates) lives as long as the worker:
        # out of the collector's sight, a full collection does not walk it again per request.
        gc.freeze()
        yield
        app.state.pathway.close()

    app = FastAPI(title="cno-pathway CDS Hooks service", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        return _error(exc.status, exc.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error (logged on the server)")

    async def body_json(request: Request):
        # JSON only: a web page elsewhere cannot post a "simple" (text/plain) request here
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise Refused(415, "the body must be JSON (Content-Type: application/json)")
        raw = await request.body()
        try:
            return json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise Refused(400, f"malformed JSON: {exc}") from None

    def authorize(request: Request) -> None:
        if app.state.keys is None:
            return
        check_jwt(request, app.state.keys, config, app.state.store)

    @app.get("/cds-services")
    async def discovery():
        return cdshooks.discovery()

    @app.get("/healthz")
    async def health():
        return {"status": "ok", "pid": os.getpid()}

    @app.post("/cds-services/{service}")
    async def call_service(service: str, request: Request):
        authorize(request)
        body = await body_json(request)
        if isinstance(body, dict) and isinstance(body.get("hookInstance"), str):
            request.scope["cno_log"]["hookInstance"] = body["hookInstance"][:100]
        try:
            call = cdshooks.parse_request(service, body)
            not_used: list = []
            try:
                consult, cards, not_used = cdshooks.consult_for(call, app.state.pathway)
                digest = consult.rulebook["digest"]
            except cdshooks.HookError:
                raise
            except ProfileError as exc:
                cards, digest = [cdshooks.contradiction_card(call, str(exc))], \
                    app.state.pathway.rulebook.digest
        except cdshooks.HookError as exc:
            raise Refused(exc.status, exc.message) from None
        app.state.store.log_cards(service, call.hook_instance, digest, cards)
        answer: dict = {"cards": cards}
        if not_used:   # nothing dropped in silence: what the consult did not read
            answer["extension"] = {cdshooks.NOT_USED_EXTENSION: not_used}
        return JSONResponse(answer)

    @app.post("/cds-services/{service}/feedback")
    async def feedback(service: str, request: Request):
        authorize(request)
        if service not in cdshooks.SERVICES:
            raise Refused(404, f"no CDS service {service!r}")
        body = await body_json(request)
        try:
            count = app.state.store.record(service, body)
        except FeedbackError as exc:
            raise Refused(400, str(exc)) from None
        return {"stored": count}

    from . import webform

    @app.get("/", response_class=HTMLResponse)
    async def form(request: Request):
        authorize(request)
        return HTMLResponse(webform.form_page(app.state.pathway))

    @app.post("/", response_class=HTMLResponse)
    async def submit(request: Request):
        authorize(request)
        form_data = await request.form(max_files=1, max_fields=200)
        try:
            html = await webform.consult_page(app.state.pathway, form_data)
        except ProfileError as exc:
            values = {k: v for k, v in form_data.items() if isinstance(v, str)}
            values.update({k + "[]": form_data.getlist(k) for k in form_data.keys()})
            return HTMLResponse(webform.form_page(app.state.pathway, error=str(exc), values=values),
                                status_code=400)
        return HTMLResponse(html)

    @app.get("/pathway", response_class=HTMLResponse)
    async def pathway_page(request: Request):
        authorize(request)
        return HTMLResponse(webform.pathway_page(app.state.pathway))

    return Edge(app, config)


def warm_up() -> None:
    """Import the FHIR models and compile the card template before the first call, so that
    the first clinician does not wait for them."""
    from fhir.resources.R4B import get_fhir_model_class

    from ..consult.render import environment

    for kind in ("Bundle", "Patient", "Condition", "Observation", "MedicationStatement",
                 "MedicationRequest"):
        get_fhir_model_class(kind)
    environment(False).get_template("cds_card.md.j2")
    environment(True).get_template("consult.html.j2")


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


# -- the outermost layer: body limit, error catch-all, request log --------------------------------

class _TooLarge(Exception):
    pass


class Edge:
    """Pure ASGI: refuses a body over the limit (by Content-Length, or while it streams), never
    lets a traceback reach the client, and logs one line per request with its hookInstance."""

    def __init__(self, app, config: ServeConfig):
        self.app = app
        self.limit = config.max_body
        self.access_log = config.access_log
        # Several workers share one listening socket, and the first to wake accepts every
        # waiting connection: eight keep-alive clients ended up 7 to 1 on two workers, one core
        # idle. Closing after each answer lets the next request's connection go to whichever
        # worker is free (a loopback reconnect costs far less than a consult).
        self.rebalance = config.workers > 1
        # Bound to loopback, the service answers only requests addressed to loopback: a web page
        # that rebinds its own name to 127.0.0.1 cannot read the answers (DNS rebinding).
        self.hosts = None
        if is_loopback(config.host):
            names = ("127.0.0.1", "localhost", "[::1]", config.host)
            self.hosts = {n.encode() for n in names} | {f"{n}:{config.port}".encode() for n in names}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        info = scope["cno_log"] = {}
        state = {"status": None}
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if self.rebalance:
                    message = dict(message, headers=[*message.get("headers", ()),
                                                     (b"connection", b"close")])
            await send(message)

        try:
            headers = dict(scope.get("headers") or [])
            if self.hosts is not None and headers.get(b"host", b"").lower() not in self.hosts:
                state["status"] = 421
                await _send_json(send, 421, "this service answers only requests to its loopback "
                                            "address")
                return
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                raise _TooLarge
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if state["status"] is None:
                await _send_json(tracking_send, 413, f"request body over {self.limit} bytes")
        except Exception as exc:  # noqa: BLE001 - the client gets a status, the log the details
            log.error("internal error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if state["status"] is None:
                await _send_json(tracking_send, 500, "internal error (logged on the server)")
        finally:
            if self.access_log:
                log.info(json.dumps({"pid": os.getpid(), "method": scope.get("method"),
                                     "path": scope.get("path"), "status": state["status"],
                                     "ms": round((time.perf_counter() - start) * 1000, 1),
                                     "hookInstance": info.get("hookInstance")}))


async def _send_json(send, status: int, message: str):
    body = json.dumps({"error": message, "status": status}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# -- JWT ------------------------------------------------------------------------------------------

def load_jwks(where: str):
    """The client's public keys: a JWKS file, or a JWKS URL fetched when a key id is first
    seen and cached for five minutes (https, or http on the loopback only)."""
    import jwt

    if where.startswith(("https://", "http://")):
        return _KeysAt(jwt.PyJWKClient(where, cache_keys=True, lifespan=300, timeout=10))
    try:
        data = json.loads(Path(where).read_text(encoding="utf-8"))
        keys = jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
        raise InputError(f"not a JWKS: {exc}", file=where, field="--jwks") from None
    return {key.key_id: key for key in keys.keys}


class _KeysAt:
    """A JWKS URL as a mapping from key id to key (None when the key set lacks it)."""

    def __init__(self, client):
        self.client = client

    def get(self, kid):
        import jwt

        if not isinstance(kid, str):
            return None
        try:
            return self.client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.error("cannot fetch the JWKS: %s", exc)
            raise Refused(503, "the client's keys (JWKS URL) cannot be fetched") from None
        except jwt.PyJWKClientError:
            return None


def check_jwt(request: Request, keys: dict, config: ServeConfig, store: FeedbackStore) -> None:
    """Signature (a key of the JWKS, ES384 or RS384), iss, aud (this endpoint's URL or a
    configured audience), exp, and jti never seen before; refusal is a 401 with the reason."""
    import jwt

    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise Refused(401, "a bearer JWT is required (Authorization: Bearer ...)")
    token = header[7:].strip()
    try:
        head = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Refused(401, f"not a JWT: {exc}") from None
    key = keys.get(head.get("kid"))
    if key is None:
        raise Refused(401, f"unknown key id {head.get('kid')!r}")
    if head.get("alg") not in ALGORITHMS:
        raise Refused(401, f"algorithm {head.get('alg')!r} is not accepted ({', '.join(ALGORITHMS)})")
    endpoint = str(request.url).split("?", 1)[0]
    try:
        claims = jwt.decode(token, key.key, algorithms=ALGORITHMS,
                            audience=[endpoint, *config.audiences], issuer=config.issuers,
                            options={"require": ["iss", "aud", "exp", "jti"]}, leeway=30)
    except jwt.PyJWTError as exc:
        raise Refused(401, f"JWT refused: {exc}") from None
    if not isinstance(claims.get("jti"), str) or not store.claim_token(claims["jti"], int(claims["exp"])):
        raise Refused(401, "JWT refused: jti already used (a replayed token)")


# -- running ---------------------------------------------------------------------------------------

def serve(config: ServeConfig) -> None:
    """Run uvicorn: with --workers N its supervisor starts N processes and replaces one that dies."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    os.environ[ENVIRONMENT] = config.to_environment()
    uvicorn.run("cno_pathway.interop.server:app_from_environment", factory=True,
                host=config.host, port=config.port, workers=config.workers,
                access_log=False, log_level="info", timeout_graceful_shutdown=5,
                h11_max_incomplete_event_size=64 * 1024)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


