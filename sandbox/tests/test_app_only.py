# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The app-only grants: Google service accounts (JWT bearer) and Microsoft client credentials."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import smtplib
import time
import typing as t
import uuid
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

from sandbox_client import (
    GMAIL_XOAUTH2_CHALLENGE,
    TIMEOUT,
    client_context,
    decoded_challenge,
    logged_outcomes,
    microsoft_uri,
    new_message,
    oauthbearer_response,
    post_form,
    stored_message,
    xoauth2_response,
)

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
