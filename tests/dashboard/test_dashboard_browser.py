"""The served dashboard in a real headless Chromium: every page loads from a deep link, finishes running,
draws every chart with data, shows no Streamlit exception or error box and logs no console error; a
screenshot of each page is kept under .cms/artifacts/screenshots/ for a reviewer to look at."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from chromium_driver import Browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".cms" / "artifacts" / "screenshots"
# page -> (deep link, charts it draws on the scenario)
PAGES = {
    "overview": ("/?range=7d", 0),
    "feeds": ("/feeds?range=24h&end=2026-11-16T12:00Z", 3),
    "batches": ("/batches?range=7d", 6),
    "stages": ("/stages?job=derivatives.eod_valuation&day=2026-11-16&stage=loading", 4),
    "incidents": ("/incidents?range=7d&incident=inc-20261116-0546-b3f4a7", 2),  # a deep link draws the evidence
    "ask": ("/ask?q=" + quote("failure rate by asset class this week"), 0),
}
# Streamlit's front end finds its base path by asking /<first path segment>/_stcore/... before /_stcore/...:
# on a deep link (/feeds) the first two requests are answered 404 by design.
BASE_PATH_PROBES = ("/_stcore/health", "/_stcore/host-config")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(scenario_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`cms dashboard` on the scenario's warehouse, on a free port."""
    port = _free_port()
    home = tmp_path_factory.mktemp("dashboard_served")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "SNOWFLAKE_"))}
    env.update(CMS_HOME=str(home), CMS_DUCKDB_PATH=str(scenario_db))
    log = open(home / "dashboard.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "cms_dagster.cli", "dashboard", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("cms dashboard exited: " + (home / "dashboard.log").read_text()[-2000:])
                time.sleep(0.5)
        else:
            pytest.fail("cms dashboard did not answer in 120 s: " + (home / "dashboard.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser(width=1440, height=1000)
    try:
        yield b
    finally:
        b.close()


def _real_console_errors(errors: list[str]) -> list[str]:
    def probe(e: str) -> bool:
        url = e.rsplit(" ", 1)[-1]
        return "404" in e and urlsplit(url).path.endswith(BASE_PATH_PROBES) and urlsplit(url).path.count("/") > 2

    return [e for e in errors if not probe(e)]


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_loads_in_chromium_with_its_charts_drawn_and_no_error(served: str, browser: Browser, page: str) -> None:
    link, charts = PAGES[page]
    state = browser.open(served + link)
    shot = browser.screenshot(SCREENSHOTS / f"{page}.png", min(state["height"] + 80, 8000))
    assert state["exceptions"] == [], state["exceptions"]
    assert state["errors"] == [], state["errors"]
    assert state["title"], "the page shows no title"
    assert len(state["plots"]) == charts, [p["title"] for p in state["plots"]]
    empty = [p["title"] for p in state["plots"] if p["points"] == 0]
    assert not empty, f"empty charts where the scenario has data: {empty}"
    assert _real_console_errors(browser.console_errors()) == []
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one


@pytest.mark.slow
def test_ask_page_in_chromium_shows_the_answer_and_its_table(served: str, browser: Browser) -> None:
    browser.open(served + PAGES["ask"][0])
    text = browser.evaluate("document.querySelector('[data-testid=\"stMain\"]').innerText")
    assert "Failure rate by asset class" in text and "equities" in text
    assert browser.evaluate("document.querySelectorAll('[data-testid=\"stDataFrame\"]').length") >= 1
