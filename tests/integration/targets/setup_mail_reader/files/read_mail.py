# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print stored .eml files as a JSON list: headers of interest, the decoded text and HTML parts, and every part's
type, Content-ID, disposition and file name in the order of the MIME tree."""

from __future__ import annotations

import email
import hashlib
import json
import sys
from email import policy


def read_mail(path: str) -> dict:
    with open(path, "rb") as handle:
        msg = email.message_from_binary_file(handle, policy=policy.default)
    parts = {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}
    return {
        "subject": str(msg["Subject"]),
        "from": str(msg["From"]),
        "to": str(msg["To"]),
        "auto_submitted": str(msg["Auto-Submitted"]),
        "content_type": msg.get_content_type(),
        "text": parts.get("text/plain"),
        "html": parts.get("text/html"),
        "parts": [{
            "content_type": part.get_content_type(),
            "type_param": part.get_param("type"),
            "content_id": part["Content-ID"] and str(part["Content-ID"]),
            "disposition": part.get_content_disposition(),
            "filename": part.get_filename(),
            "sha256": None if part.is_multipart() else hashlib.sha256(part.get_payload(decode=True) or b"").hexdigest(),
        } for part in msg.walk()],
    }


if __name__ == "__main__":
    print(json.dumps([read_mail(path) for path in sys.argv[1:]]))
