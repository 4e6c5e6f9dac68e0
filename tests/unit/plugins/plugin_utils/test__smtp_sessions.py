# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kept SMTP sessions: one connection for many sends in a process, checked before reuse, ended with QUIT."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _smtp
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _smtp_sessions


def envelope(settings, subject, *, sender=None):
    sender = sender or settings["account"]
    msg = _smtp.build_message(_smtp.MessageSpec(sender=sender, subject=subject, to=("ops@example.com",), body="hi\n"))
    return _smtp.Envelope(sender, ("ops@example.com",), _smtp.message_bytes(msg), msg["Message-ID"])


@pytest.fixture()
def endpoint(settings):
    return _smtp.SMTPEndpoint(host=settings["host"], port=settings["smtp_ssl_port"], secure="ssl", timeout=5,
                              ca_path=settings["ca_path"])


@pytest.fixture()
def logins(sandbox, settings):
    token = sandbox.authority.issue_access_token(settings["account"]).token
    return _smtp.StaticLogin(_smtp.SASLLogin("xoauth2", settings["account"], token))


def session_lines(settings):
    log = Path(settings["state_dir"]) / "smtp_sessions.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def send(endpoint, logins, settings, sessions, subject=None):
    transcript = _smtp.Transcript()
    report = _smtp.deliver_envelopes(endpoint, logins, [envelope(settings, subject or uuid.uuid4().hex)],
                                     transcript=transcript, sessions=sessions)
    assert report.outcomes[0].accepted == ["ops@example.com"], transcript.lines
    return transcript


def test_one_connection_serves_every_send_and_ends_with_quit(endpoint, logins, settings):
    sessions = _smtp_sessions.KeptSessions()
    before = len(session_lines(settings))
    transcripts = [send(endpoint, logins, settings, sessions) for _number in range(3)]
    assert sessions.connections == 1 and len(sessions) == 1
    assert not any("AUTH" in line for line in transcripts[1].lines)
    assert transcripts[1].lines[:2] == [f"-- reuse the session with {endpoint.host}:{endpoint.port}", "C: RSET"]
    assert transcripts[2].lines[-1] == "-- the session stays open for the next send of this process"
    sessions.close()
    assert len(sessions) == 0
    _wait_for(lambda: len(session_lines(settings)) > before)
    assert [line["quit"] for line in session_lines(settings)[before:]] == [True]


def test_a_session_that_fails_rset_is_replaced_before_the_mail(endpoint, logins, settings):
    sessions = _smtp_sessions.KeptSessions()
    send(endpoint, logins, settings, sessions)
    session = next(iter(sessions._kept.values()))[0]
    session.smtp.sock.shutdown(socket.SHUT_RDWR)  # as if the server, a NAT or a firewall dropped it while it waited
    transcript = send(endpoint, logins, settings, sessions)
    assert sessions.connections == 2
    assert "-- the kept session did not answer RSET with 250: a new connection" in transcript.lines
    assert not any(line.startswith("C: mail") for line in transcript.lines[:transcript.lines.index("C: RSET")])
    sessions.close()


def test_an_idle_session_is_ended_and_a_new_one_opened(endpoint, logins, settings):
    now = [0.0]
    sessions = _smtp_sessions.KeptSessions(idle_limit=30, clock=lambda: now[0])
    send(endpoint, logins, settings, sessions)
    now[0] = 31.0
    send(endpoint, logins, settings, sessions)
    assert sessions.connections == 2
    sessions.close()


def test_a_different_login_gets_its_own_session(endpoint, logins, sandbox, settings):
    sessions = _smtp_sessions.KeptSessions()
    send(endpoint, logins, settings, sessions)
    other = _smtp.StaticLogin(_smtp.SASLLogin("xoauth2", settings["account"],
                                              sandbox.authority.issue_access_token(settings["account"]).token))
    send(endpoint, other, settings, sessions)
    assert sessions.connections == 2 and len(sessions) == 2
    sessions.close()


def test_a_session_the_server_closed_is_not_kept(endpoint, logins, settings):
    sessions = _smtp_sessions.KeptSessions()
    transcript = _smtp.Transcript()
    report = _smtp.deliver_envelopes(endpoint, logins, [envelope(settings, "x", sender=f"fault-mail421-{uuid.uuid4().hex}@example.com")],
                                     transcript=transcript, sessions=sessions)
    assert report.outcomes[0].error.smtp_code == 421
    assert len(sessions) == 0


def test_the_key_holds_no_secret(endpoint):
    key = _smtp_sessions.session_key(endpoint, _smtp.SASLLogin("xoauth2", "a@example.com", "ya29.secret-token"))
    assert "ya29.secret-token" not in repr(key)


def test_a_forked_child_starts_without_the_parents_sessions(monkeypatch):
    parent = _smtp_sessions.worker_sessions()
    assert _smtp_sessions.worker_sessions() is parent
    monkeypatch.setattr(_smtp_sessions.os, "getpid", lambda: parent.pid + 1)
    assert _smtp_sessions.worker_sessions() is not parent


def _wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)
