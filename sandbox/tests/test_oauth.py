# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token endpoint as Google and Microsoft answer: refresh, consent and code exchange, the device flow."""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from sandbox_client import (
    MICROSOFT_SCOPES,
    SETTINGS_KEYS,
    TIMEOUT,
    authorize,
    client_context,
    code_form,
    fetch_access_token,
    microsoft_refresh_form,
    microsoft_uri,
    post_form,
    refresh_form,
    s256,
)
from xoauth2_sandbox.common import DEVICE_CODE_GRANT, DEVICE_CODE_PREFIX

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
    form = {"grant_type": DEVICE_CODE_GRANT, "device_code": code["device_code"],
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
    assert code["device_code"].startswith(DEVICE_CODE_PREFIX)
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
    poll = {"grant_type": DEVICE_CODE_GRANT, "device_code": json.loads(body)["device_code"],
            "client_id": settings["microsoft_public_client_id"]}
    status, body = post_form(microsoft_uri(settings, "microsoft_token_uri"), poll, settings)
    assert status == 200, body
    refresh = {"grant_type": "refresh_token", "client_id": settings["microsoft_public_client_id"],
               "refresh_token": json.loads(body)["refresh_token"], "scope": MICROSOFT_SCOPES}
    assert post_form(microsoft_uri(settings, "microsoft_token_uri"), refresh, settings)[0] == 200
