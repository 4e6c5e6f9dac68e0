# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where secrets may go: https, or plain http to loopback only."""

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _net, _oauth2
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError


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
        _oauth2.resolve_grant(provider="custom", client_id="c", client_secret="s", refresh_token="r",
                              token_uri="http://oauth.example.com/token")
    assert info.value.option == "token_uri" and "clear text" in info.value.msg
