# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP core: messages, TLS, SASL (XOAUTH2, OAUTHBEARER, PLAIN, LOGIN) and a stepwise send.

A send is a sequence of steps (connect, tls, ehlo, auth, mail, rcpt, data, quit) run by
:class:`SMTPSession`; each failure is an :class:`SMTPError` that names its step and says whether
the message may have been delivered. Every command and reply goes to a :class:`Transcript` (like
``smail -d``) in which the AUTH exchange and all secrets read ``*****``.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import ipaddress
import json
import mimetypes
import os
import re
import smtplib
import socket
import ssl
import typing as t
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError

SECURE_MODES = ("ssl", "starttls", "never")
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "never": 25}
AUTH_MECHANISMS = ("xoauth2", "oauthbearer", "plain", "login", "none")
MASK = "*****"
_TIMEOUTS = (socket.timeout, TimeoutError)  # distinct classes before Python 3.10


# --- errors -------------------------------------------------------------------------------------

class SMTPError(SmailError):
    """A failed send, attributed to its step.

    ``may_have_been_delivered`` is True only when the connection was lost after the final dot of
    DATA: the server may have queued the message, so a blind retry could send it twice.
    """

    def __init__(self, code: str, msg: str, *, stage: str, hint: str | None = None,
                 may_have_been_delivered: bool = False, details: dict[str, t.Any] | None = None) -> None:
        merged = {"stage": stage, "may_have_been_delivered": may_have_been_delivered}
        merged.update(details or {})
        super().__init__(code, msg, hint=hint, details=merged)
        self.stage = stage
        self.may_have_been_delivered = may_have_been_delivered


# --- transcript ---------------------------------------------------------------------------------

class Transcript:
    """Commands (``C:``) and replies (``S:``) of one session, with every registered secret masked."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._secrets: set[str] = set()

    def add_secret(self, secret: str | None) -> None:
        """Mask ``secret`` wherever it would appear from now on (shorter strings are ignored as too common)."""
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    @property
    def secrets(self) -> frozenset[str]:
        """Every secret registered so far, for callers that mask output of their own."""
        return frozenset(self._secrets)

    def mask(self, text: str) -> str:
        """``text`` with every registered secret replaced by the mask."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def client(self, line: str) -> None:
        self.lines.append("C: " + self.mask(line))

    def server(self, code: int, message: str) -> None:
        for part in (message or "").splitlines() or [""]:
            self.lines.append(f"S: {code} {self.mask(part)}")

    def note(self, text: str) -> None:
        self.lines.append("-- " + self.mask(text))


class _TranscribingMixin:
    """Records every line smtplib sends or receives; lines sent during SASL are masked whole."""

    transcript: Transcript
    _host: str  # smtplib's own attribute, not in its stubs
    in_sasl_exchange = False

    def send(self, s):  # noqa: D401 - smtplib's own signature
        if isinstance(s, str):
            for line in s.splitlines():
                if self.in_sasl_exchange:
                    words = line.split(" ", 2)
                    if words[0].upper() == "AUTH":
                        shown = " ".join(words[:2] + [MASK] if len(words) > 2 else words)
                    else:
                        shown = MASK if line else ""
                    self.transcript.client(shown)
                else:
                    self.transcript.client(line)
        return super().send(s)  # type: ignore[misc]

    def getreply(self):
        code, message = super().getreply()  # type: ignore[misc]
        self.transcript.server(code, message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message))
        return code, message


class _SMTP(_TranscribingMixin, smtplib.SMTP):
    pass


class _SMTPSSL(_TranscribingMixin, smtplib.SMTP_SSL):
    pass


# --- SASL ---------------------------------------------------------------------------------------

def xoauth2_initial_response(username: str, access_token: str) -> str:
    """The base64 XOAUTH2 initial client response: ``user=U^Aauth=Bearer T^A^A``."""
    raw = f"user={username}\x01auth=Bearer {access_token}\x01\x01"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def oauthbearer_initial_response(username: str, access_token: str, *, host: str, port: int) -> str:
    """The base64 OAUTHBEARER (RFC 7628) initial response: ``n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A``."""
    raw = f"n,a={username},\x01host={host}\x01port={port}\x01auth=Bearer {access_token}\x01\x01"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def plain_initial_response(username: str, password: str) -> str:
    """The base64 PLAIN (RFC 4616) response: ``\\0user\\0password``."""
    return base64.b64encode(f"\x00{username}\x00{password}".encode("utf-8")).decode("ascii")


def decode_error_challenge(challenge: str) -> dict[str, t.Any] | None:
    """The JSON error a server sends as a 334 challenge after a rejected bearer token, if it is one."""
    try:
        decoded = json.loads(base64.b64decode(challenge.strip(), validate=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


# --- settings -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SMTPEndpoint:
    """Where and how to connect."""

    host: str
    port: int
    secure: str = "ssl"
    timeout: float = 30.0
    validate_certs: bool = True
    ca_path: str | None = None
    ehlohost: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server certificate and host name unless told not to."""
        context = ssl.create_default_context(cafile=self.ca_path) if self.ca_path else ssl.create_default_context()
        if not self.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclasses.dataclass(frozen=True)
class SASLLogin:
    """The SASL mechanism and what it presents: an access token (bearer mechanisms) or a password."""

    mechanism: str
    username: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:
        return f"SASLLogin(mechanism={self.mechanism!r}, username={self.username!r})"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_connection(endpoint: SMTPEndpoint, login: SASLLogin) -> None:
    """Refuse settings that would send credentials in clear text or make no sense; raise OptionError."""
    if endpoint.secure not in SECURE_MODES:
        raise OptionError("secure", f"must be one of {', '.join(SECURE_MODES)}")
    if login.mechanism not in AUTH_MECHANISMS:
        raise OptionError("auth", f"must be one of {', '.join(AUTH_MECHANISMS)}")
    if not endpoint.host:
        raise OptionError("host", "is required (no provider default applies)")
    if not 0 < endpoint.port < 65536:
        raise OptionError("port", f"{endpoint.port} is not a TCP port")
    if endpoint.secure == "never" and login.mechanism != "none" and not is_loopback(endpoint.host):
        raise OptionError("secure", "'never' sends credentials in clear text; it is allowed only to a loopback host or with auth=none")
    if login.mechanism != "none" and not login.username:
        raise OptionError("username", f"is required for auth={login.mechanism}")
    if login.mechanism != "none" and not login.secret:
        option = "password" if login.mechanism in ("plain", "login") else "access_token"
        raise OptionError(option, f"is required for auth={login.mechanism}")


# --- message ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MessageSpec:
    """A mail to build; addresses may carry display names (``Name <addr>``)."""

    sender: str
    subject: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    body: str = ""
    subtype: str = "plain"
    #: An HTML body's text alternative; derived from the HTML when not given.
    text_body: str | None = None
    charset: str = "utf-8"
    attachments: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    message_id_domain: str | None = None


_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_PROTECTED_HEADERS = {"from", "to", "cc", "bcc", "subject", "reply-to", "date", "message-id", "mime-version",
                      "content-type", "content-transfer-encoding"}


def parse_address(value: str, *, option: str) -> Address:
    """One mailbox from ``addr`` or ``Name <addr>``; raise OptionError naming ``option`` when it is not one."""
    if any(ch in value for ch in "\r\n\x00"):
        raise OptionError(option, "contains a line break or NUL")
    name, addr = email.utils.parseaddr(value)
    if not addr or "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
        raise OptionError(option, f"{value!r} is not a mail address")
    local, domain = addr.rsplit("@", 1)
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, TypeError) as exc:
        raise OptionError(option, f"{value!r} is not a mail address: {exc}") from None


class _TextFromHTML(HTMLParser):
    _BLOCKS: t.ClassVar[set[str]] = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of an HTML body, for the text alternative."""
    parser = _TextFromHTML()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text + "\n"


def build_message(spec: MessageSpec) -> EmailMessage:
    """An RFC 5322 message (policy SMTP: CRLF, folded, encoded headers) with Date and Message-ID."""
    if spec.subtype not in ("plain", "html"):
        raise OptionError("subtype", "must be 'plain' or 'html'")
    if spec.text_body is not None and spec.subtype != "html":
        raise OptionError("text_body", "is the text alternative of an HTML body: use it with subtype=html")
    try:
        "".encode(spec.charset)
    except LookupError:
        raise OptionError("charset", f"unknown character set {spec.charset!r}") from None
    if any(ch in spec.subject for ch in "\r\n\x00"):
        raise OptionError("subject", "contains a line break or NUL")
    msg = EmailMessage(policy=policy.SMTP)
    sender = parse_address(spec.sender, option="sender")
    msg["From"] = sender
    for header, option, values in (("To", "to", spec.to), ("Cc", "cc", spec.cc), ("Reply-To", "reply_to", spec.reply_to)):
        if values:
            msg[header] = [parse_address(value, option=option) for value in values]
    for value in spec.bcc:
        parse_address(value, option="bcc")  # validated here, but Bcc never goes into the headers
    msg["Subject"] = spec.subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=spec.message_id_domain or sender.domain)
    for name, value in spec.headers:
        if not _HEADER_NAME.match(name):
            raise OptionError("headers", f"{name!r} is not a valid header name")
        if name.lower() in _PROTECTED_HEADERS:
            raise OptionError("headers", f"{name!r} is set from its own option, not from headers")
        if any(ch in str(value) for ch in "\r\n\x00"):
            raise OptionError("headers", f"the value of {name!r} contains a line break or NUL")
        msg[name] = str(value)
    try:
        if spec.subtype == "html":
            msg.set_content(spec.text_body if spec.text_body is not None else html_to_text(spec.body), charset=spec.charset)
            msg.add_alternative(spec.body, subtype="html", charset=spec.charset)
        else:
            msg.set_content(spec.body, charset=spec.charset)
    except UnicodeEncodeError:
        raise OptionError("charset", f"the body contains characters that {spec.charset} cannot encode") from None
    for path in spec.attachments:
        _attach_file(msg, path)
    return msg


def _attach_file(msg: EmailMessage, path: str) -> None:
    content_type, encoding = mimetypes.guess_type(path)
    if content_type is None or encoding is not None:
        content_type = "application/octet-stream"  # a compressed file is sent as is, not as its inner type
    maintype, subtype = content_type.split("/", 1)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OptionError("attach", f"cannot read {path!r}: {exc.strerror}") from None
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=os.path.basename(path))


def envelope_recipients(spec: MessageSpec) -> list[str]:
    """Every To, Cc and Bcc address, once each, in order."""
    addresses = [parse_address(value, option=option).addr_spec
                 for option, values in (("to", spec.to), ("cc", spec.cc), ("bcc", spec.bcc)) for value in values]
    return list(dict.fromkeys(addresses))


def message_bytes(msg: EmailMessage) -> bytes:
    """The wire form of ``msg``: CRLF line endings, headers encoded for SMTP."""
    return msg.as_bytes(policy=policy.SMTP)


# --- the session --------------------------------------------------------------------------------

@dataclasses.dataclass
class SendResult:
    """What the server accepted."""

    message_id: str | None
    sender: str
    recipients: list[str]
    refused: dict[str, str]
    auth_mechanism: str
    sent: bool


def _reply_text(message: bytes | str) -> str:
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


class SMTPSession:
    """One SMTP connection driven step by step; use as a context manager so the socket is always closed.

    Steps: :meth:`connect` (TCP, implicit TLS, greeting), :meth:`ehlo`, :meth:`starttls`, :meth:`authenticate`,
    :meth:`mail_from`, :meth:`rcpt_to`, :meth:`data`, :meth:`quit`. :meth:`open` runs the first four.
    """

    def __init__(self, endpoint: SMTPEndpoint, login: SASLLogin, *, transcript: Transcript | None = None) -> None:
        self.endpoint = endpoint
        self.login = login
        self.transcript = transcript or Transcript()
        self.transcript.add_secret(login.secret)
        self._smtp: _SMTP | _SMTPSSL | None = None

    # connection plumbing

    def __enter__(self) -> SMTPSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket without QUIT (used after failures)."""
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    @property
    def smtp(self) -> _SMTP | _SMTPSSL:
        if self._smtp is None:
            raise SMTPError("smtp_connect", "Not connected.", stage="connect")
        return self._smtp

    def _fail(self, exc: BaseException, *, stage: str, after_final_dot: bool = False) -> SMTPError:
        """Translate a low-level failure during ``stage`` into an SMTPError (and close the socket)."""
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        self.close()
        if after_final_dot:
            return SMTPError(
                "delivery_unknown",
                f"The connection to {where} was lost after the message was sent, before the server confirmed it "
                f"({type(exc).__name__}: {self.transcript.mask(str(exc))}). The message may have been delivered.",
                stage=stage, may_have_been_delivered=True,
                hint="Check the recipient's mailbox before sending again, or a retry may deliver it twice.",
            )
        # smtplib reports a read timeout as a disconnect; the timeout is its context.
        if isinstance(exc, _TIMEOUTS) or isinstance(exc.__context__, _TIMEOUTS):
            return SMTPError("smtp_timeout", f"No answer from {where} within {self.endpoint.timeout:g} s during {stage}.",
                             stage=stage, hint="Raise timeout, or check that the port speaks SMTP with the chosen secure mode.")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return SMTPError("smtp_tls", f"The certificate of {where} could not be verified: {exc.verify_message}.",
                             stage=stage, hint="Set ca_path to the CA bundle that signed it; validate_certs=false is for tests only.")
        if isinstance(exc, ssl.SSLError):
            return SMTPError("smtp_tls", f"TLS with {where} failed: {exc}.", stage=stage,
                             hint="Check secure: 'ssl' is implicit TLS (port 465), 'starttls' upgrades a plain connection (port 587).")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return SMTPError("smtp_connect", f"{where} closed the connection during {stage}: {exc}", stage=stage)
        if isinstance(exc, smtplib.SMTPResponseException):
            return SMTPError("smtp_connect", f"{where} answered {exc.smtp_code} during {stage}: {_reply_text(exc.smtp_error)}",
                             stage=stage, details={"smtp_code": exc.smtp_code})
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            return SMTPError("smtp_connect", f"Cannot connect to {where}: {reason}.", stage=stage,
                             hint="Check host, port and the network path (a firewall may block outgoing SMTP).")
        return SMTPError("smtp_connect", f"{where}: {type(exc).__name__}: {exc}", stage=stage)

    def _command(self, line: str, *, stage: str) -> tuple[int, str]:
        try:
            code, message = self.smtp.docmd(line)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage=stage) from None
        return code, _reply_text(message)

    # steps

    def connect(self) -> None:
        """TCP connect (with implicit TLS for ``ssl``) and read the greeting."""
        endpoint = self.endpoint
        self.transcript.note(f"connect {endpoint.host}:{endpoint.port} ({endpoint.secure})")
        stage = "tls" if endpoint.secure == "ssl" else "connect"
        try:
            if endpoint.secure == "ssl":
                smtp: _SMTP | _SMTPSSL = _SMTPSSL(local_hostname=endpoint.ehlohost, timeout=endpoint.timeout,
                                                  context=endpoint.ssl_context())
            else:
                smtp = _SMTP(local_hostname=endpoint.ehlohost, timeout=endpoint.timeout)
            smtp.transcript = self.transcript
            smtp._host = endpoint.host  # pylint: disable=protected-access  # smtplib checks the certificate against it
            self._smtp = smtp
            smtp.connect(endpoint.host, endpoint.port)
        except ssl.SSLError as exc:
            raise self._fail(exc, stage=stage) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="connect") from None

    def ehlo(self) -> None:
        """EHLO; the server's extensions are then in ``self.smtp.esmtp_features``."""
        try:
            code, message = self.smtp.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="ehlo") from None
        if code != 250:
            self.close()
            raise SMTPError("smtp_connect", f"The server refused EHLO: {code} {_reply_text(message)}", stage="ehlo")

    def starttls(self) -> None:
        """Upgrade to TLS (verifying the certificate) and say EHLO again, as RFC 3207 requires."""
        if not self.smtp.has_extn("starttls"):
            self.close()
            raise SMTPError("smtp_tls", f"{self.endpoint.host}:{self.endpoint.port} does not offer STARTTLS.", stage="tls",
                            hint="Use secure=ssl for implicit TLS (port 465), or check the port.")
        try:
            code, message = self.smtp.starttls(context=self.endpoint.ssl_context())
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="tls") from None
        if code != 220:
            self.close()
            raise SMTPError("smtp_tls", f"The server refused STARTTLS: {code} {_reply_text(message)}", stage="tls")
        self.ehlo()

    def authenticate(self) -> None:
        """Run the SASL exchange of ``login.mechanism``; raise SMTPError ``smtp_auth`` with the server's text."""
        login = self.login
        if login.mechanism == "none":
            return
        mechanism = login.mechanism.upper()
        offered = (self.smtp.esmtp_features.get("auth") or "").upper().split()
        if mechanism not in offered:
            self.close()
            raise SMTPError("smtp_auth", f"The server does not offer AUTH {mechanism} (it offers: {' '.join(offered) or 'no AUTH'}).",
                            stage="auth", hint="Check auth and secure: many servers offer AUTH only after TLS.")
        username, secret = login.username or "", login.secret or ""
        if login.mechanism == "xoauth2":
            initial, abort_answer = xoauth2_initial_response(username, secret), ""
        elif login.mechanism == "oauthbearer":
            initial = oauthbearer_initial_response(username, secret, host=self.endpoint.host, port=self.endpoint.port)
            abort_answer = base64.b64encode(b"\x01").decode("ascii")
        elif login.mechanism == "plain":
            initial, abort_answer = plain_initial_response(username, secret), "*"
        else:
            initial, abort_answer = "", "*"
        self.transcript.add_secret(initial)
        challenge = None
        self.smtp.in_sasl_exchange = True
        try:
            if login.mechanism == "login":
                code, reply = self._login_exchange(username, secret)
            else:
                code, reply = self._command(f"AUTH {mechanism} {initial}", stage="auth")
                if code == 334:
                    # A bearer-token server reports the rejection as a challenge and waits for the client to end the exchange.
                    challenge = decode_error_challenge(reply)
                    code, reply = self._command(abort_answer, stage="auth")
        finally:
            if self._smtp is not None:
                self.smtp.in_sasl_exchange = False
        if code != 235:
            self.close()
            details: dict[str, t.Any] = {"smtp_code": code}
            if login.mechanism in ("xoauth2", "oauthbearer") and challenge:
                details["auth_challenge"] = challenge
            raise SMTPError("smtp_auth", f"The server refused AUTH {mechanism} for {username}: {code} {self.transcript.mask(reply)}",
                            stage="auth", details=details, hint=_auth_hint(login.mechanism))

    def _login_exchange(self, username: str, password: str) -> tuple[int, str]:
        encoded_user = base64.b64encode(username.encode("utf-8")).decode("ascii")
        encoded_password = base64.b64encode(password.encode("utf-8")).decode("ascii")
        self.transcript.add_secret(encoded_password)
        code, reply = self._command("AUTH LOGIN", stage="auth")
        for answer in (encoded_user, encoded_password):
            if code != 334:
                break
            code, reply = self._command(answer, stage="auth")
        return code, reply

    def open(self) -> None:
        """Connect, EHLO, STARTTLS when asked, and authenticate."""
        self.connect()
        self.ehlo()
        if self.endpoint.secure == "starttls":
            self.starttls()
        self.authenticate()

    def mail_from(self, sender: str) -> None:
        """MAIL FROM; a refusal is ``sender_refused``."""
        try:
            code, message = self.smtp.mail(sender)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="mail") from None
        if code != 250:
            text = _reply_text(message)
            self._reset()
            raise SMTPError("sender_refused", f"The server refused the sender {sender}: {code} {text}", stage="mail",
                            details={"smtp_code": code},
                            hint="The sender must be the authenticated account or one of its verified aliases.")

    def rcpt_to(self, recipients: t.Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """RCPT TO for each address; returns (accepted, refused address -> reply). None accepted is ``recipients_refused``."""
        accepted: list[str] = []
        refused: dict[str, str] = {}
        for address in recipients:
            try:
                code, message = self.smtp.rcpt(address)
            except (OSError, smtplib.SMTPException) as exc:
                raise self._fail(exc, stage="rcpt") from None
            if code in (250, 251):
                accepted.append(address)
            else:
                refused[address] = f"{code} {_reply_text(message)}"
        if not accepted:
            self._reset()
            raise SMTPError("recipients_refused", "The server refused every recipient: "
                            + "; ".join(f"{addr}: {reply}" for addr, reply in refused.items()),
                            stage="rcpt", details={"refused": refused})
        return accepted, refused

    def data(self, payload: bytes) -> None:
        """DATA, the dot-stuffed message and the final dot; a loss after the dot is ``delivery_unknown``."""
        code, reply = self._command("DATA", stage="data")
        if code != 354:
            self._reset()
            raise SMTPError("data_refused", f"The server refused DATA: {code} {reply}", stage="data", details={"smtp_code": code})
        body = re.sub(rb"(?m)^\.", b"..", payload)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.transcript.client(f"<message: {len(payload)} bytes>")
        try:
            self.smtp.sock.sendall(body + b".\r\n")  # type: ignore[union-attr]  # connected, so sock is set
        except OSError as exc:
            # A server discards a message whose final dot never arrived.
            raise self._fail(exc, stage="data") from None
        self.transcript.client(".")
        try:
            code, message = self.smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="data", after_final_dot=True) from None
        if code != 250:
            self._reset()
            raise SMTPError("data_refused", f"The server refused the message: {code} {_reply_text(message)}", stage="data",
                            details={"smtp_code": code})

    def quit(self) -> None:
        """QUIT politely; failures here do not matter any more."""
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self.close()

    def _reset(self) -> None:
        try:
            self.smtp.rset()
        except (OSError, smtplib.SMTPException, SMTPError):
            pass


def _auth_hint(mechanism: str) -> str:
    if mechanism in ("xoauth2", "oauthbearer"):
        return ("The access token was refused: check that username is the account that granted it, that its scopes "
                "include mail sending (Google: https://mail.google.com/, Microsoft: SMTP.Send), and that it has not expired.")
    return "Check username and password (Gmail and Microsoft 365 need an app password for PLAIN/LOGIN)."


def send_message(
    endpoint: SMTPEndpoint,
    login: SASLLogin,
    msg: EmailMessage,
    *,
    envelope_sender: str,
    recipients: t.Sequence[str],
    transcript: Transcript | None = None,
    check_only: bool = False,
) -> SendResult:
    """Send ``msg`` step by step. With ``check_only`` it connects and authenticates, then quits without MAIL."""
    validate_connection(endpoint, login)
    if not recipients:
        raise OptionError("to", "at least one recipient is required in to, cc or bcc")
    with SMTPSession(endpoint, login, transcript=transcript) as session:
        session.open()
        if check_only:
            session.quit()
            return SendResult(message_id=msg["Message-ID"], sender=envelope_sender, recipients=[], refused={},
                              auth_mechanism=login.mechanism, sent=False)
        session.mail_from(envelope_sender)
        accepted, refused = session.rcpt_to(recipients)
        session.data(message_bytes(msg))
        session.quit()
    return SendResult(message_id=msg["Message-ID"], sender=envelope_sender, recipients=accepted, refused=refused,
                      auth_mechanism=login.mechanism, sent=True)
