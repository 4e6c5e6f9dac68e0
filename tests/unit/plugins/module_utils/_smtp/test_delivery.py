# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP core's delivery with retries, against the sandbox's fault injection."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import RetryPolicy
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import endpoint as _smtp_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import replies as _smtp_replies
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import sasl as _smtp_sasl
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import session as _smtp_session
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript

FAST = RetryPolicy(retries=2, delay=0.01, max_time=30)


def copies(settings, subject):
    return [path for path in Path(settings["mail_dir"]).glob("*.eml") if subject.encode() in path.read_bytes()]


class CountingLogins:
    """A login source that records renewals; its renewed token comes from the sandbox's authority."""

    def __init__(self, sandbox, token, *, renewable=True):
        self.sandbox, self.token, self.renewable, self.renewals = sandbox, token, renewable, 0

    def login(self):
        return _smtp_sasl.SASLLogin("xoauth2", self.sandbox.settings["account"], self.token)

    def renew(self):
        if not self.renewable or self.renewals:
            return None
        self.renewals += 1
        self.token = self.sandbox.authority.issue_access_token(self.sandbox.settings["account"]).token
        return self.login()


def envelope(settings, subject, recipients, *, sender=None, body="hello\n"):
    sender = sender or settings["account"]
    msg = _smtp_message.build_message(_smtp_message.MessageSpec(sender=sender, subject=subject, to=tuple(recipients), body=body))
    return _smtp_message.Envelope(sender, tuple(recipients), _smtp_message.message_bytes(msg), msg["Message-ID"])


def endpoint(settings, port_key="smtp_ssl_port", **kwargs):
    values = dict(host=settings["host"], port=settings[port_key], secure="ssl", timeout=5, ca_path=settings["ca_path"])
    values.update(kwargs)
    return _smtp_endpoint.SMTPEndpoint(**values)


@pytest.fixture()
def logins(sandbox, settings):
    return CountingLogins(sandbox, sandbox.authority.issue_access_token(settings["account"]).token)


@pytest.mark.parametrize("recipient", ["fault-rcpt451x1-{tag}@example.com", "fault-data451x1-{tag}@example.com"])
def test_a_4xx_is_retried_to_exactly_one_delivery(settings, logins, recipient, request):
    tag = abs(hash(request.node.name))
    mail = envelope(settings, f"retry {tag}", [recipient.format(tag=tag)])
    sleeps = []
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=sleeps.append)
    outcome = report.outcomes[0]
    assert outcome.error is None and outcome.accepted == list(mail.recipients)
    assert report.attempts == 2 and len(sleeps) == 1 and report.failed_attempts[0]["smtp_code"] == 451
    stored = copies(settings, f"retry {tag}")
    assert len(stored) == 1 and mail.message_id.encode() in stored[0].read_bytes()


def test_a_5xx_after_data_is_final(settings, logins):
    mail = envelope(settings, "final 550", ["fault-data550-final@example.com"])
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    assert report.attempts == 1 and report.outcomes[0].error.code == "data_refused"
    assert not report.outcomes[0].error.transient and copies(settings, "final 550") == []


def test_a_drop_after_the_final_dot_is_never_retried(settings, logins):
    mail = envelope(settings, "dropped once", ["drop-after-data-engine@example.com"])
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    error = report.outcomes[0].error
    assert report.attempts == 1 and error.code == "delivery_unknown" and error.may_have_been_delivered
    assert len(copies(settings, "dropped once")) == 1


def test_a_deferred_recipient_is_retried_alone(settings, logins):
    deferred = "fault-rcpt451x1-alone@example.com"
    mail = envelope(settings, "deferred alone", ["ops@example.com", deferred])
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    assert report.outcomes[0].accepted == ["ops@example.com", deferred] and report.outcomes[0].error is None
    sidecars = [json.loads(path.with_suffix(".json").read_text()) for path in copies(settings, "deferred alone")]
    assert sorted(tuple(sidecar["rcpt_tos"]) for sidecar in sidecars) == sorted([("ops@example.com",), (deferred,)])


def test_a_refused_cached_token_is_renewed_once(sandbox, settings, logins):
    sandbox.authority.revoke_access_token(logins.token)
    mail = envelope(settings, "renewed", ["ops@example.com"])
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    assert logins.renewals == 1 and report.outcomes[0].error is None and len(copies(settings, "renewed")) == 1


def test_a_token_refused_after_renewal_is_final(sandbox, settings):
    never = CountingLogins(sandbox, "ya29.never-valid", renewable=False)
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), never, [envelope(settings, "refused", ["ops@example.com"])],
                                              policy=FAST, sleep=lambda _: None)
    assert report.attempts == 1 and report.outcomes[0].error.code == "smtp_auth"


def test_a_421_greeting_is_retried_then_reported(settings, logins):
    sleeps = []
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, "smtp_greeting_421_port"), logins,
                                              [envelope(settings, "greeting", ["ops@example.com"])], policy=FAST, sleep=sleeps.append)
    assert report.attempts == 3 and len(sleeps) == 2
    assert report.outcomes[0].error.code == "smtp_connect" and report.outcomes[0].error.smtp_code == 421


def test_8bit_is_downgraded_for_a_server_without_8bitmime(settings, logins):
    mail = envelope(settings, "seven bit", ["ops@example.com"], body="配備 ünïcödé\n")
    assert not mail.data.isascii()
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, "smtp_7bit_port"), logins, [mail], policy=FAST)
    assert report.outcomes[0].error is None
    stored = copies(settings, "seven bit")[0]
    assert stored.read_bytes().isascii()
    assert "BODY=8BITMIME" not in json.loads(stored.with_suffix(".json").read_text())["mail_options"]


def test_8bit_goes_with_body_8bitmime_where_offered(settings, logins):
    mail = envelope(settings, "eight bit", ["ops@example.com"], body="配備 ünïcödé\n")
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST)
    assert report.outcomes[0].error is None
    stored = copies(settings, "eight bit")[0]
    assert stored.read_bytes() == mail.data or not stored.read_bytes().isascii()
    assert "BODY=8BITMIME" in json.loads(stored.with_suffix(".json").read_text())["mail_options"]


def test_a_message_over_size_is_refused_before_data(settings, logins):
    mail = envelope(settings, "too large", ["ops@example.com"], body="x" * 5000)
    transcript = _smtp_transcript.Transcript()
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, "smtp_small_size_port"), logins, [mail], policy=FAST,
                                              transcript=transcript)
    assert report.outcomes[0].error.code == "message_too_large"
    assert not any(line.startswith("C: MAIL") for line in transcript.lines)


def test_later_envelopes_survive_a_drop_of_an_earlier_one(settings, logins):
    first = envelope(settings, "batch first", ["drop-after-data-batch@example.com"])
    second = envelope(settings, "batch second", ["ops@example.com"])
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [first, second], policy=FAST, sleep=lambda _: None)
    assert report.outcomes[0].error.code == "delivery_unknown"
    assert report.outcomes[1].error is None and len(copies(settings, "batch second")) == 1
    assert len(copies(settings, "batch first")) == 1


# --- 452 and 552 at RCPT: too many recipients for one transaction ----------------------------------

def rcpt_tos(settings, subject):
    return sorted(tuple(json.loads(path.with_suffix(".json").read_text())["rcpt_tos"]) for path in copies(settings, subject))


@pytest.mark.parametrize("kind", ["rcpt452", "rcpt552"])
def test_too_many_recipients_go_in_the_next_transaction_at_once(settings, logins, kind):
    tag = uuid.uuid4().hex[:12]
    first, second = f"fault-{kind}x1-{tag}@example.com", f"fault-{kind}x2-{tag}@example.com"
    mail = envelope(settings, f"too many {tag}", ["ops@example.com", first, second])
    sleeps = []
    # No retries at all: the rest of the recipients is not a retry.
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=_smtp_delivery.NO_RETRY, sleep=sleeps.append)
    outcome = report.outcomes[0]
    assert outcome.error is None and outcome.refused == {} and outcome.pending == []
    assert sorted(outcome.accepted) == sorted(mail.recipients)
    assert report.attempts == 1 and sleeps == [] and report.failed_attempts == []
    assert rcpt_tos(settings, f"too many {tag}") == sorted([("ops@example.com",), (first,), (second,)])


def test_too_many_recipients_for_every_recipient_is_an_ordinary_deferral(settings, logins):
    tag = uuid.uuid4().hex[:12]
    mail = envelope(settings, f"all 452 {tag}", [f"fault-rcpt452x1-{tag}@example.com"])
    sleeps = []
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=sleeps.append)
    assert report.outcomes[0].error is None and report.attempts == 2 and len(sleeps) == 1
    assert report.failed_attempts[0]["smtp_code"] == 452 and len(copies(settings, f"all 452 {tag}")) == 1


def test_a_recipient_that_has_the_mail_is_never_sent_it_again(settings, logins):
    tag = uuid.uuid4().hex[:12]
    full = f"fault-rcpt452-{tag}@example.com"
    mail = envelope(settings, f"never again {tag}", ["ops@example.com", full])
    report = _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    outcome = report.outcomes[0]
    assert outcome.accepted == ["ops@example.com"] and outcome.pending == [full]
    assert (outcome.error.code, outcome.error.transient, outcome.error.smtp_code) == ("recipients_deferred", True, 452)
    assert report.attempts == 3 and rcpt_tos(settings, f"never again {tag}") == [("ops@example.com",)]


class FailingSecondTransaction(_smtp_session.SMTPSession):
    """A real session whose second transaction loses the connection before MAIL."""

    transactions = 0

    def transact(self, envelope, recipients):
        self.transactions += 1
        if self.transactions == 2:
            self.close()
            raise _smtp_replies.SMTPError("smtp_connect", "lost", stage="mail", transient=True)
        return super().transact(envelope, recipients)


def test_a_failed_later_transaction_keeps_the_earlier_ones_recipients(settings, logins):
    tag = uuid.uuid4().hex[:12]
    full = f"fault-rcpt452x1-{tag}@example.com"
    outcome = _smtp_delivery.Outcome(envelope(settings, f"kept {tag}", ["ops@example.com", full]), pending=["ops@example.com", full])
    with FailingSecondTransaction(endpoint(settings), logins.login()) as session:
        session.open()
        with pytest.raises(_smtp_replies.SMTPError):
            _smtp_delivery._run_transaction(session, outcome)
    assert outcome.accepted == ["ops@example.com"] and outcome.pending == [full]


# --- configuration errors are final ------------------------------------------------------------

def test_a_missing_ca_path_is_an_invalid_option_before_any_connection(settings, logins):
    sleeps = []
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, ca_path="/nonexistent/ca.pem"), logins,
                                              [envelope(settings, "no ca", ["ops@example.com"])], policy=FAST, sleep=sleeps.append)
    error = report.outcomes[0].error
    assert (error.code, error.transient, error.details["option"]) == ("invalid_option", False, "ca_path")
    assert report.attempts == 1 and sleeps == []


def test_a_host_name_that_does_not_resolve_is_final(settings, logins, monkeypatch):
    # The resolver's answer for a name that does not exist, whatever this machine's resolver makes of .invalid.
    real_getaddrinfo = socket.getaddrinfo

    def no_such_name(host, *args, **kwargs):
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, host="no-such-host.invalid"), logins,
                                              [envelope(settings, "no host", ["ops@example.com"])], policy=FAST, sleep=lambda _: None)
    error = report.outcomes[0].error
    assert (error.code, error.transient, report.attempts) == ("smtp_connect", False, 1) and "host" in error.full_msg


@pytest.mark.parametrize("host", ["a..b.example", "x" * 64 + ".example", "ex\u2028ample.com"])
def test_a_host_that_is_not_a_host_name_is_an_invalid_option(settings, logins, host):
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, host=host), logins, [envelope(settings, "bad host", ["ops@example.com"])],
                                              policy=FAST, sleep=lambda _: None)
    error = report.outcomes[0].error
    assert (error.code, error.transient, error.details["option"], report.attempts) == ("invalid_option", False, "host", 1)


def test_implicit_tls_on_a_starttls_port_is_final(settings, logins):
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, "smtp_starttls_port"), logins,
                                              [envelope(settings, "ssl on 587", ["ops@example.com"])], policy=FAST, sleep=lambda _: None)
    error = report.outcomes[0].error
    assert (error.code, error.transient, report.attempts) == ("smtp_tls", False, 1) and "secure" in error.hint


def test_starttls_on_the_implicit_tls_port_waits_for_the_greeting_once(settings, logins, monkeypatch):
    # The implicit-TLS port says nothing until the handshake: the wait for its greeting is cut short for the test.
    monkeypatch.setattr(_smtp_session, "FIRST_GREETING_WAIT", 0.1)
    transcript = _smtp_transcript.Transcript()
    sleeps = []
    report = _smtp_delivery.deliver_envelopes(endpoint(settings, secure="starttls", timeout=2), logins,
                                              [envelope(settings, "starttls on 465", ["ops@example.com"])],
                                              policy=RetryPolicy(retries=2, delay=0.01, max_time=60), transcript=transcript,
                                              sleep=sleeps.append)
    error = report.outcomes[0].error
    assert (error.code, error.transient, report.attempts) == ("smtp_tls", False, 1)
    # One connection, one greeting wait (then the TLS probe answered), no retry: not one wait per attempt.
    connects = [line for line in transcript.lines if f"connect {settings['host']}:" in line]
    waits = [line for line in transcript.lines if "no greeting within 0.1 s, and the port answers TLS" in line]
    assert len(connects) == 1 and len(waits) == 1 and sleeps == []
    assert "secure=ssl" in error.hint and "within 0.1 s" in error.msg


@pytest.mark.parametrize(("change", "code"), [
    ({"ca_path": "/nonexistent/ca.pem"}, "invalid_option"),
    ({"secure": "ssl", "port": "smtp_starttls_port"}, "smtp_tls"),
])
def test_a_configuration_error_is_not_spooled(settings, tmp_path, change, code):
    options = {"auth": "plain", "username": settings["account"], "password": settings["app_password"],
               "host": settings["host"], "port": settings["smtp_ssl_port"], "secure": "ssl", "ca_path": settings["ca_path"],
               "timeout": 5, "retry_delay": 0.01, "spool_dir": str(tmp_path / "spool")}
    options.update({key: settings.get(value, value) for key, value in change.items()})
    spec = _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="not spooled")
    with pytest.raises(SmailError) as info:
        _mailer.deliver(options, spec)
    assert info.value.code == code and not list((tmp_path / "spool").glob("**/*.eml"))


def test_the_transaction_hook_sees_each_transaction_of_an_envelope(settings, logins):
    tag = uuid.uuid4().hex[:12]
    full = f"fault-rcpt452x1-{tag}@example.com"
    seen = []
    _smtp_delivery.deliver_envelopes(endpoint(settings), logins, [envelope(settings, f"hooked {tag}", ["ops@example.com", full])],
                                     on_transaction=lambda outcome: seen.append((list(outcome.accepted), list(outcome.pending))))
    assert seen == [(["ops@example.com"], [full]), (["ops@example.com", full], [])]
