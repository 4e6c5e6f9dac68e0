# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The grants an access token comes from, and the access token: a long-lived refresh token (RFC 6749 section 6), a
Google service account's signed assertion acting as a Workspace user (RFC 7523, domain-wide delegation), or an app's
client credentials (RFC 6749 section 4.4, Microsoft Entra ID). Provider knowledge (endpoints, scopes) lives in
``_providers``.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.app_grants import ClientCredentialsGrant, ServiceAccountGrant, resolve_app_grant


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


#: Any of the three grants.
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
        now = now or utcnow()
        return max(0, int((self.expires_at - now).total_seconds()))


def utcnow() -> datetime.datetime:
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
