# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The device authorization grant: its forms and its poll with a scripted endpoint and a fake clock, then against the
sandbox's device endpoints (with a thread playing the user who approves)."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import urllib.parse
import urllib.request

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _consent, _device_flow
from ansible_collections.smail.xoauth2.plugins.plugin_utils._client_secrets import ClientSecrets

CLIENT = _device_flow.DeviceClient(client_id="cid", client_secret=None, device_authorization_uri="https://idp.example/device",
                                   token_uri="https://idp.example/token", scopes=("mail.send", "offline_access"))
AUTHORIZATION = _device_flow.DeviceAuthorization(device_code="DEVICE-CODE-SECRET", user_code="BCDF-GHJK",
                                                 verification_uri="https://idp.example/activate",
                                                 verification_uri_complete=None, expires_in=60, interval=5)
TOKENS = {"access_token": "at", "refresh_token": "rt", "expires_in": 3599, "scope": "mail.send"}


class Endpoint:
    """A scripted token endpoint on a fake clock: each poll takes the next answer; sleeping moves the clock."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.now = 1000.0
        self.sleeps = []
        self.polls = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def post(self, uri, form):
        self.polls.append((self.now, uri, dict(form)))
        answer = self.answers.pop(0) if self.answers else {"error": "authorization_pending"}
        return (200 if "error" not in answer else 400), dict(answer)

    def poll(self, *, timeout=300, authorization=AUTHORIZATION):
        return _device_flow.poll_for_token(CLIENT, authorization, post=self.post, timeout=timeout, clock=self.clock,
                                           sleep=self.sleep)


PENDING = {"error": "authorization_pending"}
SLOW_DOWN = {"error": "slow_down"}


# --- the forms ------------------------------------------------------------------------------------

def test_forms_send_the_secret_only_when_given():
    assert _device_flow.device_authorization_form(CLIENT) == {"client_id": "cid", "scope": "mail.send offline_access"}
    assert _device_flow.device_token_form(CLIENT, "dc") == {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "dc", "client_id": "cid"}
    confidential = _device_flow.DeviceClient("cid", "s3cret", CLIENT.device_authorization_uri, CLIENT.token_uri, CLIENT.scopes)
    assert _device_flow.device_authorization_form(confidential)["client_secret"] == "s3cret"
    assert _device_flow.device_token_form(confidential, "dc")["client_secret"] == "s3cret"
    assert "s3cret" not in repr(confidential)


def test_the_device_code_is_not_in_the_repr():
    assert "DEVICE-CODE-SECRET" not in repr(AUTHORIZATION) and "BCDF-GHJK" in repr(AUTHORIZATION)


class TestParseDeviceAuthorization:
    def test_rfc_answer_and_defaults(self):
        parsed = _device_flow.parse_device_authorization(200, {
            "device_code": "dc", "user_code": "uc", "verification_uri": "https://v.example/", "expires_in": "900",
            "verification_uri_complete": "https://v.example/?c=uc"}, uri="https://d.example/")
        assert (parsed.device_code, parsed.user_code, parsed.expires_in, parsed.interval) == ("dc", "uc", 900, 5)
        assert parsed.verification_uri_complete == "https://v.example/?c=uc"

    def test_verification_url_of_google_and_azure_ad_v1(self):
        parsed = _device_flow.parse_device_authorization(200, {
            "device_code": "dc", "user_code": "uc", "verification_url": "https://v.example/", "expires_in": 900,
            "interval": 0}, uri="https://d.example/")
        assert (parsed.verification_uri, parsed.verification_uri_complete, parsed.interval) == ("https://v.example/", None, 5)

    @pytest.mark.parametrize("data", [{}, {"device_code": "dc", "user_code": "uc", "verification_uri": "v"},
                                      {"device_code": "dc", "user_code": "", "verification_uri": "v", "expires_in": 9},
                                      {"device_code": 1, "user_code": "uc", "verification_uri": "v", "expires_in": 9}])
    def test_incomplete_answers(self, data):
        with pytest.raises(SmailError) as info:
            _device_flow.parse_device_authorization(200, data, uri="https://d.example/")
        assert info.value.code == "token_endpoint_bad_response"

    @pytest.mark.parametrize("error, code", [("invalid_client", "invalid_client"), ("unauthorized_client", "unauthorized_client"),
                                             ("invalid_scope", "invalid_scope"), ("server_said_no", "token_endpoint_error")])
    def test_refusals(self, error, code):
        with pytest.raises(SmailError) as info:
            _device_flow.parse_device_authorization(400, {"error": error, "error_description": "AADSTS7000218"},
                                                    uri="https://d.example/")
        assert (info.value.code, info.value.details["endpoint_error"]) == (code, error)
        assert info.value.msg.startswith("The device authorization endpoint refused the device authorization request")
        if code in ("invalid_client", "unauthorized_client"):
            assert "Allow public client flows" in info.value.hint


# --- the poll -------------------------------------------------------------------------------------

def test_pending_polls_on_at_the_interval_until_the_tokens_come():
    endpoint = Endpoint(PENDING, PENDING, TOKENS)
    assert endpoint.poll() == TOKENS
    assert endpoint.sleeps == [5, 5, 5]
    assert [form for _at, _uri, form in endpoint.polls] == [_device_flow.device_token_form(CLIENT, "DEVICE-CODE-SECRET")] * 3
    assert {uri for _at, uri, _form in endpoint.polls} == {CLIENT.token_uri}


def test_slow_down_adds_five_seconds_for_every_later_poll():
    endpoint = Endpoint(PENDING, SLOW_DOWN, PENDING, SLOW_DOWN, PENDING, TOKENS)
    assert endpoint.poll() == TOKENS
    assert endpoint.sleeps == [5, 5, 10, 10, 15, 15]


@pytest.mark.parametrize("refusal", ["access_denied", "authorization_declined"])
def test_a_refusal_is_device_access_denied(refusal):
    endpoint = Endpoint(PENDING, {"error": refusal, "error_description": "The end user denied the request."})
    with pytest.raises(_consent.ConsentError) as info:
        endpoint.poll()
    assert (info.value.code, info.value.details["endpoint_error"]) == ("device_access_denied", refusal)
    assert "https://idp.example/activate" in info.value.msg
    assert len(endpoint.polls) == 2


def test_expired_token_is_device_code_expired():
    endpoint = Endpoint(PENDING, {"error": "expired_token"})
    with pytest.raises(_consent.ConsentError) as info:
        endpoint.poll()
    assert info.value.code == "device_code_expired" and "60 seconds" in info.value.msg


def test_no_poll_after_the_code_expired():
    endpoint = Endpoint()  # pending for ever
    with pytest.raises(_consent.ConsentError) as info:
        endpoint.poll()
    assert info.value.code == "device_code_expired"
    # Polls at 5, 10, ... 60 s; the next would come after expires_in.
    assert [at - 1000 for at, _uri, _form in endpoint.polls] == [5.0 * n for n in range(1, 13)]


def test_timeout_shorter_than_the_code_ends_the_wait_sooner():
    endpoint = Endpoint()
    with pytest.raises(_consent.ConsentError) as info:
        endpoint.poll(timeout=12)
    assert info.value.code == "timeout" and "12 seconds" in info.value.msg
    assert len(endpoint.polls) == 2


def test_slow_down_near_the_end_gives_up_rather_than_poll_too_soon():
    endpoint = Endpoint(*([PENDING] * 10), SLOW_DOWN)
    with pytest.raises(_consent.ConsentError) as info:
        endpoint.poll()
    assert info.value.code == "device_code_expired" and len(endpoint.polls) == 11  # the 12th would be at 65 s


@pytest.mark.parametrize("answer, code", [({"error": "invalid_grant"}, "invalid_grant"),
                                          ({"error": "bad_verification_code"}, "token_endpoint_error"),
                                          ({"error": "invalid_client"}, "invalid_client")])
def test_other_errors_end_the_poll(answer, code):
    endpoint = Endpoint(answer)
    with pytest.raises(SmailError) as info:
        endpoint.poll()
    assert info.value.code == code and len(endpoint.polls) == 1


# --- resolving the client -------------------------------------------------------------------------

class TestResolveDeviceClient:
    def test_google_is_refused_before_anything_else(self):
        with pytest.raises(OptionError) as info:
            _device_flow.resolve_device_client(provider="google")
        assert info.value.option == "mode"
        assert "https://mail.google.com/" in info.value.msg and "mode=loopback" in info.value.msg
        assert "mode=manual" in info.value.msg

    def test_microsoft_preset_with_tenant(self):
        client = _device_flow.resolve_device_client(provider="microsoft", client_id="cid", tenant="contoso.example")
        assert client.device_authorization_uri == "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/devicecode"
        assert client.token_uri == "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
        assert client.scopes == ("https://outlook.office.com/SMTP.Send", "offline_access")
        assert client.client_secret is None

    def test_custom_from_the_options_and_the_client_json(self):
        from_file = ClientSecrets(client_id="file-id", client_secret="file-secret", token_uri="https://t.example/token")
        client = _device_flow.resolve_device_client(provider="custom", device_authorization_uri="https://d.example/code",
                                                    scopes="a b", client_secrets=from_file)
        assert (client.client_id, client.client_secret, client.token_uri, client.scopes) == (
            "file-id", "file-secret", "https://t.example/token", ("a", "b"))

    @pytest.mark.parametrize("kwargs, option", [
        ({"provider": "custom", "client_id": "c", "token_uri": "https://t.example/", "scopes": "s"}, "device_authorization_uri"),
        ({"provider": "custom", "client_id": "c", "device_authorization_uri": "http://oauth.example.com/code",
          "token_uri": "https://t.example/", "scopes": "s"}, "device_authorization_uri"),
        ({"provider": "custom", "client_id": "c", "device_authorization_uri": "https://d.example/", "scopes": "s"}, "token_uri"),
        ({"provider": "microsoft"}, "client_id"),
    ])
    def test_gaps_name_the_option(self, kwargs, option):
        with pytest.raises(OptionError) as info:
            _device_flow.resolve_device_client(**kwargs)
        assert info.value.option == option

    def test_http_to_a_loopback_host_is_allowed(self):
        client = _device_flow.resolve_device_client(provider="custom", client_id="c", scopes="s",
                                                    device_authorization_uri="http://127.0.0.1:8080/device/code",
                                                    token_uri="http://localhost:8080/token")
        assert client.device_authorization_uri.startswith("http://127.0.0.1:")


# --- against the sandbox --------------------------------------------------------------------------

def sandbox_device_client(settings, query="", *, microsoft=False, secret=True):
    if microsoft:
        return _device_flow.resolve_device_client(
            provider="microsoft", client_id=settings["microsoft_client_id"], tenant="contoso.example",
            client_secret=settings["microsoft_client_secret"] if secret else None,
            device_authorization_uri=settings["microsoft_device_authorization_uri"] + (f"?{query}" if query else ""),
            token_uri=settings["microsoft_token_uri"])
    return _device_flow.resolve_device_client(
        provider="custom", client_id=settings["client_id"], client_secret=settings["client_secret"] if secret else None,
        device_authorization_uri=settings["device_authorization_uri"] + (f"?{query}" if query else ""),
        token_uri=settings["token_uri"], scopes=["https://mail.google.com/", "openid", "email"])


def tls(settings):
    return _grants.TLSSettings(ca_path=settings["ca_path"], timeout=10)


def test_the_user_approves_while_the_task_polls(sandbox, settings, fake_clock, monkeypatch):
    # The sandbox's device grants read the test's clock: it answers slow_down to a poll sooner than its interval after
    # another, and the task's waits between polls pass on that clock, not on a real one.
    monkeypatch.setattr(sandbox.authority, "device_clock", fake_clock)
    announced = []
    approved = threading.Event()

    def approve(authorization):
        request = urllib.request.Request(settings["device_approve_uri"], method="POST",
                                         data=urllib.parse.urlencode({"user_code": authorization.user_code}).encode())
        with urllib.request.urlopen(request, timeout=10, context=ssl.create_default_context(cafile=settings["ca_path"])) as answer:
            assert answer.status == 200
        approved.set()

    def sleep(seconds):
        """The wait before each poll; during the second (after a poll was answered pending) the user approves."""
        fake_clock.sleep(seconds)
        if len(fake_clock.pauses) == 2:
            approve(announced[0])

    authorization = _device_flow.run_device_flow(sandbox_device_client(settings, "interval=1"), timeout=30, tls=tls(settings),
                                                 announce=announced.append, clock=fake_clock, sleep=sleep)
    assert approved.is_set() and announced[0].interval == 1 and fake_clock.pauses == [1, 1]
    assert authorization.refresh_token.startswith("1//sandbox-") and authorization.account == settings["account"]
    log = [json.loads(line) for line in open(settings["token_log"], encoding="utf-8")]
    polls = [entry["outcome"] for entry in log if entry["grant_type"] == _device_flow.DEVICE_CODE_GRANT][-3:]
    assert "authorization_pending" in polls and polls[-1] == "issued"


def test_microsoft_public_client_and_the_sandbox_switches(settings, fake_clock):
    # On a fake clock the flow polls at once; the switches decide at the first poll, which the sandbox takes at any time.
    authorization = _device_flow.run_device_flow(sandbox_device_client(settings, "approve_after=0", microsoft=True, secret=False),
                                                 timeout=30, tls=tls(settings), login_hint="reports@contoso.example",
                                                 clock=fake_clock, sleep=fake_clock.sleep)
    assert authorization.scopes == ("https://outlook.office.com/SMTP.Send",)
    assert authorization.account == "reports@contoso.example" and authorization.refresh_token
    assert fake_clock.pauses == [1]

    with pytest.raises(_consent.ConsentError) as info:
        _device_flow.run_device_flow(sandbox_device_client(settings, "deny_after=0", microsoft=True), timeout=30, tls=tls(settings),
                                     clock=fake_clock, sleep=fake_clock.sleep)
    assert (info.value.code, info.value.details["endpoint_error"]) == ("device_access_denied", "authorization_declined")

    with pytest.raises(SmailError) as info:
        _device_flow.run_device_flow(
            _device_flow.DeviceClient("unknown", None, settings["device_authorization_uri"], settings["token_uri"], ("s",)),
            timeout=30, tls=tls(settings))
    assert info.value.code == "invalid_client"


@pytest.mark.parametrize("timeout, code", [(12, "timeout"), (300, "device_code_expired")])
def test_giving_up_says_when_the_code_was_shown(timeout, code):
    endpoint = Endpoint()
    answers = {"https://idp.example/device": {"device_code": "DEVICE-CODE-SECRET", "user_code": "BCDF-GHJK",
                                              "verification_uri": "https://idp.example/activate", "expires_in": 60,
                                              "interval": 5}}

    def post(uri, form):
        return (200, dict(answers[uri])) if uri in answers else endpoint.post(uri, form)

    shown = datetime.datetime(2026, 12, 6, 14, 3, 9, tzinfo=datetime.timezone.utc)
    with pytest.raises(_consent.ConsentError) as info:
        _device_flow.run_device_flow(CLIENT, timeout=timeout, post=post, clock=endpoint.clock, sleep=endpoint.sleep,
                                     now=lambda: shown)
    assert info.value.code == code
    assert "The code was shown at 2026-12-06T14:03:09Z." in info.value.hint
    assert "DEVICE-CODE-SECRET" not in info.value.full_msg
