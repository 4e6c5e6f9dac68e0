# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mail spool: a write-ahead queue of outgoing mail, per SMTP account, with a schedule per mail.

Postfix's queue manager is the model (https://www.postfix.org/QSHAPE_README.html, qmgr(8), cleanup(8)): a mail is
on disk before it is offered to a server; its progress is written in place, in space the file already has; every
change of state happens under the file's lock; each mail has its own next attempt time and a maximum lifetime.

On disk (this is the one description of the format)::

    <spool directory>/                           0700, this user's own; refused otherwise (spool_insecure)
        <account>/                               one per SMTP login: casefolded, percent-encoded; 0700
            <time_ns:020d>-<16 hex>.mail         one mail, 0600; names sort oldest first
            .lease-<16 hex>                      held locked (flock) by the task that enqueued mail naming it
            .<name>.<random>.tmp                 a write in progress (see _private_file); swept after an hour
        <time_ns:020d>-<16 hex>.json, .held.json  format 1 (collection 1.0.0): converted on first use

A mail file's format, and reading and writing one, are in ``_spool_file``.

A delivery claims files with a non-blocking exclusive ``flock`` (:meth:`Spool.claim`, a bounded window at a time);
a mail whose control names a lease that its task still holds is left to that task. After each recipient's final
answer its record is overwritten and the file fsync'd before the next SMTP command (:meth:`Claim.progress`), so a
crash, a kill or a full disk can at most resend the one transaction that was on the wire.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import dataclasses
import errno
import json
import os
import stat
import time
import typing as t
import urllib.parse

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import (
    InsecurePathError,
    check_private_directory,
    ensure_own_private_directory,
    fsync_directory,
    remove_private_file,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.delivery import Outcome
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.message import Envelope
from ansible_collections.smail.xoauth2.plugins.module_utils._spool.mail_file import (
    CONTROL_SIZE,
    CREATE_FLAGS,
    OPEN_FLAGS,
    READ_FLAGS,
    RECORD_SIZE,
    SUFFIX,
    Control,
    SpooledMessage,
    encode_body,
    encode_record,
    iso,
    open_regular,
    pwrite_durably,
    read_fd,
    write_all,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

#: How many mail files a delivery holds open (locked) at a time: a spool of any size drains under a small
#: open-file limit, and only this many mails are in memory.
CLAIM_WINDOW = 32
#: The default maximum lifetime of a spooled mail: Postfix's maximal_queue_lifetime (5 days).
DEFAULT_LIFETIME = 5 * 24 * 3600
#: The first pause after a failed attempt, doubled after each further one up to the maximum: Postfix's
#: minimal_backoff_time (300 s) and maximal_backoff_time (4000 s).
MIN_BACKOFF = 300
MAX_BACKOFF = 4000
#: A batch of this many mails is made durable with one sync() instead of an fsync per file.
SYNC_ALL_FROM = 16
#: A temp file this old was left by a process that died while writing: swept.
STALE_TEMP_SECONDS = 3600
_V1_MESSAGE, _V1_HELD = ".json", ".held.json"
#: Failures of these steps concern the server or the account, not the mail: it stays pending.
SESSION_STAGES = frozenset(("connect", "tls", "ehlo", "auth"))
_WRITE_HINT = "The user running the task needs a spool directory of its own that it can write to (and free space in it)."


def default_spool_dir() -> str:
    """The spool directory used when none is given: ``~/.ansible/smail_xoauth2/spool``."""
    return os.path.join(os.path.expanduser("~"), ".ansible", "smail_xoauth2", "spool")


def backoff(attempts: int) -> int:
    """Seconds from a failed attempt to the next, after ``attempts`` failed attempts of the mail."""
    return int(min(MAX_BACKOFF, MIN_BACKOFF * 2 ** max(0, attempts - 1)))


def account_directory_name(account: str) -> str:
    """The directory of ``account`` inside the spool: the login casefolded and percent-encoded, never hidden."""
    name = urllib.parse.quote(account.casefold(), safe="@+-_")
    return name.replace(".", "%2E") if name.startswith(".") or not name else name.replace("%2E", ".")


def _lease_held(directory: str, lease: str | None) -> bool:
    """Whether the task that enqueued a mail under ``lease`` still runs (holds the lease file locked)."""
    if not lease or "/" in lease or not lease.startswith(".lease-"):
        return False
    try:
        fd = os.open(os.path.join(directory, lease), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


class Spool:
    """Mail in a private directory, one directory per account and one file per mail (format in the docstring)."""

    def __init__(self, directory: str, *, lifetime: int = DEFAULT_LIFETIME,
                 clock: t.Callable[[], float] = time.time) -> None:
        if "\0" in directory:
            raise OptionError("spool_dir", "contains a NUL character, which no path can hold")
        if lifetime <= 0:
            raise OptionError("spool_lifetime", "must be a positive number of seconds")
        if fcntl is None:  # pragma: no cover - not on POSIX
            raise SmailError("spool_lock", "The mail spool needs file locks (fcntl), which this system lacks.")
        self.directory = directory
        self.lifetime = lifetime
        self.clock = clock
        #: This process's lease: its name, its locked descriptor and its path.
        self._lease: tuple[str, int, str] | None = None
        self._converted = False

    def __repr__(self) -> str:
        return f"Spool({self.directory!r})"

    # --- the directories -------------------------------------------------------------------------

    def _insecure(self, exc: InsecurePathError) -> SmailError:
        return SmailError("spool_insecure", f"The mail spool {exc.path} {exc.reason}.",
                          hint="Spooled mail is sent with the credentials of the user running the task, so the spool "
                               "must be that user's own, writable by nobody else and not another user's symlink: use "
                               "another spool directory, or remove, chown or chmod this one.",
                          details={"option": "spool_dir"})

    def _secure(self, path: str, *, create: bool) -> bool:
        """Whether the private directory ``path`` exists (created when ``create``); the token cache's rule.

        The directory must be this user's, writable by nobody else, and not reached through another user's symlink:
        SmailError ``spool_insecure`` otherwise, as its mail would go out with this user's credentials.
        """
        try:
            if not create:
                try:
                    check_private_directory(path)
                except FileNotFoundError:
                    return False
            ensure_own_private_directory(path)
        except InsecurePathError as exc:
            raise self._insecure(exc) from None
        except OSError as exc:
            raise SmailError("spool_write" if create else "spool_read",
                             f"Cannot {'create' if create else 'reach'} the mail spool {path}: {exc.strerror}.",
                             hint=_WRITE_HINT) from None
        return True

    def account_directory(self, account: str) -> str:
        return os.path.join(self.directory, account_directory_name(account))

    def _open(self, account: str | None, *, create: bool = False) -> list[str]:
        """The account directories to look at (all of them when ``account`` is None), checked; format 1 converted."""
        if not self._secure(self.directory, create=create):
            return []
        if not self._converted:
            self._converted = True
            _convert_v1(self)
        if account is not None:
            directory = self.account_directory(account)
            return [directory] if self._secure(directory, create=create) else []
        directories = []
        for name in self._names(self.directory, lambda name: True):
            path = os.path.join(self.directory, name)
            if os.path.isdir(path) and not os.path.islink(path) and self._secure(path, create=False):
                directories.append(path)
        return directories

    def _names(self, directory: str, wanted: t.Callable[[str], bool]) -> list[str]:
        """The names in ``directory`` that ``wanted`` accepts, oldest first; hidden (temp, lease) files never."""
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SmailError("spool_read", f"Cannot list the mail spool {directory}: {exc.strerror}.") from None
        return sorted(name for name in names if not name.startswith(".") and wanted(name))

    def _sweep(self, directory: str) -> None:
        """Remove temp files left by a process that died while writing, and leases nobody holds any more."""
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                if name.endswith(".tmp") and name.startswith("."):
                    with contextlib.suppress(OSError):
                        info = os.lstat(path)
                        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() \
                                and self.clock() - info.st_mtime > STALE_TEMP_SECONDS:
                            os.unlink(path)
                elif name.startswith(".lease-") and (self._lease is None or name != self._lease[0]) \
                        and not _lease_held(directory, name):
                    with contextlib.suppress(OSError):
                        if self.clock() - os.lstat(path).st_mtime > STALE_TEMP_SECONDS:
                            os.unlink(path)

    # --- listings --------------------------------------------------------------------------------

    def _scan(self, account: str | None) -> tuple[list[SpooledMessage], list[str]]:
        messages: list[SpooledMessage] = []
        unreadable: list[str] = []
        directories = self._open(account)
        if account is None:  # beside the account directories: format-1 files that could not be converted, strangers
            unreadable.extend(path for path in (os.path.join(self.directory, name) for name in
                                                self._names(self.directory, lambda name: True))
                              if path not in directories)
        for directory in directories:
            for name in self._names(directory, lambda name: True):
                path = os.path.join(directory, name)
                try:
                    fd = open_regular(path, READ_FLAGS)
                except FileNotFoundError:
                    continue  # delivered meanwhile
                except (OSError, ValueError):
                    unreadable.append(path)
                    continue
                try:
                    message = read_fd(fd, path)
                    if account is not None and not message.is_for(account):
                        raise ValueError("another account's mail")
                    messages.append(message)
                except (OSError, ValueError):
                    unreadable.append(path)
                finally:
                    os.close(fd)
        return messages, unreadable

    def pending(self, account: str | None = None) -> list[SpooledMessage]:
        """The mail waiting to be sent (for ``account`` when given), oldest first, without locking it."""
        return [message for message in self._scan(account)[0] if not message.held]

    def held(self, account: str | None = None) -> list[SpooledMessage]:
        """The mail set aside (for ``account`` when given), oldest first."""
        return [message for message in self._scan(account)[0] if message.held]

    def unreadable(self, account: str | None = None) -> list[str]:
        """The paths of spool files that are no usable mail (corrupt, another user's, not a regular file); left alone."""
        return self._scan(account)[1]

    def held_count(self, account: str) -> int:
        """How many mails of ``account`` are held; reads only their control blocks."""
        count = 0
        for directory in self._open(account):
            for name in self._names(directory, lambda name: name.endswith(SUFFIX)):
                with contextlib.suppress(OSError, ValueError):
                    fd = open_regular(os.path.join(directory, name), READ_FLAGS)
                    try:
                        count += Control.decode(os.pread(fd, CONTROL_SIZE, 0)).state == "held"
                    finally:
                        os.close(fd)
        return count

    # --- enqueue ---------------------------------------------------------------------------------

    def lease(self, account: str) -> str:
        """The name of this process's lease in ``account``'s directory, created and locked on first use.

        Mail enqueued under it is this task's to deliver: a claim by another process passes it by while the lease is
        held, and takes it as soon as this process ends, however it ends (the kernel drops the lock).
        """
        if self._lease is not None:
            return self._lease[0]
        directory = self.account_directory(account)
        name = f".lease-{os.urandom(8).hex()}"
        try:
            fd = os.open(os.path.join(directory, name), CREATE_FLAGS, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise SmailError("spool_write", f"Cannot write to the mail spool {directory}: {exc.strerror}.",
                             hint=_WRITE_HINT) from None
        self._lease = (name, fd, os.path.join(directory, name))
        return name

    def _own_lease(self) -> str | None:
        return self._lease[0] if self._lease is not None else None

    def end_lease(self) -> None:
        """Give up this process's lease (its mail is then anybody's to deliver when due)."""
        if self._lease is not None:
            _name, fd, path = self._lease
            self._lease = None
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)

    def enqueue(self, envelopes: t.Sequence[Envelope], *, account: str, server: str, reason: str = "enqueued",
                leased: bool = True) -> list[SpooledMessage]:
        """Write each envelope to the spool, durably, before any of it is offered to a server; returns the mails.

        Every file is written, then all are renamed into place, and all of it is made durable before this returns:
        each file and the directory fsync'd for a few mails, one ``sync()`` of the file systems for a batch of more
        than :data:`SYNC_ALL_FROM` (the cost of a thousand fsyncs is that of about a hundred). The mails are leased
        to this process (:meth:`lease`) unless not ``leased``. Raises SmailError ``spool_write`` (nothing is left
        behind then) or ``spool_insecure``.
        """
        self._open(account, create=True)
        directory = self.account_directory(account)
        lease = self.lease(account) if leased else None
        control = Control(next_attempt=int(self.clock()), lease=lease).encode()
        written: list[tuple[str, str, SpooledMessage]] = []
        try:
            for envelope in envelopes:
                now_ns = int(self.clock() * 1e9)
                name = f"{time.time_ns():020d}-{os.urandom(8).hex()}{SUFFIX}"  # sorts in the order of enqueueing
                tmp = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
                records = b"".join(encode_record("pending") for _address in envelope.recipients)
                body = encode_body(account=account, server=server, envelope=envelope, reason=reason, now_ns=now_ns)
                fd = os.open(tmp, CREATE_FLAGS, 0o600)
                try:
                    written.append((tmp, os.path.join(directory, name), SpooledMessage(
                        path=os.path.join(directory, name), account=account, server=server, sender=envelope.sender,
                        envelope_recipients=tuple(envelope.recipients), message_id=envelope.message_id,
                        data=envelope.data, spooled_at=iso(now_ns / 1e9), spooled_ns=now_ns, reason=reason,
                        control=Control(next_attempt=int(self.clock()), lease=lease),
                        records=tuple(("pending", "") for _address in envelope.recipients))))
                    write_all(fd, control + records + body)
                    if len(envelopes) < SYNC_ALL_FROM:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            for tmp, path, _message in written:
                os.rename(tmp, path)
        except OSError as exc:
            for tmp, path, _message in written:
                for leftover in (tmp, path):
                    with contextlib.suppress(OSError):
                        os.unlink(leftover)
            raise SmailError("spool_write", f"Cannot write to the mail spool {directory}: {exc.strerror}.",
                             hint=_WRITE_HINT) from None
        if len(envelopes) < SYNC_ALL_FROM:
            fsync_directory(directory)
        else:
            os.sync()  # the files' data, their names and the directory, in one call
        return [message for _tmp, _path, message in written]

    def add(self, *, account: str, server: str, sender: str, recipients: t.Sequence[str], message_id: str | None,
            data: bytes, reason: str) -> SpooledMessage:
        """Keep one mail for a later delivery, due at once and leased to nobody (as a send that ended left it)."""
        return self.enqueue([Envelope(sender, tuple(recipients), bytes(data), message_id)], account=account,
                            server=server, reason=reason, leased=False)[0]

    # --- changes by Message-ID -------------------------------------------------------------------

    def by_id(self, message_ids: t.Sequence[str], *, option: str) -> list[SpooledMessage]:
        """The mail (held or pending) with these Message-IDs (angle brackets optional), of every account.

        Raises OptionError naming ``option`` for a Message-ID no spooled mail has: nothing is changed then.
        """
        found: dict[str, list[SpooledMessage]] = {}
        for message in self._scan(None)[0]:
            found.setdefault(_bare_id(message.message_id), []).append(message)
        unknown = [message_id for message_id in message_ids if _bare_id(message_id) not in found]
        if unknown:
            raise OptionError(option, f"no spooled mail in {self.directory} has the Message-ID " + ", ".join(unknown))
        return [message for message_id in dict.fromkeys(map(_bare_id, message_ids)) for message in found[message_id]]

    def check_release(self, message: SpooledMessage) -> None:
        """Raises OptionError (``release``) for a held mail with no recipient left to send to."""
        if message.held and not message.recipients:
            raise OptionError("release", f"the held mail {message.message_id} has no recipient left to send to "
                              f"(delivered: {', '.join(message.delivered) or 'nobody'}; refused: "
                              f"{', '.join(message.refused) or 'nobody'}); discard it instead")

    def release(self, message: SpooledMessage) -> bool:
        """Queue a held mail again, due at once, under its lock; False when it was not held any more (released or
        delivered meanwhile by another run). Raises SmailError ``spool_write``."""
        with self._locked(message.path, wait=True) as (fd, current):
            if current is None or not current.held:
                return False
            self.check_release(current)
            self._write_control(fd, current, Control(attempts=current.control.attempts,
                                                     next_attempt=int(self.clock())))
        return True

    def discard(self, message: SpooledMessage) -> bool:
        """Delete a held mail under its lock; False when it was not held any more. Raises SmailError ``spool_write``."""
        with self._locked(message.path, wait=True) as (_fd, current):
            if current is None or not current.held:
                return False
            _remove(current.path, "The mail is still in the spool.")
        return True

    @contextlib.contextmanager
    def _locked(self, path: str, *, wait: bool) -> t.Iterator[tuple[int, SpooledMessage | None]]:
        """The file ``path`` locked, and its mail as it is now (None when it is gone or unusable)."""
        try:
            fd = open_regular(path, OPEN_FLAGS)
        except (OSError, ValueError):
            yield -1, None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink == 0:
                yield fd, None  # removed (delivered or discarded) while this process waited for the lock
                return
            try:
                current = read_fd(fd, path)
            except (OSError, ValueError):
                current = None
            yield fd, current
        finally:
            os.close(fd)

    def _write_control(self, fd: int, message: SpooledMessage, control: Control) -> SpooledMessage:
        try:
            pwrite_durably(fd, control.encode(), 0)
        except (OSError, ValueError) as exc:
            raise SmailError("spool_write", f"Cannot update {message.path} in the mail spool: "
                             f"{getattr(exc, 'strerror', None) or exc}.", hint=_WRITE_HINT) from None
        return dataclasses.replace(message, control=control)

    # --- delivery --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def claim(self, account: str, *, paths: t.Sequence[str] | None = None, own: bool = False, due_only: bool = True,
              skip: t.AbstractSet[str] = frozenset(), limit: int = CLAIM_WINDOW,
              known: t.Mapping[str, SpooledMessage] | None = None) -> t.Iterator[Claim]:
        """At most ``limit`` pending mails of ``account``, each locked against other processes until exit.

        With ``paths``, those files: this task's own mail, leased to it, when ``own``; else candidates found before
        (:meth:`candidates`), looked at again under their locks. Without, the account's pending mail as
        :meth:`candidates` gives it; mail leased to a running task is passed by. ``known`` (own mail only): the mails
        as this process enqueued them, not read again once locked. A pending mail past the spool's lifetime is held as
        ``expired`` instead (:attr:`Claim.expired`). Paths in ``skip`` are not looked at. Files passed by are named
        in :attr:`Claim.passed`. Deliver inside the block, with :meth:`Claim.progress` after each transaction.
        """
        claim = Claim(self, account)
        try:
            if paths is not None:
                candidates = [path for path in paths if path not in skip]
            else:
                candidates = self.candidates(account, due_only=due_only, skip=skip)
            for path in candidates:
                if len(claim.messages) >= limit:
                    break
                try:
                    claim.take(path, own=own, known=(known or {}).get(path) if own else None)
                except _WindowFull:
                    break
            yield claim
        finally:
            claim.release_all()

    def candidates(self, account: str, *, due_only: bool = True, skip: t.AbstractSet[str] = frozenset()) -> list[str]:
        """The account's pending mail files in the order a delivery takes them: oldest first. With ``due_only`` only
        what is due or waits only for the server (a send), else all of it (an explicit flush); mail that is not due
        is left out, so it holds up nothing. Reads only the control blocks; a drain reads this list once."""
        directories = self._open(account)
        if not directories:
            return []
        directory = directories[0]
        self._sweep(directory)
        now = self.clock()
        order: list[str] = []
        leases: dict[str, bool] = {}
        for name in self._names(directory, lambda name: name.endswith(SUFFIX)):
            path = os.path.join(directory, name)
            if path in skip:
                continue
            try:
                fd = open_regular(path, READ_FLAGS)
            except (OSError, ValueError):
                continue  # gone, or unreadable (listed by unreadable())
            try:
                control = Control.decode(os.pread(fd, CONTROL_SIZE, 0))
            except (OSError, ValueError):
                continue
            finally:
                os.close(fd)
            # Mail that waits for the server is ready whenever a send reaches it: every send tries the server anyway.
            if control.state != "pending" or (due_only and control.next_attempt > now and control.waits_for != "server"):
                continue
            if control.lease:  # a running task's mail (this one's included): not even locked to be passed by
                if control.lease not in leases:
                    leases[control.lease] = control.lease == self._own_lease() or _lease_held(directory, control.lease)
                if leases[control.lease]:
                    continue
            order.append(path)
        return order


class _WindowFull(Exception):
    """No more files can be opened now: the claim holds what it has."""


def _bare_id(message_id: str | None) -> str:
    return (message_id or "").strip().strip("<>").casefold()


def _remove(path: str, hint: str, *, durable: bool = True) -> None:
    try:
        if durable:
            remove_private_file(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    except OSError as exc:
        raise SmailError("spool_write", f"Cannot remove {path} from the mail spool: {exc.strerror}.", hint=hint) from None


class Claim:
    """Mails of one account that this process holds locked, and their state as the delivery goes on."""

    def __init__(self, spool: Spool, account: str) -> None:
        self.spool = spool
        self.account = account
        #: The mails locked, as they were read.
        self.messages: list[SpooledMessage] = []
        #: Mails found past the spool's lifetime and held as expired by this claim.
        self.expired: list[SpooledMessage] = []
        #: Paths looked at but not taken (locked elsewhere, leased, gone, unreadable, another account's).
        self.passed: list[str] = []
        self._fds: dict[str, int] = {}
        self._current: dict[str, SpooledMessage] = {}

    def take(self, path: str, *, own: bool = False, known: SpooledMessage | None = None) -> None:
        """Lock and read the mail at ``path`` if it is pending, this account's and nobody else's to deliver."""
        try:
            fd = open_regular(path, OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE) and self.messages:
                raise _WindowFull() from None  # the process's open-file limit ends this window; a later one takes it
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise SmailError("spool_read", f"Cannot open {path} in the mail spool: {exc.strerror}.",
                                 hint="Raise the open-file limit (ulimit -n) of the process that sends.") from None
            self.passed.append(path)
            return
        except ValueError:
            self.passed.append(path)
            return
        try:
            message = self._locked_message(fd, path, own=own, known=known)
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

    def _locked_message(self, fd: int, path: str, *, own: bool, known: SpooledMessage | None) -> SpooledMessage | None:
        try:
            # This task's own mail is locked by others only for a moment, while they pass it by: wait for that.
            fcntl.flock(fd, fcntl.LOCK_EX if own else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None  # another process is delivering it
            raise
        try:
            if os.fstat(fd).st_nlink == 0:
                return None  # delivered or discarded after this process opened it
            if known is not None:
                return known  # this process's own mail, leased to it: nobody else changed it
            message = read_fd(fd, path)
        except (OSError, ValueError):
            return None
        if message.held or not message.is_for(self.account):
            return None
        directory = os.path.dirname(path)
        if not own and message.control.lease and _lease_held(directory, message.control.lease):
            return None  # the task that enqueued it is still delivering it
        if not own and self.spool.clock() - message.spooled_ns / 1e9 > self.spool.lifetime:
            held = self.spool._write_control(fd, message, dataclasses.replace(  # pylint: disable=protected-access
                message.control, state="held", lease=None, held_code="expired",
                held_reason=f"Not delivered within spool_lifetime ({self.spool.lifetime} s)"
                            + (f"; last error: {message.control.last_error}" if message.control.last_error else ""),
                held_at=iso(self.spool.clock())))
            self.expired.append(held)
            return None
        return message

    def holds(self, message: SpooledMessage) -> bool:
        """Whether this claim still holds the mail's file (not delivered, held or forgotten)."""
        return message.path in self._fds

    def current(self, message: SpooledMessage) -> SpooledMessage:
        """The mail as its file says now."""
        return self._current[message.path]

    def progress(self, message: SpooledMessage, outcome: Outcome) -> str:
        """Write each recipient's final answer so far into the file, in place; returns ``delivered`` when nobody is
        left and nobody refused it (the file is then removed), else ``pending``. Idempotent.

        Raises SmailError ``spool_write``: its hint names the recipients who have the mail.
        """
        current = self._current[message.path]
        fd = self._fds.get(message.path)
        if fd is None:
            return "settled"
        accepted = set(outcome.accepted)
        records = list(current.records)
        changed = []
        for index, (address, (state, _reply)) in enumerate(zip(current.envelope_recipients, records)):
            if state != "pending":
                continue
            if address in accepted:
                records[index] = ("delivered", "")
            elif address in outcome.refused:
                records[index] = ("refused", outcome.refused[address])
            else:
                continue
            changed.append(index)
        updated = dataclasses.replace(current, records=tuple(records))
        if not updated.recipients and not updated.refused:
            # Not made durable with a directory sync: a process that dies cannot undo it, and after a power loss a
            # file that comes back sends its last transaction again, as a queue manager's does.
            _remove(current.path, "Every recipient has the mail: remove the file, or it is sent again.", durable=False)
            self._unlock(message.path)
            self._current[message.path] = updated
            return "delivered"
        if changed:
            try:
                for index in changed:
                    os.pwrite(fd, encode_record(*records[index]), CONTROL_SIZE + index * RECORD_SIZE)
                os.fsync(fd)
            except (OSError, ValueError) as exc:
                raise SmailError("spool_write", f"Cannot update {message.path} in the mail spool: "
                                 f"{getattr(exc, 'strerror', None) or exc}.",
                                 hint="Its recipients " + ", ".join(updated.delivered) + " have the mail; mark them "
                                      "delivered in the file, or they get it again.") from None
            self._current[message.path] = updated
        return "pending"

    def hold(self, message: SpooledMessage, code: str, reason: str) -> SpooledMessage:
        """Set the mail aside in place: never retried by itself. Raises SmailError ``spool_write``."""
        current = self._current[message.path]
        held = self.spool._write_control(  # pylint: disable=protected-access
            self._fds[message.path], current, dataclasses.replace(
                current.control, state="held", lease=None, held_code=code, held_reason=reason,
                held_at=iso(self.spool.clock())))
        self._current[message.path] = held
        self._unlock(message.path)
        return held

    def defer(self, message: SpooledMessage, error: str, *, waits_for: str = "mail") -> SpooledMessage:
        """Count a failed attempt and give the mail its next attempt time; ``waits_for`` is ``server`` when the
        attempt failed before any transaction (see :attr:`Control.waits_for`). Raises SmailError ``spool_write``."""
        current = self._current[message.path]
        attempts = current.control.attempts + 1
        deferred = self.spool._write_control(  # pylint: disable=protected-access
            self._fds[message.path], current, dataclasses.replace(
                current.control, attempts=attempts, lease=None, last_error=error, waits_for=waits_for,
                next_attempt=int(self.spool.clock()) + backoff(attempts)))
        self._current[message.path] = deferred
        return deferred

    def forget(self, message: SpooledMessage) -> None:
        """Remove the file of a mail whose final failure the task reports itself."""
        if message.path in self._fds:
            _remove(message.path, "The task failed and reported it; remove the file, or it is sent again.")
            self._unlock(message.path)

    def _unlock(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for path in list(self._fds):
            self._unlock(path)


# --- format 1 --------------------------------------------------------------------------------------

def _convert_v1(spool: Spool) -> None:
    """Move format-1 files (collection 1.0.0: one JSON file per mail in the spool directory itself) into the
    account directories as format 2, each under its lock; a file converted before a crash is not converted twice
    (the new name is the old one's), and one that cannot be read is left alone (listed as unreadable by 1.0.0)."""
    for name in spool._names(spool.directory, lambda name: name.endswith(_V1_MESSAGE)):  # pylint: disable=protected-access
        path = os.path.join(spool.directory, name)
        try:
            fd = open_regular(path, OPEN_FLAGS)
        except (OSError, ValueError):
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink == 0:
                continue
            entry = json.loads(os.pread(fd, os.fstat(fd).st_size, 0))
            if not isinstance(entry, dict) or entry.get("format") != 1:
                continue
            _write_v2_from_v1(spool, entry, name)
            remove_private_file(path)
        except (OSError, ValueError, TypeError, KeyError):
            continue
        finally:
            os.close(fd)


def _write_v2_from_v1(spool: Spool, entry: dict[str, t.Any], name: str) -> None:
    stem = name[:-len(_V1_HELD)] if name.endswith(_V1_HELD) else name[:-len(_V1_MESSAGE)]
    account = str(entry["account"])
    directory = spool.account_directory(account)
    spool._secure(directory, create=True)  # pylint: disable=protected-access
    target = os.path.join(directory, stem + SUFFIX)
    if os.path.lexists(target):
        return  # converted before a crash kept the old file
    recipients = [*entry.get("delivered", []), *entry.get("refused", {}), *entry["recipients"]]
    records = [("delivered", "")] * len(entry.get("delivered", [])) + \
        [("refused", str(reply)) for reply in entry.get("refused", {}).values()] + \
        [("pending", "")] * len(entry["recipients"])
    held = entry.get("held_reason") is not None
    code = str(entry["held_reason"]).split(":", 1)[0] if held else None
    control = Control(state="held" if held else "pending", held_code=code,
                      held_reason=entry.get("held_reason"), held_at=entry.get("held_at"))
    spooled_ns = calendar.timegm(time.strptime(entry["spooled_at"], "%Y-%m-%dT%H:%M:%SZ")) * 10 ** 9
    body = json.dumps({"account": account, "server": entry["server"], "sender": entry["sender"],
                       "recipients": recipients, "message_id": entry.get("message_id"),
                       "spooled_at": entry["spooled_at"], "spooled_ns": spooled_ns, "reason": entry["reason"],
                       "data": entry["data"]}, separators=(",", ":")).encode("ascii") + b"\n"
    base64.b64decode(entry["data"], validate=True)
    tmp = os.path.join(directory, f".{stem}{SUFFIX}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, CREATE_FLAGS, 0o600)
    try:
        write_all(fd, control.encode() + b"".join(encode_record(*state) for state in records) + body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, target)
    fsync_directory(directory)
