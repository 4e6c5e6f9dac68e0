# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mail: what a task asks for (:class:`MessageSpec`), the message built from it with policy ``SMTP`` (never
compat32), and the :class:`Envelope` the server sees.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import email.utils
import functools
import os
import re
import typing as t
from email import policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, MIMEPart

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError

# The _mime package is imported where a mail needs it: an HTML body (its text alternative and inline images), Japanese
# headers, attachment names as encoded words. A plain-text notification, the common mail, never compiles it in the
# module process (about 7 ms of its start, html.parser included, measured with python -X importtime).


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
    """An RFC 5322 message (policy SMTP: CRLF, folded, encoded headers) with Date and Message-ID.

    Raises OptionError naming the option at fault, checked in this order: the options that need no parsing, the
    addresses and headers, the body, the attachments, then the headers and file names written in ``charset``.
    """
    _check_options(spec)
    msg = EmailMessage(policy=MESSAGE_POLICY)
    _set_headers(msg, spec)
    _set_body(msg, spec)
    _attach_files(msg, spec)
    _encode_for_charset(msg, spec)
    return msg


def _check_options(spec: MessageSpec) -> None:
    """Raise OptionError for an option that is wrong on its own or with another: subtype, charset, one-line values."""
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


def _set_headers(msg: EmailMessage, spec: MessageSpec) -> None:
    """The addresses (Bcc checked, never written), Subject, Date, Message-ID and the ``headers`` option's own."""
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


def _set_body(msg: EmailMessage, spec: MessageSpec) -> None:
    """The body in ``charset``: plain text, or HTML with its text alternative and the inline images it shows."""
    try:
        if spec.subtype == "html":
            from ansible_collections.smail.xoauth2.plugins.module_utils._mime import html as _mime_html  # pylint: disable=import-outside-toplevel

            if spec.text_body is not None:
                text = spec.text_body
            else:
                text = _mime_html.html_to_text(spec.body)
            msg.set_content(text, charset=spec.charset)
            msg.add_alternative(spec.body, subtype="html", charset=spec.charset)
            if spec.inline:
                # The HTML part just added: get_body() finds it, a MIMEPart.
                _mime_html.relate_inline_images(t.cast(MIMEPart, msg.get_body(("html",))), spec.inline)
        else:
            msg.set_content(spec.body, charset=spec.charset)
    except UnicodeEncodeError:
        raise OptionError("charset", f"the body contains characters that {spec.charset} cannot encode") from None


def _attach_files(msg: EmailMessage, spec: MessageSpec) -> None:
    """Each file of ``attach``, once ``attachment_name_encoding`` is known to be one of its values."""
    if spec.attachment_name_encoding not in ATTACHMENT_NAME_ENCODINGS:
        raise OptionError("attachment_name_encoding", f"must be one of {', '.join(ATTACHMENT_NAME_ENCODINGS)}")
    for path in spec.attachments:
        _attach_file(msg, path)


def _encode_for_charset(msg: EmailMessage, spec: MessageSpec) -> None:
    """ISO-2022-JP headers for a Japanese mail, and attachment names as encoded words where asked (or implied)."""
    japanese = spec.charset.lower().replace("_", "-") == "iso-2022-jp"
    if not japanese and spec.attachment_name_encoding != "rfc2047":
        return
    from ansible_collections.smail.xoauth2.plugins.module_utils._mime import japanese as _mime_japanese  # pylint: disable=import-outside-toplevel

    if japanese:
        try:
            _mime_japanese.japanese_headers(msg)
        except ValueError as exc:
            raise OptionError("charset", f"a header cannot be written in ISO-2022-JP: {exc}") from None
    if spec.attachments and (spec.attachment_name_encoding == "rfc2047"
                             or (spec.attachment_name_encoding == "auto" and japanese)):
        try:
            _mime_japanese.encoded_word_attachment_names(msg, spec.charset)
        except ValueError as exc:
            raise OptionError("attach", f"the file name {exc}; attachment_name_encoding=rfc2231 writes it in UTF-8") from None


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


class Envelope(t.NamedTuple):
    """One message as the server sees it: envelope sender, recipients and the exact bytes after DATA."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str | None = None
