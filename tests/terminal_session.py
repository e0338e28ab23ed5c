"""Run the console script as a person at a terminal would: on a pseudo-terminal (stdlib pty),
with the terminal as its controlling terminal, so typed keys, Ctrl-C and isatty() behave as
they do for a person. Standard output can stay on the terminal or go to a file, to check that
questions never reach it."""

from __future__ import annotations

import fcntl
import os
import signal
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def console_script() -> str:
    script = Path(sys.executable).parent / "cno-pathway"
    return str(script) if script.exists() else shutil.which("cno-pathway")


def base_env(tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CNO_PATHWAY_RULES", "CNO_PATHWAY_SEEDS", "NO_COLOR", "PAGER", "LESS")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    env["TERM"] = "xterm"
    env.update(extra)
    return env


def interruptible():
    """In the child, before exec: Ctrl-C back to its default. A suite started as a background
    job of a shell without job control inherits SIGINT ignored (POSIX), and a program started
    so keeps ignoring it, as it should; the Ctrl-C tests are about our handling, not that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _controlling_terminal():
    interruptible()
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Session:
    """`cno-pathway ARGS` on a pseudo-terminal of 24 x 80."""

    def __init__(self, args, *, env: dict, cwd: Path, stdout_on_terminal: bool = False):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.stdout_file = None if stdout_on_terminal else tempfile.TemporaryFile()
        self.proc = subprocess.Popen([console_script(), *map(str, args)], stdin=slave,
                                     stdout=slave if stdout_on_terminal else self.stdout_file,
                                     stderr=slave, env=env, cwd=str(cwd),
                                     preexec_fn=_controlling_terminal, close_fds=True)
        os.close(slave)
        self.seen = ""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the other end closed: the program ended
            return False
        if not chunk:
            return False
        self.seen += chunk.decode("utf-8", "replace")
        return True

    def expect(self, text: str, timeout: float = 60) -> str:
        """Wait until `text` has appeared on the terminal since the last expect; return what
        appeared up to and including it."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or (not self._read(min(left, 0.5)) and self.proc.poll() is not None
                             and not self._read(0.1)):
                if text in self.seen:
                    break
                raise AssertionError(f"{text!r} did not appear; the terminal shows:\n{self.seen[-2000:]}")
        index = self.seen.index(text) + len(text)
        shown, self.seen = self.seen[:index], self.seen[index:]
        return shown

    def send(self, text: str) -> None:
        os.write(self.master, text.encode("utf-8"))

    def answer(self, prompt: str, reply: str) -> str:
        shown = self.expect(prompt)
        self.send(reply + "\r")
        return shown

    def finish(self, timeout: float = 60) -> tuple[int, str, bytes]:
        """Wait for the end: (exit status, the rest of the terminal, standard output)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        while self._read(0.1):
            pass
        code = self.proc.wait(timeout=5)
        os.close(self.master)
        out = b""
        if self.stdout_file is not None:
            self.stdout_file.seek(0)
            out = self.stdout_file.read()
            self.stdout_file.close()
        return code, self.seen, out
