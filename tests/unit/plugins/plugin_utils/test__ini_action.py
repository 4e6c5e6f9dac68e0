# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared INI action against a fake target: which modules run, in which order, with which arguments."""

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.action.smail_ini import ActionModule as SmailIniAction
from ansible_collections.smail.xoauth2.plugins.action.token_ini import ActionModule as TokenIniAction

SECRET = "cs-very-secret-value"
REFRESH = "1//refresh-token-value"

TOKEN_ARGS = {"dest": "/srv/smail/smail_refresh_token.ini", "account": "user@example.com", "client_id": "cid",
              "client_secret": SECRET, "refresh_token": REFRESH}


def test_new_posix_secret_file_is_created_0600_before_the_copy(local_tmp, make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    assert result["changed"] is True
    assert target.names() == ["stat", "ansible.legacy.file", "ansible.legacy.copy"]
    touch = target.calls[1][1]
    assert touch == {"path": TOKEN_ARGS["dest"], "state": "touch", "mode": "0600"}
    copy_args = target.calls[2][1]
    assert copy_args["dest"] == TOKEN_ARGS["dest"]
    assert "content" not in copy_args
    assert "backup" not in copy_args
    assert SECRET.encode() in target.files[TOKEN_ARGS["dest"]]
    # The rendered temp file is gone once the task is over.
    assert list(local_tmp.iterdir()) == []


def test_user_mode_owner_group_apply_to_the_placeholder_and_the_copy(make_target, run_ini_action):
    target = make_target()
    run_ini_action(TokenIniAction, {**TOKEN_ARGS, "mode": "0640", "owner": "smail", "group": "smail"}, target)
    assert target.calls[1][1] == {"path": TOKEN_ARGS["dest"], "state": "touch", "mode": "0640", "owner": "smail", "group": "smail"}
    assert {key: target.calls[2][1][key] for key in ("mode", "owner", "group")} == {"mode": "0640", "owner": "smail", "group": "smail"}


def test_existing_file_is_slurped_not_touched_and_backed_up(make_target, run_ini_action):
    target = make_target({TOKEN_ARGS["dest"]: b"; kept\r\n[OAUTH]\r\nRefreshToken=old\r\n"})
    result = run_ini_action(TokenIniAction, {**TOKEN_ARGS, "backup": True}, target)
    assert target.names() == ["stat", "ansible.legacy.slurp", "ansible.legacy.copy"]
    assert target.calls[2][1]["backup"] is True
    assert result["backup_file"] == TOKEN_ARGS["dest"] + ".bak"
    assert target.files[TOKEN_ARGS["dest"]].startswith(b"; kept\r\n[OAUTH]\r\nRefreshToken=" + REFRESH.encode() + b"\r\n")


def test_failed_copy_removes_the_placeholder_and_reports(make_target, run_ini_action):
    target = make_target(copy_fails=True)
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    assert result["failed"] is True
    assert result["error"] == "write_failed"
    assert "disk full" in result["msg"]
    assert target.names() == ["stat", "ansible.legacy.file", "ansible.legacy.copy", "ansible.legacy.file"]
    assert target.calls[3][1] == {"path": TOKEN_ARGS["dest"], "state": "absent"}
    assert TOKEN_ARGS["dest"] not in target.files


def test_check_mode_creates_nothing_and_reports_the_change(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target, check_mode=True)
    assert result["changed"] is True
    assert "ansible.legacy.file" not in target.names()
    assert target.files == {}


def test_copy_runs_without_diff_and_its_diff_is_dropped(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target, diff=True)
    assert target.copy_tasks[0].diff is False
    assert target.copy_tasks[0].no_log is True
    assert SECRET not in repr(result)
    assert REFRESH not in repr(result)
    assert "ClientSecret=********" in result["diff"]["after"]
    assert "RefreshToken=********" in result["diff"]["after"]
    assert result["diff"]["before"] == ""


@pytest.mark.parametrize("action_class, args, secret_line", [
    (TokenIniAction, TOKEN_ARGS, "[OAUTH]\r\nClientSecret=old-secret\r\n"),
    (SmailIniAction, {"dest": r"C:\SMAIL\smail.ini", "settings": {"SMTP": {"Password": SECRET, "Server": "smtp"}},
                      "secret_keys": ["password"]}, "[SMTP]\r\nPassword=old-secret\r\n"),
])
def test_windows_uses_win_copy_and_a_masked_diff(action_class, args, secret_line, make_target, run_ini_action):
    dest = args["dest"]
    target = make_target({dest: ("; 既存\r\n" + secret_line).encode("cp932")})
    result = run_ini_action(action_class, args, target, shell_family="powershell", diff=True)
    assert target.names() == ["stat", "ansible.windows.slurp", "ansible.windows.win_copy"]
    copy_args = target.calls[2][1]
    assert set(copy_args) == {"src", "dest", "decrypt"}
    assert copy_args["decrypt"] is False
    assert result["changed"] is True
    assert "old-secret" not in repr(result["diff"])
    assert SECRET not in repr(result)
    assert "********" in result["diff"]["before"] and "********" in result["diff"]["after"]
    assert "; 既存" in result["diff"]["before"]


def test_windows_ignores_posix_attributes_with_a_warning(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, {**TOKEN_ARGS, "mode": "0600"}, target, shell_family="powershell")
    assert "ansible.legacy.file" not in target.names()
    assert "mode" not in target.calls[-1][1]
    assert result["warnings"]


def test_windows_without_ansible_windows_fails_before_contacting_the_target(make_target, run_ini_action):
    target = make_target(has_windows=False)
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target, shell_family="powershell")
    assert result["failed"] is True
    assert result["error"] == "missing_collection"
    assert "ansible.windows" in result["msg"]
    assert target.calls == []


def test_bad_input_fails_before_contacting_the_target(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, {**TOKEN_ARGS, "refresh_token": REFRESH + "\r\n[Evil]"}, target)
    assert result["failed"] is True
    assert result["error"] == "invalid_option"
    assert result["option"] == "refresh_token"
    assert "RefreshToken" in result["msg"]
    assert REFRESH not in repr(result)
    assert target.calls == []


def test_unchanged_file_is_still_handed_to_copy_for_its_attributes(make_target, run_ini_action):
    target = make_target()
    run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    target.calls.clear()
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    assert result["changed"] is False
    assert result["updated"] == []
    assert target.names() == ["stat", "ansible.legacy.slurp", "ansible.legacy.copy"]


def test_dest_must_be_a_file(make_target, run_ini_action):
    result = run_ini_action(SmailIniAction, {"dest": "/srv/smail/", "settings": {}}, make_target())
    assert result["error"] == "invalid_option"
    assert result["option"] == "dest"


def test_undecodable_existing_file_names_dest(make_target, run_ini_action):
    target = make_target({"/srv/smail.ini": b"[S]\r\nK=\x82\r\n"})
    result = run_ini_action(SmailIniAction, {"dest": "/srv/smail.ini", "settings": {"S": {"K": "v"}}}, target)
    assert result["error"] == "invalid_option"
    assert result["option"] == "dest"
    assert "cp932" in result["msg"]
    assert target.names() == ["stat", "ansible.legacy.slurp"]
