# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.action import smail_ini
from ansible_collections.smail.xoauth2.plugins.action.smail_ini import ActionModule as SmailIniAction
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError

DEST = r"C:\SMAIL\smail.ini"
EXISTING = "; SMAIL 設定\r\n[SMTP]\r\nServer = old.example.jp\r\n  Unknown=kept as is  \r\nOld=1\r\n\r\n[Written by SMAIL]\r\nLast=x".encode("cp932")


def test_documentation_matches_argspec(docs_match_argspec):
    assert docs_match_argspec("smail_ini", smail_ini.SMAIL_INI_ARGSPEC)


def test_ini_text_settings():
    assert smail_ini.ini_text_settings({"S": {"Port": 465, "Rate": 1.5, "Name": "x", "Gone": None}, "T": "bad"}) == {
        "S": {"Port": "465", "Rate": "1.5", "Name": "x", "Gone": None}, "T": "bad"}
    with pytest.raises(OptionError) as info:
        smail_ini.ini_text_settings({"S": {"Flag": True}})
    assert info.value.option == "settings[S][Flag]"


def test_secret_values():
    settings = {"SMTP": {"Password": "pw", "Server": "s", "EMPTY": ""}, "Other": {"password": "pw2"}}
    assert smail_ini.secret_values(settings, ["PASSWORD", "empty"]) == {"pw", "pw2"}


def test_merge_keeps_foreign_lines(make_target, run_ini_action):
    target = make_target({DEST: EXISTING})
    result = run_ini_action(SmailIniAction, {"dest": DEST, "settings": {"smtp": {"server": "smtp.gmail.com", "Port": 465, "old": None},
                                                                        "OAuth": {"AuthType": "OAUTH-XOAUTH2"}}}, target)
    assert result["changed"] is True
    assert result["updated"] == ["smtp/server", "smtp/Port", "smtp/old", "OAuth/AuthType"]
    assert target.files[DEST] == (
        "; SMAIL 設定\r\n[SMTP]\r\nServer=smtp.gmail.com\r\n  Unknown=kept as is  \r\nPort=465\r\n\r\n"
        "[Written by SMAIL]\r\nLast=x\r\n\r\n[OAuth]\r\nAuthType=OAUTH-XOAUTH2\r\n"
    ).encode("cp932")
    again = run_ini_action(SmailIniAction, {"dest": DEST, "settings": {"SMTP": {"Server": "smtp.gmail.com", "Port": "465", "Old": None},
                                                                       "OAUTH": {"AuthType": "OAUTH-XOAUTH2"}}}, target)
    assert again["changed"] is False
    assert again["updated"] == []


def test_create_false(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(SmailIniAction, {"dest": DEST, "create": False, "settings": {"S": {"K": "v"}}}, target)
    assert result["failed"] is True
    assert result["error"] == "dest_missing"
    assert target.processes == ["smail.xoauth2.slurp_stat"]


def test_new_file_without_mode_is_left_to_copy(make_target, run_ini_action):
    target = make_target()
    run_ini_action(SmailIniAction, {"dest": "/srv/smail.ini", "settings": {"S": {"K": "v"}}}, target)
    assert target.processes == ["smail.xoauth2.slurp_stat", "ansible.legacy.copy"]


def test_secret_keys_are_masked_in_the_diff(make_target, run_ini_action):
    target = make_target({DEST: b"[SMTP]\r\nPassword=old-password\r\n"})
    result = run_ini_action(SmailIniAction, {"dest": DEST, "settings": {"SMTP": {"Password": "new-password"}}, "secret_keys": ["password"]},
                            target, diff=True)
    assert result["diff"]["before"] == "[SMTP]\r\nPassword=********\r\n"
    assert result["diff"]["after"] == "[SMTP]\r\nPassword=******** (changed)\r\n"
    assert "new-password" not in repr(result)
    assert "old-password" not in repr(result)


def test_injection_refused_with_the_key_named(make_target, run_ini_action):
    target = make_target({DEST: EXISTING})
    result = run_ini_action(SmailIniAction, {"dest": DEST, "settings": {"SMTP": {"Server": "x\r\n[Evil]\r\nA=b"}}}, target)
    assert result["error"] == "invalid_option"
    assert result["option"] == "settings[SMTP][Server]"
    assert "[Evil]" not in result["msg"]
    assert target.calls == []
