# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP core: messages, TLS, SASL (XOAUTH2, OAUTHBEARER, PLAIN, LOGIN) and a stepwise send.

A send is a sequence of steps (connect, tls, ehlo, auth, mail, rcpt, data, quit) run by
:class:`SMTPSession`; each failure is an :class:`SMTPError` that names its step and says whether
the message may have been delivered. Every command and reply goes to a :class:`Transcript` (like
``smail -d``) in which the AUTH exchange and all secrets read ``*****``.

This file is private to the collection. Its one tie to Ansible is ``_secrets``: every secret the transcript masks is
also handed to ansible-core's own masking where the line has one.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import json
import os
import re
import select
import smtplib
import socket
import ssl
import time
import typing as t
from email import policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, MIMEPart

from ansible_collections.smail.xoauth2.plugins.module_utils import _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._net import has_blank_or_control, is_loopback
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy

if t.TYPE_CHECKING:
    from _typeshed import ReadableBuffer

SECURE_MODES = ("ssl", "starttls", "never")
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "never": 25}
AUTH_MECHANISMS = ("xoauth2", "oauthbearer", "plain", "login", "none")
MASK = "*****"


# --- errors -------------------------------------------------------------------------------------

class SMTPError(SmailError):
    """A failed send, attributed to its step.

    ``may_have_been_delivered`` is True only when the connection was lost after the final dot of
    DATA: the server may have queued the message, so a blind retry could send it twice.
    """

    def __init__(self, code: str, msg: str, *, stage: str, hint: str | None = None,
                 may_have_been_delivered: bool = False, details: dict[str, t.Any] | None = None,
                 transient: bool | None = None) -> None:
        merged = {"stage": stage, "may_have_been_delivered": may_have_been_delivered}
        merged.update(details or {})
        super().__init__(code, msg, hint=hint, details=merged)
        self.stage = stage
        self.may_have_been_delivered = may_have_been_delivered
        smtp_code = merged.get("smtp_code")
        self.transient = _is_transient(code, smtp_code if isinstance(smtp_code, int) else None) if transient is None else transient

    @property
    def smtp_code(self) -> int | None:
        """The server's reply code, when the failure was a reply."""
        return self.details.get("smtp_code")


def _is_transient(code: str, smtp_code: int | None) -> bool:
    """Whether trying again later may succeed: a 4xx reply, or a network failure before any reply (RFC 5321 4.2.1)."""
    if code == "delivery_unknown":
        return False  # the message may have been accepted: trying again could deliver it twice
    if smtp_code is not None:
        return 400 <= smtp_code < 500
    return code in ("smtp_connect", "smtp_timeout", "smtp_tls")


# --- transcript ---------------------------------------------------------------------------------

class Transcript:
    """Commands (``C:``) and replies (``S:``) of one session, with every registered secret masked."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._secrets: set[str] = set()

    def add_secret(self, secret: t.Any) -> None:
        """Mask ``secret`` wherever it would appear from now on (shorter strings are ignored as too common).

        A service account key (a mapping) registers its private key and key ID; other non-strings are ignored.
        """
        if isinstance(secret, t.Mapping):
            for field in ("private_key", "private_key_id"):
                self.add_secret(secret.get(field))
            return
        if isinstance(secret, str) and len(secret) >= 4:
            self._secrets.add(secret)
            _secrets.register(secret)

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

    def send(self, s: ReadableBuffer | str) -> None:  # noqa: D401 - smtplib's own signature
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

    def getreply(self) -> tuple[int, bytes]:
        code, message = super().getreply()  # type: ignore[misc]
        self.transcript.server(code, message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message))
        return code, message


class _SMTP(_TranscribingMixin, smtplib.SMTP):
    #: Called with the connected socket before the greeting is read; it may raise to give up on the connection.
    before_greeting: t.Callable[[socket.socket], None] | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]  # smtplib's own, not in its stubs
        if self.before_greeting is not None:
            try:
                self.before_greeting(sock)
            except BaseException:
                sock.close()
                raise
        return sock


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

#: How long a plain connection waits for the greeting before it checks whether the port expects implicit TLS.
FIRST_GREETING_WAIT = 2.0


class SMTPEndpoint(t.NamedTuple):
    """Where and how to connect."""

    host: str
    port: int
    secure: str = "ssl"
    timeout: float = 30.0
    validate_certs: bool = True
    ca_path: str | None = None
    ehlohost: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server certificate and host name unless told not to.

        A ``ca_path`` that is not a readable CA bundle is SMTPError ``invalid_option``, final: no retry can fix it.
        """
        try:
            context = ssl.create_default_context(cafile=self.ca_path) if self.ca_path else ssl.create_default_context()
        except OSError as exc:  # ssl.SSLError is one: a file without a certificate in it
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
            raise SMTPError("invalid_option", f"Option 'ca_path': cannot load {self.ca_path!r} as CA certificates ({reason}).",
                            stage="tls", transient=False, details={"option": "ca_path"},
                            hint="Set ca_path to a readable PEM file of the CA certificates to trust.") from None
        if not self.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class SASLLogin(t.NamedTuple):
    """The SASL mechanism and what it presents: an access token (bearer mechanisms) or a password."""

    mechanism: str
    username: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:
        return f"SASLLogin(mechanism={self.mechanism!r}, username={self.username!r})"


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
    ehlohost = endpoint.ehlohost or ""
    if not ehlohost.isascii() or has_blank_or_control(ehlohost):
        # RFC 5321 section 4.1.1.1: EHLO takes a domain or an address literal, ASCII without blanks.
        raise OptionError("ehlohost", "must be an ASCII host name or address literal, without blanks, line breaks or "
                                      "control characters (an IDN in its xn-- form)")
    if endpoint.secure == "never" and login.mechanism != "none" and not is_loopback(endpoint.host):
        raise OptionError("secure", "'never' sends credentials in clear text; it is allowed only to a loopback host or with auth=none")
    if login.mechanism != "none" and not login.username:
        raise OptionError("username", f"is required for auth={login.mechanism}")
    if login.mechanism != "none" and not login.secret:
        option = "password" if login.mechanism in ("plain", "login") else "access_token"
        raise OptionError(option, f"is required for auth={login.mechanism}")


# --- message ------------------------------------------------------------------------------------

class InlineImage(t.NamedTuple):
    """An image of an HTML body (the ``inline`` option, as community.general.mail has it since 13.3.0)."""

    path: str
    #: The Content-ID without its angle brackets: the body refers to it as ``cid:<cid>``.
    cid: str
    #: ``image/png`` and so on; guessed from the file name when None.
    mime_type: str | None = None


def inline_images(items: t.Iterable[t.Mapping[str, t.Any]] | None) -> tuple[InlineImage, ...]:
    """The ``inline`` option's items (``path``, ``cid``, ``mime_type``) as InlineImage values."""
    return tuple(InlineImage(path=item["path"], cid=item["cid"], mime_type=item.get("mime_type")) for item in items or ())


class MessageSpec(t.NamedTuple):
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
    #: How non-ASCII attachment names are written: ``rfc2231`` (``filename*=utf-8''...``), ``rfc2047`` (encoded words
    #: in ``charset``, as SMAIL and Japanese mail clients write them) or ``auto`` (rfc2047 for ISO-2022-JP).
    attachment_name_encoding: str = "auto"
    #: Images an HTML body shows with ``<img src="cid:...">``, sent in a ``multipart/related`` with it.
    inline: tuple[InlineImage, ...] = ()


#: Headers whose value repeats across the mails of a batch: the sender, the date (to the second) and the MIME headers
#: of a body; parsing one costs about as much as a header's share of building the mail.
_REPEATED = frozenset({"from", "reply-to", "date", "mime-version", "content-type", "content-transfer-encoding"})


class _CachingHeaderRegistry(HeaderRegistry):
    """email's header registry, keeping the class it derives for a header name instead of deriving it per header,
    and the header object of a value that repeats from mail to mail (:data:`_REPEATED`)."""

    def __init__(self) -> None:
        super().__init__()
        self._derived: dict[str, type] = {}
        self._parsed: dict[tuple[str, str], t.Any] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        derived = self._derived.get(key)
        if derived is None:
            derived = self._derived[key] = super().__getitem__(key)
        return derived

    def map_to_type(self, name: str, cls: type) -> None:
        self._derived.pop(name.lower(), None)
        self._parsed.clear()
        super().map_to_type(name, cls)

    def __call__(self, name: str, value: t.Any) -> t.Any:
        """The header object for ``value``; one of :data:`_REPEATED` is parsed once per value and then reused.

        email's header objects are immutable strings: the message, the generator and folding only read them.
        """
        if name.lower() not in _REPEATED or not isinstance(value, (str, Address)):
            return super().__call__(name, value)
        key = (name.lower(), str(value))
        header = self._parsed.get(key)
        if header is None or header.name != name:
            if len(self._parsed) >= 256:
                self._parsed.clear()
            header = self._parsed[key] = super().__call__(name, value)
        return header


#: Policy SMTP (CRLF, folded, encoded headers); a batch of 1000 mails builds 8000 headers through its registry.
MESSAGE_POLICY = policy.SMTP.clone(header_factory=_CachingHeaderRegistry())

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
_PROTECTED_HEADERS = {"from", "to", "cc", "bcc", "subject", "reply-to", "date", "message-id", "mime-version",
                      "content-type", "content-transfer-encoding"}


def _check_one_line(text: str, *, option: str, what: str = "") -> None:
    """Raise OptionError naming ``option`` when ``text`` holds a NUL or a line break.

    A line break is anything ``str.splitlines()`` splits on (CR, LF, VT, FF, FS, GS, RS, NEL, LS, PS): the email
    package refuses each of them in a header value with a bare ValueError.
    """
    if "\x00" in text or len(f"{text}.".splitlines()) > 1:
        raise OptionError(option, f"{what}contains a line break or NUL")


@functools.lru_cache(maxsize=1024)  # a batch names the same sender in every message, and each address twice
def parse_address(value: str, *, option: str) -> Address:
    """One mailbox from ``addr`` or ``Name <addr>``; raise OptionError naming ``option`` when it is not one."""
    _check_one_line(value, option=option)
    name, addr = email.utils.parseaddr(value)
    if not addr or "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
        raise OptionError(option, f"{value!r} is not a mail address")
    local, domain = addr.rsplit("@", 1)
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, TypeError) as exc:
        raise OptionError(option, f"{value!r} is not a mail address: {exc}") from None


#: The values of MessageSpec.attachment_name_encoding (the module option of that name).
ATTACHMENT_NAME_ENCODINGS = ("auto", "rfc2231", "rfc2047")


def build_message(spec: MessageSpec) -> EmailMessage:
    """An RFC 5322 message (policy SMTP: CRLF, folded, encoded headers) with Date and Message-ID."""
    if spec.subtype not in ("plain", "html"):
        raise OptionError("subtype", "must be 'plain' or 'html'")
    if spec.text_body is not None and spec.subtype != "html":
        raise OptionError("text_body", "is the text alternative of an HTML body: use it with subtype=html")
    if spec.inline and spec.subtype != "html":
        raise OptionError("inline", "holds images an HTML body shows with <img src=\"cid:...\">: use it with subtype=html "
                                    "(attach sends other files)")
    try:
        "".encode(spec.charset)
    except LookupError:
        raise OptionError("charset", f"unknown character set {spec.charset!r}") from None
    _check_one_line(spec.subject, option="subject")
    if spec.message_id_domain:
        _check_one_line(spec.message_id_domain, option="message_id_domain")
    msg = EmailMessage(policy=MESSAGE_POLICY)
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
        _check_one_line(str(value), option=f"headers.{name}")
        msg[name] = str(value)
    try:
        if spec.subtype == "html":
            if spec.text_body is not None:
                text = spec.text_body
            else:
                from ansible_collections.smail.xoauth2.plugins.module_utils._mime import html_to_text  # pylint: disable=import-outside-toplevel
                text = html_to_text(spec.body)
            msg.set_content(text, charset=spec.charset)
            msg.add_alternative(spec.body, subtype="html", charset=spec.charset)
            if spec.inline:
                from ansible_collections.smail.xoauth2.plugins.module_utils import _mime  # pylint: disable=import-outside-toplevel
                # The HTML part just added: get_body() finds it, a MIMEPart.
                _mime.relate_inline_images(t.cast(MIMEPart, msg.get_body(("html",))), spec.inline)
        else:
            msg.set_content(spec.body, charset=spec.charset)
    except UnicodeEncodeError:
        raise OptionError("charset", f"the body contains characters that {spec.charset} cannot encode") from None
    if spec.attachment_name_encoding not in ATTACHMENT_NAME_ENCODINGS:
        raise OptionError("attachment_name_encoding", f"must be one of {', '.join(ATTACHMENT_NAME_ENCODINGS)}")
    for path in spec.attachments:
        _attach_file(msg, path)
    japanese = spec.charset.lower().replace("_", "-") == "iso-2022-jp"
    if japanese:
        from ansible_collections.smail.xoauth2.plugins.module_utils import _mime  # pylint: disable=import-outside-toplevel
        try:
            _mime.japanese_headers(msg)
        except ValueError as exc:
            raise OptionError("charset", f"a header cannot be written in ISO-2022-JP: {exc}") from None
    if spec.attachments and (spec.attachment_name_encoding == "rfc2047"
                             or (spec.attachment_name_encoding == "auto" and japanese)):
        from ansible_collections.smail.xoauth2.plugins.module_utils import _mime  # pylint: disable=import-outside-toplevel
        try:
            _mime.encoded_word_attachment_names(msg, spec.charset)
        except ValueError as exc:
            raise OptionError("attach", f"the file name {exc}; attachment_name_encoding=rfc2231 writes it in UTF-8") from None
    return msg


def _attach_file(msg: EmailMessage, path: str) -> None:
    import mimetypes  # pylint: disable=import-outside-toplevel  # only a mail with attachments pays for its tables

    content_type, encoding = mimetypes.guess_type(path)
    if content_type is None or encoding is not None:
        content_type = "application/octet-stream"  # a compressed file is sent as is, not as its inner type
    maintype, subtype = content_type.split("/", 1)
    filename = os.path.basename(path)
    _check_one_line(filename, option="attach", what=f"the file name {filename!r} ")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OptionError("attach", f"cannot read {path!r}: {exc.strerror}") from None
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def envelope_recipients(spec: MessageSpec) -> list[str]:
    """Every To, Cc and Bcc address, once each, in order."""
    addresses = [parse_address(value, option=option).addr_spec
                 for option, values in (("to", spec.to), ("cc", spec.cc), ("bcc", spec.bcc)) for value in values]
    return list(dict.fromkeys(addresses))


def message_bytes(msg: EmailMessage) -> bytes:
    """The wire form of ``msg``: CRLF line endings, headers encoded for SMTP.

    Non-ASCII addresses cannot be written as encoded words (RFC 2047 section 5): such a message is written as
    RFC 6532 UTF-8 headers, which only a server offering SMTPUTF8 takes.
    """
    addresses = [address for name in ("From", "To", "Cc", "Reply-To") for address in getattr(msg[name], "addresses", ())]
    if not all(address.addr_spec.isascii() for address in addresses):
        return msg.as_bytes(policy=policy.SMTPUTF8)
    return msg.as_bytes(policy=policy.SMTP)


# --- the session --------------------------------------------------------------------------------

def reply_text(message: bytes | str) -> str:
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


_ENHANCED_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")


def enhanced_status(code: int, text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 status code (``5.7.8``) that starts a reply's text, as numbers; None when there is none.

    One whose class disagrees with the reply code (``550 4.7.1``) is broken (RFC 2034 section 4 requires them to
    agree) and ignored: the reply code decides what is transient.
    """
    match = _ENHANCED_STATUS.match(text)
    if match is None or int(match[1]) != code // 100:
        return None
    return int(match[1]), int(match[2]), int(match[3])


def too_many_recipients(code: int, text: str) -> bool:
    """Whether a reply to RCPT says this transaction holds all the recipients it takes (RFC 5321 4.5.3.1.10).

    452 is that reply, and 552 is to be treated like it (RFC 821 gave that code); an enhanced status code other than
    X.5.3 names another reason (X.2.2 mailbox full, X.3.1 system full) and leaves the reply to its own class.
    """
    if code not in (452, 552):
        return False
    status = enhanced_status(code, text)
    return status is None or status[1:] == (5, 3)


class Envelope(t.NamedTuple):
    """One message as the server sees it: envelope sender, recipients and the exact bytes after DATA."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str | None = None


class RcptReplies:
    """The server's answers to one round of RCPT TO."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        #: 4xx: may be accepted later.
        self.deferred: dict[str, str] = {}
        #: 452, or a 552 that means the same: not in this transaction, but in a new one at once (RFC 5321 4.5.3.1.10).
        self.too_many: dict[str, str] = {}
        #: 5xx: refused for good.
        self.refused: dict[str, str] = {}


class LoginSource(t.Protocol):
    """Where a session gets its SASL login, and a new one after the server refused a bearer token."""

    def login(self) -> SASLLogin:
        """The login to present."""

    def renew(self) -> SASLLogin | None:
        """A login with a new token after a refusal, or None when a new one cannot help (refused right after a refresh)."""


class StaticLogin:
    """A login that cannot be renewed: a password, no AUTH, or an access token given as is."""

    def __init__(self, value: SASLLogin) -> None:
        self.value = value

    def login(self) -> SASLLogin:
        return self.value

    def renew(self) -> SASLLogin | None:
        return None


class SMTPSession:
    """One SMTP connection driven step by step; use as a context manager so the socket is always closed.

    Steps: :meth:`connect` (TCP, implicit TLS, greeting), :meth:`ehlo`, :meth:`starttls`, :meth:`authenticate`,
    :meth:`mail_from`, :meth:`rcpt_to`, :meth:`data`, :meth:`quit`. :meth:`open` runs the first four;
    :meth:`transact` runs MAIL, RCPT and DATA for one :class:`Envelope`.
    """

    def __init__(self, endpoint: SMTPEndpoint, login: SASLLogin, *, transcript: Transcript | None = None) -> None:
        self.endpoint = endpoint
        self.login = login
        self.transcript = transcript or Transcript()
        self.transcript.add_secret(login.secret)
        self._smtp: _SMTP | _SMTPSSL | None = None
        self._tls_context: ssl.SSLContext | None = None

    # connection plumbing

    def __enter__(self) -> SMTPSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket without QUIT (used after failures)."""
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    @property
    def connected(self) -> bool:
        """False once the connection was closed, by a failure, a 421 or QUIT."""
        return self._smtp is not None and self._smtp.sock is not None

    @property
    def smtp(self) -> _SMTP | _SMTPSSL:
        if self._smtp is None:
            raise SMTPError("smtp_connect", "Not connected.", stage="connect")
        return self._smtp

    def _fail(self, exc: BaseException, *, stage: str, after_final_dot: bool = False) -> SMTPError:
        """Translate a low-level failure during ``stage`` into an SMTPError (and close the socket)."""
        self.close()
        # What a failure means is imported with the first failure: a send that succeeds never loads it.
        from ansible_collections.smail.xoauth2.plugins.module_utils._smtp_failure import explain  # pylint: disable=import-outside-toplevel

        return explain(exc, endpoint=self.endpoint, mask=self.transcript.mask, stage=stage, after_final_dot=after_final_dot)

    def _command(self, line: str, *, stage: str) -> tuple[int, str]:
        try:
            code, message = self.smtp.docmd(line)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage=stage) from None
        self._closed_by(code)
        return code, reply_text(message)

    def _closed_by(self, code: int) -> None:
        # 421: the server closes the channel (RFC 5321 section 3.8); nothing more can be said on it.
        if code == 421:
            self.close()

    # steps

    def connect(self) -> None:
        """TCP connect (with implicit TLS for ``ssl``) and read the greeting.

        The TLS context is made first, so a bad ``ca_path`` fails before any connection. A greeting that never comes
        on a port that answers a TLS handshake instead is final ``smtp_tls``: the port expects implicit TLS.
        """
        endpoint = self.endpoint
        if endpoint.secure != "never":
            self._tls_context = endpoint.ssl_context()
        self.transcript.note(f"connect {endpoint.host}:{endpoint.port} ({endpoint.secure})")
        stage = "tls" if endpoint.secure == "ssl" else "connect"
        try:
            if endpoint.secure == "ssl":
                smtp: _SMTP | _SMTPSSL = _SMTPSSL(local_hostname=endpoint.ehlohost, timeout=endpoint.timeout,
                                                  context=self._tls_context)
            else:
                smtp = _SMTP(local_hostname=endpoint.ehlohost, timeout=endpoint.timeout)
                smtp.before_greeting = self._refuse_an_implicit_tls_port
            smtp.transcript = self.transcript
            smtp._host = endpoint.host  # pylint: disable=protected-access  # smtplib checks the certificate against it
            self._smtp = smtp
            code, greeting = smtp.connect(endpoint.host, endpoint.port)
        except ssl.SSLError as exc:
            raise self._fail(exc, stage=stage) from None
        except (OSError, smtplib.SMTPException) as exc:
            error = self._fail(exc, stage="connect")
            # smtplib reports a greeting that timed out as a disconnect; a TCP connect that timed out is not one.
            if endpoint.secure != "ssl" and error.code == "smtp_timeout" and isinstance(exc, smtplib.SMTPServerDisconnected):
                from ansible_collections.smail.xoauth2.plugins.module_utils._smtp_failure import silent_greeting  # pylint: disable=import-outside-toplevel

                error = silent_greeting(endpoint, error)
            raise error from None
        except ValueError as exc:  # UnicodeError from the IDNA codec: an empty or overlong label, a stray character
            self.close()
            raise SMTPError("invalid_option", f"Option 'host': {endpoint.host!r} is not a host name ({exc}).", stage="connect",
                            transient=False, details={"option": "host"}) from None
        if code != 220:
            self.close()
            raise SMTPError("smtp_connect", f"{endpoint.host}:{endpoint.port} refused the session in its greeting: "
                            f"{code} {reply_text(greeting)}", stage="connect", details={"smtp_code": code})

    def _refuse_an_implicit_tls_port(self, sock: socket.socket) -> None:
        """Final ``smtp_tls`` at once for a plain connection to a port that waits for a TLS handshake (465).

        Such a port says nothing, as a slow server does: after :data:`FIRST_GREETING_WAIT` without a greeting, a
        second connection tries a TLS handshake. A port that answers it fails now; any other keeps its whole timeout.
        """
        wait = min(FIRST_GREETING_WAIT, self.endpoint.timeout)
        if select.select([sock], [], [], wait)[0]:
            return
        from ansible_collections.smail.xoauth2.plugins.module_utils._smtp_failure import expects_implicit_tls  # pylint: disable=import-outside-toplevel

        error = expects_implicit_tls(self.endpoint, waited=wait)
        if error is not None:
            self.transcript.note(f"no greeting within {wait:g} s, and the port answers TLS: implicit TLS expected")
            raise error

    def ehlo(self) -> None:
        """EHLO; the server's extensions are then in ``self.smtp.esmtp_features``."""
        try:
            code, message = self.smtp.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="ehlo") from None
        if code != 250:
            self.close()
            raise SMTPError("smtp_connect", f"The server refused EHLO: {code} {reply_text(message)}", stage="ehlo",
                            details={"smtp_code": code})

    def starttls(self) -> None:
        """Upgrade to TLS (verifying the certificate) and say EHLO again, as RFC 3207 requires."""
        if not self.smtp.has_extn("starttls"):
            self.close()
            raise SMTPError("smtp_tls", f"{self.endpoint.host}:{self.endpoint.port} does not offer STARTTLS.", stage="tls",
                            transient=False, hint="Use secure=ssl for implicit TLS (port 465), or check the port.")
        try:
            code, message = self.smtp.starttls(context=self._tls_context or self.endpoint.ssl_context())
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="tls") from None
        if code != 220:
            self.close()
            raise SMTPError("smtp_tls", f"The server refused STARTTLS: {code} {reply_text(message)}", stage="tls",
                            details={"smtp_code": code})
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
                            stage="auth", details=details, hint=_auth_hint(login.mechanism, code, reply))

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

    def open_with(self, logins: LoginSource) -> None:
        """:meth:`open` with ``logins.login()``; when the server refuses that bearer token, once more with a renewed one.

        A token can be revoked on the server side (password change, admin action) long before it expires; only a
        new token helps then, and a token refused right after its refresh is final.
        """
        self.login = logins.login()
        self.transcript.add_secret(self.login.secret)
        try:
            self.open()
        except SMTPError as exc:
            if exc.code != "smtp_auth" or exc.transient or self.login.mechanism not in ("xoauth2", "oauthbearer"):
                raise
            renewed = logins.renew()
            if renewed is None:
                raise
            self.transcript.note("the server refused the access token: trying once more with a refreshed one")
            self.close()
            self.login = renewed
            self.transcript.add_secret(renewed.secret)
            self.open()

    def mail_from(self, sender: str, options: t.Sequence[str] = ()) -> None:
        """MAIL FROM with ESMTP ``options``; a refusal is ``sender_refused``."""
        try:
            code, message = self.smtp.mail(sender, list(options))
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="mail") from None
        self._closed_by(code)
        if code != 250:
            text = reply_text(message)
            self._reset()
            raise SMTPError("sender_refused", f"The server refused the sender {sender}: {code} {text}", stage="mail",
                            details={"smtp_code": code},
                            hint="The sender must be the authenticated account or one of its verified aliases.")

    def rcpt_to(self, recipients: t.Sequence[str]) -> RcptReplies:
        """RCPT TO for each address, sorted by the reply into accepted, too many (452), deferred (4xx) and refused (5xx).

        A 421 ends the session: ``smtp_connect`` with the reply code, transient.
        """
        replies = RcptReplies()
        for address in recipients:
            try:
                code, message = self.smtp.rcpt(address)
            except (OSError, smtplib.SMTPException) as exc:
                raise self._fail(exc, stage="rcpt") from None
            self._closed_by(code)
            text = f"{code} {reply_text(message)}"
            if code == 421:
                raise SMTPError("smtp_connect", f"The server closed the connection at RCPT TO {address}: {text}",
                                stage="rcpt", details={"smtp_code": code})
            if code in (250, 251):
                replies.accepted.append(address)
            elif too_many_recipients(code, reply_text(message)):
                replies.too_many[address] = text
            elif 400 <= code < 500:
                replies.deferred[address] = text
            else:
                replies.refused[address] = text
        return replies

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
        self._closed_by(code)
        if code != 250:
            self._reset()
            raise SMTPError("data_refused", f"The server refused the message: {code} {reply_text(message)}", stage="data",
                            details={"smtp_code": code})

    def prepare(self, envelope: Envelope) -> tuple[bytes, list[str]]:
        """The bytes to send to this server and the MAIL FROM options they need; SMTPError before anything is sent.

        8bit data goes with ``BODY=8BITMIME`` to a server that offers it and is re-encoded as 7bit otherwise;
        non-ASCII addresses need ``SMTPUTF8``; a message over the server's ``SIZE`` is refused here, not after DATA.
        """
        smtp = self.smtp
        options: list[str] = []
        data = envelope.data
        addresses = (envelope.sender, *envelope.recipients)
        utf8 = not all(address.isascii() for address in addresses)
        if utf8:
            if not smtp.has_extn("smtputf8"):
                raise SMTPError("smtputf8_unsupported", f"{self.endpoint.host} does not offer SMTPUTF8, which the non-ASCII "
                                "address(es) need: " + ", ".join(a for a in addresses if not a.isascii()),
                                stage="mail", transient=False, hint="Use ASCII addresses with this server.")
            options.append("SMTPUTF8")
        if not data.isascii():
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            elif not utf8:
                from ansible_collections.smail.xoauth2.plugins.module_utils import _mime  # pylint: disable=import-outside-toplevel
                data = _mime.downgrade_to_7bit(data)
                self.transcript.note("the server does not offer 8BITMIME: the message was re-encoded as 7bit")
        limit = smtp.esmtp_features.get("size", "")
        if limit.isdigit():
            if int(limit) and len(data) > int(limit):
                raise SMTPError("message_too_large", f"The message has {len(data)} bytes; {self.endpoint.host} takes at most "
                                f"{limit} (SIZE).", stage="mail", transient=False,
                                hint="Send large files as links, or fewer attachments per mail.")
            options.append(f"SIZE={len(data)}")
        return data, options

    def transact(self, envelope: Envelope, recipients: t.Sequence[str]) -> RcptReplies:
        """MAIL, RCPT for ``recipients`` and DATA; returns the RCPT replies once the server accepted the message.

        With no recipient accepted nothing is sent: the replies come back without DATA. Raises SMTPError for a
        refusal at MAIL or DATA (or a lost connection), with ``transient`` saying whether trying later may help.
        """
        payload, mail_options = self.prepare(envelope)
        self.mail_from(envelope.sender, mail_options)
        replies = self.rcpt_to(recipients)
        if not replies.accepted:
            self._reset()
            return replies
        self.data(payload)
        return replies

    def quit(self, *, timeout: float | None = None) -> None:
        """QUIT politely, waiting at most ``timeout`` seconds (when given) for the answer instead of the session's
        whole timeout; failures here do not matter any more, and the socket is closed either way."""
        if self._smtp is None:
            return
        try:
            sock = self._smtp.sock
            if timeout is not None and sock is not None:
                current = sock.gettimeout()
                sock.settimeout(timeout if current is None else min(current, timeout))
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self.close()

    def resume(self, transcript: Transcript) -> bool:
        """Take up this open, authenticated session for a new send that records in ``transcript``: True when the
        server still answers RSET with 250; otherwise the connection is closed (nothing of the new send was said)."""
        self.transcript = transcript
        transcript.add_secret(self.login.secret)
        if not self.connected:
            return False
        self.smtp.transcript = transcript
        transcript.note(f"reuse the session with {self.endpoint.host}:{self.endpoint.port}")
        try:
            code, _reply = self._command("RSET", stage="connect")
        except SMTPError:
            return False
        if code != 250:
            self.close()
            return False
        return True

    def _reset(self) -> None:
        if not self.connected:
            return
        try:
            self.smtp.rset()
        except (OSError, smtplib.SMTPException, SMTPError):
            pass


def _auth_hint(mechanism: str, code: int, reply: str) -> str:
    """What to do about a refused AUTH: nothing but wait for a 4xx (454 4.7.0), the credentials for a 5xx."""
    status = enhanced_status(code, reply)
    if 400 <= code < 500:
        return "The server could not verify the login just now (a temporary failure): a later attempt may succeed."
    if status is not None and status[1:] == (7, 11):
        return "The server takes this mechanism only over TLS: use secure=ssl or secure=starttls."
    if mechanism in ("xoauth2", "oauthbearer"):
        return ("The access token was refused: check that username is the account that granted it, that its scopes "
                "include mail sending (Google: https://mail.google.com/, Microsoft: SMTP.Send), and that it has not expired.")
    return "Check username and password (Gmail and Microsoft 365 need an app password for PLAIN/LOGIN)."


# --- delivery with retries ----------------------------------------------------------------------

class Outcome:
    """What became of one envelope: who has it, who refused it for good, who is still waiting, and why."""

    def __init__(self, envelope: Envelope, pending: list[str]) -> None:
        self.envelope = envelope
        self.pending = pending
        self.accepted: list[str] = []
        self.refused: dict[str, str] = {}
        #: The reason the pending recipients do not have it yet, or the final failure of the envelope.
        self.error: SMTPError | None = None

    @property
    def finished(self) -> bool:
        """Nothing more to try: every recipient has it or refused it, or the failure is final."""
        return not self.pending or (self.error is not None and not self.error.transient)


class DeliveryReport:
    """The outcome of every envelope, and the failed attempts on the way (stage, code and reply, no secrets)."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.attempts = 0
        self.failed_attempts: list[dict[str, t.Any]] = []


def _deferral(outcome: Outcome, deferred: dict[str, str]) -> SMTPError:
    text = "; ".join(f"{address}: {reply}" for address, reply in deferred.items())
    first_code = next(iter(deferred.values())).split(" ", 1)[0]
    return SMTPError("recipients_deferred", f"The server deferred recipient(s) of {outcome.envelope.message_id}: {text}",
                     stage="rcpt", transient=True,
                     details={"deferred": dict(deferred), "smtp_code": int(first_code) if first_code.isdigit() else None})


def _run_transaction(session: SMTPSession, outcome: Outcome, on_transaction: TransactionHook | None = None) -> None:
    """One MAIL/RCPT/DATA round for the envelope's pending recipients, recorded on ``outcome``; raises SMTPError.

    Recipients the server had no room for (452, or 552, at RCPT) go in a new transaction at once while the last one
    delivered to somebody (RFC 5321 4.5.3.1.10); each transaction is recorded, and shown to ``on_transaction``, before
    the next starts, so a failure in a later one leaves the earlier ones' recipients accepted. Without progress they
    wait like any other 4xx. The caller shows the outcome to ``on_transaction`` after the last transaction.
    """
    later: dict[str, str] = {}
    replies = session.transact(outcome.envelope, outcome.pending)
    while True:
        outcome.refused.update(replies.refused)
        outcome.accepted.extend(replies.accepted)
        later.update(replies.deferred)
        outcome.pending = [*replies.too_many, *later]
        if not (replies.too_many and replies.accepted and session.connected):
            break
        if on_transaction is not None:
            on_transaction(outcome)
        session.transcript.note(f"{len(replies.too_many)} recipient(s) did not fit in this transaction: a new one for them")
        replies = session.transact(outcome.envelope, list(replies.too_many))
    deferred = {**replies.too_many, **later}
    outcome.error = _deferral(outcome, deferred) if deferred else None
    if not outcome.pending and not outcome.accepted:
        outcome.error = SMTPError("recipients_refused", "The server refused every recipient: "
                                  + "; ".join(f"{addr}: {reply}" for addr, reply in outcome.refused.items()),
                                  stage="rcpt", transient=False, details={"refused": dict(outcome.refused)})


#: Called with an envelope's outcome right after each of its transactions (a recipient's final answer, or a failure),
#: before the next command: where a queue records who has the message.
TransactionHook = t.Callable[[Outcome], None]


def login_failure(exc: SmailError) -> SMTPError:
    """A failure to get a login (a token renewal that failed) as the failure of the attempt's AUTH step."""
    return SMTPError(exc.code, exc.msg, stage="auth", hint=exc.hint, details=exc.details,
                     transient=bool(getattr(exc, "transient", False)))


class SessionProvider(t.Protocol):
    """Where an attempt gets its authenticated session, and what becomes of the session after the attempt."""

    def open(self, endpoint: SMTPEndpoint, logins: LoginSource, transcript: Transcript) -> SMTPSession:
        """A session ready for MAIL FROM; raises what :meth:`SMTPSession.open_with` raises."""

    def release(self, session: SMTPSession) -> None:
        """The attempt is done with ``session`` (connected or not) and sent no command after its last reply."""


class NewSessions:
    """A new connection for every attempt, ended with QUIT after it: the module's way."""

    def open(self, endpoint: SMTPEndpoint, logins: LoginSource, transcript: Transcript) -> SMTPSession:
        session = SMTPSession(endpoint, logins.login(), transcript=transcript)
        try:
            session.open_with(logins)
        except BaseException:
            session.close()
            raise
        return session

    def release(self, session: SMTPSession) -> None:
        if session.connected:
            session.quit()
        else:
            session.close()


NEW_SESSIONS = NewSessions()


def _attempt(endpoint: SMTPEndpoint, logins: LoginSource, todo: list[Outcome], transcript: Transcript,
             on_transaction: TransactionHook | None = None, sessions: SessionProvider = NEW_SESSIONS) -> None:
    """One connection (from ``sessions``): a transaction per unfinished envelope while the connection lasts.

    Each envelope's ``error`` says afterwards why it is not (wholly) delivered; an envelope left untried because
    the connection ended gets that reason, or a transient one when the end was final only for another envelope.
    """
    try:
        session = sessions.open(endpoint, logins, transcript)
    except SMTPError as exc:
        for outcome in todo:
            outcome.error = exc
        return
    except SmailError as exc:  # the renewal of a refused token failed: as final or transient as that failure
        failure = login_failure(exc)
        for outcome in todo:
            outcome.error = failure
        return
    try:
        for index, outcome in enumerate(todo):
            try:
                _run_transaction(session, outcome, on_transaction)
            except SMTPError as exc:
                outcome.error = exc
            if on_transaction is not None:
                on_transaction(outcome)
            if not session.connected:
                lost = outcome.error if outcome.error is not None and outcome.error.transient else SMTPError(
                    "smtp_connect", "The connection ended before this message was sent.", stage="mail", transient=True)
                for untried in todo[index + 1:]:
                    untried.error = lost
                break
    except BaseException:
        session.close()  # an unexpected failure in the middle: nothing more is said on this connection
        raise
    sessions.release(session)


def deliver_envelopes(endpoint: SMTPEndpoint, logins: LoginSource, envelopes: t.Sequence[Envelope], *,
                      policy: RetryPolicy = NO_RETRY, transcript: Transcript | None = None,
                      sleep: t.Callable[[float], None] = time.sleep,
                      clock: t.Callable[[], float] = time.monotonic,
                      on_transaction: TransactionHook | None = None,
                      sessions: SessionProvider = NEW_SESSIONS) -> DeliveryReport:
    """Deliver ``envelopes`` in order over one connection, retrying what may still succeed.

    Retried: failures before the server accepted the message (connection, TLS, a 421, a 4xx at AUTH, MAIL, RCPT or in
    reply to DATA); per recipient for a 4xx at RCPT. Never retried: a 5xx, and a connection lost after the final
    dot (``delivery_unknown``), because the server may have taken the message. Every attempt sends the same bytes,
    so the Message-ID stays the same. ``on_transaction`` sees each outcome after each of its transactions.
    ``sessions`` gives each attempt its connection: by default a new one, ended with QUIT after the attempt.
    """
    transcript = transcript or Transcript()
    report = DeliveryReport(outcomes=[Outcome(envelope, pending=list(envelope.recipients)) for envelope in envelopes])
    started = clock()
    while True:
        todo = [outcome for outcome in report.outcomes if not outcome.finished]
        if not todo:
            return report
        report.attempts += 1
        _attempt(endpoint, logins, todo, transcript, on_transaction, sessions)
        failures = [outcome.error for outcome in todo if outcome.pending and outcome.error is not None]
        if not failures:
            continue
        for error in dict.fromkeys(failures):
            report.failed_attempts.append({"attempt": report.attempts, "stage": error.stage, "error": error.code,
                                           "smtp_code": error.smtp_code, "reply": error.msg})
        if not any(error.transient for error in failures):
            return report
        pause = policy.pause(report.attempts, clock() - started)
        if pause is None:
            return report
        transcript.note(f"attempt {report.attempts} failed ({failures[0].code}); trying again in {pause:.1f} s")
        sleep(pause)
