# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token INI layout: one definition for the writer and every reader."""

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini
from ansible_collections.smail.xoauth2.plugins.module_utils._ini.token_layout import DEFAULT_LAYOUT as LAYOUT
from ansible_collections.smail.xoauth2.plugins.module_utils._ini.token_layout import TokenIniLayout

SECRET = "s3cr3t-VALUE-do-not-show"


TOKEN_FILE = (
    b"[OAUTH]\r\nAccount=user@example.com\r\nclientid=cid\r\nClientSecret=\"cs\"\r\n"
    b"RefreshToken=rt\r\nTokenURI=https://oauth2.googleapis.com/token\r\n"
)


def test_read_token_ini_default_keys():
    assert LAYOUT.read(TOKEN_FILE) == {
        "account": "user@example.com",
        "client_id": "cid",
        "client_secret": "cs",
        "refresh_token": "rt",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_read_token_ini_remapped_keys_and_section():
    data = b"[Token]\r\nToken=rt2\r\nClientID=cid\r\n"
    assert TokenIniLayout.from_options("token", {"refresh_token": "Token"}).read(data) == {"refresh_token": "rt2", "client_id": "cid"}
    # Section absent: the first section holding any known key is used.
    assert LAYOUT.read(b"[Misc]\r\nX=1\r\n[Token]\r\nRefreshToken=rt\r\n") == {"refresh_token": "rt"}
    # Section present but without the keys: no fallback.
    assert LAYOUT.read(b"[OAUTH]\r\n[Token]\r\nRefreshToken=rt\r\n") == {}
    assert LAYOUT.read(b"") == {}


def test_token_ini_settings():
    settings = LAYOUT.settings({"refresh_token": SECRET, "client_id": "cid", "client_secret": None})
    assert settings == {"OAUTH": {"RefreshToken": SECRET, "ClientID": "cid"}}
    remapped = TokenIniLayout.from_options("Token", {"refresh_token": "Token"}).settings({"refresh_token": "rt"})
    assert remapped == {"Token": {"Token": "rt"}}
    with pytest.raises(_ini.IniError) as info:
        LAYOUT.settings({"password": SECRET})
    assert info.value.field == "password"
    assert SECRET not in str(info.value)
    merged = _ini.merge_ini(TOKEN_FILE, settings)
    assert LAYOUT.read(merged.data)["refresh_token"] == SECRET
    assert merged.updated == ["OAUTH/RefreshToken"]


def test_layout_from_options_validates_and_keeps_defaults():
    layout = TokenIniLayout.from_options("Token", {"refresh_token": "Token", "client_id": None})
    assert layout.keys["refresh_token"] == "Token" and layout.keys["client_id"] == "ClientID"
    assert layout.secret_keys == ("ClientSecret", "Token")
    with pytest.raises(_ini.IniError) as info:
        TokenIniLayout.from_options(None, {"password": "X"}, keys_option="token_ini_keys")
    assert info.value.field == "token_ini_keys[password]"
    with pytest.raises(_ini.IniError) as info:
        TokenIniLayout.from_options(" ", None, section_option="token_ini_section")
    assert info.value.field == "token_ini_section"


def test_section_read_follows_the_reader():
    assert LAYOUT.section_read(b"[Misc]\r\nX=1\r\n[Token]\r\nRefreshToken=rt\r\n") == "Token"
    assert LAYOUT.section_read(b"[oauth]\r\nRefreshToken=rt\r\n") == "oauth"
    assert LAYOUT.section_read(b"[Misc]\r\nX=1\r\n") is None
