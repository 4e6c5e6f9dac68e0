# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token core: grants, access tokens from the token endpoint, and a shared token cache.

A send through XOAUTH2 needs a short-lived access token. It comes from one of three grants: a long-lived refresh
token (RFC 6749 section 6), a Google service account's signed assertion acting as a Workspace user (RFC 7523,
domain-wide delegation), or an app's client credentials (RFC 6749 section 4.4, Microsoft Entra ID). google-auth does
the work and is imported only when a token is actually fetched. Tokens are cached on the machine that fetched them,
so that tasks, forks and hosts sharing one grant fetch once per token lifetime. Provider knowledge (endpoints,
scopes) lives in ``_providers``.

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

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers, _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import (
    InsecurePathError,
    ensure_own_private_directory,
    open_private_lock,
    read_private_file,
    remove_private_file,
    write_private_file,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._refresh_expiry import RefreshTokenRecord, record_key
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy

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


class RefreshTokenGrant(t.NamedTuple):
    """What a token endpoint needs to turn a refresh token into an access token."""

    client_id: str
    client_secret: str | None
    refresh_token: str
    token_uri: str
    scopes: tuple[str, ...] = ()
    send_scopes: bool = False
    #: The registry entry whose hints explain the token endpoint's errors (not part of the cache key).
    provider: str = "custom"

    def __repr__(self) -> str:
        # Secrets stay out of reprs, so they cannot leak through a traceback or a debug print.
        return f"RefreshTokenGrant(client_id={self.client_id!r}, token_uri={self.token_uri!r}, scopes={self.scopes!r})"

    def cache_key(self) -> str:
        """A hash naming this grant in the token cache; it reveals nothing of the refresh token or the client secret.

        The secret is part of it: a task with a wrong ``client_secret`` must not send with a token that a right one
        fetched (it fails at the token endpoint instead, as it would with an empty cache).
        """
        material = json.dumps([self.token_uri, self.client_id, self.refresh_token, sorted(self.scopes), self.client_secret])
        return hashlib.sha256(material.encode("utf-8")).hexdigest()


if t.TYPE_CHECKING:
    from ansible_collections.smail.xoauth2.plugins.module_utils._app_grants import ClientCredentialsGrant, ServiceAccountGrant

    Grant = t.Union[RefreshTokenGrant, ServiceAccountGrant, ClientCredentialsGrant]


class TLSSettings(t.NamedTuple):
    """How the token endpoint's certificate is checked."""

    validate_certs: bool = True
    ca_path: str | None = None
    timeout: float = 30.0


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


class AccessToken(t.NamedTuple):
    """An access token and where it came from (``given``, ``cache`` or ``refresh``)."""

    token: str
    source: str
    expires_at: datetime.datetime | None = None
    scopes: tuple[str, ...] = ()
    #: The new refresh token when the endpoint rotated it (Microsoft does on every refresh).
    rotated_refresh_token: str | None = None
    #: When the refresh token expires (the rotated one, if rotated), as a token endpoint stated it; None when unknown.
    refresh_token_expires_at: datetime.datetime | None = None
    #: Requested scopes the token endpoint's answer left out (beyond those the provider never lists), after a refresh.
    missing_scopes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"AccessToken(source={self.source!r}, expires_at={self.expires_at!r}, scopes={self.scopes!r}, "
                f"refresh_token_expires_at={self.refresh_token_expires_at!r})")

    def expires_in(self, now: datetime.datetime | None = None) -> int | None:
        """Whole seconds until expiry, or None when unknown."""
        if self.expires_at is None:
            return None
        now = now or _utcnow()
        return max(0, int((self.expires_at - now).total_seconds()))


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def split_scopes(scopes: str | t.Iterable[str] | None) -> tuple[str, ...]:
    """Scopes given as a space-separated string or a list, as a tuple without duplicates."""
    if scopes is None:
        return ()
    items = scopes.split() if isinstance(scopes, str) else [part for item in scopes for part in str(item).split()]
    return tuple(dict.fromkeys(items))


def resolve_grant(
    *,
    provider: str,
    client_id: str | None,
    client_secret: str | None,
    refresh_token: str | None,
    token_uri: str | None = None,
    tenant: str | None = None,
    scopes: str | t.Iterable[str] | None = None,
    grant: str | None = None,
    service_account_key: t.Any = None,
    delegated_user: str | None = None,
    client_certificate: str | None = None,
    client_certificate_key: str | None = None,
) -> Grant:
    """Combine explicit options with the provider's registry entry; raise OptionError naming what is missing."""
    entry = _providers.get_provider(provider)
    grant_type = _providers.check_grant(entry, grant)
    resolved_scopes = split_scopes(scopes) or entry.default_scopes(grant_type)
    if grant_type != _providers.REFRESH_TOKEN:
        # The app-only grants' code is imported only by the tasks that use one.
        from ansible_collections.smail.xoauth2.plugins.module_utils._app_grants import resolve_app_grant  # pylint: disable=import-outside-toplevel

        return resolve_app_grant(entry, grant_type, client_id=client_id, client_secret=client_secret, token_uri=token_uri,
                                 tenant=tenant, scopes=resolved_scopes, service_account_key=service_account_key,
                                 delegated_user=delegated_user, client_certificate=client_certificate,
                                 client_certificate_key=client_certificate_key)
    if not client_id:
        raise OptionError("client_id", f"is required for grant={grant_type} (or give access_token)")
    uri = entry.endpoint("token_uri", explicit=token_uri, tenant=tenant, grant=grant_type)
    if not refresh_token:
        raise OptionError("refresh_token", "is required to refresh an access token (or give access_token)")
    return RefreshTokenGrant(
        client_id=client_id,
        client_secret=client_secret or None,
        refresh_token=refresh_token,
        token_uri=uri,
        scopes=resolved_scopes,
        send_scopes=entry.send_scopes_on_refresh and bool(resolved_scopes),
        provider=entry.name,
    )


# --- errors -------------------------------------------------------------------------------------

class TokenError(SmailError):
    """The token endpoint refused the refresh, could not be reached, or answered nonsense.

    ``transient`` is True when trying again later may succeed (the endpoint was unreachable, timed out, or
    answered 5xx): the request certainly did not produce a token.
    """

    def __init__(self, code: str, msg: str, *, hint: str | None = None, details: dict[str, t.Any] | None = None,
                 transient: bool = False) -> None:
        super().__init__(code, msg, hint=hint, details=details)
        self.transient = transient


def fetch_access_token(grant: Grant, *, tls: TLSSettings | None = None) -> AccessToken:
    """A new access token for any grant, from the token endpoint (``_token_endpoint``, imported only then)."""
    from ansible_collections.smail.xoauth2.plugins.module_utils import _token_endpoint  # pylint: disable=import-outside-toplevel

    return _token_endpoint.fetch_access_token(grant, tls=tls)


# --- cache --------------------------------------------------------------------------------------

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
        now = now or _utcnow()
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


def obtain_access_token(
    *,
    grant: Grant | None,
    access_token: str | None = None,
    cache: TokenCache | None = None,
    tls: TLSSettings | None = None,
    refresh: t.Callable[..., AccessToken] = fetch_access_token,
    refused: str | None = None,
    margin: float = EXPIRY_MARGIN_SECONDS,
    retry: RetryPolicy = NO_RETRY,
    sleep: t.Callable[[float], None] = time.sleep,
    clock: t.Callable[[], float] = time.monotonic,
    now: t.Callable[[], datetime.datetime] = _utcnow,
) -> AccessToken:
    """An access token for the grant: the given one as is, else a cached one, else a fresh refresh.

    ``refused`` is a token the server has just refused: it is never handed out again, and the refresh that
    replaces it happens once even when many processes saw it refused at the same time. A rotated refresh token is
    reported on the result; the cache keeps only the access token, under the old refresh token and, when rotated,
    under the new one too, so the next task finds it whichever it uses. Transient endpoint failures are retried
    as ``retry`` says.

    The result's ``refresh_token_expires_at`` is what a token endpoint stated, now or (with a cache) earlier: the
    cache records a rotated refresh token as obtained ``now()``, and a stated expiry under the refresh token it
    concerns (:meth:`TokenCache.store_refresh_record`); a cached access token comes with the record's expiry.

    With a cache, one process refreshes a grant while the others wait for its token, at most the request's timeout
    plus :data:`LOCK_WAIT_MARGIN_SECONDS` (then each goes on alone: a stuck process must not stop the others). A
    transient failure is remembered for :data:`FAILURE_MEMORY_SECONDS` after each failed attempt: the waiting and
    later processes raise ``token_endpoint_unavailable`` (transient) at once, so an outage costs every fork on the
    machine one retry budget together, not one each, and the endpoint is asked by one of them only.

    Every wait (the retries' pauses, the lock's) reads ``clock`` and pauses with ``sleep``.
    """
    if access_token:
        return _registered(AccessToken(token=access_token, source="given"))
    if grant is None:
        raise OptionError("refresh_token", "either access_token or client_id, client_secret and refresh_token are required")
    if cache is None:
        return _registered(_refresh_with_retries(grant, refresh, tls=tls, retry=retry, sleep=sleep, clock=clock))
    key = cache_key(grant, tls)

    def raise_remembered_failure() -> None:
        failure = cache.remembered_failure(key, endpoint=grant.token_uri)
        if failure is not None:
            raise failure

    def refresh_remembering(this_grant: Grant, **kwargs: t.Any) -> AccessToken:
        try:
            token = refresh(this_grant, **kwargs)
        except TokenError as exc:
            if exc.transient:
                cache.remember_failure(key, exc)
            else:
                cache.forget_failure(key)  # the endpoint answered: it is not down
            raise
        cache.forget_failure(key)
        return token

    lock_wait = (tls or TLSSettings()).timeout + LOCK_WAIT_MARGIN_SECONDS
    with cache.locked(key, timeout=lock_wait, while_waiting=raise_remembered_failure, clock=clock, sleep=sleep):
        cached = cache.load(key, margin=margin)
        if cached is not None and cached.token != refused:
            return _registered(_with_refresh_record(cached, cache, grant))
        raise_remembered_failure()
        token = _refresh_with_retries(grant, refresh_remembering, tls=tls, retry=retry, sleep=sleep, clock=clock)
        keys = [key]
        if token.rotated_refresh_token and isinstance(grant, RefreshTokenGrant):
            keys.append(cache_key(grant._replace(refresh_token=token.rotated_refresh_token), tls))
        for name in keys:
            try:
                cache.store(name, token)
            except OSError:
                pass  # a cache that cannot be written costs a refresh next time, never the send
        return _registered(_note_refresh_token(token, cache, grant, now=now()))


def _registered(token: AccessToken) -> AccessToken:
    """``token``, its access token and rotated refresh token registered as secrets (see ``_secrets``)."""
    _secrets.register(token.token, token.rotated_refresh_token)
    return token


def _with_refresh_record(token: AccessToken, cache: TokenCache, grant: Grant) -> AccessToken:
    """A cached access token with the expiry recorded for the grant's refresh token."""
    if not isinstance(grant, RefreshTokenGrant):
        return token
    record = cache.load_refresh_record(grant.refresh_token)
    return token._replace(refresh_token_expires_at=record.expires_at) if record else token


def _note_refresh_token(token: AccessToken, cache: TokenCache, grant: Grant, *, now: datetime.datetime) -> AccessToken:
    """Record what a refresh taught about the refresh token; ``token`` with the expiry known for the one to use next.

    A rotated refresh token was obtained ``now``, with the expiry stated along with it (or none); the replaced one's
    record is left as it was. Otherwise a newly stated expiry replaces the recorded one, and an unstated one keeps it.
    """
    if not isinstance(grant, RefreshTokenGrant):
        return token
    if token.rotated_refresh_token:
        cache.store_refresh_record(token.rotated_refresh_token,
                                   RefreshTokenRecord(obtained_at=now, expires_at=token.refresh_token_expires_at))
        return token
    known = cache.load_refresh_record(grant.refresh_token) or RefreshTokenRecord()
    if token.refresh_token_expires_at is not None:
        if known.expires_at != token.refresh_token_expires_at:
            cache.store_refresh_record(grant.refresh_token, known.stated(token.refresh_token_expires_at))
        return token
    return token._replace(refresh_token_expires_at=known.expires_at)


def _refresh_with_retries(grant: Grant, refresh: t.Callable[..., AccessToken], *, tls: TLSSettings | None,
                          retry: RetryPolicy, sleep: t.Callable[[float], None],
                          clock: t.Callable[[], float]) -> AccessToken:
    """``refresh(grant)``, with transient failures retried as ``retry`` says; the last error has ``token_attempts``."""
    started = clock()
    failures = 0
    while True:
        try:
            return refresh(grant, tls=tls)
        except TokenError as exc:
            failures += 1
            pause = retry.pause(failures, clock() - started) if exc.transient else None
            if pause is None:
                exc.details.setdefault("token_attempts", failures)
                raise
            sleep(pause)
