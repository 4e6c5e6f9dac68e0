# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Names, ports, files and replies shared by every part of the sandbox, and its small helpers."""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import tempfile
import time
import typing as t
from pathlib import Path

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
    return datetime.datetime.now(datetime.UTC)


def local_part(address: str) -> str:
    """The lower-cased local part of an e-mail address (everything before the last ``@``)."""
    return address.rpartition("@")[0].lower() if "@" in address else address.lower()


def same_account(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def wait_for_file(path: Path, timeout: float) -> bool:
    """True once ``path`` exists, False when ``timeout`` seconds passed first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True
