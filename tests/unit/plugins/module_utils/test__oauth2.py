# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token core against the sandbox's real token endpoint (HTTPS with its own CA)."""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _oauth2, _providers, _token_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError


def grant_for(settings, *, refresh_token=None, token_uri=None, client_secret=None):
    return _oauth2.resolve_grant(
        provider="custom",
        client_id=settings["client_id"],
        client_secret=client_secret or settings["client_secret"],
        refresh_token=refresh_token or settings["refresh_token"],
        token_uri=token_uri or settings["token_uri"],
    )


def token_log_outcomes(settings):
    with open(settings["token_log"], encoding="utf-8") as handle:
        return [json.loads(line)["outcome"] for line in handle if line.strip()]


def tls(settings):
    return _oauth2.TLSSettings(ca_path=settings["ca_path"], timeout=10)


class TestResolveGrant:
    def test_google_defaults(self):
        grant = _oauth2.resolve_grant(provider="google", client_id="id", client_secret="s", refresh_token="r")
        assert grant.token_uri == "https://oauth2.googleapis.com/token"
        assert grant.scopes == ("https://mail.google.com/",)
        assert grant.send_scopes is False

    def test_microsoft_tenant_and_scopes_sent(self):
        grant = _oauth2.resolve_grant(provider="microsoft", client_id="id", client_secret=None, refresh_token="r",
                                      tenant="contoso.onmicrosoft.com")
        assert grant.token_uri == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        assert grant.scopes == ("https://outlook.office.com/SMTP.Send", "offline_access")
        assert grant.send_scopes is True

    def test_microsoft_default_tenant_is_common(self):
        grant = _oauth2.resolve_grant(provider="microsoft", client_id="id", client_secret=None, refresh_token="r")
        assert "/common/" in grant.token_uri

    def test_scopes_string_or_list(self):
        assert _oauth2.split_scopes("a b a") == ("a", "b")
        assert _oauth2.split_scopes(["a b", "c"]) == ("a", "b", "c")

    @pytest.mark.parametrize("missing,kwargs", [
        ("client_id", {"client_id": None, "refresh_token": "r"}),
        ("refresh_token", {"client_id": "c", "refresh_token": ""}),
    ])
    def test_missing_option_is_named(self, missing, kwargs):
        with pytest.raises(OptionError) as info:
            _oauth2.resolve_grant(provider="google", client_secret="s", **kwargs)
        assert info.value.option == missing

    def test_custom_needs_token_uri(self):
        with pytest.raises(OptionError) as info:
            _oauth2.resolve_grant(provider="custom", client_id="c", client_secret="s", refresh_token="r")
        assert info.value.option == "token_uri"

    def test_repr_hides_secrets(self):
        grant = _oauth2.resolve_grant(provider="google", client_id="c", client_secret="very-secret", refresh_token="refresh-secret")
        assert "very-secret" not in repr(grant) and "refresh-secret" not in repr(grant)
        assert "refresh-secret" not in grant.cache_key()


class TestRefresh:
    def test_refresh_returns_token_with_expiry(self, sandbox, settings):
        token = _token_endpoint.refresh_access_token(grant_for(settings), tls=tls(settings))
        assert token.source == "refresh"
        assert sandbox.authority.lookup_access_token(token.token) is not None
        assert 3000 < token.expires_in() <= 3600
        assert token.token not in repr(token)

    def test_revoked_refresh_token_is_invalid_grant_with_hint(self, settings):
        with pytest.raises(_oauth2.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, refresh_token=settings["revoked_refresh_token"]), tls=tls(settings))
        assert info.value.code == "invalid_grant"
        assert "7 days" in info.value.full_msg
        assert settings["revoked_refresh_token"] not in str(info.value)

    def test_wrong_secret_is_invalid_client(self, settings):
        with pytest.raises(_oauth2.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, client_secret="wrong"), tls=tls(settings))
        assert info.value.code == "invalid_client"

    def test_unreachable(self, settings):
        with pytest.raises(_oauth2.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, token_uri=settings["token_uri_unreachable"]), tls=tls(settings))
        assert info.value.code == "token_endpoint_unreachable"

    def test_untrusted_certificate(self, settings):
        with pytest.raises(_oauth2.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, token_uri=settings["token_uri_untrusted"]), tls=tls(settings))
        assert info.value.code == "token_endpoint_tls"

    def test_system_trust_store_does_not_know_the_sandbox(self, settings):
        with pytest.raises(_oauth2.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings), tls=_oauth2.TLSSettings(timeout=10))
        assert info.value.code == "token_endpoint_tls"

    def test_ca_path_wins_over_requests_ca_bundle(self, settings, monkeypatch, tmp_path):
        bogus = tmp_path / "bundle.pem"
        bogus.write_text(open(os.path.join(settings["state_dir"], "untrusted-ca.pem"), encoding="ascii").read())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
        token = _token_endpoint.refresh_access_token(grant_for(settings), tls=tls(settings))
        assert token.source == "refresh"

    @pytest.mark.parametrize("uri_key", ["token_uri_not_json", "token_uri_no_access_token"])
    def test_bad_response(self, settings, uri_key):
        with pytest.raises(_oauth2.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, token_uri=settings[uri_key]), tls=tls(settings))
        assert info.value.code == "token_endpoint_bad_response"

    def test_google_auth_is_imported_lazily(self):
        code = ("import sys; from ansible_collections.smail.xoauth2.plugins.module_utils import _oauth2, _mailer; "
                "sys.exit(1 if any(m.startswith('google') for m in sys.modules) else 0)")
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class TestCache:
    def test_second_obtain_is_a_cache_hit(self, settings, tmp_path):
        cache = _oauth2.TokenCache(str(tmp_path / "tokens"))
        grant = grant_for(settings)
        before = len(token_log_outcomes(settings))
        first = _oauth2.obtain_access_token(grant=grant, cache=cache, tls=tls(settings))
        second = _oauth2.obtain_access_token(grant=grant, cache=cache, tls=tls(settings))
        assert (first.source, second.source) == ("refresh", "cache")
        assert first.token == second.token
        assert len(token_log_outcomes(settings)) == before + 1

    def test_modes_and_no_secret_in_names(self, settings, tmp_path):
        directory = tmp_path / "tokens"
        cache = _oauth2.TokenCache(str(directory))
        _oauth2.obtain_access_token(grant=grant_for(settings), cache=cache, tls=tls(settings))
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        entries = [p for p in directory.iterdir() if p.suffix == ".json"]
        assert len(entries) == 1
        assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600
        assert settings["refresh_token"] not in entries[0].name
        assert settings["refresh_token"] not in entries[0].read_text()

    def test_token_near_expiry_is_not_reused(self, tmp_path):
        cache = _oauth2.TokenCache(str(tmp_path))
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=_oauth2.EXPIRY_MARGIN_SECONDS - 5)
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=_oauth2.EXPIRY_MARGIN_SECONDS + 30)
        cache.store("k1", _oauth2.AccessToken(token="t1", source="refresh", expires_at=soon))
        cache.store("k2", _oauth2.AccessToken(token="t2", source="refresh", expires_at=later))
        assert cache.load("k1") is None
        assert cache.load("k2").token == "t2"

    def test_keys_differ_by_scopes_refresh_token_and_client_secret(self):
        base = dict(provider="custom", client_id="c", token_uri="https://x/token")
        keys = {
            _oauth2.resolve_grant(refresh_token="r1", client_secret="s", **base).cache_key(),
            _oauth2.resolve_grant(refresh_token="r2", client_secret="s", **base).cache_key(),
            _oauth2.resolve_grant(refresh_token="r1", client_secret="s", scopes=["a"], **base).cache_key(),
            _oauth2.resolve_grant(refresh_token="r1", client_secret="wrong", **base).cache_key(),
            _oauth2.resolve_grant(refresh_token="r1", client_secret=None, **base).cache_key(),
        }
        assert len(keys) == 5
        assert not any("wrong" in key for key in keys)

    def test_a_wrong_client_secret_does_not_reuse_the_right_ones_token(self, settings, tmp_path):
        cache = _oauth2.TokenCache(str(tmp_path / "tokens"))
        assert _oauth2.obtain_access_token(grant=grant_for(settings), cache=cache, tls=tls(settings)).source == "refresh"
        with pytest.raises(_oauth2.TokenError) as info:
            _oauth2.obtain_access_token(grant=grant_for(settings, client_secret="wrong-secret"), cache=cache,
                                        tls=tls(settings))
        assert info.value.code == "invalid_client"
        assert _oauth2.obtain_access_token(grant=grant_for(settings), cache=cache, tls=tls(settings)).source == "cache"

    def test_concurrent_callers_refresh_once(self, settings, tmp_path):
        cache = _oauth2.TokenCache(str(tmp_path / "tokens"))
        grant = grant_for(settings)
        before = len(token_log_outcomes(settings))
        results = []

        def worker():
            results.append(_oauth2.obtain_access_token(grant=grant, cache=cache, tls=tls(settings)))

        threads = [threading.Thread(target=worker) for _index in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({token.token for token in results}) == 1
        assert sorted(token.source for token in results) == ["cache"] * 5 + ["refresh"]
        assert len(token_log_outcomes(settings)) == before + 1

    def test_given_token_is_used_as_is(self):
        token = _oauth2.obtain_access_token(grant=None, access_token="given-token")
        assert (token.token, token.source, token.expires_at) == ("given-token", "given", None)

    def test_disabled_cache_always_refreshes(self, settings):
        grant = grant_for(settings)
        first = _oauth2.obtain_access_token(grant=grant, cache=None, tls=tls(settings))
        second = _oauth2.obtain_access_token(grant=grant, cache=None, tls=tls(settings))
        assert first.source == second.source == "refresh"
        assert first.token != second.token

    def test_a_rotated_token_is_cached_under_both_refresh_tokens(self, tmp_path):
        cache = _oauth2.TokenCache(str(tmp_path))
        grant = _oauth2.resolve_grant(provider="microsoft", client_id="c", client_secret=None, refresh_token="old")
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)

        def rotating_refresh(_grant, tls=None):
            return _oauth2.AccessToken(token="t", source="refresh", expires_at=expires, rotated_refresh_token="new")

        assert _oauth2.obtain_access_token(grant=grant, cache=cache, refresh=rotating_refresh).rotated_refresh_token == "new"
        rotated = grant._replace(refresh_token="new")
        for key in (grant.cache_key(), rotated.cache_key()):
            assert cache.load(key).token == "t"


class TestMicrosoftEndpoint:
    def test_refresh_sends_scopes_and_reports_the_rotated_token(self, settings):
        grant = _oauth2.resolve_grant(provider="microsoft", client_id=settings["microsoft_client_id"],
                                      client_secret=settings["microsoft_client_secret"],
                                      refresh_token=settings["microsoft_refresh_token"],
                                      token_uri=settings["microsoft_token_uri"], tenant="contoso.example")
        assert grant.token_uri.endswith("/ms/contoso.example/oauth2/v2.0/token")
        token = _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert token.rotated_refresh_token not in (None, settings["microsoft_refresh_token"])
        assert token.rotated_refresh_token not in repr(token)

    def test_without_scopes_the_endpoint_refuses(self, settings):
        grant = _oauth2.resolve_grant(provider="custom", client_id=settings["microsoft_client_id"],
                                      client_secret=settings["microsoft_client_secret"],
                                      refresh_token=settings["microsoft_refresh_token"],
                                      token_uri=_providers.fill_tenant(settings["microsoft_token_uri"], None))
        with pytest.raises(_oauth2.TokenError) as info:
            _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert (info.value.code, info.value.details["endpoint_error"]) == ("token_endpoint_error", "invalid_request")


def test_fill_tenant():
    assert _providers.fill_tenant(_providers.PROVIDERS["microsoft"].token_uri, None) == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert _providers.fill_tenant(_providers.PROVIDERS["microsoft"].auth_uri, "t.example").endswith("/t.example/oauth2/v2.0/authorize")
    assert _providers.fill_tenant(_providers.PROVIDERS["google"].token_uri, "ignored") == _providers.PROVIDERS["google"].token_uri


def test_token_endpoint_error_hints_per_request():
    refresh = _token_endpoint.token_endpoint_error("invalid_grant", "Bad")
    assert refresh.code == "invalid_grant" and "refresh" in refresh.msg and "7 days" in refresh.full_msg
    code = _token_endpoint.token_endpoint_error("invalid_grant", "Bad", request="the authorization code", hints={"invalid_grant": "again"})
    assert code.msg == "The token endpoint refused the authorization code: invalid_grant: Bad" and code.hint == "again"
    assert _token_endpoint.token_endpoint_error("slow_down", "").code == "token_endpoint_error"
