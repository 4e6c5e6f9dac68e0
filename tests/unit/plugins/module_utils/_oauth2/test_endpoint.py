# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token endpoint's transport: plain http (loopback only) never goes through an environment proxy."""

from __future__ import annotations

from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import endpoint as _token_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _device_flow


def http_grant(settings):
    return _grants.resolve_grant(provider="custom", client_id=settings["client_id"], client_secret=settings["client_secret"],
                                 refresh_token=settings["refresh_token"], token_uri=settings["token_uri_http"])


class TestPlainHttpGoesDirect:
    def test_a_refresh_over_http_to_loopback_bypasses_the_proxy(self, sandbox, settings, standin_proxy):
        token = _token_endpoint.refresh_access_token(http_grant(settings), tls=_grants.TLSSettings(timeout=10))
        assert sandbox.authority.lookup_access_token(token.token) is not None
        assert standin_proxy.requests == []

    def test_also_with_tls_settings(self, sandbox, settings, standin_proxy):
        # ca_path makes the session read the environment's proxies itself.
        tls = _grants.TLSSettings(ca_path=settings["ca_path"], timeout=10)
        token = _token_endpoint.refresh_access_token(http_grant(settings), tls=tls)
        assert sandbox.authority.lookup_access_token(token.token) is not None
        assert standin_proxy.requests == []

    def test_the_device_flow_over_http_bypasses_the_proxy(self, settings, standin_proxy):
        http_base = settings["token_uri_http"].rsplit("/", 1)[0]
        client = _device_flow.resolve_device_client(
            provider="custom", client_id=settings["client_id"], client_secret=settings["client_secret"],
            device_authorization_uri=f"{http_base}/device/code", token_uri=settings["token_uri_http"],
            scopes=["https://mail.google.com/"])
        status, data = _token_endpoint.post_form(client.device_authorization_uri, _device_flow.device_authorization_form(client),
                                                 tls=_grants.TLSSettings(timeout=10))
        assert status == 200 and data.get("user_code")
        assert standin_proxy.requests == []
