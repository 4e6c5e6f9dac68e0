# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mail spool: messages that could not be delivered, kept to be sent by a later run for the same account.

On disk (this is the one description of the format)::

    <spool directory>/                        mode 0700, owned by the user who sends; refused otherwise
        <time_ns:020d>-<16 hex>.json          a pending message, mode 0600; names sort oldest first
        <time_ns:020d>-<16 hex>.held.json     a message set aside: never retried automatically
        .<name>.<random>.tmp                  a write in progress (see _private_file); ignored

Each message file is one UTF-8 (in fact ASCII) JSON object, written atomically::

    {
      "format": 1,
      "account": "user@example.com",          the SMTP login it is for; matched case-insensitively
      "server": "smtp.gmail.com:465",         where it was meant to go (informational)
      "sender": "user@example.com",           envelope sender
      "recipients": ["a@example.com"],        envelope recipients still to be served (Bcc included)
      "delivered": ["b@example.com"],         optional: recipients the server accepted it for (never sent again)
      "refused": {"c@example.com": "550 …"},  optional: recipients refused for good, with the server's reply
      "message_id": "<...@example.com>",      or null
      "spooled_at": "2026-01-01T00:00:00Z",   ISO 8601 UTC
      "reason": "smtp_connect: ...",          why it was spooled: an error code and message, never a secret
      "data": "<base64>",                     the exact message bytes (CRLF), original Message-ID and Date inside
      "held_reason": "...",                   held files only: why it was set aside
      "held_at": "2026-01-01T00:05:00Z"       held files only
    }

A file that is not such an object (another format version, bad base64, a missing field, another user's file) is
never deleted and never delivered: listings skip it and :meth:`Spool.unreadable` names it. Delivery takes an
exclusive ``flock`` on each open message file (:meth:`Spool.claim`, a bounded window of files at a time), so
concurrent runs never send one twice.

After each recipient's final answer the file is brought up to date before the next SMTP command, as a queue manager
does (:meth:`Claim.record`): a recipient who has the message moves from ``recipients`` to ``delivered`` (the file is
replaced atomically, the lock handed over to the new file), a message every recipient has is removed, and one with a
recipient refused for good, or whose delivery became unknown, is held. So a crash, a kill or a full disk can at most
resend the one transaction that was on the wire, never mail an earlier transaction delivered.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import json
import os
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import (
    InsecurePathError,
    check_private_directory,
    ensure_own_private_directory,
    remove_private_file,
    write_locked_private_file,
    write_private_file,
)

if t.TYPE_CHECKING:
    from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import Envelope, Outcome, SMTPEndpoint

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 1
MESSAGE_SUFFIX = ".json"
HELD_SUFFIX = ".held.json"
#: How many message files a delivery holds open (locked) at a time: a spool of any size drains under a small
#: open-file limit, and only this many messages are in memory.
CLAIM_WINDOW = 32
#: Failures of these steps concern the server or the account, not the message: the mail stays pending.
_SESSION_STAGES = frozenset(("connect", "tls", "ehlo", "auth"))
_UNKNOWN_HINT = ("The server may have accepted it: check the recipients' mailboxes for this Message-ID, then release "
                 "it (send once more) or discard it with the smail.xoauth2.spool module.")

_REQUIRED_STRINGS = ("account", "server", "sender", "spooled_at", "reason", "data")
_OPTIONAL_STRINGS = ("message_id", "held_reason", "held_at")
_WRITE_HINT = "The user running the task needs a spool directory of its own that it can write to (and free space in it)."


def default_spool_dir() -> str:
    """The spool directory used when none is given: ``~/.ansible/smail_xoauth2/spool``."""
    return os.path.join(os.path.expanduser("~"), ".ansible", "smail_xoauth2", "spool")


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclasses.dataclass(frozen=True)
class SpooledMessage:
    """One message in the spool, as read from (or just written to) its file."""

    path: str
    account: str
    server: str
    sender: str
    recipients: tuple[str, ...]
    message_id: str | None
    #: The exact message bytes: long, and the mail's content, so kept out of the repr.
    data: bytes = dataclasses.field(repr=False)
    spooled_at: str
    reason: str
    #: Set on a message :meth:`Spool.set_aside` put aside.
    held_reason: str | None = None
    held_at: str | None = None
    #: Recipients the server accepted it for, and those it refused for good (address: reply).
    delivered: tuple[str, ...] = ()
    refused: t.Mapping[str, str] = dataclasses.field(default_factory=dict)

    def is_for(self, account: str) -> bool:
        """Whether the message is to be sent with the SMTP login ``account`` (compared case-insensitively)."""
        return self.account.casefold() == account.casefold()

    def summary(self) -> dict[str, t.Any]:
        """Result fields describing the message, without its content."""
        result: dict[str, t.Any] = {"path": self.path, "message_id": self.message_id, "recipients": list(self.recipients),
                                    "spooled_at": self.spooled_at, "reason": self.reason}
        if self.delivered:
            result["delivered"] = list(self.delivered)
        if self.refused:
            result["refused"] = dict(self.refused)
        if self.held_reason is not None:
            result.update(held_reason=self.held_reason, held_at=self.held_at)
        return result


def _serialise(message: SpooledMessage) -> bytes:
    entry: dict[str, t.Any] = {
        "format": FORMAT_VERSION,
        "account": message.account,
        "server": message.server,
        "sender": message.sender,
        "recipients": list(message.recipients),
        "message_id": message.message_id,
        "spooled_at": message.spooled_at,
        "reason": message.reason,
        "data": base64.b64encode(message.data).decode("ascii"),
    }
    if message.delivered:
        entry["delivered"] = list(message.delivered)
    if message.refused:
        entry["refused"] = dict(message.refused)
    if message.held_reason is not None:
        entry.update(held_reason=message.held_reason, held_at=message.held_at)
    return json.dumps(entry, indent=1).encode("utf-8")


def _parse(path: str, raw: bytes) -> SpooledMessage:
    """The message stored as ``raw`` at ``path``. Raises ValueError for anything but an entry of this format."""
    entry = json.loads(raw)
    if not isinstance(entry, dict) or entry.get("format") != FORMAT_VERSION:
        raise ValueError("not a spool entry of this format")
    if not all(isinstance(entry.get(name), str) for name in _REQUIRED_STRINGS):
        raise ValueError("a required field is missing")
    if not all(entry.get(name) is None or isinstance(entry[name], str) for name in _OPTIONAL_STRINGS):
        raise ValueError("an optional field is not a string")
    recipients = entry.get("recipients")
    if not isinstance(recipients, list) or not all(isinstance(item, str) for item in recipients):
        raise ValueError("recipients is not a list of addresses")
    delivered = entry.get("delivered", [])
    if not isinstance(delivered, list) or not all(isinstance(item, str) for item in delivered):
        raise ValueError("delivered is not a list of addresses")
    refused = entry.get("refused", {})
    if not isinstance(refused, dict) or not all(isinstance(item, str) for item in refused.values()):
        raise ValueError("refused is not a mapping of addresses to replies")
    return SpooledMessage(
        path=path, account=entry["account"], server=entry["server"], sender=entry["sender"],
        recipients=tuple(recipients), message_id=entry.get("message_id"),
        data=base64.b64decode(entry["data"], validate=True),  # binascii.Error is a ValueError
        spooled_at=entry["spooled_at"], reason=entry["reason"],
        held_reason=entry.get("held_reason"), held_at=entry.get("held_at"),
        delivered=tuple(delivered), refused=dict(refused),
    )


def _load(handle: t.BinaryIO, path: str) -> SpooledMessage:
    """The message in the open file ``handle``. Raises ValueError when it is unusable, OSError when unreadable."""
    # Only this user (or root) can write to a private spool; an older, looser directory may hold planted files.
    if os.fstat(handle.fileno()).st_uid != os.geteuid():
        raise ValueError("the file belongs to another user")
    return _parse(path, handle.read())


def _is_held(name: str) -> bool:
    return name.endswith(HELD_SUFFIX)


def _is_pending(name: str) -> bool:
    return name.endswith(MESSAGE_SUFFIX) and not _is_held(name)


class Spool:
    """Undelivered messages in a private directory, one file each (format in the module docstring)."""

    def __init__(self, directory: str) -> None:
        if "\0" in directory:
            raise OptionError("spool_dir", "contains a NUL character, which no path can hold")
        self.directory = directory

    def __repr__(self) -> str:
        return f"Spool({self.directory!r})"

    # --- the directory ---------------------------------------------------------------------------

    def _secure(self, *, create: bool) -> bool:
        """Whether the directory exists (created when ``create``), made private first.

        The token cache's rule (:func:`check_private_directory`): the directory must be this user's, writable by
        nobody else, and not reached through another user's symlink. Raises SmailError ``spool_insecure`` otherwise:
        its messages would go out with this user's credentials, and a private mode or a message written there would
        land in a directory someone else chose.
        """
        try:
            if not create:
                try:
                    check_private_directory(self.directory)
                except FileNotFoundError:
                    return False
            ensure_own_private_directory(self.directory)
        except InsecurePathError as exc:
            raise SmailError("spool_insecure", f"The mail spool {exc.path} {exc.reason}.",
                             hint="Spooled mail is sent with the credentials of the user running the task, so the spool "
                                  "must be that user's own, writable by nobody else and not another user's symlink: use "
                                  "another spool directory, or remove, chown or chmod this one.",
                             details={"option": "spool_dir"}) from None
        except OSError as exc:
            raise SmailError("spool_write" if create else "spool_read",
                             f"Cannot {'create' if create else 'reach'} the mail spool {self.directory}: {exc.strerror}.",
                             hint=_WRITE_HINT) from None
        return True

    def _names(self, wanted: t.Callable[[str], bool]) -> list[str]:
        """The file names ``wanted`` accepts, oldest first; temp files never."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SmailError("spool_read", f"Cannot list the mail spool {self.directory}: {exc.strerror}.") from None
        return sorted(name for name in names if not name.startswith(".") and wanted(name))

    def _scan(self, wanted: t.Callable[[str], bool]) -> tuple[list[SpooledMessage], list[str]]:
        """The readable messages among the names ``wanted`` accepts, and the paths of the unreadable ones."""
        if not self._secure(create=False):
            return [], []
        messages: list[SpooledMessage] = []
        unreadable: list[str] = []
        for name in self._names(wanted):
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as handle:
                    messages.append(_load(handle, path))
            except FileNotFoundError:
                continue  # delivered or set aside meanwhile
            except (OSError, ValueError):
                unreadable.append(path)
        return messages, unreadable

    # --- listings --------------------------------------------------------------------------------

    def pending(self, account: str | None = None) -> list[SpooledMessage]:
        """The messages waiting to be sent (for ``account`` when given), oldest first, without locking them."""
        messages = self._scan(_is_pending)[0]
        return [message for message in messages if account is None or message.is_for(account)]

    def held(self) -> list[SpooledMessage]:
        """The messages set aside, oldest first."""
        return self._scan(_is_held)[0]

    def unreadable(self) -> list[str]:
        """The paths of spool files that are no usable message (corrupt, unreadable, another user's); left in place."""
        return self._scan(_is_pending)[1] + self._scan(_is_held)[1]

    # --- changes ---------------------------------------------------------------------------------

    def add(self, *, account: str, server: str, sender: str, recipients: t.Sequence[str], message_id: str | None,
            data: bytes, reason: str, delivered: t.Sequence[str] = (), refused: t.Mapping[str, str] | None = None,
            held_reason: str | None = None) -> SpooledMessage:
        """Keep a message for a later delivery (or, with ``held_reason``, held): one new 0600 file, written atomically.

        Raises SmailError ``spool_write`` (naming the directory) when it cannot be written, ``spool_insecure``
        when the directory belongs to another user.
        """
        self._secure(create=True)
        suffix = MESSAGE_SUFFIX if held_reason is None else HELD_SUFFIX
        name = f"{time.time_ns():020d}-{os.urandom(8).hex()}{suffix}"
        now = _utc_now()
        message = SpooledMessage(path=os.path.join(self.directory, name), account=account, server=server, sender=sender,
                                 recipients=tuple(recipients), message_id=message_id, data=bytes(data),
                                 spooled_at=now, reason=reason, held_reason=held_reason,
                                 held_at=None if held_reason is None else now, delivered=tuple(delivered),
                                 refused=dict(refused or {}))
        try:
            write_private_file(message.path, _serialise(message))
        except OSError as exc:
            raise SmailError("spool_write", f"Cannot write to the mail spool {self.directory}: {exc.strerror}.",
                             hint=_WRITE_HINT) from None
        return message

    def remove(self, message: SpooledMessage) -> None:
        """Forget a message the server accepted; one already gone is fine. Raises SmailError ``spool_write``."""
        try:
            remove_private_file(message.path)
        except OSError as exc:
            raise SmailError("spool_write", f"Cannot remove {message.path} from the mail spool: {exc.strerror}.",
                             hint="The message was delivered: remove the file, or it is sent again.") from None

    def set_aside(self, message: SpooledMessage, reason: str) -> SpooledMessage:
        """Hold a message that must not be retried automatically (delivery unknown, refused for good).

        The file is renamed to its held name, then rewritten with ``reason``; returns the held message. Raises
        SmailError ``spool_write``.
        """
        held_path = message.path if _is_held(message.path) else message.path[:-len(MESSAGE_SUFFIX)] + HELD_SUFFIX
        held = dataclasses.replace(message, path=held_path, held_reason=reason, held_at=_utc_now())
        try:
            # The rename comes first: once it is done no claim picks the message up, even if the rewrite fails.
            if held_path != message.path:
                os.rename(message.path, held_path)
            write_private_file(held_path, _serialise(held))
        except OSError as exc:
            raise SmailError("spool_write", f"Cannot set {message.path} aside in the mail spool: {exc.strerror}.",
                             hint=_WRITE_HINT) from None
        return held

    def held_by_id(self, message_ids: t.Sequence[str], *, option: str) -> list[SpooledMessage]:
        """The held messages with these Message-IDs (angle brackets optional), every one of them held.

        Raises OptionError naming ``option`` for a Message-ID no held message has: nothing is changed then.
        """
        held: dict[str, list[SpooledMessage]] = {}
        for message in self.held():
            held.setdefault(_bare_id(message.message_id), []).append(message)
        unknown = [message_id for message_id in message_ids if _bare_id(message_id) not in held]
        if unknown:
            raise OptionError(option, f"no held mail in {self.directory} has the Message-ID " + ", ".join(unknown))
        return [message for message_id in dict.fromkeys(map(_bare_id, message_ids)) for message in held[message_id]]

    def release(self, message: SpooledMessage, *, check_only: bool = False) -> SpooledMessage:
        """Queue a held message again for its recipients still to be served; returns the pending message.

        Raises OptionError (``release``) for a message with no such recipient left, SmailError ``spool_write``.
        ``check_only`` checks without writing.
        """
        if not message.recipients:
            raise OptionError("release", f"the held mail {message.message_id} has no recipient left to send to "
                              f"(delivered: {', '.join(message.delivered) or 'nobody'}; refused: "
                              f"{', '.join(message.refused) or 'nobody'}); discard it instead")
        pending = dataclasses.replace(message, path=message.path[:-len(HELD_SUFFIX)] + MESSAGE_SUFFIX,
                                      held_reason=None, held_at=None)
        if check_only:
            return pending
        try:
            write_private_file(pending.path, _serialise(pending))
            remove_private_file(message.path)
        except OSError as exc:
            raise SmailError("spool_write", f"Cannot release {message.path} in the mail spool: {exc.strerror}.",
                             hint=_WRITE_HINT) from None
        return pending

    # --- delivery --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def claim(self, account: str, *, skip: t.AbstractSet[str] = frozenset(),
              limit: int = CLAIM_WINDOW) -> t.Iterator[Claim]:
        """At most ``limit`` pending messages of ``account``, oldest first, each locked against other processes until exit.

        Paths in ``skip`` are not looked at. A message another process holds, one removed or set aside meanwhile, an
        unreadable file (see :meth:`unreadable`) and another account's message are left out and named in
        :attr:`Claim.passed`. Deliver inside the block, with :meth:`Claim.record` after each transaction.
        """
        if fcntl is None:  # pragma: no cover - not on POSIX
            raise SmailError("spool_lock", "The mail spool needs file locks (fcntl), which this system lacks.")
        claim = Claim(self)
        try:
            if self._secure(create=False):
                for name in self._names(_is_pending):
                    if len(claim.messages) >= limit:
                        break
                    path = os.path.join(self.directory, name)
                    if path not in skip:
                        try:
                            claim.take(path, account)
                        except _WindowFull:
                            break
            yield claim
        finally:
            claim.release_all()

    def keep_unsent(self, envelope: Envelope, outcome: Outcome, *, account: str, endpoint: SMTPEndpoint,
                    error: SmailError) -> tuple[dict[str, t.Any], str]:
        """Spool ``envelope`` for its pending recipients because of ``error``; returns the result fields and the warning."""
        spooled = self.add(account=account, server=f"{endpoint.host}:{endpoint.port}", sender=envelope.sender,
                           recipients=tuple(outcome.pending), message_id=envelope.message_id, data=envelope.data,
                           reason=f"{error.code}: {error.msg}", delivered=outcome.accepted, refused=outcome.refused)
        warning = (f"The mail {envelope.message_id} could not be sent now ({error.code}: {error.msg}) and was spooled to "
                   f"{spooled.path}; the next send with the same spool_dir and account delivers it.")
        return {"spooled": True, "spool_path": spooled.path}, warning

    def hold_unknown(self, envelope: Envelope, outcome: Outcome, *, account: str, endpoint: SMTPEndpoint,
                     error: SmailError) -> tuple[dict[str, t.Any], str]:
        """Keep, held, a mail whose delivery became unknown: never resent by itself, but not lost either."""
        held = self.add(account=account, server=f"{endpoint.host}:{endpoint.port}", sender=envelope.sender,
                        recipients=tuple(outcome.pending), message_id=envelope.message_id, data=envelope.data,
                        reason=f"{error.code}: {error.msg}", delivered=outcome.accepted, refused=outcome.refused,
                        held_reason=f"{error.code}: {error.msg} {_UNKNOWN_HINT}")
        warning = (f"The delivery of {envelope.message_id} became unknown ({error.code}); it is kept, held, at "
                   f"{held.path}. {_UNKNOWN_HINT}")
        return {"held": True, "spool_path": held.path}, warning


class _WindowFull(Exception):
    """No more files can be opened now: the claim holds what it has."""


def _bare_id(message_id: str | None) -> str:
    return (message_id or "").strip().strip("<>").casefold()


class Claim:
    """Messages of one account that this process holds locked, and their state as the delivery goes on."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        #: The messages locked, as they were read.
        self.messages: list[SpooledMessage] = []
        #: Paths looked at but not taken (locked elsewhere, gone, unreadable, another account's).
        self.passed: list[str] = []
        self._fds: dict[str, int] = {}
        self._current: dict[str, SpooledMessage] = {}

    def take(self, path: str, account: str) -> None:
        """Lock and read the message at ``path`` if it is ``account``'s and nobody else holds it."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE) and self.messages:
                raise _WindowFull() from None  # the process's open-file limit ends this window; a later one takes it
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise SmailError("spool_read", f"Cannot open {path} in the mail spool: {exc.strerror}.",
                                 hint="Raise the open-file limit (ulimit -n) of the process that sends.") from None
            self.passed.append(path)  # gone meanwhile, or unreadable (reported by unreadable())
            return
        try:
            message = _locked_message(fd, path, account)
        except BaseException:
            os.close(fd)
            raise
        if message is None:
            os.close(fd)
            self.passed.append(path)
            return
        self._fds[path] = fd
        self._current[path] = message
        self.messages.append(message)

    def record(self, message: SpooledMessage, outcome: Outcome) -> str:
        """Bring the file of ``message`` up to date with ``outcome`` (the whole delivery so far); returns its state.

        ``delivered`` (every recipient has it: the file is removed), ``refused`` (no recipient left, one refused for
        good: held), ``held`` (a final failure of the message, or its delivery became unknown), or ``pending``
        (recipients left to try: the file names only them). Idempotent. Raises SmailError ``spool_write``.
        """
        current = self._current[message.path]
        if current.path != message.path:
            return "refused" if current.refused and not current.recipients else "held"  # held already
        delivered = message.delivered + tuple(address for address in outcome.accepted if address not in message.delivered)
        refused = {**message.refused, **outcome.refused}
        updated = dataclasses.replace(current, recipients=tuple(outcome.pending), delivered=delivered, refused=refused)
        error = outcome.error
        if outcome.pending and error is not None and not getattr(error, "transient", False) \
                and getattr(error, "stage", None) not in _SESSION_STAGES:
            reason = f"{error.code}: {error.msg}" + (f" {_UNKNOWN_HINT}" if error.code == "delivery_unknown" else "")
            self._hold(updated, reason)
            return "held"
        if not outcome.pending:
            if not refused:
                self.spool.remove(current)
                self._unlock(message.path)
                return "delivered"
            self._hold(updated, "Refused for good: " + "; ".join(f"{address}: {reply}" for address, reply in refused.items()))
            return "refused"
        state = (updated.recipients, updated.delivered, updated.refused)
        if state != (current.recipients, current.delivered, current.refused):
            try:
                fd = write_locked_private_file(message.path, _serialise(updated))
            except OSError as exc:
                raise SmailError("spool_write", f"Cannot update {message.path} in the mail spool: {exc.strerror}.",
                                 hint="Its recipients " + ", ".join(updated.delivered) + " have the message; remove "
                                      "them from the file, or they get it again.") from None
            os.close(self._fds[message.path])  # the new file is locked already: the lock was handed over
            self._fds[message.path] = fd
            self._current[message.path] = updated
        return "pending"

    def current(self, message: SpooledMessage) -> SpooledMessage:
        """The message as its file says now (narrowed, or held)."""
        return self._current[message.path]

    def _hold(self, updated: SpooledMessage, reason: str) -> None:
        held = self.spool.set_aside(updated, reason)
        self._current[updated.path] = held
        self._unlock(updated.path)

    def _unlock(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for path in list(self._fds):
            self._unlock(path)


def _locked_message(fd: int, path: str, account: str) -> SpooledMessage | None:
    """Lock the open file and read its message; None when locked elsewhere, replaced, unusable or another account's."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return None  # another process is delivering it
    # Opened before another process removed (delivered), replaced (narrowed) or renamed (set aside) it: too late.
    try:
        if not os.path.samestat(os.stat(path), os.fstat(fd)):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            message = _load(handle, path)
    except (OSError, ValueError):
        return None
    return message if message.is_for(account) else None
