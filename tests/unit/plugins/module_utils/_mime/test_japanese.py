# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""ISO-2022-JP headers and encoded-word attachment names."""

from __future__ import annotations

from email.header import Header, decode_header, make_header
from email.headerregistry import Address, Group

import pytest
from mime_messages import header_block, new_message, parsed, wire  # pylint: disable=import-error

from ansible_collections.smail.xoauth2.plugins.module_utils._mime import downgrade as _downgrade
from ansible_collections.smail.xoauth2.plugins.module_utils._mime import japanese as _japanese


def assert_lines_fit(data: bytes) -> None:
    for line in header_block(data).split(b"\r\n"):
        assert len(line) <= 78, line


def encoded_words(value: str) -> list[str]:
    return value.split()


class TestJapaneseHeaders:
    def test_short_subject_as_header_encodes_it(self):
        msg = new_message(subject="会議のお知らせ")
        _japanese.japanese_headers(msg)
        data = wire(msg)
        expected = Header("会議のお知らせ", "iso-2022-jp").encode()
        assert expected.startswith("=?iso-2022-jp?b?")
        assert f"Subject: {expected}\r\n".encode() in data
        assert parsed(data)["Subject"] == "会議のお知らせ"

    def test_ascii_values_stay_plain(self):
        msg = new_message(subject="Weekly report")
        before = wire(msg)
        _japanese.japanese_headers(msg)
        assert wire(msg) == before

    def test_mixed_subject(self):
        msg = new_message(subject="Re: 会議 [ID 42]")
        _japanese.japanese_headers(msg)
        data = wire(msg)
        assert b"utf-8" not in header_block(data)
        assert parsed(data)["Subject"] == "Re: 会議 [ID 42]"

    def test_long_subject_folds_between_encoded_words(self):
        subject = ("来週月曜日の午前十時から第三会議室にて定例会議を開催しますので"
                   "ご出席をお願いします（資料は事前に共有します）")
        msg = new_message(subject=subject)
        _japanese.japanese_headers(msg)
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
        _japanese.japanese_headers(msg)
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
        _japanese.japanese_headers(msg)
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
        _japanese.japanese_headers(msg)
        once = wire(msg)
        assert str(msg["Subject"]) == "会議のお知らせ"
        _japanese.japanese_headers(msg)
        assert wire(msg) == once

    def test_order_of_headers_kept(self):
        msg = new_message(subject="件名")
        msg.set_content("本文\n", charset="iso-2022-jp")
        _japanese.japanese_headers(msg)
        assert list(msg.keys()) == ["From", "To", "Subject", "Date", "Message-ID",
                                    "Content-Type", "Content-Transfer-Encoding", "MIME-Version"]
        assert not _downgrade.has_8bit(wire(msg))

    @pytest.mark.parametrize("value", ["髙橋さん", "𠮷野家", "①番"])
    def test_character_outside_jis_x_0208(self, value):
        msg = new_message(subject=value)
        before = wire(msg)
        with pytest.raises(ValueError, match="iso-2022-jp"):
            _japanese.japanese_headers(msg)
        assert wire(msg) == before  # nothing half rewritten

    def test_display_name_outside_jis_x_0208(self):
        msg = new_message()
        msg.replace_header("To", Address("髙橋", addr_spec="t@example.jp"))
        with pytest.raises(ValueError):
            _japanese.japanese_headers(msg)

    def test_unknown_charset(self):
        with pytest.raises(ValueError, match="unknown character set"):
            _japanese.japanese_headers(new_message(subject="件名"), charset="no-such-charset")

    def test_long_display_name_splits_into_encoded_words(self):
        name = "とても長い表示名を持つ宛先のかたの名前でございます本当に長いです"
        msg = new_message()
        msg.replace_header("To", Address(name, addr_spec="kentaro.takahashi@example.co.jp"))
        _japanese.japanese_headers(msg)
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
        _japanese.japanese_headers(msg)
        back = parsed(wire(msg))["To"]
        assert back.groups[0].display_name == "営業部"
        assert [(a.display_name, a.addr_spec) for a in back.addresses] == [
            ("鈴木", "s@example.jp"), ("", "b@example.jp"), ("Help", "help@example.com")]


# A 1x1 PNG and the start of a GIF: real image bytes, to check they come back unchanged.
