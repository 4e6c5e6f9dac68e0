# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared fixtures: the local XOAUTH2 sandbox (token endpoint and SMTP servers) started once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def _sandbox_dir() -> Path:
    """The sandbox sources: named by the Makefile, or beside the tests in a checkout."""
    named = os.environ.get("SMAIL_XOAUTH2_SANDBOX_DIR")
    path = Path(named) if named else Path(__file__).resolve().parents[2] / "sandbox"
    if not (path / "xoauth2_sandbox" / "__init__.py").is_file():
        raise RuntimeError(f"sandbox sources not found at {path}; set SMAIL_XOAUTH2_SANDBOX_DIR")
    return path


sys.path.insert(0, str(_sandbox_dir()))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """A running sandbox; ``sandbox.settings`` holds ports, CA path and test credentials."""
    from xoauth2_sandbox import Sandbox  # pylint: disable=import-outside-toplevel,import-error

    with Sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture()
def settings(sandbox):
    return sandbox.settings


class StandInProxy:
    """An HTTP proxy that counts what reaches it and forwards nothing (it answers 502)."""

    def __init__(self) -> None:
        import http.server  # pylint: disable=import-outside-toplevel
        import threading  # pylint: disable=import-outside-toplevel

        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _count(self) -> None:
                proxy.requests.append(f"{self.command} {self.path}")
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_CONNECT = _count

            def log_message(self, *_args) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # shutdown() returns when the loop next looks up (every poll_interval, 0.5 s by default): closing is prompt.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def standin_proxy(monkeypatch):
    """A stand-in proxy set in every proxy variable of the environment (and no NO_PROXY): its ``requests`` says what reached it."""
    proxy = StandInProxy()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield proxy
    proxy.close()
