# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared INI action against a fake target: which modules run, in which order, with which arguments.

``target.processes`` counts what a real target would pay: one module process per entry.
"""

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.action.smail_ini import ActionModule as SmailIniAction
from ansible_collections.smail.xoauth2.plugins.action.token_ini import ActionModule as TokenIniAction
from ansible_collections.smail.xoauth2.plugins.plugin_utils._ini_action import attributes_differ, wanted_attributes

SECRET = "cs-very-secret-value"
REFRESH = "1//refresh-token-value"

TOKEN_ARGS = {"dest": "/srv/smail/smail_refresh_token.ini", "account": "user@example.com", "client_id": "cid",
              "client_secret": SECRET, "refresh_token": REFRESH}


READ = "smail.xoauth2.slurp_stat"
COPY = "ansible.legacy.copy"
FILE = "ansible.legacy.file"
WIN_READ = "ansible.windows.slurp"
WIN_COPY = "ansible.windows.win_copy"
SMAIL_ARGS = {"dest": "/srv/smail/smail.ini", "settings": {"SMTP": {"Server": "smtp.gmail.com", "Port": "465"}}}


# --- the call sequences ----------------------------------------------------------------------------------------

def test_first_write_is_one_read_and_one_copy(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(SmailIniAction, SMAIL_ARGS, target)
    assert result["changed"] is True
    assert target.processes == [READ, COPY]
    assert target.calls[0][1] == {"path": SMAIL_ARGS["dest"]}


def test_unchanged_rerun_is_one_read(make_target, run_ini_action):
    target = make_target()
    run_ini_action(SmailIniAction, SMAIL_ARGS, target)
    target.processes.clear()
    result = run_ini_action(SmailIniAction, SMAIL_ARGS, target, diff=True)
    assert result["changed"] is False
    assert result["updated"] == []
    assert result["diff"]["before"] == result["diff"]["after"]
    assert target.processes == [READ]


def test_unchanged_rerun_with_the_same_attributes_is_one_read(make_target, run_ini_action):
    target = make_target()
    args = {**SMAIL_ARGS, "mode": "0640", "owner": "smail", "group": "1000"}
    run_ini_action(SmailIniAction, args, target)
    target.processes.clear()
    assert run_ini_action(SmailIniAction, {**args, "mode": 0o640}, target)["changed"] is False
    assert target.processes == [READ]


def test_a_mode_change_alone_is_one_read_and_the_file_module(make_target, run_ini_action):
    target = make_target()
    run_ini_action(SmailIniAction, SMAIL_ARGS, target)
    target.calls.clear()
    target.processes.clear()
    result = run_ini_action(SmailIniAction, {**SMAIL_ARGS, "mode": "0600", "owner": "smail"}, target)
    assert result["changed"] is True
    assert result["updated"] == []
    assert target.processes == [READ, FILE]
    assert target.calls[1][1] == {"path": SMAIL_ARGS["dest"], "state": "file", "follow": True, "mode": "0600", "owner": "smail"}
    assert target.attributes[SMAIL_ARGS["dest"]]["mode"] == "0600"


def test_a_symbolic_mode_is_left_to_the_file_module(make_target, run_ini_action):
    target = make_target()
    run_ini_action(SmailIniAction, SMAIL_ARGS, target)
    target.processes.clear()
    run_ini_action(SmailIniAction, {**SMAIL_ARGS, "mode": "u=rw,g=r,o=r"}, target)
    assert target.processes == [READ, FILE]


def test_check_mode_runs_only_the_read_unless_attributes_need_the_file_module(make_target, run_ini_action):
    target = make_target({SMAIL_ARGS["dest"]: b"[SMTP]\r\nServer=old\r\n"})
    assert run_ini_action(SmailIniAction, SMAIL_ARGS, target, check_mode=True)["changed"] is True
    assert target.processes == [READ]
    assert target.files[SMAIL_ARGS["dest"]] == b"[SMTP]\r\nServer=old\r\n"
    run_ini_action(SmailIniAction, SMAIL_ARGS, target)
    target.processes.clear()
    result = run_ini_action(SmailIniAction, {**SMAIL_ARGS, "mode": "0600"}, target, check_mode=True)
    assert result["changed"] is True
    assert target.processes == [READ, FILE]
    assert target.attributes[SMAIL_ARGS["dest"]]["mode"] == "0644"


# --- the write -------------------------------------------------------------------------------------------------

def test_new_posix_secret_file_is_created_0600_before_the_copy(local_tmp, make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    assert result["changed"] is True
    assert target.processes == [READ, FILE, COPY]
    touch = target.calls[1][1]
    assert touch == {"path": TOKEN_ARGS["dest"], "state": "touch", "mode": "0600"}
    copy_args = target.calls[2][1]
    # The copy sets the mode too: copying onto a file that appeared meanwhile would keep that file's mode.
    assert set(copy_args) == {"src", "dest", "follow", "checksum", "mode"} and copy_args["mode"] == "0600"
    assert copy_args["src"] == "/remote/tmp/rendered.ini"
    assert copy_args["dest"] == TOKEN_ARGS["dest"]
    assert copy_args["follow"] is True
    assert SECRET.encode() in target.files[TOKEN_ARGS["dest"]]
    assert target.attributes[TOKEN_ARGS["dest"]]["mode"] == "0600"
    # The rendered temp file is gone once the task is over.
    assert list(local_tmp.iterdir()) == []


def test_user_mode_owner_group_apply_to_the_placeholder_and_the_copy(make_target, run_ini_action):
    target = make_target()
    run_ini_action(TokenIniAction, {**TOKEN_ARGS, "mode": "0640", "owner": "smail", "group": "smail"}, target)
    assert target.calls[1][1] == {"path": TOKEN_ARGS["dest"], "state": "touch", "mode": "0640", "owner": "smail", "group": "smail"}
    assert {key: target.calls[2][1][key] for key in ("mode", "owner", "group")} == {"mode": "0640", "owner": "smail", "group": "smail"}


def test_existing_file_is_read_not_touched_and_backed_up(make_target, run_ini_action):
    target = make_target({TOKEN_ARGS["dest"]: b"; kept\r\n[OAUTH]\r\nRefreshToken=old\r\n"})
    result = run_ini_action(TokenIniAction, {**TOKEN_ARGS, "backup": True}, target)
    assert target.processes == [READ, COPY]
    assert target.calls[1][1]["backup"] is True
    assert result["backup_file"] == TOKEN_ARGS["dest"] + ".bak"
    assert target.files[TOKEN_ARGS["dest"]].startswith(b"; kept\r\n[OAUTH]\r\nRefreshToken=" + REFRESH.encode() + b"\r\n")


def test_failed_copy_removes_the_placeholder_and_reports(make_target, run_ini_action):
    target = make_target(copy_fails=True)
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    assert result["failed"] is True
    assert result["error"] == "write_failed"
    assert "disk full" in result["msg"]
    assert target.processes == [READ, FILE, COPY, FILE]
    assert target.calls[3][1] == {"path": TOKEN_ARGS["dest"], "state": "absent"}
    assert TOKEN_ARGS["dest"] not in target.files


def test_check_mode_creates_nothing_and_reports_the_change(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target, check_mode=True)
    assert result["changed"] is True
    assert target.processes == [READ]
    assert target.files == {}


def test_diff_is_masked_and_no_secret_comes_back(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target, diff=True)
    assert SECRET not in repr(result)
    assert REFRESH not in repr(result)
    assert SECRET not in repr(target.calls)
    assert "ClientSecret=********" in result["diff"]["after"]
    assert "RefreshToken=********" in result["diff"]["after"]
    assert result["diff"]["before"] == ""


def test_a_changed_secret_alone_shows_a_masked_changed_line(make_target, run_ini_action):
    target = make_target()
    run_ini_action(TokenIniAction, {**TOKEN_ARGS, "refresh_token": "1//the-old-refresh-token"}, target)
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] != result["diff"]["after"]
    assert "RefreshToken=********\r\n" in result["diff"]["before"]
    assert "RefreshToken=******** (changed)\r\n" in result["diff"]["after"]
    # The unchanged secret stays masked as before: only the line that changed differs.
    assert "ClientSecret=********\r\n" in result["diff"]["after"]
    assert "1//the-old-refresh-token" not in repr(result)
    assert REFRESH not in repr(result)


# --- Windows ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("action_class, args, secret_line", [
    (TokenIniAction, TOKEN_ARGS, "[OAUTH]\r\nClientSecret=old-secret\r\n"),
    (SmailIniAction, {"dest": r"C:\SMAIL\smail.ini", "settings": {"SMTP": {"Password": SECRET, "Server": "smtp"}},
                      "secret_keys": ["password"]}, "[SMTP]\r\nPassword=old-secret\r\n"),
])
def test_windows_uses_win_copy_and_a_masked_diff(action_class, args, secret_line, make_target, run_ini_action):
    dest = args["dest"]
    target = make_target({dest: ("; 既存\r\n" + secret_line).encode("cp932")})
    result = run_ini_action(action_class, args, target, shell_family="powershell", diff=True)
    assert target.names() == [WIN_READ, WIN_COPY]
    assert target.processes == [WIN_READ, WIN_COPY, WIN_COPY]
    copy_args = target.calls[1][1]
    assert set(copy_args) == {"src", "dest", "decrypt"}
    assert copy_args["decrypt"] is False
    assert target.copy_tasks[0].diff is False
    assert target.copy_tasks[0].no_log is True
    assert result["changed"] is True
    assert "old-secret" not in repr(result["diff"])
    assert SECRET not in repr(result)
    assert "********" in result["diff"]["before"] and "********" in result["diff"]["after"]
    assert "; 既存" in result["diff"]["before"]


def test_windows_first_write_and_unchanged_rerun(make_target, run_ini_action):
    target = make_target()
    args = {**SMAIL_ARGS, "dest": r"C:\SMAIL\smail.ini", "backup": True}
    assert run_ini_action(SmailIniAction, args, target, shell_family="powershell")["changed"] is True
    assert target.processes == [WIN_READ, WIN_COPY, WIN_COPY]
    # No backup of a file that did not exist.
    assert "backup" not in target.calls[1][1]
    target.processes.clear()
    result = run_ini_action(SmailIniAction, args, target, shell_family="powershell")
    assert result["changed"] is False
    assert target.processes == [WIN_READ]


def test_windows_ignores_posix_attributes_with_a_warning(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, {**TOKEN_ARGS, "mode": "0600"}, target, shell_family="powershell")
    assert FILE not in target.names()
    assert "mode" not in target.calls[-1][1]
    assert result["warnings"]
    target.processes.clear()
    again = run_ini_action(TokenIniAction, {**TOKEN_ARGS, "mode": "0640"}, target, shell_family="powershell")
    assert again["changed"] is False
    assert target.processes == [WIN_READ]


def test_windows_without_ansible_windows_fails_before_contacting_the_target(make_target, run_ini_action):
    target = make_target(has_windows=False)
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target, shell_family="powershell")
    assert result["failed"] is True
    assert result["error"] == "missing_collection"
    assert "ansible.windows" in result["msg"]
    assert target.calls == []


# --- refusals --------------------------------------------------------------------------------------------------

def test_bad_input_fails_before_contacting_the_target(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(TokenIniAction, {**TOKEN_ARGS, "refresh_token": REFRESH + "\r\n[Evil]"}, target)
    assert result["failed"] is True
    assert result["error"] == "invalid_option"
    assert result["option"] == "refresh_token"
    assert "RefreshToken" in result["msg"]
    assert REFRESH not in repr(result)
    assert target.calls == []


def test_dest_must_be_a_file(make_target, run_ini_action):
    result = run_ini_action(SmailIniAction, {"dest": "/srv/smail/", "settings": {}}, make_target())
    assert result["error"] == "invalid_option"
    assert result["option"] == "dest"


@pytest.mark.parametrize("shell_family, dest", [("sh", "/srv/smail"), ("powershell", r"C:\SMAIL")])
def test_a_directory_at_dest_is_refused(shell_family, dest, make_target, run_ini_action):
    target = make_target(directories=[dest])
    result = run_ini_action(SmailIniAction, {**SMAIL_ARGS, "dest": dest}, target, shell_family=shell_family)
    assert (result["error"], result["option"]) == ("invalid_option", "dest")
    assert "is a directory" in result["msg"]
    assert len(target.processes) == 1


@pytest.mark.parametrize("shell_family, dest", [("sh", "/srv/smail.ini"), ("powershell", r"C:\SMAIL\smail.ini")])
def test_an_unreadable_file_is_a_read_failure(shell_family, dest, make_target, run_ini_action):
    target = make_target(unreadable=[dest])
    result = run_ini_action(SmailIniAction, {**SMAIL_ARGS, "dest": dest}, target, shell_family=shell_family)
    assert result["error"] == "read_failed"
    assert dest in result["msg"]
    assert len(target.processes) == 1


def test_undecodable_existing_file_names_dest(make_target, run_ini_action):
    target = make_target({"/srv/smail.ini": b"[S]\r\nK=\x82\r\n"})
    result = run_ini_action(SmailIniAction, {"dest": "/srv/smail.ini", "settings": {"S": {"K": "v"}}}, target)
    assert result["error"] == "invalid_option"
    assert result["option"] == "dest"
    assert "cp932" in result["msg"]
    assert target.processes == [READ]


# --- attributes ------------------------------------------------------------------------------------------------

STATUS = {"mode": "0640", "uid": 1000, "gid": 50, "owner": "smail", "group": "staff"}


@pytest.mark.parametrize("wanted, differ", [
    ({}, False),
    ({"mode": "0640"}, False),
    ({"mode": "640"}, False),
    ({"mode": 0o640}, False),
    ({"mode": "0600"}, True),
    ({"mode": 640}, True),
    ({"mode": "u=rw,g=r"}, True),
    ({"owner": "smail", "group": "staff"}, False),
    ({"owner": "1000", "group": "50"}, False),
    ({"owner": "root"}, True),
    ({"owner": "0"}, True),
    ({"group": "smail"}, True),
])
def test_attributes_differ_reads_them_as_the_file_module_does(wanted, differ):
    assert attributes_differ(wanted, STATUS) is differ


def test_wanted_attributes():
    assert wanted_attributes({"mode": None, "owner": "smail", "group": None}) == {"owner": "smail"}
    # copy's "preserve" keeps the mode of the rendered temp file.
    assert wanted_attributes({"mode": "preserve"}) == {"mode": "0600"}


# --- files that hold a secret ----------------------------------------------------------------------------------

SECRET_SMAIL_ARGS = {"dest": "/srv/smail/smail.ini", "settings": {"SMTP": {"Server": "smtp.example.jp", "Password": SECRET}},
                     "secret_keys": ["Password"]}


def test_a_secret_written_into_an_existing_0644_file_makes_it_0600(make_target, run_ini_action):
    target = make_target({TOKEN_ARGS["dest"]: b"[OAUTH]\r\nRefreshToken=old\r\n"})
    assert target.attributes[TOKEN_ARGS["dest"]]["mode"] == "0644"
    result = run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    assert result["changed"] is True and "warnings" not in result
    assert target.attributes[TOKEN_ARGS["dest"]]["mode"] == "0600"


def test_an_unchanged_secret_file_left_0644_is_made_0600(make_target, run_ini_action):
    target = make_target()
    run_ini_action(TokenIniAction, TOKEN_ARGS, target)
    target.attributes[TOKEN_ARGS["dest"]]["mode"] = "0644"
    assert run_ini_action(TokenIniAction, TOKEN_ARGS, target)["changed"] is True
    assert target.attributes[TOKEN_ARGS["dest"]]["mode"] == "0600"


def test_smail_ini_with_secret_keys_is_created_0600(make_target, run_ini_action):
    target = make_target()
    result = run_ini_action(SmailIniAction, SECRET_SMAIL_ARGS, target)
    assert result["changed"] is True and "warnings" not in result
    assert target.processes == [READ, FILE, COPY]
    assert target.calls[1][1]["mode"] == "0600"
    assert target.attributes[SECRET_SMAIL_ARGS["dest"]]["mode"] == "0600"


def test_a_secret_kept_from_the_file_counts_too(make_target, run_ini_action):
    target = make_target({SMAIL_ARGS["dest"]: f"[SMTP]\r\nPassword={SECRET}\r\n".encode()})
    run_ini_action(SmailIniAction, {**SMAIL_ARGS, "secret_keys": ["password"]}, target)
    assert target.attributes[SMAIL_ARGS["dest"]]["mode"] == "0600"


def test_without_a_secret_the_mode_is_left_alone(make_target, run_ini_action):
    target = make_target({SMAIL_ARGS["dest"]: b"[SMTP]\r\nServer=old\r\n"})
    run_ini_action(SmailIniAction, {**SMAIL_ARGS, "secret_keys": ["Password"]}, target)
    assert target.attributes[SMAIL_ARGS["dest"]]["mode"] == "0644"


@pytest.mark.parametrize("mode,warned", [("0644", True), ("0640", True), (0o604, True), ("0600", False), ("0400", False)])
def test_a_mode_the_task_sets_is_kept_and_warned_of_when_others_may_read(make_target, run_ini_action, mode, warned):
    target = make_target()
    result = run_ini_action(SmailIniAction, {**SECRET_SMAIL_ARGS, "mode": mode}, target)
    assert target.calls[1][1]["mode"] == mode
    warnings = result.get("warnings", [])
    assert bool(warnings) is warned
    if warned:
        assert SECRET_SMAIL_ARGS["dest"] in warnings[0] and "other users" in warnings[0]
    assert SECRET not in str(result)
