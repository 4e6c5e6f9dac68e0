# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An access token for a grant: the given one, a cached one, or a fresh one from the token endpoint, with retries.

The endpoint (``endpoint``) imports google-auth and requests only when a token is actually fetched.
This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import datetime
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.cache import (
    EXPIRY_MARGIN_SECONDS,
    LOCK_WAIT_MARGIN_SECONDS,
    TokenCache,
    cache_key,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.expiry import RefreshTokenRecord
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.grants import (
    AccessToken,
    Grant,
    RefreshTokenGrant,
    TLSSettings,
    TokenError,
    utcnow,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy


# The token endpoint's client, _oauth2/endpoint.py, is imported when a token is fetched: with it come google-auth and
# requests, which a send with a cached or given token never needs (the module itself costs about 4 ms to compile in a
# module process; google-auth and requests are imported by its functions).
def fetch_access_token(grant: Grant, *, tls: TLSSettings | None = None) -> AccessToken:
    """A new access token for any grant, from the token endpoint."""
    from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.endpoint import fetch_access_token as fetch  # pylint: disable=import-outside-toplevel

    return fetch(grant, tls=tls)


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
    now: t.Callable[[], datetime.datetime] = utcnow,
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
    return _obtain_cached(grant, cache, refresh, tls=tls, refused=refused, margin=margin, retry=retry, sleep=sleep,
                          clock=clock, now=now)


def _obtain_cached(grant: Grant, cache: TokenCache, refresh: t.Callable[..., AccessToken], *, tls: TLSSettings | None,
                   refused: str | None, margin: float, retry: RetryPolicy, sleep: t.Callable[[float], None],
                   clock: t.Callable[[], float], now: t.Callable[[], datetime.datetime]) -> AccessToken:
    """:func:`obtain_access_token` with a cache: the cached token unless it is ``refused``, else one refresh under
    the grant's lock, stored for the next task; a transient endpoint failure is remembered for the other processes."""
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
        _store(token, cache, grant, key=key, tls=tls)
        return _registered(_note_refresh_token(token, cache, grant, now=now()))


def _store(token: AccessToken, cache: TokenCache, grant: Grant, *, key: str, tls: TLSSettings | None) -> None:
    """Cache ``token`` under ``key`` and, when the refresh token rotated, under the new refresh token's key too."""
    keys = [key]
    if token.rotated_refresh_token and isinstance(grant, RefreshTokenGrant):
        keys.append(cache_key(grant._replace(refresh_token=token.rotated_refresh_token), tls))
    for name in keys:
        try:
            cache.store(name, token)
        except OSError:
            pass  # a cache that cannot be written costs a refresh next time, never the send


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
