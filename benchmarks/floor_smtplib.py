#!/usr/bin/env python3
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The floor of case 3: the benchmark's messages sent by plain Python, no Ansible.

One google-auth refresh, one implicit-TLS connection, AUTH XOAUTH2, then every message on that connection.
Reads the sandbox settings and the messages from the harness's vars file (JSON: sandbox, bench_messages).
"""

from __future__ import annotations

import argparse
import base64
import json
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

import google.auth.transport.requests
import requests
from google.oauth2.credentials import Credentials


def refresh_access_token(*, sandbox: dict) -> str:
    """Return a fresh access token for the sandbox account (one request to its token endpoint)."""
    session = requests.Session()
    session.verify = sandbox["ca_path"]
    # Otherwise REQUESTS_CA_BUNDLE from the environment would replace the sandbox's CA.
    session.trust_env = False
    credentials = Credentials(
        token=None,
        refresh_token=sandbox["refresh_token"],
        client_id=sandbox["client_id"],
        client_secret=sandbox["client_secret"],
        token_uri=sandbox["token_uri"],
    )
    credentials.refresh(google.auth.transport.requests.Request(session=session))
    return credentials.token


def build_message(*, sender: str, spec: dict) -> EmailMessage:
    """Return the mail of one bench_messages entry."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(spec["to"])
    message["Subject"] = spec["subject"]
    message.set_content(spec["body"])
    return message


def send_all(*, sandbox: dict, messages: list[dict], access_token: str) -> int:
    """Send every message over one authenticated connection; return how many the server accepted."""
    context = ssl.create_default_context(cafile=sandbox["ca_path"])
    sasl = f"user={sandbox['account']}\1auth=Bearer {access_token}\1\1".encode()
    with smtplib.SMTP_SSL(sandbox["host"], sandbox["smtp_ssl_port"], context=context, timeout=30) as smtp:
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(sasl).decode())
        if code != 235:
            # The reply may echo a challenge, never the token: the code is enough.
            raise SystemExit(f"AUTH XOAUTH2 failed with {code}")
        for spec in messages:
            smtp.send_message(build_message(sender=sandbox["account"], spec=spec))
    return len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vars_file", type=Path, help="the harness's JSON vars file")
    args = parser.parse_args()
    bench_vars = json.loads(args.vars_file.read_text(encoding="utf-8"))
    sandbox = bench_vars["sandbox"]
    token = refresh_access_token(sandbox=sandbox)
    sent = send_all(sandbox=sandbox, messages=bench_vars["bench_messages"], access_token=token)
    print(f"sent {sent}")


if __name__ == "__main__":
    main()
