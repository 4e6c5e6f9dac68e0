# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stepwise sends against the sandbox's servers, and a port that expects implicit TLS."""

from __future__ import annotations

import base64
import json
import socket
import threading
import typing as t
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import endpoint as _smtp_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import replies as _smtp_replies
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import sasl as _smtp_sasl
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import session as _smtp_session
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript


def decoded(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8")


def endpoint(settings, port_key, secure, **kwargs):
    return _smtp_endpoint.SMTPEndpoint(host=settings["host"], port=settings[port_key], secure=secure,
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
    _smtp_endpoint.validate_connection(endpoint, login)
    if check_only:
        with _smtp_session.SMTPSession(endpoint, login, transcript=transcript) as session:
            session.open()
            session.quit()
        return SendResult(msg["Message-ID"], envelope_sender, [], {}, login.mechanism, False)
    envelope = _smtp_message.Envelope(envelope_sender, tuple(recipients), _smtp_message.message_bytes(msg), msg["Message-ID"])
    outcome = _smtp_delivery.deliver_envelopes(endpoint, _smtp_sasl.StaticLogin(login), [envelope], transcript=transcript).outcomes[0]
    if outcome.error is not None:
        raise outcome.error
    return SendResult(msg["Message-ID"], envelope_sender, outcome.accepted, outcome.refused, login.mechanism, True)


def send(settings, login, *, port_key="smtp_ssl_port", secure="ssl", recipients=("ops@example.com",), sender=None,
         transcript=None, check_only=False, **endpoint_kwargs):
    sender = sender or settings["account"]
    spec = _smtp_message.MessageSpec(sender=sender, subject="sandbox test", to=tuple(recipients), body="hello\n")
    return send_once(endpoint(settings, port_key, secure, **endpoint_kwargs), login, _smtp_message.build_message(spec),
                     envelope_sender=sender, recipients=list(recipients), transcript=transcript, check_only=check_only)


@pytest.fixture()
def bearer(sandbox, settings):
    token = sandbox.authority.issue_access_token(settings["account"]).token
    return token


class TestSendAgainstSandbox:
    def test_xoauth2_over_implicit_tls(self, settings, bearer):
        before = len(stored_messages(settings))
        transcript = _smtp_transcript.Transcript()
        result = send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), transcript=transcript)
        assert result.sent and result.recipients == ["ops@example.com"] and result.refused == {}
        messages = stored_messages(settings)
        assert len(messages) == before + 1
        sidecar = json.loads(messages[-1].with_suffix(".json").read_text())
        assert sidecar["auth_mechanism"].upper() == "XOAUTH2"
        assert result.message_id.encode() in messages[-1].read_bytes()

    def test_oauthbearer_over_starttls(self, settings, bearer):
        transcript = _smtp_transcript.Transcript()
        result = send(settings, _smtp_sasl.SASLLogin("oauthbearer", settings["account"], bearer),
                      port_key="smtp_starttls_port", secure="starttls", transcript=transcript)
        assert result.sent
        assert any(line.startswith("C: STARTTLS") for line in transcript.lines)
        sidecar = json.loads(stored_messages(settings)[-1].with_suffix(".json").read_text())
        assert sidecar["auth_mechanism"].upper() == "OAUTHBEARER"

    def test_plain_with_app_password(self, settings):
        assert send(settings, _smtp_sasl.SASLLogin("plain", settings["account"], settings["app_password"])).sent

    def test_login_with_app_password(self, settings):
        transcript = _smtp_transcript.Transcript()
        assert send(settings, _smtp_sasl.SASLLogin("login", settings["account"], settings["app_password"]), transcript=transcript).sent
        assert all(settings["app_password"] not in line for line in transcript.lines)

    def test_transcript_masks_auth_and_token(self, settings, bearer):
        transcript = _smtp_transcript.Transcript()
        send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), transcript=transcript)
        text = "\n".join(transcript.lines)
        sasl = _smtp_sasl.xoauth2_initial_response(settings["account"], bearer)
        assert bearer not in text and sasl not in text
        assert "C: AUTH XOAUTH2 *****" in transcript.lines
        assert any(line.startswith("S: 235") for line in transcript.lines)
        assert "C: MAIL FROM:<%s>" % settings["account"] in text.upper().replace(settings["account"].upper(), settings["account"])

    def test_bad_token_is_smtp_auth_with_gmail_challenge(self, settings):
        transcript = _smtp_transcript.Transcript()
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], "ya29.not-issued"), transcript=transcript)
        error = info.value
        assert (error.code, error.stage, error.may_have_been_delivered) == ("smtp_auth", "auth", False)
        assert error.details["smtp_code"] == 535
        assert error.details["auth_challenge"]["status"] == "400"
        assert "5.7.8" in error.msg
        # the client ended the exchange with an empty line, masked like every SASL line
        assert transcript.lines.count("C: ") == 1

    def test_bad_token_oauthbearer_answers_with_ctrl_a(self, settings):
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("oauthbearer", settings["account"], "bad"),
                 port_key="smtp_starttls_port", secure="starttls")
        assert info.value.code == "smtp_auth"
        assert info.value.details["auth_challenge"]["status"] == "invalid_token"

    def test_untrusted_certificate_is_smtp_tls(self, settings, bearer):
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), port_key="smtp_untrusted_port")
        assert (info.value.code, info.value.stage) == ("smtp_tls", "tls")

    def test_validate_certs_false_accepts_untrusted(self, settings, bearer):
        assert send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), port_key="smtp_untrusted_port",
                    validate_certs=False).sent

    def test_no_starttls_offered_is_smtp_tls(self, settings):
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("none"), port_key="smtp_relay_port", secure="starttls")
        assert info.value.code == "smtp_tls"

    def test_partial_refusal_is_reported(self, settings, bearer):
        result = send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer),
                      recipients=("ok@example.com", "reject@example.com"))
        assert result.recipients == ["ok@example.com"]
        assert result.refused["reject@example.com"].startswith("550")

    def test_all_refused(self, settings, bearer):
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), recipients=("reject@example.com",))
        assert info.value.code == "recipients_refused"
        assert "reject@example.com" in info.value.details["refused"]

    def test_sender_refused(self, settings, bearer):
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), sender="refused@example.com")
        assert (info.value.code, info.value.stage) == ("sender_refused", "mail")

    def test_connection_lost_after_final_dot_is_delivery_unknown(self, settings, bearer):
        before = len(stored_messages(settings))
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), recipients=("drop-after-data@example.com",))
        assert info.value.code == "delivery_unknown"
        assert info.value.may_have_been_delivered is True
        assert len(stored_messages(settings)) == before + 1

    def test_check_only_authenticates_without_sending(self, settings, bearer):
        before = len(stored_messages(settings))
        result = send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), check_only=True)
        assert result.sent is False
        assert len(stored_messages(settings)) == before

    def test_connection_refused_is_smtp_connect(self, settings):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        settings = dict(settings, closed_port=closed_port)
        with pytest.raises(_smtp_replies.SMTPError) as info:
            send(settings, _smtp_sasl.SASLLogin("none"), port_key="closed_port", secure="never")
        assert (info.value.code, info.value.stage) == ("smtp_connect", "connect")

    def test_silent_server_is_smtp_timeout(self, settings):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        thread.start()
        try:
            spec = _smtp_message.MessageSpec(sender="a@example.com", subject="s", to=("b@example.com",))
            # A short timeout: the greeting wait, the TLS probe and the read each take all of it from a silent port.
            silent = _smtp_endpoint.SMTPEndpoint(host="127.0.0.1", port=listener.getsockname()[1], secure="never", timeout=0.1)
            with pytest.raises(_smtp_replies.SMTPError) as info:
                send_once(silent, _smtp_sasl.SASLLogin("none"), _smtp_message.build_message(spec),
                          envelope_sender="a@example.com", recipients=["b@example.com"])
            assert info.value.code == "smtp_timeout"
        finally:
            for conn, _address in accepted:
                conn.close()
            listener.close()


class TestValidateConnection:
    def test_never_refused_for_remote_host_with_auth(self):
        with pytest.raises(OptionError) as info:
            _smtp_endpoint.validate_connection(_smtp_endpoint.SMTPEndpoint(host="smtp.example.com", port=25, secure="never"),
                                               _smtp_sasl.SASLLogin("xoauth2", "u", "t"))
        assert info.value.option == "secure"

    def test_never_allowed_on_loopback(self):
        _smtp_endpoint.validate_connection(_smtp_endpoint.SMTPEndpoint(host="127.0.0.1", port=25, secure="never"), _smtp_sasl.SASLLogin("xoauth2", "u", "t"))
        _smtp_endpoint.validate_connection(_smtp_endpoint.SMTPEndpoint(host="smtp.example.com", port=25, secure="never"), _smtp_sasl.SASLLogin("none"))

    def test_secure_never_on_plain_port_sends(self, settings, bearer):
        assert send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), port_key="smtp_plain_port", secure="never").sent

    def test_sasl_login_repr_hides_secret(self):
        assert "s3cret" not in repr(_smtp_sasl.SASLLogin("plain", "u", "s3cret"))


class TestImplicitTlsPort:
    """A plain session to a port that waits for a TLS handshake (465) fails at once, not after its whole timeout."""

    @pytest.mark.parametrize("secure", ["starttls", "never"])
    def test_it_fails_after_the_first_greeting_wait(self, settings, bearer, monkeypatch, secure):
        # No clock: with a first wait of 0 the port is checked at once, long before the session's own timeout.
        monkeypatch.setattr(_smtp_session, "FIRST_GREETING_WAIT", 0, raising=False)
        transcript = _smtp_transcript.Transcript()
        session = _smtp_session.SMTPSession(endpoint(settings, "smtp_ssl_port", secure, timeout=3),
                                            _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer), transcript=transcript)
        with session, pytest.raises(_smtp_replies.SMTPError) as info:
            session.connect()
        error = info.value
        assert (error.code, error.transient, error.stage) == ("smtp_tls", False, "connect")
        assert "sent no SMTP greeting within 0 s but answers a TLS handshake" in error.msg
        assert f"not secure={secure}" in error.msg and "secure=ssl" in error.hint
        assert any("implicit TLS expected" in line for line in transcript.lines)

    def test_a_plain_port_still_gets_its_greeting(self, settings, bearer, monkeypatch):
        # The check finds no TLS there, and the session goes on with the greeting it then reads.
        monkeypatch.setattr(_smtp_session, "FIRST_GREETING_WAIT", 0, raising=False)
        result = send(settings, _smtp_sasl.SASLLogin("xoauth2", settings["account"], bearer),
                      port_key="smtp_starttls_port", secure="starttls", timeout=3600)
        assert result.sent and result.recipients == ["ops@example.com"]
