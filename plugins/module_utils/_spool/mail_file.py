# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One mail's file in the spool (``_spool``): its format, and reading and writing it.

A mail file (format 2) has three parts, so that no change of state needs new disk space::

    bytes 0 .. 1023      the control block: a JSON object padded with spaces, then a newline; overwritten in place
                         {"spool": 2, "state": "pending"|"held", "attempts": 0, "next_attempt": <epoch s>,
                          "lease": ".lease-…"|null, "last_error": "code: msg"|null, "waits_for": "server"|"mail"|null,
                          "held_code": null|"delivery_unknown"|"refused"|"expired"|<error code>,
                          "held_reason": null|"…", "held_at": null|"2026-01-01T00:00:00Z"}
    1024 + 256 * i       one status record per envelope recipient i, padded likewise; overwritten in place
                         ["pending"|"delivered"|"refused", "<the server's reply>"]
    then                 the body, written once: one JSON line
                         {"account", "server", "sender", "recipients": [...], "message_id", "spooled_at" (ISO 8601
                          UTC), "spooled_ns", "reason", "data": "<base64 of the exact message bytes, CRLF>"}

A file that is not such a mail (another format, a short or corrupt file, another user's file, a FIFO or anything but
a regular file) is never read past ``fstat``, never deleted and never delivered: listings name it as unreadable.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import json
import os
import stat
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.message import Envelope

FORMAT_VERSION = 2
SUFFIX = ".mail"
CONTROL_SIZE = 1024
RECORD_SIZE = 256
OPEN_FLAGS = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
UNKNOWN_HINT = ("The server may have accepted it: check the recipients' mailboxes for this Message-ID, then release "
                "it (send once more) or discard it with the smail.xoauth2.spool module.")


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def fixed(value: t.Any, size: int) -> bytes:
    """``value`` as ASCII JSON padded with spaces to ``size`` bytes (the last a newline); long strings cut to fit."""
    while True:
        raw = json.dumps(value, separators=(",", ":")).encode("ascii")
        excess = len(raw) - (size - 1)
        if excess <= 0:
            return raw + b" " * (size - 1 - len(raw)) + b"\n"
        strings = [(len(item), key) for key, item in (value.items() if isinstance(value, dict) else enumerate(value))
                   if isinstance(item, str)]
        if not strings:
            raise ValueError("the record cannot be made to fit")
        length, key = max(strings)
        value = dict(value) if isinstance(value, dict) else list(value)
        # A character takes 1 to 12 bytes in ASCII JSON: cut by what surely goes, until it fits.
        value[key] = value[key][:max(0, length - 1 - max(1, excess // 12))] + "…"


@dataclasses.dataclass(frozen=True)
class Control:
    """The control block of a mail file: its state and schedule."""

    state: str = "pending"
    attempts: int = 0
    next_attempt: int = 0
    lease: str | None = None
    last_error: str | None = None
    #: What the last failed attempt waited for: ``server`` (the connection, TLS, the login: any send that reaches
    #: the server may try again) or ``mail`` (this mail or a mailbox of it: its own schedule).
    waits_for: str | None = None
    held_code: str | None = None
    held_reason: str | None = None
    held_at: str | None = None

    def encode(self) -> bytes:
        return fixed({"spool": FORMAT_VERSION, **dataclasses.asdict(self)}, CONTROL_SIZE)

    @classmethod
    def decode(cls, raw: bytes) -> Control:
        entry = json.loads(raw)
        if not isinstance(entry, dict) or entry.pop("spool", None) != FORMAT_VERSION:
            raise ValueError("not a spool file of this format")
        control = cls(**{field.name: entry.get(field.name, field.default) for field in dataclasses.fields(cls)})
        if control.state not in ("pending", "held") or not isinstance(control.attempts, int) \
                or not isinstance(control.next_attempt, int):
            raise ValueError("the control block is not valid")
        if not all(value is None or isinstance(value, str) for value in
                   (control.lease, control.last_error, control.waits_for, control.held_code, control.held_reason,
                    control.held_at)):
            raise ValueError("the control block is not valid")
        return control


@dataclasses.dataclass(frozen=True)
class SpooledMessage:
    """One mail in the spool, as read from (or just written to) its file."""

    path: str
    account: str
    server: str
    sender: str
    #: Every envelope recipient, in the order of the status records.
    envelope_recipients: tuple[str, ...]
    message_id: str | None
    #: The exact message bytes: long, and the mail's content, so kept out of the repr.
    data: bytes = dataclasses.field(repr=False)
    spooled_at: str
    spooled_ns: int
    reason: str
    control: Control = Control()
    #: One (state, reply) per envelope recipient.
    records: tuple[tuple[str, str], ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        """The recipients still to be served."""
        return tuple(address for address, (state, _reply) in zip(self.envelope_recipients, self.records)
                     if state == "pending")

    @property
    def delivered(self) -> tuple[str, ...]:
        return tuple(address for address, (state, _reply) in zip(self.envelope_recipients, self.records)
                     if state == "delivered")

    @property
    def refused(self) -> dict[str, str]:
        return {address: reply for address, (state, reply) in zip(self.envelope_recipients, self.records)
                if state == "refused"}

    @property
    def held(self) -> bool:
        return self.control.state == "held"

    @property
    def held_reason(self) -> str | None:
        """Why the mail is held, with what to check for a mail whose delivery became unknown."""
        reason = self.control.held_reason
        if reason is not None and self.control.held_code == "delivery_unknown":
            reason = f"{reason} {UNKNOWN_HINT}"
        return reason

    def is_for(self, account: str) -> bool:
        """Whether the mail is to be sent with the SMTP login ``account`` (compared case-insensitively)."""
        return self.account.casefold() == account.casefold()

    def envelope(self) -> Envelope:
        """The envelope of the recipients still to be served."""
        return Envelope(self.sender, self.recipients, self.data, self.message_id)

    def summary(self) -> dict[str, t.Any]:
        """Result fields describing the mail, without its content."""
        control = self.control
        result: dict[str, t.Any] = {
            "path": self.path, "account": self.account, "message_id": self.message_id,
            "recipients": list(self.recipients), "spooled_at": self.spooled_at, "reason": self.reason,
            "attempts": control.attempts,
            "next_attempt_at": iso(control.next_attempt) if control.next_attempt and not self.held else None,
        }
        if control.last_error:
            result["last_error"] = control.last_error
        if self.delivered:
            result["delivered"] = list(self.delivered)
        if self.refused:
            result["refused"] = self.refused
        if self.held:
            result.update(held_code=control.held_code, held_reason=self.held_reason, held_at=control.held_at)
        return result


def encode_body(*, account: str, server: str, envelope: Envelope, reason: str, now_ns: int) -> bytes:
    return json.dumps({
        "account": account, "server": server, "sender": envelope.sender, "recipients": list(envelope.recipients),
        "message_id": envelope.message_id, "spooled_at": iso(now_ns / 1e9), "spooled_ns": now_ns, "reason": reason,
        "data": base64.b64encode(envelope.data).decode("ascii"),
    }, separators=(",", ":")).encode("ascii") + b"\n"


def encode_record(state: str, reply: str = "") -> bytes:
    return fixed([state, reply], RECORD_SIZE)


def parse(path: str, raw: bytes) -> SpooledMessage:
    """The mail stored as ``raw`` at ``path``. Raises ValueError for anything but a mail file of this format."""
    control = Control.decode(raw[:CONTROL_SIZE])
    body_start = raw.find(b"\n{", CONTROL_SIZE - 1)
    count, rest = divmod(body_start + 1 - CONTROL_SIZE, RECORD_SIZE) if body_start > 0 else (0, 1)
    if rest:
        raise ValueError("the status records are cut short")
    entry = json.loads(raw[body_start + 1:])
    if not isinstance(entry, dict):
        raise ValueError("the body is not an object")
    for name in ("account", "server", "sender", "spooled_at", "reason", "data"):
        if not isinstance(entry.get(name), str):
            raise ValueError(f"{name} is missing")
    recipients = entry.get("recipients")
    if not isinstance(recipients, list) or not all(isinstance(item, str) for item in recipients) \
            or len(recipients) != count:
        raise ValueError("recipients do not match the status records")
    if not (entry.get("message_id") is None or isinstance(entry["message_id"], str)) \
            or not isinstance(entry.get("spooled_ns"), int):
        raise ValueError("a field has the wrong type")
    records = []
    for index in range(count):
        entry_record = json.loads(raw[CONTROL_SIZE + index * RECORD_SIZE:CONTROL_SIZE + (index + 1) * RECORD_SIZE])
        if not (isinstance(entry_record, list) and len(entry_record) == 2
                and entry_record[0] in ("pending", "delivered", "refused") and isinstance(entry_record[1], str)):
            raise ValueError("a status record is not valid")
        records.append((entry_record[0], entry_record[1]))
    return SpooledMessage(
        path=path, account=entry["account"], server=entry["server"], sender=entry["sender"],
        envelope_recipients=tuple(recipients), message_id=entry.get("message_id"),
        data=base64.b64decode(entry["data"], validate=True),  # binascii.Error is a ValueError
        spooled_at=entry["spooled_at"], spooled_ns=entry["spooled_ns"], reason=entry["reason"],
        control=control, records=tuple(records))


def open_regular(path: str, flags: int) -> int:
    """A descriptor of the regular file ``path`` of this user. A symlink, FIFO, device, directory or another user's
    file raises ValueError (without blocking: O_NONBLOCK, O_NOFOLLOW); a missing one FileNotFoundError."""
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
            raise ValueError(f"not a regular file ({exc.strerror})") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_uid != os.geteuid():
            raise ValueError("the file belongs to another user")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, path: str) -> SpooledMessage:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return parse(path, b"".join(chunks))


def pwrite_durably(fd: int, data: bytes, offset: int) -> None:
    written = os.pwrite(fd, data, offset)
    if written != len(data):
        raise OSError(errno.EIO, "short write in place")
    os.fsync(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
