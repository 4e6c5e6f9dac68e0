# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private files written atomically: the one way the collection puts tokens, pending consents and spooled mail on disk.

A write goes to a temp file in the target's directory (mode 0600 from creation, never readable by others even for a
moment), is flushed and fsynced, renamed over the target, and the directory is fsynced so the rename survives a crash.
Temp files are named ``.<target name>.<random>.tmp``, so listings that skip dot files never see them.

This file is private to the collection, has no Ansible imports and only light stdlib ones (modules import it on
every run).
"""

from __future__ import annotations

import contextlib
import os
import stat

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

_TEMP_ATTEMPTS = 100
# Where the platform has O_NOFOLLOW, a symlink planted under the temp name is refused instead of followed.
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def ensure_private_directory(path: str) -> None:
    """Create ``path`` (and missing parents) as 0700; tighten an existing one to 0700 if group/other have access.

    Existing parents are left as they are. Raises OSError (FileExistsError when ``path`` is not a directory).
    """
    _make_missing_directories(os.path.abspath(path))
    if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
        os.chmod(path, PRIVATE_DIRECTORY_MODE)


def _make_missing_directories(path: str) -> None:
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        _make_missing_directories(parent)
    try:
        os.mkdir(path, PRIVATE_DIRECTORY_MODE)
    except FileExistsError:
        if not os.path.isdir(path):  # else another process created it meanwhile
            raise


def read_private_file(path: str) -> bytes | None:
    """The content of ``path``; None when it does not exist. Raises OSError for any other failure."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def fsync_directory(directory: str) -> None:
    """Make a rename, creation or removal in ``directory`` durable; best effort (some file systems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_private_file(path: str) -> bool:
    """Remove ``path`` durably (the directory is fsynced); False when it was already gone. Raises OSError."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_directory(os.path.dirname(path))
    return True


def _create_temp_file(directory: str, name: str) -> tuple[int, str]:
    """A new empty file beside the target, mode 0600 from creation (the umask can only narrow it), and its path."""
    for _attempt in range(_TEMP_ATTEMPTS):
        tmp_path = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp_path, _TEMP_FLAGS, PRIVATE_FILE_MODE), tmp_path
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused temp file name beside {name} in {directory}")


def _keep_owner(fd: int, like: os.stat_result) -> bool:
    """Give the file ``fd`` the owner and group of ``like``; False when the system does not let this user do so."""
    if (like.st_uid, like.st_gid) == (os.geteuid(), os.getegid()):
        return True
    try:
        os.fchown(fd, like.st_uid, like.st_gid)
    except PermissionError:
        return False
    return True


def _rewrite_in_place(path: str, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())


def _discard(tmp_path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp_path)


def write_private_file(path: str, data: bytes, *, mode: int = PRIVATE_FILE_MODE, like: os.stat_result | None = None) -> None:
    """Atomically give ``path`` the content ``data``, with file mode ``mode``.

    Temp file in the same directory (0600 from creation, then fchmod to ``mode``), write, flush, fsync, os.replace,
    then fsync the directory. On any failure the old file is untouched and the temp file removed. A symlink at
    ``path`` is replaced, not followed: resolve it first to write its target.

    With ``like`` (the ``os.stat`` of the file being replaced) the new file gets that mode instead of ``mode``, and
    its owner and group. Where the owner cannot be kept (this user may not give files away) ``path`` is rewritten
    in place instead: it keeps owner, mode and inode, but that rewrite is not atomic. Raises OSError.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp_path = _create_temp_file(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), stat.S_IMODE(like.st_mode) if like is not None else mode)
            owner_kept = like is None or _keep_owner(handle.fileno(), like)
            if owner_kept:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if owner_kept:
            os.replace(tmp_path, path)
    except BaseException:
        _discard(tmp_path)
        raise
    if not owner_kept:
        _discard(tmp_path)
        _rewrite_in_place(path, data)
        return
    fsync_directory(directory)


def write_locked_private_file(path: str, data: bytes) -> int:
    """:func:`write_private_file` (mode 0600) for a file this process holds an ``flock`` on; returns the new file's fd.

    The new file is locked before it is renamed over ``path``, so a process that opens ``path`` at any moment finds
    it locked: the lock held on the old file is handed over, never released in between. The caller closes the fd,
    which releases the lock. Raises OSError (the old file is then untouched); needs fcntl.
    """
    import fcntl  # pylint: disable=import-outside-toplevel  # POSIX only, and only a spool uses it

    directory = os.path.dirname(path) or "."
    fd, tmp_path = _create_temp_file(directory, os.path.basename(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file nobody else knows yet
        _write_all(fd, data)
        os.fsync(fd)
        os.replace(tmp_path, path)
    except BaseException:
        os.close(fd)
        _discard(tmp_path)
        raise
    fsync_directory(directory)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
