# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print, as JSON, what the sandbox stored of the mails whose Subject contains a tag.

Usage: copies.py MAIL_DIR TAG. Prints ``{"copies": N, "message_ids": M, "recipients": {address: copies}}``: N stored
copies, M distinct Message-IDs among them, and how many copies each envelope recipient got (from the sidecars).
"""

from __future__ import annotations

import collections
import email
import email.policy
import json
import pathlib
import sys


def main() -> int:
    mail_dir, tag = pathlib.Path(sys.argv[1]), sys.argv[2]
    copies = 0
    message_ids: set[str] = set()
    recipients: collections.Counter[str] = collections.Counter()
    for path in mail_dir.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if tag not in str(message["Subject"] or ""):
            continue
        copies += 1
        message_ids.add(str(message["Message-ID"]))
        recipients.update(json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["rcpt_tos"])
    print(json.dumps({"copies": copies, "message_ids": len(message_ids), "recipients": dict(sorted(recipients.items()))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
