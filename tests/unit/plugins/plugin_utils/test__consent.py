# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The consent core against the sandbox's authorization and token endpoints, with a thread playing the browser."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import endpoint as _token_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _consent
from ansible_collections.smail.xoauth2.plugins.plugin_utils._client_secrets import ClientSecrets

TIMEOUT = 10


def sandbox_client(settings, **overrides):
    options = {"provider": "custom", "client_id": settings["client_id"], "client_secret": settings["client_secret"],
               "auth_uri": settings["auth_uri"], "token_uri": settings["token_uri"], "scopes": ["https://mail.google.com/"]}
    options.update(overrides)
    return _consent.resolve_client(**options)


def microsoft_client(settings):
    return _consent.resolve_client(provider="microsoft", client_id=settings["microsoft_client_id"],
                                   client_secret=settings["microsoft_client_secret"], auth_uri=settings["microsoft_auth_uri"],
                                   token_uri=settings["microsoft_token_uri"], tenant="contoso.example")


def tls(settings):
    return _grants.TLSSettings(ca_path=settings["ca_path"], timeout=TIMEOUT)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def consent(url, settings):
    """What a browser does at the consent page: the address it is redirected to (not followed)."""
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=settings["ca_path"])))
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(url, timeout=TIMEOUT)  # pylint: disable=consider-using-with
    assert redirect.value.code == 302
    return redirect.value.headers["Location"]


def fetch(url):
    """GET a loopback URL like a browser: (status, page)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Browser:
    """Plays the browser of run_loopback: follows the consent, optionally rewriting the redirect first."""

    def __init__(self, settings, *, rewrite=None, first=None):
        self.settings = settings
        self.rewrite = rewrite or (lambda location: location)
        self.first = first
        self._pages = []
        self._done = threading.Event()

    def __call__(self, url):
        try:
            redirect = urllib.parse.urlsplit(consent(url, self.settings))
            if self.first:
                self._pages.append(fetch(f"http://{redirect.netloc}{self.first}"))
            self._pages.append(fetch(self.rewrite(redirect.geturl())))
        finally:
            self._done.set()

    @property
    def pages(self):
        """(status, page) of every loopback request, once the browser is done."""
        assert self._done.wait(TIMEOUT)
        return self._pages


def replace_param(location, name, value):
    parts = urllib.parse.urlsplit(location)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query[name] = value
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


# --- resolve_client -------------------------------------------------------------------------------

class TestResolveClient:
    def test_google_preset_and_file(self):
        from_file = ClientSecrets(client_id="cid", client_secret="from-file", auth_uri="https://auth.example/a",
                                  token_uri="https://token.example/t")
        client = _consent.resolve_client(provider="google", client_secret="option-wins", client_secrets=from_file)
        assert (client.client_id, client.client_secret, client.auth_uri, client.token_uri) == (
            "cid", "option-wins", "https://auth.example/a", "https://token.example/t")
        assert client.scopes == ("https://mail.google.com/",)
        assert dict(client.consent_params) == {"access_type": "offline", "prompt": "consent"}
        assert "option-wins" not in repr(client)

    def test_google_defaults(self):
        client = _consent.resolve_client(provider="google", client_id="cid")
        assert client.auth_uri == _providers.PROVIDERS["google"].auth_uri and client.token_uri == _providers.PROVIDERS["google"].token_uri

    def test_microsoft_tenant(self):
        client = _consent.resolve_client(provider="microsoft", client_id="cid", tenant="contoso.onmicrosoft.com")
        assert client.auth_uri == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        assert client.scopes == ("https://outlook.office.com/SMTP.Send", "offline_access")
        assert client.consent_params == ()

    @pytest.mark.parametrize("kwargs, option", [
        ({"provider": "google"}, "client_id"),
        ({"provider": "custom", "client_id": "c", "token_uri": "https://t.example/"}, "auth_uri"),
        ({"provider": "custom", "client_id": "c", "auth_uri": "https://a.example/"}, "token_uri"),
        ({"provider": "custom", "client_id": "c", "auth_uri": "https://a.example/", "token_uri": "https://t.example/"}, "scopes"),
        ({"provider": "google", "client_id": "c", "token_uri": "ftp://t.example/"}, "token_uri"),
        ({"provider": "google", "client_id": "c", "auth_uri": "file:///etc/passwd"}, "auth_uri"),
        ({"provider": "yahoo", "client_id": "c"}, "provider"),
    ])
    def test_gaps_name_the_option(self, kwargs, option):
        with pytest.raises(OptionError) as info:
            _consent.resolve_client(**kwargs)
        assert info.value.option == option


# --- the pieces ---------------------------------------------------------------------------------

class TestParseAuthorizationResponse:
    def test_code_from_url_or_query(self):
        assert _consent.parse_authorization_response("http://127.0.0.1:1/?state=s&code=c", expected_state="s") == "c"
        assert _consent.parse_authorization_response("  code=c&state=s\n", expected_state="s") == "c"

    @pytest.mark.parametrize("response", ["http://127.0.0.1:1/?state=other&code=c", "http://127.0.0.1:1/?code=c",
                                          "http://127.0.0.1:1/?state=other&error=access_denied"])
    def test_state_is_checked_first(self, response):
        with pytest.raises(_consent.ConsentError) as info:
            _consent.parse_authorization_response(response, expected_state="s")
        assert info.value.code == "state_mismatch"

    def test_refusal_and_other_errors(self):
        with pytest.raises(_consent.ConsentError) as info:
            _consent.parse_authorization_response("?state=s&error=access_denied", expected_state="s")
        assert info.value.code == "access_denied"
        with pytest.raises(_consent.ConsentError) as info:
            _consent.parse_authorization_response("?state=s&error=invalid_scope&error_description=no", expected_state="s")
        assert (info.value.code, info.value.details["endpoint_error"]) == ("authorization_error", "invalid_scope")

    def test_no_code(self):
        with pytest.raises(OptionError) as info:
            _consent.parse_authorization_response("?state=s", expected_state="s")
        assert info.value.option == "authorization_response"


def test_account_from_id_token():
    def token(claims):
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"e30.{payload}.sig"

    assert _consent.account_from_id_token(token({"email": "a@example.com", "preferred_username": "b"})) == "a@example.com"
    assert _consent.account_from_id_token(token({"preferred_username": "b@contoso.example"})) == "b@contoso.example"
    for broken in (None, "", "a.b", "a.%%%.c", token(["not", "a", "dict"])):
        assert _consent.account_from_id_token(broken) is None


def test_start_authorization_has_pkce_state_and_the_presets_parameters(settings):
    pending = _consent.start_authorization(sandbox_client(settings), redirect_uri="http://127.0.0.1:9/", login_hint="u@example.com")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(pending.url).query))
    assert query["code_challenge_method"] == "S256"
    expected_challenge = base64.urlsafe_b64encode(hashlib.sha256(pending.code_verifier.encode()).digest()).rstrip(b"=")
    assert query["code_challenge"] == expected_challenge.decode()
    assert query["state"] == pending.state and len(pending.state) >= 20
    assert (query["access_type"], query["prompt"], query["login_hint"]) == ("offline", "consent", "u@example.com")
    assert query["redirect_uri"] == "http://127.0.0.1:9/"
    assert pending.code_verifier not in repr(pending)

    microsoft = _consent.start_authorization(microsoft_client(settings), redirect_uri="http://127.0.0.1:9/")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(microsoft.url).query))
    assert "access_type" not in query and "prompt" not in query
    assert query["scope"] == "https://outlook.office.com/SMTP.Send offline_access"


# --- loopback mode ------------------------------------------------------------------------------

class TestLoopback:
    def test_consent_yields_a_refresh_token_that_refreshes(self, sandbox, settings):
        announced = []
        browser = Browser(settings, first="/favicon.ico")
        authorization = _consent.run_loopback(sandbox_client(settings), timeout=TIMEOUT, login_hint=settings["account"],
                                              announce=announced.append, open_browser=browser, tls=tls(settings))
        assert announced and announced[0].startswith(settings["auth_uri"] + "?")
        assert browser.pages[0][0] == 404  # the favicon request did not end the wait
        assert browser.pages[1][0] == 200 and "close this tab" in browser.pages[1][1]
        assert authorization.account == settings["account"] and authorization.scopes == ("https://mail.google.com/",)
        assert authorization.expires_in == 3599
        assert authorization.refresh_token not in repr(authorization)
        grant = _grants.resolve_grant(provider="custom", client_id=settings["client_id"], client_secret=settings["client_secret"],
                                      refresh_token=authorization.refresh_token, token_uri=settings["token_uri"])
        refreshed = _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert sandbox.authority.lookup_access_token(refreshed.token).account == settings["account"]

    def test_a_forged_request_does_not_end_the_wait(self, settings):
        # Any local user can send this before the browser comes back; the consent still completes.
        notes = []
        browser = Browser(settings, first="/?state=forged&code=x")
        authorization = _consent.run_loopback(sandbox_client(settings), timeout=TIMEOUT, open_browser=browser,
                                              tls=tls(settings), note=notes.append)
        assert authorization.refresh_token
        assert [status for status, _page in browser.pages] == [400, 200]
        assert len(notes) == 1 and "state" in notes[0] and "code=x" not in notes[0]

    def test_only_foreign_states_is_a_timeout_that_says_so(self, settings):
        browser = Browser(settings, rewrite=lambda location: replace_param(location, "state", "forged"))
        noted = []
        # The wait's time runs out once the forged redirect was answered and ignored (not before it came).
        with pytest.raises(_consent.ConsentError) as info:
            _consent.run_loopback(sandbox_client(settings), timeout=2, open_browser=browser, tls=tls(settings),
                                  note=noted.append, clock=lambda: 3.0 if noted else 0.0)
        assert info.value.code == "timeout" and "1 request(s) with another state were ignored" in info.value.msg
        assert browser.pages[0][0] == 400 and len(noted) == 1

    def test_refusal_is_access_denied(self, settings):
        browser = Browser(settings)
        with pytest.raises(_consent.ConsentError) as info:
            _consent.run_loopback(sandbox_client(settings), timeout=TIMEOUT, login_hint="deny.me@example.com",
                                  open_browser=browser, tls=tls(settings))
        assert info.value.code == "access_denied"
        assert browser.pages[0][0] == 400 and "refused" in browser.pages[0][1]

    def test_no_answer_is_timeout(self, settings):
        # The clock's readings: the start, one wait that ends without a request, and the deadline (a fourth is none).
        readings = iter((0.0, 0.49, 0.5))
        with pytest.raises(_consent.ConsentError) as info:
            _consent.run_loopback(sandbox_client(settings), timeout=0.5, open_browser=None, tls=tls(settings),
                                  clock=readings.__next__)
        assert info.value.code == "timeout" and "mode=manual" in info.value.full_msg and "0.5 seconds" in info.value.msg
        assert next(readings, None) is None

    def test_port_in_use_is_an_option_error(self, settings):
        with _consent.LoopbackReceiver() as taken:
            port = int(urllib.parse.urlsplit(taken.redirect_uri).port)
            with pytest.raises(OptionError) as info:
                _consent.run_loopback(sandbox_client(settings), port=port, timeout=1, tls=tls(settings))
        assert info.value.option == "port"

    def test_pkce_mismatch_is_invalid_grant(self, settings, monkeypatch):
        real_exchange = _consent.exchange_code

        def exchange_with_another_verifier(client, code, **kwargs):
            return real_exchange(client, code, **{**kwargs, "code_verifier": "x" * 64})

        monkeypatch.setattr(_consent, "exchange_code", exchange_with_another_verifier)
        with pytest.raises(_grants.TokenError) as info:
            _consent.run_loopback(sandbox_client(settings), timeout=TIMEOUT, open_browser=Browser(settings), tls=tls(settings))
        assert info.value.code == "invalid_grant" and "PKCE" in info.value.full_msg
        assert "Invalid code verifier" in info.value.msg

    def test_microsoft_consent_then_refresh_rotates(self, settings):
        authorization = _consent.run_loopback(microsoft_client(settings), timeout=TIMEOUT, open_browser=Browser(settings), tls=tls(settings))
        # Azure AD leaves offline_access out of the granted scopes; oauthlib's complaint about that is handled.
        assert authorization.scopes == ("https://outlook.office.com/SMTP.Send",)
        assert authorization.account is None
        grant = _grants.resolve_grant(provider="microsoft", client_id=settings["microsoft_client_id"],
                                      client_secret=settings["microsoft_client_secret"], refresh_token=authorization.refresh_token,
                                      token_uri=settings["microsoft_token_uri"], tenant="contoso.example")
        refreshed = _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert refreshed.rotated_refresh_token not in (None, authorization.refresh_token)

    def test_openid_scopes_name_the_account(self, settings):
        client = sandbox_client(settings, scopes=["openid", "email", "https://mail.google.com/"])
        authorization = _consent.run_loopback(client, timeout=TIMEOUT, login_hint="picked@example.com",
                                              open_browser=Browser(settings), tls=tls(settings))
        assert authorization.account == "picked@example.com"

    def test_plain_http_token_endpoint(self, settings, monkeypatch):
        monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
        client = sandbox_client(settings, token_uri=settings["token_uri_http"])
        authorization = _consent.run_loopback(client, timeout=TIMEOUT, open_browser=Browser(settings), tls=tls(settings))
        assert authorization.refresh_token.startswith("1//sandbox-")
        assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ

    @pytest.mark.parametrize("uri_key, code", [("token_uri_unreachable", "token_endpoint_unreachable"),
                                               ("token_uri_untrusted", "token_endpoint_tls"),
                                               ("token_uri_not_json", "token_endpoint_bad_response")])
    def test_token_endpoint_failures(self, settings, uri_key, code):
        client = sandbox_client(settings, token_uri=settings[uri_key])
        with pytest.raises(SmailError) as info:
            _consent.run_loopback(client, timeout=TIMEOUT, open_browser=Browser(settings), tls=tls(settings))
        assert info.value.code == code


# --- manual mode --------------------------------------------------------------------------------

class TestManual:
    def test_two_steps(self, settings, tmp_path):
        store = _consent.PendingStore(str(tmp_path / "pending"))
        client = sandbox_client(settings)
        pending = _consent.start_manual(client, store=store, login_hint=settings["account"])
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(pending.url).query))
        assert query["code_challenge_method"] == "S256" and query["state"] == pending.state
        assert pending.redirect_uri.startswith("http://127.0.0.1:")
        files = list((tmp_path / "pending").iterdir())
        assert len(files) == 1 and pending.state not in files[0].name
        assert stat.S_IMODE(os.stat(tmp_path / "pending").st_mode) == 0o700
        assert stat.S_IMODE(files[0].stat().st_mode) == 0o600

        landed = consent(pending.url, settings)
        authorization = _consent.finish_manual(client, landed, store=store, tls=tls(settings), login_hint=settings["account"])

        assert authorization.refresh_token.startswith("1//sandbox-")
        assert not list((tmp_path / "pending").iterdir())
        with pytest.raises(_consent.ConsentError) as info:
            _consent.finish_manual(client, landed, store=store, tls=tls(settings))
        assert info.value.code == "state_mismatch"

    def test_given_port_is_the_redirect_port(self, settings, tmp_path):
        pending = _consent.start_manual(sandbox_client(settings), store=_consent.PendingStore(str(tmp_path)), port=8765)
        assert pending.redirect_uri == "http://127.0.0.1:8765/"

    def test_pkce_mismatch_is_invalid_grant(self, settings, tmp_path):
        store = _consent.PendingStore(str(tmp_path))
        client = sandbox_client(settings)
        pending = _consent.start_manual(client, store=store)
        (entry_path,) = tmp_path.glob("*.json")
        entry = json.loads(entry_path.read_text())
        entry["code_verifier"] = "y" * 64
        entry_path.write_text(json.dumps(entry))
        with pytest.raises(_grants.TokenError) as info:
            _consent.finish_manual(client, consent(pending.url, settings), store=store, tls=tls(settings))
        assert info.value.code == "invalid_grant"

    def test_refusal_is_access_denied(self, settings, tmp_path):
        store = _consent.PendingStore(str(tmp_path))
        client = sandbox_client(settings)
        pending = _consent.start_manual(client, store=store, login_hint="deny@example.com")
        with pytest.raises(_consent.ConsentError) as info:
            _consent.finish_manual(client, consent(pending.url, settings), store=store, tls=tls(settings))
        assert info.value.code == "access_denied"

    def test_foreign_or_missing_state(self, settings, tmp_path):
        store = _consent.PendingStore(str(tmp_path))
        client = sandbox_client(settings)
        landed = consent(_consent.start_manual(client, store=store).url, settings)
        for response in (replace_param(landed, "state", "forged"), "http://127.0.0.1:1/?code=abc"):
            with pytest.raises(_consent.ConsentError) as info:
                _consent.finish_manual(client, response, store=store, tls=tls(settings))
            assert info.value.code == "state_mismatch"
        with pytest.raises(_consent.ConsentError) as info:
            _consent.finish_manual(sandbox_client(settings, client_id="other"), landed, store=store, tls=tls(settings))
        assert info.value.code == "state_mismatch"

    def test_after_ten_minutes_it_is_timeout(self, settings, tmp_path):
        store = _consent.PendingStore(str(tmp_path))
        client = sandbox_client(settings)
        landed = consent(_consent.start_manual(client, store=store).url, settings)
        (entry_path,) = tmp_path.glob("*.json")
        entry = json.loads(entry_path.read_text())
        entry["created"] -= _consent.PENDING_LIFETIME_SECONDS + 1
        entry_path.write_text(json.dumps(entry))
        with pytest.raises(_consent.ConsentError) as info:
            _consent.finish_manual(client, landed, store=store, tls=tls(settings))
        assert info.value.code == "timeout"
        assert not list(tmp_path.glob("*.json"))

    def test_expired_entries_are_purged(self, settings, tmp_path):
        store = _consent.PendingStore(str(tmp_path))
        _consent.start_manual(sandbox_client(settings), store=store)
        (old,) = tmp_path.glob("*.json")
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        _consent.start_manual(sandbox_client(settings), store=store)
        assert old not in list(tmp_path.glob("*.json")) and len(list(tmp_path.glob("*.json"))) == 1


class TestTrust:
    """The code exchange is never redirected, and the pending store trusts only this user's own files."""

    def test_a_redirecting_token_endpoint_gets_no_code(self, settings):
        tagged = f"redirect307x1-{time.time_ns()}"
        client = sandbox_client(settings, token_uri=settings["token_uri_fault"].replace("{fault}", tagged))
        with pytest.raises(SmailError) as info:
            _consent.run_loopback(client, timeout=TIMEOUT, open_browser=Browser(settings), tls=tls(settings))
        assert info.value.code == "token_endpoint_redirect" and settings["client_secret"] not in str(info.value)
        with open(settings["token_log"], encoding="utf-8") as handle:
            asked = [line for line in handle if f'"{tagged}"' in line]
        assert len(asked) == 1

    def test_a_pending_directory_of_another_user_is_refused(self, settings, tmp_path, monkeypatch):
        directory = tmp_path / "pending"
        directory.mkdir(mode=0o700)
        real_uid = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real_uid + 4242)
        with pytest.raises(SmailError) as info:
            _consent.start_manual(sandbox_client(settings), store=_consent.PendingStore(str(directory)))
        assert info.value.code == "pending_store_insecure" and str(directory) in info.value.msg
        assert os.listdir(directory) == []

    def test_a_directory_others_may_write_to_is_refused(self, settings, tmp_path):
        directory = tmp_path / "pending"
        directory.mkdir()
        directory.chmod(0o777)
        with pytest.raises(SmailError) as info:
            _consent.start_manual(sandbox_client(settings), store=_consent.PendingStore(str(directory)))
        assert info.value.code == "pending_store_insecure"

    def test_a_symlinked_entry_is_not_used(self, settings, tmp_path):
        store = _consent.PendingStore(str(tmp_path / "pending"))
        client = sandbox_client(settings)
        landed = consent(_consent.start_manual(client, store=store).url, settings)
        (entry_path,) = (tmp_path / "pending").glob("*.json")
        planted = tmp_path / "planted.json"
        entry = json.loads(entry_path.read_text())
        planted.write_text(json.dumps({**entry, "code_verifier": "p" * 64}))
        entry_path.unlink()
        entry_path.symlink_to(planted)
        with pytest.raises(_consent.ConsentError) as info:
            _consent.finish_manual(client, landed, store=store, tls=tls(settings))
        assert info.value.code == "state_mismatch"
        assert planted.exists() and not entry_path.is_symlink()


def test_the_code_exchange_over_http_to_loopback_bypasses_the_proxy(settings, standin_proxy):
    client = sandbox_client(settings, token_uri=settings["token_uri_http"])
    with pytest.raises(_grants.TokenError) as info:
        _consent.exchange_code(client, "not-a-code", redirect_uri="http://127.0.0.1:9/", code_verifier="v" * 64, tls=tls(settings))
    assert info.value.code == "invalid_grant"  # the sandbox's answer, not the proxy's 502
    assert standin_proxy.requests == []
