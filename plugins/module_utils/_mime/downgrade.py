# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The 7bit form of a message for a server without 8BITMIME (RFC 6152): 8bit and binary parts re-encoded as
quoted-printable or base64, 8bit headers as RFC 2047 encoded words.

Messages use policy ``email.policy.SMTP`` (never compat32). This file is private to the collection and has no
Ansible imports.
"""

from __future__ import annotations

import base64
import binascii
import email
import re
import typing as t
from email import policy
from email.message import Message

_SAFE_ENCODINGS = ("7bit", "quoted-printable", "base64")
_BARE_CR = re.compile(rb"\r(?!\n)")
# Keeps unchanged headers as they were parsed: only the values this module rewrites are folded anew.
_AS_PARSED = policy.SMTP.clone(refold_source="none")

HeaderValue = t.Any  # a str as parsed or set with set_raw, or a header object from the registry


def has_8bit(data: bytes) -> bool:
    """True when the wire form contains any byte > 127 (then it needs 8BITMIME, or a 7bit downgrade)."""
    return not data.isascii()


def downgrade_to_7bit(data: bytes) -> bytes:
    """The same message with every 8bit (or binary) leaf part re-encoded as quoted-printable (text) or
    base64 (anything else), every header and the MIME structure kept, Message-ID and Date unchanged;
    CRLF line ends; the result has no byte > 127. A message that is already 7bit comes back
    byte-identical. Headers that contain raw 8bit (RFC 6532 UTF-8 headers) are encoded as RFC 2047
    encoded words. Raise ValueError for a non-ASCII address (it needs SMTPUTF8)."""
    if not has_8bit(data):
        return data
    msg = email.message_from_bytes(data, policy=_AS_PARSED)
    for part in msg.walk():
        rewrite_headers(part, transform=_encoded_8bit_header)
        if part.is_multipart():
            _downgrade_container(part)
        elif _needs_reencoding(part):
            _reencode_leaf(part)
    wire = msg.as_bytes(policy=_AS_PARSED)
    if has_8bit(wire):
        raise ValueError("the message still has 8bit data after the 7bit downgrade")
    return wire


def rewrite_headers(msg: Message, *, transform: t.Callable[[str, HeaderValue], HeaderValue | None]) -> None:
    """Replace each header value for which ``transform`` returns a new one, keeping every header's place."""
    headers = list(msg.raw_items())
    replaced = [(name, transform(name, value)) for name, value in headers]
    if all(new is None for _name, new in replaced):
        return
    for name in {name for name, _value in headers}:
        del msg[name]
    for (name, old), (_name, new) in zip(headers, replaced):
        msg.set_raw(name, old if new is None else new)


def _encoded_8bit_header(name: str, value: HeaderValue) -> HeaderValue | None:
    """A header object (folded with encoded words on output) for a value parsed with raw 8bit bytes."""
    if not isinstance(value, str) or value.isascii():
        return None
    # RFC 6532 headers are UTF-8; anything else cannot be told apart, so it shows as U+FFFD.
    text = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    header = policy.SMTP.header_store_parse(name, "".join(text.splitlines()))[1]
    for address in getattr(header, "addresses", ()):
        if not address.addr_spec.isascii():
            raise ValueError(f"{name}: the address {address.addr_spec!r} needs SMTPUTF8, it has no 7bit form")
    return header


def _downgrade_container(part: Message) -> None:
    # A multipart or message/* whose children are now 7bit is itself 7bit (RFC 2045 6.4).
    if part.get("Content-Transfer-Encoding", "7bit").strip().lower() not in _SAFE_ENCODINGS:
        part.replace_header("Content-Transfer-Encoding", "7bit")
    for attribute in ("preamble", "epilogue"):
        text = getattr(part, attribute)
        if text is not None and not text.isascii():
            setattr(part, attribute, text.encode("ascii", "replace").decode("ascii"))


def _needs_reencoding(part: Message) -> bool:
    encoding = part.get("Content-Transfer-Encoding", "7bit").strip().lower()
    payload = part.get_payload()
    return encoding not in _SAFE_ENCODINGS or (isinstance(payload, str) and not payload.isascii())


def _reencode_leaf(part: Message) -> None:
    """Re-encode one leaf part's body: quoted-printable for text, base64 for anything else."""
    body = t.cast(bytes, part.get_payload(decode=True) or b"")
    # A bare CR would come back as a line break from quoted-printable; base64 keeps it.
    if part.get_content_maintype() == "text" and not _BARE_CR.search(body):
        encoding, encoded = "quoted-printable", binascii.b2a_qp(body, istext=True).decode("ascii")
    else:
        encoding, encoded = "base64", base64.encodebytes(body).decode("ascii")
    part.set_payload(encoded)
    if "Content-Transfer-Encoding" in part:
        part.replace_header("Content-Transfer-Encoding", encoding)
    else:
        part["Content-Transfer-Encoding"] = encoding
