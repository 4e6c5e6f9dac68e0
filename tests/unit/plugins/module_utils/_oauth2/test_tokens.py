# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token core against the sandbox's real token endpoint (HTTPS with its own CA)."""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
import time
import uuid

import pytest
import trustme

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import cache as _token_cache
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import endpoint as _token_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import tokens as _tokens
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import RetryPolicy


def grant_for(settings, *, refresh_token=None, token_uri=None, client_secret=None):
    return _grants.resolve_grant(
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
    return _grants.TLSSettings(ca_path=settings["ca_path"], timeout=10)


class TestResolveGrant:
    def test_google_defaults(self):
        grant = _grants.resolve_grant(provider="google", client_id="id", client_secret="s", refresh_token="r")
        assert grant.token_uri == "https://oauth2.googleapis.com/token"
        assert grant.scopes == ("https://mail.google.com/",)
        assert grant.send_scopes is False

    def test_microsoft_tenant_and_scopes_sent(self):
        grant = _grants.resolve_grant(provider="microsoft", client_id="id", client_secret=None, refresh_token="r",
                                      tenant="contoso.onmicrosoft.com")
        assert grant.token_uri == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        assert grant.scopes == ("https://outlook.office.com/SMTP.Send", "offline_access")
        assert grant.send_scopes is True

    def test_microsoft_default_tenant_is_common(self):
        grant = _grants.resolve_grant(provider="microsoft", client_id="id", client_secret=None, refresh_token="r")
        assert "/common/" in grant.token_uri

    def test_scopes_string_or_list(self):
        assert _grants.split_scopes("a b a") == ("a", "b")
        assert _grants.split_scopes(["a b", "c"]) == ("a", "b", "c")

    @pytest.mark.parametrize("missing,kwargs", [
        ("client_id", {"client_id": None, "refresh_token": "r"}),
        ("refresh_token", {"client_id": "c", "refresh_token": ""}),
    ])
    def test_missing_option_is_named(self, missing, kwargs):
        with pytest.raises(OptionError) as info:
            _grants.resolve_grant(provider="google", client_secret="s", **kwargs)
        assert info.value.option == missing

    def test_custom_needs_token_uri(self):
        with pytest.raises(OptionError) as info:
            _grants.resolve_grant(provider="custom", client_id="c", client_secret="s", refresh_token="r")
        assert info.value.option == "token_uri"

    def test_repr_hides_secrets(self):
        grant = _grants.resolve_grant(provider="google", client_id="c", client_secret="very-secret", refresh_token="refresh-secret")
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
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, refresh_token=settings["revoked_refresh_token"]), tls=tls(settings))
        assert info.value.code == "invalid_grant"
        assert "authorize again" in info.value.full_msg
        assert "Testing" not in info.value.full_msg  # Google's publishing status is no custom provider's business
        assert settings["revoked_refresh_token"] not in str(info.value)

    def test_google_invalid_grant_names_the_testing_expiry_and_how_to_publish(self, settings):
        grant = _grants.resolve_grant(provider="google", client_id=settings["client_id"],
                                      client_secret=settings["client_secret"],
                                      refresh_token=settings["revoked_refresh_token"], token_uri=settings["token_uri"])
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert info.value.code == "invalid_grant"
        for words in ("authorize again", '"Testing"', "7 days", "Google Cloud console", "OAuth consent screen",
                      "Publish app"):
            assert words in info.value.full_msg, words
        assert settings["revoked_refresh_token"] not in info.value.full_msg

    def test_wrong_secret_is_invalid_client(self, settings):
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, client_secret="wrong"), tls=tls(settings))
        assert info.value.code == "invalid_client"

    def test_unreachable(self, settings):
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, token_uri=settings["token_uri_unreachable"]), tls=tls(settings))
        assert info.value.code == "token_endpoint_unreachable"

    def test_untrusted_certificate(self, settings):
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, token_uri=settings["token_uri_untrusted"]), tls=tls(settings))
        assert info.value.code == "token_endpoint_tls"

    def test_system_trust_store_does_not_know_the_sandbox(self, settings):
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings), tls=_grants.TLSSettings(timeout=10))
        assert info.value.code == "token_endpoint_tls"

    def test_ca_path_wins_over_requests_ca_bundle(self, settings, monkeypatch, tmp_path):
        bogus = tmp_path / "bundle.pem"
        bogus.write_text(open(os.path.join(settings["state_dir"], "untrusted-ca.pem"), encoding="ascii").read())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus))
        token = _token_endpoint.refresh_access_token(grant_for(settings), tls=tls(settings))
        assert token.source == "refresh"

    @pytest.mark.parametrize("uri_key", ["token_uri_not_json", "token_uri_no_access_token"])
    def test_bad_response(self, settings, uri_key):
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, token_uri=settings[uri_key]), tls=tls(settings))
        assert info.value.code == "token_endpoint_bad_response"

    def test_google_auth_is_imported_lazily(self):
        code = ("import sys; from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline; "
                "sys.exit(1 if any(m.startswith('google') for m in sys.modules) else 0)")
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class TestCache:
    def test_second_obtain_is_a_cache_hit(self, settings, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        grant = grant_for(settings)
        before = len(token_log_outcomes(settings))
        first = _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings))
        second = _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings))
        assert (first.source, second.source) == ("refresh", "cache")
        assert first.token == second.token
        assert len(token_log_outcomes(settings)) == before + 1

    def test_modes_and_no_secret_in_names(self, settings, tmp_path):
        directory = tmp_path / "tokens"
        cache = _token_cache.TokenCache(str(directory))
        _tokens.obtain_access_token(grant=grant_for(settings), cache=cache, tls=tls(settings))
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        entries = [p for p in directory.iterdir() if p.suffix == ".json"]
        assert len(entries) == 1
        assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600
        assert settings["refresh_token"] not in entries[0].name
        assert settings["refresh_token"] not in entries[0].read_text()

    def test_token_near_expiry_is_not_reused(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=_token_cache.EXPIRY_MARGIN_SECONDS - 5)
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=_token_cache.EXPIRY_MARGIN_SECONDS + 30)
        cache.store("k1", _grants.AccessToken(token="t1", source="refresh", expires_at=soon))
        cache.store("k2", _grants.AccessToken(token="t2", source="refresh", expires_at=later))
        assert cache.load("k1") is None
        assert cache.load("k2").token == "t2"

    def test_keys_differ_by_scopes_refresh_token_and_client_secret(self):
        base = dict(provider="custom", client_id="c", token_uri="https://x/token")
        keys = {
            _grants.resolve_grant(refresh_token="r1", client_secret="s", **base).cache_key(),
            _grants.resolve_grant(refresh_token="r2", client_secret="s", **base).cache_key(),
            _grants.resolve_grant(refresh_token="r1", client_secret="s", scopes=["a"], **base).cache_key(),
            _grants.resolve_grant(refresh_token="r1", client_secret="wrong", **base).cache_key(),
            _grants.resolve_grant(refresh_token="r1", client_secret=None, **base).cache_key(),
        }
        assert len(keys) == 5
        assert not any("wrong" in key for key in keys)

    def test_a_wrong_client_secret_does_not_reuse_the_right_ones_token(self, settings, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        assert _tokens.obtain_access_token(grant=grant_for(settings), cache=cache, tls=tls(settings)).source == "refresh"
        with pytest.raises(_grants.TokenError) as info:
            _tokens.obtain_access_token(grant=grant_for(settings, client_secret="wrong-secret"), cache=cache,
                                        tls=tls(settings))
        assert info.value.code == "invalid_client"
        assert _tokens.obtain_access_token(grant=grant_for(settings), cache=cache, tls=tls(settings)).source == "cache"

    def test_concurrent_callers_refresh_once(self, settings, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        grant = grant_for(settings)
        before = len(token_log_outcomes(settings))
        results = []

        def worker():
            results.append(_tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings)))

        threads = [threading.Thread(target=worker) for _index in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({token.token for token in results}) == 1
        assert sorted(token.source for token in results) == ["cache"] * 5 + ["refresh"]
        assert len(token_log_outcomes(settings)) == before + 1

    def test_given_token_is_used_as_is(self):
        token = _tokens.obtain_access_token(grant=None, access_token="given-token")
        assert (token.token, token.source, token.expires_at) == ("given-token", "given", None)

    def test_disabled_cache_always_refreshes(self, settings):
        grant = grant_for(settings)
        first = _tokens.obtain_access_token(grant=grant, cache=None, tls=tls(settings))
        second = _tokens.obtain_access_token(grant=grant, cache=None, tls=tls(settings))
        assert first.source == second.source == "refresh"
        assert first.token != second.token

    def test_a_rotated_token_is_cached_under_both_refresh_tokens(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        grant = _grants.resolve_grant(provider="microsoft", client_id="c", client_secret=None, refresh_token="old")
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)

        def rotating_refresh(_grant, tls=None):
            return _grants.AccessToken(token="t", source="refresh", expires_at=expires, rotated_refresh_token="new")

        assert _tokens.obtain_access_token(grant=grant, cache=cache, refresh=rotating_refresh).rotated_refresh_token == "new"
        rotated = grant._replace(refresh_token="new")
        for key in (grant.cache_key(), rotated.cache_key()):
            assert cache.load(key).token == "t"


class TestRefreshTokenRecords:
    """The token cache's record of a refresh token: when it was obtained, and the expiry an endpoint stated."""

    NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)

    @staticmethod
    def refresh_answering(*, stated=None, rotated=None):
        """A stand-in token endpoint: a new access token, the stated refresh token expiry, a rotated refresh token."""
        calls = []

        def refresh(grant, **_kwargs):
            calls.append(getattr(grant, "refresh_token", None))
            expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            return _grants.AccessToken(token=f"at-{len(calls)}", source="refresh", expires_at=expires,
                                       rotated_refresh_token=rotated, refresh_token_expires_at=stated)
        refresh.calls = calls
        return refresh

    def grant(self, refresh_token="rt-old", provider="custom"):
        return _grants.resolve_grant(provider=provider, client_id="c", client_secret="s", refresh_token=refresh_token,
                                     token_uri="https://token.example/token")

    def test_a_stated_expiry_is_recorded_and_comes_with_cached_tokens(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        stated = self.NOW + datetime.timedelta(hours=5)
        first = _tokens.obtain_access_token(grant=self.grant(), cache=cache, refresh=self.refresh_answering(stated=stated))
        assert first.refresh_token_expires_at == stated
        assert cache.load_refresh_record("rt-old") == _refresh_expiry.RefreshTokenRecord(expires_at=stated)
        second = _tokens.obtain_access_token(grant=self.grant(), cache=cache, refresh=self.refresh_answering())
        assert (second.source, second.refresh_token_expires_at) == ("cache", stated)

    def test_a_later_refresh_that_states_nothing_keeps_the_recorded_expiry(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        stated = self.NOW + datetime.timedelta(hours=5)
        cache.store_refresh_record("rt-old", _refresh_expiry.RefreshTokenRecord(obtained_at=self.NOW, expires_at=stated))
        token = _tokens.obtain_access_token(grant=self.grant(), cache=cache, refresh=self.refresh_answering())
        assert (token.source, token.refresh_token_expires_at) == ("refresh", stated)

    def test_a_newly_stated_expiry_replaces_the_old_one_and_keeps_the_obtained_time(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        cache.store_refresh_record("rt-old", _refresh_expiry.RefreshTokenRecord(
            obtained_at=self.NOW, expires_at=self.NOW + datetime.timedelta(days=7)))
        stated = self.NOW + datetime.timedelta(days=1)
        _tokens.obtain_access_token(grant=self.grant(), cache=cache, refresh=self.refresh_answering(stated=stated))
        assert cache.load_refresh_record("rt-old") == _refresh_expiry.RefreshTokenRecord(obtained_at=self.NOW,
                                                                                         expires_at=stated)

    def test_a_rotation_records_the_new_token_as_obtained_now(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        old_record = _refresh_expiry.RefreshTokenRecord(obtained_at=self.NOW - datetime.timedelta(days=3))
        cache.store_refresh_record("rt-old", old_record)
        token = _tokens.obtain_access_token(grant=self.grant(provider="microsoft"), cache=cache,
                                            refresh=self.refresh_answering(rotated="rt-new"), now=lambda: self.NOW)
        assert token.rotated_refresh_token == "rt-new"
        assert token.refresh_token_expires_at is None  # the new one's lifetime was not stated
        assert cache.load_refresh_record("rt-new") == _refresh_expiry.RefreshTokenRecord(obtained_at=self.NOW)
        assert cache.load_refresh_record("rt-old") == old_record

    def test_a_rotation_with_a_stated_expiry(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        stated = self.NOW + datetime.timedelta(hours=24)
        token = _tokens.obtain_access_token(grant=self.grant(provider="microsoft"), cache=cache,
                                            refresh=self.refresh_answering(rotated="rt-new", stated=stated),
                                            now=lambda: self.NOW)
        assert token.refresh_token_expires_at == stated
        assert cache.load_refresh_record("rt-new") == _refresh_expiry.RefreshTokenRecord(obtained_at=self.NOW,
                                                                                         expires_at=stated)
        # The next task, with the new refresh token, reuses the access token and knows the expiry.
        again = _tokens.obtain_access_token(grant=self.grant("rt-new", provider="microsoft"), cache=cache,
                                            refresh=self.refresh_answering())
        assert (again.source, again.refresh_token_expires_at) == ("cache", stated)

    def test_nothing_stated_nothing_recorded(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        token = _tokens.obtain_access_token(grant=self.grant(), cache=cache, refresh=self.refresh_answering())
        assert token.refresh_token_expires_at is None
        assert cache.load_refresh_record("rt-old") is None
        assert [path.suffix for path in tmp_path.iterdir() if path.suffix == ".refresh"] == []

    def test_the_record_holds_no_secret(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        _tokens.obtain_access_token(grant=self.grant(), cache=cache,
                                    refresh=self.refresh_answering(stated=self.NOW + datetime.timedelta(hours=1)))
        [record] = [path for path in tmp_path.iterdir() if path.suffix == ".refresh"]
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert "rt-old" not in record.name and "rt-old" not in record.read_text()
        assert set(json.loads(record.read_text())) == {"expires_at"}

    def test_a_damaged_record_is_no_record(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        cache.store_refresh_record("rt-old", _refresh_expiry.RefreshTokenRecord(expires_at=self.NOW))
        [record] = [path for path in tmp_path.iterdir() if path.suffix == ".refresh"]
        record.write_text("{not json")
        assert cache.load_refresh_record("rt-old") is None

    def test_without_a_cache_only_the_refreshs_own_statement_counts(self):
        stated = self.NOW + datetime.timedelta(hours=1)
        token = _tokens.obtain_access_token(grant=self.grant(), cache=None, refresh=self.refresh_answering(stated=stated))
        assert token.refresh_token_expires_at == stated

    def test_app_grants_have_no_refresh_token_record(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        grant = _grants.resolve_grant(provider="microsoft", grant="client_credentials", client_id="app",
                                      client_secret="s", refresh_token=None, tenant="contoso.example")
        stated = self.NOW + datetime.timedelta(hours=1)  # nonsense for an app token: it is passed on, not recorded
        token = _tokens.obtain_access_token(grant=grant, cache=cache, refresh=self.refresh_answering(stated=stated))
        assert token.refresh_token_expires_at == stated
        assert [path for path in tmp_path.iterdir() if path.suffix == ".refresh"] == []

    def test_the_sandbox_states_a_lifetime_on_request(self, settings, tmp_path):
        _tagged, uri = fault_token_uri(settings, "rtexpires3600")
        before = datetime.datetime.now(datetime.timezone.utc)
        token = _token_endpoint.refresh_access_token(grant_for(settings, token_uri=uri), tls=tls(settings))
        after = datetime.datetime.now(datetime.timezone.utc)
        assert before + datetime.timedelta(seconds=3600) <= token.refresh_token_expires_at
        assert token.refresh_token_expires_at <= after + datetime.timedelta(seconds=3600)
        plain = _token_endpoint.refresh_access_token(grant_for(settings), tls=tls(settings))
        assert plain.refresh_token_expires_at is None

    def test_the_sandbox_states_it_the_first_n_times_only(self, settings, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path))
        tagged, uri = fault_token_uri(settings, "rtexpires7200x1")
        grant = grant_for(settings, token_uri=uri)
        first = _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings))
        # A refused cached token forces a second refresh, which states nothing: the recorded expiry stays.
        second = _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings), refused=first.token)
        assert second.source == "refresh" and second.token != first.token
        assert first.refresh_token_expires_at is not None
        assert second.refresh_token_expires_at == first.refresh_token_expires_at
        assert [entry["outcome"] for entry in fault_requests(settings, tagged)] == ["issued", "issued"]


class TestMicrosoftEndpoint:
    def test_refresh_sends_scopes_and_reports_the_rotated_token(self, settings):
        grant = _grants.resolve_grant(provider="microsoft", client_id=settings["microsoft_client_id"],
                                      client_secret=settings["microsoft_client_secret"],
                                      refresh_token=settings["microsoft_refresh_token"],
                                      token_uri=settings["microsoft_token_uri"], tenant="contoso.example")
        assert grant.token_uri.endswith("/ms/contoso.example/oauth2/v2.0/token")
        token = _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert token.rotated_refresh_token not in (None, settings["microsoft_refresh_token"])
        assert token.rotated_refresh_token not in repr(token)

    def test_a_public_client_refreshes_without_a_client_secret(self, settings):
        # Entra ID: a public client must not send client_secret, not even an empty one.
        grant = _grants.resolve_grant(provider="microsoft", client_id=settings["microsoft_public_client_id"],
                                      client_secret=None, refresh_token=settings["microsoft_public_refresh_token"],
                                      token_uri=settings["microsoft_token_uri"], tenant="contoso.example")
        token = _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert token.source == "refresh" and token.rotated_refresh_token

    def test_offline_access_left_out_of_the_granted_scope_is_not_reported(self, settings, caplog, capfd):
        grant = _grants.resolve_grant(provider="microsoft", client_id=settings["microsoft_client_id"],
                                      client_secret=settings["microsoft_client_secret"],
                                      refresh_token=settings["microsoft_refresh_token"],
                                      token_uri=settings["microsoft_token_uri"], tenant="contoso.example")
        assert "offline_access" in grant.scopes
        with caplog.at_level("DEBUG"):
            token = _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert token.scopes == ("https://outlook.office.com/SMTP.Send",) and token.missing_scopes == ()
        assert not [record for record in caplog.records if record.name.startswith("google") and record.levelno >= 30]
        assert "scopes" not in capfd.readouterr().err

    def test_a_scope_really_missing_is_reported(self, settings, caplog):
        # The Google-like endpoint grants the Gmail scope whatever is asked: SMTP.Send is really missing.
        grant = _grants.resolve_grant(provider="custom", client_id=settings["client_id"],
                                      client_secret=settings["client_secret"], refresh_token=settings["refresh_token"],
                                      token_uri=settings["token_uri"],
                                      scopes=["https://mail.google.com/", "https://outlook.office.com/SMTP.Send"])
        token = _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert token.missing_scopes == ("https://outlook.office.com/SMTP.Send",)
        assert not [record for record in caplog.records if record.name.startswith("google") and record.levelno >= 30]

    def test_without_scopes_the_endpoint_refuses(self, settings):
        grant = _grants.resolve_grant(provider="custom", client_id=settings["microsoft_client_id"],
                                      client_secret=settings["microsoft_client_secret"],
                                      refresh_token=settings["microsoft_refresh_token"],
                                      token_uri=_providers.fill_tenant(settings["microsoft_token_uri"], None))
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant, tls=tls(settings))
        assert (info.value.code, info.value.details["endpoint_error"]) == ("token_endpoint_error", "invalid_request")


def test_fill_tenant():
    assert _providers.fill_tenant(_providers.PROVIDERS["microsoft"].token_uri, None) == "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert _providers.fill_tenant(_providers.PROVIDERS["microsoft"].auth_uri, "t.example").endswith("/t.example/oauth2/v2.0/authorize")
    assert _providers.fill_tenant(_providers.PROVIDERS["google"].token_uri, "ignored") == _providers.PROVIDERS["google"].token_uri


def test_token_endpoint_error_hints_per_request():
    refresh = _token_endpoint.token_endpoint_error("invalid_grant", "Bad")
    assert refresh.code == "invalid_grant" and "refresh" in refresh.msg and "authorize again" in refresh.full_msg
    google = _token_endpoint.token_endpoint_error("invalid_grant", "Bad",
                                                  hints=_providers.get_provider("google").refresh_error_hints)
    assert "7 days" in google.full_msg and "Publish app" in google.full_msg
    assert _providers.get_provider("microsoft").refresh_error_hints == {}
    code = _token_endpoint.token_endpoint_error("invalid_grant", "Bad", request="the authorization code", hints={"invalid_grant": "again"})
    assert code.msg == "The token endpoint refused the authorization code: invalid_grant: Bad" and code.hint == "again"
    assert _token_endpoint.token_endpoint_error("slow_down", "").code == "token_endpoint_error"


def fault_token_uri(settings, spec):
    """(the spec with a unique tag, the sandbox's token URI that injects it)."""
    tagged = f"{spec}-{uuid.uuid4().hex[:12]}"
    return tagged, settings["token_uri_fault"].replace("{fault}", tagged)


def fault_requests(settings, tagged):
    """The token log's entries for one fault spec: how often a client came to that URL."""
    with open(settings["token_log"], encoding="utf-8") as handle:
        return [entry for entry in map(json.loads, filter(str.strip, handle)) if entry.get("fault") == tagged]


class TestRedirects:
    """A token request is never redirected: a 307 would re-POST the client secret to wherever it points."""

    def test_refresh_refuses_a_307(self, settings):
        tagged, uri = fault_token_uri(settings, "redirect307x1")
        with pytest.raises(_grants.TokenError) as info:
            _token_endpoint.refresh_access_token(grant_for(settings, token_uri=uri), tls=tls(settings))
        assert (info.value.code, info.value.transient) == ("token_endpoint_redirect", False)
        assert "127.0.0.1" in info.value.msg and settings["client_secret"] not in str(info.value)
        assert [entry["outcome"] for entry in fault_requests(settings, tagged)] == ["fault:redirect307"]

    def test_client_credentials_refuse_a_307(self, settings):
        tagged, uri = fault_token_uri(settings, "redirect307x1")
        grant = _grants.resolve_grant(provider="microsoft", grant="client_credentials", client_id=settings["microsoft_app_client_id"],
                                      client_secret=settings["microsoft_app_client_secret"], refresh_token=None,
                                      token_uri=uri, tenant=settings["microsoft_tenant_id"])
        with pytest.raises(_grants.TokenError) as info:
            _tokens.fetch_access_token(grant, tls=tls(settings))
        assert (info.value.code, info.value.transient) == ("token_endpoint_redirect", False)
        assert settings["microsoft_app_client_secret"] not in str(info.value)
        assert len(fault_requests(settings, tagged)) == 1


class TestCacheTrust:
    """The cache trusts only what this user wrote: a directory, entry or lock another user can control is not used."""

    def test_a_directory_of_another_user_is_refused_before_any_request(self, settings, tmp_path, monkeypatch):
        directory = tmp_path / "tokens"
        directory.mkdir(mode=0o700)
        real_uid = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real_uid + 4242)  # this process now runs as another user
        before = len(token_log_outcomes(settings))
        with pytest.raises(SmailError) as info:
            _tokens.obtain_access_token(grant=grant_for(settings), cache=_token_cache.TokenCache(str(directory)), tls=tls(settings))
        assert info.value.code == "token_cache_insecure"
        assert str(directory) in info.value.msg and "token_cache_dir" in info.value.full_msg
        assert len(token_log_outcomes(settings)) == before and os.listdir(directory) == []

    @pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777], ids=oct)
    def test_a_directory_others_may_write_to_is_refused(self, settings, tmp_path, mode):
        directory = tmp_path / "shared"
        directory.mkdir()
        directory.chmod(mode)
        with pytest.raises(SmailError) as info:
            _tokens.obtain_access_token(grant=grant_for(settings), cache=_token_cache.TokenCache(str(directory)), tls=tls(settings))
        assert info.value.code == "token_cache_insecure"
        assert os.listdir(directory) == [] and stat.S_IMODE(directory.stat().st_mode) == mode

    def test_a_symlinked_lock_is_refused_not_followed(self, settings, tmp_path):
        directory = tmp_path / "tokens"
        directory.mkdir(mode=0o700)
        grant = grant_for(settings)
        victim = tmp_path / "victim"
        (directory / f"{_token_cache.cache_key(grant, tls(settings))}.lock").symlink_to(victim)
        with pytest.raises(SmailError) as info:
            _tokens.obtain_access_token(grant=grant, cache=_token_cache.TokenCache(str(directory)), tls=tls(settings))
        assert info.value.code == "token_cache_insecure"
        assert not victim.exists()

    def test_a_symlinked_entry_is_ignored_and_replaced(self, settings, tmp_path):
        directory = tmp_path / "tokens"
        directory.mkdir(mode=0o700)
        grant = grant_for(settings)
        planted = tmp_path / "planted.json"
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        planted.write_text(json.dumps({"access_token": "planted-token", "expires_at": later.timestamp(), "scopes": []}))
        entry = directory / f"{_token_cache.cache_key(grant, tls(settings))}.json"
        entry.symlink_to(planted)
        token = _tokens.obtain_access_token(grant=grant, cache=_token_cache.TokenCache(str(directory)), tls=tls(settings))
        assert (token.source, token.token != "planted-token") == ("refresh", True)
        assert not entry.is_symlink() and "planted-token" in planted.read_text()

    @pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
    def test_an_entry_of_another_user_is_ignored_and_replaced(self, settings, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        grant = grant_for(settings)
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        key = _token_cache.cache_key(grant, tls(settings))
        cache.store(key, _grants.AccessToken(token="planted-token", source="refresh", expires_at=later))
        entry = tmp_path / "tokens" / f"{key}.json"
        os.chown(entry, 65534, 65534)
        token = _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings))
        assert (token.source, token.token != "planted-token") == ("refresh", True)
        assert entry.stat().st_uid == os.geteuid()


class TestTlsInTheCacheKey:
    """A token is served only to tasks that check the endpoint's certificate as the task that fetched it did."""

    def test_a_token_fetched_without_checks_is_not_served_to_a_task_that_checks(self, settings, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        unchecked = _grants.TLSSettings(validate_certs=False, timeout=10)
        assert _tokens.obtain_access_token(grant=grant_for(settings), cache=cache, tls=unchecked).source == "refresh"
        assert _tokens.obtain_access_token(grant=grant_for(settings), cache=cache, tls=unchecked).source == "cache"
        # A CA that did not sign the endpoint's certificate: the endpoint must be asked, and refused.
        other_ca = tmp_path / "other-ca.pem"
        other_ca.write_bytes(trustme.CA().cert_pem.bytes())
        with pytest.raises(_grants.TokenError) as info:
            _tokens.obtain_access_token(grant=grant_for(settings), cache=cache, tls=_grants.TLSSettings(ca_path=str(other_ca), timeout=10))
        assert info.value.code == "token_endpoint_tls"
        # Nor to a task with the default trust, which cannot verify the sandbox either.
        with pytest.raises(_grants.TokenError) as info:
            _tokens.obtain_access_token(grant=grant_for(settings), cache=cache, tls=_grants.TLSSettings(timeout=10))
        assert info.value.code == "token_endpoint_tls"

    def test_a_failure_remembered_under_one_trust_does_not_stop_another(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        grant = _grants.resolve_grant(provider="google", client_id="c", client_secret="s", refresh_token="r")
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)

        def unreachable(_grant, tls=None):
            raise _grants.TokenError("token_endpoint_unreachable", "down", transient=True)

        def answers(_grant, tls=None):
            return _grants.AccessToken(token="t", source="refresh", expires_at=expires)

        with pytest.raises(_grants.TokenError):
            _tokens.obtain_access_token(grant=grant, cache=cache, tls=_grants.TLSSettings(validate_certs=False), refresh=unreachable)
        assert _tokens.obtain_access_token(grant=grant, cache=cache, tls=_grants.TLSSettings(), refresh=answers).token == "t"

    def test_keys_differ_by_trust_and_the_default_keeps_the_grants_own(self, tmp_path):
        grant = _grants.resolve_grant(provider="google", client_id="c", client_secret="s", refresh_token="r")
        keys = {_token_cache.cache_key(grant, trust) for trust in (
            _grants.TLSSettings(), _grants.TLSSettings(validate_certs=False), _grants.TLSSettings(ca_path=str(tmp_path / "a.pem")),
            _grants.TLSSettings(ca_path=str(tmp_path / "b.pem")))}
        assert len(keys) == 4
        assert _token_cache.cache_key(grant, _grants.TLSSettings(timeout=5)) == _token_cache.cache_key(grant, None) == grant.cache_key()


# A fork: one obtain_access_token with a retry policy, its outcome and its own times as one JSON line.
_FORK = """
import json, sys, time
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import cache as _token_cache
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import tokens as _tokens
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import RetryPolicy
args = json.loads(sys.argv[1])
grant = _grants.resolve_grant(provider="custom", client_id=args["client_id"], client_secret=args["client_secret"],
                              refresh_token=args["refresh_token"], token_uri=args["token_uri"])
started = time.time()
try:
    token = _tokens.obtain_access_token(grant=grant, cache=_token_cache.TokenCache(args["cache_dir"]),
                                        tls=_grants.TLSSettings(ca_path=args["ca_path"], timeout=args["timeout"]),
                                        retry=RetryPolicy(retries=args["retries"], delay=args["delay"], max_time=30))
    outcome = {"source": token.source}
except _grants.TokenError as exc:
    outcome = {"error": exc.code, "transient": exc.transient, "msg": exc.full_msg, "attempts": exc.details["token_attempts"]}
print(json.dumps({**outcome, "started": started, "ended": time.time()}))
"""


class TestOutage:
    """A token endpoint that does not answer costs the forks one retry budget together, not one each."""

    def test_forks_share_one_retry_budget(self, settings, tmp_path):
        forks, timeout, retries, delay = 8, 0.5, 1, 0.05
        tagged, uri = fault_token_uri(settings, "hang5")
        args = json.dumps({"client_id": settings["client_id"], "client_secret": settings["client_secret"],
                           "refresh_token": settings["refresh_token"], "token_uri": uri, "ca_path": settings["ca_path"],
                           "cache_dir": str(tmp_path / "tokens"), "timeout": timeout, "retries": retries, "delay": delay})
        processes = [subprocess.Popen([sys.executable, "-c", _FORK, args], stdout=subprocess.PIPE, text=True)
                     for _fork in range(forks)]
        outcomes = [json.loads(process.communicate(timeout=120)[0]) for process in processes]
        assert all(outcome.get("transient") for outcome in outcomes), outcomes
        assert not any(settings["client_secret"] in outcome["msg"] for outcome in outcomes)
        budget = (retries + 1) * timeout + delay
        elapsed = max(outcome["ended"] for outcome in outcomes) - min(outcome["started"] for outcome in outcomes)
        # One budget, one first attempt, and slack for a busy machine; one after another, the forks took 8 budgets.
        assert elapsed < budget + timeout + 5, outcomes
        assert len(fault_requests(settings, tagged)) <= retries + 1
        # One fork spent the budget; the others were told of its failure and asked nothing themselves.
        assert sorted(outcome["attempts"] for outcome in outcomes) == [0] * (forks - 1) + [retries + 1], outcomes

    def test_a_remembered_failure_is_raised_at_once_and_holds_no_secret(
            self, settings, tmp_path, fake_clock, google_auth_backoff):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        tagged, uri = fault_token_uri(settings, "status503")
        grant = grant_for(settings, token_uri=uri)
        with pytest.raises(_grants.TokenError) as first:
            _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings), clock=fake_clock, sleep=fake_clock.sleep)
        asked = len(fault_requests(settings, tagged))
        assert asked == 3 and len(google_auth_backoff) == 2  # google-auth asked three times, pausing between
        google_auth_backoff.clear()
        with pytest.raises(_grants.TokenError) as second:
            _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings), clock=fake_clock, sleep=fake_clock.sleep)
        # At once: no request, and no pause of ours or of google-auth's.
        assert len(fault_requests(settings, tagged)) == asked and not fake_clock.pauses and not google_auth_backoff
        assert (first.value.code, second.value.code) == ("token_endpoint_unavailable", "token_endpoint_unavailable")
        assert second.value.transient and second.value.details["token_attempts"] == 0
        for path in (tmp_path / "tokens").iterdir():
            text = path.read_text()
            assert settings["client_secret"] not in text and settings["refresh_token"] not in text

    def test_only_transient_failures_are_remembered_and_a_success_forgets(self, settings, tmp_path, fake_clock):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        # google-auth asks three times before it reports a 503: the second attempt of ours gets a token.
        _tagged, uri = fault_token_uri(settings, "status503x3")
        grant = grant_for(settings, token_uri=uri)
        remembered = []

        def refresh(grant, tls=None):
            remembered.append(cache.remembered_failure(_token_cache.cache_key(grant, tls)) is not None)
            return _tokens.fetch_access_token(grant, tls=tls)

        token = _tokens.obtain_access_token(grant=grant, cache=cache, tls=tls(settings), refresh=refresh,
                                            retry=RetryPolicy(retries=1, delay=0.1), clock=fake_clock, sleep=fake_clock.sleep)
        assert token.source == "refresh" and remembered == [False, True]
        assert len(fake_clock.pauses) == 1 and 0.05 <= fake_clock.pauses[0] <= 0.1  # one pause of the retry policy
        assert cache.remembered_failure(_token_cache.cache_key(grant, tls(settings))) is None
        revoked = grant_for(settings, refresh_token=settings["revoked_refresh_token"])
        with pytest.raises(_grants.TokenError) as info:
            _tokens.obtain_access_token(grant=revoked, cache=cache, tls=tls(settings))
        assert info.value.code == "invalid_grant" and cache.remembered_failure(_token_cache.cache_key(revoked, tls(settings))) is None

    def test_a_remembered_failure_expires(self, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        cache.remember_failure("k", _grants.TokenError("token_endpoint_unreachable", "down", transient=True))
        assert cache.remembered_failure("k").details["remembered_error"] == "token_endpoint_unreachable"
        later = time.time() + _token_cache.FAILURE_MEMORY_SECONDS + 1
        assert cache.remembered_failure("k", now=later) is None

    def test_a_lock_held_too_long_is_given_up(self, settings, tmp_path, fake_clock):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        grant = grant_for(settings)
        results = []
        (tmp_path / "tokens").mkdir(mode=0o700)
        trust = _grants.TLSSettings(ca_path=settings["ca_path"], timeout=1)
        with open(tmp_path / "tokens" / f"{_token_cache.cache_key(grant, trust)}.lock", "wb") as holder:
            fcntl.flock(holder.fileno(), fcntl.LOCK_EX)  # a stuck holder
            worker = threading.Thread(target=lambda: results.append(
                _tokens.obtain_access_token(grant=grant, cache=cache, tls=trust, clock=fake_clock, sleep=fake_clock.sleep)))
            worker.start()
            worker.join(timeout=60)
            assert not worker.is_alive(), "the wait for the lock did not end"
        assert results and results[0].source == "refresh"
        # It waited the request's timeout and the margin, polling, and then went on without the lock.
        waited = sum(fake_clock.pauses)
        lock_wait = trust.timeout + _token_cache.LOCK_WAIT_MARGIN_SECONDS
        assert lock_wait <= waited < lock_wait + 2 * _token_cache._LOCK_POLL_SECONDS
