# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A local, Gmail-like XOAUTH2 sandbox: an OAuth 2.0 token endpoint and SMTP servers on loopback.

Everything listens on 127.0.0.1 on free ports and is described by ``<state_dir>/sandbox.json``,
which is written (atomically) only once every server listens. Only the standard library, aiosmtpd
and trustme are used.

* Token endpoint (Google-like): ``POST /token`` with ``grant_type=refresh_token``, ``GET /tokeninfo``,
  and a few deliberately broken paths for error tests. Served over HTTPS with a certificate of the
  trusted CA (``ca.pem``), over HTTPS with a certificate of an unrelated CA, and over plain HTTP.
* SMTP (smtp.gmail.com-like): implicit TLS, STARTTLS, implicit TLS with the untrusted certificate,
  and plain SMTP, all requiring ``AUTH XOAUTH2 | OAUTHBEARER | PLAIN | LOGIN`` before MAIL; plus a
  plain relay sink without AUTH (for a third-party server such as Dovecot to relay to).
* Every accepted message is stored under ``<state_dir>/mail`` as ``.eml`` (exact bytes) with a
  ``.json`` sidecar describing the envelope and the authentication (never the token).

Run ``python sandbox/xoauth2_sandbox.py run --state-dir DIR`` (foreground until SIGTERM/SIGINT),
``... wait --state-dir DIR`` (until ``sandbox.json`` exists) and ``... stop --state-dir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import dataclasses
import datetime
import hmac
import http.server
import itertools
import json
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import typing as t
import urllib.parse
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

LOG = logging.getLogger("xoauth2_sandbox")

HOST = "127.0.0.1"
ACCOUNT = "sandbox.user@example.com"
GMAIL_SCOPE = "https://mail.google.com/"
ACCESS_TOKEN_LIFETIME_SECONDS = 3599
SMTP_HOSTNAME = "smtp.sandbox.localhost"

SETTINGS_FILE = "sandbox.json"
PID_FILE = "sandbox.pid"
CA_FILE = "ca.pem"
UNTRUSTED_CA_FILE = "untrusted-ca.pem"
#: Certificate chain and key of the trusted CA's server certificate, for other servers (Dovecot).
SERVER_CERT_FILE = "server-cert.pem"
SERVER_KEY_FILE = "server-key.pem"
MAIL_DIR = "mail"
TOKEN_LOG_FILE = "token_requests.jsonl"

TOKEN_PATH = "/token"
TOKEN_NOT_JSON_PATH = "/token-not-json"
TOKEN_NO_ACCESS_TOKEN_PATH = "/token-without-access-token"
TOKENINFO_PATH = "/tokeninfo"

#: Long enough for an AUTH line carrying a large base64 bearer token (Gmail accepts ~12 KiB).
MAX_AUTH_LINE_LENGTH = 12288
#: Gmail's advertised SIZE.
GMAIL_SIZE_LIMIT = 35882577
ADVERTISED_MECHANISMS = ("XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN")

BAD_CREDENTIALS_REPLY = (
    "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials sandbox"
)
AUTH_ACCEPTED_REPLY = "235 2.7.0 Accepted"
UNDECODABLE_RESPONSE_REPLY = "501 5.5.2 Cannot Decode response"
MALFORMED_RESPONSE_REPLY = "501 5.5.2 Syntax error in SASL client response"
UNKNOWN_RECIPIENT_REPLY = "550 5.1.1 The email account that you tried to reach does not exist."
REFUSED_SENDER_REPLY = "553 5.7.1 Sender address rejected"

REJECT_RECIPIENT_PREFIX = "reject"
REFUSE_SENDER_PREFIX = "refused"
DROP_AFTER_DATA_PREFIX = "drop-after-data"


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listened on a moment ago (aiosmtpd cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_json_atomically(path: Path, data: t.Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            json.dump(data, tmp, indent=2, sort_keys=True)
            tmp.write("\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def local_part(address: str) -> str:
    """The lower-cased local part of an e-mail address (everything before the last ``@``)."""
    return address.rpartition("@")[0].lower() if "@" in address else address.lower()


def same_account(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


# --------------------------------------------------------------------------------------------------
# OAuth 2.0 token authority
# --------------------------------------------------------------------------------------------------


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
    client_secret: str


@dataclasses.dataclass
class RefreshToken:
    token: str
    client_id: str
    account: str
    scope: str
    revoked: bool = False


@dataclasses.dataclass(frozen=True)
class AccessToken:
    token: str
    account: str
    client_id: str
    scope: str
    expires_at: float

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
        self._lock = threading.Lock()
        self._clients: dict[str, OAuthClient] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._access_tokens: dict[str, AccessToken] = {}

    def register_client(self, client_id: str | None = None, client_secret: str | None = None) -> OAuthClient:
        """Register (and return) a client; random Google-looking credentials when none are given."""
        client = OAuthClient(
            client_id=client_id or f"{secrets.randbelow(10**12):012d}-{secrets.token_hex(16)}.apps.googleusercontent.com",
            client_secret=client_secret or f"GOCSPX-{secrets.token_urlsafe(21)}",
        )
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def grant_refresh_token(self, client_id: str, account: str, *, revoked: bool = False) -> str:
        """Create a refresh token of ``account`` for ``client_id`` (already revoked if asked)."""
        token = f"1//sandbox-{secrets.token_urlsafe(32)}"
        with self._lock:
            self._refresh_tokens[token] = RefreshToken(token, client_id, account, self.scope, revoked)
        return token

    def revoke_refresh_token(self, token: str) -> bool:
        """Revoke a refresh token; False when it is unknown."""
        with self._lock:
            grant = self._refresh_tokens.get(token)
            if grant is None:
                return False
            grant.revoked = True
            return True

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> OAuthClient:
        """The registered client with this secret; raises ``invalid_client`` (401) otherwise."""
        with self._lock:
            client = self._clients.get(client_id or "")
        if client is None or not hmac.compare_digest(client.client_secret.encode(), (client_secret or "").encode()):
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        return client

    def redeem_refresh_token(self, client: OAuthClient, refresh_token: str) -> AccessToken:
        """A new access token for a live refresh token of ``client``; raises ``invalid_grant`` (400) otherwise."""
        with self._lock:
            grant = self._refresh_tokens.get(refresh_token)
        if grant is None or grant.revoked or grant.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        return self.issue_access_token(grant.account, client_id=client.client_id)

    def issue_access_token(self, account: str, *, client_id: str | None = None, lifetime: float | None = None) -> AccessToken:
        """Issue and record an access token of ``account`` (``lifetime`` seconds; may be <= 0 for an expired one)."""
        if client_id is None:
            with self._lock:
                client_id = next(iter(self._clients), "sandbox-client")
        record = AccessToken(
            token=f"ya29.sandbox-{secrets.token_urlsafe(48)}",
            account=account,
            client_id=client_id,
            scope=self.scope,
            expires_at=time.time() + (self.access_token_lifetime if lifetime is None else lifetime),
        )
        with self._lock:
            self._access_tokens[record.token] = record
        return record

    def revoke_access_token(self, token: str) -> bool:
        """Forget an access token; False when it was unknown."""
        with self._lock:
            return self._access_tokens.pop(token, None) is not None

    def lookup_access_token(self, token: str) -> AccessToken | None:
        """The record of a live (issued, unrevoked, unexpired) access token, else None."""
        with self._lock:
            record = self._access_tokens.get(token)
        return record if record is not None and record.is_live() else None


# --------------------------------------------------------------------------------------------------
# HTTP token endpoint
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"

    @classmethod
    def of_json(cls, status: int, data: t.Any) -> HttpResponse:
        return cls(status, json.dumps(data, indent=2).encode("utf-8"))


class TokenEndpointApp:
    """The routes of the OAuth endpoint, shared by every HTTP(S) listener of the sandbox."""

    def __init__(self, authority: TokenAuthority, token_log: Path) -> None:
        self.authority = authority
        self.token_log = token_log
        self._log_lock = threading.Lock()

    def handle(self, method: str, target: str, headers: t.Mapping[str, str], body: bytes) -> HttpResponse:
        """Answer one request; never raises for bad input."""
        url = urllib.parse.urlsplit(target)
        if url.path == TOKEN_PATH:
            if method != "POST":
                return HttpResponse.of_json(405, {"error": "invalid_request", "error_description": "Use POST."})
            return self._token(url.path, headers, body)
        if url.path == TOKEN_NOT_JSON_PATH:
            self._log_request(url.path, parse_form(body), headers, "not_json")
            page = b"<!DOCTYPE html><html><head><title>Error</title></head><body>Sandbox says hello.</body></html>"
            return HttpResponse(200, page, "text/html; charset=utf-8")
        if url.path == TOKEN_NO_ACCESS_TOKEN_PATH:
            self._log_request(url.path, parse_form(body), headers, "no_access_token")
            return HttpResponse.of_json(200, {"expires_in": ACCESS_TOKEN_LIFETIME_SECONDS, "scope": self.authority.scope, "token_type": "Bearer"})
        if url.path == TOKENINFO_PATH:
            return self._tokeninfo(url.path, url.query, headers, body)
        return HttpResponse.of_json(404, {"error": "not_found"})

    def _token(self, path: str, headers: t.Mapping[str, str], body: bytes) -> HttpResponse:
        form = parse_form(body)
        client_id, client_secret = client_credentials(headers, form)
        try:
            if form.get("grant_type") != "refresh_token":
                raise OAuthError(400, "unsupported_grant_type")
            client = self.authority.authenticate_client(client_id, client_secret)
            refresh_token = form.get("refresh_token")
            if not refresh_token:
                raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
            issued = self.authority.redeem_refresh_token(client, refresh_token)
        except OAuthError as error:
            self._log_request(path, form, headers, error.error, client_id=client_id)
            return HttpResponse.of_json(error.status, error.as_json())
        self._log_request(path, form, headers, "issued", client_id=client_id)
        return HttpResponse.of_json(
            200,
            {
                "access_token": issued.token,
                "expires_in": ACCESS_TOKEN_LIFETIME_SECONDS,
                "scope": issued.scope,
                "token_type": "Bearer",
            },
        )

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
        self, path: str, form: t.Mapping[str, str], headers: t.Mapping[str, str], outcome: str, *, client_id: str | None = None
    ) -> None:
        """Append one JSON line about a request; holds no secret (no tokens, no client secret)."""
        if client_id is None:
            client_id = client_credentials(headers, form)[0]
        entry = {
            "time": utc_now().isoformat(timespec="milliseconds"),
            "path": path,
            "grant_type": form.get("grant_type"),
            "client_id": client_id,
            "outcome": outcome,
        }
        with self._log_lock, self.token_log.open("a", encoding="utf-8") as log_file:
            log_file.write(json.dumps(entry) + "\n")


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
        response = self.server.app.handle(self.command, self.path, self.headers, body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
        self.end_headers()
        self.wfile.write(response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The query of /tokeninfo carries an access token: log the path only.
        LOG.debug("%s %s -> %s", self.command, urllib.parse.urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002 - signature of the base class
        LOG.debug("token endpoint: " + format, *args)


class TokenEndpointServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server for :class:`TokenEndpointApp`, optionally speaking TLS."""

    daemon_threads = True

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


# --------------------------------------------------------------------------------------------------
# SMTP
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AuthenticatedAccount:
    """What a successful AUTH proved; ``login`` is the attribute aiosmtpd copies into the session."""

    login: str
    mechanism: str


class MailStore:
    """Stores received messages as ``<YYYYmmddTHHMMSS>-<seq>.eml`` plus a ``.json`` sidecar."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def store(self, envelope: Envelope, session: Session, port_name: str) -> Path:
        """Write the exact received bytes and the envelope description; returns the ``.eml`` path."""
        received_at = utc_now()
        content = envelope.original_content or b""
        auth = session.auth_data if isinstance(session.auth_data, AuthenticatedAccount) else None
        with self._lock:
            self.mail_dir.mkdir(parents=True, exist_ok=True)
            while True:
                stem = f"{received_at:%Y%m%dT%H%M%S}-{next(self._sequence):06d}"
                eml_path = self.mail_dir / f"{stem}.eml"
                try:
                    # Exclusive creation: a restarted sandbox must not overwrite older mail.
                    with eml_path.open("xb") as eml_file:
                        eml_file.write(content)
                    break
                except FileExistsError:
                    continue
        write_json_atomically(
            eml_path.with_suffix(".json"),
            {
                "eml": eml_path.name,
                "received_at": received_at.isoformat(timespec="milliseconds"),
                "port": port_name,
                "peer": list(session.peer) if isinstance(session.peer, tuple) else session.peer,
                "helo": session.host_name,
                "mail_from": envelope.mail_from,
                "mail_options": envelope.mail_options,
                "rcpt_tos": envelope.rcpt_tos,
                "auth_mechanism": auth.mechanism if auth else None,
                "account": auth.login if auth else None,
                "size": len(content),
            },
        )
        return eml_path


async def read_initial_response(server: SMTP, args: list[str]) -> bytes | None:
    """The decoded SASL initial response, from the AUTH line or after an empty ``334 `` prompt.

    None when the exchange already ended with an error reply (cancelled, undecodable base64).
    """
    if len(args) == 1:
        answer = await server.challenge_auth("", encode_to_b64=False)
        return None if answer is MISSING else t.cast(bytes, answer)
    if args[1] == "=":  # RFC 4954: a lone "=" is an empty initial response
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except binascii.Error:
        await server.push(UNDECODABLE_RESPONSE_REPLY)
        return None


def parse_xoauth2(raw: bytes) -> tuple[str, str] | None:
    """(user, bearer token) of an XOAUTH2 response ``user=U\\x01auth=Bearer T\\x01\\x01``; None if malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    fields: dict[str, str] = {}
    for item in text[:-2].split("\x01"):
        key, sep, value = item.partition("=")
        if not sep:
            return None
        fields[key] = value
    scheme, _, token = fields.get("auth", "").partition(" ")
    user = fields.get("user", "")
    if not user or scheme.lower() != "bearer" or not token.strip():
        return None
    return user, token.strip()


def parse_oauthbearer(raw: bytes) -> tuple[str | None, str] | None:
    """(authzid or None, bearer token) of an RFC 7628 response ``n,a=U,\\x01host=H\\x01port=P\\x01auth=Bearer T\\x01\\x01``.

    None if malformed (including channel binding, which the sandbox does not offer).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    gs2_header, sep, key_values = text.partition("\x01")
    gs2_fields = gs2_header.split(",")
    if not sep or len(gs2_fields) != 3 or gs2_fields[0] not in ("n", "y") or gs2_fields[2] != "":
        return None
    authzid: str | None = None
    if gs2_fields[1]:
        if not gs2_fields[1].startswith("a="):
            return None
        authzid = gs2_fields[1][2:].replace("=2C", ",").replace("=3D", "=")
    if not key_values.endswith("\x01"):
        return None
    pairs = key_values[:-1].split("\x01")
    if pairs[-1] != "":
        return None
    fields: dict[str, str] = {}
    for pair in pairs[:-1]:
        key, sep, value = pair.partition("=")
        if not sep:
            return None
        fields[key] = value
    scheme, _, token = fields.get("auth", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return authzid, token.strip()


class AppPasswordAuthenticator:
    """aiosmtpd authenticator for PLAIN and LOGIN: the account with its app password."""

    def __init__(self, account: str, app_password: str) -> None:
        self.account = account
        self.app_password = app_password

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: t.Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password_ok = hmac.compare_digest(auth_data.password, self.app_password.encode())
            if same_account(login, self.account) and password_ok:
                return AuthResult(success=True, auth_data=AuthenticatedAccount(self.account, mechanism), message=AUTH_ACCEPTED_REPLY)
        return AuthResult(success=False, handled=False, message=BAD_CREDENTIALS_REPLY)


class GmailLikeHandler:
    """aiosmtpd handler of the authenticated ports: Gmail's SASL behaviour, error-test addresses, storage."""

    def __init__(self, port_name: str, authority: TokenAuthority, mail_store: MailStore) -> None:
        self.port_name = port_name
        self.authority = authority
        self.mail_store = mail_store

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]) -> list[str]:
        # With an EHLO hook aiosmtpd leaves recording the client name to the hook.
        session.host_name = hostname
        return [f"250-AUTH {' '.join(ADVERTISED_MECHANISMS)}" if line.startswith("250-AUTH ") else line for line in responses]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> t.Any:
        if local_part(address).startswith(REFUSE_SENDER_PREFIX):
            return REFUSED_SENDER_REPLY
        return MISSING

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> t.Any:
        if local_part(address).startswith(REJECT_RECIPIENT_PREFIX):
            return UNKNOWN_RECIPIENT_REPLY
        return MISSING

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        stored = self.mail_store.store(envelope, session, self.port_name)
        if any(local_part(rcpt).startswith(DROP_AFTER_DATA_PREFIX) for rcpt in envelope.rcpt_tos):
            # "Delivery unknown": the message is kept but the final dot is never answered.
            LOG.info("dropping the connection after DATA (%s)", stored.name)
            assert server.transport is not None
            server.transport.abort()
            # abort() makes aiosmtpd's connection_lost() cancel this session; wait for that.
            await asyncio.sleep(60)
        return f"250 2.0.0 OK {stored.stem} - sandbox"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        raw = await read_initial_response(server, args)
        if raw is None:
            return AuthResult(success=False, handled=True)
        parsed = parse_xoauth2(raw)
        if parsed is None:
            await server.push(MALFORMED_RESPONSE_REPLY)
            return AuthResult(success=False, handled=True)
        user, token = parsed
        record = self.authority.lookup_access_token(token)
        if record is not None and same_account(user, record.account):
            return AuthResult(success=True, auth_data=AuthenticatedAccount(record.account, "XOAUTH2"), message=AUTH_ACCEPTED_REPLY)
        return await self._refuse_bearer(server, {"status": "400", "schemes": "Bearer", "scope": self.authority.scope})

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        raw = await read_initial_response(server, args)
        if raw is None:
            return AuthResult(success=False, handled=True)
        parsed = parse_oauthbearer(raw)
        if parsed is None:
            await server.push(MALFORMED_RESPONSE_REPLY)
            return AuthResult(success=False, handled=True)
        authzid, token = parsed
        record = self.authority.lookup_access_token(token)
        # Like XOAUTH2's user, the authzid (a=) must name the token's account.
        if record is not None and authzid is not None and same_account(authzid, record.account):
            return AuthResult(success=True, auth_data=AuthenticatedAccount(record.account, "OAUTHBEARER"), message=AUTH_ACCEPTED_REPLY)
        return await self._refuse_bearer(server, {"status": "invalid_token", "schemes": "Bearer", "scope": self.authority.scope})

    @staticmethod
    async def _refuse_bearer(server: SMTP, error: dict[str, str]) -> AuthResult:
        """Gmail's refusal of a bearer token: a ``334`` JSON challenge, the client's answer, then 535."""
        answer = await server.challenge_auth(json.dumps(error, separators=(",", ":")))
        if answer is not MISSING:  # MISSING: the client cancelled ("*") and aiosmtpd answered 501
            await server.push(BAD_CREDENTIALS_REPLY)
        return AuthResult(success=False, handled=True)


class RelaySinkHandler:
    """aiosmtpd handler of the relay sink: no AUTH, every message accepted and stored."""

    def __init__(self, mail_store: MailStore) -> None:
        self.mail_store = mail_store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        stored = self.mail_store.store(envelope, session, "relay")
        # No enhanced status code: the relay does not advertise ENHANCEDSTATUSCODES.
        return f"250 OK queued as {stored.stem}"


class SandboxSMTP(SMTP):
    """aiosmtpd's SMTP with room for long AUTH lines (bearer tokens)."""

    line_length_limit = MAX_AUTH_LINE_LENGTH

    def __init__(self, handler: t.Any, *, auth_require_tls: bool = True, **kwargs: t.Any) -> None:
        super().__init__(handler, auth_require_tls=True, **kwargs)
        # Set after construction: aiosmtpd warns on every connection of a server that allows AUTH
        # without STARTTLS, which the implicit-TLS and loopback-plain listeners do on purpose.
        self._auth_require_tls = auth_require_tls
        # aiosmtpd keeps the per-command limits in a class-wide dict it clears in __init__; give
        # every session its own, with AUTH raised.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit, {"AUTH": MAX_AUTH_LINE_LENGTH})


class SandboxController(Controller):
    """aiosmtpd's threaded Controller serving :class:`SandboxSMTP`."""

    def factory(self) -> SandboxSMTP:
        return SandboxSMTP(self.handler, **self.SMTP_kwargs)


# --------------------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TlsMaterial:
    """Server TLS contexts of the trusted and the untrusted CA."""

    trusted: ssl.SSLContext
    untrusted: ssl.SSLContext


class Sandbox:
    """All sandbox servers; ``start()`` makes them listen and writes ``sandbox.json``, ``stop()`` ends them.

    ``settings`` (the content of ``sandbox.json``) is filled by ``start()``; ``authority`` lets tests
    issue, look up and revoke access tokens in-process.
    """

    def __init__(self, state_dir: Path | str, *, account: str = ACCOUNT) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.account = account
        self.settings: dict[str, t.Any] = {}
        self.authority = TokenAuthority()
        self._http_servers: list[tuple[TokenEndpointServer, threading.Thread]] = []
        self._controllers: list[SandboxController] = []

    @property
    def settings_path(self) -> Path:
        return self.state_dir / SETTINGS_FILE

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> dict[str, t.Any]:
        """Start every server, then write ``sandbox.json``; returns the settings."""
        if self._controllers or self._http_servers:
            raise RuntimeError("the sandbox is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # A stale file would tell waiting callers that servers listen before they do.
        self.settings_path.unlink(missing_ok=True)
        mail_dir = self.state_dir / MAIL_DIR
        mail_dir.mkdir(exist_ok=True)
        token_log = self.state_dir / TOKEN_LOG_FILE
        try:
            tls = self._create_tls_material()
            client = self.authority.register_client()
            refresh_token = self.authority.grant_refresh_token(client.client_id, self.account)
            revoked_refresh_token = self.authority.grant_refresh_token(client.client_id, self.account, revoked=True)
            app_password = secrets.token_urlsafe(12)

            app = TokenEndpointApp(self.authority, token_log)
            https_port = self._serve_http(app, tls.trusted)
            https_untrusted_port = self._serve_http(app, tls.untrusted)
            http_port = self._serve_http(app, None)
            unreachable_port = free_port()

            mail_store = MailStore(mail_dir)
            authenticator = AppPasswordAuthenticator(self.account, app_password)

            def authenticated_smtp(name: str, **kwargs: t.Any) -> int:
                handler = GmailLikeHandler(name, self.authority, mail_store)
                return self._serve_smtp(handler, auth_required=True, authenticator=authenticator, **kwargs)

            smtp_ssl_port = authenticated_smtp("ssl", ssl_context=tls.trusted, auth_require_tls=False)
            smtp_starttls_port = authenticated_smtp("starttls", tls_context=tls.trusted, require_starttls=True)
            smtp_untrusted_port = authenticated_smtp("untrusted", ssl_context=tls.untrusted, auth_require_tls=False)
            smtp_plain_port = authenticated_smtp("plain", auth_require_tls=False)
            smtp_relay_port = self._serve_smtp(RelaySinkHandler(mail_store), auth_exclude_mechanism=["PLAIN", "LOGIN"])
        except BaseException:
            self.stop()
            raise

        https = f"https://{HOST}:{https_port}"
        self.settings = {
            "host": HOST,
            "ca_path": str(self.state_dir / CA_FILE),
            "state_dir": str(self.state_dir),
            "mail_dir": str(mail_dir),
            "token_log": str(token_log),
            "account": self.account,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "refresh_token": refresh_token,
            "revoked_refresh_token": revoked_refresh_token,
            "app_password": app_password,
            "token_uri": f"{https}{TOKEN_PATH}",
            "token_uri_untrusted": f"https://{HOST}:{https_untrusted_port}{TOKEN_PATH}",
            "token_uri_http": f"http://{HOST}:{http_port}{TOKEN_PATH}",
            "tokeninfo_url": f"http://{HOST}:{http_port}{TOKENINFO_PATH}?access_token=",
            "token_uri_not_json": f"{https}{TOKEN_NOT_JSON_PATH}",
            "token_uri_no_access_token": f"{https}{TOKEN_NO_ACCESS_TOKEN_PATH}",
            "token_uri_unreachable": f"https://{HOST}:{unreachable_port}{TOKEN_PATH}",
            "smtp_ssl_port": smtp_ssl_port,
            "smtp_starttls_port": smtp_starttls_port,
            "smtp_untrusted_port": smtp_untrusted_port,
            "smtp_plain_port": smtp_plain_port,
            "smtp_relay_port": smtp_relay_port,
        }
        write_json_atomically(self.settings_path, self.settings)
        return self.settings

    def stop(self) -> None:
        """Stop every server that runs and remove ``sandbox.json``; safe to call more than once."""
        self.settings_path.unlink(missing_ok=True)
        while self._controllers:
            self._controllers.pop().stop()
        while self._http_servers:
            server, thread = self._http_servers.pop()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _create_tls_material(self) -> TlsMaterial:
        """Two unrelated CAs; only the trusted one's certificate is handed to clients (``ca.pem``)."""
        identities = (HOST, "localhost", "::1")
        trusted_ca = trustme.CA(organization_name="xoauth2 sandbox trusted CA")
        untrusted_ca = trustme.CA(organization_name="xoauth2 sandbox untrusted CA")
        trusted_cert = trusted_ca.issue_cert(*identities)
        untrusted_cert = untrusted_ca.issue_cert(*identities)
        trusted_ca.cert_pem.write_to_path(str(self.state_dir / CA_FILE))
        untrusted_ca.cert_pem.write_to_path(str(self.state_dir / UNTRUSTED_CA_FILE))
        chain_path = self.state_dir / SERVER_CERT_FILE
        chain_path.write_bytes(b"".join(blob.bytes() for blob in trusted_cert.cert_chain_pems))
        key_path = self.state_dir / SERVER_KEY_FILE
        key_path.touch(mode=0o600)
        trusted_cert.private_key_pem.write_to_path(str(key_path))
        contexts = []
        for cert in (trusted_cert, untrusted_cert):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            contexts.append(context)
        return TlsMaterial(trusted=contexts[0], untrusted=contexts[1])

    def _serve_http(self, app: TokenEndpointApp, ssl_context: ssl.SSLContext | None) -> int:
        server = TokenEndpointServer((HOST, 0), app, ssl_context)
        thread = threading.Thread(target=server.serve_forever, name=f"token-endpoint-{server.server_port}", daemon=True)
        thread.start()
        self._http_servers.append((server, thread))
        return int(server.server_port)

    def _serve_smtp(self, handler: t.Any, attempts: int = 3, **smtp_options: t.Any) -> int:
        """Start an SMTP server for ``handler`` on a free port; returns the port."""
        attempt = 0
        while True:
            attempt += 1
            port = free_port()
            controller = SandboxController(
                handler,
                hostname=HOST,
                port=port,
                server_hostname=SMTP_HOSTNAME,
                ident="ESMTP xoauth2-sandbox",
                data_size_limit=GMAIL_SIZE_LIMIT,
                **smtp_options,
            )
            try:
                controller.start()
            except OSError:
                # Another process took the port between probing and binding it.
                if attempt == attempts:
                    raise
                continue
            self._controllers.append(controller)
            return port


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def wait_for_file(path: Path, timeout: float) -> bool:
    """True once ``path`` exists, False when ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def run(state_dir: Path) -> int:
    """Run the sandbox in the foreground until SIGTERM or SIGINT."""
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    sandbox = Sandbox(state_dir)
    pid_path = sandbox.state_dir / PID_FILE
    sandbox.state_dir.mkdir(parents=True, exist_ok=True)
    pid_path.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        settings = sandbox.start()
        LOG.info("sandbox ready: %s", sandbox.settings_path)
        print(json.dumps({k: v for k, v in settings.items() if k.endswith(("_port", "_uri", "_url"))}), flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        sandbox.stop()
        pid_path.unlink(missing_ok=True)
    return 0


def stop_running(state_dir: Path, timeout: float) -> int:
    """Send SIGTERM to the sandbox recorded in ``state_dir`` and wait until it has cleaned up."""
    pid_path = Path(state_dir) / PID_FILE
    try:
        pid = int(pid_path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        print(f"no sandbox pid file at {pid_path}", file=sys.stderr)
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_path.unlink(missing_ok=True)
        return 0
    # run() removes the pid file as its last step.
    deadline = time.monotonic() + timeout
    while pid_path.exists():
        if time.monotonic() >= deadline:
            print(f"sandbox (pid {pid}) did not stop within {timeout}s", file=sys.stderr)
            return 1
        time.sleep(0.1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Gmail-like XOAUTH2 sandbox (token endpoint and SMTP servers).")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run in the foreground until SIGTERM/SIGINT")
    wait_parser = commands.add_parser("wait", help="wait until a running sandbox has written sandbox.json")
    stop_parser = commands.add_parser("stop", help="stop the sandbox recorded in the state directory")
    for sub in (run_parser, wait_parser, stop_parser):
        sub.add_argument("--state-dir", type=Path, required=True)
    for sub in (wait_parser, stop_parser):
        sub.add_argument("--timeout", type=float, default=30.0)
    run_parser.add_argument("-v", "--verbose", action="store_true", help="log every SMTP and HTTP exchange")
    args = parser.parse_args(argv)

    if args.command == "run":
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        if not args.verbose:
            # aiosmtpd logs every connection and a deprecation notice per AUTH at INFO/WARNING.
            logging.getLogger("mail.log").setLevel(logging.ERROR)
        return run(args.state_dir)
    if args.command == "wait":
        if wait_for_file(args.state_dir / SETTINGS_FILE, args.timeout):
            return 0
        print(f"{args.state_dir / SETTINGS_FILE} did not appear within {args.timeout}s", file=sys.stderr)
        return 1
    return stop_running(args.state_dir, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
