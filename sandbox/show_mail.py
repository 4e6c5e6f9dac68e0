# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print the newest messages the XOAUTH2 sandbox received.

``python sandbox/show_mail.py --state-dir DIR [--last N]`` shows, for each of the newest N stored
messages (oldest of them first): the ``.eml`` path, the envelope from the ``.json`` sidecar, the
From/To/Subject/Date/Message-ID headers, the decoded text/plain body and the names of other parts.
"""

from __future__ import annotations

import argparse
import email
import email.message
import email.policy
import json
import sys
import typing as t
from pathlib import Path

MAIL_DIR = "mail"
SHOWN_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID")


def newest_messages(mail_dir: Path, count: int) -> list[Path]:
    """The ``count`` newest ``.eml`` files of ``mail_dir``, oldest first (names sort by receipt)."""
    return sorted(mail_dir.glob("*.eml"))[-count:] if count > 0 else []


def describe_part(part: email.message.EmailMessage) -> str:
    """A one-line name of a MIME part: filename (if any), content type and size."""
    payload = part.get_payload(decode=True)
    size = f", {len(payload)} bytes" if isinstance(payload, bytes) else ""
    filename = part.get_filename()
    return f"{filename} ({part.get_content_type()}{size})" if filename else f"{part.get_content_type()}{size}"


def render_message(eml_path: Path) -> str:
    """A readable summary of one stored message and its sidecar."""
    message = t.cast(email.message.EmailMessage, email.message_from_bytes(eml_path.read_bytes(), policy=email.policy.default))
    lines = [f"== {eml_path}"]
    sidecar = eml_path.with_suffix(".json")
    if sidecar.exists():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        auth = f"{meta.get('auth_mechanism')} as {meta.get('account')}" if meta.get("auth_mechanism") else "none"
        lines.append(f"Envelope:   port={meta.get('port')} from=<{meta.get('mail_from')}> to={meta.get('rcpt_tos')} auth={auth}")
    for name in SHOWN_HEADERS:
        value = message.get(name)
        if value is not None or name != "Cc":
            lines.append(f"{name + ':':<11} {value if value is not None else '(none)'}")

    text_part = message.get_body(preferencelist=("plain",))
    other_parts = [part for part in message.walk() if not part.is_multipart() and part is not text_part]
    if text_part is not None:
        try:
            body = text_part.get_content()
        except (LookupError, UnicodeError) as error:  # unknown or wrong charset
            body = f"(text/plain part not decodable: {error})"
        lines.append("--- text/plain")
        lines.append(body.rstrip("\n"))
    else:
        lines.append("--- no text/plain part")
    if other_parts:
        lines.append("--- other parts: " + "; ".join(describe_part(t.cast(email.message.EmailMessage, part)) for part in other_parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show the newest messages stored by the XOAUTH2 sandbox.")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--last", type=int, default=1, metavar="N", help="how many of the newest messages to show (default 1)")
    args = parser.parse_args(argv)

    mail_dir = args.state_dir / MAIL_DIR
    messages = newest_messages(mail_dir, args.last)
    if not messages:
        print(f"no messages in {mail_dir}", file=sys.stderr)
        return 1
    print("\n\n".join(render_message(path) for path in messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
