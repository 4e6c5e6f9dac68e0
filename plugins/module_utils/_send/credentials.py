# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Credentials from options and from SMAIL's token INI, the grant they make, and the access token.

Options arrive as a plain mapping (``module.params`` or a plugin's ``get_option()`` values) with the names of the
``oauth2`` option group. This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import datetime
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import cache as _token_cache
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import tokens as _tokens
from ansible_collections.smail.xoauth2.plugins.module_utils._send import settings as _settings

if t.TYPE_CHECKING:
    from ansible_collections.smail.xoauth2.plugins.module_utils._ini.rotation import RotationOutcome
    from ansible_collections.smail.xoauth2.plugins.module_utils._ini.token_layout import TokenIniLayout

# The _ini package (the INI engine, the token INI layout, the rotated-token writer) is imported where a token INI is
# read or written: a send from options alone, the usual case, never compiles it in the module process (about 10 ms
# of a module's start, measured with python -X importtime).


class Credentials:
    """OAuth2 credentials from options, completed from a SMAIL refresh-token INI where options are silent."""

    def __init__(self, client_id: str | None = None, client_secret: str | None = None, refresh_token: str | None = None,
                 token_uri: str | None = None, account: str | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.token_uri = token_uri
        self.account = account
        #: Where the refresh token came from: ``options`` or the token INI's path.
        self.origin = "options"
        #: The layout the token INI was read with, for the rotated-token write-back; None until a token INI is read.
        self.layout: TokenIniLayout | None = None

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, token_uri={self.token_uri!r}, account={self.account!r})"


def token_ini_layout(options: t.Mapping[str, t.Any]) -> TokenIniLayout:
    """The token INI layout of ``token_ini_section`` and ``token_ini_keys`` (SmailRefreshToken.exe's by default)."""
    from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini  # pylint: disable=import-outside-toplevel
    from ansible_collections.smail.xoauth2.plugins.module_utils._ini import token_layout as _token_ini  # pylint: disable=import-outside-toplevel

    try:
        return _token_ini.TokenIniLayout.from_options(options.get("token_ini_section"), options.get("token_ini_keys"),
                                                      section_option="token_ini_section", keys_option="token_ini_keys")
    except _ini.IniError as exc:
        option = exc.field.split("[", 1)[0]
        raise OptionError(option, f"{exc.field}: {exc.problem}" if "[" in exc.field else exc.problem) from None


def read_credentials(options: t.Mapping[str, t.Any]) -> Credentials:
    """The credentials named by the options; ``token_ini`` fills what the options leave empty."""
    credentials = Credentials(
        client_id=options.get("client_id"),
        client_secret=options.get("client_secret"),
        refresh_token=options.get("refresh_token"),
        token_uri=options.get("token_uri"),
    )
    path = options.get("token_ini")
    if not path:
        return credentials
    from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini  # pylint: disable=import-outside-toplevel

    layout = token_ini_layout(options)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OptionError("token_ini", f"cannot read {path}: {exc.strerror}") from None
    try:
        values = layout.read(data)
    except _ini.IniError as exc:
        raise OptionError("token_ini", f"{path} is not a readable token INI: {exc.problem}") from None
    credentials.layout = layout
    for field in ("client_id", "client_secret", "refresh_token", "token_uri", "account"):
        if not getattr(credentials, field) and values.get(field):
            setattr(credentials, field, values[field])
            if field == "refresh_token":
                credentials.origin = path
    if not credentials.refresh_token and not options.get("access_token") and grant_type(options) == "refresh_token":
        raise OptionError("token_ini", f"{path} holds no refresh token under the keys "
                                       f"[{layout.section}] {layout.keys['refresh_token']}")
    return credentials


def grant_type(options: t.Mapping[str, t.Any]) -> str:
    """The ``grant`` option, ``refresh_token`` by default."""
    return options.get("grant") or "refresh_token"


def token_cache(options: t.Mapping[str, t.Any]) -> _token_cache.TokenCache | None:
    """The shared token cache, or None when ``token_cache`` is off."""
    if not options.get("token_cache", True):
        return None
    return _token_cache.TokenCache(options.get("token_cache_dir"))


def expiry_margin(options: t.Mapping[str, t.Any]) -> float:
    """Seconds a cached token must stay valid to be used: ``token_expiry_margin``, else the provider's."""
    margin = options.get("token_expiry_margin")
    if margin is None:
        return float(_providers.get_provider(options.get("provider")).token_expiry_margin)
    if margin < 0:
        raise OptionError("token_expiry_margin", "must be 0 or more seconds")
    return float(margin)


def resolve_grant(options: t.Mapping[str, t.Any], credentials: Credentials, *,
                  default_user: str | None = None) -> _grants.Grant:
    """The grant of the options; a service account acts as ``delegated_user``, else ``default_user`` (the SMTP account)."""
    return _grants.resolve_grant(
        provider=options.get("provider") or "google",
        grant=grant_type(options),
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        refresh_token=credentials.refresh_token,
        token_uri=credentials.token_uri,
        tenant=options.get("tenant"),
        scopes=options.get("scopes"),
        service_account_key=options.get("service_account_key"),
        delegated_user=options.get("delegated_user") or default_user,
        client_certificate=options.get("client_certificate"),
        client_certificate_key=options.get("client_certificate_key"),
    )


def obtain_token(options: t.Mapping[str, t.Any], credentials: Credentials | None = None, *,
                 refused: str | None = None, default_user: str | None = None) -> _grants.AccessToken:
    """An access token for the options: given, cached or fetched; never ``refused``, a token the server refused."""
    if options.get("access_token"):
        return _tokens.obtain_access_token(grant=None, access_token=options["access_token"])
    credentials = credentials or read_credentials(options)
    grant = resolve_grant(options, credentials, default_user=default_user)
    return _tokens.obtain_access_token(grant=grant, cache=token_cache(options), tls=_settings.tls_settings(options),
                                       refused=refused, margin=expiry_margin(options),
                                       retry=_settings.retry_policy(options))


def scope_warnings(token: _grants.AccessToken) -> list[str]:
    """The warning of a refresh whose answer left out a requested scope (never a secret); none otherwise."""
    if not token.missing_scopes:
        return []
    return [f"The token endpoint did not grant {' '.join(token.missing_scopes)} (it granted "
            f"{' '.join(token.scopes) or 'nothing it listed'}): the mail server may refuse the token. Authorize again "
            "with these scopes, and check that the app registration has the permission."]


def settle_rotation(options: t.Mapping[str, t.Any], credentials: Credentials, token: _grants.AccessToken, *,
                    check_only: bool = False) -> RotationOutcome | None:
    """What became of a refresh token the endpoint rotated (see ``_ini.rotation``); None when it did not rotate."""
    if not token.rotated_refresh_token:
        return None
    from ansible_collections.smail.xoauth2.plugins.module_utils._ini import rotation as _rotation  # pylint: disable=import-outside-toplevel

    return _rotation.settle_rotation(options, new_token=token.rotated_refresh_token, origin=credentials.origin,
                                     old_token=credentials.refresh_token, layout=credentials.layout, check_only=check_only)


def expires_at_iso(token: _grants.AccessToken) -> str | None:
    """The token's expiry as ISO 8601 UTC (``2026-01-01T00:00:00Z``), or None."""
    if token.expires_at is None:
        return None
    return token.expires_at.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def refresh_token_expiry(options: t.Mapping[str, t.Any], token: _grants.AccessToken | None, *,
                         now: datetime.datetime | None = None) -> _refresh_expiry.ExpiryReport:
    """What a task reports about the refresh token behind ``token``: its known expiry, and a warning when that is
    within ``refresh_token_warn_days``. Nothing for a given access token or an unknown expiry."""
    if token is None:
        return _refresh_expiry.ExpiryReport()
    return _refresh_expiry.report(token.refresh_token_expires_at, days=_refresh_expiry.warn_days(options),
                                  now=now or datetime.datetime.now(datetime.timezone.utc))


def recorded_refresh_token_expiry(options: t.Mapping[str, t.Any], *,
                                  now: datetime.datetime | None = None) -> _refresh_expiry.ExpiryReport:
    """:func:`refresh_token_expiry` from the token cache's record alone, without asking the token endpoint.

    Nothing for a given access token, another grant, ``token_cache=false`` or a refresh token without a record.
    """
    cache = token_cache(options)
    if options.get("access_token") or grant_type(options) != "refresh_token" or cache is None:
        return _refresh_expiry.ExpiryReport()
    days = _refresh_expiry.warn_days(options)
    refresh_token = read_credentials(options).refresh_token
    record = cache.load_refresh_record(refresh_token) if refresh_token else None
    return _refresh_expiry.report(record.expires_at if record else None, days=days,
                                  now=now or datetime.datetime.now(datetime.timezone.utc))
