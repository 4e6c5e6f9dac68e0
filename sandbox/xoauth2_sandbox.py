# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A local, Gmail-like XOAUTH2 sandbox: an OAuth 2.0 token endpoint and SMTP servers on loopback.

Everything listens on 127.0.0.1 on free ports and is described by ``<state_dir>/sandbox.json``,
which is written (atomically) only once every server listens. Only the standard library, aiosmtpd,
trustme and cryptography (trustme's own dependency, for the app-only grants' keys) are used.

* Token endpoint (Google-like): ``POST /token`` with ``grant_type=refresh_token`` or
  ``authorization_code`` (PKCE S256 or plain verified), ``GET /tokeninfo``, and a few deliberately
  broken paths for error tests. Served over HTTPS with a certificate of the trusted CA (``ca.pem``),
  over HTTPS with a certificate of an unrelated CA, and over plain HTTP.
* Authorization endpoint (Google-like): ``GET /authorize`` consents at once and redirects to the
  loopback ``redirect_uri`` with ``code`` and ``state``, or with ``error=access_denied`` when
  ``login_hint`` starts with ``deny`` or ``deny=1`` is given. A refresh token is issued for
  ``access_type=offline`` only, and after the first consent of an account only with ``prompt=consent``.
* Microsoft-like endpoints under ``/ms/{tenant}/oauth2/v2.0/`` (``authorize`` and ``token``): a refresh
  needs ``scope``, and every refresh returns a new refresh token. As with Azure AD, the old refresh
  token stays valid. A refresh token is issued when the scope includes ``offline_access``.
* App-only grants: Google's JWT bearer grant (RFC 7523) for service accounts, with domain-wide
  delegation when the assertion's ``sub`` names a Workspace user, on ``/token``; and Entra ID's client
  credentials grant (a client secret or a certificate-signed client assertion) on the Microsoft token
  path, whose app token may send as one mailbox only.
* Device authorization grant (RFC 8628): ``POST /device/code`` (and Microsoft's ``.../devicecode``) issues a
  device code and a user code; the token paths answer ``authorization_pending`` until the user code is approved
  (``POST /device/approve``) or denied (``POST /device/deny``), ``slow_down`` to polls sooner than the interval,
  and ``expired_token`` after expiry. Switches in the request's query (``approve_after=N``, ``slow_down=N``, ...)
  decide for the user, so that a client that blocks while it polls can be tested alone.
* Revocation (Google-like): ``POST /revoke`` with ``token=`` forgets an access or refresh token.
* SMTP (smtp.gmail.com-like): implicit TLS, STARTTLS, implicit TLS with the untrusted certificate,
  and plain SMTP, all requiring ``AUTH XOAUTH2 | OAUTHBEARER | PLAIN | LOGIN`` before MAIL and offering
  8BITMIME and SMTPUTF8; plus a plain relay sink without AUTH (for a third-party server such as
  Dovecot to relay to), and listeners that misbehave: a ``421`` greeting, no STARTTLS, ``SIZE 2048``,
  and a 7-bit server.
* Faults injected by addresses and URLs alone (no control channel): ``fault-<spec>@...`` envelope
  addresses and ``/fault/<spec>/token``, counted per exact trigger so that ``x<N>`` faults fire the
  first N times only (see :func:`parse_fault_spec` and ``sandbox/README.md``).
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
import hashlib
import hmac
import html
import http.server
import itertools
import json
import logging
import os
import re
import secrets
import signal
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import typing as t
import urllib.parse
import uuid
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

LOG = logging.getLogger("xoauth2_sandbox")

HOST = "127.0.0.1"
ACCOUNT = "sandbox.user@example.com"
MICROSOFT_ACCOUNT = "m365.user@contoso.example"
GMAIL_SCOPE = "https://mail.google.com/"
MICROSOFT_SMTP_SCOPE = "https://outlook.office.com/SMTP.Send"
#: Scopes Azure AD grants on top of the resource's (they say what the token may do, not where).
MICROSOFT_OIDC_SCOPES = ("offline_access", "openid", "profile", "email")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_CREDENTIALS_GRANT = "client_credentials"
JWT_CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The audience google-auth puts in every service-account assertion, wherever it posts it.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
SERVICE_ACCOUNT_PROJECT = "sandbox-project"
GOOGLE_UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of "
    "the scopes requested."
)
GOOGLE_BAD_JWT_TIMES = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and "
    "exp values in the JWT claim."
)
#: The only scopes Exchange Online takes for app-only SMTP (client credentials need a ``/.default`` scope).
MICROSOFT_APP_SCOPES = ("https://outlook.office365.com/.default", "https://outlook.office.com/.default")
#: Tenant aliases that name no directory: an app-only token needs the app's own tenant.
MICROSOFT_ALIAS_TENANTS = ("common", "organizations", "consumers")
JWT_MAX_LIFETIME_SECONDS = 3600
#: How far a client's clock may be off for the ``iat``/``nbf``/``exp`` checks.
JWT_CLOCK_SKEW_SECONDS = 300
AUTHORIZATION_CODE_LIFETIME_SECONDS = 600
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
#: One line per ended SMTP connection of a mail-storing port: its port, peer, and whether the client said QUIT.
SESSION_LOG_FILE = "smtp_sessions.jsonl"

TOKEN_PATH = "/token"
TOKEN_NOT_JSON_PATH = "/token-not-json"
TOKEN_NO_ACCESS_TOKEN_PATH = "/token-without-access-token"
TOKENINFO_PATH = "/tokeninfo"
REVOKE_PATH = "/revoke"
#: ``/fault/<spec>/token``: the token endpoint with a fault injected (see :func:`parse_fault_spec`).
FAULT_TOKEN_PATH = "/fault/{fault}/token"
AUTHORIZE_PATH = "/authorize"
#: Azure AD's v2 endpoints, under /ms/ so they share the listeners with the Google-like ones.
MICROSOFT_PREFIX = "/ms/"
MICROSOFT_TOKEN_PATH = "/ms/{tenant}/oauth2/v2.0/token"
MICROSOFT_AUTHORIZE_PATH = "/ms/{tenant}/oauth2/v2.0/authorize"
MICROSOFT_DEVICE_CODE_PATH = "/ms/{tenant}/oauth2/v2.0/devicecode"
#: RFC 8628: the device authorization endpoint, the verification page, and the user's answers to it.
DEVICE_CODE_PATH = "/device/code"
DEVICE_VERIFICATION_PATH = "/device"
DEVICE_APPROVE_PATH = "/device/approve"
DEVICE_DENY_PATH = "/device/deny"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Every device code starts with this, so that tests can look for one in output.
DEVICE_CODE_PREFIX = "device-sandbox-"
#: RFC 8628 section 6.1: user codes of consonants only, so that no word is spelt.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
DEVICE_CODE_LIFETIME_SECONDS = 600
#: Short, so that tests poll quickly (providers say 5).
DEVICE_POLL_INTERVAL_SECONDS = 1
DEVICE_SLOW_DOWN_STEP_SECONDS = 5
#: A poll this much sooner than the interval is still on time: the requests' latency varies.
DEVICE_POLL_TOLERANCE_SECONDS = 0.25
#: The query switches of the device authorization request (see :class:`DeviceSwitches`).
DEVICE_SWITCHES = ("approve_after", "deny_after", "slow_down", "expires_in", "interval", "tag")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
DENY_LOGIN_HINT_PREFIX = "deny"

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
#: Exchange Online's answer to an app token used for a mailbox the app may not send as (no challenge first).
APP_TOKEN_REFUSED_REPLY = "535 5.7.3 Authentication unsuccessful [sandbox]"
#: Exchange Online's answer to a password login once Basic authentication for SMTP AUTH is off for the tenant:
#: https://techcommunity.microsoft.com/t5/exchange-team-blog/exchange-online-to-retire-basic-auth-for-client-submission-smtp/ba-p/4114750
BASIC_AUTH_DISABLED_REPLY = "550 5.7.30 Basic authentication is not supported for Client Submission"
#: High Volume Email (https://learn.microsoft.com/en-us/exchange/mail-flow-best-practices/high-volume-mails-m365)
#: refuses an access token with less than 10 minutes left; the text after the code is the sandbox's.
HVE_TOKEN_TOO_SHORT_REPLY = "501 5.5.127 The access token expires in less than 10 minutes (sandbox)"
HVE_MIN_TOKEN_SECONDS = 600
UNKNOWN_RECIPIENT_REPLY = "550 5.1.1 The email account that you tried to reach does not exist."
REFUSED_SENDER_REPLY = "553 5.7.1 Sender address rejected"

REJECT_RECIPIENT_PREFIX = "reject"
REFUSE_SENDER_PREFIX = "refused"
DROP_AFTER_DATA_PREFIX = "drop-after-data"

#: Envelope addresses whose local part starts with this inject an SMTP fault (see :func:`parse_fault_spec`).
FAULT_ADDRESS_PREFIX = "fault-"
CLOSING_REPLY = "421 4.7.0 Try again later, closing connection."
TEMPORARY_REJECT_REPLY = "451 4.3.0 Mail server temporarily rejected message."
#: Too many recipients in this transaction (RFC 5321 4.5.3.1.10): 452 is right, 552 the RFC 821 code still in use.
TOO_MANY_RECIPIENTS_REPLY = "452 4.5.3 Too many recipients"
TOO_MANY_RECIPIENTS_552_REPLY = "552 5.5.3 Too many recipients"
#: Gmail's answer at RCPT for a mailbox over its storage quota, a temporary failure for that recipient alone (RFC 3463
#: X.2.2 "mailbox full"; RFC 5321 4.2.3: 452 "insufficient system storage"), given until the mailbox has room:
#: https://support.google.com/a/answer/3726730 (Gmail SMTP errors and codes, 452 4.2.2).
MAILBOX_FULL_REPLY = ("452 4.2.2 The recipient's inbox is out of storage space. Please direct the recipient to "
                      "https://support.google.com/mail/?p=OverQuotaTemp (sandbox)")
MESSAGE_REJECTED_REPLY = "550 5.7.1 Message rejected (sandbox)."
NOT_A_FAULT_REPLY = "553 5.1.3 Not a sandbox fault here; see the fault grammar in sandbox/README.md"
GREETING_REFUSED_REPLY = "421 4.3.2 Service not available, closing transmission channel"
EIGHT_BIT_BODY_REFUSED_REPLY = "555 5.5.4 BODY=8BITMIME not supported (sandbox)"
EIGHT_BIT_DATA_REFUSED_REPLY = "554 5.6.0 8-bit data not allowed (sandbox)"
#: The SIZE of the small-size listener.
SMALL_SIZE_LIMIT = 2048


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
# Fault injection
# --------------------------------------------------------------------------------------------------

#: Fault kinds by where they fire. Triggered by addresses and URLs alone, so tests need no control channel.
MAIL_FAULTS = frozenset({"mail421"})
RCPT_FAULTS = frozenset({"rcpt451", "rcpt452", "rcpt552", "rcpt421", "rcptslow", "rcptfull"})
DATA_FAULTS = frozenset({"data451", "data550", "dataslow"})
TOKEN_FAULTS = frozenset({"status500", "status503", "hang", "notjson", "noaccesstoken", "redirect307", "rtexpires",
                          "lifetime"})
#: Kinds of the AUTH identity (the user name of PLAIN/LOGIN, XOAUTH2's user=, OAUTHBEARER's a=), as Exchange Online
#: answers: ``basicauth`` a password login, ``hve`` a bearer token close to its expiry.
AUTH_FAULTS = frozenset({"basicauth", "hve"})
#: Kinds followed by a number of seconds (``rcptslow5``).
TIMED_FAULTS = frozenset({"rcptslow", "dataslow", "hang", "rtexpires", "lifetime"})
SMTP_FAULT_REPLIES = {
    "mail421": CLOSING_REPLY,
    "rcpt451": TEMPORARY_REJECT_REPLY,
    "rcpt452": TOO_MANY_RECIPIENTS_REPLY,
    "rcpt552": TOO_MANY_RECIPIENTS_552_REPLY,
    "rcptfull": MAILBOX_FULL_REPLY,
    "rcpt421": CLOSING_REPLY,
    "data451": TEMPORARY_REJECT_REPLY,
    "data550": MESSAGE_REJECTED_REPLY,
}
# Longest first: the alternation must not stop at a shorter kind that prefixes a longer one.
_FAULT_KINDS = sorted(MAIL_FAULTS | RCPT_FAULTS | DATA_FAULTS | TOKEN_FAULTS | AUTH_FAULTS, key=len, reverse=True)
_FAULT_SPEC_PATTERN = re.compile(
    rf"(?P<kind>{'|'.join(_FAULT_KINDS)})(?P<seconds>\d+(?:\.\d+)?)?(?:x(?P<times>\d+))?(?:-(?P<tag>.*))?",
    re.IGNORECASE | re.DOTALL,
)


class FaultSpecError(ValueError):
    """A fault spec that does not follow the grammar, or names a fault that cannot fire where it was given."""


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """One parsed fault: what happens, for how long, and how many times for its ``trigger``."""

    #: The exact string the fault is counted by (an address, lower-cased, or a token endpoint spec).
    trigger: str
    kind: str
    #: The wait of a timed kind (``rcptslow``, ``dataslow``, ``hang``), the stated lifetime of ``rtexpires``; 0 for the
    #: others.
    seconds: float = 0.0
    #: Fire the first ``times`` occurrences of ``trigger`` only; None: every time.
    times: int | None = None


def parse_fault_spec(spec: str, *, trigger: str, allowed: frozenset[str]) -> FaultSpec:
    """Parse ``<what>[<S>][x<N>][-<tag>]`` (case-insensitive) into a fault of one of the ``allowed`` kinds.

    Raises :class:`FaultSpecError` when ``spec`` does not follow the grammar, a timed kind lacks its
    seconds (or another kind has some), ``x0`` is given, or the kind is not ``allowed``.
    """
    match = _FAULT_SPEC_PATTERN.fullmatch(spec)
    if match is None:
        raise FaultSpecError(f"not a fault spec: {spec!r}")
    kind = match["kind"].lower()
    if kind not in allowed:
        raise FaultSpecError(f"fault {kind!r} cannot fire here (allowed: {', '.join(sorted(allowed))})")
    if (match["seconds"] is None) == (kind in TIMED_FAULTS):
        raise FaultSpecError(f"fault {kind!r} {'needs' if kind in TIMED_FAULTS else 'takes no'} seconds")
    times = int(match["times"]) if match["times"] is not None else None
    if times == 0:
        raise FaultSpecError("x0 would never fire; leave x<N> out to fire every time")
    return FaultSpec(trigger=trigger, kind=kind, seconds=float(match["seconds"] or 0), times=times)


def address_fault(address: str, *, allowed: frozenset[str]) -> FaultSpec | None:
    """The fault of an envelope address ``fault-<spec>@...`` counted by the whole address; None for other addresses.

    Raises :class:`FaultSpecError` for a ``fault-`` address whose spec is wrong, so typos fail loudly.
    """
    local = local_part(address)
    if not local.startswith(FAULT_ADDRESS_PREFIX):
        return None
    return parse_fault_spec(local[len(FAULT_ADDRESS_PREFIX):], trigger=address.lower(), allowed=allowed)


class FaultRegistry:
    """How often each fault trigger was seen, so that ``x<N>`` faults fire the first N times only.

    Thread-safe: the HTTP listeners' threads and the SMTP servers' event loops share one instance.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._released = threading.Event()

    def fires(self, fault: FaultSpec) -> bool:
        """Count one occurrence of ``fault.trigger``; True when the fault applies to this occurrence."""
        with self._lock:
            seen = self._seen.get(fault.trigger, 0) + 1
            self._seen[fault.trigger] = seen
        return fault.times is None or seen <= fault.times

    def seen(self, trigger: str) -> int:
        """How many occurrences of ``trigger`` were counted so far."""
        with self._lock:
            return self._seen.get(trigger, 0)

    def wait(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``, or less once :meth:`release` was called."""
        self._released.wait(seconds)

    def release(self) -> None:
        """End every current and future :meth:`wait` at once (the sandbox is stopping)."""
        self._released.set()


# --------------------------------------------------------------------------------------------------
# App-only identities: Google service accounts, Entra ID apps, and the RS256 JWTs they sign
# --------------------------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ValueError when ``text`` is not base64url."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass(frozen=True)
class SignedJwt:
    """A compact JWS (RFC 7515) split into its parts; parsing checks the shape only, not the signature."""

    header: dict[str, t.Any]
    claims: dict[str, t.Any]
    signing_input: bytes = dataclasses.field(repr=False)
    signature: bytes = dataclasses.field(repr=False)

    @classmethod
    def parse(cls, token: str) -> SignedJwt:
        """Split ``header.claims.signature``; raises ValueError when it is no JWT with JSON objects in it."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        header, claims = (json.loads(b64url_decode(part)) for part in parts[:2])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("JWT header and claims must be JSON objects")  # noqa: TRY004 - parse() promises ValueError
        return cls(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2]))

    def signed_by(self, public_key: rsa.RSAPublicKey) -> bool:
        """Whether this is an RS256 JWT whose signature ``public_key`` verifies."""
        if self.header.get("alg") != "RS256":
            return False
        try:
            public_key.verify(self.signature, self.signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def claim_text(self, name: str) -> str | None:
        """A string claim, or None when it is missing or not a string."""
        value = self.claims.get(name)
        return value if isinstance(value, str) else None


def unverified_jwt_claims(token: str | None) -> dict[str, t.Any]:
    """The claims of a JWT without checking its signature (for the request log only); {} if it is none."""
    try:
        return SignedJwt.parse(token or "").claims
    except ValueError:
        return {}


def jwt_window_is_sane(start: t.Any, end: t.Any, *, now: float, max_lifetime: float | None = None) -> bool:
    """Whether numeric ``start`` (``iat`` or ``nbf``) and ``exp`` make a JWT valid now, give or take the clock skew,
    and (with ``max_lifetime``) for at most that many seconds."""
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (start, end)):
        return False
    if start > now + JWT_CLOCK_SKEW_SECONDS or end < now - JWT_CLOCK_SKEW_SECONDS or end <= start:
        return False
    return max_lifetime is None or end - start <= max_lifetime


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM, the format of Google's key files and of most certificate tooling."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


@dataclasses.dataclass(frozen=True)
class ServiceAccount:
    """A Google service account: its public key, and the Workspace domain that granted it domain-wide delegation
    of ``delegated_scopes`` (None: no delegation, so it can get tokens for itself only)."""

    client_email: str
    client_id: str
    private_key_id: str
    public_key: rsa.RSAPublicKey = dataclasses.field(repr=False)
    delegated_domain: str | None = None
    delegated_scopes: frozenset[str] = frozenset()

    @classmethod
    def generate(cls, name: str, *, delegated_domain: str | None = None,
                 delegated_scopes: frozenset[str] = frozenset()) -> tuple[ServiceAccount, rsa.RSAPrivateKey]:
        """A new account ``<name>@<project>.iam.gserviceaccount.com`` with a fresh RSA 2048 key."""
        key = new_rsa_key()
        account = cls(
            client_email=f"{name}@{SERVICE_ACCOUNT_PROJECT}.iam.gserviceaccount.com",
            client_id=f"1{secrets.randbelow(10**20):020d}",
            private_key_id=secrets.token_hex(20),
            public_key=key.public_key(),
            delegated_domain=delegated_domain,
            delegated_scopes=delegated_scopes,
        )
        return account, key

    def key_file(self, key: rsa.RSAPrivateKey, *, token_uri: str, auth_uri: str) -> dict[str, str]:
        """The account's key in Google's JSON key file format (what ``from_service_account_info`` reads)."""
        return {
            "type": "service_account",
            "project_id": SERVICE_ACCOUNT_PROJECT,
            "private_key_id": self.private_key_id,
            "private_key": private_key_pem(key),
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": auth_uri,
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                    + urllib.parse.quote(self.client_email),
            "universe_domain": "googleapis.com",
        }


def self_signed_certificate(key: rsa.RSAPrivateKey, *, common_name: str) -> x509.Certificate:
    """A one-year self-signed certificate of ``key``, as ``New-SelfSignedCertificate`` makes for an app registration."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = utc_now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


@dataclasses.dataclass(frozen=True)
class MicrosoftApp:
    """An Entra ID app registration with a client secret and a certificate; Exchange Online lets it send
    (SMTP.SendAsApp) as ``mailbox`` only."""

    client_id: str
    tenant_id: str
    #: The tenant's verified domain, accepted in the token path like its id.
    tenant_domain: str
    mailbox: str
    client_secret: str = dataclasses.field(repr=False)
    #: base64url SHA-1 of the certificate's DER: the ``x5t`` of the client assertions it signs.
    certificate_x5t: str
    #: base64url SHA-256 of the DER: ``x5t#S256``, which newer MSAL versions send instead.
    certificate_x5t_s256: str
    public_key: rsa.RSAPublicKey = dataclasses.field(repr=False)

    @classmethod
    def generate(cls, *, mailbox: str) -> tuple[MicrosoftApp, x509.Certificate, rsa.RSAPrivateKey]:
        """A new app in a new tenant (the mailbox's domain), with a fresh secret, key and self-signed certificate."""
        key = new_rsa_key()
        certificate = self_signed_certificate(key, common_name="smail-xoauth2 sandbox app")
        der = certificate.public_bytes(serialization.Encoding.DER)
        app = cls(
            client_id=str(uuid.uuid4()),
            tenant_id=str(uuid.uuid4()),
            tenant_domain=mailbox.rpartition("@")[2].lower(),
            mailbox=mailbox,
            client_secret=f"sandbox~{secrets.token_urlsafe(30)}",
            certificate_x5t=b64url_encode(hashlib.sha1(der).digest()),  # x5t is SHA-1 by definition (RFC 7515 4.1.7)
            certificate_x5t_s256=b64url_encode(hashlib.sha256(der).digest()),
            public_key=key.public_key(),
        )
        return app, certificate, key

    def in_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id, self.tenant_domain)

    def knows_certificate_of(self, header: t.Mapping[str, t.Any]) -> bool:
        """Whether the JWT header's thumbprint (``x5t`` or ``x5t#S256``) names the app's certificate."""
        return header.get("x5t") == self.certificate_x5t or header.get("x5t#S256") == self.certificate_x5t_s256


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
                expires_at=time.time() + switches.expires_in, interval=switches.interval, switches=switches,
                slow_downs_left=switches.slow_down,
            )
            self._device_grants[grant.device_code] = grant
            self._user_codes[user_code] = grant.device_code
        return grant

    def decide_device_code(self, user_code: str, *, approve: bool, account: str | None = None) -> bool:
        """The user's answer at the verification page; False for a code that is unknown, expired or decided."""
        with self._lock:
            grant = self._device_grants.get(self._user_codes.get(normalized_user_code(user_code), ""))
            if grant is None or grant.status != "pending" or time.time() >= grant.expires_at:
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
        now = time.time()
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


# --------------------------------------------------------------------------------------------------
# HTTP token endpoint
# --------------------------------------------------------------------------------------------------


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


class GreetingRefusalServer(socketserver.ThreadingTCPServer):
    """Implicit TLS, then the greeting ``421`` and the connection closes: a server that is not available."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], ssl_context: ssl.SSLContext) -> None:
        self.ssl_context = ssl_context
        super().__init__(address, socketserver.BaseRequestHandler)

    def finish_request(self, request: t.Any, client_address: t.Any) -> None:
        request.settimeout(10)
        with self.ssl_context.wrap_socket(request, server_side=True) as tls_socket:
            tls_socket.sendall(GREETING_REFUSED_REPLY.encode("ascii") + b"\r\n")

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        LOG.debug("greeting-421 connection from %s ended: %s", client_address, sys.exc_info()[1])


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
    """aiosmtpd authenticator for PLAIN and LOGIN: the account with its app password.

    The user name ``fault-basicauth[xN]-<tag>@...`` is answered as Exchange Online answers any password login once
    Basic authentication is off for the tenant.
    """

    def __init__(self, account: str, app_password: str, *, faults: FaultRegistry | None = None) -> None:
        self.account = account
        self.app_password = app_password
        self.faults = faults if faults is not None else FaultRegistry()

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: t.Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            try:
                fault = address_fault(login, allowed=frozenset({"basicauth"}))
            except FaultSpecError:
                return AuthResult(success=False, handled=False, message=NOT_A_FAULT_REPLY)
            if fault is not None and self.faults.fires(fault):
                return AuthResult(success=False, handled=False, message=BASIC_AUTH_DISABLED_REPLY)
            password_ok = hmac.compare_digest(auth_data.password, self.app_password.encode())
            if same_account(login, self.account) and password_ok:
                return AuthResult(success=True, auth_data=AuthenticatedAccount(self.account, mechanism), message=AUTH_ACCEPTED_REPLY)
        return AuthResult(success=False, handled=False, message=BAD_CREDENTIALS_REPLY)


class GmailLikeHandler:
    """aiosmtpd handler of the authenticated ports: Gmail's SASL behaviour, error-test addresses, faults, storage.

    With ``eight_bit=False`` the port is a 7-bit server: no 8BITMIME or SMTPUTF8 in EHLO, ``BODY=8BITMIME``
    refused at MAIL and messages with bytes above 127 refused at DATA.
    """

    def __init__(self, port_name: str, authority: TokenAuthority, mail_store: MailStore, *,
                 faults: FaultRegistry, eight_bit: bool = True) -> None:
        self.port_name = port_name
        self.authority = authority
        self.mail_store = mail_store
        self.faults = faults
        self.eight_bit = eight_bit

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]) -> list[str]:
        # With an EHLO hook aiosmtpd leaves recording the client name to the hook.
        session.host_name = hostname
        lines = [f"250-AUTH {' '.join(ADVERTISED_MECHANISMS)}" if line.startswith("250-AUTH ") else line for line in responses]
        if not self.eight_bit:
            lines = [line for line in lines if line[4:] not in ("8BITMIME", "SMTPUTF8")]
        return lines

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> t.Any:
        if local_part(address).startswith(REFUSE_SENDER_PREFIX):
            return REFUSED_SENDER_REPLY
        # aiosmtpd itself refuses SMTPUTF8 (501) when it is disabled, but takes BODY=8BITMIME.
        if not self.eight_bit and "BODY=8BITMIME" in mail_options:
            return EIGHT_BIT_BODY_REFUSED_REPLY
        return await self._envelope_fault_reply(address, MAIL_FAULTS)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> t.Any:
        if local_part(address).startswith(REJECT_RECIPIENT_PREFIX):
            return UNKNOWN_RECIPIENT_REPLY
        return await self._envelope_fault_reply(address, RCPT_FAULTS | DATA_FAULTS)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.eight_bit and not (envelope.original_content or b"").isascii():
            return EIGHT_BIT_DATA_REFUSED_REPLY
        fault = self._data_fault(envelope.rcpt_tos)
        if fault is not None and fault.kind in SMTP_FAULT_REPLIES:
            return SMTP_FAULT_REPLIES[fault.kind]
        stored = self.mail_store.store(envelope, session, self.port_name)
        if any(local_part(rcpt).startswith(DROP_AFTER_DATA_PREFIX) for rcpt in envelope.rcpt_tos):
            # "Delivery unknown": the message is kept but the final dot is never answered.
            LOG.info("dropping the connection after DATA (%s)", stored.name)
            assert server.transport is not None
            server.transport.abort()
            # abort() makes aiosmtpd's connection_lost() cancel this session; wait for that.
            await asyncio.sleep(60)
        if fault is not None:  # dataslow: stored, but the client may give up before it hears so
            await asyncio.sleep(fault.seconds)
        return f"250 2.0.0 OK {stored.stem} - sandbox"

    async def _envelope_fault_reply(self, address: str, allowed: frozenset[str]) -> t.Any:
        """The reply a ``fault-`` address gets at MAIL or RCPT (after a wait for ``rcptslow``); MISSING: go on normally.

        DATA faults are only accepted here; they are counted and fire at the final dot.
        """
        try:
            fault = address_fault(address, allowed=allowed)
        except FaultSpecError as error:
            LOG.info("refusing a malformed fault address: %s", error)
            return NOT_A_FAULT_REPLY
        if fault is None or fault.kind in DATA_FAULTS or not self.faults.fires(fault):
            return MISSING
        if fault.kind in TIMED_FAULTS:
            await asyncio.sleep(fault.seconds)
            return MISSING
        return SMTP_FAULT_REPLIES[fault.kind]

    def _data_fault(self, rcpt_tos: list[str]) -> FaultSpec | None:
        """The DATA fault that fires for this message: each distinct trigger among the recipients counts once."""
        candidates: dict[str, FaultSpec] = {}
        for rcpt in rcpt_tos:
            try:
                fault = address_fault(rcpt, allowed=RCPT_FAULTS | DATA_FAULTS)
            except FaultSpecError:
                continue  # already refused at RCPT, so not among the recipients in practice
            if fault is not None and fault.kind in DATA_FAULTS:
                candidates.setdefault(fault.trigger, fault)
        firing = [fault for fault in candidates.values() if self.faults.fires(fault)]
        return firing[0] if firing else None

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        raw = await read_initial_response(server, args)
        if raw is None:
            return AuthResult(success=False, handled=True)
        parsed = parse_xoauth2(raw)
        if parsed is None:
            await server.push(MALFORMED_RESPONSE_REPLY)
            return AuthResult(success=False, handled=True)
        user, token = parsed
        return await self._authenticate_bearer(server, user, token, "XOAUTH2",
                                               {"status": "400", "schemes": "Bearer", "scope": self.authority.scope})

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        raw = await read_initial_response(server, args)
        if raw is None:
            return AuthResult(success=False, handled=True)
        parsed = parse_oauthbearer(raw)
        if parsed is None:
            await server.push(MALFORMED_RESPONSE_REPLY)
            return AuthResult(success=False, handled=True)
        authzid, token = parsed
        # Like XOAUTH2's user, the authzid (a=) must name the token's account.
        return await self._authenticate_bearer(server, authzid, token, "OAUTHBEARER",
                                               {"status": "invalid_token", "schemes": "Bearer", "scope": self.authority.scope})

    async def _authenticate_bearer(self, server: SMTP, user: str | None, token: str, mechanism: str,
                                   challenge: dict[str, str]) -> AuthResult:
        """Accept a live token for its own account; refuse an app token for another mailbox as Exchange Online does,
        and everything else (a service account's own token too: it has no mailbox) as Gmail does.

        The identity ``fault-hve[xN]-<tag>@...`` stands for the token's own account on a High Volume Email server: a
        token with less than 10 minutes left gets ``501 5.5.127`` (counted only then).
        """
        record = self.authority.lookup_access_token(token)
        try:
            fault = address_fault(user or "", allowed=frozenset({"hve"}))
        except FaultSpecError:
            await server.push(NOT_A_FAULT_REPLY)
            return AuthResult(success=False, handled=True)
        if fault is not None and record is not None:
            if record.seconds_left() < HVE_MIN_TOKEN_SECONDS and self.faults.fires(fault):
                await server.push(HVE_TOKEN_TOO_SHORT_REPLY)
                return AuthResult(success=False, handled=True)
            user = record.account
        names_account = record is not None and user is not None and same_account(user, record.account)
        if record is not None and record.kind == APP_TOKEN and not names_account:
            await server.push(APP_TOKEN_REFUSED_REPLY)
            return AuthResult(success=False, handled=True)
        if record is not None and names_account and record.kind != SERVICE_ACCOUNT_TOKEN:
            return AuthResult(success=True, auth_data=AuthenticatedAccount(record.account, mechanism), message=AUTH_ACCEPTED_REPLY)
        return await self._refuse_bearer(server, challenge)

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


SESSION_LOG_LOCK = threading.Lock()


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

    async def push(self, status: t.AnyStr) -> None:
        """Send a reply; after a ``421`` the server closes the channel, as RFC 5321 (3.8) says it does."""
        await super().push(status)
        if status[:3] in ("421", b"421") and self.transport is not None:
            self.transport.close()

    async def smtp_QUIT(self, arg: str) -> None:
        self.quit_received = not arg
        await super().smtp_QUIT(arg)

    def connection_lost(self, error: Exception | None) -> None:
        peer = self.session.peer if self.session is not None else None
        super().connection_lost(error)
        store = getattr(self.event_handler, "mail_store", None)
        if store is not None:  # a line per connection, so a test can count connections and see them end with QUIT
            line = {"ended_at": utc_now().isoformat(timespec="milliseconds"),
                    "port": getattr(self.event_handler, "port_name", "relay"),
                    "peer": list(peer) if isinstance(peer, tuple) else peer,
                    "quit": getattr(self, "quit_received", False)}
            with SESSION_LOG_LOCK, (store.mail_dir.parent / SESSION_LOG_FILE).open("a", encoding="utf-8") as log_file:
                log_file.write(json.dumps(line) + "\n")


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


@dataclasses.dataclass(frozen=True)
class AppOnlyGrants:
    """The identities of the app-only grants, with the private keys handed to clients in ``sandbox.json``."""

    workspace_user: str
    delegated: ServiceAccount
    delegated_key: rsa.RSAPrivateKey = dataclasses.field(repr=False)
    undelegated: ServiceAccount
    undelegated_key: rsa.RSAPrivateKey = dataclasses.field(repr=False)
    app: MicrosoftApp
    app_certificate: x509.Certificate
    app_key: rsa.RSAPrivateKey = dataclasses.field(repr=False)

    @classmethod
    def register(cls, authority: TokenAuthority, *, workspace_user: str, app_mailbox: str) -> AppOnlyGrants:
        """New service accounts (one with domain-wide delegation of the mail scope for ``workspace_user``'s domain)
        and an Entra ID app that may send as ``app_mailbox``, registered with ``authority``."""
        domain = workspace_user.rpartition("@")[2].lower()
        delegated, delegated_key = ServiceAccount.generate(
            "notifier", delegated_domain=domain, delegated_scopes=frozenset({GMAIL_SCOPE}))
        undelegated, undelegated_key = ServiceAccount.generate("reporter")
        app, app_certificate, app_key = MicrosoftApp.generate(mailbox=app_mailbox)
        for account in (delegated, undelegated):
            authority.register_service_account(account)
        authority.register_app(app)
        return cls(workspace_user, delegated, delegated_key, undelegated, undelegated_key, app, app_certificate, app_key)

    def settings(self, *, token_uri: str, auth_uri: str) -> dict[str, t.Any]:
        """The ``sandbox.json`` entries of the app-only grants."""
        return {
            "service_account_key": self.delegated.key_file(self.delegated_key, token_uri=token_uri, auth_uri=auth_uri),
            "service_account_key_undelegated": self.undelegated.key_file(
                self.undelegated_key, token_uri=token_uri, auth_uri=auth_uri),
            "workspace_user": self.workspace_user,
            "workspace_domain": self.delegated.delegated_domain,
            "microsoft_app_client_id": self.app.client_id,
            "microsoft_app_client_secret": self.app.client_secret,
            "microsoft_app_certificate": self.app_certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "microsoft_app_certificate_key": private_key_pem(self.app_key),
            "microsoft_tenant_id": self.app.tenant_id,
            "microsoft_app_mailbox": self.app.mailbox,
        }


class Sandbox:
    """All sandbox servers; ``start()`` makes them listen and writes ``sandbox.json``, ``stop()`` ends them.

    ``settings`` (the content of ``sandbox.json``) is filled by ``start()``; ``authority`` lets tests
    issue, look up and revoke access tokens in-process, and ``faults`` counts the fault triggers seen.
    """

    def __init__(self, state_dir: Path | str, *, account: str = ACCOUNT) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.account = account
        self.settings: dict[str, t.Any] = {}
        self.authority = TokenAuthority()
        self.faults = FaultRegistry()
        self._threaded_servers: list[tuple[socketserver.BaseServer, threading.Thread]] = []
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
        if self._controllers or self._threaded_servers:
            raise RuntimeError("the sandbox is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # A stale file would tell waiting callers that servers listen before they do.
        self.settings_path.unlink(missing_ok=True)
        mail_dir = self.state_dir / MAIL_DIR
        mail_dir.mkdir(exist_ok=True)
        token_log = self.state_dir / TOKEN_LOG_FILE
        # Fresh counters (and hangs that hang again) for every run: stop() released the last registry.
        self.faults = FaultRegistry()
        try:
            tls = self._create_tls_material()
            client = self.authority.register_client()
            refresh_token = self.authority.grant_refresh_token(client.client_id, self.account)
            revoked_refresh_token = self.authority.grant_refresh_token(client.client_id, self.account, revoked=True)
            microsoft_client = self.authority.register_client(str(uuid.uuid4()), f"sandbox~{secrets.token_urlsafe(30)}")
            microsoft_refresh_token = self.authority.grant_refresh_token(
                microsoft_client.client_id, MICROSOFT_ACCOUNT, scope=f"{MICROSOFT_SMTP_SCOPE} offline_access")
            microsoft_public_client = self.authority.register_client(str(uuid.uuid4()), public=True)
            microsoft_public_refresh_token = self.authority.grant_refresh_token(
                microsoft_public_client.client_id, MICROSOFT_ACCOUNT, scope=f"{MICROSOFT_SMTP_SCOPE} offline_access")
            app_password = secrets.token_urlsafe(12)
            app_only = AppOnlyGrants.register(self.authority, workspace_user=self.account, app_mailbox=MICROSOFT_ACCOUNT)

            app = TokenEndpointApp(self.authority, token_log, account=self.account, faults=self.faults)
            https_port = self._serve_http(app, tls.trusted)
            https_untrusted_port = self._serve_http(app, tls.untrusted)
            http_port = self._serve_http(app, None)
            unreachable_port = free_port()

            mail_store = MailStore(mail_dir)
            authenticator = AppPasswordAuthenticator(self.account, app_password, faults=self.faults)

            def authenticated_smtp(name: str, *, eight_bit: bool = True, **kwargs: t.Any) -> int:
                handler = GmailLikeHandler(name, self.authority, mail_store, faults=self.faults, eight_bit=eight_bit)
                return self._serve_smtp(handler, auth_required=True, authenticator=authenticator,
                                        enable_SMTPUTF8=eight_bit, **kwargs)

            smtp_ssl_port = authenticated_smtp("ssl", ssl_context=tls.trusted, auth_require_tls=False)
            smtp_starttls_port = authenticated_smtp("starttls", tls_context=tls.trusted, require_starttls=True)
            smtp_untrusted_port = authenticated_smtp("untrusted", ssl_context=tls.untrusted, auth_require_tls=False)
            smtp_plain_port = authenticated_smtp("plain", auth_require_tls=False)
            smtp_relay_port = self._serve_smtp(RelaySinkHandler(mail_store), auth_exclude_mechanism=["PLAIN", "LOGIN"])
            smtp_greeting_421_port = self._serve_threaded(GreetingRefusalServer((HOST, 0), tls.trusted), "smtp-greeting-421")
            # No TLS to offer and AUTH only after TLS: EHLO shows neither, and MAIL is refused (530).
            smtp_no_starttls_port = authenticated_smtp("no_starttls")
            smtp_small_size_port = authenticated_smtp("small_size", ssl_context=tls.trusted, auth_require_tls=False,
                                                      data_size_limit=SMALL_SIZE_LIMIT)
            smtp_7bit_port = authenticated_smtp("7bit", eight_bit=False, ssl_context=tls.trusted, auth_require_tls=False)
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
            # Keep {fault}: tests put a fault spec there (see parse_fault_spec).
            "token_uri_fault": f"{https}{FAULT_TOKEN_PATH}",
            "revoke_uri": f"{https}{REVOKE_PATH}",
            "auth_uri": f"{https}{AUTHORIZE_PATH}",
            "microsoft_account": MICROSOFT_ACCOUNT,
            "microsoft_client_id": microsoft_client.client_id,
            "microsoft_client_secret": microsoft_client.client_secret,
            "microsoft_refresh_token": microsoft_refresh_token,
            "microsoft_public_client_id": microsoft_public_client.client_id,
            "microsoft_public_refresh_token": microsoft_public_refresh_token,
            # Keep {tenant}: the collection fills it in from its tenant option, as for login.microsoftonline.com.
            "microsoft_token_uri": f"{https}{MICROSOFT_TOKEN_PATH}",
            "microsoft_auth_uri": f"{https}{MICROSOFT_AUTHORIZE_PATH}",
            "microsoft_device_authorization_uri": f"{https}{MICROSOFT_DEVICE_CODE_PATH}",
            "device_authorization_uri": f"{https}{DEVICE_CODE_PATH}",
            "device_verification_uri": f"{https}{DEVICE_VERIFICATION_PATH}",
            "device_approve_uri": f"{https}{DEVICE_APPROVE_PATH}",
            "device_deny_uri": f"{https}{DEVICE_DENY_PATH}",
            "smtp_ssl_port": smtp_ssl_port,
            "smtp_starttls_port": smtp_starttls_port,
            "smtp_untrusted_port": smtp_untrusted_port,
            "smtp_plain_port": smtp_plain_port,
            "smtp_relay_port": smtp_relay_port,
            "smtp_greeting_421_port": smtp_greeting_421_port,
            "smtp_no_starttls_port": smtp_no_starttls_port,
            "smtp_small_size_port": smtp_small_size_port,
            "smtp_7bit_port": smtp_7bit_port,
            **app_only.settings(token_uri=f"{https}{TOKEN_PATH}", auth_uri=f"{https}{AUTHORIZE_PATH}"),
        }
        write_json_atomically(self.settings_path, self.settings)
        return self.settings

    def stop(self) -> None:
        """Stop every server that runs and remove ``sandbox.json``; safe to call more than once."""
        self.settings_path.unlink(missing_ok=True)
        self.faults.release()
        while self._controllers:
            self._controllers.pop().stop()
        while self._threaded_servers:
            server, thread = self._threaded_servers.pop()
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
        return self._serve_threaded(TokenEndpointServer((HOST, 0), app, ssl_context), "token-endpoint")

    def _serve_threaded(self, server: socketserver.TCPServer, name: str) -> int:
        """Serve ``server`` (already bound) in a daemon thread until ``stop()``; returns its port."""
        port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, name=f"{name}-{port}", daemon=True)
        thread.start()
        self._threaded_servers.append((server, thread))
        return port

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
                **{"data_size_limit": GMAIL_SIZE_LIMIT, **smtp_options},
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
