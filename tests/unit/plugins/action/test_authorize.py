# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The authorize action run as the executor would, against the sandbox, with a vault-encrypted client JSON."""

from __future__ import annotations

import datetime
import json
import re
import ssl
import urllib.error
import urllib.request
import uuid
import webbrowser

import pytest
from ansible.errors import AnsibleActionSkip
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret

from ansible_collections.smail.xoauth2.plugins.action import authorize
from ansible_collections.smail.xoauth2.plugins.action.authorize import ActionModule as AuthorizeAction
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import cache as _token_cache


def test_documentation_matches_argspec(docs_match_argspec):
    assert docs_match_argspec("authorize", authorize.AUTHORIZE_ARGSPEC)


def test_no_environment_fallbacks_and_secrets_are_no_log():
    assert not any("fallback" in spec for spec in authorize.AUTHORIZE_ARGSPEC.values())
    assert {name for name, spec in authorize.AUTHORIZE_ARGSPEC.items() if spec.get("no_log")} == {"client_secret", "authorization_response"}


@pytest.fixture()
def vaulted_client_json(settings, tmp_path):
    """The sandbox client as a console JSON, vault-encrypted, and a loader that can decrypt it."""
    secret = VaultSecret(b"vault-password")
    document = {"installed": {"client_id": settings["client_id"], "client_secret": settings["client_secret"],
                              "auth_uri": settings["auth_uri"], "token_uri": settings["token_uri"],
                              "redirect_uris": ["http://localhost"]}}
    (tmp_path / "client_secret_sandbox.json").write_bytes(VaultLib([("default", secret)]).encrypt(json.dumps(document)))
    loader = DataLoader()
    loader.set_vault_secrets([("default", secret)])
    return loader


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def landing_address(url, settings):
    """Where the browser lands after the sandbox's consent page (the redirect is not followed)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=settings["ca_path"])))
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(url, timeout=10)  # pylint: disable=consider-using-with
    return redirect.value.headers["Location"]


def token_kept_out_of_output(result, mask):
    """Whether the result's refresh token stays out of every output as this line does it: registered as a secret
    (ansible-core 2.22 on, ``mask`` is its masking), else the whole result marked no_log."""
    if mask is not None:
        return "_ansible_no_log" not in result and mask(result["refresh_token"]) == "$REDACTED$"
    return result.get("_ansible_no_log") is True


def test_manual_mode_in_two_runs(settings, tmp_path, home, vaulted_client_json, make_target, run_ini_action, secret_masker):
    args = {"client_secrets_file": "client_secret_sandbox.json", "provider": "custom", "scopes": ["https://mail.google.com/"],
            "mode": "manual", "ca_path": settings["ca_path"], "login_hint": settings["account"]}
    run = {"loader": vaulted_client_json, "search_path": [str(tmp_path)]}

    first = run_ini_action(AuthorizeAction, args, make_target(), **run)

    assert first["changed"] is False and "_ansible_no_log" not in first
    assert first["authorization_url"].startswith(settings["auth_uri"] + "?")
    assert "code_challenge_method=S256" in first["authorization_url"] and "state=" in first["authorization_url"]
    assert len(list((home / ".ansible" / "smail_xoauth2" / "pending").iterdir())) == 1
    assert settings["client_secret"] not in json.dumps(first)

    landed = landing_address(first["authorization_url"], settings)
    second = run_ini_action(AuthorizeAction, {**args, "authorization_response": landed}, make_target(), **run)

    assert second["changed"] is True and token_kept_out_of_output(second, secret_masker)
    assert second["refresh_token"].startswith("1//sandbox-")
    assert (second["account"], second["scopes"], second["expires_in"]) == (settings["account"], ["https://mail.google.com/"], 3599)
    assert not list((home / ".ansible" / "smail_xoauth2" / "pending").iterdir())

    again = run_ini_action(AuthorizeAction, {**args, "authorization_response": landed}, make_target(), **run)
    assert again["failed"] is True and again["error"] == "state_mismatch" and "_ansible_no_log" not in again


def test_loopback_timeout_and_option_errors(settings, home, make_target, run_ini_action, monkeypatch):
    # The clock's readings: the start of the wait and its deadline, a second later.
    monkeypatch.setattr(AuthorizeAction, "clock", staticmethod(iter((0.0, 1.0)).__next__))
    base = {"provider": "custom", "client_id": settings["client_id"], "client_secret": settings["client_secret"],
            "auth_uri": settings["auth_uri"], "token_uri": settings["token_uri"], "scopes": ["https://mail.google.com/"],
            "open_browser": False}
    timed_out = run_ini_action(AuthorizeAction, {**base, "timeout": 1}, make_target())
    assert (timed_out["failed"], timed_out["error"]) == (True, "timeout")
    assert settings["client_secret"] not in json.dumps(timed_out)

    wrong_mode = run_ini_action(AuthorizeAction, {**base, "authorization_response": "http://127.0.0.1:1/?code=c"}, make_target())
    assert (wrong_mode["error"], wrong_mode["option"]) == ("invalid_option", "authorization_response")

    no_file = run_ini_action(AuthorizeAction, {**base, "client_secrets_file": "missing.json"}, make_target(), loader=DataLoader())
    assert (no_file["error"], no_file["option"]) == ("invalid_option", "client_secrets_file")


def test_check_mode_is_skipped(settings, make_target, run_ini_action):
    with pytest.raises(AnsibleActionSkip):
        run_ini_action(AuthorizeAction, {"client_id": "c"}, make_target(), check_mode=True)


@pytest.mark.parametrize("browser_env, opened", [(None, False), ("lynx %s", True)])
def test_console_browsers_only_when_browser_names_one(monkeypatch, browser_env, opened):
    calls = []

    class Console(webbrowser.GenericBrowser):
        def open(self, url, new=0, autoraise=True):
            calls.append(url)
            return True

    monkeypatch.setattr(webbrowser.GenericBrowser, "open", Console.open)
    monkeypatch.setattr(webbrowser, "get", lambda: webbrowser.GenericBrowser("lynx"))
    if browser_env:
        monkeypatch.setenv("BROWSER", browser_env)
    else:
        monkeypatch.delenv("BROWSER", raising=False)
    assert authorize.open_in_browser("https://example.com/consent") is opened
    assert calls == (["https://example.com/consent"] if opened else [])


def test_graphical_browsers_are_opened(monkeypatch):
    calls = []
    monkeypatch.delenv("BROWSER", raising=False)
    monkeypatch.setattr(webbrowser.BackgroundBrowser, "open", lambda self, url, new=0, autoraise=True: calls.append(url) or True)
    monkeypatch.setattr(webbrowser, "get", lambda: webbrowser.BackgroundBrowser("xdg-open"))
    assert authorize.open_in_browser("https://example.com/consent") is True and calls == ["https://example.com/consent"]


@pytest.fixture()
def device_clock(fake_clock, monkeypatch):
    """The action's device flow on a fake clock: its polls come at once, in the sandbox's time.

    The sandbox's own clock is real: a poll sooner than its interval after another is answered slow_down, so the
    sandbox switches here decide at the first poll (``approve_after=0``).
    """
    monkeypatch.setattr(AuthorizeAction, "clock", staticmethod(fake_clock))
    monkeypatch.setattr(AuthorizeAction, "sleep", staticmethod(fake_clock.sleep))
    return fake_clock


@pytest.fixture()
def shown(monkeypatch):
    """What the action displays at the default verbosity."""
    messages = []
    monkeypatch.setattr(authorize.display, "display", lambda message, *args, **kwargs: messages.append(message))
    return messages


def device_args(settings, switches, **overrides):
    return {"provider": "custom", "client_id": settings["client_id"], "client_secret": settings["client_secret"],
            "device_authorization_uri": f"{settings['device_authorization_uri']}?{switches}",
            "token_uri": settings["token_uri"], "scopes": ["https://mail.google.com/"], "ca_path": settings["ca_path"],
            **overrides}


def test_device_mode_shows_the_user_code_and_never_the_device_code(
        settings, shown, device_clock, make_target, run_ini_action, secret_masker):
    # `flow` is the alias of mode.
    result = run_ini_action(AuthorizeAction, device_args(settings, "approve_after=0", flow="device",
                                                         login_hint=settings["account"]), make_target())

    assert result["changed"] is True and token_kept_out_of_output(result, secret_masker)
    assert result["refresh_token"].startswith("1//sandbox-") and result["account"] == settings["account"]
    announcement = shown[0]
    assert settings["device_verification_uri"] in announcement and "?user_code=" in announcement
    assert re.search(r"enter the code [B-Z]{4}-[B-Z]{4}\b", announcement) and "waiting up to 300 seconds" in announcement
    assert "device-sandbox-" not in "".join(shown) + json.dumps(result)
    assert settings["client_secret"] not in "".join(shown)
    assert device_clock.pauses == [1]  # the sandbox's interval, before the one poll


@pytest.mark.parametrize("switches, error", [("deny_after=0", "device_access_denied"), ("expires_in=1", "device_code_expired")])
def test_device_mode_failures(settings, shown, device_clock, make_target, run_ini_action, switches, error):
    result = run_ini_action(AuthorizeAction, device_args(settings, switches, mode="device"), make_target())
    assert (result["failed"], result["error"]) == (True, error) and "_ansible_no_log" not in result
    assert "device-sandbox-" not in json.dumps(result) and "device-sandbox-" not in "".join(shown)


def test_device_mode_refuses_google_before_any_request(settings, shown, make_target, run_ini_action):
    with open(settings["token_log"], encoding="utf-8") as log:
        before = log.read()
    args = device_args(settings, "approve_after=0", provider="google", mode="device")
    result = run_ini_action(AuthorizeAction, args, make_target())
    assert (result["error"], result["option"]) == ("invalid_option", "mode")
    assert "https://mail.google.com/" in result["msg"] and "mode=loopback" in result["msg"] and "mode=manual" in result["msg"]
    with open(settings["token_log"], encoding="utf-8") as log:
        assert log.read() == before
    assert not shown

    wrong = run_ini_action(AuthorizeAction, device_args(settings, "", mode="device", authorization_response="x"), make_target())
    assert (wrong["error"], wrong["option"]) == ("invalid_option", "authorization_response")


def expiring_token_uri(settings, seconds):
    """The sandbox's token URI that states ``seconds`` as the refresh token's lifetime (a unique tag per call)."""
    return settings["token_uri_fault"].replace("{fault}", f"rtexpires{seconds}-{uuid.uuid4().hex[:12]}")


def test_device_mode_records_the_stated_expiry_in_the_token_cache(settings, shown, device_clock, tmp_path, make_target, run_ini_action):
    cache_dir = tmp_path / "tokens"
    started = datetime.datetime.now(datetime.timezone.utc)
    result = run_ini_action(AuthorizeAction, device_args(settings, "approve_after=0", mode="device",
                                                         token_uri=expiring_token_uri(settings, 86400),
                                                         token_cache_dir=str(cache_dir)), make_target())

    expires_at = datetime.datetime.fromisoformat(result["refresh_token_expires_at"].replace("Z", "+00:00"))
    assert started + datetime.timedelta(seconds=86399) <= expires_at <= started + datetime.timedelta(seconds=86460)
    assert f"expires at {result['refresh_token_expires_at']}" in shown[-1]
    # What a later task on this controller finds, under a hash of the refresh token: two times, no secret.
    record = _token_cache.TokenCache(str(cache_dir)).load_refresh_record(result["refresh_token"])
    assert record.expires_at.replace(microsecond=0) == expires_at and record.obtained_at < record.expires_at
    stored = "".join(path.read_text(encoding="utf-8") for path in cache_dir.iterdir())
    assert result["refresh_token"] not in stored and settings["client_secret"] not in stored
    assert [oct(path.stat().st_mode & 0o777) for path in cache_dir.glob("*.refresh")] == ["0o600"]


def test_device_mode_without_a_stated_expiry_records_when_it_was_obtained(
        settings, shown, device_clock, tmp_path, make_target, run_ini_action):
    cache_dir = tmp_path / "tokens"
    result = run_ini_action(AuthorizeAction, device_args(settings, "approve_after=0", mode="device",
                                                         token_cache_dir=str(cache_dir)), make_target())

    assert "refresh_token_expires_at" not in result and "expires at" not in shown[-1]
    record = _token_cache.TokenCache(str(cache_dir)).load_refresh_record(result["refresh_token"])
    assert record.expires_at is None and record.obtained_at is not None


def test_device_mode_with_the_token_cache_off_writes_nothing(settings, shown, device_clock, tmp_path, make_target, run_ini_action):
    cache_dir = tmp_path / "tokens"
    result = run_ini_action(AuthorizeAction, device_args(settings, "approve_after=0", mode="device", token_cache=False,
                                                         token_uri=expiring_token_uri(settings, 86400),
                                                         token_cache_dir=str(cache_dir)), make_target())

    assert result["changed"] is True and "refresh_token_expires_at" in result
    assert not cache_dir.exists()
