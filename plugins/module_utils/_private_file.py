# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private files written atomically: the one way the collection puts tokens, pending consents and spooled mail on disk.

A write goes to a temp file in the target's directory (mode 0600 from creation, never readable by others even for a
moment), is flushed and fsynced, renamed over the target, and the directory is fsynced so the rename survives a crash.
Temp files are named ``.<target name>.<random>.tmp``, so listings that skip dot files never see them.

What another local user could have planted is never trusted: :func:`check_private_directory` refuses a directory
that is not this user's own or that others may write to, and :func:`read_private_file` and
:func:`open_private_lock` follow no symlink (``O_NOFOLLOW``) and refuse a file of another user, raising
:class:`InsecurePathError` (code ``insecure_path``) for the caller to name in its own error.

This file is private to the collection, has no Ansible imports and only light stdlib ones besides ``_errors`` (modules
import it on every run).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

#: The mode of a file that holds a secret when the task gives none, as the file and copy modules take it.
SECRET_FILE_MODE = "0600"

_TEMP_ATTEMPTS = 100
# Where the platform has O_NOFOLLOW, a symlink planted under the temp name is refused instead of followed.
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


class InsecurePathError(SmailError):
    """A directory or file that another user could control: its content cannot be trusted, nor written to.

    ``reason`` completes a sentence about ``path`` ("belongs to another user (uid 1001)"). Callers that know what the
    path is for raise their own code instead (``token_cache_insecure``, ``spool_insecure``, ...).
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__("insecure_path", f"{path} {reason}.", details={"path": path})
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[t.Any, ...]:
        # Keeps the two-argument constructor working across pickling.
        return (type(self), (self.path, self.reason))


def mode_for_secret_file(mode: t.Any) -> t.Any:
    """The mode to give a file that holds a secret: the task's ``mode`` when it sets one, else :data:`SECRET_FILE_MODE`.

    Copying onto an existing file keeps that file's mode, and a new one gets the umask's (often 0644): a secret file
    is made 0600 explicitly, unless the task chose otherwise.
    """
    return SECRET_FILE_MODE if mode is None else mode


def others_may_read(mode: t.Any) -> bool | None:
    """Whether a file mode as the file module takes it (int bits or octal text) lets group or others read.

    None when that cannot be told from the mode alone (a symbolic mode such as ``u=rw,g=r``).
    """
    try:
        bits = mode if isinstance(mode, int) else int(str(mode), 8)
    except ValueError:
        return None
    return bool(bits & 0o044)


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


def check_private_directory(path: str) -> os.stat_result:
    """The ``os.stat`` of ``path`` if it is a directory of this user that nobody else may write to.

    Raises InsecurePathError for a directory of another user, one that group or others may write to (even with the
    sticky bit, as ``/tmp`` has), or a symlink to it that another user (not root) owns and so may point elsewhere;
    FileNotFoundError when it is missing and other OSError when it cannot be looked at.
    """
    link = os.lstat(path)
    info = os.stat(path) if stat.S_ISLNK(link.st_mode) else link
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (os.geteuid(), 0):
        raise InsecurePathError(path, f"is a symbolic link of another user (uid {link.st_uid})")
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    if info.st_uid != os.geteuid():
        raise InsecurePathError(path, f"belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o022:
        raise InsecurePathError(path, f"may be written to by other users (mode {stat.S_IMODE(info.st_mode):04o})")
    return info


def ensure_own_private_directory(path: str) -> None:
    """:func:`ensure_private_directory` for a directory whose content is trusted: an existing one is checked first.

    A missing ``path`` is created 0700 (with its parents); an existing one must pass :func:`check_private_directory`,
    then loses group and other read access. Raises InsecurePathError or OSError.
    """
    try:
        info = check_private_directory(path)
    except FileNotFoundError:
        _make_missing_directories(os.path.abspath(path))
        info = check_private_directory(path)  # another user may have created it meanwhile
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, PRIVATE_DIRECTORY_MODE)


def _check_own_file(fd: int, path: str) -> None:
    owner = os.fstat(fd).st_uid
    if owner != os.geteuid():
        raise InsecurePathError(path, f"belongs to another user (uid {owner})")


def _open_no_follow(path: str, flags: int) -> int:
    try:
        return os.open(path, flags, PRIVATE_FILE_MODE)
    except OSError:
        # O_NOFOLLOW refuses a symlink with ELOOP (EMLINK on FreeBSD).
        if os.path.islink(path):
            raise InsecurePathError(path, "is a symbolic link") from None
        raise


def read_private_file(path: str) -> bytes | None:
    """The content of ``path``; None when it does not exist.

    A symlink is not followed and a file of another user is not read: both raise InsecurePathError. Raises OSError
    for any other failure.
    """
    try:
        fd = _open_no_follow(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        _check_own_file(handle.fileno(), path)
        return handle.read()


def open_private_lock(path: str) -> int:
    """A descriptor of the lock file ``path``, created 0600 when missing, for ``flock``; the caller closes it.

    A symlink is not followed (its target is never created) and a lock file of another user is refused: both raise
    InsecurePathError. Raises OSError for any other failure.
    """
    fd = _open_no_follow(path, _LOCK_FLAGS)
    try:
        _check_own_file(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


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
