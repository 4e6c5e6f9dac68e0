# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The app-only grants: a Google service account acting as a Workspace user, and an app's client credentials.

Imported by ``_grants.resolve_grant`` only for ``grant=service_account`` or ``grant=client_credentials``, so a send
with a refresh token never loads it. This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import hashlib
import json
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers, _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError


def _digest(*parts: t.Any) -> str:
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


class ServiceAccountGrant(t.NamedTuple):
    """A Google service account that signs its own assertion (RFC 7523), acting as ``subject`` (domain-wide delegation)."""

    key: t.Mapping[str, t.Any]
    subject: str | None
    token_uri: str
    scopes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (f"ServiceAccountGrant(client_email={self.key.get('client_email')!r}, subject={self.subject!r}, "
                f"token_uri={self.token_uri!r}, scopes={self.scopes!r})")

    def cache_key(self) -> str:
        """A hash naming this grant in the token cache; it reveals nothing of the key."""
        return _digest(_providers.SERVICE_ACCOUNT, self.token_uri, self.key.get("client_email"), self.key.get("private_key_id"),
                       self.key.get("private_key"), self.subject, sorted(self.scopes))


class ClientCredentialsGrant(t.NamedTuple):
    """An app token for the app itself (RFC 6749 section 4.4): a client secret, or a certificate's signed assertion."""

    client_id: str
    token_uri: str
    client_secret: str | None = None
    certificate: str | None = None
    certificate_key: str | None = None
    scopes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        how = "certificate" if self.certificate else "secret"
        return f"ClientCredentialsGrant(client_id={self.client_id!r}, token_uri={self.token_uri!r}, with={how!r}, scopes={self.scopes!r})"

    def cache_key(self) -> str:
        """A hash naming this grant in the token cache; it reveals nothing of the secret or the key."""
        return _digest(_providers.CLIENT_CREDENTIALS, self.token_uri, self.client_id, self.client_secret, self.certificate,
                       self.certificate_key, sorted(self.scopes))


def parse_service_account_key(value: t.Any) -> dict[str, t.Any]:
    """The JSON key of a service account, given as a dict or as JSON text; OptionError without echoing the key."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise OptionError("service_account_key", "is not JSON (give the service account's JSON key file content)") from None
    if not isinstance(value, t.Mapping):
        raise OptionError("service_account_key", "must be the JSON key of a service account (a dict or JSON text)")
    if value.get("type") != "service_account":
        raise OptionError("service_account_key", f"is a key of type {value.get('type')!r}, not 'service_account'")
    _secrets.register(value.get("private_key"), value.get("private_key_id"))  # as JSON text, only the whole text was registered
    missing = [field for field in ("client_email", "private_key") if not value.get(field)]
    if missing:
        raise OptionError("service_account_key", f"lacks {', '.join(missing)}")
    return dict(value)


def resolve_app_grant(
    entry: _providers.Provider,
    grant_type: str,
    *,
    client_id: str | None,
    client_secret: str | None,
    token_uri: str | None,
    tenant: str | None,
    scopes: tuple[str, ...],
    service_account_key: t.Any,
    delegated_user: str | None,
    client_certificate: str | None,
    client_certificate_key: str | None,
) -> ServiceAccountGrant | ClientCredentialsGrant:
    """The ``service_account`` or ``client_credentials`` grant of the options; raise OptionError naming what is missing."""
    if grant_type == _providers.SERVICE_ACCOUNT:
        if not service_account_key:
            raise OptionError("service_account_key", "is required for grant=service_account")
        key = parse_service_account_key(service_account_key)
        uri = entry.endpoint("token_uri", explicit=token_uri or key.get("token_uri"), tenant=tenant, grant=grant_type)
        return ServiceAccountGrant(key=key, subject=delegated_user or None, token_uri=uri, scopes=scopes)
    if not client_id:
        raise OptionError("client_id", f"is required for grant={grant_type} (or give access_token)")
    uri = entry.endpoint("token_uri", explicit=token_uri, tenant=tenant, grant=grant_type)
    if bool(client_certificate) != bool(client_certificate_key):
        raise OptionError("client_certificate_key" if client_certificate else "client_certificate",
                          "client_certificate and client_certificate_key go together")
    if not client_secret and not client_certificate:
        raise OptionError("client_secret", "or client_certificate and client_certificate_key are required for grant=client_credentials")
    if not scopes:
        raise OptionError("scopes", f"is required for grant=client_credentials with provider {entry.name!r}")
    return ClientCredentialsGrant(client_id=client_id, token_uri=uri, client_secret=client_secret or None,
                                  certificate=client_certificate or None, certificate_key=client_certificate_key or None,
                                  scopes=scopes)
