"""Start the real `cno-pathway serve` on a free loopback port (127.0.0.1 only), wait until it
answers, and stop it afterwards. Nothing outside 127.0.0.1 is contacted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *args: str, db: Path | None = None, workers: int = 1):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db = db or tmp / "feedback.sqlite3"
        self.log_path = tmp / f"server-{self.port}.log"
        self.args = ["--port", str(self.port), "--db", str(self.db), "--workers", str(workers),
                     *args]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "Server":
        env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(self.db.parent))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cno_pathway", "serve", *self.args],
                                     cwd=str(ROOT), env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_text()[-3000:]}")
            try:
                status, _ = self.get("/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not answer in {timeout} s: {self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)   # our own process group only
                self.proc.wait(timeout=10)
        self.proc = None
        self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- requests --------------------------------------------------------------------------------
    def request(self, method: str, path: str, body=None, *, raw: bytes | None = None,
                headers: dict | None = None, timeout: float = 60):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, _decode(response.read(), response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read(), exc.headers)

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw):
        return self.request("POST", path, body, **kw)


def _decode(data: bytes, headers):
    if "json" in (headers.get("content-type") or ""):
        return json.loads(data)
    return data.decode("utf-8", errors="replace")


def hook_body(bundle: dict, *, hook: str = "patient-view", instance: str = "hook-1",
              drafts: list[dict] | None = None) -> dict:
    """A CDS Hooks request whose prefetch holds the Bundle's resources: the Patient on its own
    key, the rest as a searchset Bundle under another key (any key is read)."""
    resources = [e["resource"] for e in bundle["entry"]]
    patient = resources[0]
    body = {"hook": hook, "hookInstance": instance,
            "context": {"userId": "Practitioner/example", "patientId": patient["id"]},
            "prefetch": {"patient": patient,
                         "everything-else": {"resourceType": "Bundle", "type": "searchset",
                                             "entry": [{"resource": r} for r in resources[1:]]}}}
    if drafts is not None:
        body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                          "entry": [{"resource": r} for r in drafts]}
    return body
