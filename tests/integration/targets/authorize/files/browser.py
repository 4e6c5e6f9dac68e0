# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A stand-in for a web browser, for BROWSER: fetch the consent URL and follow its redirect to the loopback server.

The sandbox's consent page answers at once with a redirect; the page the loopback server shows is written to the
file named by SANDBOX_BROWSER_LOG, if set. SANDBOX_CA_PATH names the CA the sandbox's HTTPS certificate chains to.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    context = ssl.create_default_context(cafile=os.environ.get("SANDBOX_CA_PATH"))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(sys.argv[1], timeout=30) as response:
            status, page = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, page = error.code, error.read()
    log = os.environ.get("SANDBOX_BROWSER_LOG")
    if log:
        with open(log, "ab") as handle:
            handle.write(b"%d " % status + page + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
