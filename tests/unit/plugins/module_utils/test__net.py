# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where secrets may go: https, or plain http to loopback only."""

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _net
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants


@pytest.mark.parametrize("url", ["https://oauth2.googleapis.com/token", "http://127.0.0.1:8080/token",
                                 "http://localhost/token", "http://[::1]:9/token", "HTTPS://login.example.com/x"])
def test_accepted(url):
    assert _net.require_secure_url("token_uri", url) == url


@pytest.mark.parametrize("url", ["http://oauth.example.com/token", "http://10.0.0.1/token", "ftp://example.com/x",
                                 "oauth.example.com/token", "http:///token"])
def test_refused_with_the_option_named(url):
    with pytest.raises(OptionError) as info:
        _net.require_secure_url("auth_uri", url)
    assert info.value.option == "auth_uri"


def test_a_grant_with_plain_http_off_loopback_is_refused_before_any_request():
    with pytest.raises(OptionError) as info:
        _grants.resolve_grant(provider="custom", client_id="c", client_secret="s", refresh_token="r",
                              token_uri="http://oauth.example.com/token")
    assert info.value.option == "token_uri" and "clear text" in info.value.msg


# Parsers disagree on these: urlsplit sees the loopback host, requests/urllib3 connect elsewhere (or the other way).
AMBIGUOUS = ["http://evil.example\\@127.0.0.1:8080/token", "https://user:pw@oauth.example.com/token",
             "http://127.0.0.1:8080@evil.example/token", "https://oauth.example.com\\token", "http://127.0.0.1/to ken",
             "http://evil.example\t@127.0.0.1/token"]


@pytest.mark.parametrize("url", AMBIGUOUS)
def test_backslashes_userinfo_and_blanks_are_refused(url):
    with pytest.raises(OptionError) as info:
        _net.require_secure_url("device_authorization_uri", url)
    assert info.value.option == "device_authorization_uri"


def test_every_endpoint_option_is_checked():
    from ansible_collections.smail.xoauth2.plugins.action import token_ini  # pylint: disable=import-outside-toplevel
    from ansible_collections.smail.xoauth2.plugins.plugin_utils import _consent, _device_flow  # pylint: disable=import-outside-toplevel

    evil = AMBIGUOUS[0]
    checks = {
        "token_uri": lambda: _grants.resolve_grant(provider="custom", client_id="c", client_secret="s", refresh_token="r",
                                                   token_uri=evil),
        "auth_uri": lambda: _consent.resolve_client(provider="google", client_id="c", auth_uri=evil),
        "device_authorization_uri": lambda: _device_flow.resolve_device_client(provider="custom", client_id="c",
                                                                               device_authorization_uri=evil,
                                                                               token_uri="https://idp.example/token",
                                                                               scopes="mail"),
    }
    for option, check in checks.items():
        with pytest.raises(OptionError) as info:
            check()
        assert info.value.option == option
    for option in ("token_uri", "auth_uri"):  # what token_ini would write as TokenURI and AuthURI
        with pytest.raises(OptionError) as info:
            token_ini.token_values({"provider": "google", "account": "a@example.com", option: evil}, {})
        assert info.value.option == option
