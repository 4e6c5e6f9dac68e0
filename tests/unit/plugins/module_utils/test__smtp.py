# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP core: SASL strings, message building, and stepwise sends against the sandbox's servers."""

from __future__ import annotations

import base64
import email
import email.header
import email.headerregistry
import email.message
import json
import socket
import threading
import typing as t
from email import policy
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _mailer, _smtp
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError


def decoded(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8")


class TestSASL:
    def test_xoauth2(self):
        assert decoded(_smtp.xoauth2_initial_response("u@example.com", "tok")) == "user=u@example.com\x01auth=Bearer tok\x01\x01"

    def test_oauthbearer(self):
        raw = decoded(_smtp.oauthbearer_initial_response("u@example.com", "tok", host="smtp.example.com", port=587))
        assert raw == "n,a=u@example.com,\x01host=smtp.example.com\x01port=587\x01auth=Bearer tok\x01\x01"

    def test_plain(self):
        assert decoded(_smtp.plain_initial_response("u", "p")) == "\x00u\x00p"

    def test_error_challenge(self):
        challenge = base64.b64encode(b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}').decode()
        assert _smtp.decode_error_challenge(challenge)["status"] == "400"
        assert _smtp.decode_error_challenge("not base64!") is None


class TestBuildMessage:
    def spec(self, **kwargs):
        values = dict(sender="Deploy Bot <bot@example.com>", subject="Deployed", to=("ops@example.com",), body="done\n")
        values.update(kwargs)
        return _smtp.MessageSpec(**values)

    def parsed(self, msg):
        return email.message_from_bytes(_smtp.message_bytes(msg), policy=policy.default)

    def test_the_message_policy_writes_what_policy_smtp_writes(self):
        # The registry keeps one derived class per header name; the bytes must not change for it.
        headers = [("From", "Deploy Bot <bot@example.com>"), ("To", "Ann <ann@example.com>, ops@example.com"),
                   ("Subject", "Déployé " + "long subject words " * 8), ("X-Run", "42")]
        built = {}
        for name, chosen in (("registry", _smtp.MESSAGE_POLICY), ("stock", policy.SMTP)):
            msg = email.message.EmailMessage(policy=chosen)
            for header, value in headers:
                msg[header] = value
            msg.set_content("ünïcode body\n")
            built[name] = msg.as_bytes(policy=policy.SMTP)
        assert built["registry"] == built["stock"]
        factory = _smtp.MESSAGE_POLICY.header_factory
        assert factory["To"] is factory["to"] and factory["To"] is not factory["Cc"]

    def test_a_remapped_header_type_replaces_the_kept_class(self):
        registry = _smtp._CachingHeaderRegistry()
        kept = registry["X-Tag"]
        registry.map_to_type("x-tag", email.headerregistry.UniqueUnstructuredHeader)
        assert registry["X-Tag"] is not kept and issubclass(registry["X-Tag"], email.headerregistry.UniqueUnstructuredHeader)

    def test_repeated_headers_are_parsed_once_and_each_mail_keeps_its_own(self):
        specs = [self.spec(sender=sender, to=(f"ops{number}@example.com",), subject=f"run {number}", charset=charset)
                 for number, (sender, charset) in enumerate([("Deploy Bot <bot@example.com>", "utf-8"),
                                                             ("Other <other@example.com>", "utf-8"),
                                                             ("Deploy Bot <bot@example.com>", "iso-8859-1"),
                                                             ("Deploy Bot <bot@example.com>", "utf-8")])]
        built = [_smtp.build_message(spec) for spec in specs]
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
            assert _smtp.message_bytes(msg) == stock.as_bytes(policy=policy.SMTP)

    def test_a_header_name_written_in_other_case_keeps_that_case(self):
        registry = _smtp._CachingHeaderRegistry()
        assert registry("From", "a@example.com").name == "From"
        assert registry("from", "a@example.com").name == "from"

    def test_address_parsing_is_remembered_and_still_refuses_bad_input(self):
        assert _smtp.parse_address("Ann <ann@example.com>", option="to") is _smtp.parse_address("Ann <ann@example.com>", option="to")
        for _attempt in range(2):
            with pytest.raises(OptionError) as info:
                _smtp.parse_address("not an address", option="cc")
            assert info.value.option == "cc"

    def test_headers_and_crlf(self):
        msg = _smtp.build_message(self.spec(cc=("Ann <ann@example.com>",), bcc=("hidden@example.com",),
                                            reply_to=("desk@example.com",), message_id_domain="mid.example.com"))
        raw = _smtp.message_bytes(msg)
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
        assert _smtp.envelope_recipients(spec) == ["a@example.com", "b@example.com"]

    def test_utf8_subject_and_display_name(self):
        msg = _smtp.build_message(self.spec(sender="配信 <bot@example.com>", subject="配備完了のお知らせ"))
        raw = _smtp.message_bytes(msg)
        assert raw.isascii()
        parsed = self.parsed(msg)
        assert parsed["Subject"] == "配備完了のお知らせ"
        assert parsed["From"].addresses[0].display_name == "配信"

    def test_iso_2022_jp_body(self):
        msg = _smtp.build_message(self.spec(body="本文です。\n", charset="iso-2022-jp"))
        parsed = self.parsed(msg)
        assert parsed.get_content_charset() == "iso-2022-jp"
        assert "\x1b$B" in _smtp.message_bytes(msg).decode("ascii")
        assert parsed.get_content().replace("\r\n", "\n") == "本文です。\n"

    def test_html_has_text_alternative(self):
        msg = _smtp.build_message(self.spec(subtype="html", body="<h1>Done</h1><p>3 hosts &amp; more</p>"))
        parsed = self.parsed(msg)
        assert parsed.get_content_type() == "multipart/alternative"
        text = parsed.get_body(("plain",)).get_content()
        assert "Done" in text and "3 hosts & more" in text and "<h1>" not in text
        assert "<h1>Done</h1>" in parsed.get_body(("html",)).get_content()

    def test_html_with_explicit_text_alternative(self):
        msg = _smtp.build_message(self.spec(subtype="html", body="<p>x</p>", text_body="* item one\n* item two\n"))
        assert self.parsed(msg).get_body(("plain",)).get_content().replace("\r\n", "\n") == "* item one\n* item two\n"

    def test_inline_images_with_an_attachment(self, tmp_path):
        logo = tmp_path / "logo.png"
        logo.write_bytes(b"\x89PNG\r\n\x1a\n")
        report = tmp_path / "report.csv"
        report.write_text("a,b\n")
        spec = self.spec(subtype="html", body='<p><img src="cid:logo"></p>', attachments=(str(report),),
                         inline=_smtp.inline_images([{"path": str(logo), "cid": "logo"}]))
        parsed = self.parsed(_smtp.build_message(spec))
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
            _smtp.build_message(self.spec(inline=_smtp.inline_images([{"path": str(logo), "cid": "logo"}])))
        assert info.value.option == "inline" and "subtype=html" in info.value.problem

    def test_attachments_with_guessed_types(self, tmp_path):
        report = tmp_path / "report.csv"
        report.write_text("a,b\n1,2\n")
        blob = tmp_path / "data.unknownext"
        blob.write_bytes(b"\x00\x01")
        msg = _smtp.build_message(self.spec(attachments=(str(report), str(blob))))
        parts = {part.get_filename(): part for part in self.parsed(msg).iter_attachments()}
        assert parts["report.csv"].get_content_type() == "text/csv"
        assert parts["data.unknownext"].get_content_type() == "application/octet-stream"
        assert parts["data.unknownext"].get_content() == b"\x00\x01"

    def test_extra_headers(self):
        parsed = self.parsed(_smtp.build_message(self.spec(headers=(("X-Release", "1.2.3"),))))
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
            _smtp.build_message(self.spec(**kwargs))
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
            _smtp.build_message(self.spec(**kwargs))
        assert info.value.option == option and info.value.code == "invalid_option"

    @pytest.mark.parametrize("brk", OTHER_LINE_BREAKS)
    def test_a_line_break_in_an_attachment_name_names_attach(self, tmp_path, brk):
        path = tmp_path / f"report{brk}.txt"
        path.write_text("data\n")
        with pytest.raises(OptionError) as info:
            _smtp.build_message(self.spec(attachments=(str(path),)))
        assert info.value.option == "attach"

    JAPANESE_NAME = "令和七年度_月次報告書_システム監視結果のまとめ_東京第二データセンター.pdf"

    def japanese_attachment(self, tmp_path, **kwargs):
        path = tmp_path / self.JAPANESE_NAME
        path.write_bytes(b"%PDF-1.4\n")
        wire = _smtp.message_bytes(_smtp.build_message(self.spec(attachments=(str(path),), **kwargs)))
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
        wire = _smtp.message_bytes(_smtp.build_message(self.spec(attachments=(str(path),), charset="iso-2022-jp")))
        assert b'filename="report.csv"' in wire and b"=?iso-2022-jp?b?" not in wire

    def test_a_name_iso_2022_jp_cannot_hold_names_attach(self, tmp_path):
        path = tmp_path / "報告_\u00e9t\u00e9.pdf"
        path.write_bytes(b"x")
        with pytest.raises(OptionError) as info:
            _smtp.build_message(self.spec(attachments=(str(path),), charset="iso-2022-jp"))
        assert info.value.option == "attach" and "attachment_name_encoding=rfc2231" in str(info.value)

    def test_an_unknown_attachment_name_encoding_is_refused(self):
        with pytest.raises(OptionError) as info:
            _smtp.build_message(self.spec(attachment_name_encoding="rfc822"))
        assert info.value.option == "attachment_name_encoding"

    def test_a_batch_names_the_message(self):
        with pytest.raises(OptionError) as info:
            _mailer.prepare_envelope(self.spec(subject="a\u2028b"), option_prefix="messages[2].")
        assert info.value.option == "messages[2].subject"


def endpoint(settings, port_key, secure, **kwargs):
    return _smtp.SMTPEndpoint(host=settings["host"], port=settings[port_key], secure=secure,
                              ca_path=settings["ca_path"], **{"timeout": 10, **kwargs})


def stored_messages(settings):
    return sorted(Path(settings["mail_dir"]).glob("*.eml"))


class SendResult(t.NamedTuple):
    """What the server accepted in one send of :func:`send_once`."""

    message_id: str | None
    sender: str
    recipients: list[str]
    refused: dict[str, str]
    auth_mechanism: str
    sent: bool


def send_once(endpoint, login, msg, *, envelope_sender, recipients, transcript=None, check_only=False) -> SendResult:
    """Send ``msg`` once through the core, without retries; with ``check_only`` connect and authenticate only."""
    _smtp.validate_connection(endpoint, login)
    if check_only:
        with _smtp.SMTPSession(endpoint, login, transcript=transcript) as session:
            session.open()
            session.quit()
        return SendResult(msg["Message-ID"], envelope_sender, [], {}, login.mechanism, False)
    envelope = _smtp.Envelope(envelope_sender, tuple(recipients), _smtp.message_bytes(msg), msg["Message-ID"])
    outcome = _smtp.deliver_envelopes(endpoint, _smtp.StaticLogin(login), [envelope], transcript=transcript).outcomes[0]
    if outcome.error is not None:
        raise outcome.error
    return SendResult(msg["Message-ID"], envelope_sender, outcome.accepted, outcome.refused, login.mechanism, True)


def send(settings, login, *, port_key="smtp_ssl_port", secure="ssl", recipients=("ops@example.com",), sender=None,
         transcript=None, check_only=False, **endpoint_kwargs):
    sender = sender or settings["account"]
    spec = _smtp.MessageSpec(sender=sender, subject="sandbox test", to=tuple(recipients), body="hello\n")
    return send_once(endpoint(settings, port_key, secure, **endpoint_kwargs), login, _smtp.build_message(spec),
                     envelope_sender=sender, recipients=list(recipients), transcript=transcript, check_only=check_only)


@pytest.fixture()
def bearer(sandbox, settings):
    token = sandbox.authority.issue_access_token(settings["account"]).token
    return token


class TestSendAgainstSandbox:
    def test_xoauth2_over_implicit_tls(self, settings, bearer):
        before = len(stored_messages(settings))
        transcript = _smtp.Transcript()
        result = send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), transcript=transcript)
        assert result.sent and result.recipients == ["ops@example.com"] and result.refused == {}
        messages = stored_messages(settings)
        assert len(messages) == before + 1
        sidecar = json.loads(messages[-1].with_suffix(".json").read_text())
        assert sidecar["auth_mechanism"].upper() == "XOAUTH2"
        assert result.message_id.encode() in messages[-1].read_bytes()

    def test_oauthbearer_over_starttls(self, settings, bearer):
        transcript = _smtp.Transcript()
        result = send(settings, _smtp.SASLLogin("oauthbearer", settings["account"], bearer),
                      port_key="smtp_starttls_port", secure="starttls", transcript=transcript)
        assert result.sent
        assert any(line.startswith("C: STARTTLS") for line in transcript.lines)
        sidecar = json.loads(stored_messages(settings)[-1].with_suffix(".json").read_text())
        assert sidecar["auth_mechanism"].upper() == "OAUTHBEARER"

    def test_plain_with_app_password(self, settings):
        assert send(settings, _smtp.SASLLogin("plain", settings["account"], settings["app_password"])).sent

    def test_login_with_app_password(self, settings):
        transcript = _smtp.Transcript()
        assert send(settings, _smtp.SASLLogin("login", settings["account"], settings["app_password"]), transcript=transcript).sent
        assert all(settings["app_password"] not in line for line in transcript.lines)

    def test_transcript_masks_auth_and_token(self, settings, bearer):
        transcript = _smtp.Transcript()
        send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), transcript=transcript)
        text = "\n".join(transcript.lines)
        sasl = _smtp.xoauth2_initial_response(settings["account"], bearer)
        assert bearer not in text and sasl not in text
        assert "C: AUTH XOAUTH2 *****" in transcript.lines
        assert any(line.startswith("S: 235") for line in transcript.lines)
        assert "C: MAIL FROM:<%s>" % settings["account"] in text.upper().replace(settings["account"].upper(), settings["account"])

    def test_bad_token_is_smtp_auth_with_gmail_challenge(self, settings):
        transcript = _smtp.Transcript()
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("xoauth2", settings["account"], "ya29.not-issued"), transcript=transcript)
        error = info.value
        assert (error.code, error.stage, error.may_have_been_delivered) == ("smtp_auth", "auth", False)
        assert error.details["smtp_code"] == 535
        assert error.details["auth_challenge"]["status"] == "400"
        assert "5.7.8" in error.msg
        # the client ended the exchange with an empty line, masked like every SASL line
        assert transcript.lines.count("C: ") == 1

    def test_bad_token_oauthbearer_answers_with_ctrl_a(self, settings):
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("oauthbearer", settings["account"], "bad"),
                 port_key="smtp_starttls_port", secure="starttls")
        assert info.value.code == "smtp_auth"
        assert info.value.details["auth_challenge"]["status"] == "invalid_token"

    def test_untrusted_certificate_is_smtp_tls(self, settings, bearer):
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), port_key="smtp_untrusted_port")
        assert (info.value.code, info.value.stage) == ("smtp_tls", "tls")

    def test_validate_certs_false_accepts_untrusted(self, settings, bearer):
        assert send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), port_key="smtp_untrusted_port",
                    validate_certs=False).sent

    def test_no_starttls_offered_is_smtp_tls(self, settings):
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("none"), port_key="smtp_relay_port", secure="starttls")
        assert info.value.code == "smtp_tls"

    def test_partial_refusal_is_reported(self, settings, bearer):
        result = send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer),
                      recipients=("ok@example.com", "reject@example.com"))
        assert result.recipients == ["ok@example.com"]
        assert result.refused["reject@example.com"].startswith("550")

    def test_all_refused(self, settings, bearer):
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), recipients=("reject@example.com",))
        assert info.value.code == "recipients_refused"
        assert "reject@example.com" in info.value.details["refused"]

    def test_sender_refused(self, settings, bearer):
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), sender="refused@example.com")
        assert (info.value.code, info.value.stage) == ("sender_refused", "mail")

    def test_connection_lost_after_final_dot_is_delivery_unknown(self, settings, bearer):
        before = len(stored_messages(settings))
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), recipients=("drop-after-data@example.com",))
        assert info.value.code == "delivery_unknown"
        assert info.value.may_have_been_delivered is True
        assert len(stored_messages(settings)) == before + 1

    def test_check_only_authenticates_without_sending(self, settings, bearer):
        before = len(stored_messages(settings))
        result = send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), check_only=True)
        assert result.sent is False
        assert len(stored_messages(settings)) == before

    def test_connection_refused_is_smtp_connect(self, settings):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        settings = dict(settings, closed_port=closed_port)
        with pytest.raises(_smtp.SMTPError) as info:
            send(settings, _smtp.SASLLogin("none"), port_key="closed_port", secure="never")
        assert (info.value.code, info.value.stage) == ("smtp_connect", "connect")

    def test_silent_server_is_smtp_timeout(self, settings):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        thread.start()
        try:
            spec = _smtp.MessageSpec(sender="a@example.com", subject="s", to=("b@example.com",))
            # A short timeout: the greeting wait, the TLS probe and the read each take all of it from a silent port.
            silent = _smtp.SMTPEndpoint(host="127.0.0.1", port=listener.getsockname()[1], secure="never", timeout=0.1)
            with pytest.raises(_smtp.SMTPError) as info:
                send_once(silent, _smtp.SASLLogin("none"), _smtp.build_message(spec),
                          envelope_sender="a@example.com", recipients=["b@example.com"])
            assert info.value.code == "smtp_timeout"
        finally:
            for conn, _address in accepted:
                conn.close()
            listener.close()


class TestValidateConnection:
    def test_never_refused_for_remote_host_with_auth(self):
        with pytest.raises(OptionError) as info:
            _smtp.validate_connection(_smtp.SMTPEndpoint(host="smtp.example.com", port=25, secure="never"),
                                      _smtp.SASLLogin("xoauth2", "u", "t"))
        assert info.value.option == "secure"

    def test_never_allowed_on_loopback(self):
        _smtp.validate_connection(_smtp.SMTPEndpoint(host="127.0.0.1", port=25, secure="never"), _smtp.SASLLogin("xoauth2", "u", "t"))
        _smtp.validate_connection(_smtp.SMTPEndpoint(host="smtp.example.com", port=25, secure="never"), _smtp.SASLLogin("none"))

    def test_secure_never_on_plain_port_sends(self, settings, bearer):
        assert send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer), port_key="smtp_plain_port", secure="never").sent

    def test_sasl_login_repr_hides_secret(self):
        assert "s3cret" not in repr(_smtp.SASLLogin("plain", "u", "s3cret"))


class TestReplyClasses:
    @pytest.mark.parametrize(("code", "text", "expected"), [
        (535, "5.7.8 Username and Password not accepted.", (5, 7, 8)),
        (454, "4.7.0 Temporary authentication failure", (4, 7, 0)),
        (550, "4.7.1 broken server", None),  # the class must agree with the reply code (RFC 2034 section 4)
        (452, "Too many recipients", None),
        (250, "2.1.5 OK", (2, 1, 5)),
    ])
    def test_enhanced_status(self, code, text, expected):
        assert _smtp.enhanced_status(code, text) == expected

    @pytest.mark.parametrize(("code", "text", "expected"), [
        (452, "4.5.3 Too many recipients", True),
        (452, "Too many recipients", True),
        (552, "5.5.3 Too many recipients", True),
        (552, "Too many recipients", True),
        (552, "4.5.3 mixed classes", True),  # the broken enhanced code is ignored: 552 at RCPT is read as 452
        (452, "4.2.2 Mailbox full", False),  # deferred, like any 4xx
        (552, "5.2.2 Mailbox full", False),  # refused: the enhanced code names the reason
        (451, "4.3.0 Try later", False),
    ])
    def test_too_many_recipients(self, code, text, expected):
        assert _smtp.too_many_recipients(code, text) is expected

    @pytest.mark.parametrize("mechanism", ["xoauth2", "plain"])
    def test_a_temporary_auth_failure_does_not_blame_the_credentials(self, mechanism):
        temporary = _smtp._auth_hint(mechanism, 454, "4.7.0 Temporary authentication failure")
        final = _smtp._auth_hint(mechanism, 535, "5.7.8 Username and Password not accepted")
        assert "later" in temporary and "check" not in temporary.lower()
        assert "check" in final.lower()

    def test_auth_over_clear_text_gets_the_tls_hint(self):
        assert "secure" in _smtp._auth_hint("plain", 538, "5.7.11 Encryption required for requested authentication mechanism")


class TestImplicitTlsPort:
    """A plain session to a port that waits for a TLS handshake (465) fails at once, not after its whole timeout."""

    @pytest.mark.parametrize("secure", ["starttls", "never"])
    def test_it_fails_after_the_first_greeting_wait(self, settings, bearer, monkeypatch, secure):
        # No clock: with a first wait of 0 the port is checked at once, long before the session's own timeout.
        monkeypatch.setattr(_smtp, "FIRST_GREETING_WAIT", 0, raising=False)
        transcript = _smtp.Transcript()
        session = _smtp.SMTPSession(endpoint(settings, "smtp_ssl_port", secure, timeout=3),
                                    _smtp.SASLLogin("xoauth2", settings["account"], bearer), transcript=transcript)
        with session, pytest.raises(_smtp.SMTPError) as info:
            session.connect()
        error = info.value
        assert (error.code, error.transient, error.stage) == ("smtp_tls", False, "connect")
        assert "sent no SMTP greeting within 0 s but answers a TLS handshake" in error.msg
        assert f"not secure={secure}" in error.msg and "secure=ssl" in error.hint
        assert any("implicit TLS expected" in line for line in transcript.lines)

    def test_a_plain_port_still_gets_its_greeting(self, settings, bearer, monkeypatch):
        # The check finds no TLS there, and the session goes on with the greeting it then reads.
        monkeypatch.setattr(_smtp, "FIRST_GREETING_WAIT", 0, raising=False)
        result = send(settings, _smtp.SASLLogin("xoauth2", settings["account"], bearer),
                      port_key="smtp_starttls_port", secure="starttls", timeout=3600)
        assert result.sent and result.recipients == ["ops@example.com"]
