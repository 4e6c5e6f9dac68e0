# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OAuth 2.0 token authority: clients, grants, device codes and the tokens it issues and checks."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import threading
import time
import typing as t
import urllib.parse

from .common import (
    ACCESS_TOKEN_LIFETIME_SECONDS,
    AUTHORIZATION_CODE_LIFETIME_SECONDS,
    DEVICE_CODE_LIFETIME_SECONDS,
    DEVICE_CODE_PREFIX,
    DEVICE_POLL_INTERVAL_SECONDS,
    DEVICE_POLL_TOLERANCE_SECONDS,
    DEVICE_SLOW_DOWN_STEP_SECONDS,
    DEVICE_SWITCHES,
    GMAIL_SCOPE,
    GOOGLE_BAD_JWT_TIMES,
    GOOGLE_TOKEN_AUDIENCE,
    GOOGLE_UNAUTHORIZED_CLIENT,
    JWT_CLIENT_ASSERTION_TYPE,
    JWT_MAX_LIFETIME_SECONDS,
    MICROSOFT_ALIAS_TENANTS,
    MICROSOFT_APP_SCOPES,
    MICROSOFT_OIDC_SCOPES,
    USER_CODE_ALPHABET,
)
from .identities import MicrosoftApp, ServiceAccount, SignedJwt, jwt_window_is_sane


class OAuthError(Exception):
    """An OAuth 2.0 error response (RFC 6749 section 5.2) with its HTTP status."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(f"{status} {error}: {description or ''}")
        self.status = status
        self.error = error
        self.description = description

    def as_json(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description is not None:
            body["error_description"] = self.description
        return body


@dataclasses.dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    #: A public client (Entra ID: registered without a secret, "Allow public client flows"): it authenticates with
    #: nothing but its client_id, and must not present a secret.
    public: bool = False


@dataclasses.dataclass
class RefreshToken:
    token: str
    client_id: str
    account: str
    scope: str
    revoked: bool = False


@dataclasses.dataclass
class AuthorizationCode:
    """A code handed out by ``/authorize``; redeemable once, with the PKCE verifier of its challenge."""

    code: str
    client_id: str
    redirect_uri: str
    account: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str
    #: Whether the code exchange returns a refresh token.
    offline: bool
    expires_at: float
    used: bool = False


@dataclasses.dataclass(frozen=True)
class DeviceSwitches:
    """What a device code does without a user, from the query of its device authorization request.

    ``approve_after=N`` / ``deny_after=N``: the first N polls wait, the next one is approved (tokens) or denied.
    ``slow_down=N``: the first N polls get ``slow_down`` whatever their timing. ``expires_in`` and ``interval``
    replace the code's lifetime and poll interval (seconds). ``tag``: anything, logged with every request of the code.
    """

    approve_after: int | None = None
    deny_after: int | None = None
    slow_down: int = 0
    expires_in: int = DEVICE_CODE_LIFETIME_SECONDS
    interval: int = DEVICE_POLL_INTERVAL_SECONDS
    #: The query as given, logged as ``switches``.
    spec: str = ""

    @classmethod
    def parse(cls, query: str) -> DeviceSwitches:
        """The switches of ``query``; ValueError for an unknown switch or a value that is no whole number."""
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(params) - set(DEVICE_SWITCHES))
        if unknown:
            raise ValueError(f"unknown device switch {', '.join(unknown)} (known: {', '.join(DEVICE_SWITCHES)})")
        numbers: dict[str, int] = {}
        for name in DEVICE_SWITCHES:
            if name in params and name != "tag":
                if not params[name].isdigit():
                    raise ValueError(f"{name} must be a whole number")
                numbers[name] = int(params[name])
        if "approve_after" in numbers and "deny_after" in numbers:
            raise ValueError("approve_after and deny_after exclude each other")
        if numbers.get("expires_in") == 0 or numbers.get("interval") == 0:
            raise ValueError("expires_in and interval must be positive")
        return cls(**numbers, spec=query)


@dataclasses.dataclass
class DeviceGrant:
    """A device code handed out by the device authorization endpoint (RFC 8628), and what became of it."""

    device_code: str = dataclasses.field(repr=False)
    user_code: str
    client_id: str
    scope: str
    #: Who approves when the approval names nobody.
    account: str
    #: Whether the tokens include a refresh token.
    offline: bool
    #: The error of a refusal: ``access_denied`` (RFC 8628) or Azure AD's ``authorization_declined``.
    refusal: str
    expires_at: float
    #: Seconds polls must be apart; each ``slow_down`` adds DEVICE_SLOW_DOWN_STEP_SECONDS, as the client must.
    interval: float
    switches: DeviceSwitches
    slow_downs_left: int = 0
    polls: int = 0
    last_poll: float | None = None
    #: ``pending``, ``approved``, ``denied`` or ``redeemed``.
    status: str = "pending"


def normalized_user_code(user_code: str) -> str:
    """A user code as typed (any case, with or without its dash and spaces), as it is stored."""
    return "".join(character for character in user_code.upper() if character.isalnum())


#: Whom an access token speaks for: a user (delegated), a service account itself (it has no mailbox), or an app
#: (app-only: it may send as the mailboxes it was given permission on).
USER_TOKEN = "user"
SERVICE_ACCOUNT_TOKEN = "service_account"
APP_TOKEN = "app"


@dataclasses.dataclass(frozen=True)
class AccessToken:
    token: str = dataclasses.field(repr=False)
    account: str
    client_id: str
    scope: str
    expires_at: float
    kind: str = USER_TOKEN

    def seconds_left(self, now: float | None = None) -> int:
        """Whole seconds until expiry, never negative."""
        return max(0, int(self.expires_at - (time.time() if now is None else now)))

    def is_live(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at


class TokenAuthority:
    """Owns the OAuth clients, refresh tokens and issued access tokens of the sandbox.

    Thread-safe: the HTTP listeners and the SMTP servers share one instance.
    """

    def __init__(self, *, scope: str = GMAIL_SCOPE, access_token_lifetime: int = ACCESS_TOKEN_LIFETIME_SECONDS) -> None:
        self.scope = scope
        self.access_token_lifetime = access_token_lifetime
        #: The clock of the device grants (their expiry and the interval between polls); a test may set a fake one.
        self.device_clock: t.Callable[[], float] = time.time
        self._lock = threading.Lock()
        self._clients: dict[str, OAuthClient] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._access_tokens: dict[str, AccessToken] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        #: Device grants by device code, and the device code of each normalized user code.
        self._device_grants: dict[str, DeviceGrant] = {}
        self._user_codes: dict[str, str] = {}
        #: (client_id, account) pairs that consented once; Google then needs prompt=consent for a new refresh token.
        self._consents: set[tuple[str, str]] = set()
        #: Service accounts by private_key_id (the ``kid`` of their assertions), Entra ID apps by client id.
        self._service_accounts: dict[str, ServiceAccount] = {}
        self._apps: dict[str, MicrosoftApp] = {}

    def register_client(self, client_id: str | None = None, client_secret: str | None = None, *,
                        public: bool = False) -> OAuthClient:
        """Register (and return) a client; random Google-looking credentials when none are given, no secret for a
        ``public`` one."""
        client = OAuthClient(
            client_id=client_id or f"{secrets.randbelow(10**12):012d}-{secrets.token_hex(16)}.apps.googleusercontent.com",
            client_secret="" if public else client_secret or f"GOCSPX-{secrets.token_urlsafe(21)}",
            public=public,
        )
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def grant_refresh_token(self, client_id: str, account: str, *, revoked: bool = False, scope: str | None = None) -> str:
        """Create a refresh token of ``account`` for ``client_id`` (already revoked if asked)."""
        token = f"1//sandbox-{secrets.token_urlsafe(32)}"
        with self._lock:
            self._refresh_tokens[token] = RefreshToken(token, client_id, account, scope or self.scope, revoked)
        return token

    def revoke_refresh_token(self, token: str) -> bool:
        """Revoke a refresh token; False when it is unknown."""
        with self._lock:
            grant = self._refresh_tokens.get(token)
            if grant is None:
                return False
            grant.revoked = True
            return True

    def find_client(self, client_id: str | None) -> OAuthClient | None:
        """The registered client ``client_id``, or None."""
        with self._lock:
            return self._clients.get(client_id or "")

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> OAuthClient:
        """The registered client with this secret; raises ``invalid_client`` (401) otherwise."""
        with self._lock:
            client = self._clients.get(client_id or "")
        if client is None or client.public or not hmac.compare_digest(client.client_secret.encode(), (client_secret or "").encode()):
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        return client

    def authenticate_microsoft_client(self, client_id: str | None, client_secret: str | None) -> OAuthClient:
        """Entra ID's client authentication at its token endpoint: a confidential client (registered with a secret)
        must send it; a public client must not, an empty ``client_secret=`` included. Raises ``invalid_client``.

        https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token :
        client_secret is required for web apps and not to be used by native apps, which cannot keep a secret; Entra
        answers a public client that presents one with AADSTS700025.
        """
        client = self.find_client(client_id)
        if client is None:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if client.public:
            if client_secret is not None:
                raise OAuthError(401, "invalid_client", "AADSTS700025: Client is public so neither 'client_assertion' nor "
                                                        "'client_secret' should be presented.")
            return client
        if not client_secret:
            raise OAuthError(401, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: "
                                                    "'client_assertion' or 'client_secret'.")
        return self.authenticate_client(client_id, client_secret)

    def authenticate_public_client(self, client_id: str | None, client_secret: str | None) -> OAuthClient:
        """The registered client ``client_id``, with this secret when one is given: a public client (Entra ID's
        device flow with "Allow public client flows") sends none. Raises ``invalid_client`` (401)."""
        client = self.find_client(client_id)
        if client is not None and client.public:
            return self.authenticate_microsoft_client(client_id, client_secret)
        if client_secret:
            return self.authenticate_client(client_id, client_secret)
        if client is None:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        return client

    def redeem_refresh_token(self, client: OAuthClient, refresh_token: str) -> AccessToken:
        """A new access token for a live refresh token of ``client``; raises ``invalid_grant`` (400) otherwise."""
        grant = self._live_refresh_token(client, refresh_token)
        return self.issue_access_token(grant.account, client_id=client.client_id, scope=grant.scope)

    def rotate_refresh_token(self, client: OAuthClient, refresh_token: str, scope: str) -> tuple[AccessToken, str]:
        """Azure AD's refresh: ``scope`` is required and must have been granted; returns the access token and a new
        refresh token. The old refresh token stays valid, as Azure AD's do until they expire."""
        grant = self._live_refresh_token(client, refresh_token)
        requested = scope.split()
        if not requested:
            raise OAuthError(400, "invalid_request", "AADSTS90014: The required field 'scope' is missing from the credential.")
        granted = set(grant.scope.split()) | set(MICROSOFT_OIDC_SCOPES)
        unknown = [item for item in requested if item not in granted]
        if unknown:
            raise OAuthError(400, "invalid_scope", f"AADSTS70011: The provided value for scope {' '.join(unknown)} is not valid.")
        issued = self.issue_access_token(grant.account, client_id=client.client_id, scope=resource_scope(grant.scope))
        return issued, self.grant_refresh_token(client.client_id, grant.account, scope=grant.scope)

    def _live_refresh_token(self, client: OAuthClient, refresh_token: str) -> RefreshToken:
        with self._lock:
            grant = self._refresh_tokens.get(refresh_token)
        if grant is None or grant.revoked or grant.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        return grant

    def issue_authorization_code(self, client_id: str, redirect_uri: str, account: str, scope: str, *,
                                 code_challenge: str | None, code_challenge_method: str, offline: bool,
                                 prompt_consent: bool) -> str:
        """Record a consent and return its code. ``offline`` asks for a refresh token; after an account's first consent
        Google returns one only when the consent screen was shown again (``prompt_consent``)."""
        code = f"4/sandbox-{secrets.token_urlsafe(32)}"
        with self._lock:
            first_consent = (client_id, account) not in self._consents
            self._consents.add((client_id, account))
            self._codes[code] = AuthorizationCode(
                code=code, client_id=client_id, redirect_uri=redirect_uri, account=account, scope=scope,
                code_challenge=code_challenge, code_challenge_method=code_challenge_method,
                offline=offline and (first_consent or prompt_consent),
                expires_at=time.time() + AUTHORIZATION_CODE_LIFETIME_SECONDS,
            )
        return code

    def redeem_authorization_code(self, client: OAuthClient, code: str, redirect_uri: str | None,
                                  code_verifier: str | None) -> tuple[AuthorizationCode, AccessToken, str | None]:
        """Exchange a code once: checks client, redirect URI and the PKCE verifier (RFC 7636).

        Returns the code's record, the access token and a refresh token (None unless the consent was offline).
        """
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.used or record.client_id != client.client_id or record.expires_at < time.time():
                raise OAuthError(400, "invalid_grant", "Malformed auth code.")
            # Used even when the checks below fail: a code is good for one attempt, like Google's.
            record.used = True
        if redirect_uri != record.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        if record.code_challenge is not None:
            if not code_verifier:
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if not hmac.compare_digest(pkce_challenge(code_verifier, record.code_challenge_method), record.code_challenge):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        access = self.issue_access_token(record.account, client_id=client.client_id, scope=record.scope)
        refresh = self.grant_refresh_token(client.client_id, record.account, scope=record.scope) if record.offline else None
        return record, access, refresh

    def issue_device_code(self, client_id: str, scope: str, *, account: str, offline: bool, refusal: str,
                          switches: DeviceSwitches) -> DeviceGrant:
        """A new device code and user code (RFC 8628 section 3.2), pending until decided or expired."""
        with self._lock:
            while True:
                user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
                if user_code not in self._user_codes:
                    break
            grant = DeviceGrant(
                device_code=f"{DEVICE_CODE_PREFIX}{secrets.token_urlsafe(32)}", user_code=f"{user_code[:4]}-{user_code[4:]}",
                client_id=client_id, scope=scope, account=account, offline=offline, refusal=refusal,
                expires_at=self.device_clock() + switches.expires_in, interval=switches.interval, switches=switches,
                slow_downs_left=switches.slow_down,
            )
            self._device_grants[grant.device_code] = grant
            self._user_codes[user_code] = grant.device_code
        return grant

    def decide_device_code(self, user_code: str, *, approve: bool, account: str | None = None) -> bool:
        """The user's answer at the verification page; False for a code that is unknown, expired or decided."""
        with self._lock:
            grant = self._device_grants.get(self._user_codes.get(normalized_user_code(user_code), ""))
            if grant is None or grant.status != "pending" or self.device_clock() >= grant.expires_at:
                return False
            grant.status = "approved" if approve else "denied"
            grant.account = account or grant.account
            return True

    def device_switches(self, device_code: str | None) -> str | None:
        """The switches of a device code as given (for the request log); None for an unknown code."""
        with self._lock:
            grant = self._device_grants.get(device_code or "")
        return grant.switches.spec if grant is not None else None

    def poll_device_code(self, client: OAuthClient, device_code: str) -> tuple[DeviceGrant, AccessToken, str | None]:
        """One poll of the token endpoint (RFC 8628 section 3.5): the tokens once approved, else raises OAuthError
        ``slow_down``, ``authorization_pending``, the refusal, ``expired_token`` or ``invalid_grant``."""
        now = self.device_clock()
        with self._lock:
            grant = self._device_grants.get(device_code)
            if grant is None or grant.client_id != client.client_id or grant.status == "redeemed":
                raise OAuthError(400, "invalid_grant", "The device code is unknown or was already used.")
            if now >= grant.expires_at:
                raise OAuthError(400, "expired_token", "The device code has expired.")
            grant.polls += 1
            too_soon = grant.last_poll is not None and now - grant.last_poll < grant.interval - DEVICE_POLL_TOLERANCE_SECONDS
            grant.last_poll = now
            forced = not too_soon and grant.slow_downs_left > 0
            if forced:
                grant.slow_downs_left -= 1
            if too_soon or forced:
                grant.interval += DEVICE_SLOW_DOWN_STEP_SECONDS
                raise OAuthError(400, "slow_down", f"Poll at most every {grant.interval:g} seconds.")
            self._apply_device_switches(grant)
            if grant.status == "denied":
                raise OAuthError(400, grant.refusal, "The end user denied the authorization request.")
            if grant.status == "pending":
                raise OAuthError(400, "authorization_pending", "The user has not yet approved the request.")
            grant.status = "redeemed"
        access = self.issue_access_token(grant.account, client_id=client.client_id, scope=grant.scope)
        refresh = self.grant_refresh_token(client.client_id, grant.account, scope=grant.scope) if grant.offline else None
        return grant, access, refresh

    @staticmethod
    def _apply_device_switches(grant: DeviceGrant) -> None:
        """Decide a pending grant as its switches say, once enough polls have waited."""
        switches = grant.switches
        if grant.status != "pending":
            return
        if switches.approve_after is not None and grant.polls > switches.approve_after:
            grant.status = "approved"
        elif switches.deny_after is not None and grant.polls > switches.deny_after:
            grant.status = "denied"

    def register_service_account(self, account: ServiceAccount) -> None:
        with self._lock:
            self._service_accounts[account.private_key_id] = account

    def register_app(self, app: MicrosoftApp) -> None:
        with self._lock:
            self._apps[app.client_id] = app

    def _find_service_account(self, key_id: t.Any, issuer: str | None) -> ServiceAccount | None:
        """The account whose key ``key_id`` names, or else the one whose client_email is ``issuer``."""
        with self._lock:
            if isinstance(key_id, str) and key_id in self._service_accounts:
                return self._service_accounts[key_id]
            return next((account for account in self._service_accounts.values() if account.client_email == issuer), None)

    def redeem_service_account_assertion(self, assertion: str, *, endpoint_url: str) -> AccessToken:
        """Google's JWT bearer grant (RFC 7523) for a service account: a token of ``sub`` when the account has
        domain-wide delegation for that user's domain and every requested scope, else of the account itself."""
        account, jwt = self._verified_service_account_jwt(assertion, endpoint_url=endpoint_url)
        scopes = (jwt.claim_text("scope") or "").split()
        if not scopes:
            raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        if GMAIL_SCOPE not in scopes:
            raise OAuthError(400, "invalid_scope", f"The sandbox grants {GMAIL_SCOPE} only; requested: {' '.join(scopes)}")
        subject = jwt.claims.get("sub")
        if subject is None:
            return self.issue_access_token(account.client_email, client_id=account.client_id, scope=" ".join(scopes),
                                           kind=SERVICE_ACCOUNT_TOKEN)
        if account.delegated_domain is None or not set(scopes) <= account.delegated_scopes:
            raise OAuthError(401, "unauthorized_client", GOOGLE_UNAUTHORIZED_CLIENT)
        if not isinstance(subject, str) or subject.rpartition("@")[2].lower() != account.delegated_domain:
            raise OAuthError(400, "invalid_grant", "Invalid email or User ID")
        return self.issue_access_token(subject, client_id=account.client_id, scope=" ".join(scopes))

    def _verified_service_account_jwt(self, assertion: str, *, endpoint_url: str) -> tuple[ServiceAccount, SignedJwt]:
        """The account that signed ``assertion`` and the JWT, once signature, issuer, audience and times hold."""
        try:
            jwt = SignedJwt.parse(assertion)
        except ValueError:
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from None
        account = self._find_service_account(jwt.header.get("kid"), jwt.claim_text("iss"))
        if account is None or jwt.claim_text("iss") != account.client_email or not jwt.signed_by(account.public_key):
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        if jwt.claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, endpoint_url):
            raise OAuthError(400, "invalid_grant", f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_AUDIENCE}")
        if not jwt_window_is_sane(jwt.claims.get("iat"), jwt.claims.get("exp"), now=time.time(),
                                  max_lifetime=JWT_MAX_LIFETIME_SECONDS):
            raise OAuthError(400, "invalid_grant", GOOGLE_BAD_JWT_TIMES)
        return account, jwt

    def redeem_client_credentials(self, *, tenant: str, client_id: str | None, client_secret: str | None,
                                  form: t.Mapping[str, str], endpoint_url: str) -> AccessToken:
        """Entra ID's client credentials grant: an app token of the app's mailbox, for the app's own tenant, an app
        authenticated by its secret or a certificate-signed ``client_assertion``, and a ``/.default`` scope."""
        if tenant.lower() in MICROSOFT_ALIAS_TENANTS:
            raise OAuthError(400, "invalid_request", "AADSTS50059: No tenant-identifying information found in either "
                                                     "the request or implied by any provided credentials.")
        with self._lock:
            apps = list(self._apps.values())
        if not any(app.in_tenant(tenant) for app in apps):
            raise OAuthError(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure "
                                                     "you have the correct tenant ID and are signing into the correct cloud.")
        app = next((app for app in apps if app.client_id == client_id and app.in_tenant(tenant)), None)
        if app is None:
            raise OAuthError(400, "unauthorized_client", f"AADSTS700016: Application with identifier '{client_id}' was "
                                                         f"not found in the directory '{tenant}'.")
        if client_secret:
            if not hmac.compare_digest(app.client_secret.encode(), client_secret.encode()):
                raise OAuthError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the "
                                 "secret being sent in the request is the client secret value, not the client secret "
                                 f"ID, for a secret added to app '{app.client_id}'.")
        else:
            verify_client_assertion(app, form, endpoint_url=endpoint_url)
        scope = form.get("scope", "")
        if scope not in MICROSOFT_APP_SCOPES:
            raise OAuthError(400, "invalid_scope", f"AADSTS1002012: The provided value for scope {scope} is not valid. "
                             "Client credential flows must have a scope value with /.default suffixed to the resource "
                             "identifier (application ID URI).")
        return self.issue_access_token(app.mailbox, client_id=app.client_id, scope=scope, kind=APP_TOKEN)

    def issue_access_token(self, account: str, *, client_id: str | None = None, lifetime: float | None = None,
                           scope: str | None = None, kind: str = USER_TOKEN) -> AccessToken:
        """Issue and record an access token of ``account`` (``lifetime`` seconds; may be <= 0 for an expired one)."""
        if client_id is None:
            with self._lock:
                client_id = next(iter(self._clients), "sandbox-client")
        record = AccessToken(
            token=f"ya29.sandbox-{secrets.token_urlsafe(48)}",
            account=account,
            client_id=client_id,
            scope=scope or self.scope,
            expires_at=time.time() + (self.access_token_lifetime if lifetime is None else lifetime),
            kind=kind,
        )
        with self._lock:
            self._access_tokens[record.token] = record
        return record

    def shorten_access_token(self, token: str, lifetime: float) -> None:
        """Make an issued access token expire ``lifetime`` seconds from now."""
        with self._lock:
            record = self._access_tokens.get(token)
            if record is not None:
                self._access_tokens[token] = dataclasses.replace(record, expires_at=time.time() + lifetime)

    def revoke_access_token(self, token: str) -> bool:
        """Forget an access token; False when it was unknown."""
        with self._lock:
            return self._access_tokens.pop(token, None) is not None

    def lookup_access_token(self, token: str) -> AccessToken | None:
        """The record of a live (issued, unrevoked, unexpired) access token, else None."""
        with self._lock:
            record = self._access_tokens.get(token)
        return record if record is not None and record.is_live() else None


def verify_client_assertion(app: MicrosoftApp, form: t.Mapping[str, str], *, endpoint_url: str) -> None:
    """Check a certificate-signed client assertion (RFC 7523 section 2.2) as Entra ID does; raises OAuthError."""
    assertion = form.get("client_assertion")
    if not assertion:
        raise OAuthError(401, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: "
                                                "'client_assertion' or 'client_secret'.")
    if form.get("client_assertion_type") != JWT_CLIENT_ASSERTION_TYPE:
        raise OAuthError(400, "invalid_request", "AADSTS700025: The client_assertion_type must be "
                                                 f"{JWT_CLIENT_ASSERTION_TYPE}.")
    try:
        jwt = SignedJwt.parse(assertion)
    except ValueError:
        raise OAuthError(400, "invalid_request", "AADSTS50027: JWT token is invalid or malformed.") from None
    if not app.knows_certificate_of(jwt.header):
        raise OAuthError(401, "invalid_client", "AADSTS700027: The certificate with identifier used to sign the client "
                                                "assertion is not registered on application.")
    if not jwt.signed_by(app.public_key):
        raise OAuthError(401, "invalid_client", "AADSTS700027: Client assertion contains an invalid signature.")
    if not (jwt.claim_text("iss") == jwt.claim_text("sub") == app.client_id):
        raise OAuthError(401, "invalid_client", "AADSTS700021: Client assertion application identifier doesn't match "
                                                "'client_id' parameter.")
    if jwt.claims.get("aud") != endpoint_url:
        raise OAuthError(401, "invalid_client", f"AADSTS700027: Client assertion audience is not the token endpoint "
                                                f"{endpoint_url}.")
    if not jwt.claim_text("jti"):
        raise OAuthError(401, "invalid_client", "AADSTS700027: Client assertion has no jti claim.")
    if not jwt_window_is_sane(jwt.claims.get("nbf", jwt.claims.get("iat")), jwt.claims.get("exp"), now=time.time()):
        raise OAuthError(401, "invalid_client", "AADSTS700024: Client assertion is not within its valid time range.")


def pkce_challenge(verifier: str, method: str) -> str:
    """The code challenge of ``verifier`` (RFC 7636 section 4.2)."""
    if method == "S256":
        return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).rstrip(b"=").decode("ascii")
    return verifier


def resource_scope(scope: str) -> str:
    """``scope`` without the OpenID Connect scopes, as Azure AD reports what a token is for.

    Entra ID's token answers list "the scopes that the access_token is valid for"
    (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#successful-response-2), never
    ``offline_access``, which asks for a refresh token and is no permission of the token
    (https://learn.microsoft.com/en-us/entra/identity-platform/scopes-oidc#offline_access).
    """
    return " ".join(item for item in scope.split() if item not in MICROSOFT_OIDC_SCOPES)
