"""What a reader sees: the built book in a real browser (headless Debian chromium via Playwright).

The site is served from _build/html on a loopback port. Every page of the table of contents must
load with no failed local request, typeset all of its math with MathJax (served by the book itself,
no CDN) without a TeX error, and show every figure.
"""
import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.book]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _pages():
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"(?:root|file):\s*(\S+)", toc)
    return [f"{f}.html" for f in files]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(built):
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs Debian's chromium as root")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
            "--no-first-run", "--disable-component-update", "--disable-sync"])
        yield chrome
        chrome.close()


def _open(browser, url):
    """Load ``url``, wait for MathJax, and return (page, local requests that failed)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failed = []
    page.on("requestfailed", lambda r: failed.append(r.url) if r.url.startswith("http://127.0.0.1") else None)
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
            if r.url.startswith("http://127.0.0.1") and r.status >= 400 else None)
    page.goto(url, wait_until="load")
    if page.locator(".math").count():  # Sphinx loads MathJax only on pages with math
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
        page.evaluate("MathJax.startup.promise")
    return page, failed


def test_every_page_loads_typesets_its_math_and_shows_its_figures(site, browser, tmp_path):
    pages = _pages()
    assert len(pages) >= 3, pages
    typeset_somewhere = 0
    for path in pages:
        page, failed = _open(browser, f"{site}/{path}")
        assert not failed, f"{path}: requests failed: {failed}"
        sources = page.locator(".math").count()  # what Sphinx marked as math
        rendered = page.locator("mjx-container").count()
        assert rendered >= sources, f"{path}: {sources} math elements, only {rendered} typeset"
        assert page.locator("mjx-merror").count() == 0, f"{path}: MathJax reports a TeX error"
        typeset_somewhere += rendered
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken, f"{path}: images that did not load: {broken}"
        if "/01-rnn/" in path:
            page.screenshot(path=str(tmp_path / "chapter.png"), full_page=False)
        page.close()
    assert typeset_somewhere > 0, "no page typeset any math"


def test_chapter_figures_are_drawn_and_math_is_typeset_as_math(site, browser):
    page, _ = _open(browser, f"{site}/book/01-rnn/01-f-and-the-naive-rnn.html")
    sizes = page.evaluate("Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes and all(w >= 200 and h >= 100 for w, h in sizes), sizes  # real plots, not icons
    # the displayed equation h', y = f(h, x) is drawn by MathJax, not left as TeX source
    body = page.inner_text("main")
    assert "\\sigma" not in body and "$$" not in body
    page.close()


def test_citations_link_to_the_bibliography(site, browser):
    page, _ = _open(browser, f"{site}/book/intro.html")
    link = page.locator("a[href*='bibliography.html#']").first
    href = link.get_attribute("href")
    link.click()
    page.wait_for_load_state("load")
    target = href.split("#", 1)[1]
    assert page.locator(f"[id='{target}']").count() == 1, f"citation target #{target} missing"
    page.close()
