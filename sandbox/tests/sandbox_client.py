# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the sandbox's tests share: settings keys, form builders, SASL answers, SMTP clients, stored mail."""

from __future__ import annotations

import base64
import hashlib
import json
import smtplib
import ssl
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid
from email.message import EmailMessage
from pathlib import Path

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


def logged_outcomes(settings: dict[str, t.Any], spec: str) -> list[str]:
    entries = map(json.loads, Path(settings["token_log"]).read_text(encoding="utf-8").splitlines())
    return [entry["outcome"] for entry in entries if entry.get("fault") == spec]


def fault_uri(settings: dict[str, t.Any], spec: str) -> tuple[str, str]:
    """(spec with a unique tag, its token URI)."""
    tagged = f"{spec}-{uuid.uuid4().hex[:12]}"
    return tagged, settings["token_uri_fault"].replace("{fault}", tagged)


def logged_in(settings: dict[str, t.Any], port_key: str = "smtp_plain_port", timeout: float = TIMEOUT) -> smtplib.SMTP:
    """A client authenticated with the app password (implicit TLS for every port but the plain one)."""
    if port_key == "smtp_plain_port":
        client = smtplib.SMTP(settings["host"], settings[port_key], timeout=timeout)
    else:
        client = smtplib.SMTP_SSL(settings["host"], settings[port_key], context=client_context(settings), timeout=timeout)
    client.login(settings["account"], settings["app_password"])
    return client


def stored_count(settings: dict[str, t.Any], marker: str) -> int:
    return sum(marker.encode() in path.read_bytes() for path in Path(settings["mail_dir"]).glob("*.eml"))
