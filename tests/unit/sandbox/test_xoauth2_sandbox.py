# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The local XOAUTH2 sandbox behaves like Gmail's token endpoint and SMTP servers, as documented.

The sandbox scripts live outside the collection (``sandbox/`` of the checkout); ``tests/unit/conftest.py``
puts them on ``sys.path`` and provides the session's running ``sandbox`` and its ``settings``. The
Dovecot test fails (it does not skip) without Dovecot, because CI installs it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import importlib
import json
import re
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.message import EmailMessage
from pathlib import Path

import google.auth.crypt
import google.auth.exceptions
import google.auth.jwt
import google.auth.transport.requests
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.oauth2 import service_account

# Imported by name: tests/unit/conftest.py has put the sandbox directory on sys.path.
xoauth2_sandbox = importlib.import_module("xoauth2_sandbox")
dovecot_submission = importlib.import_module("dovecot_submission")
show_mail = importlib.import_module("show_mail")
SANDBOX_DIR = Path(xoauth2_sandbox.__file__).resolve().parent

SETTINGS_KEYS = {
    "host", "ca_path", "state_dir", "mail_dir", "token_log",
    "account", "client_id", "client_secret", "refresh_token", "revoked_refresh_token", "app_password",
    "token_uri", "token_uri_untrusted", "token_uri_http", "tokeninfo_url",
    "token_uri_not_json", "token_uri_no_access_token", "token_uri_unreachable",
    "auth_uri", "microsoft_account", "microsoft_client_id", "microsoft_client_secret", "microsoft_refresh_token",
    "microsoft_public_client_id", "microsoft_public_refresh_token",
    "microsoft_token_uri", "microsoft_auth_uri", "microsoft_device_authorization_uri",
    "device_authorization_uri", "device_verification_uri", "device_approve_uri", "device_deny_uri",
    "smtp_ssl_port", "smtp_starttls_port", "smtp_untrusted_port", "smtp_plain_port", "smtp_relay_port",
    "token_uri_fault", "revoke_uri",
    "smtp_greeting_421_port", "smtp_no_starttls_port", "smtp_small_size_port", "smtp_7bit_port",
    "service_account_key", "service_account_key_undelegated", "workspace_user", "workspace_domain",
    "microsoft_app_client_id", "microsoft_app_client_secret", "microsoft_app_certificate",
    "microsoft_app_certificate_key", "microsoft_tenant_id", "microsoft_app_mailbox",
}
GMAIL_XOAUTH2_CHALLENGE = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
GMAIL_OAUTHBEARER_CHALLENGE = {"status": "invalid_token", "schemes": "Bearer", "scope": "https://mail.google.com/"}
MICROSOFT_SCOPES = "https://outlook.office.com/SMTP.Send offline_access"
REDIRECT_URI = "http://127.0.0.1:8765/"
TIMEOUT = 10


# --------------------------------------------------------------------------------------------------
# helpers


def client_context(settings: dict[str, t.Any]) -> ssl.SSLContext:
    """A verifying TLS client context that trusts only the sandbox CA."""
    return ssl.create_default_context(cafile=settings["ca_path"])


def post_form(url: str, fields: dict[str, str], settings: dict[str, t.Any], headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST a form; (status, body) for 2xx and 4xx answers alike."""
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), headers=headers or {}, method="POST")
    context = client_context(settings) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def refresh_form(settings: dict[str, t.Any], **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "refresh_token",
        "client_id": settings["client_id"],
        "client_secret": settings["client_secret"],
        "refresh_token": settings["refresh_token"],
    }
    form.update(overrides)
    return form


def fetch_access_token(settings: dict[str, t.Any]) -> str:
    status, body = post_form(settings["token_uri"], refresh_form(settings), settings)
    assert status == 200, body
    return json.loads(body)["access_token"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def xoauth2_response(user: str, token: str) -> str:
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01")


def oauthbearer_response(user: str, token: str, port: int) -> str:
    return b64(f"n,a={user},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: t.Any, **kwargs: t.Any) -> None:
        return None


def authorize(url: str, settings: dict[str, t.Any], **params: str) -> tuple[int, dict[str, str], bytes]:
    """GET the authorization endpoint without following its redirect: (status, query of Location, body)."""
    query = {"client_id": settings["client_id"], "redirect_uri": REDIRECT_URI, "response_type": "code",
             "scope": "https://mail.google.com/", "state": "state-123", "access_type": "offline", "prompt": "consent"}
    query.update(params)
    query = {name: value for name, value in query.items() if value is not None}
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=client_context(settings)))
    try:
        with opener.open(url + "?" + urllib.parse.urlencode(query), timeout=TIMEOUT) as response:
            return response.status, {}, response.read()
    except urllib.error.HTTPError as error:
        location = error.headers.get("Location") or ""
        if location:
            assert location.startswith(query["redirect_uri"])
        return error.code, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query)), error.read()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def code_form(settings: dict[str, t.Any], code: str, **overrides: str) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "client_id": settings["client_id"], "client_secret": settings["client_secret"]}
    form.update(overrides)
    return form


def microsoft_uri(settings: dict[str, t.Any], key: str, tenant: str = "contoso.example") -> str:
    return settings[key].replace("{tenant}", tenant)


def microsoft_refresh_form(settings: dict[str, t.Any], **overrides: str) -> dict[str, str]:
    form = refresh_form(settings, client_id=settings["microsoft_client_id"], client_secret=settings["microsoft_client_secret"],
                        refresh_token=settings["microsoft_refresh_token"], scope=MICROSOFT_SCOPES)
    form.update(overrides)
    return {name: value for name, value in form.items() if value is not None}


def decoded_challenge(reply: bytes) -> dict[str, str]:
    return json.loads(base64.b64decode(reply))


def new_message(sender: str, recipient: str) -> tuple[EmailMessage, str]:
    """A small message with a unique Subject marker."""
    marker = f"sandbox-test-{uuid.uuid4().hex}"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = marker
    message.set_content(f"Body of {marker}\n")
    return message, marker


def stored_message(settings: dict[str, t.Any], marker: str) -> tuple[Path, dict[str, t.Any]]:
    """The stored .eml containing ``marker`` and its sidecar (exactly one must exist)."""
    matches = [path for path in Path(settings["mail_dir"]).glob("*.eml") if marker.encode() in path.read_bytes()]
    assert len(matches) == 1, f"expected one stored message with {marker}, found {matches}"
    return matches[0], json.loads(matches[0].with_suffix(".json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# settings and token endpoint


def test_settings_file_lists_every_endpoint(settings: dict[str, t.Any]) -> None:
    on_disk = json.loads((Path(settings["state_dir"]) / "sandbox.json").read_text(encoding="utf-8"))
    assert on_disk == settings
    assert set(settings) == SETTINGS_KEYS
    assert settings["host"] == "127.0.0.1"
    assert settings["account"] == "sandbox.user@example.com"
    assert settings["client_id"].endswith(".apps.googleusercontent.com")
    assert Path(settings["ca_path"]).is_file()
    assert (Path(settings["state_dir"]) / "untrusted-ca.pem").is_file()
    assert settings["tokeninfo_url"].startswith("http://127.0.0.1:") and settings["tokeninfo_url"].endswith("?access_token=")
    assert settings["auth_uri"].startswith("https://127.0.0.1:") and settings["auth_uri"].endswith("/authorize")
    assert "/ms/{tenant}/oauth2/v2.0/" in settings["microsoft_token_uri"] and "{tenant}" in settings["microsoft_auth_uri"]
    assert settings["microsoft_client_id"] != settings["client_id"]
    assert settings["token_uri_fault"] == settings["token_uri"].replace("/token", "/fault/{fault}/token")
    assert settings["revoke_uri"] == settings["token_uri"].replace("/token", "/revoke")


def test_refresh_token_grant_issues_an_access_token(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    status, body = post_form(settings["token_uri"], refresh_form(settings), settings)

    assert status == 200
    answer = json.loads(body)
    assert answer["access_token"].startswith("ya29.sandbox-")
    assert (answer["expires_in"], answer["scope"], answer["token_type"]) == (3599, "https://mail.google.com/", "Bearer")
    assert sandbox.authority.lookup_access_token(answer["access_token"]).account == settings["account"]
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    last = json.loads(log_text.splitlines()[-1])
    assert (last["path"], last["grant_type"], last["client_id"], last["outcome"]) == ("/token", "refresh_token", settings["client_id"], "issued")
    for secret in (settings["client_secret"], settings["refresh_token"], answer["access_token"]):
        assert secret not in log_text


def test_client_may_authenticate_with_http_basic(settings: dict[str, t.Any]) -> None:
    basic = base64.b64encode(f"{settings['client_id']}:{settings['client_secret']}".encode()).decode()
    form = {"grant_type": "refresh_token", "refresh_token": settings["refresh_token"]}

    status, body = post_form(settings["token_uri_http"], form, settings, headers={"Authorization": f"Basic {basic}"})

    assert status == 200 and "access_token" in json.loads(body)


@pytest.mark.parametrize(
    ("overrides", "status", "answer"),
    [
        pytest.param(
            {"refresh_token": "revoked"}, 400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, id="revoked",
        ),
        pytest.param(
            {"refresh_token": "1//unknown"}, 400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, id="unknown-refresh-token",
        ),
        pytest.param(
            {"client_secret": "wrong"}, 401,
            {"error": "invalid_client", "error_description": "The OAuth client was not found."}, id="wrong-secret",
        ),
        pytest.param(
            {"client_id": "nobody.apps.googleusercontent.com"}, 401,
            {"error": "invalid_client", "error_description": "The OAuth client was not found."}, id="unknown-client",
        ),
        pytest.param({"grant_type": "password"}, 400, {"error": "unsupported_grant_type"}, id="grant-type"),
    ],
)
def test_token_errors_are_google_shaped(settings: dict[str, t.Any], overrides: dict[str, str], status: int, answer: dict[str, str]) -> None:
    if overrides.get("refresh_token") == "revoked":
        overrides = {"refresh_token": settings["revoked_refresh_token"]}

    got_status, body = post_form(settings["token_uri"], refresh_form(settings, **overrides), settings)

    assert (got_status, json.loads(body)) == (status, answer)
    last = json.loads(Path(settings["token_log"]).read_text(encoding="utf-8").splitlines()[-1])
    assert last["outcome"] == answer["error"]


def test_tokeninfo_describes_live_tokens_only(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    with urllib.request.urlopen(settings["tokeninfo_url"] + token, timeout=TIMEOUT) as response:
        info = json.loads(response.read())
    assert info["email"] == settings["account"] and info["email_verified"] == "true"
    assert info["aud"] == settings["client_id"] and info["scope"] == "https://mail.google.com/"
    assert 3500 < int(info["expires_in"]) <= 3599

    assert sandbox.authority.revoke_access_token(token)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(settings["tokeninfo_url"] + token, timeout=TIMEOUT)  # pylint: disable=consider-using-with
    assert refused.value.code == 400
    assert json.loads(refused.value.read()) == {"error": "invalid_token", "error_description": "Invalid Value"}


def test_broken_token_endpoints_fail_the_documented_way(settings: dict[str, t.Any]) -> None:
    status, body = post_form(settings["token_uri_not_json"], refresh_form(settings), settings)
    assert status == 200 and body.lstrip().startswith(b"<!DOCTYPE html>")

    status, body = post_form(settings["token_uri_no_access_token"], refresh_form(settings), settings)
    assert status == 200 and "access_token" not in json.loads(body)

    with pytest.raises(urllib.error.URLError) as untrusted:
        post_form(settings["token_uri_untrusted"], refresh_form(settings), settings)
    assert isinstance(untrusted.value.reason, ssl.SSLCertVerificationError)

    with pytest.raises(urllib.error.URLError) as unreachable:
        post_form(settings["token_uri_unreachable"], refresh_form(settings), settings)
    assert isinstance(unreachable.value.reason, ConnectionRefusedError)


# --------------------------------------------------------------------------------------------------
# authorization endpoint and code exchange


def test_consent_with_pkce_issues_a_refresh_token_that_works(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    verifier = "v" * 43 + "-pkce._~"
    status, answer, _body = authorize(settings["auth_uri"], settings, code_challenge=s256(verifier), code_challenge_method="S256")
    assert status == 302
    assert answer["state"] == "state-123" and answer["scope"] == "https://mail.google.com/"

    status, body = post_form(settings["token_uri"], code_form(settings, answer["code"], code_verifier=verifier), settings)

    assert status == 200, body
    tokens = json.loads(body)
    assert tokens["refresh_token"].startswith("1//sandbox-") and "id_token" not in tokens
    assert sandbox.authority.lookup_access_token(tokens["access_token"]).account == settings["account"]
    status, body = post_form(settings["token_uri"], refresh_form(settings, refresh_token=tokens["refresh_token"]), settings)
    assert status == 200, body
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    for secret in (answer["code"], verifier, tokens["refresh_token"], tokens["access_token"]):
        assert secret not in log_text
    outcomes = [(entry["path"], entry["outcome"]) for entry in map(json.loads, log_text.splitlines()[-3:])]
    assert outcomes == [("/authorize", "consented"), ("/token", "issued"), ("/token", "issued")]


@pytest.mark.parametrize(
    ("verifier", "description"),
    [pytest.param("w" * 43, "Invalid code verifier.", id="wrong"), pytest.param(None, "Missing code verifier.", id="missing")],
)
def test_code_exchange_checks_pkce_and_the_code_is_single_use(settings: dict[str, t.Any], verifier: str | None, description: str) -> None:
    _status, answer, _body = authorize(settings["auth_uri"], settings, code_challenge=s256("v" * 43), code_challenge_method="S256")
    form = code_form(settings, answer["code"], code_verifier=verifier) if verifier else code_form(settings, answer["code"])

    status, body = post_form(settings["token_uri"], form, settings)
    assert (status, json.loads(body)) == (400, {"error": "invalid_grant", "error_description": description})

    status, body = post_form(settings["token_uri"], code_form(settings, answer["code"], code_verifier="v" * 43), settings)
    assert (status, json.loads(body)["error"]) == (400, "invalid_grant")


def test_code_exchange_needs_the_same_redirect_uri(settings: dict[str, t.Any]) -> None:
    _status, answer, _body = authorize(settings["auth_uri"], settings)
    status, body = post_form(settings["token_uri"], code_form(settings, answer["code"], redirect_uri="http://127.0.0.1:1/"), settings)
    assert (status, json.loads(body)["error"]) == (400, "redirect_uri_mismatch")


@pytest.mark.parametrize("params", [pytest.param({"login_hint": "deny.me@example.com"}, id="login-hint"), pytest.param({"deny": "1"}, id="deny")])
def test_refusal_redirects_with_access_denied(settings: dict[str, t.Any], params: dict[str, str]) -> None:
    status, answer, _body = authorize(settings["auth_uri"], settings, **params)
    assert (status, answer) == (302, {"error": "access_denied", "state": "state-123"})


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        pytest.param({"client_id": "nobody.apps.googleusercontent.com"}, 401, "invalid_client", id="unknown-client"),
        pytest.param({"redirect_uri": "https://example.com/callback"}, 400, "redirect_uri_mismatch", id="not-loopback"),
    ],
)
def test_untrusted_requests_get_an_error_page_not_a_redirect(settings: dict[str, t.Any], params: dict[str, str], status: int, error: str) -> None:
    got_status, answer, body = authorize(settings["auth_uri"], settings, **params)
    assert (got_status, answer) == (status, {})
    assert f"Error {status}: {error}".encode() in body


def test_refresh_token_only_offline_and_on_fresh_consent(settings: dict[str, t.Any]) -> None:
    hint = f"someone.{uuid.uuid4().hex[:8]}@example.com"

    def exchange(**params: str | None) -> dict[str, t.Any]:
        _status, answer, _body = authorize(settings["auth_uri"], settings, login_hint=hint, **params)
        status, body = post_form(settings["token_uri"], code_form(settings, answer["code"]), settings)
        assert status == 200, body
        return json.loads(body)

    assert "refresh_token" not in exchange(access_type=None)
    # The account consented above: without prompt=consent, Google hands out no new refresh token.
    assert "refresh_token" not in exchange(prompt=None)
    assert "refresh_token" in exchange()


def test_openid_scope_adds_an_id_token_naming_the_account(settings: dict[str, t.Any]) -> None:
    _status, answer, _body = authorize(settings["auth_uri"], settings, scope="openid email https://mail.google.com/",
                                       login_hint="named@example.com")
    _status, body = post_form(settings["token_uri"], code_form(settings, answer["code"]), settings)
    payload = json.loads(body)["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["email"] == "named@example.com" and claims["aud"] == settings["client_id"]


def test_microsoft_refresh_needs_scope_and_rotates_the_refresh_token(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    token_uri = microsoft_uri(settings, "microsoft_token_uri")
    status, body = post_form(token_uri, microsoft_refresh_form(settings, scope=None), settings)
    assert (status, json.loads(body)["error"]) == (400, "invalid_request")
    status, body = post_form(token_uri, microsoft_refresh_form(settings, scope="https://mail.google.com/"), settings)
    assert (status, json.loads(body)["error"]) == (400, "invalid_scope")

    status, body = post_form(token_uri, microsoft_refresh_form(settings), settings)
    assert status == 200, body
    first = json.loads(body)
    assert first["scope"] == "https://outlook.office.com/SMTP.Send" and first["ext_expires_in"] == 3599
    assert first["refresh_token"] != settings["microsoft_refresh_token"]
    assert sandbox.authority.lookup_access_token(first["access_token"]).account == settings["microsoft_account"]
    status, body = post_form(token_uri, microsoft_refresh_form(settings, refresh_token=first["refresh_token"]), settings)
    assert status == 200 and json.loads(body)["refresh_token"] not in (first["refresh_token"], settings["microsoft_refresh_token"])
    # Like Azure AD, a used refresh token stays valid.
    assert post_form(token_uri, microsoft_refresh_form(settings), settings)[0] == 200
    last = json.loads(Path(settings["token_log"]).read_text(encoding="utf-8").splitlines()[-1])
    assert (last["tenant"], last["scope"], last["client_id"]) == ("contoso.example", MICROSOFT_SCOPES, settings["microsoft_client_id"])


def test_microsoft_consent_gives_a_refresh_token_for_offline_access(settings: dict[str, t.Any]) -> None:
    ms = {"client_id": settings["microsoft_client_id"], "scope": MICROSOFT_SCOPES, "access_type": None, "prompt": None}
    status, answer, _body = authorize(microsoft_uri(settings, "microsoft_auth_uri"), settings, **ms)
    assert status == 302 and set(answer) == {"code", "state"}
    form = code_form(settings, answer["code"], client_id=settings["microsoft_client_id"], client_secret=settings["microsoft_client_secret"])
    status, body = post_form(microsoft_uri(settings, "microsoft_token_uri"), form, settings)
    assert status == 200, body
    tokens = json.loads(body)
    assert "refresh_token" in tokens and tokens["scope"] == "https://outlook.office.com/SMTP.Send"

    status, answer, _body = authorize(microsoft_uri(settings, "microsoft_auth_uri"), settings, **ms, login_hint="deny@contoso.example")
    assert answer["error"] == "access_denied" and answer["error_description"]


# --------------------------------------------------------------------------------------------------
# device authorization grant (RFC 8628)


def device_code(settings: dict[str, t.Any], query: str = "", *, microsoft: bool = False, **form: str) -> dict[str, t.Any]:
    """A device authorization request with the switches ``query``: its JSON answer (200 expected)."""
    uri = microsoft_uri(settings, "microsoft_device_authorization_uri") if microsoft else settings["device_authorization_uri"]
    fields = {"client_id": settings["microsoft_client_id" if microsoft else "client_id"],
              "scope": MICROSOFT_SCOPES if microsoft else "https://mail.google.com/", **form}
    status, body = post_form(uri + (f"?{query}" if query else ""), fields, settings)
    assert status == 200, body
    return json.loads(body)


def device_poll(settings: dict[str, t.Any], code: dict[str, t.Any], *, microsoft: bool = False) -> tuple[int, dict[str, t.Any]]:
    uri = microsoft_uri(settings, "microsoft_token_uri") if microsoft else settings["token_uri"]
    form = {"grant_type": xoauth2_sandbox.DEVICE_CODE_GRANT, "device_code": code["device_code"],
            "client_id": settings["microsoft_client_id" if microsoft else "client_id"]}
    status, body = post_form(uri, form, settings)
    return status, json.loads(body)


def logged(settings: dict[str, t.Any], tag: str) -> list[dict[str, t.Any]]:
    """The request log's lines of the device code whose switches carry ``tag``."""
    lines = Path(settings["token_log"]).read_text(encoding="utf-8").splitlines()
    return [entry for entry in map(json.loads, lines) if tag in (entry.get("switches") or "")]


def test_device_code_is_pending_until_the_user_code_is_approved(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    tag = uuid.uuid4().hex
    code = device_code(settings, f"interval=1&tag={tag}")
    assert code["device_code"].startswith(xoauth2_sandbox.DEVICE_CODE_PREFIX)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", code["user_code"])
    assert code["verification_uri"] == settings["device_verification_uri"]
    assert code["verification_uri_complete"] == f"{settings['device_verification_uri']}?user_code={code['user_code']}"
    assert (code["expires_in"], code["interval"]) == (600, 1)
    assert device_poll(settings, code) == (400, {"error": "authorization_pending",
                                                 "error_description": "The user has not yet approved the request."})

    with urllib.request.urlopen(code["verification_uri_complete"], timeout=TIMEOUT, context=client_context(settings)) as page:
        assert code["user_code"] in page.read().decode()
    # Typed in lower case without the dash: still the code.
    status, _body = post_form(settings["device_approve_uri"], {"user_code": code["user_code"].lower().replace("-", "")}, settings)
    assert status == 200
    assert post_form(settings["device_deny_uri"], {"user_code": code["user_code"]}, settings)[0] == 400  # decided already
    time.sleep(1)
    status, tokens = device_poll(settings, code)
    assert status == 200 and tokens["refresh_token"].startswith("1//sandbox-")
    assert sandbox.authority.lookup_access_token(tokens["access_token"]).account == settings["account"]
    assert device_poll(settings, code)[1]["error"] == "invalid_grant"  # used once
    assert [entry["outcome"] for entry in logged(settings, tag)] == [
        "device_code_issued", "authorization_pending", "issued", "invalid_grant"]
    assert not any(code["device_code"] in line for line in Path(settings["token_log"]).read_text(encoding="utf-8").splitlines())


def test_device_polls_sooner_than_the_interval_get_slow_down_and_the_interval_grows(settings: dict[str, t.Any]) -> None:
    code = device_code(settings, "interval=1&approve_after=0")
    time.sleep(1)
    assert device_poll(settings, code)[0] == 200
    code = device_code(settings, "interval=1&approve_after=5")
    assert device_poll(settings, code)[1]["error"] == "authorization_pending"
    assert device_poll(settings, code)[1]["error"] == "slow_down"  # at once: sooner than 1 s
    time.sleep(1.1)
    assert device_poll(settings, code)[1]["error"] == "slow_down"  # the interval is 6 s now
    forced = device_code(settings, "slow_down=1&approve_after=1")
    assert device_poll(settings, forced)[1]["error"] == "slow_down"


def test_device_switches_deny_and_expire(settings: dict[str, t.Any]) -> None:
    denied = device_code(settings, "deny_after=0")
    assert device_poll(settings, denied) == (400, {"error": "access_denied",
                                                   "error_description": "The end user denied the authorization request."})
    declined = device_code(settings, "deny_after=0", microsoft=True)
    assert "message" in declined and "verification_uri_complete" not in declined
    assert device_poll(settings, declined, microsoft=True)[1]["error"] == "authorization_declined"
    expiring = device_code(settings, "expires_in=1")
    assert expiring["expires_in"] == 1
    time.sleep(1.1)
    assert device_poll(settings, expiring)[1]["error"] == "expired_token"
    assert post_form(settings["device_approve_uri"], {"user_code": expiring["user_code"]}, settings)[0] == 400
    status, body = post_form(settings["device_authorization_uri"] + "?approve_after=x", {"client_id": settings["client_id"],
                                                                                         "scope": "s"}, settings)
    assert (status, json.loads(body)["error"]) == (400, "unknown_switch")


def test_microsoft_device_flow_gives_a_rotating_refresh_token_for_offline_access(settings: dict[str, t.Any]) -> None:
    code = device_code(settings, "approve_after=0", microsoft=True)
    status, tokens = device_poll(settings, code, microsoft=True)
    assert status == 200 and tokens["scope"] == "https://outlook.office.com/SMTP.Send" and "refresh_token" in tokens
    form = microsoft_refresh_form(settings, refresh_token=tokens["refresh_token"])
    assert post_form(microsoft_uri(settings, "microsoft_token_uri"), form, settings)[0] == 200


def test_device_code_requests_check_the_client(settings: dict[str, t.Any]) -> None:
    for fields in ({"client_id": "unknown", "scope": "s"}, {"client_id": settings["client_id"], "client_secret": "wrong", "scope": "s"}):
        status, body = post_form(settings["device_authorization_uri"], fields, settings)
        assert (status, json.loads(body)["error"]) == (401, "invalid_client")
    status, body = post_form(settings["device_authorization_uri"], {"client_id": settings["client_id"]}, settings)
    assert (status, json.loads(body)["error"]) == (400, "invalid_scope")
    assert device_code(settings, client_secret=settings["client_secret"])["user_code"]


# --------------------------------------------------------------------------------------------------
# SMTP


def test_xoauth2_over_implicit_tls_delivers_and_stores_the_exact_bytes(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    message, marker = new_message(settings["account"], "friend@example.com")
    wire_bytes = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN"]
        assert "chunking" not in client.esmtp_features
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"].upper(), token)) == (235, b"2.7.0 Accepted")
        client.sendmail(settings["account"], ["friend@example.com"], wire_bytes)

    eml_path, sidecar = stored_message(settings, marker)
    assert eml_path.read_bytes() == wire_bytes
    assert sidecar["port"] == "ssl" and sidecar["auth_mechanism"] == "XOAUTH2" and sidecar["account"] == settings["account"]
    assert (sidecar["mail_from"], sidecar["rcpt_tos"]) == (settings["account"], ["friend@example.com"])
    assert token not in eml_path.with_suffix(".json").read_text(encoding="utf-8")


def test_xoauth2_bad_token_gets_gmail_challenge_then_535(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], "ya29.not-issued"))
        assert code == 334 and decoded_challenge(challenge) == GMAIL_XOAUTH2_CHALLENGE
        code, text = client.docmd("")
        assert code == 535
        assert text.splitlines() == [
            b"5.7.8 Username and Password not accepted. For more information, go to",
            b"5.7.8  https://support.google.com/mail/?p=BadCredentials sandbox",
        ]
        assert client.docmd("MAIL", "FROM:<a@example.com>")[0] == 530


def test_xoauth2_user_must_be_the_tokens_account(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response("someone.else@example.com", token))[0] == 334
        assert client.docmd("")[0] == 535


def test_xoauth2_without_initial_response_and_with_a_long_token(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        # A 6000-character token fits the raised AUTH line limit and is refused as a token, not as a line.
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], "x" * 6000))[0] == 334
        assert client.docmd("")[0] == 535
        assert client.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert client.docmd(xoauth2_response(settings["account"], token))[0] == 235


@pytest.mark.parametrize(
    "initial_response",
    [
        pytest.param("not*base64", id="undecodable"),
        pytest.param(b64("user=a@example.com auth=Bearer t"), id="no-separators"),
        pytest.param(b64("user=a@example.com\x01auth=Basic t\x01\x01"), id="not-bearer"),
        pytest.param("=", id="empty"),
    ],
)
def test_malformed_xoauth2_is_501_and_the_session_survives(settings: dict[str, t.Any], initial_response: str) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", f"XOAUTH2 {initial_response}")[0] == 501
        assert client.noop()[0] == 250


def test_oauthbearer_over_starttls(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    port = settings["smtp_starttls_port"]
    with smtplib.SMTP(settings["host"], port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features and "starttls" in client.esmtp_features
        assert client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response(settings["account"], token, port))[0] == 530
        client.starttls(context=client_context(settings))
        client.ehlo()
        assert "OAUTHBEARER" in client.esmtp_features["auth"].split()

        code, challenge = client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response(settings["account"], "ya29.not-issued", port))
        assert code == 334 and decoded_challenge(challenge) == GMAIL_OAUTHBEARER_CHALLENGE
        assert client.docmd("AQ==")[0] == 535
        assert client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response(settings["account"], token, port)) == (235, b"2.7.0 Accepted")
        message, marker = new_message(settings["account"], "friend@example.com")
        client.send_message(message)

    assert stored_message(settings, marker)[1]["auth_mechanism"] == "OAUTHBEARER"


def test_plain_and_login_accept_the_app_password(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(settings["account"], "wrong-password")
        assert refused.value.smtp_code == 535
        client.user, client.password = settings["account"], settings["app_password"]
        assert client.auth("LOGIN", client.auth_login)[0] == 235


def test_expired_token_is_refused(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    expired = sandbox.authority.issue_access_token(settings["account"], lifetime=-1).token
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], expired))[0] == 334
        assert client.docmd("")[0] == 535


def test_error_addresses_are_refused_where_gmail_refuses_them(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.login(settings["account"], settings["app_password"])
        assert client.mail("refused.sender@example.com") == (553, b"5.7.1 Sender address rejected")
        client.rset()
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt("reject.me@example.com") == (550, b"5.1.1 The email account that you tried to reach does not exist.")


def test_drop_after_data_keeps_the_message_but_never_answers(settings: dict[str, t.Any]) -> None:
    message, marker = new_message(settings["account"], "drop-after-data@example.com")
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.login(settings["account"], settings["app_password"])
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.send_message(message)

    assert stored_message(settings, marker)[1]["rcpt_tos"] == ["drop-after-data@example.com"]


def test_untrusted_server_certificate_fails_verification(settings: dict[str, t.Any]) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(settings["host"], settings["smtp_untrusted_port"], context=client_context(settings), timeout=TIMEOUT)


def test_relay_sink_needs_no_auth_and_offers_no_chunking(settings: dict[str, t.Any]) -> None:
    message, marker = new_message("relay.sender@example.com", "reject@example.com")
    with smtplib.SMTP(settings["host"], settings["smtp_relay_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features and "chunking" not in client.esmtp_features
        client.send_message(message)

    sidecar = stored_message(settings, marker)[1]
    assert (sidecar["port"], sidecar["auth_mechanism"], sidecar["account"]) == ("relay", None, None)


def test_show_mail_prints_headers_text_and_other_parts(settings: dict[str, t.Any], capsys: pytest.CaptureFixture[str]) -> None:
    message, marker = new_message(settings["account"], "friend@example.com")
    message.add_alternative("<p>html</p>", subtype="html")
    message.add_attachment(b"\x00" * 10, maintype="application", subtype="octet-stream", filename="blob.bin")
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.login(settings["account"], settings["app_password"])
        client.send_message(message)

    assert show_mail.main(["--state-dir", settings["state_dir"], "--last", "1"]) == 0
    out = capsys.readouterr().out
    assert f"Subject:    {marker}" in out and f"Body of {marker}" in out
    assert "text/html" in out and "blob.bin (application/octet-stream, 10 bytes)" in out


# --------------------------------------------------------------------------------------------------
# fault injection: grammar


@pytest.mark.parametrize(
    ("spec", "allowed", "expected"),
    [
        pytest.param("rcpt451-tag", xoauth2_sandbox.RCPT_FAULTS, ("rcpt451", 0.0, None), id="every-time"),
        pytest.param("MAIL421x3-Tag-With-Dashes", xoauth2_sandbox.MAIL_FAULTS, ("mail421", 0.0, 3), id="case-and-count"),
        pytest.param("rcptslow5x2-t", xoauth2_sandbox.RCPT_FAULTS, ("rcptslow", 5.0, 2), id="timed"),
        pytest.param("hang0.5", xoauth2_sandbox.TOKEN_FAULTS, ("hang", 0.5, None), id="fraction-no-tag"),
        pytest.param("noaccesstokenx1-t", xoauth2_sandbox.TOKEN_FAULTS, ("noaccesstoken", 0.0, 1), id="token"),
        pytest.param("redirect307x1-t", xoauth2_sandbox.TOKEN_FAULTS, ("redirect307", 0.0, 1), id="token-digits-in-kind"),
    ],
)
def test_fault_specs_parse(spec: str, allowed: frozenset[str], expected: tuple[str, float, int | None]) -> None:
    fault = xoauth2_sandbox.parse_fault_spec(spec, trigger=spec, allowed=allowed)
    assert (fault.kind, fault.seconds, fault.times) == expected and fault.trigger == spec


@pytest.mark.parametrize(
    ("spec", "allowed"),
    [
        pytest.param("rcpt453-t", xoauth2_sandbox.RCPT_FAULTS, id="unknown-kind"),
        pytest.param("mail421-t", xoauth2_sandbox.RCPT_FAULTS, id="wrong-place"),
        pytest.param("rcptslow-t", xoauth2_sandbox.RCPT_FAULTS, id="timed-without-seconds"),
        pytest.param("rcpt4515-t", xoauth2_sandbox.RCPT_FAULTS, id="seconds-on-untimed"),
        pytest.param("status500x0-t", xoauth2_sandbox.TOKEN_FAULTS, id="x0"),
        pytest.param("status500x-t", xoauth2_sandbox.TOKEN_FAULTS, id="x-without-count"),
    ],
)
def test_malformed_fault_specs_are_errors(spec: str, allowed: frozenset[str]) -> None:
    with pytest.raises(xoauth2_sandbox.FaultSpecError):
        xoauth2_sandbox.parse_fault_spec(spec, trigger=spec, allowed=allowed)


def test_fault_registry_counts_each_trigger_alone_across_threads() -> None:
    registry = xoauth2_sandbox.FaultRegistry()
    twice = xoauth2_sandbox.FaultSpec(trigger="a", kind="rcpt451", times=2)
    other = xoauth2_sandbox.FaultSpec(trigger="b", kind="rcpt451", times=1)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(registry.fires(twice))) for _thread in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 18 + [True] * 2 and registry.seen("a") == 20
    assert [registry.fires(other), registry.fires(other)] == [True, False]


# --------------------------------------------------------------------------------------------------
# fault injection: SMTP addresses


def fault_address(spec: str) -> str:
    """``fault-<spec>-<unique tag>@example.com``, so that no other test shares its counter."""
    return f"fault-{spec}-{uuid.uuid4().hex[:12]}@example.com"


def stored_count(settings: dict[str, t.Any], marker: str) -> int:
    return sum(marker.encode() in path.read_bytes() for path in Path(settings["mail_dir"]).glob("*.eml"))


def logged_in(settings: dict[str, t.Any], port_key: str = "smtp_plain_port", timeout: float = TIMEOUT) -> smtplib.SMTP:
    """A client authenticated with the app password (implicit TLS for every port but the plain one)."""
    if port_key == "smtp_plain_port":
        client = smtplib.SMTP(settings["host"], settings[port_key], timeout=timeout)
    else:
        client = smtplib.SMTP_SSL(settings["host"], settings[port_key], context=client_context(settings), timeout=timeout)
    client.login(settings["account"], settings["app_password"])
    return client


def assert_disconnected(client: smtplib.SMTP) -> None:
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()


def test_sender_fault_421_closes_n_times_then_mail_goes_through(settings: dict[str, t.Any]) -> None:
    sender = fault_address("mail421x2")
    message, marker = new_message(sender, "friend@example.com")
    for _attempt in range(2):
        with logged_in(settings) as client:
            assert client.mail(sender) == (421, b"4.7.0 Try again later, closing connection.")
            assert_disconnected(client)
    assert stored_count(settings, marker) == 0

    with logged_in(settings) as client:
        client.send_message(message)
    assert stored_count(settings, marker) == 1


def test_recipient_fault_451_n_times_then_accepted_and_the_session_survives(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcpt451x1")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings) as client:
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt(recipient) == (451, b"4.3.0 Mail server temporarily rejected message.")
        assert client.rset()[0] == 250
        client.send_message(message)
    assert stored_count(settings, marker) == 1


@pytest.mark.parametrize(("kind", "reply"), [
    ("rcpt452", (452, b"4.5.3 Too many recipients")),
    ("rcpt552", (552, b"5.5.3 Too many recipients")),
])
def test_recipient_fault_too_many_recipients_n_times_then_accepted(settings: dict[str, t.Any], kind: str,
                                                                   reply: tuple[int, bytes]) -> None:
    recipient = fault_address(f"{kind}x1")
    message, marker = new_message(settings["account"], f"friend@example.com, {recipient}")
    with logged_in(settings) as client:
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt("friend@example.com")[0] == 250
        assert client.rcpt(recipient) == reply
        assert client.rset()[0] == 250
        client.send_message(message)
    assert stored_count(settings, marker) == 1


def test_recipient_fault_mailbox_full_defers_that_mailbox_alone_every_time(settings: dict[str, t.Any]) -> None:
    full = fault_address("rcptfull")
    message, marker = new_message(settings["account"], f"friend@example.com, {full}")
    with logged_in(settings) as client:
        for _attempt in range(3):
            assert client.mail(settings["account"])[0] == 250
            assert client.rcpt("friend@example.com")[0] == 250
            code, text = client.rcpt(full)
            assert (code, text.split(b" ", 1)[0]) == (452, b"4.2.2")
            assert b"out of storage space" in text
            assert client.rset()[0] == 250
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail(settings["account"], [full], message.as_bytes())
        client.sendmail(settings["account"], ["friend@example.com", full], message.as_bytes())
    assert stored_count(settings, marker) == 1


def test_recipient_fault_without_count_fires_every_time(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcpt451")
    with logged_in(settings) as client:
        assert client.mail(settings["account"])[0] == 250
        assert [client.rcpt(recipient)[0] for _attempt in range(3)] == [451, 451, 451]


def test_recipient_fault_421_closes_the_connection(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcpt421x1")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings, "smtp_ssl_port") as client:
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt(recipient) == (421, b"4.7.0 Try again later, closing connection.")
        assert_disconnected(client)
    with logged_in(settings, "smtp_ssl_port") as client:
        client.send_message(message)
    assert stored_count(settings, marker) == 1


@pytest.mark.parametrize(
    ("kind", "reply"),
    [
        pytest.param("data451", (451, b"4.3.0 Mail server temporarily rejected message."), id="451"),
        pytest.param("data550", (550, b"5.7.1 Message rejected (sandbox)."), id="550"),
    ],
)
def test_data_fault_refuses_the_final_dot_without_storing(settings: dict[str, t.Any], kind: str, reply: tuple[int, bytes]) -> None:
    recipient = fault_address(f"{kind}x2")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings) as client:
        for _attempt in range(2):
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.send_message(message)
            assert (refused.value.smtp_code, refused.value.smtp_error) == reply
        assert stored_count(settings, marker) == 0
        client.send_message(message)
    assert stored_count(settings, marker) == 1


def test_faults_of_several_recipients_apply_per_recipient_and_once_per_data(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    refused_rcpt = fault_address("rcpt451")
    data_fault = fault_address("data451x1")
    message, marker = new_message(settings["account"], "friend@example.com")
    recipients = ["friend@example.com", refused_rcpt, data_fault, data_fault]
    with logged_in(settings) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(settings["account"], recipients, message.as_bytes())
        assert refused.value.smtp_code == 451
        # Two accepted recipients carry the fault, one DATA: counted once, so x1 is used up.
        assert sandbox.faults.seen(data_fault) == 1
        assert client.sendmail(settings["account"], recipients, message.as_bytes()) == {
            refused_rcpt: (451, b"4.3.0 Mail server temporarily rejected message.")}
    _path, sidecar = stored_message(settings, marker)
    assert sidecar["rcpt_tos"] == ["friend@example.com", data_fault, data_fault]


def test_slow_rcpt_exceeds_a_short_timeout_then_answers_250(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcptslow1x2")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings, timeout=0.3) as client:
        assert client.mail(settings["account"])[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.rcpt(recipient)
    with logged_in(settings) as client:
        started = time.monotonic()
        assert client.mail(settings["account"])[0] == 250 and client.rcpt(recipient)[0] == 250
        assert time.monotonic() - started >= 1
    with logged_in(settings) as client:
        started = time.monotonic()
        client.send_message(message)
        assert time.monotonic() - started < 1
    assert stored_count(settings, marker) == 1


def test_slow_data_stores_the_message_before_the_client_gives_up(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("dataslow1x1")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings, timeout=0.3) as client:
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.send_message(message)
    assert stored_count(settings, marker) == 1

    again, second_marker = new_message(settings["account"], recipient)
    with logged_in(settings, timeout=0.8) as client:
        client.send_message(again)
    assert stored_count(settings, second_marker) == 1


@pytest.mark.parametrize(
    ("side", "address"),
    [pytest.param("mail", "fault-rcpt451-x@example.com", id="rcpt-fault-as-sender"),
     pytest.param("rcpt", "fault-mail421-x@example.com", id="mail-fault-as-recipient"),
     pytest.param("rcpt", "fault-rcpt453-x@example.com", id="unknown-fault")],
)
def test_malformed_fault_addresses_are_refused_not_ignored(settings: dict[str, t.Any], side: str, address: str) -> None:
    with logged_in(settings) as client:
        if side == "rcpt":
            assert client.mail(settings["account"])[0] == 250
        code, text = client.mail(address) if side == "mail" else client.rcpt(address)
        assert (code, text.startswith(b"5.1.3 Not a sandbox fault")) == (553, True)
        assert client.noop()[0] == 250


# --------------------------------------------------------------------------------------------------
# dedicated SMTP listeners and 8-bit transport


def test_greeting_421_listener_refuses_after_the_tls_handshake(settings: dict[str, t.Any]) -> None:
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP_SSL(settings["host"], settings["smtp_greeting_421_port"], context=client_context(settings), timeout=TIMEOUT)
    assert (refused.value.smtp_code, refused.value.smtp_error) == (421, b"4.3.2 Service not available, closing transmission channel")


def test_no_starttls_listener_offers_neither_starttls_nor_auth(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_no_starttls_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert "starttls" not in client.esmtp_features and "auth" not in client.esmtp_features
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.starttls(context=client_context(settings))
        assert client.mail(settings["account"])[0] == 530


def test_small_size_listener_advertises_and_enforces_2048_bytes(settings: dict[str, t.Any]) -> None:
    small, small_marker = new_message(settings["account"], "friend@example.com")
    large, large_marker = new_message(settings["account"], "friend@example.com")
    large.set_content("\n".join(["y" * 70] * 40) + f"\n{large_marker}\n")
    with logged_in(settings, "smtp_small_size_port") as client:
        assert client.esmtp_features["size"] == "2048"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(large)  # smtplib declares SIZE=, refused at MAIL
        assert refused.value.smtp_code == 552
    with logged_in(settings, "smtp_small_size_port") as client:
        # Without SIZE= the server counts the data and refuses at the final dot.
        assert client.mail(settings["account"])[0] == 250 and client.rcpt("friend@example.com")[0] == 250
        assert client.data(large.as_bytes()) == (552, b"Error: Too much mail data")
        client.send_message(small)
    assert (stored_count(settings, large_marker), stored_count(settings, small_marker)) == (0, 1)


def test_7bit_listener_refuses_8bit_parameters_and_data(settings: dict[str, t.Any]) -> None:
    ascii_message, ascii_marker = new_message(settings["account"], "friend@example.com")
    eight_bit = f"Subject: 8bit\r\n\r\nCaf\u00e9 {uuid.uuid4().hex}\r\n"
    with logged_in(settings, "smtp_7bit_port") as client:
        assert "8bitmime" not in client.esmtp_features and "smtputf8" not in client.esmtp_features
        assert client.mail(settings["account"], ["BODY=8BITMIME"]) == (555, b"5.5.4 BODY=8BITMIME not supported (sandbox)")
        # smtplib would not send SMTPUTF8 to a server that does not offer it; a careless client might.
        assert client.docmd("MAIL", f"FROM:<{settings['account']}> SMTPUTF8")[0] == 501
        assert client.mail(settings["account"])[0] == 250 and client.rcpt("friend@example.com")[0] == 250
        assert client.data(eight_bit.encode("utf-8")) == (554, b"5.6.0 8-bit data not allowed (sandbox)")
        client.send_message(ascii_message)
    assert stored_count(settings, eight_bit.split()[-1]) == 0
    assert stored_count(settings, ascii_marker) == 1


@pytest.mark.parametrize("port_key", ["smtp_plain_port", "smtp_ssl_port", "smtp_starttls_port", "smtp_untrusted_port"])
def test_authenticated_listeners_offer_8bitmime_and_smtputf8(settings: dict[str, t.Any], port_key: str) -> None:
    if port_key in ("smtp_ssl_port", "smtp_untrusted_port"):
        context = client_context(settings)
        if port_key == "smtp_untrusted_port":
            # Unverified only to read the EHLO of the untrusted listener.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        client: smtplib.SMTP = smtplib.SMTP_SSL(settings["host"], settings[port_key], context=context, timeout=TIMEOUT)
    else:
        client = smtplib.SMTP(settings["host"], settings[port_key], timeout=TIMEOUT)
    with client:
        if port_key == "smtp_starttls_port":
            client.starttls(context=client_context(settings))
        client.ehlo()
        assert "8bitmime" in client.esmtp_features and "smtputf8" in client.esmtp_features


def test_8bit_and_utf8_mail_is_stored_with_its_mail_options(settings: dict[str, t.Any]) -> None:
    marker = uuid.uuid4().hex
    wire = f"From: j\u00f6rg@example.com\r\nSubject: Gr\u00fc\u00dfe {marker}\r\n\r\nCaf\u00e9\r\n".encode("utf-8")
    with logged_in(settings, "smtp_ssl_port") as client:
        client.sendmail(settings["account"], ["j\u00f6rg@example.com"], wire, mail_options=["BODY=8BITMIME", "SMTPUTF8"])
    eml_path, sidecar = stored_message(settings, marker)
    assert eml_path.read_bytes() == wire
    assert {"BODY=8BITMIME", "SMTPUTF8"} <= set(sidecar["mail_options"])
    assert sidecar["rcpt_tos"] == ["j\u00f6rg@example.com"]


# --------------------------------------------------------------------------------------------------
# fault injection: token endpoint, and revocation


def fault_uri(settings: dict[str, t.Any], spec: str) -> tuple[str, str]:
    """(spec with a unique tag, its token URI)."""
    tagged = f"{spec}-{uuid.uuid4().hex[:12]}"
    return tagged, settings["token_uri_fault"].replace("{fault}", tagged)


def logged_outcomes(settings: dict[str, t.Any], spec: str) -> list[str]:
    entries = map(json.loads, Path(settings["token_log"]).read_text(encoding="utf-8").splitlines())
    return [entry["outcome"] for entry in entries if entry.get("fault") == spec]


@pytest.mark.parametrize(
    ("spec", "status", "answer"),
    [
        pytest.param("status500x2", 500, {"error": "internal_failure"}, id="500"),
        pytest.param("status503x2", 503, {"error": "temporarily_unavailable"}, id="503"),
    ],
)
def test_token_fault_status_n_times_then_a_token(settings: dict[str, t.Any], spec: str, status: int, answer: dict[str, str]) -> None:
    tagged, uri = fault_uri(settings, spec)
    for _attempt in range(2):
        got_status, body = post_form(uri, refresh_form(settings), settings)
        assert (got_status, json.loads(body)) == (status, answer)
    got_status, body = post_form(uri, refresh_form(settings), settings)
    assert got_status == 200 and json.loads(body)["access_token"].startswith("ya29.sandbox-")

    kind = spec.split("x")[0]
    assert logged_outcomes(settings, tagged) == [f"fault:{kind}", f"fault:{kind}", "issued"]
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    assert f"/fault/{tagged}/token" in log_text and settings["client_secret"] not in log_text


def test_token_fault_without_count_fires_every_time(settings: dict[str, t.Any]) -> None:
    _tagged, uri = fault_uri(settings, "status503")
    assert [post_form(uri, refresh_form(settings), settings)[0] for _attempt in range(3)] == [503, 503, 503]


def test_token_faults_with_a_broken_200_answer(settings: dict[str, t.Any]) -> None:
    _tagged, uri = fault_uri(settings, "notjsonx1")
    status, body = post_form(uri, refresh_form(settings), settings)
    assert status == 200 and body.lstrip().startswith(b"<!DOCTYPE html>")
    assert "access_token" in json.loads(post_form(uri, refresh_form(settings), settings)[1])

    _tagged, uri = fault_uri(settings, "noaccesstokenx1")
    status, body = post_form(uri, refresh_form(settings), settings)
    assert status == 200 and "access_token" not in json.loads(body) and json.loads(body)["token_type"] == "Bearer"
    assert "access_token" in json.loads(post_form(uri, refresh_form(settings), settings)[1])


def test_token_fault_redirect307_points_back_to_itself_then_answers(settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "redirect307x1")
    first = requests.post(uri, data=refresh_form(settings), verify=settings["ca_path"], allow_redirects=False, timeout=TIMEOUT)
    assert (first.status_code, first.headers["Location"], first.content) == (307, uri, b"")
    # What a client that follows the redirect does: the same form to the same URL, answered like /token now.
    second = requests.post(first.headers["Location"], data=refresh_form(settings), verify=settings["ca_path"],
                           allow_redirects=False, timeout=TIMEOUT)
    assert second.status_code == 200 and "access_token" in second.json()
    assert logged_outcomes(settings, tagged) == ["fault:redirect307", "issued"]


def test_unknown_token_fault_is_404_and_other_errors_still_apply(settings: dict[str, t.Any]) -> None:
    _tagged, uri = fault_uri(settings, "status418")
    status, body = post_form(uri, refresh_form(settings), settings)
    assert (status, json.loads(body)["error"]) == (404, "unknown_fault")
    # A fault that does not fire leaves the normal checks in place.
    _tagged, uri = fault_uri(settings, "status500x1")
    assert post_form(uri, refresh_form(settings), settings)[0] == 500
    status, body = post_form(uri, refresh_form(settings, client_secret="wrong"), settings)
    assert (status, json.loads(body)["error"]) == (401, "invalid_client")


def test_token_hang_exceeds_a_short_timeout_and_is_logged_at_once(settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "hang2x1")
    request = urllib.request.Request(uri, data=urllib.parse.urlencode(refresh_form(settings)).encode(), method="POST")
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(request, timeout=0.3, context=client_context(settings))  # pylint: disable=consider-using-with
    assert logged_outcomes(settings, tagged) == ["fault:hang"]
    started = time.monotonic()
    assert post_form(uri, refresh_form(settings), settings)[0] == 200
    assert time.monotonic() - started < 1
    assert logged_outcomes(settings, tagged) == ["fault:hang", "issued"]


def test_token_hang_blocks_no_other_request_and_then_answers_normally(settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "hang1x1")
    answers: list[tuple[int, bytes]] = []
    hanging = threading.Thread(target=lambda: answers.append(post_form(uri, refresh_form(settings), settings)))
    started = time.monotonic()
    hanging.start()
    time.sleep(0.2)
    assert post_form(settings["token_uri"], refresh_form(settings), settings)[0] == 200
    assert time.monotonic() - started < 1
    hanging.join(timeout=TIMEOUT)
    assert time.monotonic() - started >= 1
    assert answers[0][0] == 200 and "access_token" in json.loads(answers[0][1])
    # One log line per request, written on arrival: none more once the hung request was answered.
    assert logged_outcomes(settings, tagged) == ["fault:hang"]


def test_stop_is_prompt_while_a_token_request_hangs(tmp_path: Path) -> None:
    with xoauth2_sandbox.Sandbox(tmp_path / "hang") as own:
        uri = own.settings["token_uri_fault"].replace("{fault}", "hang60-stop")
        request = urllib.request.Request(uri, data=urllib.parse.urlencode(refresh_form(own.settings)).encode(), method="POST")
        context = client_context(own.settings)

        def wait_for_the_answer() -> None:
            # A client patient enough that only the released hang can end it within the join below.
            with urllib.request.urlopen(request, timeout=60, context=context) as response:
                response.read()

        hanging = threading.Thread(target=wait_for_the_answer, daemon=True)
        hanging.start()
        deadline = time.monotonic() + TIMEOUT
        while own.faults.seen("hang60-stop") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert own.faults.seen("hang60-stop") == 1
        started = time.monotonic()
        own.stop()
        assert time.monotonic() - started < 10
    hanging.join(timeout=5)
    assert not hanging.is_alive()


def test_revoked_access_token_is_refused_at_auth_like_an_invalid_one(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    assert post_form(settings["revoke_uri"], {"token": token}, settings) == (200, b"{}")

    with logged_in_plain_bare(settings) as client:
        code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], token))
        assert code == 334 and decoded_challenge(challenge) == GMAIL_XOAUTH2_CHALLENGE
        assert client.docmd("")[0] == 535
    status, body = post_form(settings["revoke_uri"], {"token": token}, settings)
    assert (status, json.loads(body)) == (400, {"error": "invalid_token"})
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    assert token not in log_text
    assert [json.loads(line)["outcome"] for line in log_text.splitlines() if '"/revoke"' in line][-2:] == ["revoked", "invalid_token"]


def test_revoked_refresh_token_no_longer_refreshes(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    refresh_token = sandbox.authority.grant_refresh_token(settings["client_id"], settings["account"])
    assert post_form(settings["token_uri"], refresh_form(settings, refresh_token=refresh_token), settings)[0] == 200
    # Google also takes the token in the query.
    assert post_form(settings["revoke_uri"] + "?token=" + urllib.parse.quote(refresh_token), {}, settings) == (200, b"{}")
    status, body = post_form(settings["token_uri"], refresh_form(settings, refresh_token=refresh_token), settings)
    assert (status, json.loads(body)["error"]) == (400, "invalid_grant")
    status, body = post_form(settings["revoke_uri"], {}, settings)
    assert (status, json.loads(body)) == (400, {"error": "invalid_token"})


def logged_in_plain_bare(settings: dict[str, t.Any]) -> smtplib.SMTP:
    """An unauthenticated client of the plain port, after EHLO."""
    client = smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT)
    client.ehlo()
    return client


# --------------------------------------------------------------------------------------------------
# app-only grants: Google service accounts (JWT bearer) and Microsoft client credentials


def google_request(settings: dict[str, t.Any]) -> google.auth.transport.requests.Request:
    """A google-auth transport that trusts only the sandbox CA."""
    session = requests.Session()
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify unless the environment is ignored.
    session.trust_env = False
    session.verify = settings["ca_path"]
    return google.auth.transport.requests.Request(session)


def service_account_credentials(settings: dict[str, t.Any], key: str = "service_account_key",
                                subject: str | None = None) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_info(
        settings[key], scopes=["https://mail.google.com/"], subject=subject)


def signed_jwt(key_pem: str, claims: dict[str, t.Any], header: dict[str, str] | None = None) -> str:
    """An RS256 JWT of ``claims`` signed with ``key_pem``, the way google-auth builds one."""
    return google.auth.jwt.encode(google.auth.crypt.RSASigner.from_string(key_pem), claims, header=header).decode()


def service_account_assertion(settings: dict[str, t.Any], key: str = "service_account_key", *,
                              kid: str | None = None, **overrides: t.Any) -> str:
    """google-auth's assertion for a delegated service account, with claims replaced (None drops one)."""
    info = settings[key]
    now = int(time.time())
    claims = {"iss": info["client_email"], "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600,
              "scope": "https://mail.google.com/", "sub": settings["workspace_user"]}
    claims.update(overrides)
    return signed_jwt(info["private_key"], {name: value for name, value in claims.items() if value is not None},
                      header={"kid": kid or info["private_key_id"]})


def jwt_bearer_form(assertion: str) -> dict[str, str]:
    return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


def smtp_bearer_reply(settings: dict[str, t.Any], user: str, token: str) -> tuple[int, bytes]:
    """The first reply to ``AUTH XOAUTH2`` for ``user`` with ``token`` on the implicit-TLS port; the session ends."""
    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        return client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(user, token))


def send_with_xoauth2(settings: dict[str, t.Any], user: str, token: str) -> dict[str, t.Any]:
    """Authenticate as ``user`` with ``token``, send a message as ``user``, and return its stored sidecar."""
    message, marker = new_message(user, "friend@example.com")
    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(user, token)) == (235, b"2.7.0 Accepted")
        client.send_message(message)
    return stored_message(settings, marker)[1]


def last_log_entry(settings: dict[str, t.Any]) -> dict[str, t.Any]:
    return json.loads(Path(settings["token_log"]).read_text(encoding="utf-8").splitlines()[-1])


def test_settings_describe_the_app_only_identities(settings: dict[str, t.Any]) -> None:
    delegated, undelegated = settings["service_account_key"], settings["service_account_key_undelegated"]
    for info in (delegated, undelegated):
        assert info["type"] == "service_account" and info["project_id"] == "sandbox-project"
        assert info["client_email"].endswith("@sandbox-project.iam.gserviceaccount.com")
        assert (info["token_uri"], info["auth_uri"]) == (settings["token_uri"], settings["auth_uri"])
        assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
        assert {"private_key_id", "client_id", "auth_provider_x509_cert_url", "client_x509_cert_url"} <= set(info)
    assert delegated["client_email"] != undelegated["client_email"]
    assert delegated["private_key_id"] != undelegated["private_key_id"]
    assert (settings["workspace_user"], settings["workspace_domain"]) == (settings["account"], "example.com")
    assert str(uuid.UUID(settings["microsoft_app_client_id"])) == settings["microsoft_app_client_id"]
    assert str(uuid.UUID(settings["microsoft_tenant_id"])) == settings["microsoft_tenant_id"]
    assert settings["microsoft_app_mailbox"] == settings["microsoft_account"]
    certificate = x509.load_pem_x509_certificate(settings["microsoft_app_certificate"].encode())
    key = serialization.load_pem_private_key(settings["microsoft_app_certificate_key"].encode(), password=None)
    assert settings["microsoft_app_certificate_key"].startswith("-----BEGIN PRIVATE KEY-----\n")
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()


def test_google_auth_delegated_service_account_token_sends_as_the_workspace_user(
        sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    credentials = service_account_credentials(settings, subject=settings["workspace_user"])

    credentials.refresh(google_request(settings))

    assert credentials.token and credentials.valid
    record = sandbox.authority.lookup_access_token(credentials.token)
    assert (record.account, record.scope) == (settings["workspace_user"], "https://mail.google.com/")
    # google-auth keeps the expiry as a naive UTC datetime.
    seconds_left = (credentials.expiry - datetime.datetime.now(datetime.UTC).replace(tzinfo=None)).total_seconds()
    assert 3500 < seconds_left <= 3599
    entry = last_log_entry(settings)
    assert (entry["path"], entry["grant_type"], entry["client_id"], entry["subject"], entry["outcome"]) == (
        "/token", "urn:ietf:params:oauth:grant-type:jwt-bearer", settings["service_account_key"]["client_email"],
        settings["workspace_user"], "issued")
    sidecar = send_with_xoauth2(settings, settings["workspace_user"], credentials.token)
    assert (sidecar["auth_mechanism"], sidecar["account"]) == ("XOAUTH2", settings["workspace_user"])


def test_jwt_bearer_answer_is_google_shaped(settings: dict[str, t.Any]) -> None:
    status, body = post_form(settings["token_uri"], jwt_bearer_form(service_account_assertion(settings)), settings)

    answer = json.loads(body)
    assert status == 200 and set(answer) == {"access_token", "expires_in", "token_type"}
    assert (answer["expires_in"], answer["token_type"]) == (3599, "Bearer")


def test_undelegated_service_account_is_unauthorized_for_a_subject(settings: dict[str, t.Any]) -> None:
    credentials = service_account_credentials(settings, "service_account_key_undelegated", subject=settings["workspace_user"])
    with pytest.raises(google.auth.exceptions.RefreshError, match="unauthorized_client"):
        credentials.refresh(google_request(settings))

    assertion = service_account_assertion(settings, "service_account_key_undelegated")
    status, body = post_form(settings["token_uri"], jwt_bearer_form(assertion), settings)
    assert (status, json.loads(body)) == (401, {
        "error": "unauthorized_client",
        "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not "
                             "authorized for any of the scopes requested.",
    })
    assert last_log_entry(settings)["outcome"] == "unauthorized_client"


@pytest.mark.parametrize("key", ["service_account_key", "service_account_key_undelegated"])
def test_service_account_own_token_is_refused_at_smtp_like_an_invalid_one(
        sandbox: t.Any, settings: dict[str, t.Any], key: str) -> None:
    credentials = service_account_credentials(settings, key)
    credentials.refresh(google_request(settings))
    email = settings[key]["client_email"]
    assert sandbox.authority.lookup_access_token(credentials.token).account == email
    assert "subject" not in last_log_entry(settings)

    for user in (email, settings["workspace_user"]):
        with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
            client.ehlo()
            code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(user, credentials.token))
            assert code == 334 and decoded_challenge(challenge) == GMAIL_XOAUTH2_CHALLENGE
            code, text = client.docmd("")
            assert code == 535 and text.startswith(b"5.7.8 ")


def _google_jwt_case(settings: dict[str, t.Any], case: str) -> str:
    """The assertion of one bad-JWT case (see the parametrization below)."""
    delegated, undelegated = settings["service_account_key"], settings["service_account_key_undelegated"]
    now = int(time.time())
    if case == "signed-by-another-key":
        claims = {"iss": delegated["client_email"], "aud": "https://oauth2.googleapis.com/token", "iat": now,
                  "exp": now + 3600, "scope": "https://mail.google.com/", "sub": settings["workspace_user"]}
        return signed_jwt(undelegated["private_key"], claims, header={"kid": delegated["private_key_id"]})
    if case == "unknown-key":
        return service_account_assertion(settings, kid="0" * 40, iss="nobody@sandbox-project.iam.gserviceaccount.com")
    if case == "tampered":
        header, claims, signature = service_account_assertion(settings).split(".")
        forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
        forged["sub"] = "someone.else@example.com"
        encoded = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        return f"{header}.{encoded}.{signature}"
    if case == "not-a-jwt":
        return "not.a-jwt"
    overrides = {
        "audience": {"aud": "https://example.com/token"},
        "no-mail-scope": {"scope": "https://www.googleapis.com/auth/cloud-platform"},
        "no-scope": {"scope": None},
        "subject-outside-domain": {"sub": "user@elsewhere.example"},
        "expired": {"iat": now - 7200, "exp": now - 3600},
        "too-long": {"exp": now + 7200},
        "issued-in-the-future": {"iat": now + 3600, "exp": now + 5400},
    }[case]
    return service_account_assertion(settings, **overrides)


@pytest.mark.parametrize(
    ("case", "status", "error", "description"),
    [
        ("signed-by-another-key", 400, "invalid_grant", "Invalid JWT Signature."),
        ("unknown-key", 400, "invalid_grant", "Invalid JWT Signature."),
        ("tampered", 400, "invalid_grant", "Invalid JWT Signature."),
        ("not-a-jwt", 400, "invalid_grant", "Invalid JWT Signature."),
        ("audience", 400, "invalid_grant", "Invalid JWT: Failed audience check"),
        ("no-mail-scope", 400, "invalid_scope", None),
        ("no-scope", 400, "invalid_scope", None),
        ("subject-outside-domain", 400, "invalid_grant", "Invalid email or User ID"),
        ("expired", 400, "invalid_grant", "Invalid JWT: Token must be a short-lived token"),
        ("too-long", 400, "invalid_grant", "Invalid JWT: Token must be a short-lived token"),
        ("issued-in-the-future", 400, "invalid_grant", "Invalid JWT: Token must be a short-lived token"),
    ],
)
def test_bad_service_account_assertions_are_refused(settings: dict[str, t.Any], case: str, status: int, error: str,
                                                    description: str | None) -> None:
    assertion = _google_jwt_case(settings, case)

    got_status, body = post_form(settings["token_uri"], jwt_bearer_form(assertion), settings)

    answer = json.loads(body)
    assert (got_status, answer["error"]) == (status, error)
    if description is not None:
        assert answer["error_description"].startswith(description)
    assert last_log_entry(settings)["outcome"] == error
    assert assertion not in Path(settings["token_log"]).read_text(encoding="utf-8")


def test_jwt_bearer_accepts_the_endpoint_url_as_audience_and_needs_an_assertion(settings: dict[str, t.Any]) -> None:
    assertion = service_account_assertion(settings, aud=settings["token_uri"])
    assert post_form(settings["token_uri"], jwt_bearer_form(assertion), settings)[0] == 200

    status, body = post_form(settings["token_uri"], {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, settings)
    assert (status, json.loads(body)["error"]) == (400, "invalid_request")


def test_jwt_bearer_works_on_the_fault_path(settings: dict[str, t.Any]) -> None:
    spec = f"status503x1-{uuid.uuid4()}"
    url = settings["token_uri_fault"].replace("{fault}", spec)
    form = jwt_bearer_form(service_account_assertion(settings))

    assert post_form(url, form, settings)[0] == 503
    status, body = post_form(url, form, settings)

    assert status == 200 and json.loads(body)["access_token"]
    assert logged_outcomes(settings, spec) == ["fault:status503", "issued"]


def microsoft_app_uri(settings: dict[str, t.Any], tenant: str | None = None) -> str:
    return microsoft_uri(settings, "microsoft_token_uri", tenant or settings["microsoft_tenant_id"])


def client_credentials_form(settings: dict[str, t.Any], **overrides: str | None) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_id": settings["microsoft_app_client_id"],
            "client_secret": settings["microsoft_app_client_secret"], "scope": "https://outlook.office365.com/.default"}
    form.update(overrides)
    return {name: value for name, value in form.items() if value is not None}


def certificate_x5t(certificate_pem: str) -> str:
    der = x509.load_pem_x509_certificate(certificate_pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()


def client_assertion(settings: dict[str, t.Any], *, key_pem: str | None = None, x5t: str | None = None,
                     **overrides: t.Any) -> str:
    """An MSAL-like client assertion for the sandbox app, signed with its certificate key unless told otherwise."""
    now = int(time.time())
    claims = {"aud": microsoft_app_uri(settings), "iss": settings["microsoft_app_client_id"],
              "sub": settings["microsoft_app_client_id"], "jti": str(uuid.uuid4()), "nbf": now, "exp": now + 600}
    claims.update(overrides)
    return signed_jwt(key_pem or settings["microsoft_app_certificate_key"],
                      {name: value for name, value in claims.items() if value is not None},
                      header={"x5t": x5t or certificate_x5t(settings["microsoft_app_certificate"])})


def assertion_form(settings: dict[str, t.Any], assertion: str, **overrides: str | None) -> dict[str, str]:
    fields: dict[str, str | None] = {
        "client_secret": None, "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    fields.update(overrides)
    return client_credentials_form(settings, **fields)


@pytest.mark.parametrize("credential", ["secret", "certificate"])
def test_client_credentials_token_sends_as_the_app_mailbox_only(
        sandbox: t.Any, settings: dict[str, t.Any], credential: str) -> None:
    form = client_credentials_form(settings) if credential == "secret" else assertion_form(settings, client_assertion(settings))

    status, body = post_form(microsoft_app_uri(settings), form, settings)

    answer = json.loads(body)
    assert status == 200, answer
    assert set(answer) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert (answer["token_type"], answer["expires_in"], answer["ext_expires_in"]) == ("Bearer", 3599, 3599)
    record = sandbox.authority.lookup_access_token(answer["access_token"])
    assert (record.account, record.client_id) == (settings["microsoft_app_mailbox"], settings["microsoft_app_client_id"])
    entry = last_log_entry(settings)
    assert (entry["grant_type"], entry["client_id"], entry["tenant"], entry["outcome"]) == (
        "client_credentials", settings["microsoft_app_client_id"], settings["microsoft_tenant_id"], "issued")
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    for secret in (settings["microsoft_app_client_secret"], form.get("client_assertion"), answer["access_token"]):
        assert secret is None or secret not in log_text

    sidecar = send_with_xoauth2(settings, settings["microsoft_app_mailbox"], answer["access_token"])
    assert sidecar["account"] == settings["microsoft_app_mailbox"]
    assert smtp_bearer_reply(settings, "other.user@contoso.example", answer["access_token"]) == (
        535, b"5.7.3 Authentication unsuccessful [sandbox]")


def test_app_token_with_oauthbearer_names_the_mailbox(settings: dict[str, t.Any]) -> None:
    token = json.loads(post_form(microsoft_app_uri(settings), client_credentials_form(settings), settings)[1])["access_token"]
    port = settings["smtp_ssl_port"]
    with smtplib.SMTP_SSL(settings["host"], port, context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response("other.user@contoso.example", token, port))[0] == 535
        assert client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response(settings["microsoft_app_mailbox"], token, port))[0] == 235


def test_client_credentials_accept_the_other_exchange_scope_and_the_tenant_domain(settings: dict[str, t.Any]) -> None:
    form = client_credentials_form(settings, scope="https://outlook.office.com/.default")
    assert post_form(microsoft_app_uri(settings), form, settings)[0] == 200
    assert post_form(microsoft_app_uri(settings, "contoso.example"), client_credentials_form(settings), settings)[0] == 200


def test_client_credentials_with_http_basic_secret(settings: dict[str, t.Any]) -> None:
    basic = base64.b64encode(f"{settings['microsoft_app_client_id']}:{settings['microsoft_app_client_secret']}".encode()).decode()
    form = client_credentials_form(settings, client_id=None, client_secret=None)

    status = post_form(microsoft_app_uri(settings), form, settings, headers={"Authorization": f"Basic {basic}"})[0]

    assert status == 200


def _client_credentials_case(settings: dict[str, t.Any], case: str) -> tuple[str, dict[str, str]]:
    """(token URL, form) of one failing client credentials case (see the parametrization below)."""
    uri = microsoft_app_uri(settings)
    other_key = settings["service_account_key"]["private_key"]
    cases: dict[str, t.Callable[[], tuple[str, dict[str, str]]]] = {
        "delegated-scope": lambda: (uri, client_credentials_form(settings, scope="https://outlook.office.com/SMTP.Send")),
        "no-scope": lambda: (uri, client_credentials_form(settings, scope=None)),
        "common": lambda: (microsoft_app_uri(settings, "common"), client_credentials_form(settings)),
        "organizations": lambda: (microsoft_app_uri(settings, "organizations"), client_credentials_form(settings)),
        "other-tenant": lambda: (microsoft_app_uri(settings, str(uuid.uuid4())), client_credentials_form(settings)),
        "unknown-app": lambda: (uri, client_credentials_form(settings, client_id=str(uuid.uuid4()))),
        "wrong-secret": lambda: (uri, client_credentials_form(settings, client_secret="wrong")),
        "no-credential": lambda: (uri, client_credentials_form(settings, client_secret=None)),
        "unknown-certificate": lambda: (uri, assertion_form(settings, client_assertion(settings, x5t="AAAA"))),
        "bad-signature": lambda: (uri, assertion_form(settings, client_assertion(settings, key_pem=other_key))),
        "audience": lambda: (uri, assertion_form(settings, client_assertion(settings, aud=settings["token_uri"]))),
        "issuer": lambda: (uri, assertion_form(settings, client_assertion(settings, iss=str(uuid.uuid4())))),
        "no-jti": lambda: (uri, assertion_form(settings, client_assertion(settings, jti=None))),
        "expired": lambda: (uri, assertion_form(settings, client_assertion(
            settings, nbf=int(time.time()) - 3600, exp=int(time.time()) - 1200))),
        "assertion-type": lambda: (uri, assertion_form(settings, client_assertion(settings), client_assertion_type="jwt")),
    }
    return cases[case]()


@pytest.mark.parametrize(
    ("case", "status", "error", "description"),
    [
        ("delegated-scope", 400, "invalid_scope",
         "AADSTS1002012: The provided value for scope https://outlook.office.com/SMTP.Send is not valid. "
         "Client credential flows must have a scope value with /.default suffixed to the resource identifier"),
        ("no-scope", 400, "invalid_scope", "AADSTS1002012: "),
        ("common", 400, "invalid_request", "AADSTS50059: No tenant-identifying information"),
        ("organizations", 400, "invalid_request", "AADSTS50059: "),
        ("other-tenant", 400, "invalid_request", "AADSTS90002: Tenant "),
        ("unknown-app", 400, "unauthorized_client", "AADSTS700016: "),
        ("wrong-secret", 401, "invalid_client", "AADSTS7000215: Invalid client secret provided."),
        ("no-credential", 401, "invalid_client", "AADSTS7000218: "),
        ("unknown-certificate", 401, "invalid_client", "AADSTS700027: "),
        ("bad-signature", 401, "invalid_client", "AADSTS700027: Client assertion contains an invalid signature."),
        ("audience", 401, "invalid_client", "AADSTS700027: "),
        ("issuer", 401, "invalid_client", "AADSTS700021: "),
        ("no-jti", 401, "invalid_client", "AADSTS700027: "),
        ("expired", 401, "invalid_client", "AADSTS700024: "),
        ("assertion-type", 400, "invalid_request", "AADSTS700025: "),
    ],
)
def test_client_credentials_errors_are_entra_shaped(settings: dict[str, t.Any], case: str, status: int, error: str,
                                                    description: str) -> None:
    uri, form = _client_credentials_case(settings, case)

    got_status, body = post_form(uri, form, settings)

    answer = json.loads(body)
    assert (got_status, answer["error"]) == (status, error)
    assert answer["error_description"].startswith(description)
    assert "refresh_token" not in answer and "access_token" not in answer
    entry = last_log_entry(settings)
    assert (entry["grant_type"], entry["outcome"]) == ("client_credentials", error)
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    for secret in (settings["microsoft_app_client_secret"], form.get("client_assertion")):
        assert secret is None or secret not in log_text


def test_app_only_grants_stay_on_their_own_provider(settings: dict[str, t.Any]) -> None:
    status, body = post_form(settings["token_uri"], client_credentials_form(settings), settings)
    assert (status, json.loads(body)["error"]) == (400, "unsupported_grant_type")
    status, body = post_form(microsoft_app_uri(settings), jwt_bearer_form(service_account_assertion(settings)), settings)
    assert (status, json.loads(body)["error"]) == (400, "unsupported_grant_type")


# --------------------------------------------------------------------------------------------------
# CLI and Dovecot


def test_cli_run_wait_stop(tmp_path: Path) -> None:
    script = str(SANDBOX_DIR / "xoauth2_sandbox.py")
    state_dir = tmp_path / "cli"
    with subprocess.Popen([sys.executable, script, "run", "--state-dir", str(state_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            waited = subprocess.run([sys.executable, script, "wait", "--state-dir", str(state_dir), "--timeout", "20"], check=False)
            assert waited.returncode == 0
            assert set(json.loads((state_dir / "sandbox.json").read_text(encoding="utf-8"))) == SETTINGS_KEYS
            stopped = subprocess.run([sys.executable, script, "stop", "--state-dir", str(state_dir), "--timeout", "20"], check=False)
            assert stopped.returncode == 0
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert not (state_dir / "sandbox.json").exists() and not (state_dir / "sandbox.pid").exists()


def test_dovecot_submission_validates_tokens_with_tokeninfo_and_relays(settings: dict[str, t.Any], tmp_path: Path) -> None:
    if dovecot_submission.find_dovecot() is None:
        pytest.fail("dovecot is not installed; CI installs dovecot-core and dovecot-submissiond")
    token = fetch_access_token(settings)
    message, marker = new_message(settings["account"], "friend@example.com")

    with dovecot_submission.DovecotSubmission(tmp_path / "dovecot-state", settings) as dovecot:
        assert json.loads(dovecot.settings_path.read_text(encoding="utf-8")) == {"dovecot_submission_port": dovecot.port}
        with smtplib.SMTP(settings["host"], dovecot.port, timeout=TIMEOUT) as client:
            client.starttls(context=client_context(settings))
            client.ehlo()
            code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], "ya29.not-issued"))
            assert code == 334 and decoded_challenge(challenge)["status"] == "401"
            assert client.docmd("")[0] == 535
            assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], token))[0] == 235
            client.send_message(message)

    assert not dovecot.settings_path.exists()
    eml_path, sidecar = stored_message(settings, marker)
    assert (sidecar["port"], sidecar["mail_from"], sidecar["rcpt_tos"]) == ("relay", settings["account"], ["friend@example.com"])
    assert b"with ESMTPSA" in eml_path.read_bytes()  # Dovecot's Received: header


# --------------------------------------------------------------------------------------------------
# Entra ID's client authentication: public and confidential clients


def test_microsoft_public_client_refreshes_without_a_secret_and_must_not_send_one(settings: dict[str, t.Any]) -> None:
    uri = microsoft_uri(settings, "microsoft_token_uri")
    form = {"grant_type": "refresh_token", "client_id": settings["microsoft_public_client_id"],
            "refresh_token": settings["microsoft_public_refresh_token"], "scope": MICROSOFT_SCOPES}
    status, body = post_form(uri, form, settings)
    answer = json.loads(body)
    assert status == 200, body
    assert answer["scope"] == "https://outlook.office.com/SMTP.Send"  # Entra never lists offline_access
    assert "refresh_token" in answer
    for secret in ("", "anything"):
        status, body = post_form(uri, {**form, "client_secret": secret}, settings)
        assert (status, json.loads(body)["error"]) == (401, "invalid_client")
        assert "AADSTS700025" in json.loads(body)["error_description"]


def test_microsoft_confidential_client_still_needs_its_secret_to_refresh(settings: dict[str, t.Any]) -> None:
    uri = microsoft_uri(settings, "microsoft_token_uri")
    form = {"grant_type": "refresh_token", "client_id": settings["microsoft_client_id"],
            "refresh_token": settings["microsoft_refresh_token"], "scope": MICROSOFT_SCOPES}
    status, body = post_form(uri, form, settings)
    assert (status, json.loads(body)["error"]) == (401, "invalid_client")
    assert "AADSTS7000218" in json.loads(body)["error_description"]
    status, body = post_form(uri, {**form, "client_secret": settings["microsoft_client_secret"]}, settings)
    assert status == 200, body


def test_microsoft_public_client_device_flow_gives_a_token_that_refreshes_without_a_secret(settings: dict[str, t.Any]) -> None:
    uri = microsoft_uri(settings, "microsoft_device_authorization_uri")
    status, body = post_form(uri + "?approve_after=0", {"client_id": settings["microsoft_public_client_id"],
                                                        "scope": MICROSOFT_SCOPES}, settings)
    assert status == 200, body
    poll = {"grant_type": xoauth2_sandbox.DEVICE_CODE_GRANT, "device_code": json.loads(body)["device_code"],
            "client_id": settings["microsoft_public_client_id"]}
    status, body = post_form(microsoft_uri(settings, "microsoft_token_uri"), poll, settings)
    assert status == 200, body
    refresh = {"grant_type": "refresh_token", "client_id": settings["microsoft_public_client_id"],
               "refresh_token": json.loads(body)["refresh_token"], "scope": MICROSOFT_SCOPES}
    assert post_form(microsoft_uri(settings, "microsoft_token_uri"), refresh, settings)[0] == 200


# --------------------------------------------------------------------------------------------------
# Exchange Online: the end of Basic authentication, High Volume Email


def test_basicauth_identity_gets_exchange_onlines_550_5_7_30(settings: dict[str, t.Any]) -> None:
    user = f"fault-basicauthx1-{uuid.uuid4().hex[:12]}@contoso.example"
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        client.user, client.password = user, "any password"
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("LOGIN", client.auth_login)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (
            550, b"5.7.30 Basic authentication is not supported for Client Submission")
        # x1: the next login with that identity is checked as usual (and refused: it is not the account).
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("PLAIN", client.auth_plain)
        assert refused.value.smtp_code == 535


def test_lifetime_fault_issues_a_short_token_and_hve_refuses_it(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "lifetime480x1")
    status, body = post_form(uri, refresh_form(settings), settings)
    short = json.loads(body)
    assert status == 200 and short["expires_in"] == 480
    assert 470 <= sandbox.authority.lookup_access_token(short["access_token"]).seconds_left() <= 480
    normal = json.loads(post_form(uri, refresh_form(settings), settings)[1])
    assert normal["expires_in"] == xoauth2_sandbox.ACCESS_TOKEN_LIFETIME_SECONDS
    assert logged_outcomes(settings, tagged) == ["issued", "issued"]

    hve = f"fault-hve-{uuid.uuid4().hex[:12]}@contoso.example"
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(hve, short["access_token"])) == (
            501, b"5.5.127 The access token expires in less than 10 minutes (sandbox)")
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(hve, normal["access_token"]))[0] == 235
    assert sandbox.faults.seen(hve) == 1
