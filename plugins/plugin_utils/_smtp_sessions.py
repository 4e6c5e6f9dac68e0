# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SMTP sessions kept open between the sends of one controller worker process: the items of a loop.

Ansible runs every item of a looped task on one host in one worker process. A send that runs in that process (the
in-process ``mail`` action) hands :func:`worker_sessions` to the SMTP core as its session provider: each attempt
then takes up the authenticated session the previous item left, when it was made for the same server, port, TLS
settings, mechanism, account and secret, after the server answered ``RSET`` with 250; otherwise it connects anew.
Nothing of a mail is ever said on a session before that check, so a reconnect never repeats a command of it.
Sessions end with ``QUIT`` after :data:`IDLE_LIMIT_SECONDS` without use (at the next send) and when the worker ends:
a worker leaves through multiprocessing, which runs its ``Finalize`` callbacks (not ``atexit``) after the task's
result was sent. Every such QUIT waits at most :data:`QUIT_TIMEOUT_SECONDS` for its answer: the mail was settled
before, and a server that does not answer must not hold the worker (or the next send) for the session's timeout.
"""

from __future__ import annotations

import hashlib
import multiprocessing.util
import os
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import endpoint as _smtp_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import sasl as _smtp_sasl
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import session as _smtp_session
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript

#: A kept session unused this long is ended (QUIT) instead of reused: servers drop idle clients after a few minutes.
IDLE_LIMIT_SECONDS = 30.0
#: At most this many sessions are kept (a loop over a few accounts); the least recently used is ended first.
MAX_KEPT_SESSIONS = 4
#: The longest a kept session's QUIT waits for the server's answer (at the worker's exit and when a session is ended).
QUIT_TIMEOUT_SECONDS = 2.0

SessionKey = tuple[_smtp_endpoint.SMTPEndpoint, str, str, str]


def session_key(endpoint: _smtp_endpoint.SMTPEndpoint, login: _smtp_sasl.SASLLogin) -> SessionKey:
    """What a session is good for: the endpoint with its TLS settings, and the login (its secret only as a digest)."""
    digest = hashlib.sha256((login.secret or "").encode("utf-8")).hexdigest()
    return endpoint, login.mechanism, login.username or "", digest


def _end(session: _smtp_session.SMTPSession) -> None:
    """QUIT a kept session, waiting at most QUIT_TIMEOUT_SECONDS for the answer, and close it."""
    session.quit(timeout=QUIT_TIMEOUT_SECONDS)


def _quit_all(kept: dict[SessionKey, tuple[_smtp_session.SMTPSession, float]]) -> None:
    while kept:
        _key, (session, _since) = kept.popitem()
        _end(session)


class KeptSessions:
    """A session provider (``_smtp_delivery.SessionProvider``) that keeps each connected session after its attempt."""

    def __init__(self, *, idle_limit: float = IDLE_LIMIT_SECONDS, limit: int = MAX_KEPT_SESSIONS,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self.idle_limit = idle_limit
        self.limit = limit
        self.clock = clock
        self.pid = os.getpid()
        #: Connections this provider opened: one for a whole loop when every reuse succeeds.
        self.connections = 0
        self._kept: dict[SessionKey, tuple[_smtp_session.SMTPSession, float]] = {}
        # Runs when the worker process ends (multiprocessing's exit, not atexit), or when this provider is dropped.
        self._finalizer = multiprocessing.util.Finalize(self, _quit_all, args=(self._kept,), exitpriority=10)

    def __len__(self) -> int:
        return len(self._kept)

    def open(self, endpoint: _smtp_endpoint.SMTPEndpoint, logins: _smtp_sasl.LoginSource, transcript: _smtp_transcript.Transcript) -> _smtp_session.SMTPSession:
        kept = self._kept.pop(session_key(endpoint, logins.login()), None)
        self._end_idle()
        if kept is not None:
            session, since = kept
            if self.clock() - since > self.idle_limit:
                _end(session)
            elif session.resume(transcript):
                return session
            else:
                transcript.note("the kept session did not answer RSET with 250: a new connection")
        self.connections += 1
        return _smtp_delivery.NEW_SESSIONS.open(endpoint, logins, transcript)

    def release(self, session: _smtp_session.SMTPSession) -> None:
        if not session.connected:
            session.close()
            return
        session.transcript.note("the session stays open for the next send of this process")
        key = session_key(session.endpoint, session.login)
        previous = self._kept.pop(key, None)
        if previous is not None and previous[0] is not session:
            _end(previous[0])
        self._kept[key] = (session, self.clock())
        while len(self._kept) > self.limit:
            _session, _since = self._kept.pop(next(iter(self._kept)))
            _end(_session)

    def _end_idle(self) -> None:
        now = self.clock()
        for key, (session, since) in list(self._kept.items()):
            if now - since > self.idle_limit:
                del self._kept[key]
                _end(session)

    def close(self) -> None:
        """End every kept session with QUIT."""
        _quit_all(self._kept)


_WORKER_SESSIONS: KeptSessions | None = None


def worker_sessions() -> KeptSessions:
    """This process's kept sessions; a forked child starts with none of its parent's (their sockets are the parent's)."""
    global _WORKER_SESSIONS  # pylint: disable=global-statement
    if _WORKER_SESSIONS is None or _WORKER_SESSIONS.pid != os.getpid():
        _WORKER_SESSIONS = KeptSessions()
    return _WORKER_SESSIONS
