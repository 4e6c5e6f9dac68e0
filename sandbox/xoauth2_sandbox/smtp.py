# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP servers: Gmail-like AUTH (XOAUTH2, OAUTHBEARER, PLAIN, LOGIN), the mail store and the misbehaving listeners."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import hmac
import itertools
import json
import socketserver
import ssl
import sys
import threading
import typing as t
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from .common import (
    ADVERTISED_MECHANISMS,
    APP_TOKEN_REFUSED_REPLY,
    AUTH_ACCEPTED_REPLY,
    BAD_CREDENTIALS_REPLY,
    BASIC_AUTH_DISABLED_REPLY,
    DROP_AFTER_DATA_PREFIX,
    EIGHT_BIT_BODY_REFUSED_REPLY,
    EIGHT_BIT_DATA_REFUSED_REPLY,
    GREETING_REFUSED_REPLY,
    HVE_MIN_TOKEN_SECONDS,
    HVE_TOKEN_TOO_SHORT_REPLY,
    LOG,
    MALFORMED_RESPONSE_REPLY,
    MAX_AUTH_LINE_LENGTH,
    NOT_A_FAULT_REPLY,
    REFUSE_SENDER_PREFIX,
    REFUSED_SENDER_REPLY,
    REJECT_RECIPIENT_PREFIX,
    SESSION_LOG_FILE,
    UNDECODABLE_RESPONSE_REPLY,
    UNKNOWN_RECIPIENT_REPLY,
    local_part,
    same_account,
    utc_now,
    write_json_atomically,
)
from .faults import DATA_FAULTS, MAIL_FAULTS, RCPT_FAULTS, SMTP_FAULT_REPLIES, TIMED_FAULTS, FaultRegistry, FaultSpec, FaultSpecError, address_fault
from .oauth import APP_TOKEN, SERVICE_ACCOUNT_TOKEN, TokenAuthority


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
