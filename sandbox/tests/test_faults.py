# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fault language and its faults: SMTP addresses, token endpoint URLs, and revocation."""

from __future__ import annotations

import json
import smtplib
import threading
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import requests

from sandbox_client import (
    GMAIL_XOAUTH2_CHALLENGE,
    TIMEOUT,
    client_context,
    decoded_challenge,
    fault_uri,
    fetch_access_token,
    logged_in,
    logged_outcomes,
    new_message,
    post_form,
    refresh_form,
    stored_count,
    stored_message,
    xoauth2_response,
)
from xoauth2_sandbox.faults import MAIL_FAULTS, RCPT_FAULTS, TOKEN_FAULTS, FaultRegistry, FaultSpec, FaultSpecError, parse_fault_spec
from xoauth2_sandbox.sandbox import Sandbox

# --------------------------------------------------------------------------------------------------
# fault injection: grammar


@pytest.mark.parametrize(
    ("spec", "allowed", "expected"),
    [
        pytest.param("rcpt451-tag", RCPT_FAULTS, ("rcpt451", 0.0, None), id="every-time"),
        pytest.param("MAIL421x3-Tag-With-Dashes", MAIL_FAULTS, ("mail421", 0.0, 3), id="case-and-count"),
        pytest.param("rcptslow5x2-t", RCPT_FAULTS, ("rcptslow", 5.0, 2), id="timed"),
        pytest.param("hang0.5", TOKEN_FAULTS, ("hang", 0.5, None), id="fraction-no-tag"),
        pytest.param("noaccesstokenx1-t", TOKEN_FAULTS, ("noaccesstoken", 0.0, 1), id="token"),
        pytest.param("redirect307x1-t", TOKEN_FAULTS, ("redirect307", 0.0, 1), id="token-digits-in-kind"),
    ],
)
def test_fault_specs_parse(spec: str, allowed: frozenset[str], expected: tuple[str, float, int | None]) -> None:
    fault = parse_fault_spec(spec, trigger=spec, allowed=allowed)
    assert (fault.kind, fault.seconds, fault.times) == expected and fault.trigger == spec


@pytest.mark.parametrize(
    ("spec", "allowed"),
    [
        pytest.param("rcpt453-t", RCPT_FAULTS, id="unknown-kind"),
        pytest.param("mail421-t", RCPT_FAULTS, id="wrong-place"),
        pytest.param("rcptslow-t", RCPT_FAULTS, id="timed-without-seconds"),
        pytest.param("rcpt4515-t", RCPT_FAULTS, id="seconds-on-untimed"),
        pytest.param("status500x0-t", TOKEN_FAULTS, id="x0"),
        pytest.param("status500x-t", TOKEN_FAULTS, id="x-without-count"),
    ],
)
def test_malformed_fault_specs_are_errors(spec: str, allowed: frozenset[str]) -> None:
    with pytest.raises(FaultSpecError):
        parse_fault_spec(spec, trigger=spec, allowed=allowed)


def test_fault_registry_counts_each_trigger_alone_across_threads() -> None:
    registry = FaultRegistry()
    twice = FaultSpec(trigger="a", kind="rcpt451", times=2)
    other = FaultSpec(trigger="b", kind="rcpt451", times=1)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(registry.fires(twice))) for _thread in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 18 + [True] * 2 and registry.seen("a") == 20
    assert [registry.fires(other), registry.fires(other)] == [True, False]


# --------------------------------------------------------------------------------------------------
# fault injection: SMTP addresses


def fault_address(spec: str) -> str:
    """``fault-<spec>-<unique tag>@example.com``, so that no other test shares its counter."""
    return f"fault-{spec}-{uuid.uuid4().hex[:12]}@example.com"


def assert_disconnected(client: smtplib.SMTP) -> None:
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()


def test_sender_fault_421_closes_n_times_then_mail_goes_through(settings: dict[str, t.Any]) -> None:
    sender = fault_address("mail421x2")
    message, marker = new_message(sender, "friend@example.com")
    for _attempt in range(2):
        with logged_in(settings) as client:
            assert client.mail(sender) == (421, b"4.7.0 Try again later, closing connection.")
            assert_disconnected(client)
    assert stored_count(settings, marker) == 0

    with logged_in(settings) as client:
        client.send_message(message)
    assert stored_count(settings, marker) == 1


def test_recipient_fault_451_n_times_then_accepted_and_the_session_survives(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcpt451x1")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings) as client:
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt(recipient) == (451, b"4.3.0 Mail server temporarily rejected message.")
        assert client.rset()[0] == 250
        client.send_message(message)
    assert stored_count(settings, marker) == 1


@pytest.mark.parametrize(("kind", "reply"), [
    ("rcpt452", (452, b"4.5.3 Too many recipients")),
    ("rcpt552", (552, b"5.5.3 Too many recipients")),
])
def test_recipient_fault_too_many_recipients_n_times_then_accepted(settings: dict[str, t.Any], kind: str,
                                                                   reply: tuple[int, bytes]) -> None:
    recipient = fault_address(f"{kind}x1")
    message, marker = new_message(settings["account"], f"friend@example.com, {recipient}")
    with logged_in(settings) as client:
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt("friend@example.com")[0] == 250
        assert client.rcpt(recipient) == reply
        assert client.rset()[0] == 250
        client.send_message(message)
    assert stored_count(settings, marker) == 1


def test_recipient_fault_mailbox_full_defers_that_mailbox_alone_every_time(settings: dict[str, t.Any]) -> None:
    full = fault_address("rcptfull")
    message, marker = new_message(settings["account"], f"friend@example.com, {full}")
    with logged_in(settings) as client:
        for _attempt in range(3):
            assert client.mail(settings["account"])[0] == 250
            assert client.rcpt("friend@example.com")[0] == 250
            code, text = client.rcpt(full)
            assert (code, text.split(b" ", 1)[0]) == (452, b"4.2.2")
            assert b"out of storage space" in text
            assert client.rset()[0] == 250
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail(settings["account"], [full], message.as_bytes())
        client.sendmail(settings["account"], ["friend@example.com", full], message.as_bytes())
    assert stored_count(settings, marker) == 1


def test_recipient_fault_without_count_fires_every_time(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcpt451")
    with logged_in(settings) as client:
        assert client.mail(settings["account"])[0] == 250
        assert [client.rcpt(recipient)[0] for _attempt in range(3)] == [451, 451, 451]


def test_recipient_fault_421_closes_the_connection(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcpt421x1")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings, "smtp_ssl_port") as client:
        assert client.mail(settings["account"])[0] == 250
        assert client.rcpt(recipient) == (421, b"4.7.0 Try again later, closing connection.")
        assert_disconnected(client)
    with logged_in(settings, "smtp_ssl_port") as client:
        client.send_message(message)
    assert stored_count(settings, marker) == 1


@pytest.mark.parametrize(
    ("kind", "reply"),
    [
        pytest.param("data451", (451, b"4.3.0 Mail server temporarily rejected message."), id="451"),
        pytest.param("data550", (550, b"5.7.1 Message rejected (sandbox)."), id="550"),
    ],
)
def test_data_fault_refuses_the_final_dot_without_storing(settings: dict[str, t.Any], kind: str, reply: tuple[int, bytes]) -> None:
    recipient = fault_address(f"{kind}x2")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings) as client:
        for _attempt in range(2):
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.send_message(message)
            assert (refused.value.smtp_code, refused.value.smtp_error) == reply
        assert stored_count(settings, marker) == 0
        client.send_message(message)
    assert stored_count(settings, marker) == 1


def test_faults_of_several_recipients_apply_per_recipient_and_once_per_data(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    refused_rcpt = fault_address("rcpt451")
    data_fault = fault_address("data451x1")
    message, marker = new_message(settings["account"], "friend@example.com")
    recipients = ["friend@example.com", refused_rcpt, data_fault, data_fault]
    with logged_in(settings) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(settings["account"], recipients, message.as_bytes())
        assert refused.value.smtp_code == 451
        # Two accepted recipients carry the fault, one DATA: counted once, so x1 is used up.
        assert sandbox.faults.seen(data_fault) == 1
        assert client.sendmail(settings["account"], recipients, message.as_bytes()) == {
            refused_rcpt: (451, b"4.3.0 Mail server temporarily rejected message.")}
    _path, sidecar = stored_message(settings, marker)
    assert sidecar["rcpt_tos"] == ["friend@example.com", data_fault, data_fault]


def test_slow_rcpt_exceeds_a_short_timeout_then_answers_250(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("rcptslow1x2")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings, timeout=0.3) as client:
        assert client.mail(settings["account"])[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.rcpt(recipient)
    with logged_in(settings) as client:
        started = time.monotonic()
        assert client.mail(settings["account"])[0] == 250 and client.rcpt(recipient)[0] == 250
        assert time.monotonic() - started >= 1
    with logged_in(settings) as client:
        started = time.monotonic()
        client.send_message(message)
        assert time.monotonic() - started < 1
    assert stored_count(settings, marker) == 1


def test_slow_data_stores_the_message_before_the_client_gives_up(settings: dict[str, t.Any]) -> None:
    recipient = fault_address("dataslow1x1")
    message, marker = new_message(settings["account"], recipient)
    with logged_in(settings, timeout=0.3) as client:
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.send_message(message)
    assert stored_count(settings, marker) == 1

    again, second_marker = new_message(settings["account"], recipient)
    with logged_in(settings, timeout=0.8) as client:
        client.send_message(again)
    assert stored_count(settings, second_marker) == 1


@pytest.mark.parametrize(
    ("side", "address"),
    [pytest.param("mail", "fault-rcpt451-x@example.com", id="rcpt-fault-as-sender"),
     pytest.param("rcpt", "fault-mail421-x@example.com", id="mail-fault-as-recipient"),
     pytest.param("rcpt", "fault-rcpt453-x@example.com", id="unknown-fault")],
)
def test_malformed_fault_addresses_are_refused_not_ignored(settings: dict[str, t.Any], side: str, address: str) -> None:
    with logged_in(settings) as client:
        if side == "rcpt":
            assert client.mail(settings["account"])[0] == 250
        code, text = client.mail(address) if side == "mail" else client.rcpt(address)
        assert (code, text.startswith(b"5.1.3 Not a sandbox fault")) == (553, True)
        assert client.noop()[0] == 250


# --------------------------------------------------------------------------------------------------
# fault injection: token endpoint, and revocation


@pytest.mark.parametrize(
    ("spec", "status", "answer"),
    [
        pytest.param("status500x2", 500, {"error": "internal_failure"}, id="500"),
        pytest.param("status503x2", 503, {"error": "temporarily_unavailable"}, id="503"),
    ],
)
def test_token_fault_status_n_times_then_a_token(settings: dict[str, t.Any], spec: str, status: int, answer: dict[str, str]) -> None:
    tagged, uri = fault_uri(settings, spec)
    for _attempt in range(2):
        got_status, body = post_form(uri, refresh_form(settings), settings)
        assert (got_status, json.loads(body)) == (status, answer)
    got_status, body = post_form(uri, refresh_form(settings), settings)
    assert got_status == 200 and json.loads(body)["access_token"].startswith("ya29.sandbox-")

    kind = spec.split("x")[0]
    assert logged_outcomes(settings, tagged) == [f"fault:{kind}", f"fault:{kind}", "issued"]
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    assert f"/fault/{tagged}/token" in log_text and settings["client_secret"] not in log_text


def test_token_fault_without_count_fires_every_time(settings: dict[str, t.Any]) -> None:
    _tagged, uri = fault_uri(settings, "status503")
    assert [post_form(uri, refresh_form(settings), settings)[0] for _attempt in range(3)] == [503, 503, 503]


def test_token_faults_with_a_broken_200_answer(settings: dict[str, t.Any]) -> None:
    _tagged, uri = fault_uri(settings, "notjsonx1")
    status, body = post_form(uri, refresh_form(settings), settings)
    assert status == 200 and body.lstrip().startswith(b"<!DOCTYPE html>")
    assert "access_token" in json.loads(post_form(uri, refresh_form(settings), settings)[1])

    _tagged, uri = fault_uri(settings, "noaccesstokenx1")
    status, body = post_form(uri, refresh_form(settings), settings)
    assert status == 200 and "access_token" not in json.loads(body) and json.loads(body)["token_type"] == "Bearer"
    assert "access_token" in json.loads(post_form(uri, refresh_form(settings), settings)[1])


def test_token_fault_redirect307_points_back_to_itself_then_answers(settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "redirect307x1")
    first = requests.post(uri, data=refresh_form(settings), verify=settings["ca_path"], allow_redirects=False, timeout=TIMEOUT)
    assert (first.status_code, first.headers["Location"], first.content) == (307, uri, b"")
    # What a client that follows the redirect does: the same form to the same URL, answered like /token now.
    second = requests.post(first.headers["Location"], data=refresh_form(settings), verify=settings["ca_path"],
                           allow_redirects=False, timeout=TIMEOUT)
    assert second.status_code == 200 and "access_token" in second.json()
    assert logged_outcomes(settings, tagged) == ["fault:redirect307", "issued"]


def test_unknown_token_fault_is_404_and_other_errors_still_apply(settings: dict[str, t.Any]) -> None:
    _tagged, uri = fault_uri(settings, "status418")
    status, body = post_form(uri, refresh_form(settings), settings)
    assert (status, json.loads(body)["error"]) == (404, "unknown_fault")
    # A fault that does not fire leaves the normal checks in place.
    _tagged, uri = fault_uri(settings, "status500x1")
    assert post_form(uri, refresh_form(settings), settings)[0] == 500
    status, body = post_form(uri, refresh_form(settings, client_secret="wrong"), settings)
    assert (status, json.loads(body)["error"]) == (401, "invalid_client")


def test_token_hang_exceeds_a_short_timeout_and_is_logged_at_once(settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "hang2x1")
    request = urllib.request.Request(uri, data=urllib.parse.urlencode(refresh_form(settings)).encode(), method="POST")
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(request, timeout=0.3, context=client_context(settings))  # pylint: disable=consider-using-with
    assert logged_outcomes(settings, tagged) == ["fault:hang"]
    started = time.monotonic()
    assert post_form(uri, refresh_form(settings), settings)[0] == 200
    assert time.monotonic() - started < 1
    assert logged_outcomes(settings, tagged) == ["fault:hang", "issued"]


def test_token_hang_blocks_no_other_request_and_then_answers_normally(settings: dict[str, t.Any]) -> None:
    tagged, uri = fault_uri(settings, "hang1x1")
    answers: list[tuple[int, bytes]] = []
    hanging = threading.Thread(target=lambda: answers.append(post_form(uri, refresh_form(settings), settings)))
    started = time.monotonic()
    hanging.start()
    time.sleep(0.2)
    assert post_form(settings["token_uri"], refresh_form(settings), settings)[0] == 200
    assert time.monotonic() - started < 1
    hanging.join(timeout=TIMEOUT)
    assert time.monotonic() - started >= 1
    assert answers[0][0] == 200 and "access_token" in json.loads(answers[0][1])
    # One log line per request, written on arrival: none more once the hung request was answered.
    assert logged_outcomes(settings, tagged) == ["fault:hang"]


def test_stop_is_prompt_while_a_token_request_hangs(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "hang") as own:
        uri = own.settings["token_uri_fault"].replace("{fault}", "hang60-stop")
        request = urllib.request.Request(uri, data=urllib.parse.urlencode(refresh_form(own.settings)).encode(), method="POST")
        context = client_context(own.settings)

        def wait_for_the_answer() -> None:
            # A client patient enough that only the released hang can end it within the join below.
            with urllib.request.urlopen(request, timeout=60, context=context) as response:
                response.read()

        hanging = threading.Thread(target=wait_for_the_answer, daemon=True)
        hanging.start()
        deadline = time.monotonic() + TIMEOUT
        while own.faults.seen("hang60-stop") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert own.faults.seen("hang60-stop") == 1
        started = time.monotonic()
        own.stop()
        assert time.monotonic() - started < 10
    hanging.join(timeout=5)
    assert not hanging.is_alive()


def test_revoked_access_token_is_refused_at_auth_like_an_invalid_one(settings: dict[str, t.Any]) -> None:
    token = fetch_access_token(settings)
    assert post_form(settings["revoke_uri"], {"token": token}, settings) == (200, b"{}")

    with logged_in_plain_bare(settings) as client:
        code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], token))
        assert code == 334 and decoded_challenge(challenge) == GMAIL_XOAUTH2_CHALLENGE
        assert client.docmd("")[0] == 535
    status, body = post_form(settings["revoke_uri"], {"token": token}, settings)
    assert (status, json.loads(body)) == (400, {"error": "invalid_token"})
    log_text = Path(settings["token_log"]).read_text(encoding="utf-8")
    assert token not in log_text
    assert [json.loads(line)["outcome"] for line in log_text.splitlines() if '"/revoke"' in line][-2:] == ["revoked", "invalid_token"]


def test_revoked_refresh_token_no_longer_refreshes(sandbox: t.Any, settings: dict[str, t.Any]) -> None:
    refresh_token = sandbox.authority.grant_refresh_token(settings["client_id"], settings["account"])
    assert post_form(settings["token_uri"], refresh_form(settings, refresh_token=refresh_token), settings)[0] == 200
    # Google also takes the token in the query.
    assert post_form(settings["revoke_uri"] + "?token=" + urllib.parse.quote(refresh_token), {}, settings) == (200, b"{}")
    status, body = post_form(settings["token_uri"], refresh_form(settings, refresh_token=refresh_token), settings)
    assert (status, json.loads(body)["error"]) == (400, "invalid_grant")
    status, body = post_form(settings["revoke_uri"], {}, settings)
    assert (status, json.loads(body)) == (400, {"error": "invalid_token"})


def logged_in_plain_bare(settings: dict[str, t.Any]) -> smtplib.SMTP:
    """An unauthenticated client of the plain port, after EHLO."""
    client = smtplib.SMTP(settings["host"], settings["smtp_plain_port"], timeout=TIMEOUT)
    client.ehlo()
    return client
