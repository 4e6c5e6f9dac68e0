# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The send path end to end: a Microsoft send whose rotated refresh token is written back into the token INI, and a
refresh token whose stated expiry is returned and warned of."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import token_layout as _token_ini
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import replies as _smtp_replies


def write(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "smail_refresh_token.ini"
    path.write_bytes(data)
    path.chmod(mode)
    return path


def microsoft_token_ini(settings, tmp_path) -> Path:
    text = "\r\n".join([
        "[OAUTH]",
        f"Account={settings['microsoft_account']}",
        f"ClientID={settings['microsoft_client_id']}",
        f"ClientSecret={settings['microsoft_client_secret']}",
        f"RefreshToken={settings['microsoft_refresh_token']}",
        f"TokenURI={settings['microsoft_token_uri']}",
        "",
    ])
    return write(tmp_path, text.encode("cp932"))


def test_microsoft_send_persists_the_rotated_token(settings, tmp_path):
    path = microsoft_token_ini(settings, tmp_path)
    before = path.read_bytes()
    options = {"provider": "microsoft", "tenant": "contoso.example", "token_ini": str(path), "persist_rotated_token": True,
               "token_cache_dir": str(tmp_path / "cache"), "host": settings["host"], "port": settings["smtp_starttls_port"],
               "ca_path": settings["ca_path"], "timeout": 10}
    spec = _smtp_message.MessageSpec(sender=settings["microsoft_account"], to=("ops@example.com",), subject="rotation")

    delivery = _mailer.deliver(options, spec)

    assert delivery.result["sent"] and delivery.result["refresh_token_rotated"] is True
    assert delivery.warnings == []
    new_token = _token_ini.DEFAULT_LAYOUT.read(path.read_bytes())["refresh_token"]
    assert new_token != settings["microsoft_refresh_token"]
    assert path.read_bytes() == before.replace(settings["microsoft_refresh_token"].encode(), new_token.encode())
    assert new_token in delivery.secrets
    last = json.loads(Path(settings["token_log"]).read_text(encoding="utf-8").splitlines()[-1])
    assert (last["tenant"], last["scope"]) == ("contoso.example", "https://outlook.office.com/SMTP.Send offline_access")

    # The access token was cached under the new refresh token too: the next send refreshes nothing.
    again = _mailer.deliver(options, spec)
    assert again.result["token_source"] == "cache" and "refresh_token_rotated" not in again.result


def test_microsoft_check_mode_leaves_the_file(settings, tmp_path):
    path = microsoft_token_ini(settings, tmp_path)
    before = path.read_bytes()
    options = {"provider": "microsoft", "tenant": "contoso.example", "token_ini": str(path), "persist_rotated_token": True,
               "token_cache": False, "host": settings["host"], "port": settings["smtp_starttls_port"],
               "ca_path": settings["ca_path"], "timeout": 10}
    spec = _smtp_message.MessageSpec(sender=settings["microsoft_account"], to=("ops@example.com",), subject="check")
    delivery = _mailer.deliver(options, spec, check_only=True)
    assert delivery.result["refresh_token_rotated"] is True and not delivery.result["sent"]
    assert path.read_bytes() == before


def test_a_rotated_token_that_cannot_be_stored_is_a_warning_not_a_failure(settings, tmp_path):
    options = {"provider": "microsoft", "tenant": "contoso.example", "client_id": settings["microsoft_client_id"],
               "client_secret": settings["microsoft_client_secret"], "refresh_token": settings["microsoft_refresh_token"],
               "token_uri": settings["microsoft_token_uri"], "persist_rotated_token": True, "token_cache": False,
               "host": settings["host"], "port": settings["smtp_starttls_port"], "secure": "starttls", "ca_path": settings["ca_path"],
               "timeout": 10}
    spec = _smtp_message.MessageSpec(sender=settings["microsoft_account"], to=("ops@example.com",), subject="warning")
    delivery = _mailer.deliver(options, spec)
    assert delivery.result["sent"] and len(delivery.warnings) == 1 and "token_ini" in delivery.warnings[0]


def expiring_token_uri(settings, seconds):
    """The sandbox's token URI that states ``seconds`` as the refresh token's lifetime (a unique tag per call)."""
    return settings["token_uri_fault"].replace("{fault}", f"rtexpires{seconds}-{uuid.uuid4().hex[:12]}")


def google_options(settings, tmp_path, **overrides):
    return {"provider": "custom", "client_id": settings["client_id"], "client_secret": settings["client_secret"],
            "refresh_token": settings["refresh_token"], "token_uri": settings["token_uri"],
            "token_cache_dir": str(tmp_path / "cache"), "host": settings["host"], "port": settings["smtp_starttls_port"],
            "secure": "starttls", "username": settings["account"], "ca_path": settings["ca_path"], "timeout": 10, **overrides}


class TestRefreshTokenExpiry:
    spec = _smtp_message.MessageSpec(sender="ops@example.com", to=("ops@example.com",), subject="expiry")

    def test_a_stated_expiry_is_returned_and_warned_of(self, settings, tmp_path):
        started = datetime.datetime.now(datetime.timezone.utc)
        delivery = _mailer.deliver(google_options(settings, tmp_path, token_uri=expiring_token_uri(settings, 3600)),
                                   self.spec)

        expires_at = datetime.datetime.fromisoformat(delivery.result["refresh_token_expires_at"].replace("Z", "+00:00"))
        assert started + datetime.timedelta(seconds=3598) <= expires_at <= started + datetime.timedelta(seconds=3660)
        assert len(delivery.warnings) == 1
        assert f"expires at {delivery.result['refresh_token_expires_at']}" in delivery.warnings[0]
        assert "refresh_token_warn_days=2" in delivery.warnings[0] and "smail.xoauth2.authorize" in delivery.warnings[0]
        assert settings["refresh_token"] not in delivery.warnings[0]

    def test_the_record_serves_a_later_send_through_another_token_endpoint(self, settings, tmp_path):
        first = _mailer.deliver(google_options(settings, tmp_path, token_uri=expiring_token_uri(settings, 3600)), self.spec)
        later = _mailer.deliver(google_options(settings, tmp_path), self.spec)

        assert later.result["token_source"] == "refresh"  # another endpoint, another access token
        assert later.result["refresh_token_expires_at"] == first.result["refresh_token_expires_at"]
        assert later.warnings == first.warnings

    def test_far_expiry_or_zero_days_do_not_warn(self, settings, tmp_path):
        far = _mailer.deliver(google_options(settings, tmp_path, token_uri=expiring_token_uri(settings, 30 * 86400)),
                              self.spec)
        off = _mailer.deliver(google_options(settings, tmp_path, token_uri=expiring_token_uri(settings, 3600),
                                             token_cache_dir=str(tmp_path / "other"), refresh_token_warn_days=0),
                              self.spec)

        assert "refresh_token_expires_at" in far.result and far.warnings == []
        assert "refresh_token_expires_at" in off.result and off.warnings == []

    def test_nothing_stated_nothing_returned(self, settings, tmp_path):
        delivery = _mailer.deliver(google_options(settings, tmp_path), self.spec)
        assert "refresh_token_expires_at" not in delivery.result and delivery.warnings == []

    @pytest.mark.parametrize("days", [-1, "2"])
    def test_a_bad_window_fails_before_the_token_endpoint_is_asked(self, settings, tmp_path, days):
        log = Path(settings["token_log"])
        before = log.read_text(encoding="utf-8")
        with pytest.raises(OptionError) as error:
            _mailer.deliver(google_options(settings, tmp_path, refresh_token_warn_days=days), self.spec)
        assert "refresh_token_warn_days" in str(error.value)
        assert log.read_text(encoding="utf-8") == before


def test_exchange_refusing_basic_auth_is_basic_auth_disabled_not_retried_nor_spooled(sandbox, settings, tmp_path):
    # Exchange Online answers 550 5.7.30 to a password login once Basic authentication is off for the tenant.
    username = f"fault-basicauth-{uuid.uuid4().hex}@contoso.example"
    options = {"provider": "microsoft", "auth": "login", "username": username, "password": settings["app_password"],
               "host": settings["host"], "port": settings["smtp_starttls_port"], "ca_path": settings["ca_path"],
               "timeout": 10, "retries": 3, "retry_delay": 0, "spool_dir": str(tmp_path / "spool")}
    spec = _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="basic auth ends")

    with pytest.raises(_smtp_replies.SMTPError) as info:
        _mailer.deliver(options, spec)

    assert info.value.code == "basic_auth_disabled"
    assert "550 5.7.30" in info.value.msg
    assert "xoauth2" in info.value.hint and "docs/migration.md" in info.value.hint
    assert "SMTP.SendAsApp" not in info.value.full_msg
    assert sandbox.faults.seen(username.lower()) == 1  # one login, no retry
    assert not list((tmp_path / "spool").rglob("*.mail"))


def test_microsoft_renews_a_cached_token_with_less_than_ten_minutes_left(sandbox, settings, tmp_path):
    # High Volume Email refuses a token with less than 10 minutes left (501 5.5.127); the first refresh here issues a
    # token of 480 seconds, which the next send must not use.
    tag = uuid.uuid4().hex
    options = {"provider": "microsoft", "client_id": settings["client_id"], "client_secret": settings["client_secret"],
               "refresh_token": settings["refresh_token"],
               "token_uri": settings["token_uri_fault"].replace("{fault}", f"lifetime480x1-{tag}"),
               "token_cache_dir": str(tmp_path / "cache"), "host": settings["host"],
               "port": settings["smtp_starttls_port"], "ca_path": settings["ca_path"], "timeout": 10, "debug": True}
    spec = _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="hve")
    first = _mailer.deliver(options, spec)
    assert first.result["token_source"] == "refresh"

    hve_user = f"fault-hve-{tag}@contoso.example"
    second = _mailer.deliver({**options, "username": hve_user}, spec)

    assert second.result["sent"] and second.result["token_source"] == "refresh"
    assert sandbox.faults.seen(hve_user) == 0, "the server refused the cached token with 501 5.5.127"
    assert not any("5.5.127" in line for line in second.transcript.lines)


def test_a_scope_the_token_endpoint_left_out_is_a_warning(settings, tmp_path):
    # The Google-like endpoint grants the Gmail scope whatever is asked: SMTP.Send is really missing from its answer.
    options = {"provider": "custom", "client_id": settings["client_id"], "client_secret": settings["client_secret"],
               "refresh_token": settings["refresh_token"], "token_uri": settings["token_uri"],
               "scopes": ["https://mail.google.com/", "https://outlook.office.com/SMTP.Send"], "token_cache": False,
               "host": settings["host"], "port": settings["smtp_starttls_port"], "secure": "starttls", "ca_path": settings["ca_path"],
               "timeout": 10}
    spec = _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="scopes")

    delivery = _mailer.deliver(options, spec)

    assert delivery.result["sent"]
    (warning,) = [text for text in delivery.warnings if "did not grant" in text]
    assert "https://outlook.office.com/SMTP.Send" in warning and "offline_access" not in warning
    assert settings["client_secret"] not in warning and settings["refresh_token"] not in warning


class TestUnusableOptionsAreNamed:
    """Input that used to end in a ValueError without a stable code: invalid_option naming the option, nothing sent."""

    spec = _smtp_message.MessageSpec(sender="ops@example.com", to=("ops@example.com",), subject="named")

    @pytest.mark.parametrize("ehlohost", ["client.example\r\nRCPT TO:<x@example.com>", "クライアント.example", "a b", "host\x00"])
    def test_an_ehlohost_smtp_cannot_carry(self, settings, tmp_path, ehlohost):
        with pytest.raises(OptionError) as error:
            _mailer.deliver(google_options(settings, tmp_path, ehlohost=ehlohost), self.spec)
        assert error.value.option == "ehlohost" and error.value.code == "invalid_option"

    def test_a_nul_in_token_cache_dir(self, settings, tmp_path):
        with pytest.raises(OptionError) as error:
            _mailer.deliver(google_options(settings, tmp_path, token_cache_dir=str(tmp_path / "cache\0dir")), self.spec)
        assert error.value.option == "token_cache_dir" and error.value.code == "invalid_option"

    def test_a_nul_in_spool_dir(self, settings, tmp_path):
        with pytest.raises(OptionError) as error:
            _mailer.deliver(google_options(settings, tmp_path, spool_dir=str(tmp_path / "spool\0dir"), port=1), self.spec)
        assert error.value.option == "spool_dir" and error.value.code == "invalid_option"
