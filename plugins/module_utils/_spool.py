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
      "recipients": ["a@example.com"],        envelope recipients (Bcc included)
      "message_id": "<...@example.com>",      or null
      "spooled_at": "2026-01-01T00:00:00Z",   ISO 8601 UTC
      "reason": "smtp_connect: ...",          why it was spooled: an error code and message, never a secret
      "data": "<base64>",                     the exact message bytes (CRLF), original Message-ID and Date inside
      "held_reason": "...",                   held files only: why it was set aside
      "held_at": "2026-01-01T00:05:00Z"       held files only
    }

A file that is not such an object (another format version, bad base64, a missing field, another user's file) is
never deleted and never delivered: listings skip it and :meth:`Spool.unreadable` names it. Delivery takes an
exclusive ``flock`` on each open message file (:meth:`Spool.claim`), so concurrent runs never send one twice.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import (
    ensure_private_directory,
    remove_private_file,
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

    def is_for(self, account: str) -> bool:
        """Whether the message is to be sent with the SMTP login ``account`` (compared case-insensitively)."""
        return self.account.casefold() == account.casefold()

    def summary(self) -> dict[str, t.Any]:
        """Result fields describing the message, without its content."""
        result: dict[str, t.Any] = {"path": self.path, "message_id": self.message_id, "recipients": list(self.recipients),
                                    "spooled_at": self.spooled_at, "reason": self.reason}
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
    return SpooledMessage(
        path=path, account=entry["account"], server=entry["server"], sender=entry["sender"],
        recipients=tuple(recipients), message_id=entry.get("message_id"),
        data=base64.b64decode(entry["data"], validate=True),  # binascii.Error is a ValueError
        spooled_at=entry["spooled_at"], reason=entry["reason"],
        held_reason=entry.get("held_reason"), held_at=entry.get("held_at"),
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
        self.directory = directory

    def __repr__(self) -> str:
        return f"Spool({self.directory!r})"

    # --- the directory ---------------------------------------------------------------------------

    def _secure(self, *, create: bool) -> bool:
        """Whether the directory exists (created when ``create``), made private first.

        Raises SmailError ``spool_insecure`` for another user's directory: its messages would go out with this
        user's credentials.
        """
        try:
            owner: int | None = os.stat(self.directory).st_uid
        except FileNotFoundError:
            owner = None
        except OSError as exc:
            raise SmailError("spool_write" if create else "spool_read",
                             f"Cannot reach the mail spool {self.directory}: {exc.strerror}.", hint=_WRITE_HINT) from None
        if owner is not None and owner != os.geteuid():
            raise SmailError("spool_insecure", f"The mail spool {self.directory} belongs to another user (uid {owner}).",
                             hint="Spooled mail is sent with the credentials of the user running the task, so the spool "
                                  "must be that user's own: use another spool directory, or remove or chown this one.")
        if owner is None and not create:
            return False
        try:
            ensure_private_directory(self.directory)
        except OSError as exc:
            raise SmailError("spool_write", f"Cannot create the mail spool {self.directory}: {exc.strerror}.",
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
            data: bytes, reason: str) -> SpooledMessage:
        """Keep a message for a later delivery: one new 0600 file, written atomically.

        Raises SmailError ``spool_write`` (naming the directory) when it cannot be written, ``spool_insecure``
        when the directory belongs to another user.
        """
        self._secure(create=True)
        name = f"{time.time_ns():020d}-{os.urandom(8).hex()}{MESSAGE_SUFFIX}"
        message = SpooledMessage(path=os.path.join(self.directory, name), account=account, server=server, sender=sender,
                                 recipients=tuple(recipients), message_id=message_id, data=bytes(data),
                                 spooled_at=_utc_now(), reason=reason)
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

    def set_aside(self, message: SpooledMessage, reason: str) -> str:
        """Hold a message that must not be retried automatically (delivery unknown, refused for good).

        The file is renamed to its held name, then rewritten with ``reason``; returns the new path. Raises
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
        return held_path

    # --- delivery --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def claim(self, account: str) -> t.Iterator[list[SpooledMessage]]:
        """The pending messages of ``account``, oldest first, each locked against other processes until exit.

        A message another process holds, or one removed or set aside meanwhile, is left out; so is an unreadable
        file (see :meth:`unreadable`). Deliver, then :meth:`remove` or :meth:`set_aside` each message inside the block.
        """
        if fcntl is None:  # pragma: no cover - not on POSIX
            raise SmailError("spool_lock", "The mail spool needs file locks (fcntl), which this system lacks.")
        with contextlib.ExitStack() as locks:
            messages: list[SpooledMessage] = []
            if self._secure(create=False):
                for name in self._names(_is_pending):
                    message = self._lock(os.path.join(self.directory, name), account, locks)
                    if message is not None:
                        messages.append(message)
            yield messages

    def _lock(self, path: str, account: str, locks: contextlib.ExitStack) -> SpooledMessage | None:
        """The message at ``path`` if it is ``account``'s and this process got its lock (then held by ``locks``)."""
        try:
            handle = open(path, "rb")  # pylint: disable=consider-using-with  # closed by ``locks``, which ends the lock
        except OSError:
            return None  # gone meanwhile, or unreadable (reported by unreadable())
        try:
            message = _locked_message(handle, path, account)
        except BaseException:
            handle.close()
            raise
        if message is None:
            handle.close()
        else:
            locks.callback(handle.close)
        return message

    # the spool's side of a delivery, with the SMTP core's envelopes and outcomes

    def settle(self, queued: list[SpooledMessage], outcomes: list[Outcome],
               warnings: list[str]) -> tuple[list[str], list[dict[str, t.Any]]]:
        """Remove what the server took, set aside what must not be tried again; returns (delivered ids, pending)."""
        delivered: list[str] = []
        pending: list[dict[str, t.Any]] = []
        for message, outcome in zip(queued, outcomes):
            if not outcome.pending:
                self.remove(message)
                delivered.append(message.message_id or message.path)
            elif outcome.error is not None and not outcome.error.transient:
                held = self.set_aside(message, outcome.error.full_msg)
                warnings.append(f"The spooled mail {message.message_id} was not delivered and will not be retried "
                                f"({outcome.error.code}: {outcome.error.msg}); it was moved to {held}.")
            else:
                pending.append(message.summary())
        return delivered, pending

    def keep_unsent(self, envelope: Envelope, recipients: t.Sequence[str], *, account: str, endpoint: SMTPEndpoint,
                    error: SmailError) -> tuple[dict[str, t.Any], str]:
        """Spool ``envelope`` for ``recipients`` because of ``error``; returns the result fields and the warning."""
        spooled = self.add(account=account, server=f"{endpoint.host}:{endpoint.port}", sender=envelope.sender,
                           recipients=tuple(recipients), message_id=envelope.message_id, data=envelope.data,
                           reason=f"{error.code}: {error.msg}")
        warning = (f"The mail {envelope.message_id} could not be sent now ({error.code}: {error.msg}) and was spooled to "
                   f"{spooled.path}; the next send with the same spool_dir and account delivers it.")
        return {"spooled": True, "spool_path": spooled.path}, warning


def _locked_message(handle: t.BinaryIO, path: str, account: str) -> SpooledMessage | None:
    """Lock the open file and read its message; None when locked elsewhere, replaced, unusable or another account's."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return None  # another process is delivering it
    # Opened before another process removed (delivered) or renamed (set aside) it: the lock came too late.
    try:
        if not os.path.samestat(os.stat(path), os.fstat(handle.fileno())):
            return None
        message = _load(handle, path)
    except (OSError, ValueError):
        return None
    return message if message.is_for(account) else None
