# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The message the _mime tests start from, and its wire form."""

from __future__ import annotations

import email
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage

DATE = "Wed, 02 Dec 2026 02:32:23 +0000"
MESSAGE_ID = "<1234.5678@example.com>"


def new_message(subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address("Sender", addr_spec="sender@example.com")
    msg["To"] = Address(addr_spec="rcpt@example.com")
    msg["Subject"] = subject
    msg["Date"] = DATE
    msg["Message-ID"] = MESSAGE_ID
    return msg


def wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=policy.SMTP)


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]
