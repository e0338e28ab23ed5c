"""The HTML consult in a real browser: headless Chromium (Debian package `chromium`).

The page is rendered from the fixture rule base, loaded from a file:// URL, and checked as the
browser built it (--dump-dom): the suggestions, the disclaimer and the provenance are in the page
text, and a hostile profile label `<script>alert(1)</script>` is text inside the heading, never a
script element. A screenshot and a printout (PDF, through the print style sheet) are produced.

Phone width (issue 15): the page is loaded in a 420 px wide frame and measured there (the frame's
own viewport drives the page's media queries; a top-level headless window cannot be narrower
than 500 px): its content must be no wider than the frame, so nothing scrolls sideways. At the
width of an A4 page the bottom line must end within the first page's height.

When /usr/bin/chromium is missing, the set-up installs it with apt-get when running as root
(CNO_PATHWAY_NO_APT=1 forbids that); otherwise the tests skip and say why.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cno_pathway.patient.profile import validate_profile
from cno_pathway.consult.render import render_consult

HOSTILE = "<script>alert(1)</script>"
PROFILE = {"id": HOSTILE, "age_years": 12, "weight_kg": 38, "diagnosis": "cno",
           "lesions": {"count": 5, "sites": ["tibia", "clavicle"], "imaging": "whole_body_mri"},
           "treatments": [{"drug": "naproxen", "months": 4, "response": "none"}]}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]
TIMEOUT = 120


def _find_chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _find_chromium()
    if found:
        return found
    if os.environ.get("CNO_PATHWAY_NO_APT") == "1":
        pytest.skip("chromium is not installed (Debian package chromium) and CNO_PATHWAY_NO_APT=1")
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed (Debian package chromium) and cannot be installed "
                    "here (needs root and apt-get): apt-get install -y chromium")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
            if proc.returncode != 0:
                pytest.skip(f"chromium is not installed and `{' '.join(command)}` failed: "
                            f"{proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chromium is not installed and apt-get could not install it: {exc}")
    found = _find_chromium()
    if not found:
        pytest.skip("apt-get install -y chromium ran, but no chromium executable was found")
    return found


def _run(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile_dir = tmp_path / "chromium-profile"
    profile_dir.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(tmp_path))
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile_dir}", *args],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)


class _Page(HTMLParser):
    """The DOM as the browser dumped it: its visible text, its elements, the h1's text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.h1: list[str] = []
        self._skip = 0
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("style", "script", "title"):
            self._skip += 1
        if tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self._skip -= 1
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)
        if self._in_h1:
            self.h1.append(data)

    @property
    def flat(self) -> str:
        return " ".join("".join(self.text).split())


def _parse(dom: str) -> _Page:
    page = _Page()
    page.feed(dom)
    return page


@pytest.fixture(scope="module")
def consult(fixture_pathway):
    return fixture_pathway.consult(validate_profile(PROFILE, fixture_pathway.vocabulary), explain=True)


@pytest.fixture(scope="module")
def page_file(consult, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "consult.html"
    path.write_text(render_consult(consult, "html"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dom(chromium, page_file, tmp_path_factory) -> str:
    proc = _run(chromium, tmp_path_factory.mktemp("dom"), "--dump-dom", page_file.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def test_page_text_has_every_suggestion_the_disclaimer_and_provenance(consult, dom):
    page = _parse(dom)
    text = page.flat
    assert consult.suggestions
    for s in consult.suggestions:
        assert s.rule in text and s.title in text
        assert f"{s.grade} {s.grade_meaning}" in text
        for cite in s.citations:
            assert " ".join(cite.quote.split()) in text
    assert " ".join(consult.disclaimer.split()) in text
    assert consult.rulebook["digest"] in text
    assert "Why not (every rule that did not fire)" in text and "Engine trace" in text
    assert text.index("Bottom line") < text.index("Patient") < text.index("References")
    assert "Stage NSAID-refractory" in text


def test_hostile_label_is_text_not_a_script(dom):
    page = _parse(dom)
    assert "script" not in page.tags                      # no element was injected
    assert "".join(page.h1).strip() == f"CNO pathway consult: {HOSTILE}"
    assert '<span class="label">&lt;script&gt;alert(1)&lt;/script&gt;</span>' in dom
    assert "<script" not in dom.lower() and "data-ran" not in dom


def test_the_check_would_catch_an_injected_script(chromium, tmp_path):
    """Control: on a page that does not escape its label, the browser builds a script element
    and runs it (a harmless one here: an alert() would block a headless browser until the
    time-out, which is also how an executed alert in the consult page would show)."""
    label = "<script>document.body.setAttribute('data-ran', 'yes')</script>"
    bad = tmp_path / "bad.html"
    bad.write_text(f"<!DOCTYPE html><html><body><h1>Consult: {label}</h1></body></html>",
                   encoding="utf-8")
    proc = _run(chromium, tmp_path, "--dump-dom", bad.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "script" in _parse(proc.stdout).tags and 'data-ran="yes"' in proc.stdout


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_screenshot(chromium, page_file, tmp_path):
    shot = tmp_path / "consult.png"
    proc = _run(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1000,1600",
                page_file.as_uri())
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert _png_size(shot) == (1000, 1600)
    assert shot.stat().st_size > 20_000          # a page with content, not a blank image


def test_printout(chromium, page_file, tmp_path):
    pdf = tmp_path / "consult.pdf"
    proc = _run(chromium, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer",
                page_file.as_uri())
    assert proc.returncode == 0 and pdf.exists(), proc.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 10_000


# -- phone width and the first printed page (issue 15) ---------------------------------------------

_MEASURE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="{src}" style="width:{width}px;height:900px;border:0"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {{
  var doc = this.contentDocument, root = doc.documentElement;
  var bottom = doc.getElementById('bottom-line');
  document.body.setAttribute('data-scroll-width', root.scrollWidth);
  document.body.setAttribute('data-client-width', root.clientWidth);
  document.body.setAttribute('data-bottom-line-end',
                             bottom ? Math.ceil(bottom.getBoundingClientRect().bottom) : -1);
}});
</script></body></html>
"""


def _measure(chromium: str, tmp_path: Path, page: str, width: int) -> dict[str, int]:
    """Load `page` in a frame `width` px wide; its scroll width, client width and where the
    bottom line ends (px from the top)."""
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    wrapper = tmp_path / "measure.html"
    wrapper.write_text(_MEASURE.format(src="page.html", width=width), encoding="utf-8")
    proc = _run(chromium, tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000",
                "--window-size=1300,1000", "--dump-dom", wrapper.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = dict(re.findall(r'data-([a-z-]+)="(-?\d+)"', proc.stdout))
    assert {"scroll-width", "client-width", "bottom-line-end"} <= set(found), proc.stdout[-2000:]
    return {k: int(v) for k, v in found.items()}


PHONE = 420
A4_WIDTH, A4_FIRST_PAGE = 794, 1000      # CSS px at 96 dpi: 210 mm wide; 297 mm less margins


@pytest.fixture(scope="module")
def teaching_pages(pathway):
    from cno_pathway.teaching.cases import find_case

    pages = {}
    for name in ("vertebral-fracture", "steroid-relapse", "red-flags", "tnf-psoriasis"):
        profile = find_case(name).profile(pathway.vocabulary)
        pages[name] = render_consult(pathway.consult(profile, explain=name == "tnf-psoriasis"), "html")
    return pages


def test_no_horizontal_scroll_at_phone_width(chromium, teaching_pages, consult, tmp_path):
    pages = dict(teaching_pages, hostile=render_consult(consult, "html"))
    for name, page in pages.items():
        where = tmp_path / name
        where.mkdir()
        size = _measure(chromium, where, page, PHONE)
        assert size["client-width"] == PHONE, (name, size)
        assert size["scroll-width"] <= size["client-width"], (name, size)


def test_the_width_check_catches_a_page_that_scrolls(chromium, tmp_path):
    """Control: a page with a table wider than the phone does scroll sideways in the frame."""
    wide = ("<!DOCTYPE html><html><head><meta name='viewport' content='width=device-width'></head>"
            "<body><section id='bottom-line'>x</section><table><tr>"
            + "<td style='white-space:nowrap'>a wide cell of a dose table</td>" * 6
            + "</tr></table></body></html>")
    size = _measure(chromium, tmp_path, wide, PHONE)
    assert size["scroll-width"] > size["client-width"] == PHONE


def test_bottom_line_ends_on_the_first_page(chromium, teaching_pages, tmp_path):
    for name, page in teaching_pages.items():
        where = tmp_path / name
        where.mkdir()
        size = _measure(chromium, where, page, A4_WIDTH)
        assert 0 < size["bottom-line-end"] < A4_FIRST_PAGE, (name, size)
        assert page.index('id="bottom-line"') < page.index('id="patient"')


@pytest.mark.parametrize("width", [1200, PHONE])
def test_screenshots_at_desktop_and_phone_width(chromium, teaching_pages, tmp_path, width):
    """The screenshots looked at for issue 15 (CNO_PATHWAY_SCREENSHOTS=DIR keeps them)."""
    keep = os.environ.get("CNO_PATHWAY_SCREENSHOTS")
    out = Path(keep) if keep else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    page = tmp_path / "page.html"
    page.write_text(teaching_pages["vertebral-fracture"], encoding="utf-8")
    wrapper = tmp_path / "shot.html"
    wrapper.write_text(_MEASURE.format(src="page.html", width=width).replace("900px", "2400px"),
                       encoding="utf-8")
    shot = out / f"vertebral-fracture-{width}.png"
    proc = _run(chromium, tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000",
                f"--window-size={width},2400", f"--screenshot={shot}", wrapper.as_uri())
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert _png_size(shot) == (width, 2400)
    assert shot.stat().st_size > 20_000
