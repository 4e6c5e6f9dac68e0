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

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import ensure_private_directory, write_private_file
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows controllers are not supported by ansible-core
    fcntl = None  # type: ignore[assignment]


#: Seconds a cached token must stay valid to be handed out: enough for a slow send (Microsoft refuses a token
#: close to its expiry with 501 5.5.127).
EXPIRY_MARGIN_SECONDS = 300


class RefreshTokenGrant(t.NamedTuple):
    """What a token endpoint needs to turn a refresh token into an access token."""

    client_id: str
    client_secret: str | None
    refresh_token: str
    token_uri: str
    scopes: tuple[str, ...] = ()
    send_scopes: bool = False

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


class AccessToken(t.NamedTuple):
    """An access token and where it came from (``given``, ``cache`` or ``refresh``)."""

    token: str
    source: str
    expires_at: datetime.datetime | None = None
    scopes: tuple[str, ...] = ()
    #: The new refresh token when the endpoint rotated it (Microsoft does on every refresh).
    rotated_refresh_token: str | None = None

    def __repr__(self) -> str:
        return f"AccessToken(source={self.source!r}, expires_at={self.expires_at!r}, scopes={self.scopes!r})"

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


class MissingLibraryError(SmailError):
    """A Python library needed for the refresh is not installed where the refresh runs."""

    def __init__(self, library: str, exc: ImportError) -> None:
        super().__init__("missing_library", f"The Python library {library} is required to refresh an access token: {exc}",
                         details={"library": library})
        self.library = library


def fetch_access_token(grant: Grant, *, tls: TLSSettings | None = None) -> AccessToken:
    """A new access token for any grant, from the token endpoint (``_token_endpoint``, imported only then)."""
    from ansible_collections.smail.xoauth2.plugins.module_utils import _token_endpoint  # pylint: disable=import-outside-toplevel

    return _token_endpoint.fetch_access_token(grant, tls=tls)


# --- cache --------------------------------------------------------------------------------------

def default_cache_dir() -> str:
    """The cache directory used when none is given: ``~/.ansible/smail_xoauth2/tokens``."""
    return os.path.join(os.path.expanduser("~"), ".ansible", "smail_xoauth2", "tokens")


class TokenCache:
    """Access tokens on disk, one 0600 JSON file per grant in a 0700 directory.

    The lock taken by :meth:`locked` spans lookup, refresh and store, so concurrent tasks, forks and
    hosts on one machine refresh a grant once, not once each.
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or default_cache_dir()

    def _ensure_directory(self) -> None:
        try:
            ensure_private_directory(self.directory)
        except OSError as exc:
            raise SmailError("token_cache", f"Cannot create the token cache directory {self.directory}: {exc.strerror}",
                             hint="Set token_cache_dir to a writable directory or token_cache=false.") from None

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")

    @contextlib.contextmanager
    def locked(self, key: str) -> t.Iterator[None]:
        """Hold an exclusive lock for ``key`` (a no-op where fcntl is missing)."""
        self._ensure_directory()
        fd = os.open(os.path.join(self.directory, f"{key}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def load(self, key: str, *, now: datetime.datetime | None = None, margin: float = EXPIRY_MARGIN_SECONDS) -> AccessToken | None:
        """The cached token for ``key`` if it stays valid for more than ``margin`` seconds, else None."""
        now = now or _utcnow()
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                entry = json.load(handle)
            expires_at = datetime.datetime.fromtimestamp(float(entry["expires_at"]), datetime.timezone.utc)
            token = str(entry["access_token"])
        except (OSError, ValueError, KeyError, TypeError):
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
) -> AccessToken:
    """An access token for the grant: the given one as is, else a cached one, else a fresh refresh.

    ``refused`` is a token the server has just refused: it is never handed out again, and the refresh that
    replaces it happens once even when many processes saw it refused at the same time. A rotated refresh token is
    reported on the result; the cache keeps only the access token, under the old refresh token and, when rotated,
    under the new one too, so the next task finds it whichever it uses. Transient endpoint failures are retried
    as ``retry`` says.
    """
    if access_token:
        return AccessToken(token=access_token, source="given")
    if grant is None:
        raise OptionError("refresh_token", "either access_token or client_id, client_secret and refresh_token are required")

    def refresh_with_retries() -> AccessToken:
        started = time.monotonic()
        failures = 0
        while True:
            try:
                return refresh(grant, tls=tls)
            except TokenError as exc:
                failures += 1
                pause = retry.pause(failures, time.monotonic() - started) if exc.transient else None
                if pause is None:
                    exc.details.setdefault("token_attempts", failures)
                    raise
                sleep(pause)

    if cache is None:
        return refresh_with_retries()
    key = grant.cache_key()
    with cache.locked(key):
        cached = cache.load(key, margin=margin)
        if cached is not None and cached.token != refused:
            return cached
        token = refresh_with_retries()
        keys = [key]
        if token.rotated_refresh_token and isinstance(grant, RefreshTokenGrant):
            keys.append(grant._replace(refresh_token=token.rotated_refresh_token).cache_key())
        for name in keys:
            try:
                cache.store(name, token)
            except OSError:
                pass  # a cache that cannot be written costs a refresh next time, never the send
        return token
