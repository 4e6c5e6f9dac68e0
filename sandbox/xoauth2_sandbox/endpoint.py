# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The HTTP token endpoint: Google's and Microsoft's token, authorize, device and revoke paths over the authority."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import html
import http.server
import json
import ssl
import sys
import threading
import time
import typing as t
import urllib.parse
from pathlib import Path

from .common import (
    ACCESS_TOKEN_LIFETIME_SECONDS,
    ACCOUNT,
    AUTHORIZE_PATH,
    CLIENT_CREDENTIALS_GRANT,
    DENY_LOGIN_HINT_PREFIX,
    DEVICE_APPROVE_PATH,
    DEVICE_CODE_GRANT,
    DEVICE_CODE_PATH,
    DEVICE_DENY_PATH,
    DEVICE_VERIFICATION_PATH,
    FAULT_TOKEN_PATH,
    JWT_BEARER_GRANT,
    LOG,
    LOOPBACK_HOSTS,
    MICROSOFT_ACCOUNT,
    MICROSOFT_PREFIX,
    REVOKE_PATH,
    TOKEN_NO_ACCESS_TOKEN_PATH,
    TOKEN_NOT_JSON_PATH,
    TOKEN_PATH,
    TOKENINFO_PATH,
    utc_now,
)
from .faults import TOKEN_FAULTS, FaultRegistry, FaultSpecError, parse_fault_spec
from .identities import unverified_jwt_claims
from .oauth import AccessToken, DeviceSwitches, OAuthClient, OAuthError, TokenAuthority, resource_scope


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    location: str | None = None

    @classmethod
    def of_json(cls, status: int, data: t.Any) -> HttpResponse:
        return cls(status, json.dumps(data, indent=2).encode("utf-8"))

    @classmethod
    def error_page(cls, status: int, error: str, description: str) -> HttpResponse:
        """What Google shows instead of redirecting when the client or the redirect URI cannot be trusted."""
        page = f"<!DOCTYPE html><html><body><h1>Error {status}: {error}</h1><p>{description}</p></body></html>"
        return cls(status, page.encode("utf-8"), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, redirect_uri: str, params: t.Mapping[str, str]) -> HttpResponse:
        separator = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
        return cls(302, b"", "text/html; charset=utf-8", location=redirect_uri + separator + urllib.parse.urlencode(params))


def is_loopback_redirect(uri: str | None) -> bool:
    """Whether ``uri`` is a loopback ``http`` redirect URI, the only kind a desktop client may use (RFC 8252 7.3)."""
    if not uri:
        return False
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not parts.fragment


def unsigned_id_token(claims: dict[str, t.Any], key: str) -> str:
    """An HS256 JWT of ``claims`` (clients of the sandbox read it without checking the signature)."""
    def encode(part: bytes) -> bytes:
        return base64.urlsafe_b64encode(part).rstrip(b"=")

    signing_input = encode(b'{"alg":"HS256","typ":"JWT"}') + b"." + encode(json.dumps(claims).encode("utf-8"))
    signature = hmac.new(key.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + encode(signature)).decode("ascii")


def microsoft_route(path: str) -> tuple[str, str] | None:
    """(tenant, ``authorize`` | ``token`` | ``devicecode``) of an Azure AD v2 path under ``/ms/``; None for other paths."""
    if not path.startswith(MICROSOFT_PREFIX):
        return None
    parts = path[len(MICROSOFT_PREFIX):].split("/")
    if len(parts) == 4 and parts[0] and parts[1:3] == ["oauth2", "v2.0"] and parts[3] in ("authorize", "token", "devicecode"):
        return urllib.parse.unquote(parts[0]), parts[3]
    return None


class TokenEndpointApp:
    """The routes of the OAuth endpoint, shared by every HTTP(S) listener of the sandbox."""

    def __init__(self, authority: TokenAuthority, token_log: Path, *, account: str = ACCOUNT,
                 microsoft_account: str = MICROSOFT_ACCOUNT, faults: FaultRegistry | None = None) -> None:
        self.authority = authority
        self.token_log = token_log
        self.faults = faults if faults is not None else FaultRegistry()
        #: Who consents at /authorize when no login_hint names an account.
        self.account = account
        self.microsoft_account = microsoft_account
        self._log_lock = threading.Lock()

    def handle(self, method: str, target: str, headers: t.Mapping[str, str], body: bytes, *,
               scheme: str = "https") -> HttpResponse:
        """Answer one request that came in over ``scheme``; never raises for bad input."""
        url = urllib.parse.urlsplit(target)
        # What a client put in a JWT's aud to name this endpoint: the URL it posts to.
        endpoint_url = f"{scheme}://{headers.get('Host', '')}{url.path}"
        microsoft = microsoft_route(url.path)
        if url.path == AUTHORIZE_PATH or (microsoft and microsoft[1] == "authorize"):
            if method != "GET":
                return HttpResponse.error_page(405, "invalid_request", "Use GET.")
            return self._authorize(url.path, url.query, tenant=microsoft[0] if microsoft else None)
        if url.path == DEVICE_CODE_PATH or (microsoft and microsoft[1] == "devicecode"):
            if method != "POST":
                return HttpResponse.of_json(405, {"error": "invalid_request", "error_description": "Use POST."})
            return self._device_code(url.path, url.query, headers, body, origin=f"{scheme}://{headers.get('Host', '')}",
                                     tenant=microsoft[0] if microsoft else None)
        if url.path == DEVICE_VERIFICATION_PATH:
            return device_verification_page(url.query)
        if url.path in (DEVICE_APPROVE_PATH, DEVICE_DENY_PATH):
            if method != "POST":
                return HttpResponse.of_json(405, {"error": "invalid_request", "error_description": "Use POST."})
            return self._device_decision(url.path, headers, body, approve=url.path == DEVICE_APPROVE_PATH)
        if url.path == TOKEN_PATH or microsoft:
            if method != "POST":
                return HttpResponse.of_json(405, {"error": "invalid_request", "error_description": "Use POST."})
            return self._token(url.path, headers, body, endpoint_url, tenant=microsoft[0] if microsoft else None)
        fault_spec = fault_route(url.path)
        if fault_spec is not None:
            if method != "POST":
                return HttpResponse.of_json(405, {"error": "invalid_request", "error_description": "Use POST."})
            return self._fault_token(url.path, fault_spec, headers, body, endpoint_url)
        if url.path == TOKEN_NOT_JSON_PATH:
            self._log_request(url.path, parse_form(body), headers, "not_json")
            return not_json_response()
        if url.path == TOKEN_NO_ACCESS_TOKEN_PATH:
            self._log_request(url.path, parse_form(body), headers, "no_access_token")
            return no_access_token_response(self.authority.scope)
        if url.path == TOKENINFO_PATH:
            return self._tokeninfo(url.path, url.query, headers, body)
        if url.path == REVOKE_PATH:
            if method != "POST":
                return HttpResponse.of_json(405, {"error": "invalid_request", "error_description": "Use POST."})
            return self._revoke(url.path, url.query, headers, body)
        return HttpResponse.of_json(404, {"error": "not_found"})

    def _fault_token(self, path: str, spec: str, headers: t.Mapping[str, str], body: bytes,
                     endpoint_url: str) -> HttpResponse:
        """``/token`` unless the fault of ``spec`` fires; one log line per request, written before any hang."""
        try:
            fault = parse_fault_spec(spec, trigger=spec, allowed=TOKEN_FAULTS)
        except FaultSpecError as error:
            self._log_request(path, parse_form(body), headers, "unknown_fault", fault=spec)
            return HttpResponse.of_json(404, {"error": "unknown_fault", "error_description": str(error)})
        if not self.faults.fires(fault):
            return self._token(path, headers, body, endpoint_url, fault=spec)
        if fault.kind == "rtexpires":
            # Not a failure: the answer states the refresh token's lifetime; logged as an issue (or refusal) of /token.
            return self._token(path, headers, body, endpoint_url, fault=spec,
                               refresh_token_expires_in=max(1, int(fault.seconds)))
        if fault.kind == "lifetime":
            # Not a failure either: an access token that lives only S seconds, as issued close to a policy's limit.
            return self._token(path, headers, body, endpoint_url, fault=spec, access_token_lifetime=max(1, int(fault.seconds)))
        self._log_request(path, parse_form(body), headers, f"fault:{fault.kind}", fault=spec)
        if fault.kind == "hang":
            self.faults.wait(fault.seconds)
            return self._token(path, headers, body, endpoint_url, fault=spec, log=False)
        if fault.kind == "notjson":
            return not_json_response()
        if fault.kind == "noaccesstoken":
            return no_access_token_response(self.authority.scope)
        if fault.kind == "status503":
            return HttpResponse.of_json(503, {"error": "temporarily_unavailable"})
        if fault.kind == "redirect307":
            # Back to this very URL: a client that follows re-POSTs its form here, and is logged a second time.
            return HttpResponse(307, b"", "text/html; charset=utf-8", location=endpoint_url)
        return HttpResponse.of_json(500, {"error": "internal_failure"})

    def _revoke(self, path: str, query: str, headers: t.Mapping[str, str], body: bytes) -> HttpResponse:
        """Google's revocation: forget an access or refresh token given as ``token`` (form, or query like Google)."""
        token = parse_form(body).get("token") or dict(urllib.parse.parse_qsl(query)).get("token", "")
        revoked = bool(token) and (self.authority.revoke_access_token(token) or self.authority.revoke_refresh_token(token))
        # The form holds the token: log none of it.
        self._log_request(path, {}, headers, "revoked" if revoked else "invalid_token")
        if revoked:
            return HttpResponse.of_json(200, {})
        return HttpResponse.of_json(400, {"error": "invalid_token"})

    def _authorize(self, path: str, query: str, *, tenant: str | None) -> HttpResponse:
        """Consent at once: redirect to the client's loopback URI with a code, or with ``error=access_denied``."""
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        client_id = params.get("client_id")
        redirect_uri = params.get("redirect_uri")
        entry = {"grant_type": None, "client_id": client_id}
        if self.authority.find_client(client_id) is None:
            self._log_request(path, entry, {}, "invalid_client", tenant=tenant)
            return HttpResponse.error_page(401, "invalid_client", "The OAuth client was not found.")
        if not is_loopback_redirect(redirect_uri):
            self._log_request(path, entry, {}, "redirect_uri_mismatch", tenant=tenant)
            return HttpResponse.error_page(400, "redirect_uri_mismatch", "Desktop clients must redirect to a loopback http URI.")
        assert redirect_uri is not None
        # From here on, errors go back to the client through the redirect URI (RFC 6749 section 4.1.2.1).
        state = {"state": params["state"]} if "state" in params else {}
        scope = " ".join(params.get("scope", "").split())
        method = params.get("code_challenge_method") or "plain"
        login_hint = params.get("login_hint") or ""
        problem = None
        if params.get("response_type") != "code":
            problem = ("unsupported_response_type", "Only response_type=code is supported.")
        elif not scope:
            problem = ("invalid_request", "Missing required parameter: scope")
        elif params.get("code_challenge") and method not in ("S256", "plain"):
            problem = ("invalid_request", "Invalid code_challenge_method.")
        elif params.get("deny") == "1" or login_hint.lower().startswith(DENY_LOGIN_HINT_PREFIX):
            problem = ("access_denied", "The user refused the consent.")
        if problem is not None:
            self._log_request(path, entry, {}, problem[0], tenant=tenant)
            error = {"error": problem[0]}
            if tenant is not None:  # Azure AD explains its errors; Google only names them
                error["error_description"] = problem[1]
            return HttpResponse.redirect(redirect_uri, {**error, **state})
        account = login_hint or (self.account if tenant is None else self.microsoft_account)
        code = self.authority.issue_authorization_code(
            t.cast(str, client_id), redirect_uri, account, scope,
            code_challenge=params.get("code_challenge") or None,
            code_challenge_method=method,
            offline="offline_access" in scope.split() if tenant is not None else params.get("access_type") == "offline",
            prompt_consent=tenant is not None or "consent" in params.get("prompt", "").split(),
        )
        self._log_request(path, entry, {}, "consented", tenant=tenant)
        answer = {"code": code, **state}
        if tenant is None:
            answer["scope"] = scope  # Google echoes the granted scopes
        return HttpResponse.redirect(redirect_uri, answer)

    def _device_code(self, path: str, query: str, headers: t.Mapping[str, str], body: bytes, *, origin: str,
                     tenant: str | None) -> HttpResponse:
        """The device authorization endpoint (RFC 8628 section 3.1): a device code, a user code and where to enter it."""
        form = parse_form(body)
        client_id, client_secret = client_credentials(headers, form)
        scope = " ".join(form.get("scope", "").split())
        try:
            switches = DeviceSwitches.parse(query)
        except ValueError as error:
            self._log_request(path, form, headers, "unknown_switch", client_id=client_id, tenant=tenant, switches=query)
            return HttpResponse.of_json(400, {"error": "unknown_switch", "error_description": str(error)})
        try:
            client = self.authority.authenticate_public_client(client_id, client_secret)
            if not scope:
                raise OAuthError(400, "invalid_scope", "Missing required parameter: scope")
        except OAuthError as error:
            self._log_request(path, form, headers, error.error, client_id=client_id, tenant=tenant, switches=query)
            return HttpResponse.of_json(error.status, error.as_json())
        grant = self.authority.issue_device_code(
            client.client_id, scope, account=self.account if tenant is None else self.microsoft_account,
            # Google's device flow always returns a refresh token; Azure AD's for offline_access.
            offline=tenant is None or "offline_access" in scope.split(),
            refusal="access_denied" if tenant is None else "authorization_declined", switches=switches)
        verification_uri = f"{origin}{DEVICE_VERIFICATION_PATH}"
        answer: dict[str, t.Any] = {"device_code": grant.device_code, "user_code": grant.user_code,
                                    "verification_uri": verification_uri, "expires_in": switches.expires_in,
                                    "interval": switches.interval}
        if tenant is None:
            answer["verification_uri_complete"] = f"{verification_uri}?{urllib.parse.urlencode({'user_code': grant.user_code})}"
        else:
            answer["message"] = (f"To sign in, use a web browser to open the page {verification_uri} and enter the code "
                                 f"{grant.user_code} to authenticate.")
        self._log_request(path, form, headers, "device_code_issued", client_id=client.client_id, tenant=tenant, switches=query)
        return HttpResponse.of_json(200, answer)

    def _device_decision(self, path: str, headers: t.Mapping[str, str], body: bytes, *, approve: bool) -> HttpResponse:
        """The user's answer at the verification page: ``user_code`` (and optionally ``account``) approved or denied."""
        form = parse_form(body)
        user_code = form.get("user_code", "")
        decided = self.authority.decide_device_code(user_code, approve=approve, account=form.get("account") or None)
        outcome = ("approved" if approve else "denied") if decided else "invalid_user_code"
        self._log_request(path, {}, headers, outcome)
        if not decided:
            return HttpResponse.of_json(400, {"error": "invalid_user_code",
                                              "error_description": "No pending device code has this user code."})
        return HttpResponse.of_json(200, {"user_code": user_code, "status": outcome})

    def _token(self, path: str, headers: t.Mapping[str, str], body: bytes, endpoint_url: str, *,
               tenant: str | None = None, fault: str | None = None, log: bool = True,
               refresh_token_expires_in: int | None = None, access_token_lifetime: int | None = None) -> HttpResponse:
        """Answer a token request; logged (with ``fault``, the spec of a fault path) unless ``log`` is False.

        ``refresh_token_expires_in`` is added to an answer that carries or stands for a refresh token (a refresh, a
        code exchange, a device grant), as Google states the rest of a time-limited grant. ``access_token_lifetime``
        shortens the life (and ``expires_in``) of the access token issued.
        """
        form = parse_form(body)
        client_id, client_secret = client_credentials(headers, form)
        log_form: t.Mapping[str, str | None] = form
        subject = None
        switches = self.authority.device_switches(form.get("device_code")) if form.get("grant_type") == DEVICE_CODE_GRANT else None
        if form.get("grant_type") == JWT_BEARER_GRANT:
            # The client is named inside the assertion; log its claims, never the assertion.
            claims = unverified_jwt_claims(form.get("assertion"))
            client_id, subject = (str(claims[name]) if name in claims else None for name in ("iss", "sub"))
            log_form = {"grant_type": JWT_BEARER_GRANT, "scope": str(claims["scope"]) if "scope" in claims else None}
        try:
            answer = self._grant(form, client_id, client_secret, endpoint_url, tenant=tenant)
        except OAuthError as error:
            if log:
                self._log_request(path, log_form, headers, error.error, client_id=client_id, tenant=tenant, fault=fault,
                                  subject=subject, switches=switches)
            return HttpResponse.of_json(error.status, error.as_json())
        if log:
            self._log_request(path, log_form, headers, "issued", client_id=client_id, tenant=tenant, fault=fault,
                              subject=subject, switches=switches)
        if refresh_token_expires_in is not None and form.get("grant_type") in ("refresh_token", "authorization_code", DEVICE_CODE_GRANT):
            answer["refresh_token_expires_in"] = refresh_token_expires_in
        if access_token_lifetime is not None:
            self.authority.shorten_access_token(answer["access_token"], access_token_lifetime)
            answer["expires_in"] = access_token_lifetime
            answer.pop("ext_expires_in", None)
        return HttpResponse.of_json(200, answer)

    def _grant(self, form: t.Mapping[str, str], client_id: str | None, client_secret: str | None, endpoint_url: str, *,
               tenant: str | None) -> dict[str, t.Any]:
        """The JSON answer of a successful grant of ``form["grant_type"]``; raises OAuthError."""
        grant_type = form.get("grant_type")
        if tenant is None and grant_type == JWT_BEARER_GRANT:
            if not form.get("assertion"):
                raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
            issued = self.authority.redeem_service_account_assertion(form["assertion"], endpoint_url=endpoint_url)
            return access_token_answer(issued, with_scope=False)
        if tenant is not None and grant_type == CLIENT_CREDENTIALS_GRANT:
            issued = self.authority.redeem_client_credentials(tenant=tenant, client_id=client_id, client_secret=client_secret,
                                                              form=form, endpoint_url=endpoint_url)
            return access_token_answer(issued, microsoft=True, with_scope=False)
        if grant_type == DEVICE_CODE_GRANT:
            return self._device_token(form, client_id, client_secret, tenant=tenant)
        if grant_type not in ("refresh_token", "authorization_code"):
            raise OAuthError(400, "unsupported_grant_type")
        client = (self.authority.authenticate_client(client_id, client_secret) if tenant is None
                  else self.authority.authenticate_microsoft_client(client_id, client_secret))
        if grant_type == "refresh_token":
            return self._refresh(client, form, tenant=tenant)
        return self._exchange_code(client, form, tenant=tenant)

    def _refresh(self, client: OAuthClient, form: t.Mapping[str, str], *, tenant: str | None) -> dict[str, t.Any]:
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        if tenant is None:
            return access_token_answer(self.authority.redeem_refresh_token(client, refresh_token))
        issued, rotated = self.authority.rotate_refresh_token(client, refresh_token, form.get("scope", ""))
        return {**access_token_answer(issued, microsoft=True), "refresh_token": rotated}

    def _exchange_code(self, client: OAuthClient, form: t.Mapping[str, str], *, tenant: str | None) -> dict[str, t.Any]:
        code = form.get("code")
        if not code:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        record, issued, refresh_token = self.authority.redeem_authorization_code(
            client, code, form.get("redirect_uri"), form.get("code_verifier"))
        return consent_answer(client, record.account, record.scope, issued, refresh_token, tenant=tenant)

    def _device_token(self, form: t.Mapping[str, str], client_id: str | None, client_secret: str | None, *,
                      tenant: str | None) -> dict[str, t.Any]:
        client = self.authority.authenticate_public_client(client_id, client_secret)
        device_code = form.get("device_code")
        if not device_code:
            raise OAuthError(400, "invalid_request", "Missing required parameter: device_code")
        grant, issued, refresh_token = self.authority.poll_device_code(client, device_code)
        return consent_answer(client, grant.account, grant.scope, issued, refresh_token, tenant=tenant)

    def _tokeninfo(self, path: str, query: str, headers: t.Mapping[str, str], body: bytes) -> HttpResponse:
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        params.update(parse_form(body))
        token = params.get("access_token", "")
        authorization = headers.get("Authorization", "")
        if not token and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
        record = self.authority.lookup_access_token(token)
        if record is None:
            self._log_request(path, {}, headers, "invalid_token")
            if params.get("error_member") == "no":
                # Dovecot 2.4 takes an `error` member for a failure of its own (status 500), not a refused token.
                return HttpResponse.of_json(400, {"error_description": "Invalid Value"})
            return HttpResponse.of_json(400, {"error": "invalid_token", "error_description": "Invalid Value"})
        self._log_request(path, {}, headers, "valid", client_id=record.client_id)
        return HttpResponse.of_json(
            200,
            {
                "azp": record.client_id,
                "aud": record.client_id,
                "scope": record.scope,
                "exp": str(int(record.expires_at)),
                "expires_in": str(record.seconds_left()),
                "email": record.account,
                "email_verified": "true",
                "access_type": "offline",
            },
        )

    def _log_request(
        self, path: str, form: t.Mapping[str, str | None], headers: t.Mapping[str, str], outcome: str, *,
        client_id: str | None = None, tenant: str | None = None, fault: str | None = None, subject: str | None = None,
        switches: str | None = None,
    ) -> None:
        """Append one JSON line about a request; holds no secret (no tokens, codes, verifiers, client secrets,
        keys or assertions)."""
        if client_id is None:
            client_id = client_credentials(headers, t.cast(t.Mapping[str, str], form))[0]
        entry = {
            "time": utc_now().isoformat(timespec="milliseconds"),
            "path": path,
            "grant_type": form.get("grant_type"),
            "client_id": client_id,
            "outcome": outcome,
        }
        if tenant is not None:
            entry["tenant"] = tenant
        if fault is not None:
            entry["fault"] = fault
        if subject is not None:
            entry["subject"] = subject
        if switches is not None:
            entry["switches"] = switches
        if form.get("scope") is not None:
            entry["scope"] = form.get("scope")
        with self._log_lock, self.token_log.open("a", encoding="utf-8") as log_file:
            log_file.write(json.dumps(entry) + "\n")


def consent_answer(client: OAuthClient, account: str, scope: str, issued: AccessToken, refresh_token: str | None, *,
                   tenant: str | None) -> dict[str, t.Any]:
    """The token endpoint's JSON after a user's consent (a code exchange or a device code), Google- or Azure AD-shaped;
    with an ID token naming ``account`` when ``scope`` has ``openid``."""
    answer = access_token_answer(issued, microsoft=tenant is not None)
    if tenant is not None:
        answer["scope"] = resource_scope(scope)  # Azure AD leaves offline_access and openid out
    if refresh_token is not None:
        answer["refresh_token"] = refresh_token
    if "openid" in scope.split():
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com" if tenant is None else f"https://login.microsoftonline.com/{tenant}/v2.0",
                  "aud": client.client_id, "sub": hashlib.sha256(account.encode()).hexdigest()[:21],
                  "email": account, "email_verified": True, "iat": now, "exp": now + ACCESS_TOKEN_LIFETIME_SECONDS}
        if tenant is not None:
            claims["preferred_username"] = account
        answer["id_token"] = unsigned_id_token(claims, client.client_secret)
    return answer


def device_verification_page(query: str) -> HttpResponse:
    """The page a user opens to enter a user code (pre-filled from ``?user_code=``), then approve or deny."""
    user_code = html.escape(dict(urllib.parse.parse_qsl(query)).get("user_code", ""), quote=True)
    page = (f"<!DOCTYPE html><html><body><h1>Sandbox device sign-in</h1><form method=\"post\" action=\"{DEVICE_APPROVE_PATH}\">"
            f"<label>Code <input name=\"user_code\" value=\"{user_code}\"></label>"
            f"<button>Allow</button><button formaction=\"{DEVICE_DENY_PATH}\">Deny</button></form></body></html>")
    return HttpResponse(200, page.encode("utf-8"), "text/html; charset=utf-8")


def fault_route(path: str) -> str | None:
    """The (unquoted) spec of a ``/fault/<spec>/token`` path; None for other paths."""
    prefix, _, suffix = FAULT_TOKEN_PATH.partition("{fault}")
    if not (path.startswith(prefix) and path.endswith(suffix)) or len(path) <= len(prefix) + len(suffix):
        return None
    spec = path[len(prefix):-len(suffix)]
    return None if "/" in spec else urllib.parse.unquote(spec)


def not_json_response() -> HttpResponse:
    """A 200 answer with an HTML page where the token JSON should be (a captive portal, a proxy's page)."""
    page = b"<!DOCTYPE html><html><head><title>Error</title></head><body>Sandbox says hello.</body></html>"
    return HttpResponse(200, page, "text/html; charset=utf-8")


def no_access_token_response(scope: str) -> HttpResponse:
    """A 200 JSON answer that looks like a token answer but lacks ``access_token``."""
    return HttpResponse.of_json(200, {"expires_in": ACCESS_TOKEN_LIFETIME_SECONDS, "scope": scope, "token_type": "Bearer"})


def access_token_answer(issued: AccessToken, *, microsoft: bool = False, with_scope: bool = True) -> dict[str, t.Any]:
    """The token endpoint's JSON for a new access token, shaped like Google's or Azure AD's; the app-only grants
    leave ``scope`` out (``with_scope=False``), as Google and Entra ID do."""
    answer: dict[str, t.Any] = {
        "access_token": issued.token,
        "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS,
        "token_type": "Bearer",
    }
    if with_scope:
        answer["scope"] = issued.scope
    if microsoft:
        answer["ext_expires_in"] = ACCESS_TOKEN_LIFETIME_SECONDS
    return answer


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (first value of each); {} if unparsable."""
    try:
        return dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}


def client_credentials(headers: t.Mapping[str, str], form: t.Mapping[str, str]) -> tuple[str | None, str | None]:
    """Client id and secret from HTTP Basic (RFC 6749 section 2.3.1) or, failing that, from the body."""
    authorization = headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, client_secret = decoded.partition(":")
        return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(client_secret)
    return form.get("client_id"), form.get("client_secret")


class TokenEndpointRequestHandler(http.server.BaseHTTPRequestHandler):
    server: TokenEndpointServer
    server_version = "sandbox-oauth2"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        response = self.server.app.handle(self.command, self.path, self.headers, body,
                                          scheme="http" if self.server.ssl_context is None else "https")
        self.send_response(response.status)
        if response.location is not None:
            self.send_header("Location", response.location)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
        self.end_headers()
        self.wfile.write(response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The queries of /tokeninfo and /authorize carry tokens and PKCE challenges: log the path only.
        LOG.debug("%s %s -> %s", self.command, urllib.parse.urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002 - signature of the base class
        LOG.debug("token endpoint: " + format, *args)


class TokenEndpointServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server for :class:`TokenEndpointApp`, optionally speaking TLS."""

    daemon_threads = True
    # A hanging fault or an idle client must not hold up stop(); hangs end on FaultRegistry.release().
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: TokenEndpointApp, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        super().__init__(address, TokenEndpointRequestHandler)

    def finish_request(self, request: t.Any, client_address: t.Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        # The TLS handshake runs in the connection's thread, so a stalled client cannot block accept().
        request.settimeout(10)
        with self.ssl_context.wrap_socket(request, server_side=True) as tls_socket:
            self.RequestHandlerClass(tls_socket, client_address, self)

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            # Expected: clients that reject the untrusted certificate hang up during the handshake.
            LOG.debug("token endpoint connection from %s ended: %s", client_address, error)
            return
        LOG.exception("token endpoint error for %s", client_address)
