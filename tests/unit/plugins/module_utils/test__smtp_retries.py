# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP core's delivery with retries, against the sandbox's fault injection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _smtp
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import RetryPolicy

FAST = RetryPolicy(retries=2, delay=0.01, max_time=30)


def copies(settings, subject):
    return [path for path in Path(settings["mail_dir"]).glob("*.eml") if subject.encode() in path.read_bytes()]


class CountingLogins:
    """A login source that records renewals; its renewed token comes from the sandbox's authority."""

    def __init__(self, sandbox, token, *, renewable=True):
        self.sandbox, self.token, self.renewable, self.renewals = sandbox, token, renewable, 0

    def login(self):
        return _smtp.SASLLogin("xoauth2", self.sandbox.settings["account"], self.token)

    def renew(self):
        if not self.renewable or self.renewals:
            return None
        self.renewals += 1
        self.token = self.sandbox.authority.issue_access_token(self.sandbox.settings["account"]).token
        return self.login()


def envelope(settings, subject, recipients, *, sender=None, body="hello\n"):
    sender = sender or settings["account"]
    msg = _smtp.build_message(_smtp.MessageSpec(sender=sender, subject=subject, to=tuple(recipients), body=body))
    return _smtp.Envelope(sender, tuple(recipients), _smtp.message_bytes(msg), msg["Message-ID"])


def endpoint(settings, port_key="smtp_ssl_port", **kwargs):
    values = dict(host=settings["host"], port=settings[port_key], secure="ssl", timeout=5, ca_path=settings["ca_path"])
    values.update(kwargs)
    return _smtp.SMTPEndpoint(**values)


@pytest.fixture()
def logins(sandbox, settings):
    return CountingLogins(sandbox, sandbox.authority.issue_access_token(settings["account"]).token)


@pytest.mark.parametrize("recipient", ["fault-rcpt451x1-{tag}@example.com", "fault-data451x1-{tag}@example.com"])
def test_a_4xx_is_retried_to_exactly_one_delivery(settings, logins, recipient, request):
    tag = abs(hash(request.node.name))
    mail = envelope(settings, f"retry {tag}", [recipient.format(tag=tag)])
    sleeps = []
    report = _smtp.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=sleeps.append)
    outcome = report.outcomes[0]
    assert outcome.error is None and outcome.accepted == list(mail.recipients)
    assert report.attempts == 2 and len(sleeps) == 1 and report.failed_attempts[0]["smtp_code"] == 451
    stored = copies(settings, f"retry {tag}")
    assert len(stored) == 1 and mail.message_id.encode() in stored[0].read_bytes()


def test_a_5xx_after_data_is_final(settings, logins):
    mail = envelope(settings, "final 550", ["fault-data550-final@example.com"])
    report = _smtp.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    assert report.attempts == 1 and report.outcomes[0].error.code == "data_refused"
    assert not report.outcomes[0].error.transient and copies(settings, "final 550") == []


def test_a_drop_after_the_final_dot_is_never_retried(settings, logins):
    mail = envelope(settings, "dropped once", ["drop-after-data-engine@example.com"])
    report = _smtp.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    error = report.outcomes[0].error
    assert report.attempts == 1 and error.code == "delivery_unknown" and error.may_have_been_delivered
    assert len(copies(settings, "dropped once")) == 1


def test_a_deferred_recipient_is_retried_alone(settings, logins):
    deferred = "fault-rcpt451x1-alone@example.com"
    mail = envelope(settings, "deferred alone", ["ops@example.com", deferred])
    report = _smtp.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    assert report.outcomes[0].accepted == ["ops@example.com", deferred] and report.outcomes[0].error is None
    sidecars = [json.loads(path.with_suffix(".json").read_text()) for path in copies(settings, "deferred alone")]
    assert sorted(tuple(sidecar["rcpt_tos"]) for sidecar in sidecars) == sorted([("ops@example.com",), (deferred,)])


def test_a_refused_cached_token_is_renewed_once(sandbox, settings, logins):
    sandbox.authority.revoke_access_token(logins.token)
    mail = envelope(settings, "renewed", ["ops@example.com"])
    report = _smtp.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST, sleep=lambda _: None)
    assert logins.renewals == 1 and report.outcomes[0].error is None and len(copies(settings, "renewed")) == 1


def test_a_token_refused_after_renewal_is_final(sandbox, settings):
    never = CountingLogins(sandbox, "ya29.never-valid", renewable=False)
    report = _smtp.deliver_envelopes(endpoint(settings), never, [envelope(settings, "refused", ["ops@example.com"])],
                                     policy=FAST, sleep=lambda _: None)
    assert report.attempts == 1 and report.outcomes[0].error.code == "smtp_auth"


def test_a_421_greeting_is_retried_then_reported(settings, logins):
    sleeps = []
    report = _smtp.deliver_envelopes(endpoint(settings, "smtp_greeting_421_port"), logins,
                                     [envelope(settings, "greeting", ["ops@example.com"])], policy=FAST, sleep=sleeps.append)
    assert report.attempts == 3 and len(sleeps) == 2
    assert report.outcomes[0].error.code == "smtp_connect" and report.outcomes[0].error.smtp_code == 421


def test_8bit_is_downgraded_for_a_server_without_8bitmime(settings, logins):
    mail = envelope(settings, "seven bit", ["ops@example.com"], body="配備 ünïcödé\n")
    assert not mail.data.isascii()
    report = _smtp.deliver_envelopes(endpoint(settings, "smtp_7bit_port"), logins, [mail], policy=FAST)
    assert report.outcomes[0].error is None
    stored = copies(settings, "seven bit")[0]
    assert stored.read_bytes().isascii()
    assert "BODY=8BITMIME" not in json.loads(stored.with_suffix(".json").read_text())["mail_options"]


def test_8bit_goes_with_body_8bitmime_where_offered(settings, logins):
    mail = envelope(settings, "eight bit", ["ops@example.com"], body="配備 ünïcödé\n")
    report = _smtp.deliver_envelopes(endpoint(settings), logins, [mail], policy=FAST)
    assert report.outcomes[0].error is None
    stored = copies(settings, "eight bit")[0]
    assert stored.read_bytes() == mail.data or not stored.read_bytes().isascii()
    assert "BODY=8BITMIME" in json.loads(stored.with_suffix(".json").read_text())["mail_options"]


def test_a_message_over_size_is_refused_before_data(settings, logins):
    mail = envelope(settings, "too large", ["ops@example.com"], body="x" * 5000)
    transcript = _smtp.Transcript()
    report = _smtp.deliver_envelopes(endpoint(settings, "smtp_small_size_port"), logins, [mail], policy=FAST,
                                     transcript=transcript)
    assert report.outcomes[0].error.code == "message_too_large"
    assert not any(line.startswith("C: MAIL") for line in transcript.lines)


def test_later_envelopes_survive_a_drop_of_an_earlier_one(settings, logins):
    first = envelope(settings, "batch first", ["drop-after-data-batch@example.com"])
    second = envelope(settings, "batch second", ["ops@example.com"])
    report = _smtp.deliver_envelopes(endpoint(settings), logins, [first, second], policy=FAST, sleep=lambda _: None)
    assert report.outcomes[0].error.code == "delivery_unknown"
    assert report.outcomes[1].error is None and len(copies(settings, "batch second")) == 1
    assert len(copies(settings, "batch first")) == 1
