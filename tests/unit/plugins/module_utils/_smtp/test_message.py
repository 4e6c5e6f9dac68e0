# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Message building: headers, bodies, attachments, inline images, Japanese mail."""

from __future__ import annotations

import base64
import email
import email.header
import email.headerregistry
import email.message
from email import policy

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message


def decoded(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8")


class TestBuildMessage:
    def spec(self, **kwargs):
        values = dict(sender="Deploy Bot <bot@example.com>", subject="Deployed", to=("ops@example.com",), body="done\n")
        values.update(kwargs)
        return _smtp_message.MessageSpec(**values)

    def parsed(self, msg):
        return email.message_from_bytes(_smtp_message.message_bytes(msg), policy=policy.default)

    def test_the_message_policy_writes_what_policy_smtp_writes(self):
        # The registry keeps one derived class per header name; the bytes must not change for it.
        headers = [("From", "Deploy Bot <bot@example.com>"), ("To", "Ann <ann@example.com>, ops@example.com"),
                   ("Subject", "Déployé " + "long subject words " * 8), ("X-Run", "42")]
        built = {}
        for name, chosen in (("registry", _smtp_message.MESSAGE_POLICY), ("stock", policy.SMTP)):
            msg = email.message.EmailMessage(policy=chosen)
            for header, value in headers:
                msg[header] = value
            msg.set_content("ünïcode body\n")
            built[name] = msg.as_bytes(policy=policy.SMTP)
        assert built["registry"] == built["stock"]
        factory = _smtp_message.MESSAGE_POLICY.header_factory
        assert factory["To"] is factory["to"] and factory["To"] is not factory["Cc"]

    def test_a_remapped_header_type_replaces_the_kept_class(self):
        registry = _smtp_message._CachingHeaderRegistry()
        kept = registry["X-Tag"]
        registry.map_to_type("x-tag", email.headerregistry.UniqueUnstructuredHeader)
        assert registry["X-Tag"] is not kept and issubclass(registry["X-Tag"], email.headerregistry.UniqueUnstructuredHeader)

    def test_repeated_headers_are_parsed_once_and_each_mail_keeps_its_own(self):
        specs = [self.spec(sender=sender, to=(f"ops{number}@example.com",), subject=f"run {number}", charset=charset)
                 for number, (sender, charset) in enumerate([("Deploy Bot <bot@example.com>", "utf-8"),
                                                             ("Other <other@example.com>", "utf-8"),
                                                             ("Deploy Bot <bot@example.com>", "iso-8859-1"),
                                                             ("Deploy Bot <bot@example.com>", "utf-8")])]
        built = [_smtp_message.build_message(spec) for spec in specs]
        assert built[0]["From"] is built[3]["From"] and built[0]["Content-Type"] is built[3]["Content-Type"]
        assert built[0]["To"] is not built[3]["To"]
        for spec, msg in zip(specs, built):
            parsed = self.parsed(msg)
            assert parsed["From"] == spec.sender and parsed["To"] == spec.to[0] and parsed["Subject"] == spec.subject
            assert parsed.get_content_charset() == spec.charset
            # What the stock registry would write for the same headers (Date and Message-ID differ per mail).
            stock = email.message.EmailMessage(policy=policy.SMTP)
            for name, value in msg.items():
                stock[name] = str(value)
            stock.set_payload(msg.get_payload())
            assert _smtp_message.message_bytes(msg) == stock.as_bytes(policy=policy.SMTP)

    def test_a_header_name_written_in_other_case_keeps_that_case(self):
        registry = _smtp_message._CachingHeaderRegistry()
        assert registry("From", "a@example.com").name == "From"
        assert registry("from", "a@example.com").name == "from"

    def test_address_parsing_is_remembered_and_still_refuses_bad_input(self):
        assert _smtp_message.parse_address("Ann <ann@example.com>", option="to") is _smtp_message.parse_address("Ann <ann@example.com>", option="to")
        for _attempt in range(2):
            with pytest.raises(OptionError) as info:
                _smtp_message.parse_address("not an address", option="cc")
            assert info.value.option == "cc"

    def test_headers_and_crlf(self):
        msg = _smtp_message.build_message(self.spec(cc=("Ann <ann@example.com>",), bcc=("hidden@example.com",),
                                                    reply_to=("desk@example.com",), message_id_domain="mid.example.com"))
        raw = _smtp_message.message_bytes(msg)
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
        parsed = self.parsed(msg)
        assert parsed["From"] == "Deploy Bot <bot@example.com>"
        assert parsed["Cc"] == "Ann <ann@example.com>"
        assert parsed["Reply-To"] == "desk@example.com"
        assert parsed["Bcc"] is None and b"hidden@example.com" not in raw
        assert parsed["Message-ID"].endswith("@mid.example.com>")
        assert parsed["Date"]

    def test_envelope_includes_bcc_once(self):
        spec = self.spec(to=("a@example.com", "A <a@example.com>"), bcc=("b@example.com",))
        assert _smtp_message.envelope_recipients(spec) == ["a@example.com", "b@example.com"]

    def test_utf8_subject_and_display_name(self):
        msg = _smtp_message.build_message(self.spec(sender="配信 <bot@example.com>", subject="配備完了のお知らせ"))
        raw = _smtp_message.message_bytes(msg)
        assert raw.isascii()
        parsed = self.parsed(msg)
        assert parsed["Subject"] == "配備完了のお知らせ"
        assert parsed["From"].addresses[0].display_name == "配信"

    def test_iso_2022_jp_body(self):
        msg = _smtp_message.build_message(self.spec(body="本文です。\n", charset="iso-2022-jp"))
        parsed = self.parsed(msg)
        assert parsed.get_content_charset() == "iso-2022-jp"
        assert "\x1b$B" in _smtp_message.message_bytes(msg).decode("ascii")
        assert parsed.get_content().replace("\r\n", "\n") == "本文です。\n"

    def test_html_has_text_alternative(self):
        msg = _smtp_message.build_message(self.spec(subtype="html", body="<h1>Done</h1><p>3 hosts &amp; more</p>"))
        parsed = self.parsed(msg)
        assert parsed.get_content_type() == "multipart/alternative"
        text = parsed.get_body(("plain",)).get_content()
        assert "Done" in text and "3 hosts & more" in text and "<h1>" not in text
        assert "<h1>Done</h1>" in parsed.get_body(("html",)).get_content()

    def test_html_with_explicit_text_alternative(self):
        msg = _smtp_message.build_message(self.spec(subtype="html", body="<p>x</p>", text_body="* item one\n* item two\n"))
        assert self.parsed(msg).get_body(("plain",)).get_content().replace("\r\n", "\n") == "* item one\n* item two\n"

    def test_inline_images_with_an_attachment(self, tmp_path):
        logo = tmp_path / "logo.png"
        logo.write_bytes(b"\x89PNG\r\n\x1a\n")
        report = tmp_path / "report.csv"
        report.write_text("a,b\n")
        spec = self.spec(subtype="html", body='<p><img src="cid:logo"></p>', attachments=(str(report),),
                         inline=_smtp_message.inline_images([{"path": str(logo), "cid": "logo"}]))
        parsed = self.parsed(_smtp_message.build_message(spec))
        # multipart/mixed [multipart/alternative [text/plain, multipart/related [text/html, image/png]], text/csv]
        structure = [part.get_content_type() for part in parsed.walk()]
        assert structure == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html",
                             "image/png", "text/csv"]
        image = next(part for part in parsed.walk() if part.get_content_type() == "image/png")
        assert image["Content-ID"] == "<logo>" and image.get_content_disposition() == "inline"
        assert [part.get_filename() for part in parsed.iter_attachments()] == ["report.csv"]

    def test_inline_images_need_an_html_body(self, tmp_path):
        logo = tmp_path / "logo.png"
        logo.write_bytes(b"\x89PNG")
        with pytest.raises(OptionError) as info:
            _smtp_message.build_message(self.spec(inline=_smtp_message.inline_images([{"path": str(logo), "cid": "logo"}])))
        assert info.value.option == "inline" and "subtype=html" in info.value.problem

    def test_attachments_with_guessed_types(self, tmp_path):
        report = tmp_path / "report.csv"
        report.write_text("a,b\n1,2\n")
        blob = tmp_path / "data.unknownext"
        blob.write_bytes(b"\x00\x01")
        msg = _smtp_message.build_message(self.spec(attachments=(str(report), str(blob))))
        parts = {part.get_filename(): part for part in self.parsed(msg).iter_attachments()}
        assert parts["report.csv"].get_content_type() == "text/csv"
        assert parts["data.unknownext"].get_content_type() == "application/octet-stream"
        assert parts["data.unknownext"].get_content() == b"\x00\x01"

    def test_extra_headers(self):
        parsed = self.parsed(_smtp_message.build_message(self.spec(headers=(("X-Release", "1.2.3"),))))
        assert parsed["X-Release"] == "1.2.3"

    @pytest.mark.parametrize("kwargs,option", [
        ({"subject": "a\r\nBcc: victim@example.com"}, "subject"),
        ({"headers": (("X-A", "v\nInjected: 1"),)}, "headers.X-A"),
        ({"headers": (("From", "x@example.com"),)}, "headers"),
        ({"headers": (("Bad Name", "v"),)}, "headers"),
        ({"to": ("not-an-address",)}, "to"),
        ({"sender": "nobody"}, "sender"),
        ({"cc": ("a@example.com\r\nBcc: x@example.com",)}, "cc"),
        ({"subtype": "rtf"}, "subtype"),
        ({"text_body": "plain alternative of nothing"}, "text_body"),
        ({"charset": "no-such-charset"}, "charset"),
        ({"attachments": ("/nonexistent/file.txt",)}, "attach"),
        ({"body": "😀", "charset": "iso-2022-jp"}, "charset"),
    ])
    def test_bad_input_names_the_option(self, kwargs, option):
        with pytest.raises(OptionError) as info:
            _smtp_message.build_message(self.spec(**kwargs))
        assert info.value.option == option

    #: Every character str.splitlines() splits on besides CR and LF; the email package refuses them in a header.
    OTHER_LINE_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")

    def test_the_line_breaks_are_all_that_splitlines_splits_on(self):
        assert [ch for ch in map(chr, range(0x3000)) if len(f"a{ch}b".splitlines()) > 1] == sorted(
            ["\n", "\r", *self.OTHER_LINE_BREAKS])

    @pytest.mark.parametrize("brk", OTHER_LINE_BREAKS)
    @pytest.mark.parametrize(("kwargs", "option"), [
        ({"subject": "a{}b"}, "subject"),
        ({"headers": (("X-Foo", "v{}w"),)}, "headers.X-Foo"),
        ({"to": ("Ann{} <ann@example.com>",)}, "to"),
        ({"sender": "Bot{} <bot@example.com>"}, "sender"),
        ({"reply_to": ("desk{}@example.com",)}, "reply_to"),
        ({"message_id_domain": "mid{}.example.com"}, "message_id_domain"),
    ])
    def test_other_line_breaks_in_a_header_name_the_option(self, kwargs, option, brk):
        kwargs = {key: (value.format(brk) if isinstance(value, str) else tuple(
            tuple(part.format(brk) for part in item) if isinstance(item, tuple) else item.format(brk) for item in value))
            for key, value in kwargs.items()}
        with pytest.raises(OptionError) as info:
            _smtp_message.build_message(self.spec(**kwargs))
        assert info.value.option == option and info.value.code == "invalid_option"

    @pytest.mark.parametrize("brk", OTHER_LINE_BREAKS)
    def test_a_line_break_in_an_attachment_name_names_attach(self, tmp_path, brk):
        path = tmp_path / f"report{brk}.txt"
        path.write_text("data\n")
        with pytest.raises(OptionError) as info:
            _smtp_message.build_message(self.spec(attachments=(str(path),)))
        assert info.value.option == "attach"

    JAPANESE_NAME = "令和七年度_月次報告書_システム監視結果のまとめ_東京第二データセンター.pdf"

    def japanese_attachment(self, tmp_path, **kwargs):
        path = tmp_path / self.JAPANESE_NAME
        path.write_bytes(b"%PDF-1.4\n")
        wire = _smtp_message.message_bytes(_smtp_message.build_message(self.spec(attachments=(str(path),), **kwargs)))
        part = next(email.message_from_bytes(wire, policy=policy.default).iter_attachments())
        return wire, part

    @staticmethod
    def quoted_parameter(raw_header: str, parameter: str) -> str:
        """The quoted value of ``parameter`` as a Japanese mail client reads it: unfolded, the encoded words decoded."""
        unfolded = "".join(raw_header.splitlines())
        quoted = unfolded.split(f'{parameter}="', 1)[1].split('"', 1)[0]
        return str(email.header.make_header(email.header.decode_header(quoted)))

    @pytest.mark.parametrize("kwargs", [{"charset": "iso-2022-jp"}, {"charset": "ISO_2022_JP", "attachment_name_encoding": "auto"},
                                        {"attachment_name_encoding": "rfc2047"}])
    def test_a_japanese_attachment_name_as_rfc_2047_encoded_words_decodes_back(self, tmp_path, kwargs):
        wire, part = self.japanese_attachment(tmp_path, **kwargs)
        charset = kwargs.get("charset", "utf-8")
        raw = part.get("Content-Disposition").split(";", 1)
        assert raw[0] == "attachment" and b"filename*" not in wire
        for header, parameter in (("Content-Disposition", "filename"), ("Content-Type", "name")):
            raw_header = next(value for name, value in part.raw_items() if name == header)
            assert f'{parameter}="=?{charset}?b?' in raw_header
            assert self.quoted_parameter(raw_header, parameter) == self.JAPANESE_NAME
        assert part.get_content_type() == "application/pdf" and part.get_content() == b"%PDF-1.4\n"
        assert all(len(line) <= 78 for line in wire.split(b"\r\n")), "a header line longer than 78 characters"
        if charset.lower().startswith("iso"):
            words = [word for word in wire.split() if word.startswith(b'filename="=?') or word.startswith(b"=?")]
            assert all(base64.b64decode(word.split(b"?")[3]).decode("iso-2022-jp") for word in words)

    @pytest.mark.parametrize("kwargs", [{}, {"charset": "iso-2022-jp", "attachment_name_encoding": "rfc2231"}])
    def test_otherwise_the_name_is_rfc_2231(self, tmp_path, kwargs):
        wire, part = self.japanese_attachment(tmp_path, **kwargs)
        assert b"filename*0*=utf-8''" in wire and b"=?" not in wire.split(b"\r\n\r\n", 1)[1].split(b"%PDF")[0]
        assert part.get_filename() == self.JAPANESE_NAME

    def test_an_ascii_name_stays_plain_in_every_encoding(self, tmp_path):
        path = tmp_path / "report.csv"
        path.write_text("a\n")
        wire = _smtp_message.message_bytes(_smtp_message.build_message(self.spec(attachments=(str(path),), charset="iso-2022-jp")))
        assert b'filename="report.csv"' in wire and b"=?iso-2022-jp?b?" not in wire

    def test_a_name_iso_2022_jp_cannot_hold_names_attach(self, tmp_path):
        path = tmp_path / "報告_\u00e9t\u00e9.pdf"
        path.write_bytes(b"x")
        with pytest.raises(OptionError) as info:
            _smtp_message.build_message(self.spec(attachments=(str(path),), charset="iso-2022-jp"))
        assert info.value.option == "attach" and "attachment_name_encoding=rfc2231" in str(info.value)

    def test_an_unknown_attachment_name_encoding_is_refused(self):
        with pytest.raises(OptionError) as info:
            _smtp_message.build_message(self.spec(attachment_name_encoding="rfc822"))
        assert info.value.option == "attachment_name_encoding"

    def test_a_batch_names_the_message(self):
        with pytest.raises(OptionError) as info:
            _mailer.prepare_envelope(self.spec(subject="a\u2028b"), option_prefix="messages[2].")
        assert info.value.option == "messages[2].subject"
