# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The app-only grants against the sandbox: a Google service account acting as a Workspace user, Microsoft client
credentials with a secret and with a certificate; and a mail delivered through each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import tokens as _tokens
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import replies as _smtp_replies


def tls(settings):
    return _grants.TLSSettings(ca_path=settings["ca_path"], timeout=10)


def service_account(settings, **kwargs):
    values = dict(provider="google", grant="service_account", client_id=None, client_secret=None, refresh_token=None,
                  service_account_key=settings["service_account_key"], delegated_user=settings["workspace_user"])
    values.update(kwargs)
    return _grants.resolve_grant(**values)


def client_credentials(settings, **kwargs):
    values = dict(provider="microsoft", grant="client_credentials", client_id=settings["microsoft_app_client_id"],
                  client_secret=settings["microsoft_app_client_secret"], refresh_token=None,
                  token_uri=settings["microsoft_token_uri"], tenant=settings["microsoft_tenant_id"])
    values.update(kwargs)
    return _grants.resolve_grant(**values)


class TestServiceAccount:
    def test_delegated_token_for_the_workspace_user(self, sandbox, settings):
        grant = service_account(settings)
        token = _tokens.fetch_access_token(grant, tls=tls(settings))
        assert sandbox.authority.lookup_access_token(token.token).account == settings["workspace_user"]
        assert settings["service_account_key"]["private_key"] not in repr(grant)
        assert grant.scopes == ("https://mail.google.com/",) or grant.scopes == ()

    def test_the_key_may_be_json_text(self, settings):
        grant = service_account(settings, service_account_key=json.dumps(settings["service_account_key"]))
        assert _tokens.fetch_access_token(grant, tls=tls(settings)).token

    def test_undelegated_service_account_is_unauthorized_client(self, settings):
        grant = service_account(settings, service_account_key=settings["service_account_key_undelegated"])
        with pytest.raises(_grants.TokenError) as info:
            _tokens.fetch_access_token(grant, tls=tls(settings))
        assert info.value.code == "unauthorized_client" and "domain-wide delegation" in info.value.hint
        assert settings["service_account_key_undelegated"]["private_key"] not in info.value.full_msg

    @pytest.mark.parametrize("key, problem", [("not json", "not JSON"), ({"type": "authorized_user"}, "not 'service_account'"),
                                              ({"type": "service_account"}, "lacks")])
    def test_a_bad_key_names_the_option(self, settings, key, problem):
        with pytest.raises(OptionError) as info:
            service_account(settings, service_account_key=key)
        assert info.value.option == "service_account_key" and problem in info.value.msg

    def test_google_does_not_offer_client_credentials(self, settings):
        with pytest.raises(OptionError) as info:
            client_credentials(settings, provider="google", token_uri=None, tenant=None)
        assert info.value.option == "grant"


class TestClientCredentials:
    def test_secret(self, sandbox, settings):
        grant = client_credentials(settings)
        assert grant.scopes == ("https://outlook.office365.com/.default",)
        token = _tokens.fetch_access_token(grant, tls=tls(settings))
        assert token.rotated_refresh_token is None and token.expires_at is not None
        assert settings["microsoft_app_client_secret"] not in repr(grant)

    def test_certificate_assertion(self, settings):
        grant = client_credentials(settings, client_secret=None, client_certificate=settings["microsoft_app_certificate"],
                                   client_certificate_key=settings["microsoft_app_certificate_key"])
        assert _tokens.fetch_access_token(grant, tls=tls(settings)).token
        assert "PRIVATE KEY" not in repr(grant)

    def test_wrong_secret_is_invalid_client(self, settings):
        with pytest.raises(_grants.TokenError) as info:
            _tokens.fetch_access_token(client_credentials(settings, client_secret="wrong"), tls=tls(settings))
        assert info.value.code == "invalid_client" and "Certificates & secrets" in info.value.hint
        assert "wrong" not in info.value.full_msg.split("AADSTS")[0]

    def test_another_certificate_is_invalid_client(self, settings, tmp_path):
        import trustme  # pylint: disable=import-outside-toplevel

        other = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert("other.example", key_type=trustme.KeyType.RSA)
        grant = client_credentials(settings, client_secret=None, client_certificate=other.cert_chain_pems[0].bytes().decode(),
                                   client_certificate_key=other.private_key_pem.bytes().decode())
        with pytest.raises(_grants.TokenError) as info:
            _tokens.fetch_access_token(grant, tls=tls(settings))
        assert info.value.code == "invalid_client"

    def test_common_tenant_is_refused_before_any_request(self, settings):
        with pytest.raises(OptionError) as info:
            client_credentials(settings, token_uri=None, tenant="common")
        assert info.value.option == "tenant"

    def test_an_ec_key_names_the_option_before_any_request(self, settings):
        import trustme  # pylint: disable=import-outside-toplevel

        ec = trustme.CA().issue_cert("ec.example", key_type=trustme.KeyType.ECDSA)
        grant = client_credentials(settings, client_secret=None, client_certificate=ec.cert_chain_pems[0].bytes().decode(),
                                   client_certificate_key=ec.private_key_pem.bytes().decode())
        with pytest.raises(OptionError) as info:
            _tokens.fetch_access_token(grant, tls=tls(settings))
        assert info.value.option == "client_certificate_key"

    def test_certificate_without_key(self, settings):
        with pytest.raises(OptionError) as info:
            client_credentials(settings, client_secret=None, client_certificate=settings["microsoft_app_certificate"])
        assert info.value.option == "client_certificate_key"

    def test_a_bad_scope_is_invalid_scope(self, settings):
        with pytest.raises(_grants.TokenError) as info:
            _tokens.fetch_access_token(client_credentials(settings, scopes=["https://outlook.office.com/SMTP.Send"]),
                                       tls=tls(settings))
        assert info.value.code == "invalid_scope"

    def test_the_cache_keys_grants_apart(self, settings):
        keys = {client_credentials(settings).cache_key(), service_account(settings).cache_key(),
                client_credentials(settings, client_secret="other").cache_key(),
                service_account(settings, delegated_user="other@example.com").cache_key()}
        assert len(keys) == 4


def sandbox_options(settings, **kwargs):
    values = {"ca_path": settings["ca_path"], "host": settings["host"], "port": settings["smtp_ssl_port"], "secure": "ssl",
              "token_cache": False, "timeout": 10, "retries": 0}
    values.update(kwargs)
    return values


def test_mail_as_the_delegated_user(settings):
    options = sandbox_options(settings, provider="google", grant="service_account",
                              service_account_key=settings["service_account_key"])
    spec = _smtp_message.MessageSpec(sender=settings["workspace_user"], subject="through a service account", to=("ops@example.com",))
    delivery = _mailer.deliver(options, spec)
    assert delivery.result["recipients"] == ["ops@example.com"]
    assert settings["service_account_key"]["private_key"] not in json.dumps(delivery.result)
    stored = [path for path in Path(settings["mail_dir"]).glob("*.json")
              if json.loads(path.read_text())["eml"] and b"through a service account" in path.with_suffix(".eml").read_bytes()]
    assert json.loads(stored[0].read_text())["account"] == settings["workspace_user"]


def test_a_token_for_the_service_account_itself_is_refused_with_a_hint(settings):
    own = _tokens.fetch_access_token(service_account(settings, delegated_user=None), tls=tls(settings))
    options = sandbox_options(settings, provider="google", access_token=own.token,
                              username=settings["service_account_key"]["client_email"])
    spec = _smtp_message.MessageSpec(sender=settings["workspace_user"], subject="no delegation", to=("ops@example.com",))
    with pytest.raises(_smtp_replies.SMTPError) as info:
        _mailer.deliver(options, spec)
    assert info.value.code == "smtp_auth" and "delegated" in info.value.hint


def test_a_user_outside_the_domain_is_invalid_grant_with_a_hint(settings):
    options = sandbox_options(settings, provider="google", grant="service_account",
                              service_account_key=settings["service_account_key"], delegated_user="someone@elsewhere.example")
    spec = _smtp_message.MessageSpec(sender=settings["workspace_user"], subject="outside", to=("ops@example.com",))
    with pytest.raises(_grants.TokenError) as info:
        _mailer.deliver(options, spec)
    assert info.value.code == "invalid_grant" and "delegated_user" in info.value.hint


def test_mail_through_microsoft_client_credentials(settings):
    options = sandbox_options(settings, provider="microsoft", grant="client_credentials",
                              client_id=settings["microsoft_app_client_id"],
                              client_certificate=settings["microsoft_app_certificate"],
                              client_certificate_key=settings["microsoft_app_certificate_key"],
                              token_uri=settings["microsoft_token_uri"], tenant=settings["microsoft_tenant_id"])
    spec = _smtp_message.MessageSpec(sender=settings["microsoft_app_mailbox"], subject="app token", to=("ops@example.com",))
    assert _mailer.deliver(options, spec).result["recipients"] == ["ops@example.com"]


def test_an_app_token_for_another_mailbox_gets_the_microsoft_hint(settings):
    options = sandbox_options(settings, provider="microsoft", grant="client_credentials",
                              client_id=settings["microsoft_app_client_id"],
                              client_secret=settings["microsoft_app_client_secret"],
                              token_uri=settings["microsoft_token_uri"], tenant=settings["microsoft_tenant_id"])
    spec = _smtp_message.MessageSpec(sender="someone.else@contoso.example", subject="other mailbox", to=("ops@example.com",))
    with pytest.raises(_smtp_replies.SMTPError) as info:
        _mailer.deliver(options, spec)
    assert info.value.code == "smtp_auth" and "Add-MailboxPermission" in info.value.hint
