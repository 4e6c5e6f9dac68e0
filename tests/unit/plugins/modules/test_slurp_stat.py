# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64
import os

import pytest
import yaml

from ansible_collections.smail.xoauth2.plugins.modules import slurp_stat


def test_documentation_matches_argspec(docs_match_argspec):
    assert docs_match_argspec("slurp_stat", slurp_stat.ARGUMENT_SPEC)


def test_returns_are_documented(tmp_path):
    (tmp_path / "smail.ini").write_bytes(b"[SMTP]\r\n")
    documented = set(yaml.safe_load(slurp_stat.RETURN))
    assert set(slurp_stat.read_file(str(tmp_path / "smail.ini"))) == documented


def test_missing_file_is_an_answer(tmp_path):
    assert slurp_stat.read_file(str(tmp_path / "absent.ini")) == {"exists": False}


def test_file_content_and_attributes(tmp_path):
    path = tmp_path / "smail.ini"
    path.write_bytes(b"[SMTP]\r\nServer=\x82\xa0\r\n")
    path.chmod(0o640)
    link = tmp_path / "link.ini"
    link.symlink_to(path)
    result = slurp_stat.read_file(str(link))
    assert base64.b64decode(result["content"]) == b"[SMTP]\r\nServer=\x82\xa0\r\n"
    assert result["encoding"] == "base64"
    assert (result["exists"], result["isdir"], result["mode"]) == (True, False, "0640")
    assert (result["uid"], result["gid"]) == (os.getuid(), os.getgid())
    assert result["owner"] and result["group"]


def test_directory_has_no_content(tmp_path):
    result = slurp_stat.read_file(str(tmp_path))
    assert result["isdir"] is True
    assert "content" not in result


def _read_as_nobody(path: str) -> int:
    """Exit status of a child that drops to uid/gid 65534 and reads ``path``: 0 when it raised PermissionError."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 2
        try:
            os.setgid(65534)
            os.setuid(65534)
            slurp_stat.read_file(path)
            status = 1
        except PermissionError:
            status = 0
        finally:
            os._exit(status)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_unreadable_file_raises(tmp_path):
    path = tmp_path / "secret.ini"
    path.write_bytes(b"x")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: read it as another user
        assert _read_as_nobody(str(path)) == 0
        return
    with pytest.raises(PermissionError):
        slurp_stat.read_file(str(path))
