# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a playbook as a CI job does, its output through a pipe, and play the user who reads the code from it.

Usage: piped.py APPROVE-URI CA-PATH ANSIBLE-PLAYBOOK ARGS...

stdout and stderr go into one pipe (``2>&1 | tee``), without PYTHONUNBUFFERED. The first user code read from the pipe
is approved at APPROVE-URI (the sandbox's device_approve_uri) while the playbook still runs; nothing is approved when
the code only comes after the playbook ended. Prints JSON: ``rc`` (the playbook's), ``code_read_while_running``
(approved before the playbook ended; whether its task still waited then, the sandbox's log and ``rc`` tell) and
``output`` (all of it).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request

USER_CODE = re.compile(rb"enter the code ([B-Z]{4}-[B-Z]{4})")


def approve(uri: str, ca_path: str, user_code: str) -> None:
    request = urllib.request.Request(uri, data=urllib.parse.urlencode({"user_code": user_code}).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30, context=ssl.create_default_context(cafile=ca_path)) as answer:
        answer.read()


def main() -> int:
    approve_uri, ca_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          env=environment) as playbook:
        assert playbook.stdout is not None
        output = b""
        read_while_running = False
        for line in playbook.stdout:
            output += line
            match = USER_CODE.search(line)
            if match and not read_while_running:
                # The line came while the playbook runs; a code that only comes at its end is too late to be approved.
                read_while_running = playbook.poll() is None
                if read_while_running:
                    approve(approve_uri, ca_path, match[1].decode("ascii"))
        rc = playbook.wait()
    print(json.dumps({"rc": rc, "code_read_while_running": read_while_running,
                      "output": output.decode("utf-8", "replace")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
