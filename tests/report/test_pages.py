"""Each kind's HTML page, opened in headless Chromium at a laptop's width (1280 px).

A golden file proves the HTML did not change; only a browser shows what a person sees. The
page is loaded with a probe script appended (the committed page has no script) that records,
once loaded, each image's decoded width, the width it is shown at, and whether the page is
wider than the window; a screenshot then shows the verdict box. Skipped, with the reason,
where Chromium is not installed (Debian: apt-get install chromium). To look at the pages
yourself, keep the screenshots:
    MLC_SCREENSHOTS=/some/dir python -m pytest -q tests/report/test_pages.py -p no:randomly
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlc.report.blocks import Figure, walk
from mlc.report.render import document
from tests.report.test_golden import KINDS, page, recorded

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_WINDOW = (1280, 2000)
_VERDICT = {(233, 247, 238), (253, 236, 236), (238, 244, 255)}  # .verdict backgrounds: pass, fail, info
_PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images].map(i => [i.naturalWidth, Math.round(i.getBoundingClientRect().width)]);
  const wide = document.documentElement.scrollWidth > window.innerWidth;
  document.body.setAttribute("data-probe", JSON.stringify({images, wide}));
});</script>"""


def _browser() -> str:
    found = next((path for name in _BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the report pages were not looked at")
    return found


def _chromium(browser: str, profile: Path, *args: str) -> str:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={_WINDOW[0]},{_WINDOW[1]}", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.parametrize("kind", KINDS)
def test_the_page_draws_its_plots_at_a_readable_size_and_its_verdict(kind, tmp_path):
    browser = _browser()
    from PIL import Image

    html = page(kind)
    probe = tmp_path / f"{kind}-probe.html"
    probe.write_text(html.replace("</body>", _PROBE + "</body>"))
    dom = _chromium(browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the page did not finish loading"
    seen = json.loads(found[1].replace("&quot;", '"'))
    figures = [b for b in walk(document(recorded(kind)).blocks) if isinstance(b, Figure)]
    assert len(seen["images"]) == len(figures)
    assert all(natural > 0 for natural, _ in seen["images"]), "an image did not decode"
    # Shrunk below 3/4 of the size they were drawn at (a wide figure in half a page), plots are unreadable.
    shrunk = [(natural, drawn) for natural, drawn in seen["images"] if drawn < 0.75 * min(natural, 1000)]
    assert not shrunk, f"plots drawn too small (drawn at, shown at): {shrunk}"
    assert not seen["wide"], "the page is wider than a 1280-px window"

    shot = tmp_path / f"{kind}.png"
    target = tmp_path / f"{kind}.html"
    target.write_text(html)
    _chromium(browser, tmp_path / "profile", f"--screenshot={shot}", target.as_uri())
    keep = os.environ.get("MLC_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(keep) / shot.name)
    with Image.open(shot) as image:
        counts = {colour: n for n, colour in image.convert("RGB").getcolors(maxcolors=1 << 24) or []}
    assert sum(counts.get(c, 0) for c in _VERDICT) > 5_000, "no verdict box on the page"
