"""A small DevTools-protocol driver for Debian's headless Chromium: open a page, wait until Streamlit has
finished running its script and Plotly has drawn, read what the page shows, collect console errors and
uncaught exceptions, and save a screenshot of the whole page."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# What the page shows, read in the page: Streamlit's script state, exceptions, error boxes, and for each
# Plotly chart how many points its traces hold (0 = an empty chart).
PAGE_STATE_JS = """
(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  const plots = charts.map(c => {
    const gd = c.querySelector('.js-plotly-plot');
    if (!gd || !gd.data) return {drawn: false, points: 0, title: ''};
    let points = 0;
    for (const t of gd.data) {
      for (const k of ['x', 'y', 'z']) { if (t[k] && t[k].length) { points += t[k].length; break; } }
    }
    const title = (gd.layout && gd.layout.title && (gd.layout.title.text || gd.layout.title)) || '';
    return {drawn: !!gd._fullLayout, points, title: String(title)};
  });
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  return JSON.stringify({
    script: app ? app.getAttribute('data-test-script-state') : null,
    connection: app ? app.getAttribute('data-test-connection-state') : null,
    title: (document.querySelector('h1') || {}).innerText || '',
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText.slice(0, 500)),
    errors: [...document.querySelectorAll('[data-testid="stAlertContentError"]')].map(e => e.innerText.slice(0, 500)),
    skeletons: document.querySelectorAll('[data-testid="stSkeleton"]').length,
    plots,
    height: Math.max(main.scrollHeight, document.body.scrollHeight),
  });
})()
"""


def chromium_path() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        if path := shutil.which(name):
            return path
    return None


class Browser:
    """One headless Chromium with one tab, driven over the DevTools protocol."""

    def __init__(self, width: int = 1440, height: int = 1000) -> None:
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("Chromium is not installed: `apt-get install chromium` (make test does it as root)")
        self.profile = Path(tempfile.mkdtemp(prefix="cms-chromium-"))
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20)
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.width = width
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        self._id += 1
        my = self._id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params or {}}))
        deadline = time.time() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return res.get("result", {}).get("value")

    def state(self) -> dict[str, Any]:
        """What the page shows now; while a navigation replaces the document there is nothing to read yet."""
        raw = self.evaluate(PAGE_STATE_JS)
        if not isinstance(raw, str):
            return {"script": None, "connection": None, "title": "", "exceptions": [], "errors": [],
                    "skeletons": 0, "plots": [], "height": 0}
        return json.loads(raw)

    def open(self, url: str, timeout: float = 90) -> dict[str, Any]:
        """Load ``url`` and wait until Streamlit is connected, its script has run and every chart is drawn
        (stable for a second); returns the page state."""
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        deadline = time.time() + timeout
        stable_since = None
        last = None
        while time.time() < deadline:
            time.sleep(0.25)
            s = self.state()
            done = (
                s["connection"] == "CONNECTED"
                and s["script"] == "notRunning"
                and s["skeletons"] == 0
                and all(p["drawn"] for p in s["plots"])
            )
            key = json.dumps([s["title"], s["plots"], s["exceptions"], s["errors"]])
            if done and key == last:
                stable_since = stable_since or time.time()
                if time.time() - stable_since >= 1.0:
                    return s
            else:
                stable_since = None
            last = key
        raise TimeoutError(f"{url} did not finish rendering in {timeout:.0f} s (last state: {s})")

    def console_errors(self) -> list[str]:
        """Console errors and uncaught exceptions since the page was opened."""
        out = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
        return out

    def screenshot(self, path: Path, height: int) -> Path:
        """The whole page (the viewport stretched to ``height``) as a PNG."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": int(height), "deviceScaleFactor": 1, "mobile": False})
        time.sleep(1.0)  # let Plotly re-lay out the charts to the new viewport
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        self.send("Emulation.clearDeviceMetricsOverride")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
