# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret

from ansible_collections.smail.xoauth2.plugins.action import token_ini
from ansible_collections.smail.xoauth2.plugins.action.token_ini import ActionModule as TokenIniAction
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import token_layout as _token_ini
from ansible_collections.smail.xoauth2.plugins.plugin_utils._client_secrets import parse_client_secrets

SECRET = "GOCSPX-client-secret-value"
DEST = "/srv/smail/smail_refresh_token.ini"
CLIENT_JSON = {
    "installed": {
        "client_id": "123-abc.apps.googleusercontent.com",
        "project_id": "smail",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "client_secret": SECRET,
        "redirect_uris": ["http://localhost"],
    }
}
DEFAULT_ARGS = {"provider": "google", "tenant": None, **dict.fromkeys(_token_ini.DEFAULT_KEYS)}
KEYS = dict(_token_ini.DEFAULT_KEYS)


def test_documentation_matches_argspec(docs_match_argspec):
    assert docs_match_argspec("token_ini", token_ini.TOKEN_INI_ARGSPEC)


def test_no_environment_fallbacks():
    assert not any("fallback" in spec for spec in token_ini.TOKEN_INI_ARGSPEC.values())
    assert token_ini.TOKEN_INI_ARGSPEC["client_secret"]["no_log"] is True
    assert token_ini.TOKEN_INI_ARGSPEC["refresh_token"]["no_log"] is True


@pytest.mark.parametrize("kind", ["installed", "web"])
def test_parse_client_secrets(kind):
    values = parse_client_secrets(json.dumps({kind: CLIENT_JSON["installed"]})).as_options()
    assert values == {
        "client_id": "123-abc.apps.googleusercontent.com",
        "client_secret": SECRET,
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }


@pytest.mark.parametrize("text, problem", [
    ('{"installed": {"client_secret": "' + SECRET + '"', "not valid JSON"),
    ('{"other": {"client_secret": "' + SECRET + '"}}', "no 'installed' or 'web'"),
    ('{"installed": {"client_secret": "' + SECRET + '"}}', "no client_id"),
    ('["' + SECRET + '"]', "no 'installed' or 'web'"),
])
def test_parse_client_secrets_errors_name_the_option_never_the_secret(text, problem):
    with pytest.raises(OptionError) as info:
        parse_client_secrets(text)
    assert info.value.option == "client_secrets_file"
    assert problem in info.value.msg
    assert SECRET not in str(info.value)


def test_token_values_options_then_file_then_provider():
    from_file = {"client_id": "file-id", "client_secret": "file-secret", "token_uri": "https://file/token"}
    values = token_ini.token_values({**DEFAULT_ARGS, "account": "a@example.com", "client_id": "option-id"}, from_file)
    assert values == {
        "account": "a@example.com",
        "client_id": "option-id",
        "client_secret": "file-secret",
        "refresh_token": None,
        "token_uri": "https://file/token",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }


def test_token_values_microsoft_tenant_and_custom():
    microsoft = token_ini.token_values({**DEFAULT_ARGS, "provider": "microsoft", "tenant": "contoso.onmicrosoft.com"}, {})
    assert microsoft["token_uri"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert microsoft["auth_uri"] == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    custom = token_ini.token_values({**DEFAULT_ARGS, "provider": "custom"}, {})
    assert custom["token_uri"] is None and custom["auth_uri"] is None


def test_token_settings_leave_unset_fields_alone():
    settings = token_ini.token_settings({"account": "a@example.com", "refresh_token": None}, section="OAUTH", keys=KEYS, encoding="cp932")
    assert settings == {"OAUTH": {"Account": "a@example.com"}}


@pytest.mark.parametrize("values, section, keys, option, problem", [
    ({"refresh_token": SECRET + "\n[Evil]"}, "OAUTH", {}, "refresh_token", "line break (key RefreshToken in [OAUTH])"),
    ({"client_secret": '"' + SECRET + '"'}, "OAUTH", {}, "client_secret", "quotes"),
    ({"account": "ユーザー\U0001f600@example.com"}, "OAUTH", {}, "account", "cannot be encoded as cp932 (key Account"),
    ({"account": "a@example.com"}, "OA]UTH", {}, "section", "']'"),
    ({"account": "a@example.com"}, "OAUTH", {"account": "Mail=Address"}, "keys.account", "'='"),
    ({"account": "a@example.com"}, "OAUTH", {"account": ";Account"}, "keys.account", "comment"),
    ({"account": "a@example.com"}, "OAUTH", {"refresh_token": "clientid"}, "keys.refresh_token", "same INI key as keys.client_id"),
])
def test_token_settings_errors_name_the_option(values, section, keys, option, problem):
    with pytest.raises(OptionError) as info:
        token_ini.token_settings(values, section=section, keys={**KEYS, **keys}, encoding="cp932")
    assert info.value.option == option
    assert problem in info.value.msg
    assert SECRET not in str(info.value)


def test_remapped_keys_and_section(make_target, run_ini_action):
    target = make_target({DEST: b"[OAuth2]\r\nToken=old\r\nOther=kept\r\n"})
    result = run_ini_action(TokenIniAction, {"dest": DEST, "account": "a@example.com", "refresh_token": "new", "section": "oauth2",
                                             "keys": {"refresh_token": "token"}, "provider": "custom"}, target)
    assert result["updated"] == ["oauth2/Account", "oauth2/token"]
    assert target.files[DEST] == b"[OAuth2]\r\nToken=new\r\nOther=kept\r\nAccount=a@example.com\r\n"


def test_utf8_bom_and_lf_on_request(make_target, run_ini_action):
    target = make_target()
    run_ini_action(TokenIniAction, {"dest": DEST, "account": "ユーザー@example.com", "encoding": "utf-8-sig", "newline": "lf",
                                    "provider": "custom"}, target)
    assert target.files[DEST] == "\ufeff[OAUTH]\nAccount=ユーザー@example.com\n".encode("utf-8")


def test_cp932_crlf_by_default(make_target, run_ini_action):
    target = make_target()
    run_ini_action(TokenIniAction, {"dest": DEST, "account": "ユーザー@example.com", "refresh_token": "rt"}, target)
    assert target.files[DEST] == (
        "[OAUTH]\r\nAccount=ユーザー@example.com\r\nRefreshToken=rt\r\n"
        "TokenURI=https://oauth2.googleapis.com/token\r\nAuthURI=https://accounts.google.com/o/oauth2/auth\r\n"
    ).encode("cp932")


def test_vault_encrypted_client_secrets_file(tmp_path, make_target, run_ini_action):
    secret = VaultSecret(b"vault-password")
    (tmp_path / "files").mkdir()
    encrypted = VaultLib([("default", secret)]).encrypt(json.dumps(CLIENT_JSON))
    (tmp_path / "files" / "client_secret.json").write_bytes(encrypted)
    loader = DataLoader()
    loader.set_vault_secrets([("default", secret)])
    target = make_target()
    result = run_ini_action(TokenIniAction, {"dest": DEST, "account": "a@example.com", "client_secrets_file": "client_secret.json",
                                             "refresh_token": "rt"}, target, loader=loader, search_path=[str(tmp_path)], diff=True)
    values = _token_ini.DEFAULT_LAYOUT.read(target.files[DEST])
    assert values["client_id"] == "123-abc.apps.googleusercontent.com"
    assert values["client_secret"] == SECRET
    assert SECRET not in repr(result)
    assert "ClientSecret=********" in result["diff"]["after"]


def test_client_secrets_file_missing(tmp_path, make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, {"dest": DEST, "account": "a@example.com", "client_secrets_file": "absent.json"},
                            target, loader=DataLoader(), search_path=[str(tmp_path)])
    assert result["error"] == "invalid_option"
    assert result["option"] == "client_secrets_file"
    assert target.calls == []


def sandbox_args(settings, refresh_token):
    return {"dest": DEST, "account": settings["account"], "provider": "custom", "token_uri": settings["token_uri"],
            "client_id": settings["client_id"], "client_secret": settings["client_secret"], "refresh_token": refresh_token,
            "ca_path": settings["ca_path"], "verify": True}


def test_verify_with_revoked_token_writes_nothing(settings, make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, sandbox_args(settings, settings["revoked_refresh_token"]), target, diff=True)
    assert result["failed"] is True
    assert result["error"] == "invalid_grant"
    assert target.processes == ["smail.xoauth2.slurp_stat"]
    assert target.files == {}
    for value in (settings["client_secret"], settings["revoked_refresh_token"]):
        assert value not in repr(result)


def test_verify_uses_the_values_the_file_will_hold(settings, make_target, run_ini_action):
    existing = f"[OAUTH]\r\nRefreshToken={settings['refresh_token']}\r\n".encode()
    target = make_target({DEST: existing})
    args = sandbox_args(settings, None)
    result = run_ini_action(TokenIniAction, args, target)
    assert result["verified"] is True
    assert result["changed"] is True
    assert settings["refresh_token"] not in repr(result)
    assert _token_ini.DEFAULT_LAYOUT.read(target.files[DEST])["refresh_token"] == settings["refresh_token"]
