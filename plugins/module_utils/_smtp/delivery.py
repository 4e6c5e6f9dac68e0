# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Delivery with retries: envelopes through sessions, with what became of each recipient (:class:`Outcome`).

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.endpoint import SMTPEndpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.message import Envelope
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.replies import SMTPError
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.sasl import LoginSource
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.session import SMTPSession
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.transcript import Transcript


class Outcome:
    """What became of one envelope: who has it, who refused it for good, who is still waiting, and why."""

    def __init__(self, envelope: Envelope, pending: list[str]) -> None:
        self.envelope = envelope
        self.pending = pending
        self.accepted: list[str] = []
        self.refused: dict[str, str] = {}
        #: The reason the pending recipients do not have it yet, or the final failure of the envelope.
        self.error: SMTPError | None = None

    @property
    def finished(self) -> bool:
        """Nothing more to try: every recipient has it or refused it, or the failure is final."""
        return not self.pending or (self.error is not None and not self.error.transient)


class DeliveryReport:
    """The outcome of every envelope, and the failed attempts on the way (stage, code and reply, no secrets)."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes
        self.attempts = 0
        self.failed_attempts: list[dict[str, t.Any]] = []


def _deferral(outcome: Outcome, deferred: dict[str, str]) -> SMTPError:
    text = "; ".join(f"{address}: {reply}" for address, reply in deferred.items())
    first_code = next(iter(deferred.values())).split(" ", 1)[0]
    return SMTPError("recipients_deferred", f"The server deferred recipient(s) of {outcome.envelope.message_id}: {text}",
                     stage="rcpt", transient=True,
                     details={"deferred": dict(deferred), "smtp_code": int(first_code) if first_code.isdigit() else None})


def _run_transaction(session: SMTPSession, outcome: Outcome, on_transaction: TransactionHook | None = None) -> None:
    """One MAIL/RCPT/DATA round for the envelope's pending recipients, recorded on ``outcome``; raises SMTPError.

    Recipients the server had no room for (452, or 552, at RCPT) go in a new transaction at once while the last one
    delivered to somebody (RFC 5321 4.5.3.1.10); each transaction is recorded, and shown to ``on_transaction``, before
    the next starts, so a failure in a later one leaves the earlier ones' recipients accepted. Without progress they
    wait like any other 4xx. The caller shows the outcome to ``on_transaction`` after the last transaction.
    """
    later: dict[str, str] = {}
    replies = session.transact(outcome.envelope, outcome.pending)
    while True:
        outcome.refused.update(replies.refused)
        outcome.accepted.extend(replies.accepted)
        later.update(replies.deferred)
        outcome.pending = [*replies.too_many, *later]
        if not (replies.too_many and replies.accepted and session.connected):
            break
        if on_transaction is not None:
            on_transaction(outcome)
        session.transcript.note(f"{len(replies.too_many)} recipient(s) did not fit in this transaction: a new one for them")
        replies = session.transact(outcome.envelope, list(replies.too_many))
    deferred = {**replies.too_many, **later}
    outcome.error = _deferral(outcome, deferred) if deferred else None
    if not outcome.pending and not outcome.accepted:
        outcome.error = SMTPError("recipients_refused", "The server refused every recipient: "
                                  + "; ".join(f"{addr}: {reply}" for addr, reply in outcome.refused.items()),
                                  stage="rcpt", transient=False, details={"refused": dict(outcome.refused)})


#: Called with an envelope's outcome right after each of its transactions (a recipient's final answer, or a failure),
#: before the next command: where a queue records who has the message.
TransactionHook = t.Callable[[Outcome], None]


def login_failure(exc: SmailError) -> SMTPError:
    """A failure to get a login (a token renewal that failed) as the failure of the attempt's AUTH step."""
    return SMTPError(exc.code, exc.msg, stage="auth", hint=exc.hint, details=exc.details,
                     transient=bool(getattr(exc, "transient", False)))


class SessionProvider(t.Protocol):
    """Where an attempt gets its authenticated session, and what becomes of the session after the attempt."""

    def open(self, endpoint: SMTPEndpoint, logins: LoginSource, transcript: Transcript) -> SMTPSession:
        """A session ready for MAIL FROM; raises what :meth:`SMTPSession.open_with` raises."""

    def release(self, session: SMTPSession) -> None:
        """The attempt is done with ``session`` (connected or not) and sent no command after its last reply."""


class NewSessions:
    """A new connection for every attempt, ended with QUIT after it: the module's way."""

    def open(self, endpoint: SMTPEndpoint, logins: LoginSource, transcript: Transcript) -> SMTPSession:
        session = SMTPSession(endpoint, logins.login(), transcript=transcript)
        try:
            session.open_with(logins)
        except BaseException:
            session.close()
            raise
        return session

    def release(self, session: SMTPSession) -> None:
        if session.connected:
            session.quit()
        else:
            session.close()


NEW_SESSIONS = NewSessions()


def _attempt(endpoint: SMTPEndpoint, logins: LoginSource, todo: list[Outcome], transcript: Transcript,
             on_transaction: TransactionHook | None = None, sessions: SessionProvider = NEW_SESSIONS) -> None:
    """One connection (from ``sessions``): a transaction per unfinished envelope while the connection lasts.

    Each envelope's ``error`` says afterwards why it is not (wholly) delivered; an envelope left untried because
    the connection ended gets that reason, or a transient one when the end was final only for another envelope.
    """
    try:
        session = sessions.open(endpoint, logins, transcript)
    except SMTPError as exc:
        for outcome in todo:
            outcome.error = exc
        return
    except SmailError as exc:  # the renewal of a refused token failed: as final or transient as that failure
        failure = login_failure(exc)
        for outcome in todo:
            outcome.error = failure
        return
    try:
        for index, outcome in enumerate(todo):
            try:
                _run_transaction(session, outcome, on_transaction)
            except SMTPError as exc:
                outcome.error = exc
            if on_transaction is not None:
                on_transaction(outcome)
            if not session.connected:
                lost = outcome.error if outcome.error is not None and outcome.error.transient else SMTPError(
                    "smtp_connect", "The connection ended before this message was sent.", stage="mail", transient=True)
                for untried in todo[index + 1:]:
                    untried.error = lost
                break
    except BaseException:
        session.close()  # an unexpected failure in the middle: nothing more is said on this connection
        raise
    sessions.release(session)


def deliver_envelopes(endpoint: SMTPEndpoint, logins: LoginSource, envelopes: t.Sequence[Envelope], *,
                      policy: RetryPolicy = NO_RETRY, transcript: Transcript | None = None,
                      sleep: t.Callable[[float], None] = time.sleep,
                      clock: t.Callable[[], float] = time.monotonic,
                      on_transaction: TransactionHook | None = None,
                      sessions: SessionProvider = NEW_SESSIONS) -> DeliveryReport:
    """Deliver ``envelopes`` in order over one connection, retrying what may still succeed.

    Retried: failures before the server accepted the message (connection, TLS, a 421, a 4xx at AUTH, MAIL, RCPT or in
    reply to DATA); per recipient for a 4xx at RCPT. Never retried: a 5xx, and a connection lost after the final
    dot (``delivery_unknown``), because the server may have taken the message. Every attempt sends the same bytes,
    so the Message-ID stays the same. ``on_transaction`` sees each outcome after each of its transactions.
    ``sessions`` gives each attempt its connection: by default a new one, ended with QUIT after the attempt.
    """
    transcript = transcript or Transcript()
    report = DeliveryReport(outcomes=[Outcome(envelope, pending=list(envelope.recipients)) for envelope in envelopes])
    started = clock()
    while True:
        todo = [outcome for outcome in report.outcomes if not outcome.finished]
        if not todo:
            return report
        report.attempts += 1
        _attempt(endpoint, logins, todo, transcript, on_transaction, sessions)
        failures = [outcome.error for outcome in todo if outcome.pending and outcome.error is not None]
        if not failures:
            continue
        for error in dict.fromkeys(failures):
            report.failed_attempts.append({"attempt": report.attempts, "stage": error.stage, "error": error.code,
                                           "smtp_code": error.smtp_code, "reply": error.msg})
        if not any(error.transient for error in failures):
            return report
        pause = policy.pause(report.attempts, clock() - started)
        if pause is None:
            return report
        transcript.note(f"attempt {report.attempts} failed ({failures[0].code}); trying again in {pause:.1f} s")
        sleep(pause)
