"""Inside Snowpark Container Services (Streamlit in Snowflake's container runtime) the warehouse adapter and
the dashboard sign in with the container's own session: the OAuth token file Snowflake keeps fresh and the
SNOWFLAKE_HOST / _ACCOUNT / _DATABASE / _SCHEMA it sets, no user or password. Against fakesnow in server
mode, behind a small relay that records each login request the connector sends."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cms_dagster import settings as settings_mod
from cms_dagster.warehouse.client import Warehouse
from cms_harness import fakesnow_server

APP = Path(__file__).resolve().parents[2] / "cms_dagster" / "dashboard" / "app.py"


class _Relay(BaseHTTPRequestHandler):
    """Forwards every request to fakesnow unchanged; keeps the body of each login request."""

    server: _RelayServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._forward()

    def do_GET(self) -> None:  # noqa: N802
        self._forward()

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "login-request" in self.path:
            raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
            self.server.logins.append(json.loads(raw)["data"])
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        req = urllib.request.Request(self.server.target + self.path, data=body if self.command == "POST" else None,
                                     headers=headers, method=self.command)
        try:
            resp = urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            resp = e
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _RelayServer(ThreadingHTTPServer):
    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.target = target
        self.logins: list[dict] = []


@pytest.fixture(scope="module")
def relay() -> Iterator[_RelayServer]:
    with fakesnow_server.server() as params:
        server = _RelayServer(f"http://{params['host']}:{params['port']}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()


def _container_env(relay: _RelayServer, token_file: Path) -> dict[str, str]:
    """What the container runtime sets (host, account, database, schema), plus the two CMS choices."""
    return {
        "CMS_WAREHOUSE": "snowflake",
        "CMS_SNOWFLAKE_AUTH": "container",
        "CMS_SNOWFLAKE_TOKEN_FILE": str(token_file),
        "SNOWFLAKE_ACCOUNT": "fakesnow",
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(relay.server_address[1]),
        "SNOWFLAKE_PROTOCOL": "http",  # the stand-in speaks HTTP; the container's host speaks HTTPS
        "SNOWFLAKE_DATABASE": "CMS",
        "SNOWFLAKE_SCHEMA": "MARTS",  # set by the runtime; queries name their schema
    }


def test_in_a_container_the_warehouse_signs_in_with_the_session_token_and_rereads_it(
    relay: _RelayServer, tmp_path: Path
) -> None:
    token = tmp_path / "session" / "token"
    token.parent.mkdir()
    token.write_text("spcs-token-1\n")
    wh = Warehouse(settings_mod.load(_container_env(relay, token)))

    assert wh.query("select 42 as answer")["answer"].tolist() == [42]
    login = relay.logins[-1]
    assert login["AUTHENTICATOR"] == "OAUTH" and login["TOKEN"] == "spcs-token-1"
    assert not login.get("PASSWORD") and not login.get("LOGIN_NAME")  # no user credentials at all

    token.write_text("spcs-token-2\n")  # Snowflake refreshes the file every few minutes
    assert wh.query("select ? as answer", [7])["answer"].tolist() == [7]
    assert relay.logins[-1]["TOKEN"] == "spcs-token-2"


def test_outside_a_container_the_missing_token_file_is_one_clear_line(relay: _RelayServer, tmp_path: Path) -> None:
    wh = Warehouse(settings_mod.load(_container_env(relay, tmp_path / "no-token")))
    with pytest.raises(ValueError, match=r"^CMS_SNOWFLAKE_AUTH=container: no session token at .*no-token") as e:
        wh.query("select 1")
    assert "\n" not in str(e.value)


def test_an_unknown_snowflake_sign_in_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="CMS_SNOWFLAKE_AUTH='sso': use 'credentials'"):
        settings_mod.load({"CMS_WAREHOUSE": "snowflake", "CMS_SNOWFLAKE_AUTH": "sso"})


@pytest.mark.slow
def test_the_dashboard_reads_snowflake_through_the_container_session(
    relay: _RelayServer, tmp_path: Path, cms_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("spcs-dashboard-token")
    for k, v in _container_env(relay, token).items():
        monkeypatch.setenv(k, v)
    before = len(relay.logins)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    # the stand-in holds no marts: the page says so, which took a query through the container's session
    assert any("No data for this page yet" in str(i.value) for i in at.info)
    assert "Snowflake (container session)" in "\n".join(str(c.value) for c in at.sidebar.caption)
    logins = relay.logins[before:]
    assert logins and all(x["AUTHENTICATOR"] == "OAUTH" and x["TOKEN"] == "spcs-dashboard-token" for x in logins)
