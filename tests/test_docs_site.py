"""The documentation site builds (warnings are errors) and renders in a real
headless browser: the index and an API page show, and no internal link is
broken.

The browser is Debian's `chromium`, driven by Playwright's Python package
(no browser download). Without it the browser test is skipped, unless
KP_REQUIRE_BROWSER=1 (as `.ci/run` sets), where its absence fails.
"""

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium as these machines need it: no sandbox (root), no background
# connections (the network is closed), a fresh profile.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

pytestmark = pytest.mark.backends("tensorflow")  # the site doesn't depend on the backend


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "--site-dir", str(out)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_site_builds_with_every_page(site):
    for page in ("index.html", "usage.html", "backends.html", "structures.html",
                 "channels.html", "small-files.html", "migration.html",
                 "api/pruning.html", "api/saving.html", "changelog.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "pruning.html").read_text()
    assert "prune_low_magnitude" in api and "Raises" in api


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("KP_REQUIRE_BROWSER") == "1":
            pytest.fail("KP_REQUIRE_BROWSER=1 but no chromium on PATH: "
                        "apt-get install chromium")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_index_and_api_page_render(browser, server):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "index.html")
    assert "keras-progprune" in page.title()
    assert page.locator("h1").first.inner_text().strip() == "keras-progprune"
    page.goto(server + "api/pruning.html")
    heading = page.locator("h2", has_text="prune_low_magnitude").first
    assert heading.is_visible()
    assert page.locator("text=Raises").first.is_visible()
    assert errors == []
    page.close()


def test_no_internal_link_is_broken(browser, server):
    page = browser.new_page()
    seen, queue, broken = set(), ["index.html"], []
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = page.goto(server + path)
        if response is None or response.status != 200:
            broken.append((path, None if response is None else response.status))
            continue
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            url = urllib.parse.urlsplit(href)
            if not href.startswith(server):
                continue  # external (none should be needed offline)
            target = url.path.lstrip("/") or "index.html"
            if url.fragment and target == path:
                if page.locator(f"[id='{url.fragment}']").count() == 0:
                    broken.append((path, "#" + url.fragment))
            elif target.endswith(".html") or target.endswith("/"):
                queue.append(target if target.endswith(".html") else target + "index.html")
    page.close()
    assert len(seen) >= 15, sorted(seen)
    assert broken == []
