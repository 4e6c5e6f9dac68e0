# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Japanese mail as SMAIL and Japanese mail clients write it: ISO-2022-JP encoded headers, and attachment names as
RFC 2047 encoded words.

Messages use policy ``email.policy.SMTP`` (never compat32). This file is private to the collection and has no
Ansible imports.
"""

from __future__ import annotations

import base64
import functools
import typing as t
from email.headerregistry import Address, AddressHeader, Group
from email.message import EmailMessage

from ansible_collections.smail.xoauth2.plugins.module_utils._mime.downgrade import rewrite_headers

_MAX_LINE = 78  # RFC 5322 line length, the one policy SMTP folds to
_MAX_WORD = 75  # RFC 2047 limit for one encoded word
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")

HeaderValue = t.Any  # a str as parsed or set with set_raw, or a header object from the registry


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

    rewrite_headers(msg, transform=transform)


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
        rewrite_headers(part, transform=transform)


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
