# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print a stored .eml as JSON: its headers of interest and its decoded text and HTML parts."""

from __future__ import annotations

import email
import json
import sys
from email import policy


def main() -> None:
    with open(sys.argv[1], "rb") as handle:
        msg = email.message_from_binary_file(handle, policy=policy.default)
    parts = {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}
    print(json.dumps({
        "subject": str(msg["Subject"]),
        "to": str(msg["To"]),
        "auto_submitted": str(msg["Auto-Submitted"]),
        "content_type": msg.get_content_type(),
        "text": parts.get("text/plain"),
        "html": parts.get("text/html"),
    }))


if __name__ == "__main__":
    main()
