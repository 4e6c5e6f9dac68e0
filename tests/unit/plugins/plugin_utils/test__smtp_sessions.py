# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kept SMTP sessions: one connection for many sends in a process, checked before reuse, ended with QUIT."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import endpoint as _smtp_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import sasl as _smtp_sasl
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import session as _smtp_session
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _smtp_sessions


def envelope(settings, subject, *, sender=None):
    sender = sender or settings["account"]
    msg = _smtp_message.build_message(_smtp_message.MessageSpec(sender=sender, subject=subject, to=("ops@example.com",), body="hi\n"))
    return _smtp_message.Envelope(sender, ("ops@example.com",), _smtp_message.message_bytes(msg), msg["Message-ID"])


@pytest.fixture()
def endpoint(settings):
    return _smtp_endpoint.SMTPEndpoint(host=settings["host"], port=settings["smtp_ssl_port"], secure="ssl", timeout=5,
                                       ca_path=settings["ca_path"])


@pytest.fixture()
def logins(sandbox, settings):
    token = sandbox.authority.issue_access_token(settings["account"]).token
    return _smtp_sasl.StaticLogin(_smtp_sasl.SASLLogin("xoauth2", settings["account"], token))


def session_lines(settings):
    log = Path(settings["state_dir"]) / "smtp_sessions.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def send(endpoint, logins, settings, sessions, subject=None):
    transcript = _smtp_transcript.Transcript()
    report = _smtp_delivery.deliver_envelopes(endpoint, logins, [envelope(settings, subject or uuid.uuid4().hex)],
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
    other = _smtp_sasl.StaticLogin(_smtp_sasl.SASLLogin("xoauth2", settings["account"],
                                                        sandbox.authority.issue_access_token(settings["account"]).token))
    send(endpoint, other, settings, sessions)
    assert sessions.connections == 2 and len(sessions) == 2
    sessions.close()


def test_a_session_the_server_closed_is_not_kept(endpoint, logins, settings):
    sessions = _smtp_sessions.KeptSessions()
    transcript = _smtp_transcript.Transcript()
    report = _smtp_delivery.deliver_envelopes(endpoint, logins, [envelope(settings, "x", sender=f"fault-mail421-{uuid.uuid4().hex}@example.com")],
                                              transcript=transcript, sessions=sessions)
    assert report.outcomes[0].error.smtp_code == 421
    assert len(sessions) == 0


def test_the_key_holds_no_secret(endpoint):
    key = _smtp_sessions.session_key(endpoint, _smtp_sasl.SASLLogin("xoauth2", "a@example.com", "ya29.secret-token"))
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


class SilentAtQuit:
    """A plain SMTP server on loopback that greets and answers EHLO, but never answers QUIT: it keeps the connection
    open until the client closes it (``hang_up=False``) or closes it without a word (``hang_up=True``)."""

    def __init__(self, *, hang_up: bool) -> None:
        self.hang_up = hang_up
        self.quits = 0
        self._conversations: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _address = self._listener.accept()
            except OSError:
                return
            conversation = threading.Thread(target=self._converse, args=(conn,), daemon=True)
            self._conversations.append(conversation)
            conversation.start()

    def _converse(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 silent.example ESMTP\r\n")
            for line in lines:
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"QUIT":
                    self.quits += 1
                    if self.hang_up:
                        return
                elif verb == b"EHLO":
                    conn.sendall(b"250-silent.example\r\n250 8BITMIME\r\n")
                else:
                    conn.sendall(b"250 OK\r\n")

    def quits_heard(self) -> int:
        """How many QUITs the server read, once every connection has ended (the client closed it)."""
        for conversation in self._conversations:
            conversation.join(timeout=30)  # a safety net only: the client has closed every connection by now
        return self.quits

    def close(self) -> None:
        self._listener.close()


def kept_session(server, username, *, timeout, quit_timeouts):
    """A connected session with the server, recording the socket's timeout in force when it says QUIT."""
    endpoint = _smtp_endpoint.SMTPEndpoint(host="127.0.0.1", port=server.port, secure="never", timeout=timeout)
    session = _smtp_session.SMTPSession(endpoint, _smtp_sasl.SASLLogin("xoauth2", username, "ya29.token"))
    session.connect()
    session.ehlo()
    smtp, send = session.smtp, session.smtp.send

    def recording_send(line):
        if isinstance(line, str) and line.upper().startswith("QUIT"):
            quit_timeouts.append(smtp.sock.gettimeout())
        return send(line)

    smtp.send = recording_send
    return session


def test_quit_of_an_evicted_and_of_a_kept_session_at_exit_waits_the_bounded_time(monkeypatch):
    # A server that never answers QUIT: each QUIT waits only the bound (made short here), not the session's timeout.
    monkeypatch.setattr(_smtp_sessions, "QUIT_TIMEOUT_SECONDS", 0.05, raising=False)
    server, quit_timeouts = SilentAtQuit(hang_up=False), []
    try:
        sessions = _smtp_sessions.KeptSessions(limit=1)
        first = kept_session(server, "a@example.com", timeout=5, quit_timeouts=quit_timeouts)
        second = kept_session(server, "b@example.com", timeout=5, quit_timeouts=quit_timeouts)
        sessions.release(first)
        sessions.release(second)  # over the limit: the first is ended
        assert not first.connected and len(sessions) == 1
        sessions._finalizer()  # what multiprocessing runs when the worker ends
        assert not second.connected and len(sessions) == 0
        assert quit_timeouts == [0.05, 0.05]
        assert server.quits_heard() == 2
    finally:
        server.close()


@pytest.mark.parametrize(("session_timeout", "quit_timeout"), [(5, 2.0), (1, 1.0)])
def test_a_kept_session_waits_at_most_two_seconds_for_the_answer_to_quit(session_timeout, quit_timeout):
    server, quit_timeouts = SilentAtQuit(hang_up=True), []
    try:
        sessions = _smtp_sessions.KeptSessions()
        session = kept_session(server, "a@example.com", timeout=session_timeout, quit_timeouts=quit_timeouts)
        sessions.release(session)
        sessions.close()
        assert not session.connected and len(sessions) == 0
        assert quit_timeouts == [quit_timeout]
    finally:
        server.close()
