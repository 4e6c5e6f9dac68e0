# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP servers as Gmail and Exchange Online answer: AUTH, the mail store, the dedicated listeners."""

from __future__ import annotations

import json
import smtplib
import ssl
import typing as t
import uuid

import pytest

import show_mail
from sandbox_client import (
    GMAIL_OAUTHBEARER_CHALLENGE,
    GMAIL_XOAUTH2_CHALLENGE,
    TIMEOUT,
    b64,
    client_context,
    decoded_challenge,
    fault_uri,
    fetch_access_token,
    logged_in,
    logged_outcomes,
    new_message,
    oauthbearer_response,
    post_form,
    refresh_form,
    stored_count,
    stored_message,
    xoauth2_response,
)
from xoauth2_sandbox.common import ACCESS_TOKEN_LIFETIME_SECONDS

# --------------------------------------------------------------------------------------------------
# SMTP


def test_xoauth2_over_implicit_tls_delivers_and_stores_the_exact_bytes(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    message, marker = new_message(settings["account"], "friend@example.com")
    wire_bytes = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN"]
        assert "chunking" not in client.esmtp_features
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"].upper(), token)) == (235, b"2.7.0 Accepted")
        client.sendmail(settings["account"], ["friend@example.com"], wire_bytes)

    eml_path, sidecar = stored_message(settings, marker)
    assert eml_path.read_bytes() == wire_bytes
    assert sidecar["port"] == "ssl" and sidecar["auth_mechanism"] == "XOAUTH2" and sidecar["account"] == settings["account"]
    assert (sidecar["mail_from"], sidecar["rcpt_tos"]) == (settings["account"], ["friend@example.com"])
    assert token not in eml_path.with_suffix(".json").read_text(encoding="utf-8")


def test_xoauth2_bad_token_gets_gmail_challenge_then_535(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], "ya29.not-issued"))
        assert code == 334 and decoded_challenge(challenge) == GMAIL_XOAUTH2_CHALLENGE
        code, text = client.docmd("")
        assert code == 535
        assert text.splitlines() == [
            b"5.7.8 Username and Password not accepted. For more information, go to",
            b"5.7.8  https://support.google.com/mail/?p=BadCredentials sandbox",
        ]
        assert client.docmd("MAIL", "FROM:<a@example.com>")[0] == 530


def test_xoauth2_user_must_be_the_tokens_account(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    with smtplib.SMTP_SSL(settings["host"], settings["smtp_ssl_port"], context=client_context(settings), timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response("someone.else@example.com", token))[0] == 334
        assert client.docmd("")[0] == 535


def test_xoauth2_without_initial_response_and_with_a_long_token(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        # A 6000-character token fits the raised AUTH line limit and is refused as a token, not as a line.
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], "x" * 6000))[0] == 334
        assert client.docmd("")[0] == 535
        assert client.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert client.docmd(xoauth2_response(settings["account"], token))[0] == 235


@pytest.mark.parametrize(
    "initial_response",
    [
        pytest.param("not*base64", id="undecodable"),
        pytest.param(b64("user=a@example.com auth=Bearer t"), id="no-separators"),
        pytest.param(b64("user=a@example.com\x01auth=Basic t\x01\x01"), id="not-bearer"),
        pytest.param("=", id="empty"),
    ],
)
def test_malformed_xoauth2_is_501_and_the_session_survives(settings: dict[str, t.Any], initial_response: str) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", f"XOAUTH2 {initial_response}")[0] == 501
        assert client.noop()[0] == 250


def test_oauthbearer_over_starttls(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    port = settings["smtp_starttls_port"]
    with smtplib.SMTP(settings["host"], port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features and "starttls" in client.esmtp_features
        assert client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response(settings["account"], token, port))[0] == 530
        client.starttls(context=client_context(settings))
        client.ehlo()
        assert "OAUTHBEARER" in client.esmtp_features["auth"].split()

        code, challenge = client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response(settings["account"], "ya29.not-issued", port))
        assert code == 334 and decoded_challenge(challenge) == GMAIL_OAUTHBEARER_CHALLENGE
        assert client.docmd("AQ==")[0] == 535
        assert client.docmd("AUTH", "OAUTHBEARER " + oauthbearer_response(settings["account"], token, port)) == (235, b"2.7.0 Accepted")
        message, marker = new_message(settings["account"], "friend@example.com")
        client.send_message(message)

    assert stored_message(settings, marker)[1]["auth_mechanism"] == "OAUTHBEARER"


def test_plain_and_login_accept_the_app_password(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(settings["account"], "wrong-password")
        assert refused.value.smtp_code == 535
        client.user, client.password = settings["account"], settings["app_password"]
        assert client.auth("LOGIN", client.auth_login)[0] == 235


def test_expired_token_is_refused(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    expired = sandbox.authority.issue_access_token(settings["account"], lifetime=-1).token
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], expired))[0] == 334
        assert client.docmd("")[0] == 535


def test_error_addresses_are_refused_where_gmail_refuses_them(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.login(settings["account"], settings["app_password"])
        assert client.mail("refused.sender@example.com") == (553, b"5.7.1 Sender address rejected")
        client.rset()
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt("reject.me@example.com") == (550, b"5.1.1 The email account that you tried to reach does not exist.")


def test_drop_after_data_keeps_the_message_but_never_answers(settings: dict[str, t.Any]) -> None:
    message, marker = new_message(settings["account"], "drop-after-data@example.com")
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.login(settings["account"], settings["app_password"])
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.send_message(message)

    assert stored_message(settings, marker)[1]["rcpt_tos"] == ["drop-after-data@example.com"]


def test_untrusted_server_certificate_fails_verification(settings: dict[str, t.Any]) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(settings["host"], settings["smtp_untrusted_port"], context=client_context(settings), timeout=TIMEOUT)


def test_relay_sink_needs_no_auth_and_offers_no_chunking(settings: dict[str, t.Any]) -> None:
    message, marker = new_message("relay.sender@example.com", "reject@example.com")
    with smtplib.SMTP(settings["host"], settings["smtp_relay_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features and "chunking" not in client.esmtp_features
        client.send_message(message)

    sidecar = stored_message(settings, marker)[1]
    assert (sidecar["port"], sidecar["auth_mechanism"], sidecar["account"]) == ("relay", None, None)


def test_show_mail_prints_headers_text_and_other_parts(settings: dict[str, t.Any], capsys: pytest.CaptureFixture[str]) -> None:
    message, marker = new_message(settings["account"], "friend@example.com")
    message.add_alternative("<p>html</p>", subtype="html")
    message.add_attachment(b"\x00" * 10, maintype="application", subtype="octet-stream", filename="blob.bin")
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.login(settings["account"], settings["app_password"])
        client.send_message(message)

    assert show_mail.main(["--state-dir", settings["state_dir"], "--last", "1"]) == 0
    out = capsys.readouterr().out
    assert f"Subject:    {marker}" in out and f"Body of {marker}" in out
    assert "text/html" in out and "blob.bin (application/octet-stream, 10 bytes)" in out


# --------------------------------------------------------------------------------------------------
# dedicated SMTP listeners and 8-bit transport


def test_greeting_421_listener_refuses_after_the_tls_handshake(settings: dict[str, t.Any]) -> None:
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP_SSL(settings["host"], settings["smtp_greeting_421_port"], context=client_context(settings), timeout=TIMEOUT)
    assert (refused.value.smtp_code, refused.value.smtp_error) == (421, b"4.3.2 Service not available, closing transmission channel")


def test_no_starttls_listener_offers_neither_starttls_nor_auth(settings: dict[str, t.Any]) -> None:
    with smtplib.SMTP(settings["host"], settings["smtp_no_starttls_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert "starttls" not in client.esmtp_features and "auth" not in client.esmtp_features
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.starttls(context=client_context(settings))
        assert client.mail(settings["account"])[0] == 530


def test_small_size_listener_advertises_and_enforces_2048_bytes(settings: dict[str, t.Any]) -> None:
    small, small_marker = new_message(settings["account"], "friend@example.com")
    large, large_marker = new_message(settings["account"], "friend@example.com")
    large.set_content("\n".join(["y" * 70] * 40) + f"\n{large_marker}\n")
    with logged_in(settings, "smtp_small_size_port") as client:
        assert client.esmtp_features["size"] == "2048"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(large)  # smtplib declares SIZE=, refused at MAIL
        assert refused.value.smtp_code == 552
    with logged_in(settings, "smtp_small_size_port") as client:
        # Without SIZE= the server counts the data and refuses at the final dot.
        assert client.mail(settings["account"])[0] == 250 and client.rcpt("friend@example.com")[0] == 250
        assert client.data(large.as_bytes()) == (552, b"Error: Too much mail data")
        client.send_message(small)
    assert (stored_count(settings, large_marker), stored_count(settings, small_marker)) == (0, 1)


def test_7bit_listener_refuses_8bit_parameters_and_data(settings: dict[str, t.Any]) -> None:
    ascii_message, ascii_marker = new_message(settings["account"], "friend@example.com")
    eight_bit = f"Subject: 8bit\r\n\r\nCaf\u00e9 {uuid.uuid4().hex}\r\n"
    with logged_in(settings, "smtp_7bit_port") as client:
        assert "8bitmime" not in client.esmtp_features and "smtputf8" not in client.esmtp_features
        assert client.mail(settings["account"], ["BODY=8BITMIME"]) == (555, b"5.5.4 BODY=8BITMIME not supported (sandbox)")
        # smtplib would not send SMTPUTF8 to a server that does not offer it; a careless client might.
        assert client.docmd("MAIL", f"FROM:<{settings['account']}> SMTPUTF8")[0] == 501
        assert client.mail(settings["account"])[0] == 250 and client.rcpt("friend@example.com")[0] == 250
        assert client.data(eight_bit.encode("utf-8")) == (554, b"5.6.0 8-bit data not allowed (sandbox)")
        client.send_message(ascii_message)
    assert stored_count(settings, eight_bit.split()[-1]) == 0
    assert stored_count(settings, ascii_marker) == 1


@pytest.mark.parametrize("port_key", ["smtp_plain_port", "smtp_ssl_port", "smtp_starttls_port", "smtp_untrusted_port"])
def test_authenticated_listeners_offer_8bitmime_and_smtputf8(settings: dict[str, t.Any], port_key: str) -> None:
    if port_key in ("smtp_ssl_port", "smtp_untrusted_port"):
        context = client_context(settings)
        if port_key == "smtp_untrusted_port":
            # Unverified only to read the EHLO of the untrusted listener.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        client: smtplib.SMTP = smtplib.SMTP_SSL(settings["host"], settings[port_key], context=context, timeout=TIMEOUT)
    else:
        client = smtplib.SMTP(settings["host"], settings[port_key], timeout=TIMEOUT)
    with client:
        if port_key == "smtp_starttls_port":
            client.starttls(context=client_context(settings))
        client.ehlo()
        assert "8bitmime" in client.esmtp_features and "smtputf8" in client.esmtp_features


def test_8bit_and_utf8_mail_is_stored_with_its_mail_options(settings: dict[str, t.Any]) -> None:
    marker = uuid.uuid4().hex
    wire = f"From: j\u00f6rg@example.com\r\nSubject: Gr\u00fc\u00dfe {marker}\r\n\r\nCaf\u00e9\r\n".encode("utf-8")
    with logged_in(settings, "smtp_ssl_port") as client:
        client.sendmail(settings["account"], ["j\u00f6rg@example.com"], wire, mail_options=["BODY=8BITMIME", "SMTPUTF8"])
    eml_path, sidecar = stored_message(settings, marker)
    assert eml_path.read_bytes() == wire
    assert {"BODY=8BITMIME", "SMTPUTF8"} <= set(sidecar["mail_options"])
    assert sidecar["rcpt_tos"] == ["j\u00f6rg@example.com"]


# --------------------------------------------------------------------------------------------------
# Exchange Online: the end of Basic authentication, High Volume Email


def test_basicauth_identity_gets_exchange_onlines_550_5_7_30(settings: dict[str, t.Any]) -> None:
    user = f"fault-basicauthx1-{uuid.uuid4().hex[:12]}@contoso.example"
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        client.user, client.password = user, "any password"
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("LOGIN", client.auth_login)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (
            550, b"5.7.30 Basic authentication is not supported for Client Submission")
        # x1: the next login with that identity is checked as usual (and refused: it is not the account).
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("PLAIN", client.auth_plain)
        assert refused.value.smtp_code == 535


def test_lifetime_fault_issues_a_short_token_and_hve_refuses_it(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "lifetime480x1")
    status, body = post_form(uri, refresh_form(settings), settings)
    short = json.loads(body)
    assert status == 200 and short["expires_in"] == 480
    assert 470 <= sandbox.authority.lookup_access_token(short["access_token"]).seconds_left() <= 480
    normal = json.loads(post_form(uri, refresh_form(settings), settings)[1])
    assert normal["expires_in"] == ACCESS_TOKEN_LIFETIME_SECONDS
    assert logged_outcomes(settings, tagged) == ["issued", "issued"]

    hve = f"fault-hve-{uuid.uuid4().hex[:12]}@contoso.example"
    with smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(hve, short["access_token"])) == (
            501, b"5.5.127 The access token expires in less than 10 minutes (sandbox)")
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(hve, normal["access_token"]))[0] == 235
    assert sandbox.faults.seen(hve) == 1
