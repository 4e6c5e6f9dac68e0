# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private files: modes from creation, atomic replacement, durability, and nothing left behind on failure."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _private_file


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture()
def umask():
    """Set a umask for the test, restored afterwards."""
    previous = os.umask(0o022)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(previous)


@pytest.fixture()
def another_user(monkeypatch):
    """Call it to make this process look like another user's: every file made so far is then someone else's."""
    real_uid = os.geteuid()

    def become() -> None:
        monkeypatch.setattr(_private_file.os, "geteuid", lambda: real_uid + 4242)

    return become


class TestEnsurePrivateDirectory:
    def test_creates_missing_parents_as_0700(self, tmp_path, umask):
        umask(0)
        target = tmp_path / "a" / "b" / "spool"
        _private_file.ensure_private_directory(str(target))
        assert target.is_dir()
        assert [mode_of(tmp_path / "a"), mode_of(tmp_path / "a" / "b"), mode_of(target)] == [0o700] * 3

    def test_existing_parents_are_left_alone(self, tmp_path):
        tmp_path.chmod(0o755)
        _private_file.ensure_private_directory(str(tmp_path / "spool"))
        assert mode_of(tmp_path) == 0o755 and mode_of(tmp_path / "spool") == 0o700

    @pytest.mark.parametrize("before", [0o755, 0o750, 0o701, 0o777])
    def test_group_or_other_access_is_removed(self, tmp_path, before):
        target = tmp_path / "spool"
        target.mkdir()
        target.chmod(before)
        _private_file.ensure_private_directory(str(target))
        assert mode_of(target) == 0o700

    def test_a_private_directory_is_not_touched(self, tmp_path, monkeypatch):
        target = tmp_path / "spool"
        target.mkdir(mode=0o700)
        target.chmod(0o700)
        calls = []
        monkeypatch.setattr(_private_file.os, "chmod", lambda *args: calls.append(args))
        _private_file.ensure_private_directory(str(target))
        assert calls == []

    def test_a_file_in_the_way_is_an_error(self, tmp_path):
        (tmp_path / "spool").write_bytes(b"x")
        with pytest.raises(FileExistsError):
            _private_file.ensure_private_directory(str(tmp_path / "spool"))
        with pytest.raises(OSError):
            _private_file.ensure_private_directory(str(tmp_path / "spool" / "below"))


class TestReadPrivateFile:
    def test_content_or_none(self, tmp_path):
        (tmp_path / "f").write_bytes(b"a\r\nb\x00")
        assert _private_file.read_private_file(str(tmp_path / "f")) == b"a\r\nb\x00"
        assert _private_file.read_private_file(str(tmp_path / "missing")) is None

    def test_other_failures_raise(self, tmp_path):
        with pytest.raises(IsADirectoryError):
            _private_file.read_private_file(str(tmp_path))

    def test_a_symlink_is_not_followed(self, tmp_path):
        (tmp_path / "target").write_bytes(b"planted")
        (tmp_path / "link").symlink_to(tmp_path / "target")
        with pytest.raises(_private_file.InsecurePathError) as info:
            _private_file.read_private_file(str(tmp_path / "link"))
        assert info.value.path == str(tmp_path / "link") and "symbolic link" in info.value.reason

    def test_a_file_of_another_user_is_not_read(self, tmp_path, another_user):
        (tmp_path / "f").write_bytes(b"planted")
        another_user()
        with pytest.raises(_private_file.InsecurePathError) as info:
            _private_file.read_private_file(str(tmp_path / "f"))
        assert "another user" in info.value.reason


class TestCheckPrivateDirectory:
    def test_own_private_directory_passes(self, tmp_path):
        (tmp_path / "d").mkdir(mode=0o700)
        assert _private_file.check_private_directory(str(tmp_path / "d")).st_uid == os.geteuid()

    def test_a_directory_of_another_user_is_refused(self, tmp_path, another_user):
        (tmp_path / "d").mkdir(mode=0o700)
        another_user()
        with pytest.raises(_private_file.InsecurePathError) as info:
            _private_file.check_private_directory(str(tmp_path / "d"))
        assert "another user" in info.value.reason

    @pytest.mark.parametrize("mode", [0o720, 0o702, 0o777, 0o1777], ids=oct)
    def test_a_directory_others_may_write_to_is_refused(self, tmp_path, mode):
        (tmp_path / "d").mkdir()
        (tmp_path / "d").chmod(mode)
        with pytest.raises(_private_file.InsecurePathError) as info:
            _private_file.check_private_directory(str(tmp_path / "d"))
        assert "written to by other users" in info.value.reason

    def test_a_missing_directory_is_file_not_found(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            _private_file.check_private_directory(str(tmp_path / "missing"))

    def test_a_file_is_not_a_directory(self, tmp_path):
        (tmp_path / "f").write_bytes(b"")
        with pytest.raises(NotADirectoryError) as info:
            _private_file.check_private_directory(str(tmp_path / "f"))
        assert info.value.strerror and info.value.filename == str(tmp_path / "f")

    def test_ensure_own_private_directory_creates_or_checks_then_tightens(self, tmp_path, another_user):
        _private_file.ensure_own_private_directory(str(tmp_path / "new" / "d"))
        assert mode_of(tmp_path / "new" / "d") == 0o700
        (tmp_path / "readable").mkdir()
        (tmp_path / "readable").chmod(0o755)
        _private_file.ensure_own_private_directory(str(tmp_path / "readable"))
        assert mode_of(tmp_path / "readable") == 0o700
        another_user()
        with pytest.raises(_private_file.InsecurePathError):
            _private_file.ensure_own_private_directory(str(tmp_path / "readable"))


class TestOpenPrivateLock:
    def test_creates_a_0600_lock_file(self, tmp_path, umask):
        umask(0)
        fd = _private_file.open_private_lock(str(tmp_path / "k.lock"))
        os.close(fd)
        assert mode_of(tmp_path / "k.lock") == 0o600

    def test_a_symlink_is_refused_and_its_target_not_created(self, tmp_path):
        (tmp_path / "k.lock").symlink_to(tmp_path / "victim")
        with pytest.raises(_private_file.InsecurePathError):
            _private_file.open_private_lock(str(tmp_path / "k.lock"))
        assert not (tmp_path / "victim").exists()

    def test_a_lock_of_another_user_is_refused(self, tmp_path, another_user):
        (tmp_path / "k.lock").write_bytes(b"")
        another_user()
        with pytest.raises(_private_file.InsecurePathError):
            _private_file.open_private_lock(str(tmp_path / "k.lock"))


class TestWritePrivateFile:
    def test_new_file_is_0600_whatever_the_umask(self, tmp_path, umask):
        umask(0)
        path = tmp_path / "token.json"
        _private_file.write_private_file(str(path), b"secret")
        assert path.read_bytes() == b"secret" and mode_of(path) == 0o600
        assert os.listdir(tmp_path) == ["token.json"]

    def test_mode_is_exact(self, tmp_path, umask):
        umask(0o077)  # would narrow a mode given to open(); fchmod is not subject to it
        path = tmp_path / "f"
        _private_file.write_private_file(str(path), b"x", mode=0o640)
        assert mode_of(path) == 0o640

    def test_temp_file_is_0600_before_its_final_mode(self, tmp_path, umask, monkeypatch):
        umask(0)
        seen = []
        real_fchmod = os.fchmod

        def record(fd, mode):
            seen.append((mode_of_fd(fd), mode))
            real_fchmod(fd, mode)

        def mode_of_fd(fd):
            return stat.S_IMODE(os.fstat(fd).st_mode)

        monkeypatch.setattr(_private_file.os, "fchmod", record)
        _private_file.write_private_file(str(tmp_path / "f"), b"x", mode=0o644)
        assert seen == [(0o600, 0o644)]

    def test_replaces_the_old_content_through_a_rename(self, tmp_path):
        path = tmp_path / "f"
        path.write_bytes(b"old content that is longer")
        inode = path.stat().st_ino
        _private_file.write_private_file(str(path), b"new")
        assert path.read_bytes() == b"new" and path.stat().st_ino != inode
        assert os.listdir(tmp_path) == ["f"]

    def test_file_fsync_then_rename_then_directory_fsync(self, tmp_path, monkeypatch):
        events = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd):
            events.append("fsync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
            real_fsync(fd)

        def replace(src, dst):
            events.append("replace")
            real_replace(src, dst)

        monkeypatch.setattr(_private_file.os, "fsync", fsync)
        monkeypatch.setattr(_private_file.os, "replace", replace)
        _private_file.write_private_file(str(tmp_path / "f"), b"x")
        assert events == ["fsync file", "replace", "fsync directory"]

    def test_a_directory_that_cannot_be_synced_does_not_fail_the_write(self, tmp_path, monkeypatch):
        real_fsync = os.fsync

        def fsync(fd):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "Invalid argument")
            real_fsync(fd)

        monkeypatch.setattr(_private_file.os, "fsync", fsync)
        _private_file.write_private_file(str(tmp_path / "f"), b"x")
        assert (tmp_path / "f").read_bytes() == b"x"

    @pytest.mark.parametrize("failing", ["replace", "fsync", "fchmod"])
    def test_a_failure_leaves_the_old_file_and_no_temp_file(self, tmp_path, monkeypatch, failing):
        path = tmp_path / "f"
        path.write_bytes(b"old")
        path.chmod(0o600)

        def refuse(*_args):
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(_private_file.os, failing, refuse)
        with pytest.raises(OSError) as info:
            _private_file.write_private_file(str(path), b"new")
        assert info.value.errno == errno.EIO
        assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f"]

    def test_an_interrupt_leaves_no_temp_file(self, tmp_path, monkeypatch):
        def interrupt(*_args):
            raise KeyboardInterrupt

        monkeypatch.setattr(_private_file.os, "replace", interrupt)
        with pytest.raises(KeyboardInterrupt):
            _private_file.write_private_file(str(tmp_path / "f"), b"new")
        assert os.listdir(tmp_path) == []

    def test_an_unwritable_directory_raises(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            _private_file.write_private_file(str(tmp_path / "missing" / "f"), b"x")

    def test_a_symlink_is_replaced_not_followed(self, tmp_path):
        target = tmp_path / "target"
        target.write_bytes(b"target")
        link = tmp_path / "link"
        link.symlink_to(target.name)
        _private_file.write_private_file(str(link), b"new")
        assert not link.is_symlink() and link.read_bytes() == b"new" and target.read_bytes() == b"target"

    def test_a_taken_temp_name_is_skipped(self, tmp_path, monkeypatch):
        names = iter([b"\x00" * 6, b"\x00" * 6, b"\x01" * 6])
        monkeypatch.setattr(_private_file.os, "urandom", lambda _n: next(names))
        (tmp_path / f".f.{'00' * 6}.tmp").write_bytes(b"someone else's")
        _private_file.write_private_file(str(tmp_path / "f"), b"x")
        assert (tmp_path / "f").read_bytes() == b"x"
        assert (tmp_path / f".f.{'00' * 6}.tmp").read_bytes() == b"someone else's"


class TestWriteLike:
    """``like``: the rotated-token write keeps the replaced file's mode and owner."""

    def test_mode_of_the_original_wins(self, tmp_path):
        path = tmp_path / "token.ini"
        path.write_bytes(b"old")
        path.chmod(0o640)
        _private_file.write_private_file(str(path), b"new", mode=0o600, like=path.stat())
        assert path.read_bytes() == b"new" and mode_of(path) == 0o640

    def test_own_file_needs_no_chown(self, tmp_path, monkeypatch):
        path = tmp_path / "token.ini"
        path.write_bytes(b"old")
        calls = []
        monkeypatch.setattr(_private_file.os, "fchown", lambda *args: calls.append(args))
        _private_file.write_private_file(str(path), b"new", like=path.stat())
        assert calls == [] and path.read_bytes() == b"new"

    def test_another_owner_is_given_to_the_new_file(self, tmp_path, monkeypatch):
        path = tmp_path / "token.ini"
        path.write_bytes(b"old")
        original = path.stat()
        inode = original.st_ino
        calls = []
        monkeypatch.setattr(_private_file.os, "geteuid", lambda: original.st_uid + 1)
        monkeypatch.setattr(_private_file.os, "fchown", lambda fd, uid, gid: calls.append((uid, gid)))
        _private_file.write_private_file(str(path), b"new", like=original)
        assert calls == [(original.st_uid, original.st_gid)]
        assert path.read_bytes() == b"new" and path.stat().st_ino != inode

    def test_an_owner_that_cannot_be_kept_means_an_in_place_rewrite(self, tmp_path, monkeypatch):
        path = tmp_path / "token.ini"
        path.write_bytes(b"old content, longer than the new one")
        path.chmod(0o640)
        original = path.stat()

        def refuse(*_args):
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(_private_file.os, "geteuid", lambda: original.st_uid + 1)
        monkeypatch.setattr(_private_file.os, "fchown", refuse)
        _private_file.write_private_file(str(path), b"new", like=original)
        assert path.read_bytes() == b"new" and path.stat().st_ino == original.st_ino
        assert mode_of(path) == 0o640 and os.listdir(tmp_path) == ["token.ini"]


class TestRemovePrivateFile:
    def test_removed_or_already_gone(self, tmp_path):
        path = tmp_path / "f"
        path.write_bytes(b"x")
        assert _private_file.remove_private_file(str(path)) is True
        assert not path.exists()
        assert _private_file.remove_private_file(str(path)) is False
