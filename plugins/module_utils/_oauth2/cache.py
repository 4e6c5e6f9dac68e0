# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared token cache: access tokens on the machine that fetched them, so that tasks, forks and hosts sharing one
grant fetch once per token lifetime, and remembered endpoint failures.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.expiry import RefreshTokenRecord, record_key
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.grants import (
    AccessToken,
    Grant,
    TLSSettings,
    TokenError,
    utcnow,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import (
    InsecurePathError,
    ensure_own_private_directory,
    open_private_lock,
    read_private_file,
    remove_private_file,
    write_private_file,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows controllers are not supported by ansible-core
    fcntl = None  # type: ignore[assignment]

#: Seconds a cached token must stay valid to be handed out: enough for a slow send. A provider may need more
#: (``_providers.Provider.token_expiry_margin``: Microsoft refuses a token close to its expiry with 501 5.5.127).
EXPIRY_MARGIN_SECONDS = _providers.DEFAULT_TOKEN_EXPIRY_MARGIN
#: Seconds a transient failure of the token endpoint is remembered in the token cache: the tasks and forks that need
#: the same grant meanwhile fail at once instead of each waiting through retries of their own.
FAILURE_MEMORY_SECONDS = 30
#: Added to the token request's timeout to bound the wait for another process's refresh of the same grant.
LOCK_WAIT_MARGIN_SECONDS = 5.0
_LOCK_POLL_SECONDS = 0.05


def cache_key(grant: Grant, tls: TLSSettings | None) -> str:
    """The token cache's name for what ``grant`` fetches with ``tls``: its access token and its remembered failures.

    How the endpoint's certificate was checked is part of it: a token fetched with ``validate_certs=false`` (or
    against another ``ca_path``) is never served to a task that trusts only its own CA, and an outage seen through
    one trust does not stop a task with another. The default trust keeps the grant's own key.
    """
    key = grant.cache_key()
    tls = tls or TLSSettings()
    if tls.validate_certs and not tls.ca_path:
        return key
    trust = os.path.abspath(tls.ca_path) if (tls.validate_certs and tls.ca_path) else None
    return hashlib.sha256(json.dumps([key, tls.validate_certs, trust]).encode("utf-8")).hexdigest()


def default_cache_dir() -> str:
    """The cache directory used when none is given: ``~/.ansible/smail_xoauth2/tokens``."""
    return os.path.join(os.path.expanduser("~"), ".ansible", "smail_xoauth2", "tokens")


_INSECURE_CACHE_HINT = ("token_cache_dir must be a directory of the user running the task that no other user may "
                        "write to: use the default (~/.ansible/smail_xoauth2/tokens), a directory of your own with mode "
                        "0700, or token_cache=false.")


class TokenCache:
    """Access tokens on disk, one 0600 JSON file per grant in a 0700 directory of this user.

    The lock taken by :meth:`locked` spans lookup, refresh and store, so concurrent tasks, forks and hosts on one
    machine refresh a grant once, not once each; the wait for it is bounded. A transient failure of the token
    endpoint is remembered for :data:`FAILURE_MEMORY_SECONDS` in ``<key>.failure`` (its code and times, no secret).
    What is known about a refresh token - when ``authorize`` or a rotation obtained it, when a token endpoint said it
    expires - is kept in ``<hash of the refresh token>.refresh`` (:class:`_refresh_expiry.RefreshTokenRecord`: two
    times, no secret), whichever grant uses the token.

    Nothing another local user could have planted is trusted. A directory of another user, or one that others may
    write to, is refused with ``token_cache_insecure`` before any token is read or written, and so is a lock file
    that is a symlink or another user's (a lock cannot be replaced while processes may hold it). A token entry or
    remembered failure that is a symlink or another user's is ignored: the token is fetched again and the entry
    replaced by a rename, which replaces a symlink instead of following it.
    """

    def __init__(self, directory: str | None = None) -> None:
        if directory and "\0" in directory:
            raise OptionError("token_cache_dir", "contains a NUL character, which no path can hold")
        self.directory = directory or default_cache_dir()

    def _insecure(self, exc: InsecurePathError) -> SmailError:
        what = "directory" if exc.path == self.directory else "file"
        return SmailError("token_cache_insecure", f"The token cache {what} {exc.path} {exc.reason}: another user could "
                                                  "plant tokens there or redirect what is written.",
                          hint=_INSECURE_CACHE_HINT, details={"option": "token_cache_dir"})

    def _ensure_directory(self) -> None:
        try:
            ensure_own_private_directory(self.directory)
        except InsecurePathError as exc:
            raise self._insecure(exc) from None
        except OSError as exc:
            raise SmailError("token_cache", f"Cannot create the token cache directory {self.directory}: {exc.strerror}",
                             hint="Set token_cache_dir to a writable directory or token_cache=false.") from None

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")

    def _failure_path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.failure")

    def _record_path(self, refresh_token: str) -> str:
        return os.path.join(self.directory, f"{record_key(refresh_token)}.refresh")

    @contextlib.contextmanager
    def locked(self, key: str, *, timeout: float, while_waiting: t.Callable[[], None] = lambda: None,
               clock: t.Callable[[], float] = time.monotonic,
               sleep: t.Callable[[float], None] = time.sleep) -> t.Iterator[bool]:
        """Hold an exclusive lock for ``key``; yields whether it is held.

        Waits at most ``timeout`` seconds by ``clock``, calling ``while_waiting`` between tries (it may raise to stop
        waiting) and ``sleep`` between them, then yields False: the caller goes on without the lock. Yields True at
        once where fcntl is missing.
        """
        self._ensure_directory()
        path = os.path.join(self.directory, f"{key}.lock")
        try:
            fd = open_private_lock(path)
        except InsecurePathError as exc:
            raise self._insecure(exc) from None
        except OSError as exc:
            raise SmailError("token_cache", f"Cannot open the token cache lock {path}: {exc.strerror}",
                             hint="Set token_cache_dir to a writable directory or token_cache=false.") from None
        try:
            yield _lock_within(fd, timeout, while_waiting, clock=clock, sleep=sleep)
        finally:
            os.close(fd)  # closing releases the flock

    def _read(self, path: str) -> dict[str, t.Any] | None:
        """The JSON object in ``path``; None when it is missing, unreadable, no JSON object, a symlink or another user's."""
        try:
            data = read_private_file(path)
            entry = json.loads(data) if data is not None else None
        except (OSError, ValueError, InsecurePathError):
            return None
        return entry if isinstance(entry, dict) else None

    def load(self, key: str, *, now: datetime.datetime | None = None, margin: float = EXPIRY_MARGIN_SECONDS) -> AccessToken | None:
        """The cached token for ``key`` if it stays valid for more than ``margin`` seconds, else None."""
        now = now or utcnow()
        entry = self._read(self._path(key))
        if entry is None:
            return None
        try:
            expires_at = datetime.datetime.fromtimestamp(float(entry["expires_at"]), datetime.timezone.utc)
            token = str(entry["access_token"])
        except (ValueError, KeyError, TypeError, OverflowError, OSError):
            return None
        if (expires_at - now).total_seconds() <= margin:
            return None
        return AccessToken(token=token, source="cache", expires_at=expires_at, scopes=tuple(entry.get("scopes") or ()))

    def store(self, key: str, token: AccessToken) -> None:
        """Write ``token`` atomically (the collection's private-file writer: 0600 from creation, fsync, rename)."""
        if token.expires_at is None:
            return  # a token of unknown lifetime cannot be reused safely
        self._ensure_directory()
        entry = {"access_token": token.token, "expires_at": token.expires_at.timestamp(), "scopes": list(token.scopes)}
        write_private_file(self._path(key), json.dumps(entry).encode("utf-8"))

    def load_refresh_record(self, refresh_token: str) -> RefreshTokenRecord | None:
        """What is known about ``refresh_token`` (when obtained, when it expires); None when nothing is."""
        return RefreshTokenRecord.from_json(self._read(self._record_path(refresh_token)))

    def store_refresh_record(self, refresh_token: str, record: RefreshTokenRecord) -> None:
        """Keep ``record`` for ``refresh_token`` (atomically, like a token). Best effort: an unwritable cache keeps none."""
        self._ensure_directory()
        with contextlib.suppress(OSError):
            write_private_file(self._record_path(refresh_token), json.dumps(record.as_json()).encode("utf-8"))

    def remember_failure(self, key: str, error: TokenError, *, now: float | None = None) -> None:
        """Remember for :data:`FAILURE_MEMORY_SECONDS` that the endpoint failed with ``error``: its code, not its text.

        Best effort: a failure that cannot be written is not remembered.
        """
        now = time.time() if now is None else now
        self._ensure_directory()
        entry = {"error": error.code, "failed_at": now, "until": now + FAILURE_MEMORY_SECONDS}
        with contextlib.suppress(OSError):
            write_private_file(self._failure_path(key), json.dumps(entry).encode("utf-8"))

    def forget_failure(self, key: str) -> None:
        """Drop a remembered failure for ``key`` (best effort)."""
        with contextlib.suppress(OSError):
            remove_private_file(self._failure_path(key))

    def remembered_failure(self, key: str, *, endpoint: str = "", now: float | None = None) -> TokenError | None:
        """The transient TokenError ``token_endpoint_unavailable`` to raise for a failure remembered for ``key``, if any."""
        now = time.time() if now is None else now
        entry = self._read(self._failure_path(key))
        if entry is None:
            return None
        try:
            code, failed_at, until = str(entry["error"]), float(entry["failed_at"]), float(entry["until"])
        except (KeyError, TypeError, ValueError):
            return None
        if not failed_at - 1 <= now < min(until, failed_at + FAILURE_MEMORY_SECONDS):
            return None  # expired, or written by a clock far from ours
        name = f"The token endpoint {endpoint}" if endpoint else "The token endpoint"
        return TokenError(
            "token_endpoint_unavailable",
            f"{name} failed {now - failed_at:.0f} s ago ({code}) for a task on this machine; it is not asked again for "
            f"another {until - now:.0f} s.",
            hint="The provider has an outage or this host cannot reach it; the mail can wait in spool_dir. The failure "
                 "is remembered in token_cache_dir so that parallel tasks and forks do not each wait through the same "
                 "retries.",
            details={"remembered_error": code, "token_attempts": 0}, transient=True)


def _lock_within(fd: int, timeout: float, while_waiting: t.Callable[[], None], *, clock: t.Callable[[], float],
                 sleep: t.Callable[[float], None]) -> bool:
    """Take an exclusive flock on ``fd`` within ``timeout`` seconds, polling; False when it was not had."""
    if fcntl is None:
        return True
    deadline = clock() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError:
            return False  # a file system without flock (ENOLCK): the lock only saves refreshes
        while_waiting()
        if clock() >= deadline:
            return False
        sleep(_LOCK_POLL_SECONDS)
