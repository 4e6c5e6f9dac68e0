# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The provider registry: everything the collection knows about Google, Microsoft and custom OAuth 2.0 mail servers.

One entry per provider: its authorization, token and device authorization endpoints (``{tenant}`` in Microsoft's),
the scopes each grant asks for, the SMTP server, the grants it supports, whether its device flow can issue a mail
token, and hints for the server replies users meet. The token core, the consent flow, the ``token_ini`` action, the
mail defaults, the roles (through the ``provider_info`` filter) and the ``choices`` of every ``provider`` and
``grant`` option derive from this file; a unit test fails when a copy drifts. Adding a provider is one entry here.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._net import require_secure_url

#: A refresh token obtained by consent (what SmailRefreshToken.exe does).
REFRESH_TOKEN = "refresh_token"
#: An app token for the app itself, with a client secret or certificate (Microsoft Entra ID, SMTP.SendAsApp).
CLIENT_CREDENTIALS = "client_credentials"
#: A Google service account acting as a Workspace user through domain-wide delegation.
SERVICE_ACCOUNT = "service_account"
GRANTS = (REFRESH_TOKEN, CLIENT_CREDENTIALS, SERVICE_ACCOUNT)

GOOGLE_MAIL_SCOPE = "https://mail.google.com/"

#: Seconds a cached access token must still be valid to be used, unless the provider needs more.
DEFAULT_TOKEN_EXPIRY_MARGIN = 300

# Google returns a refresh token only for offline access, and a new one only when the consent screen is shown again.
_OFFLINE_CONSENT = (("access_type", "offline"), ("prompt", "consent"))


#: An RFC 3463 enhanced status code (``5.7.3``), as a reply hint's marker.
_STATUS_CODE = re.compile(r"\d\.\d{1,3}\.\d{1,3}")
#: The SASL mechanisms that log in with an access token; PLAIN and LOGIN send a password.
TOKEN_MECHANISMS = ("xoauth2", "oauthbearer")
PASSWORD_MECHANISMS = ("plain", "login")


class ReplyHint(t.NamedTuple):
    """What to check when the server's reply to AUTH (or MAIL) contains ``marker``, after a login with one of
    ``mechanisms`` (any when None).

    A marker that is an enhanced status code matches that whole code only: ``5.7.3`` is not the start of ``5.7.30``.
    """

    marker: str
    hint: str
    mechanisms: tuple[str, ...] | None = None
    #: The error code the refusal gets instead of ``smtp_auth``, for a reply that means something of its own.
    code: str | None = None

    def matches(self, reply: str, mechanism: str = "xoauth2") -> bool:
        if self.mechanisms is not None and mechanism not in self.mechanisms:
            return False
        if _STATUS_CODE.fullmatch(self.marker):
            return re.search(rf"(?<![\d.]){re.escape(self.marker)}(?!\.?\d)", reply) is not None
        return self.marker in reply


class Provider(t.NamedTuple):
    """One OAuth 2.0 mail provider."""

    name: str
    auth_uri: str | None
    token_uri: str | None
    #: Scopes per grant; a grant missing here is not supported by the provider.
    scopes: t.Mapping[str, tuple[str, ...]]
    #: Azure AD refuses a refresh request without ``scope``; Google does not need it.
    send_scopes_on_refresh: bool
    smtp_host: str | None
    smtp_port: int | None
    smtp_secure: str | None
    #: Extra parameters of the consent URL that make the provider return a refresh token.
    consent_params: tuple[tuple[str, str], ...] = ()
    #: Grants whose token endpoint must name a tenant (not ``common``).
    tenant_required_for: tuple[str, ...] = ()
    reply_hints: tuple[ReplyHint, ...] = ()
    #: Hints for the token endpoint's error codes on a refresh, over the generic ones (``invalid_grant`` for Google).
    refresh_error_hints: t.Mapping[str, str] = {}
    #: The device authorization endpoint (RFC 8628) of the consent's device mode; None: the option must name one.
    device_authorization_uri: str | None = None
    #: Why the provider's device flow cannot issue a token that sends mail; when set, device mode is refused.
    device_flow_refusal: str | None = None
    #: Seconds a cached access token must still be valid to be used when ``token_expiry_margin`` is not given.
    token_expiry_margin: int = DEFAULT_TOKEN_EXPIRY_MARGIN
    #: Scopes the provider grants without ever listing them in a token answer's ``scope``.
    unlisted_scopes: tuple[str, ...] = ()

    @property
    def grants(self) -> tuple[str, ...]:
        """The grants this provider supports, in the registry's order."""
        return tuple(grant for grant in GRANTS if grant in self.scopes)

    def default_scopes(self, grant: str) -> tuple[str, ...]:
        return self.scopes.get(grant, ())

    def reply_hint(self, reply: str, *, mechanism: str = "xoauth2") -> str | None:
        """The hint for a server reply after a login with ``mechanism``, the first that matches; None when none does."""
        entry = self.reply_entry(reply, mechanism=mechanism)
        return entry.hint if entry else None

    def reply_entry(self, reply: str, *, mechanism: str = "xoauth2") -> ReplyHint | None:
        """The first reply hint that matches a server reply after a login with ``mechanism``; None when none does."""
        return next((entry for entry in self.reply_hints if entry.matches(reply, mechanism)), None)

    def endpoint(self, which: str, *, explicit: str | None, tenant: str | None, grant: str = REFRESH_TOKEN,
                 option: str | None = None) -> str:
        """The ``auth_uri``, ``token_uri`` or ``device_authorization_uri`` to use: ``explicit`` or the provider's, tenant
        filled in, https checked."""
        option = option or which
        template = explicit or getattr(self, which)
        if not template:
            raise OptionError(option, f"is required with provider {self.name!r}")
        if "{tenant}" in template and grant in self.tenant_required_for and (not tenant or tenant in _SHARED_TENANTS):
            raise OptionError("tenant", f"must name the directory (tenant ID or domain) for grant={grant}: "
                                        f"{', '.join(_SHARED_TENANTS)} cannot issue app tokens")
        return require_secure_url(option, fill_tenant(template, tenant))


_SHARED_TENANTS = ("common", "organizations", "consumers")


def fill_tenant(uri: str, tenant: str | None) -> str:
    """``uri`` with its ``{tenant}`` placeholder (Microsoft endpoints) replaced by ``tenant``, ``common`` by default."""
    return uri.replace("{tenant}", tenant or "common") if "{tenant}" in uri else uri


_GOOGLE_HINTS = (
    ReplyHint('"status":"400"', "Gmail refused the token (its JSON challenge said 400): the token's scope must include "
                                "https://mail.google.com/ and username must be the account the token is for (for a "
                                "service account: the delegated Workspace user, never the service account itself).",
              TOKEN_MECHANISMS),
    ReplyHint("5.7.8", "Gmail did not accept the token for this username: check that username is the account that "
                       "granted it; with grant=service_account, that delegated_user is set (a token for the service "
                       "account itself is always refused) and that the Admin console's domain-wide delegation lists the "
                       "service account's client ID with the scope https://mail.google.com/.", TOKEN_MECHANISMS),
    # 535-5.7.8 BadCredentials for a password: Gmail takes an app password of an account with 2-Step Verification
    # (https://support.google.com/mail/answer/185833), never the account password.
    ReplyHint("5.7.8", "Gmail did not accept username and password: username must be the whole address and password an "
                       "app password of that account (Google Account > Security > 2-Step Verification > App passwords), "
                       "not the account password; a Workspace administrator may have turned app passwords off. "
                       "auth=xoauth2 needs no password.", PASSWORD_MECHANISMS),
)

#: Google's refresh errors: a refresh token of an app still in "Testing" dies 7 days after the consent.
GOOGLE_TESTING_EXPIRY_HINT = (
    "The refresh token has expired or was revoked: authorize again (smail.xoauth2.authorize or SmailRefreshToken.exe) "
    "and store the new refresh token. Refresh tokens of a Google app whose publishing status is \"Testing\" expire "
    "7 days after the consent: publish the app so that they do not (Google Cloud console > APIs & Services > OAuth "
    "consent screen, in the newer console Google Auth Platform > Audience: Publish app, publishing status \"In "
    "production\"), then authorize once more. A password change also revokes Gmail refresh tokens."
)

_GOOGLE_REFRESH_ERROR_HINTS = {"invalid_grant": GOOGLE_TESTING_EXPIRY_HINT}

#: Where the collection explains the end of Basic authentication for SMTP AUTH in Exchange Online.
MIGRATION_GUIDE = "docs/migration.md"

_MICROSOFT_HINTS = (
    # Exchange Online's answer once Basic authentication for SMTP AUTH is off:
    # https://techcommunity.microsoft.com/t5/exchange-team-blog/exchange-online-to-retire-basic-auth-for-client-submission-smtp/ba-p/4114750
    ReplyHint("5.7.30", "Exchange Online no longer accepts a password (Basic authentication) for SMTP AUTH: send with "
                        "auth=xoauth2 and a token of the mailbox (smail.xoauth2.authorize obtains one), or with "
                        f"grant=client_credentials for an app; {MIGRATION_GUIDE} shows the move.",
              code="basic_auth_disabled"),
    # High Volume Email (https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/high-volume-mails-m365)
    # refuses a token with less than 10 minutes left.
    ReplyHint("5.5.127", "The server refused an access token close to its expiry (High Volume Email, "
                         "smtp-hve.office365.com, wants at least 10 minutes left): leave token_expiry_margin unset "
                         "(600 seconds for provider microsoft) or set it to 600 or more."),
    ReplyHint("5.7.139", "SMTP AUTH is disabled for the tenant or the mailbox (SmtpClientAuthentication is disabled): "
                         "enable it for the mailbox (Microsoft 365 admin center > user > Mail > Manage email apps > "
                         "Authenticated SMTP, or Set-CASMailbox -SmtpClientAuthenticationDisabled $false)."),
    ReplyHint("5.7.57", "The server wants an authenticated session before MAIL: use secure=starttls on port 587 with "
                        "auth=xoauth2."),
    ReplyHint("5.7.3", "Microsoft refused the token for this mailbox: with a delegated token, check the scope "
                       "https://outlook.office.com/SMTP.Send and that username is the signed-in user; with "
                       "grant=client_credentials, check that the app has the SMTP.SendAsApp application permission "
                       "(admin consent granted), that its Exchange service principal exists (New-ServicePrincipal) and "
                       "has FullAccess on the mailbox (Add-MailboxPermission), and that username is that mailbox.",
              TOKEN_MECHANISMS),
    # 535 5.7.3 "Authentication unsuccessful" for a password: Basic authentication to SMTP AUTH
    # (https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission).
    ReplyHint("5.7.3", "Microsoft 365 did not accept username and password: check both; an account with multi-factor "
                       "authentication needs an app password, and security defaults or Conditional Access may block "
                       "passwords for SMTP AUTH altogether. auth=xoauth2 needs no password.", PASSWORD_MECHANISMS),
)

PROVIDERS: t.Mapping[str, Provider] = {
    "google": Provider(
        name="google",
        auth_uri="https://accounts.google.com/o/oauth2/auth",
        token_uri="https://oauth2.googleapis.com/token",
        scopes={REFRESH_TOKEN: (GOOGLE_MAIL_SCOPE,), SERVICE_ACCOUNT: (GOOGLE_MAIL_SCOPE,)},
        send_scopes_on_refresh=False,
        smtp_host="smtp.gmail.com",
        smtp_port=465,
        smtp_secure="ssl",
        consent_params=_OFFLINE_CONSENT,
        reply_hints=_GOOGLE_HINTS,
        refresh_error_hints=_GOOGLE_REFRESH_ERROR_HINTS,
        device_flow_refusal=f"Google does not allow the Gmail scope {GOOGLE_MAIL_SCOPE} on its device flow "
                            "(OAuth 2.0 for TV and limited-input devices)",
    ),
    "microsoft": Provider(
        name="microsoft",
        auth_uri="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        token_uri="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        scopes={REFRESH_TOKEN: ("https://outlook.office.com/SMTP.Send", "offline_access"),
                CLIENT_CREDENTIALS: ("https://outlook.office365.com/.default",)},
        send_scopes_on_refresh=True,
        smtp_host="smtp.office365.com",
        smtp_port=587,
        smtp_secure="starttls",
        tenant_required_for=(CLIENT_CREDENTIALS,),
        reply_hints=_MICROSOFT_HINTS,
        device_authorization_uri="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        # High Volume Email refuses a token with less than 10 minutes left (501 5.5.127).
        token_expiry_margin=600,
        # A token answer lists "the scopes that the access_token is valid for": offline_access asks for the refresh
        # token and the OpenID Connect scopes for the ID token, so Entra ID never lists them.
        # https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#successful-response-2
        unlisted_scopes=("offline_access", "openid", "profile", "email"),
    ),
    "custom": Provider(
        name="custom",
        auth_uri=None,
        token_uri=None,
        scopes={REFRESH_TOKEN: (), CLIENT_CREDENTIALS: (), SERVICE_ACCOUNT: ()},
        send_scopes_on_refresh=True,
        smtp_host=None,
        smtp_port=None,
        smtp_secure=None,
        consent_params=_OFFLINE_CONSENT,
        reply_hints=_GOOGLE_HINTS + _MICROSOFT_HINTS,
    ),
}

PROVIDER_NAMES = tuple(PROVIDERS)


def get_provider(name: str | None) -> Provider:
    """The registry entry of ``name`` (``google`` when None); OptionError ``provider`` for an unknown one."""
    provider = PROVIDERS.get(name or "google")
    if provider is None:
        raise OptionError("provider", f"unknown provider {name!r}; expected one of {', '.join(PROVIDER_NAMES)}")
    return provider


def check_grant(provider: Provider, grant: str | None) -> str:
    """``grant`` (``refresh_token`` when None) if the provider supports it; OptionError ``grant`` otherwise."""
    grant = grant or REFRESH_TOKEN
    if grant not in GRANTS:
        raise OptionError("grant", f"unknown grant {grant!r}; expected one of {', '.join(GRANTS)}")
    if grant not in provider.grants:
        raise OptionError("grant", f"provider {provider.name!r} does not offer {grant}; it offers {', '.join(provider.grants)}")
    return grant


def describe(name: str) -> dict[str, t.Any]:
    """The registry entry as plain data (for the roles' ``provider_info`` filter and for documentation)."""
    provider = get_provider(name)
    return {"name": provider.name, "smtp_host": provider.smtp_host, "smtp_port": provider.smtp_port,
            "smtp_secure": provider.smtp_secure, "token_uri": provider.token_uri, "auth_uri": provider.auth_uri,
            "device_authorization_uri": provider.device_authorization_uri,
            "grants": list(provider.grants), "scopes": {grant: list(scopes) for grant, scopes in provider.scopes.items()}}
