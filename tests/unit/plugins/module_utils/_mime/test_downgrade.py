# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The 7bit downgrade for servers without 8BITMIME."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from mime_messages import DATE, MESSAGE_ID, header_block, new_message, parsed, wire  # pylint: disable=import-error

from ansible_collections.smail.xoauth2.plugins.module_utils._mime import downgrade as _downgrade


def leaves(msg: EmailMessage) -> list[EmailMessage]:
    return [part for part in msg.walk() if not part.is_multipart()]


def assert_same_content(original: bytes, downgraded: bytes) -> None:
    before, after = parsed(original), parsed(downgraded)
    assert [p.get_content_type() for p in before.walk()] == [p.get_content_type() for p in after.walk()]
    for old, new in zip(leaves(before), leaves(after)):
        assert new.get_content() == old.get_content()
        assert new.get_filename() == old.get_filename()
        assert new["Content-Transfer-Encoding"] in ("7bit", "quoted-printable", "base64")


class TestHas8bit:
    def test_ascii(self):
        assert not _downgrade.has_8bit(b"Subject: hi\r\n\r\nbody\r\n")

    def test_one_high_byte(self):
        assert _downgrade.has_8bit(b"Subject: hi\r\n\r\nb\x80dy\r\n")


class TestDowngrade:
    def test_7bit_message_is_byte_identical(self):
        msg = new_message()
        msg.set_content("plain ascii\n")
        msg.add_attachment(b"\x00\xff" * 40, maintype="application", subtype="octet-stream", filename="a.bin")
        data = wire(msg)
        assert _downgrade.downgrade_to_7bit(data) is data

    def test_iso_2022_jp_body_is_already_7bit(self):
        msg = new_message()
        msg.set_content("日本語の本文です。\n", charset="iso-2022-jp")
        data = wire(msg)
        assert not _downgrade.has_8bit(data)
        assert _downgrade.downgrade_to_7bit(data) == data
        assert parsed(data).get_content() == "日本語の本文です。\r\n"

    def test_utf8_text_becomes_quoted_printable(self):
        msg = new_message()
        msg.set_content("héllo wörld\n", charset="utf-8")
        data = wire(msg)
        assert b"Content-Transfer-Encoding: 8bit" in data
        result = _downgrade.downgrade_to_7bit(data)
        assert not _downgrade.has_8bit(result)
        assert b"Content-Transfer-Encoding: quoted-printable\r\n" in result
        assert b"h=C3=A9llo w=C3=B6rld\r\n" in result
        assert_same_content(data, result)

    def test_headers_kept_in_order_and_unchanged(self):
        msg = new_message(subject="Grüße")
        msg["X-Custom"] = "kept"
        msg.set_content("Grüße\n", charset="utf-8")
        data = wire(msg)
        result = _downgrade.downgrade_to_7bit(data)
        before = header_block(data).replace(b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: quoted-printable")
        assert header_block(result) == before
        assert parsed(result)["Message-ID"] == MESSAGE_ID
        assert parsed(result)["Date"] == DATE

    def test_crlf_line_ends(self):
        data = (b"From: a@example.com\nSubject: s\nContent-Type: text/plain; charset=utf-8\n"
                b"Content-Transfer-Encoding: 8bit\n\nl\xc3\xadne one\nline two\n")
        result = _downgrade.downgrade_to_7bit(data)
        assert b"\n" not in result.replace(b"\r\n", b"")
        assert result.endswith(b"l=C3=ADne one\r\nline two\r\n")

    def test_alternative_with_attachments(self):
        msg = new_message()
        msg.set_content("Grüße, see the attachment.\n", charset="utf-8")
        msg.add_alternative("<p>Grüße, see the <b>attachment</b>.</p>\n", subtype="html", charset="utf-8")
        msg.add_attachment("Ünïcode text attachment\n", subtype="plain", charset="utf-8", cte="8bit", filename="note.txt")
        msg.add_attachment(bytes(range(256)), maintype="application", subtype="octet-stream", filename="data.bin")
        data = wire(msg)
        result = _downgrade.downgrade_to_7bit(data)
        assert not _downgrade.has_8bit(result)
        assert_same_content(data, result)
        assert parsed(result).get_body(("html",)).get_content() == "<p>Grüße, see the <b>attachment</b>.</p>\r\n"
        assert [p.get_content_type() for p in parsed(result).walk()] == [
            "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/plain", "application/octet-stream"]

    def test_long_utf8_lines(self):
        line = "長い行です。" * 60
        data = (b"From: a@example.com\r\nSubject: long\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n\r\n" + line.encode() + b"\r\nshort\r\n")
        result = _downgrade.downgrade_to_7bit(data)
        assert not _downgrade.has_8bit(result)
        assert max(len(x) for x in result.split(b"\r\n")) <= 76
        assert parsed(result).get_content() == line + "\r\nshort\r\n"

    @pytest.mark.parametrize("body", [".\r\n.dot first\r\nFrom me\r\né\r\n", "From here\r\n..\r\nü\r\n"])
    def test_dot_and_from_lines(self, body):
        data = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body.encode())
        result = _downgrade.downgrade_to_7bit(data)
        assert not _downgrade.has_8bit(result)
        assert parsed(result).get_content() == body
        assert b"\r\n.\r\n" not in result  # a lone dot line would end DATA early without dot-stuffing

    def test_binary_part_becomes_base64(self):
        data = (b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: application/x-thing\r\n"
                b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\xfe\xff")
        result = _downgrade.downgrade_to_7bit(data)
        assert b"Content-Transfer-Encoding: base64\r\n" in result
        assert parsed(result).get_content() == b"\x00\x01\xfe\xff"

    def test_bare_cr_in_text_kept_by_base64(self):
        data = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: binary\r\n\r\nbare\rcr \xc3\xa9")
        result = _downgrade.downgrade_to_7bit(data)
        assert b"Content-Transfer-Encoding: base64\r\n" in result
        assert parsed(result).get_payload(decode=True) == b"bare\rcr \xc3\xa9"

    def test_utf8_headers_become_encoded_words(self):
        data = ("From: 山田 <yamada@example.jp>\r\nTo: b@example.com\r\nSubject: 日本語の件名\r\n"
                f"Message-ID: {MESSAGE_ID}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Disposition: inline; filename=\"メモ.txt\"\r\n\r\n本文\r\n").encode()
        result = _downgrade.downgrade_to_7bit(data)
        assert not _downgrade.has_8bit(result)
        assert b"Subject: =?utf-8?" in result
        back = parsed(result)
        assert back["Subject"] == "日本語の件名"
        assert back["From"].addresses[0].display_name == "山田"
        assert back["From"].addresses[0].addr_spec == "yamada@example.jp"
        assert back.get_filename() == "メモ.txt"
        assert back.get_content() == "本文\r\n"
        assert [name for name, _value in back.items()][:4] == ["From", "To", "Subject", "Message-ID"]
        assert b"To: b@example.com\r\n" in result

    def test_non_ascii_address_has_no_7bit_form(self):
        data = "From: a@example.com\r\nTo: 山田 <やまだ@example.jp>\r\nSubject: s\r\n\r\nbody\r\n".encode()
        with pytest.raises(ValueError, match="SMTPUTF8"):
            _downgrade.downgrade_to_7bit(data)
