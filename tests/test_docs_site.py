"""The documentation site: `mkdocs build --strict` passes, and its pages render in a browser.

The built site is served over HTTP and opened in headless Chromium (Debian's `chromium`
package, driven by playwright): the quickstart's code blocks are there and highlighted, and
the digits tutorial (the quickstart has no picture) shows every one of its pictures.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs site needs mkdocs and mkdocs-material (pip install -e '.[dev]')")
pytest.importorskip("material", reason="the docs site needs mkdocs-material (pip install -e '.[dev]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="opening the site needs playwright (pip install -e '.[dev]')")

ROOT = Path(__file__).parents[1]
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH or at /usr/bin/chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )
    assert built.returncode == 0, f"mkdocs build --strict failed:\n{built.stderr}"
    return out


@pytest.fixture(scope="module")
def base_url(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def test_the_site_builds_strict_with_every_page(site):
    pages = sorted(p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").rglob("*.md"))
    for page in pages:
        html = site / page.parent / "index.html" if page.name in ("index", "README") else site / page / "index.html"
        assert html.is_file(), f"docs/{page}.md has no page in the built site"
    nav = (site / "index.html").read_text()
    assert 'href="quickstart/"' in nav, "the quickstart is not in the navigation"


def _open(browser, url):
    page = browser.new_page()
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda response: response.status >= 400 and failed.append(f"{response.status} {response.url}"))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: {response.status if response else 'no response'}"
    return page, failed


@needs_chromium
def test_the_quickstart_code_blocks_render_highlighted(browser, base_url):
    page, _ = _open(browser, f"{base_url}/quickstart/")
    try:
        assert "Quickstart" in page.title()
        blocks = page.locator("pre code")
        assert blocks.count() >= 4, "the quickstart's code blocks are missing"
        texts = blocks.all_inner_texts()
        assert all(text.strip() for text in texts), "an empty code block"
        assert any("diffprior" in text for text in texts)
        # Pygments marks tokens with spans; the theme's stylesheet colours them differently from plain code
        colours = page.evaluate("""() => [...document.querySelectorAll('pre code')].map(code => {
            const plain = getComputedStyle(code).color;
            const tokens = [...code.querySelectorAll('span[class]')];
            return {tokens: tokens.length, coloured: tokens.filter(t => getComputedStyle(t).color !== plain).length};
        })""")
        assert all(block["tokens"] > 0 for block in colours), f"a code block without highlighted tokens: {colours}"
        assert all(block["coloured"] > 0 for block in colours), f"highlighting is not styled (no stylesheet?): {colours}"
    finally:
        page.close()


@needs_chromium
@pytest.mark.parametrize("path", ["quickstart/", "tutorials/digits/"])
def test_every_picture_renders(browser, base_url, path):
    page, failed = _open(browser, f"{base_url}/{path}")
    try:
        images = page.evaluate("""() => [...document.querySelectorAll('img')].map(img => ({
            src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth}))""")
        broken = [image["src"] for image in images if not image["complete"] or image["width"] == 0]
        assert not broken, f"pictures that do not render on {path}: {broken}"
        if path == "tutorials/digits/":
            assert len(images) >= 4, f"the digits tutorial shows {len(images)} pictures"
        assert not failed, f"requests that failed on {path}: {failed}"
    finally:
        page.close()
