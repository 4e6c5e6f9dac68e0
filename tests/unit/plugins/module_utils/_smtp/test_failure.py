# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a failed SMTP step means: codes, transience, hints, and secrets masked in the exception's text."""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.endpoint import SMTPEndpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.failure import explain
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.transcript import Transcript

SECRET = "ya29.secret-access-token"


def explained(exc, *, secure="ssl", stage="data", after_final_dot=False):
    transcript = Transcript()
    transcript.add_secret(SECRET)
    return explain(exc, endpoint=SMTPEndpoint("smtp.example.com", 465 if secure == "ssl" else 587, secure=secure),
                   mask=transcript.mask, stage=stage, after_final_dot=after_final_dot)


def test_a_loss_after_the_final_dot_may_have_delivered_and_is_never_transient():
    error = explained(ConnectionResetError(104, f"reset while holding {SECRET}"), after_final_dot=True)
    assert (error.code, error.may_have_been_delivered, error.transient) == ("delivery_unknown", True, False)
    assert SECRET not in error.msg and "*****" in error.msg


@pytest.mark.parametrize(("secure", "hint"), [("starttls", "use secure=ssl"), ("ssl", "Raise timeout")])
def test_a_silent_greeting_suggests_implicit_tls_only_where_it_can_be_the_cause(secure, hint):
    error = explained(socket.timeout("timed out"), secure=secure, stage="connect")
    assert error.code == "smtp_timeout" and error.transient and hint in error.hint


def test_a_timeout_seen_as_a_disconnect_is_a_timeout():
    # smtplib turns a read timeout into SMTPServerDisconnected, with the timeout as its context.
    exc = smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
    exc.__context__ = socket.timeout("timed out")
    error = explained(exc, stage="ehlo")
    assert error.code == "smtp_timeout" and "during ehlo" in error.msg


def test_an_unverified_certificate_is_final_with_the_ca_path_hint():
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "unable to get local issuer certificate"
    error = explained(exc, stage="tls")
    assert (error.code, error.transient) == ("smtp_tls", False) and "ca_path" in error.hint


@pytest.mark.parametrize(("exc", "code", "transient"), [
    (smtplib.SMTPResponseException(421, b"4.7.0 try later"), "smtp_connect", True),
    (smtplib.SMTPResponseException(554, b"5.7.1 go away"), "smtp_connect", False),
    (ConnectionRefusedError(111, "Connection refused"), "smtp_connect", True),
])
def test_replies_and_network_failures(exc, code, transient):
    error = explained(exc, stage="connect")
    assert (error.code, error.transient) == (code, transient)


@pytest.mark.parametrize(("errno", "transient"), [(socket.EAI_NONAME, False), (socket.EAI_AGAIN, True)])
def test_a_name_that_does_not_exist_is_final_and_a_resolver_hiccup_is_not(errno, transient):
    error = explained(socket.gaierror(errno, "resolver says so"), stage="connect")
    assert (error.code, error.transient) == ("smtp_connect", transient)
    if not transient:
        assert "host" in error.hint


def ssl_error(cls, reason):
    exc = cls(1, f"[SSL: {reason}] {reason.lower()}")
    exc.reason = reason
    return exc


@pytest.mark.parametrize(("exc", "transient"), [
    (ssl_error(ssl.SSLError, "WRONG_VERSION_NUMBER"), False),  # secure=ssl on a plain port
    (ssl_error(ssl.SSLError, "TLSV1_ALERT_PROTOCOL_VERSION"), False),  # no TLS version in common
    (ssl_error(ssl.SSLEOFError, "UNEXPECTED_EOF_WHILE_READING"), True),  # a handshake cut short
])
def test_a_tls_version_mismatch_is_final(exc, transient):
    error = explained(exc, stage="tls")
    assert (error.code, error.transient) == ("smtp_tls", transient) and "secure" in error.hint
