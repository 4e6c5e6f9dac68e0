# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print, as JSON, how many stored messages carry each subject that contains a tag.

Usage: count_subjects.py MAIL_DIR TAG. Reads every .eml of the sandbox's mail directory with the email package, so
that folded or encoded Subject headers count as they read.
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
    counts: collections.Counter[str] = collections.Counter()
    for path in mail_dir.glob("*.eml"):
        subject = str(email.message_from_bytes(path.read_bytes(), policy=email.policy.default)["Subject"] or "")
        if tag in subject:
            counts[subject] += 1
    print(json.dumps(counts, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
