# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Wire-format helpers for the SMTP core: a 7bit downgrade for servers without 8BITMIME,
ISO-2022-JP encoded headers written the way SMAIL and Japanese mail clients write them, and the inline
images of an HTML body.

Messages use policy ``email.policy.SMTP`` (never compat32). This file is private to the
collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import binascii
import email
import functools
import os
import re
import typing as t
from email import policy
from email.headerregistry import Address, AddressHeader, Group
from email.message import EmailMessage, Message, MIMEPart
from html.parser import HTMLParser

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError

_MAX_LINE = 78  # RFC 5322 line length, the one policy SMTP folds to
_MAX_WORD = 75  # RFC 2047 limit for one encoded word
_SAFE_ENCODINGS = ("7bit", "quoted-printable", "base64")
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")
_BARE_CR = re.compile(rb"\r(?!\n)")
# Keeps unchanged headers as they were parsed: only the values this module rewrites are folded anew.
_AS_PARSED = policy.SMTP.clone(refold_source="none")

HeaderValue = t.Any  # a str as parsed or set with set_raw, or a header object from the registry


class InlineImage(t.NamedTuple):
    """An image of an HTML body (the ``inline`` option, as community.general.mail has it since 13.3.0)."""

    path: str
    #: The Content-ID without its angle brackets: the body refers to it as ``cid:<cid>``.
    cid: str
    #: ``image/png`` and so on; guessed from the file name when None.
    mime_type: str | None = None


def has_8bit(data: bytes) -> bool:
    """True when the wire form contains any byte > 127 (then it needs 8BITMIME, or a 7bit downgrade)."""
    return not data.isascii()


# --- the 7bit downgrade ---------------------------------------------------------------------


def downgrade_to_7bit(data: bytes) -> bytes:
    """The same message with every 8bit (or binary) leaf part re-encoded as quoted-printable (text) or
    base64 (anything else), every header and the MIME structure kept, Message-ID and Date unchanged;
    CRLF line ends; the result has no byte > 127. A message that is already 7bit comes back
    byte-identical. Headers that contain raw 8bit (RFC 6532 UTF-8 headers) are encoded as RFC 2047
    encoded words. Raise ValueError for a non-ASCII address (it needs SMTPUTF8)."""
    if not has_8bit(data):
        return data
    msg = email.message_from_bytes(data, policy=_AS_PARSED)
    for part in msg.walk():
        _rewrite_headers(part, transform=_encoded_8bit_header)
        if part.is_multipart():
            _downgrade_container(part)
        elif _needs_reencoding(part):
            _reencode_leaf(part)
    wire = msg.as_bytes(policy=_AS_PARSED)
    if has_8bit(wire):
        raise ValueError("the message still has 8bit data after the 7bit downgrade")
    return wire


def _rewrite_headers(msg: Message, *, transform: t.Callable[[str, HeaderValue], HeaderValue | None]) -> None:
    """Replace each header value for which ``transform`` returns a new one, keeping every header's place."""
    headers = list(msg.raw_items())
    replaced = [(name, transform(name, value)) for name, value in headers]
    if all(new is None for _name, new in replaced):
        return
    for name in {name for name, _value in headers}:
        del msg[name]
    for (name, old), (_name, new) in zip(headers, replaced):
        msg.set_raw(name, old if new is None else new)


def _encoded_8bit_header(name: str, value: HeaderValue) -> HeaderValue | None:
    """A header object (folded with encoded words on output) for a value parsed with raw 8bit bytes."""
    if not isinstance(value, str) or value.isascii():
        return None
    # RFC 6532 headers are UTF-8; anything else cannot be told apart, so it shows as U+FFFD.
    text = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    header = policy.SMTP.header_store_parse(name, "".join(text.splitlines()))[1]
    for address in getattr(header, "addresses", ()):
        if not address.addr_spec.isascii():
            raise ValueError(f"{name}: the address {address.addr_spec!r} needs SMTPUTF8, it has no 7bit form")
    return header


def _downgrade_container(part: Message) -> None:
    # A multipart or message/* whose children are now 7bit is itself 7bit (RFC 2045 6.4).
    if part.get("Content-Transfer-Encoding", "7bit").strip().lower() not in _SAFE_ENCODINGS:
        part.replace_header("Content-Transfer-Encoding", "7bit")
    for attribute in ("preamble", "epilogue"):
        text = getattr(part, attribute)
        if text is not None and not text.isascii():
            setattr(part, attribute, text.encode("ascii", "replace").decode("ascii"))


def _needs_reencoding(part: Message) -> bool:
    encoding = part.get("Content-Transfer-Encoding", "7bit").strip().lower()
    payload = part.get_payload()
    return encoding not in _SAFE_ENCODINGS or (isinstance(payload, str) and not payload.isascii())


def _reencode_leaf(part: Message) -> None:
    """Re-encode one leaf part's body: quoted-printable for text, base64 for anything else."""
    body = t.cast(bytes, part.get_payload(decode=True) or b"")
    # A bare CR would come back as a line break from quoted-printable; base64 keeps it.
    if part.get_content_maintype() == "text" and not _BARE_CR.search(body):
        encoding, encoded = "quoted-printable", binascii.b2a_qp(body, istext=True).decode("ascii")
    else:
        encoding, encoded = "base64", base64.encodebytes(body).decode("ascii")
    part.set_payload(encoded)
    if "Content-Transfer-Encoding" in part:
        part.replace_header("Content-Transfer-Encoding", encoding)
    else:
        part["Content-Transfer-Encoding"] = encoding


# --- ISO-2022-JP headers --------------------------------------------------------------------


def japanese_headers(msg: EmailMessage, charset: str = "iso-2022-jp") -> None:
    """Rewrite Subject and the display names in From, To, Cc and Reply-To of ``msg`` as ISO-2022-JP 'B'
    encoded words (=?iso-2022-jp?b?...?=), the way SMAIL and Japanese mail clients write them, instead
    of the UTF-8 encoded words that policy SMTP would produce; ASCII-only values stay plain; lines stay
    within 78 characters (folded with CRLF + space between encoded words / between addresses); the
    values survive msg.as_bytes(policy=policy.SMTP) unchanged. Raise ValueError when a value cannot
    be encoded in ``charset``."""
    try:
        "".encode(charset)
    except LookupError:
        raise ValueError(f"unknown character set {charset!r}") from None

    def transform(name: str, value: HeaderValue) -> str | None:
        header = msg.policy.header_fetch_parse(name, value)
        if name.lower() == "subject":
            return _japanese_subject(name, str(header), charset=charset)
        if name.lower() in _ADDRESS_HEADERS:
            return _japanese_addresses(name, t.cast(AddressHeader, header), charset=charset)
        return None

    _rewrite_headers(msg, transform=transform)


def _japanese_subject(name: str, subject: str, *, charset: str) -> str | None:
    if subject.isascii():
        return None
    folder = _HeaderFolder(name=name, charset=charset)
    folder.add_encoded(subject)
    return folder.value()


def _japanese_addresses(name: str, header: AddressHeader, *, charset: str) -> str | None:
    groups = header.groups
    phrases = [group.display_name for group in groups] + [a.display_name for group in groups for a in group.addresses]
    if all(not phrase or phrase.isascii() for phrase in phrases):
        return None
    folder = _HeaderFolder(name=name, charset=charset)
    for index, group in enumerate(groups):
        separator = "," if index < len(groups) - 1 else ""
        if group.display_name is None:
            _add_address(folder, group.addresses[0], separator=separator)
            continue
        _add_phrase(folder, group.display_name, quoted=str(Group(group.display_name))[:-2])
        folder.add_plain(":")
        for position, address in enumerate(group.addresses):
            _add_address(folder, address, separator="," if position < len(group.addresses) - 1 else "")
        folder.add_plain(";" + separator)
    return folder.value()


def _add_address(folder: _HeaderFolder, address: Address, *, separator: str) -> None:
    if not address.addr_spec.isascii():
        raise ValueError(f"the address {address.addr_spec!r} is not ASCII")
    folder.add_unit(lambda into: _lay_out_address(into, address, separator=separator))


def _lay_out_address(folder: _HeaderFolder, address: Address, *, separator: str) -> None:
    angle_addr = f"<{address.addr_spec}>{separator}"
    if not address.display_name:
        folder.add_plain(address.addr_spec + separator)
        return
    # The registry quotes an ASCII display name that needs it; its str() ends with " <addr-spec>".
    suffix = f" <{address.addr_spec}>"
    _add_phrase(folder, address.display_name, quoted=str(address)[:-len(suffix)])
    folder.add_plain(angle_addr)


def _add_phrase(folder: _HeaderFolder, phrase: str, *, quoted: str) -> None:
    """Add a display name: encoded words when it is not ASCII, else ``quoted`` (its form in the header)."""
    if not phrase.isascii():
        folder.add_encoded(phrase)
    elif '"' in quoted:
        folder.add_plain(quoted)  # a quoted string stays whole
    else:
        for word in quoted.split():
            folder.add_plain(word)


class _HeaderFolder:
    """Lays a header value out as tokens on lines of at most 78 characters, CRLF + space between lines."""

    def __init__(self, *, name: str, charset: str) -> None:
        self.name = name
        self.charset = charset
        self.lines = [f"{name}:"]

    def add_plain(self, token: str) -> None:
        """Add a token that must not be split, on this line if it fits, else on a new one."""
        if not token:
            return
        if len(self.lines[-1]) + 1 + len(token) <= _MAX_LINE or self._line_is_empty():
            self.lines[-1] += " " + token
        else:
            self.lines.append(" " + token)

    def add_unit(self, lay_out: t.Callable[[_HeaderFolder], None]) -> None:
        """Lay out tokens that belong together (one address): on a new line when they fit there but not here."""
        def lines_used(start: list[str]) -> int:
            trial = _HeaderFolder(name=self.name, charset=self.charset)
            trial.lines = list(start)
            lay_out(trial)
            return len(trial.lines) - len(start) + 1
        if not self._line_is_empty() and lines_used(self.lines) > 1 and lines_used([""]) == 1:
            self.lines.append("")
        lay_out(self)

    def add_encoded(self, text: str) -> None:
        """Add ``text`` as one or more encoded words, each as long as the room left on its line allows."""
        while text:
            room = min(_MAX_WORD, _MAX_LINE - len(self.lines[-1]) - 1)
            count = self._chars_that_fit(text, room)
            if count == 0 and not self._line_is_empty():
                self.lines.append("")
                continue
            count = max(count, 1)  # an empty continuation line always holds one character's word
            self.lines[-1] += " " + self._encoded_word(text[:count])
            text = text[count:]

    def encoded_words(self, text: str, *, room: int) -> list[str]:
        """``text`` as encoded words of at most ``room`` characters each (one character's word when none fits)."""
        words = []
        while text:
            count = max(self._chars_that_fit(text, room), 1)
            words.append(self._encoded_word(text[:count]))
            text = text[count:]
        return words

    def value(self) -> str:
        """The value for ``Message.set_raw``: the lines after ``Name: ``, joined by CRLF."""
        return "\r\n".join(self.lines)[len(self.name) + 2:]

    def _line_is_empty(self) -> bool:
        return self.lines[-1] in ("", f"{self.name}:")

    def _chars_that_fit(self, text: str, room: int) -> int:
        count = 0
        while count < len(text) and len(self._encoded_word(text[:count + 1])) <= room:
            count += 1
        return count

    def _encoded_word(self, text: str) -> str:
        try:
            encoded = text.encode(self.charset)
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start:exc.end]
            raise ValueError(f"{self.name}: {bad!r} cannot be encoded in {self.charset}") from None
        return f"=?{self.charset}?b?{base64.b64encode(encoded).decode('ascii')}?="


# --- attachment names as RFC 2047 encoded words ----------------------------------------------


def encoded_word_attachment_names(msg: EmailMessage, charset: str) -> None:
    """Write each attachment's non-ASCII file name as RFC 2047 'B' encoded words in ``charset`` inside the quoted
    ``filename`` of Content-Disposition and ``name`` of Content-Type (``filename="=?iso-2022-jp?b?...?="``), the form
    SMAIL and Japanese mail clients write and read, instead of policy SMTP's RFC 2231 ``filename*=utf-8''...``.
    ASCII names stay as they are; lines stay within 78 characters. Raise ValueError when a name cannot be encoded
    in ``charset``."""
    for part in msg.iter_attachments():
        filename = part.get_filename()
        if not filename or filename.isascii():
            continue
        words = _encoded_words(filename, charset=charset, name=repr(filename))
        disposition = part.get_content_disposition() or "attachment"
        content_type = part.get_content_type()
        transform = functools.partial(_named_part_header, words=words, disposition=disposition, content_type=content_type)
        _rewrite_headers(part, transform=transform)


def _named_part_header(name: str, _value: HeaderValue, *, words: list[str], disposition: str, content_type: str) -> str | None:
    if name.lower() == "content-disposition":
        return _quoted_words_parameter(disposition, "filename", words)
    if name.lower() == "content-type":
        return _quoted_words_parameter(content_type, "name", words)
    return None


def _quoted_words_parameter(value: str, parameter: str, words: list[str]) -> str:
    """``value;`` then ``parameter="word1`` CRLF `` word2"`` ..., one encoded word a line (the value for set_raw)."""
    lines = [f"{value};", f' {parameter}="{words[0]}']
    lines += [f" {word}" for word in words[1:]]
    lines[-1] += '"'
    return "\r\n".join(lines)


def _encoded_words(text: str, *, charset: str, name: str) -> list[str]:
    """``text`` as encoded words short enough that `` filename="`` + a word + ``";`` fits a 78-character line."""
    return _HeaderFolder(name=name, charset=charset).encoded_words(text, room=_MAX_LINE - len(' filename="";'))


# --- inline images of an HTML body -----------------------------------------------------------

#: The characters of a Content-ID without its angle brackets: RFC 5322 msg-id text (atext, ``.`` and ``@``).
_CONTENT_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+$")
_MIME_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`{|}~-]+$")  # RFC 2045 token


def relate_inline_images(html_part: MIMEPart, images: t.Sequence[InlineImage]) -> None:
    """Turn the ``text/html`` part ``html_part`` into a ``multipart/related`` (RFC 2387, ``type="text/html"``) of the
    HTML and each image, as a base64 ``image/*`` part with ``Content-ID: <cid>`` and ``Content-Disposition: inline``,
    which the HTML shows with ``<img src="cid:...">`` (RFC 2392). Raise OptionError naming ``inline[N].path``,
    ``inline[N].cid`` or ``inline[N].mime_type`` - before anything is changed - for a file that cannot be read, a
    Content-ID that is not one or is given twice, or a type that is not an image's."""
    parts = [_inline_part(index, image, earlier=images[:index]) for index, image in enumerate(images)]
    for image, (maintype, subtype, data) in zip(images, parts):
        html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{image.cid}>", disposition="inline",
                              filename=os.path.basename(image.path))
    html_part.set_param("type", "text/html")


def _inline_part(index: int, image: InlineImage, *, earlier: t.Sequence[InlineImage]) -> tuple[str, str, bytes]:
    """The checked type and the bytes of one inline image."""
    option = f"inline[{index}]"
    if not image.cid or not _CONTENT_ID.match(image.cid):
        raise OptionError(f"{option}.cid", f"{image.cid!r} is not a Content-ID: give it without angle brackets, of "
                                           "letters, digits and !#$%&'*+-/=?^_`{|}~.@ only")
    for position, other in enumerate(earlier):
        if other.cid == image.cid:
            raise OptionError(f"{option}.cid", f"{image.cid!r} is already the cid of inline[{position}]")
    name = os.path.basename(image.path)
    if "\x00" in name or len(f"{name}.".splitlines()) > 1:
        raise OptionError(f"{option}.path", f"the file name {name!r} contains a line break or NUL")
    maintype, subtype = _image_type(option, image)
    try:
        with open(image.path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OptionError(f"{option}.path", f"cannot read {image.path!r}: {exc.strerror}") from None
    return maintype, subtype, data


def _image_type(option: str, image: InlineImage) -> tuple[str, str]:
    if image.mime_type is not None:
        maintype, _slash, subtype = image.mime_type.strip().lower().partition("/")
        if maintype != "image" or not _MIME_TOKEN.match(subtype):
            raise OptionError(f"{option}.mime_type", f"{image.mime_type!r} is not an image type such as image/png; "
                                                     "attach sends other files")
        return maintype, subtype
    import mimetypes  # pylint: disable=import-outside-toplevel  # only a mail with images pays for its tables

    guessed, encoding = mimetypes.guess_type(image.path)
    if guessed is None or encoding is not None:
        raise OptionError(f"{option}.mime_type", f"is required: the type of {image.path!r} cannot be guessed from its "
                                                 "name (set it, for example image/png)")
    maintype, _slash, subtype = guessed.partition("/")
    if maintype != "image":
        raise OptionError(f"{option}.path", f"{image.path!r} is not an image by its name ({guessed}); inline takes "
                                            "images an HTML body shows, attach sends other files")
    return maintype, subtype


# --- the text alternative of an HTML body ----------------------------------------------------

class _TextFromHTML(HTMLParser):
    _BLOCKS: t.ClassVar[set[str]] = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
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
