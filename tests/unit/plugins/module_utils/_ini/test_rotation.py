# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Rotated refresh tokens: written back into the token INI byte for byte, and the Microsoft path end to end."""

from __future__ import annotations

import codecs
import stat
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import rotation as _rotation
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import token_layout as _token_ini
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._send import credentials as _credentials

OLD = "1//old-refresh-token"
NEW = "M.C540_new-refresh-token"

# cp932 with an NEC special character in a comment, odd spacing, CRLF and no final line break.
CP932_INI = (
    "; SmailRefreshToken.exe \u2460 settings\r\n"
    "[OAUTH]\r\n"
    "Account = user@example.com\r\n"
    "ClientID=cid\r\n"
    "  RefreshToken  =  " + OLD + "\r\n"
    "TokenURI=https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token\r\n"
    "\r\n"
    "[Other]\r\n"
    "RefreshToken=" + OLD
).encode("cp932")


def write(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "smail_refresh_token.ini"
    path.write_bytes(data)
    path.chmod(mode)
    return path


class TestPersistRotatedRefreshToken:
    def test_only_the_token_changes(self, tmp_path):
        path = write(tmp_path, CP932_INI, 0o640)

        assert _rotation.persist_rotated_refresh_token(str(path), old_token=OLD, new_token=NEW) is True

        assert path.read_bytes() == CP932_INI.replace(b"  RefreshToken  =  " + OLD.encode(), b"  RefreshToken=" + NEW.encode(), 1)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert _token_ini.DEFAULT_LAYOUT.read(path.read_bytes())["refresh_token"] == NEW
        assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no temp file left

    @pytest.mark.parametrize("bom, encoding, newline", [
        (codecs.BOM_UTF8, "utf-8", "\n"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "\r\n"),
    ])
    def test_bom_encoding_and_newlines_are_kept(self, tmp_path, bom, encoding, newline):
        text = newline.join(["[oauth]", "Account=ü@example.com", f"RefreshToken={OLD}", ""])
        path = write(tmp_path, bom + text.encode(encoding))

        assert _rotation.persist_rotated_refresh_token(str(path), old_token=OLD, new_token=NEW)

        assert path.read_bytes() == bom + text.replace(OLD, NEW).encode(encoding)

    def test_without_oauth_section_the_section_read_is_written(self, tmp_path):
        data = b"[General]\r\nName=x\r\n[Token]\r\nRefreshToken=" + OLD.encode() + b"\r\n[Later]\r\nRefreshToken=" + OLD.encode() + b"\r\n"
        path = write(tmp_path, data)
        assert _rotation.persist_rotated_refresh_token(str(path), old_token=OLD, new_token=NEW)
        assert path.read_bytes() == data.replace(OLD.encode(), NEW.encode(), 1)

    def test_a_file_changed_meanwhile_is_left_alone(self, tmp_path):
        path = write(tmp_path, CP932_INI.replace(OLD.encode(), b"1//someone-elses", 1))
        before = path.read_bytes()
        assert _rotation.persist_rotated_refresh_token(str(path), old_token=OLD, new_token=NEW) is False
        assert path.read_bytes() == before

    def test_a_symlink_stays_a_symlink(self, tmp_path):
        target = write(tmp_path, CP932_INI)
        link = tmp_path / "link.ini"
        link.symlink_to(target.name)
        assert _rotation.persist_rotated_refresh_token(str(link), old_token=OLD, new_token=NEW)
        assert link.is_symlink() and NEW.encode() in target.read_bytes()

    def test_unreadable_or_unwritable_is_token_ini_write(self, tmp_path):
        with pytest.raises(SmailError) as info:
            _rotation.persist_rotated_refresh_token(str(tmp_path / "missing.ini"), old_token=OLD, new_token=NEW)
        assert info.value.code == "token_ini_write"
        path = write(tmp_path, CP932_INI)
        with pytest.raises(SmailError) as info:
            _rotation.persist_rotated_refresh_token(str(path), old_token=OLD, new_token="bad\r\ntoken")
        assert info.value.code == "token_ini_write" and "bad" not in info.value.msg

    def test_failed_rename_leaves_the_file_and_no_temp_file(self, tmp_path, monkeypatch):
        path = write(tmp_path, CP932_INI)

        def refuse(*_args):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(_rotation.os, "replace", refuse)
        with pytest.raises(SmailError) as info:
            _rotation.persist_rotated_refresh_token(str(path), old_token=OLD, new_token=NEW)
        assert info.value.code == "token_ini_write" and "Permission denied" in info.value.msg
        assert path.read_bytes() == CP932_INI and [entry.name for entry in tmp_path.iterdir()] == [path.name]

    def test_another_users_file_is_rewritten_in_place(self, tmp_path, monkeypatch):
        path = write(tmp_path, CP932_INI)
        inode = path.stat().st_ino

        def refuse(*_args):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(_rotation.os, "geteuid", lambda: path.stat().st_uid + 1)
        monkeypatch.setattr(_rotation.os, "fchown", refuse)
        assert _rotation.persist_rotated_refresh_token(str(path), old_token=OLD, new_token=NEW)
        assert path.stat().st_ino == inode and NEW.encode() in path.read_bytes()
        assert [entry.name for entry in tmp_path.iterdir()] == [path.name]


class TestSettleRotation:
    @staticmethod
    def token(rotated=NEW):
        return _grants.AccessToken(token="ya29.x", source="refresh", rotated_refresh_token=rotated)

    def test_no_rotation(self):
        assert _credentials.settle_rotation({"persist_rotated_token": True}, _credentials.Credentials(), self.token(None)) is None

    def test_persisted_into_the_token_ini(self, tmp_path):
        path = write(tmp_path, CP932_INI)
        credentials = _credentials.read_credentials({"token_ini": str(path)})
        outcome = _credentials.settle_rotation({"persist_rotated_token": True}, credentials, self.token())
        assert (outcome.persisted_to, outcome.warning, outcome.new_refresh_token) == (str(path), None, NEW)
        assert NEW not in repr(outcome)

    @pytest.mark.parametrize("options, check_only", [({"persist_rotated_token": False}, False), ({"persist_rotated_token": True}, True)])
    def test_not_asked_or_check_mode_writes_nothing(self, tmp_path, options, check_only):
        path = write(tmp_path, CP932_INI)
        credentials = _credentials.read_credentials({"token_ini": str(path)})
        outcome = _credentials.settle_rotation({**options, "token_ini": str(path)}, credentials, self.token(), check_only=check_only)
        assert (outcome.persisted_to, outcome.warning) == (None, None)
        assert path.read_bytes() == CP932_INI

    def test_refresh_token_from_the_options_is_only_returned(self, tmp_path):
        path = write(tmp_path, CP932_INI)
        options = {"persist_rotated_token": True, "token_ini": str(path), "refresh_token": OLD}
        outcome = _credentials.settle_rotation(options, _credentials.read_credentials(options), self.token())
        assert outcome.persisted_to is None and "came from the options" in outcome.warning
        assert path.read_bytes() == CP932_INI

    def test_a_file_changed_meanwhile_gives_a_warning(self, tmp_path):
        path = write(tmp_path, CP932_INI)
        credentials = _credentials.read_credentials({"token_ini": str(path)})
        path.write_bytes(CP932_INI.replace(OLD.encode(), b"1//changed", 1))
        outcome = _credentials.settle_rotation({"persist_rotated_token": True}, credentials, self.token())
        assert outcome.persisted_to is None and "no longer holds" in outcome.warning
