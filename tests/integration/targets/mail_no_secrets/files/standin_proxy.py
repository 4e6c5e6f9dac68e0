# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A stand-in HTTP proxy: it forwards nothing, answers 502 and appends each request's method and target to a log.

Usage: standin_proxy.py DIR. Writes DIR/pid, and DIR/port once it listens, and DIR/requests.log (one line per request, never a
body); stops after 300 seconds, or earlier when killed.
"""

from __future__ import annotations

import http.server
import os
import pathlib
import sys
import threading


def main() -> None:
    directory = pathlib.Path(sys.argv[1])
    log = directory / "requests.log"
    log.touch()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> None:
            with log.open("a", encoding="utf-8") as handle:
                handle.write(f"{self.command} {self.path}\n")
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_CONNECT = _record

        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    (directory / "pid").write_text(str(os.getpid()), encoding="utf-8")
    (directory / "port").write_text(str(server.server_port), encoding="utf-8")
    threading.Timer(300, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
