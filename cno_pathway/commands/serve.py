"""`cno-pathway serve` (the CDS Hooks service and the consult web page) and `cno-pathway
feedback` (what clinicians did with the cards). FastAPI and uvicorn are imported only when the
service starts, so the rest of the command line does not pay for them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from .common import load_pathway, rules_option

_DB_HELP = "Feedback database (SQLite). Default: $XDG_DATA_HOME/cno-pathway/feedback.sqlite3."


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --jwks, or --insecure.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Engine processes; one that dies is replaced.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help=_DB_HELP)
@click.option("--jwks", metavar="FILE|URL",
              help="JWKS of the CDS client's public keys, a file or an https URL: every call "
                   "must carry the client's JWT.")
@click.option("--issuer", "issuers", multiple=True,
              help="Accepted JWT issuer (iss), repeat for several; required with --jwks.")
@click.option("--audience", "audiences", multiple=True,
              help="Accepted JWT audience besides the endpoint's own URL (behind a proxy).")
@click.option("--insecure", is_flag=True,
              help="Allow a non-loopback address without authentication.")
@click.option("--max-body", default=1024 * 1024, show_default=True, type=click.IntRange(1024),
              help="Largest request body in bytes.")
@rules_option
def serve(host, port, workers, db, jwks, issuers, audiences, insecure, max_body, rules_dir):
    """Run the CDS Hooks 2.0 service (patient-view, order-select, order-sign, feedback) and the
    consult web page (GET /, GET /pathway)."""
    from ..interop.feedback import default_path
    from ..interop.server import ServeConfig, is_loopback, serve as run_server

    if jwks is None and (issuers or audiences):
        raise click.UsageError("--issuer and --audience check a JWT: give --jwks too")
    if jwks is not None:
        _check_jwks(jwks)
    if jwks is not None and not issuers:
        raise click.UsageError("--jwks needs at least one --issuer (the CDS client's iss)")
    if not is_loopback(host) and jwks is None and not insecure:
        raise click.UsageError(f"refusing to serve on {host} without authentication: give --jwks "
                               "(and --issuer), or --insecure to accept unauthenticated calls")
    # Fail here, in one line, rather than in every worker: the rule base and the key file.
    load_pathway(rules_dir)
    if jwks is not None and not jwks.startswith(("http://", "https://")):
        from ..interop.server import load_jwks

        load_jwks(jwks)
    config = ServeConfig(host=host, port=port, workers=workers, db=str(db or default_path()),
                         rules=str(rules_dir) if rules_dir else None,
                         jwks=str(jwks) if jwks else None, issuers=list(issuers),
                         audiences=list(audiences), insecure=insecure, max_body=max_body)
    run_server(config)


def _check_jwks(jwks: str) -> None:
    """A readable file, an https URL, or an http URL on the loopback (a key set fetched in the
    clear from elsewhere could be replaced on the way)."""
    from urllib.parse import urlsplit

    from ..interop.server import is_loopback

    if jwks.startswith(("http://", "https://")):
        url = urlsplit(jwks)
        if url.scheme == "http" and not is_loopback(url.hostname or ""):
            raise click.UsageError(f"--jwks {jwks}: use https (http only on the loopback)")
        return
    if not Path(jwks).is_file():
        raise click.UsageError(f"--jwks {jwks}: no such file")


@click.command()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help=_DB_HELP)
@click.option("--summary", is_flag=True,
              help="Acceptance and override rates per rule, and the commonest override reasons.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def feedback(db, summary, as_json):
    """List what clinicians did with the cards the service served."""
    from ..interop.feedback import FeedbackStore, default_path

    path = db or default_path()
    if not Path(path).exists():
        raise InputError("no feedback database here (the service creates it)", file=str(path))
    store = FeedbackStore(path)
    rows = store.summary() if summary else store.outcomes()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no feedback yet")
        return
    if summary:
        click.echo(f"{'rule':32} {'served':>6} {'accepted':>8} {'overridden':>10} {'accept%':>7}  "
                   "commonest override reasons")
        for r in rows:
            rate = "-" if r["acceptance_rate"] is None else f"{100 * r['acceptance_rate']:.0f}%"
            reasons = "; ".join(f"{x['reason']} ({x['count']})" for x in r["top_override_reasons"])
            click.echo(f"{r['rule']:32} {r['served']:>6} {r['accepted']:>8} {r['overridden']:>10} "
                       f"{rate:>7}  {reasons}")
        return
    for r in rows:
        reason = f" ({r['override_display'] or r['override_code']})" if r["override_code"] or \
            r["override_display"] else ""
        comment = f": {r['comment']}" if r["comment"] else ""
        click.echo(f"{r['received_at']} {r['rule']} {r['outcome']}{reason}{comment} "
                   f"[card {r['card']}, rule base {r['digest'][:19]}]")
