# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""parity_view: a task result without what differs between two runs of the same task (loop keys, Message-IDs, times)."""

from __future__ import annotations

import re

#: Keys a loop adds to each item's result, and values that depend on the time of the run.
IGNORED = {"in_process", "ansible_loop_var", "_ansible_item_label", "_ansible_ignore_errors", "_ansible_no_log",
           "item", "expires_in", "spooled_at", "next_attempt_at"}


def _message_ids(value, found):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "message_id" and isinstance(item, str):
                found.add(item)
            _message_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _message_ids(item, found)
    return found


#: The name of a spooled mail's file: its time and a random part.
SPOOL_FILE = re.compile(r"\d{12,}-[0-9a-f]{8,}\.mail")
#: How a transcript ends: with QUIT in a module process, with the session kept open for the next mail in the worker.
ENDINGS = (["C: quit", "S: N Bye"], ["-- the session stays open for the next send of this process"])


def parity_view(result, replacements=None):
    """``result`` with loop keys and expires_in dropped, its Message-IDs, spool file names, ``replacements`` (old: new) and the numbers
    in a transcript (stored names, byte counts, ports) made neutral, and the end of a transcript (QUIT, or the
    session kept open) as one line."""
    ids = sorted(_message_ids(result, set()), key=len, reverse=True)
    pairs = [(str(old), str(new)) for old, new in (replacements or {}).items()]

    def neutral(value, key=None):
        if isinstance(value, dict):
            return {name: neutral(item, name) for name, item in value.items() if name not in IGNORED}
        if isinstance(value, list):
            return [neutral(item, key) for item in value]
        if isinstance(value, str):
            for message_id in ids:
                value = value.replace(message_id, "<message-id>")
            for old, new in pairs:
                value = value.replace(old, new)
            value = SPOOL_FILE.sub("<spooled file>.mail", value)
            if key == "transcript":
                value = re.sub(r"\d+", "N", value)
        return value

    def ending(value):
        if isinstance(value, dict):
            return {name: (_one_ending(item) if name == "transcript" else ending(item)) for name, item in value.items()}
        if isinstance(value, list):
            return [ending(item) for item in value]
        return value

    return ending(neutral(result))


def _one_ending(lines):
    for end in ENDINGS:
        if lines[-len(end):] == end:
            return lines[:-len(end)] + ["<end of the session>"]
    return lines


class FilterModule:
    def filters(self):
        return {"parity_view": parity_view}
