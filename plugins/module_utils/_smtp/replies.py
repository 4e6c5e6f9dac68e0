# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What an SMTP reply means, and the error of a failed step: :class:`SMTPError` names its step and says whether
the message may have been delivered.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError


class SMTPError(SmailError):
    """A failed send, attributed to its step.

    ``may_have_been_delivered`` is True only when the connection was lost after the final dot of
    DATA: the server may have queued the message, so a blind retry could send it twice.
    """

    def __init__(self, code: str, msg: str, *, stage: str, hint: str | None = None,
                 may_have_been_delivered: bool = False, details: dict[str, t.Any] | None = None,
                 transient: bool | None = None) -> None:
        merged = {"stage": stage, "may_have_been_delivered": may_have_been_delivered}
        merged.update(details or {})
        super().__init__(code, msg, hint=hint, details=merged)
        self.stage = stage
        self.may_have_been_delivered = may_have_been_delivered
        smtp_code = merged.get("smtp_code")
        self.transient = _is_transient(code, smtp_code if isinstance(smtp_code, int) else None) if transient is None else transient

    @property
    def smtp_code(self) -> int | None:
        """The server's reply code, when the failure was a reply."""
        return self.details.get("smtp_code")


def _is_transient(code: str, smtp_code: int | None) -> bool:
    """Whether trying again later may succeed: a 4xx reply, or a network failure before any reply (RFC 5321 4.2.1)."""
    if code == "delivery_unknown":
        return False  # the message may have been accepted: trying again could deliver it twice
    if smtp_code is not None:
        return 400 <= smtp_code < 500
    return code in ("smtp_connect", "smtp_timeout", "smtp_tls")


def reply_text(message: bytes | str) -> str:
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


_ENHANCED_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")


def enhanced_status(code: int, text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 status code (``5.7.8``) that starts a reply's text, as numbers; None when there is none.

    One whose class disagrees with the reply code (``550 4.7.1``) is broken (RFC 2034 section 4 requires them to
    agree) and ignored: the reply code decides what is transient.
    """
    match = _ENHANCED_STATUS.match(text)
    if match is None or int(match[1]) != code // 100:
        return None
    return int(match[1]), int(match[2]), int(match[3])


def too_many_recipients(code: int, text: str) -> bool:
    """Whether a reply to RCPT says this transaction holds all the recipients it takes (RFC 5321 4.5.3.1.10).

    452 is that reply, and 552 is to be treated like it (RFC 821 gave that code); an enhanced status code other than
    X.5.3 names another reason (X.2.2 mailbox full, X.3.1 system full) and leaves the reply to its own class.
    """
    if code not in (452, 552):
        return False
    status = enhanced_status(code, text)
    return status is None or status[1:] == (5, 3)
