# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The MIME helpers: 8bit detection, the 7bit downgrade, ISO-2022-JP headers and inline images."""

from __future__ import annotations

import base64
import email
from email import policy
from email.header import Header, decode_header, make_header
from email.headerregistry import Address, Group
from email.message import EmailMessage

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import mime as _mime
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.mime import InlineImage

DATE = "Wed, 02 Dec 2026 02:32:23 +0000"
MESSAGE_ID = "<1234.5678@example.com>"


def new_message(subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address("Sender", addr_spec="sender@example.com")
    msg["To"] = Address(addr_spec="rcpt@example.com")
    msg["Subject"] = subject
    msg["Date"] = DATE
    msg["Message-ID"] = MESSAGE_ID
    return msg


def wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=policy.SMTP)


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def leaves(msg: EmailMessage) -> list[EmailMessage]:
    return [part for part in msg.walk() if not part.is_multipart()]


def assert_same_content(original: bytes, downgraded: bytes) -> None:
    before, after = parsed(original), parsed(downgraded)
    assert [p.get_content_type() for p in before.walk()] == [p.get_content_type() for p in after.walk()]
    for old, new in zip(leaves(before), leaves(after)):
        assert new.get_content() == old.get_content()
        assert new.get_filename() == old.get_filename()
        assert new["Content-Transfer-Encoding"] in ("7bit", "quoted-printable", "base64")


def assert_lines_fit(data: bytes) -> None:
    for line in header_block(data).split(b"\r\n"):
        assert len(line) <= 78, line


class TestHas8bit:
    def test_ascii(self):
        assert not _mime.has_8bit(b"Subject: hi\r\n\r\nbody\r\n")

    def test_one_high_byte(self):
        assert _mime.has_8bit(b"Subject: hi\r\n\r\nb\x80dy\r\n")


class TestDowngrade:
    def test_7bit_message_is_byte_identical(self):
        msg = new_message()
        msg.set_content("plain ascii\n")
        msg.add_attachment(b"\x00\xff" * 40, maintype="application", subtype="octet-stream", filename="a.bin")
        data = wire(msg)
        assert _mime.downgrade_to_7bit(data) is data

    def test_iso_2022_jp_body_is_already_7bit(self):
        msg = new_message()
        msg.set_content("日本語の本文です。\n", charset="iso-2022-jp")
        data = wire(msg)
        assert not _mime.has_8bit(data)
        assert _mime.downgrade_to_7bit(data) == data
        assert parsed(data).get_content() == "日本語の本文です。\r\n"

    def test_utf8_text_becomes_quoted_printable(self):
        msg = new_message()
        msg.set_content("héllo wörld\n", charset="utf-8")
        data = wire(msg)
        assert b"Content-Transfer-Encoding: 8bit" in data
        result = _mime.downgrade_to_7bit(data)
        assert not _mime.has_8bit(result)
        assert b"Content-Transfer-Encoding: quoted-printable\r\n" in result
        assert b"h=C3=A9llo w=C3=B6rld\r\n" in result
        assert_same_content(data, result)

    def test_headers_kept_in_order_and_unchanged(self):
        msg = new_message(subject="Grüße")
        msg["X-Custom"] = "kept"
        msg.set_content("Grüße\n", charset="utf-8")
        data = wire(msg)
        result = _mime.downgrade_to_7bit(data)
        before = header_block(data).replace(b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: quoted-printable")
        assert header_block(result) == before
        assert parsed(result)["Message-ID"] == MESSAGE_ID
        assert parsed(result)["Date"] == DATE

    def test_crlf_line_ends(self):
        data = (b"From: a@example.com\nSubject: s\nContent-Type: text/plain; charset=utf-8\n"
                b"Content-Transfer-Encoding: 8bit\n\nl\xc3\xadne one\nline two\n")
        result = _mime.downgrade_to_7bit(data)
        assert b"\n" not in result.replace(b"\r\n", b"")
        assert result.endswith(b"l=C3=ADne one\r\nline two\r\n")

    def test_alternative_with_attachments(self):
        msg = new_message()
        msg.set_content("Grüße, see the attachment.\n", charset="utf-8")
        msg.add_alternative("<p>Grüße, see the <b>attachment</b>.</p>\n", subtype="html", charset="utf-8")
        msg.add_attachment("Ünïcode text attachment\n", subtype="plain", charset="utf-8", cte="8bit", filename="note.txt")
        msg.add_attachment(bytes(range(256)), maintype="application", subtype="octet-stream", filename="data.bin")
        data = wire(msg)
        result = _mime.downgrade_to_7bit(data)
        assert not _mime.has_8bit(result)
        assert_same_content(data, result)
        assert parsed(result).get_body(("html",)).get_content() == "<p>Grüße, see the <b>attachment</b>.</p>\r\n"
        assert [p.get_content_type() for p in parsed(result).walk()] == [
            "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/plain", "application/octet-stream"]

    def test_long_utf8_lines(self):
        line = "長い行です。" * 60
        data = (b"From: a@example.com\r\nSubject: long\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n\r\n" + line.encode() + b"\r\nshort\r\n")
        result = _mime.downgrade_to_7bit(data)
        assert not _mime.has_8bit(result)
        assert max(len(x) for x in result.split(b"\r\n")) <= 76
        assert parsed(result).get_content() == line + "\r\nshort\r\n"

    @pytest.mark.parametrize("body", [".\r\n.dot first\r\nFrom me\r\né\r\n", "From here\r\n..\r\nü\r\n"])
    def test_dot_and_from_lines(self, body):
        data = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body.encode())
        result = _mime.downgrade_to_7bit(data)
        assert not _mime.has_8bit(result)
        assert parsed(result).get_content() == body
        assert b"\r\n.\r\n" not in result  # a lone dot line would end DATA early without dot-stuffing

    def test_binary_part_becomes_base64(self):
        data = (b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: application/x-thing\r\n"
                b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x01\xfe\xff")
        result = _mime.downgrade_to_7bit(data)
        assert b"Content-Transfer-Encoding: base64\r\n" in result
        assert parsed(result).get_content() == b"\x00\x01\xfe\xff"

    def test_bare_cr_in_text_kept_by_base64(self):
        data = (b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: binary\r\n\r\nbare\rcr \xc3\xa9")
        result = _mime.downgrade_to_7bit(data)
        assert b"Content-Transfer-Encoding: base64\r\n" in result
        assert parsed(result).get_payload(decode=True) == b"bare\rcr \xc3\xa9"

    def test_utf8_headers_become_encoded_words(self):
        data = ("From: 山田 <yamada@example.jp>\r\nTo: b@example.com\r\nSubject: 日本語の件名\r\n"
                f"Message-ID: {MESSAGE_ID}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Disposition: inline; filename=\"メモ.txt\"\r\n\r\n本文\r\n").encode()
        result = _mime.downgrade_to_7bit(data)
        assert not _mime.has_8bit(result)
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
            _mime.downgrade_to_7bit(data)


def encoded_words(value: str) -> list[str]:
    return value.split()


class TestJapaneseHeaders:
    def test_short_subject_as_header_encodes_it(self):
        msg = new_message(subject="会議のお知らせ")
        _mime.japanese_headers(msg)
        data = wire(msg)
        expected = Header("会議のお知らせ", "iso-2022-jp").encode()
        assert expected.startswith("=?iso-2022-jp?b?")
        assert f"Subject: {expected}\r\n".encode() in data
        assert parsed(data)["Subject"] == "会議のお知らせ"

    def test_ascii_values_stay_plain(self):
        msg = new_message(subject="Weekly report")
        before = wire(msg)
        _mime.japanese_headers(msg)
        assert wire(msg) == before

    def test_mixed_subject(self):
        msg = new_message(subject="Re: 会議 [ID 42]")
        _mime.japanese_headers(msg)
        data = wire(msg)
        assert b"utf-8" not in header_block(data)
        assert parsed(data)["Subject"] == "Re: 会議 [ID 42]"

    def test_long_subject_folds_between_encoded_words(self):
        subject = ("来週月曜日の午前十時から第三会議室にて定例会議を開催しますので"
                   "ご出席をお願いします（資料は事前に共有します）")
        msg = new_message(subject=subject)
        _mime.japanese_headers(msg)
        data = wire(msg)
        assert_lines_fit(data)
        raw = data.split(b"Subject: ", 1)[1].split(b"\r\nDate:", 1)[0].decode("ascii")
        lines = raw.split("\r\n")
        assert len(lines) >= 3
        assert all(line.startswith(" =?iso-2022-jp?b?") for line in lines[1:])
        for word in encoded_words(raw):
            assert word.startswith("=?iso-2022-jp?b?") and word.endswith("?=") and len(word) <= 75
        assert parsed(data)["Subject"] == subject

    def test_display_names(self):
        msg = new_message()
        msg.replace_header("From", Address("山田 太郎", addr_spec="taro@example.jp"))
        _mime.japanese_headers(msg)
        data = wire(msg)
        name = Header("山田 太郎", "iso-2022-jp").encode()
        assert f"From: {name} <taro@example.jp>\r\n".encode() in data
        assert parsed(data)["From"].addresses[0].display_name == "山田 太郎"

    def test_to_with_several_japanese_names_folds_between_addresses(self):
        people = [Address("鈴木 一郎", addr_spec="ichiro@example.jp"), Address("Doe, John", addr_spec="john@example.com"),
                  Address("佐藤 花子", addr_spec="hanako@example.jp"), Address(addr_spec="plain@example.com"),
                  Address("高橋 健太郎さん", addr_spec="kentaro@example.jp")]
        msg = new_message()
        msg.replace_header("To", people)
        msg["Cc"] = Address("田中", addr_spec="tanaka@example.jp")
        msg["Reply-To"] = Address("Help Desk", addr_spec="help@example.com")
        _mime.japanese_headers(msg)
        data = wire(msg)
        assert_lines_fit(data)
        to_value = data.split(b"\r\nTo: ", 1)[1].split(b"\r\nSubject:", 1)[0]
        assert to_value.count(b"\r\n ") >= 1
        assert all(line.endswith(b",") for line in to_value.split(b"\r\n")[:-1])  # folds come after a comma
        assert b"utf-8" not in header_block(data)
        assert b"Reply-To: Help Desk <help@example.com>\r\n" in data
        back = parsed(data)
        assert [(a.display_name, a.addr_spec) for a in back["To"].addresses] == [
            (a.display_name, a.addr_spec) for a in people]
        assert back["Cc"].addresses[0].display_name == "田中"

    def test_survives_reading_and_second_call(self):
        msg = new_message(subject="会議のお知らせ")
        _mime.japanese_headers(msg)
        once = wire(msg)
        assert str(msg["Subject"]) == "会議のお知らせ"
        _mime.japanese_headers(msg)
        assert wire(msg) == once

    def test_order_of_headers_kept(self):
        msg = new_message(subject="件名")
        msg.set_content("本文\n", charset="iso-2022-jp")
        _mime.japanese_headers(msg)
        assert list(msg.keys()) == ["From", "To", "Subject", "Date", "Message-ID",
                                    "Content-Type", "Content-Transfer-Encoding", "MIME-Version"]
        assert not _mime.has_8bit(wire(msg))

    @pytest.mark.parametrize("value", ["髙橋さん", "𠮷野家", "①番"])
    def test_character_outside_jis_x_0208(self, value):
        msg = new_message(subject=value)
        before = wire(msg)
        with pytest.raises(ValueError, match="iso-2022-jp"):
            _mime.japanese_headers(msg)
        assert wire(msg) == before  # nothing half rewritten

    def test_display_name_outside_jis_x_0208(self):
        msg = new_message()
        msg.replace_header("To", Address("髙橋", addr_spec="t@example.jp"))
        with pytest.raises(ValueError):
            _mime.japanese_headers(msg)

    def test_unknown_charset(self):
        with pytest.raises(ValueError, match="unknown character set"):
            _mime.japanese_headers(new_message(subject="件名"), charset="no-such-charset")

    def test_long_display_name_splits_into_encoded_words(self):
        name = "とても長い表示名を持つ宛先のかたの名前でございます本当に長いです"
        msg = new_message()
        msg.replace_header("To", Address(name, addr_spec="kentaro.takahashi@example.co.jp"))
        _mime.japanese_headers(msg)
        data = wire(msg)
        assert_lines_fit(data)
        raw = data.split(b"\r\nTo: ", 1)[1].split(b"\r\nSubject:", 1)[0].decode("ascii")
        phrase, angle_addr = raw.rsplit(" ", 1)
        assert angle_addr == "<kentaro.takahashi@example.co.jp>"
        assert len(encoded_words(phrase)) >= 2
        # RFC 2047 decoding drops the space between encoded words (policy.default's address parser keeps one).
        assert str(make_header(decode_header(phrase))) == name

    def test_group_names(self):
        msg = new_message()
        msg.replace_header("To", [Group("営業部", [Address("鈴木", addr_spec="s@example.jp"), Address(addr_spec="b@example.jp")]),
                                  Address("Help", addr_spec="help@example.com")])
        _mime.japanese_headers(msg)
        back = parsed(wire(msg))["To"]
        assert back.groups[0].display_name == "営業部"
        assert [(a.display_name, a.addr_spec) for a in back.addresses] == [
            ("鈴木", "s@example.jp"), ("", "b@example.jp"), ("Help", "help@example.com")]


# A 1x1 PNG and the start of a GIF: real image bytes, to check they come back unchanged.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"


class TestInlineImages:
    def html_message(self, html: str = '<p><img src="cid:logo"></p>') -> EmailMessage:
        msg = new_message()
        msg.set_content("text\n")
        msg.add_alternative(html, subtype="html")
        return msg

    def images(self, tmp_path, *specs):
        images = []
        for name, data, cid, mime_type in specs:
            path = tmp_path / name
            if data is not None:
                path.write_bytes(data)
            images.append(InlineImage(path=str(path), cid=cid, mime_type=mime_type))
        return images

    def test_the_html_and_its_images_become_one_related_part(self, tmp_path):
        msg = self.html_message('<p><img src="cid:logo"><img src="cid:chart.1@example.com"></p>')
        images = self.images(tmp_path, ("logo.png", PNG, "logo", None), ("chart", GIF, "chart.1@example.com", "image/gif"))
        _mime.relate_inline_images(msg.get_body(("html",)), images)
        back = parsed(wire(msg))
        assert back.get_content_type() == "multipart/alternative"
        text, related = back.get_payload()
        assert text.get_content_type() == "text/plain"
        assert related.get_content_type() == "multipart/related"
        # RFC 2387: the type parameter names the root part, which comes first.
        assert related.get_param("type") == "text/html"
        root, logo, chart = related.get_payload()
        assert root.get_content_type() == "text/html" and 'src="cid:logo"' in root.get_content()
        assert (logo.get_content_type(), logo["Content-ID"], logo.get_content_disposition(), logo.get_filename()) == (
            "image/png", "<logo>", "inline", "logo.png")
        assert (chart.get_content_type(), chart["Content-ID"], chart.get_content_disposition()) == (
            "image/gif", "<chart.1@example.com>", "inline")
        assert logo.get_content() == PNG and chart.get_content() == GIF
        assert logo["Content-Transfer-Encoding"] == "base64"
        # get_body() finds the HTML inside the related part, as mail clients do.
        assert back.get_body(("html",)) is root

    @pytest.mark.parametrize(("spec", "option", "problem"), [
        (("missing.png", None, "logo", None), "inline[1].path", "cannot read"),
        (("report.pdf", b"%PDF-1.7", "logo", None), "inline[1].path", "not an image by its name (application/pdf)"),
        (("logo.noext", PNG, "logo", None), "inline[1].mime_type", "cannot be guessed"),
        (("logo.png", PNG, "logo", "text/html"), "inline[1].mime_type", "not an image type"),
        (("logo.png", PNG, "logo", "image/"), "inline[1].mime_type", "not an image type"),
        (("logo.svgz", PNG, "logo", None), "inline[1].mime_type", "cannot be guessed"),
        (("logo.png", PNG, "<logo>", None), "inline[1].cid", "without angle brackets"),
        (("logo.png", PNG, "my logo", None), "inline[1].cid", "is not a Content-ID"),
        (("logo.png", PNG, "", None), "inline[1].cid", "is not a Content-ID"),
        (("logo.png", PNG, "first", None), "inline[1].cid", "already the cid of inline[0]"),
        (("lo\u2028go.png", PNG, "logo", None), "inline[1].path", "line break"),
    ])
    def test_bad_images_name_the_option_and_leave_the_message_alone(self, tmp_path, spec, option, problem):
        msg = self.html_message()
        before = wire(msg)
        images = self.images(tmp_path, ("first.png", PNG, "first", None), spec)
        with pytest.raises(OptionError) as info:
            _mime.relate_inline_images(msg.get_body(("html",)), images)
        assert info.value.option == option and problem in info.value.problem
        assert wire(msg) == before
