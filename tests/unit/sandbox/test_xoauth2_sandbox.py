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
import hashlib
import importlib
import json
import smtplib
import ssl
import subprocess
import sys
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

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
    "microsoft_token_uri", "microsoft_auth_uri",
    "smtp_ssl_port", "smtp_starttls_port", "smtp_untrusted_port", "smtp_plain_port", "smtp_relay_port",
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
