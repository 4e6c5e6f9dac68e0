# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Play the user of the authorize playbook in manual mode: run it on a terminal, open the consent URL it shows, and
paste the address the browser lands on when it asks. Usage: manual_pty.py ANSIBLE-PLAYBOOK ARGS...

The sandbox's consent page redirects at once; SANDBOX_CA_PATH names the CA of its HTTPS certificate. The playbook's
output is copied to stdout; the exit code is the playbook's.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request

CONSENT_URL = re.compile(rb"https://\S+/authorize\?\S+")
PROMPT = b"paste its whole address here"
TIMEOUT = 120


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def landing_address(url: str) -> str:
    context = ssl.create_default_context(cafile=os.environ["SANDBOX_CA_PATH"])
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        opener.open(url, timeout=30)  # pylint: disable=consider-using-with
    except urllib.error.HTTPError as error:
        return error.headers["Location"]
    raise RuntimeError("the consent page did not redirect")


def main() -> int:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    output = b""
    answered = False
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready = select.select([fd], [], [], 1)[0]
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal closed with the playbook
            break
        if not chunk:
            break
        output += chunk
        sys.stdout.buffer.write(chunk)
        if not answered and PROMPT in output:
            match = CONSENT_URL.search(output)
            if match is None:
                raise RuntimeError("the playbook asked for the address before showing a consent URL")
            os.write(fd, landing_address(match.group().decode()).encode() + b"\r")
            answered = True
    else:
        os.kill(pid, signal.SIGTERM)
    status = os.waitpid(pid, 0)[1]
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
