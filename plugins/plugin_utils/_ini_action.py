# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The controller side of the INI actions: read the file from the target, merge it here, copy the result back.

``token_ini`` and ``smail_ini`` differ only in the settings they merge and in which values are secret. Everything
else lives here: argument validation, reading the target's file (one module run), the merge (``_ini.merge_ini``),
the masked diff, creating a new POSIX file with its final mode before it holds anything, and the write: nothing
when the file already holds the merge (``ansible.builtin.file`` when only its mode, owner or group differ), else a
controller temp file handed to the ``ansible.builtin.copy`` module or the ``ansible.windows.win_copy`` action.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import tempfile
import typing as t

from ansible import constants as C
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import checksum_s

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import mode_for_secret_file, others_may_read
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult
from ansible_collections.smail.xoauth2.plugins.plugin_utils._core_adapter import mask_result

NEWLINES = {"crlf": "\r\n", "lf": "\n"}
MASK = "********"

POSIX_MODULES = {"read": "smail.xoauth2.slurp_stat", "copy": "ansible.legacy.copy", "file": "ansible.legacy.file"}
WINDOWS_MODULES = {"read": "ansible.windows.slurp", "copy": "ansible.windows.win_copy"}
#: The ends of ansible.windows.slurp's failure messages for a missing path and for a directory.
WINDOWS_NOT_FOUND = "is not found"
WINDOWS_IS_DIRECTORY = "is a directory"
FILE_ATTRIBUTES = ("mode", "owner", "group")


@dataclasses.dataclass
class IniRequest:
    """What an action wants merged into its file, and what must never be shown."""

    #: section -> key -> value; None removes the key.
    settings: dict[str, dict[str, str | None]]
    #: Keys whose values are masked in the diff: bare key names (any section) or (section, key) pairs.
    secret_keys: list[t.Any] = dataclasses.field(default_factory=list)
    #: Values scrubbed from anything the task returns.
    secret_values: set[str] = dataclasses.field(default_factory=set)
    #: The option that errors in ``settings`` are reported under.
    field: str = "settings"


@dataclasses.dataclass(frozen=True)
class TargetFile:
    """The target's file as read: its bytes and, on POSIX, what ``slurp_stat`` said of it (mode, uid, owner, ...)."""

    data: bytes
    status: dict[str, t.Any] = dataclasses.field(default_factory=dict)


def masked_diff(merged: _ini.MergeResult, *, dest: str, existed: bool, secret_keys: list[t.Any]) -> dict[str, str]:
    """The diff of a merge with every secret value replaced by ``********``; a changed one shows ``******** (changed)``."""
    return {
        "before_header": dest if existed else f"{dest} (absent)",
        "after_header": dest,
        "before": _ini.mask_ini_text(merged.before_text, secret_keys, mask=MASK) if existed else "",
        "after": _ini.mask_ini_text(merged.after_text, secret_keys, mask=MASK,
                                    changed_from=merged.before_text if existed else None),
    }


def holds_secret_value(merged: _ini.MergeResult, secret_keys: list[t.Any]) -> bool:
    """Whether the merged file has a value under one of ``secret_keys``, given now or kept from the file."""
    return bool(secret_keys) and _ini.mask_ini_text(merged.after_text, secret_keys, mask=MASK) != merged.after_text


def wanted_attributes(args: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The mode, owner and group the task gives, for the copy and file modules."""
    wanted = {name: args[name] for name in FILE_ATTRIBUTES if args.get(name) is not None}
    if wanted.get("mode") == "preserve":
        # copy's "preserve" is the mode of its source: the rendered temp file, created 0600.
        wanted["mode"] = "0600"
    return wanted


def attributes_differ(wanted: t.Mapping[str, t.Any], status: t.Mapping[str, t.Any]) -> bool:
    """Whether a file with ``status`` (``slurp_stat``'s answer) lacks a mode, owner or group in ``wanted``.

    Read as the file module reads them: an int mode is the bits, a string is octal; a numeric owner or group is an id.
    True also when this cannot be told here (a symbolic mode): the file module knows.
    """
    mode = wanted.get("mode")
    if mode is not None:
        try:
            bits = mode if isinstance(mode, int) else int(str(mode), 8)
        except ValueError:
            return True
        if bits != int(status["mode"], 8):
            return True
    for name, number in (("owner", "uid"), ("group", "gid")):
        value = wanted.get(name)
        if value is not None and (int(value) != status[number] if value.isdigit() else value != status[name]):
            return True
    return False


class IniFileAction(ActionBase):
    """Base of the INI actions: subclasses give ``ARGSPEC`` and :meth:`ini_request`, optionally :meth:`before_write`."""

    TRANSFERS_FILES = True

    #: The validated options: ``INI_FILE_ARGSPEC`` merged with the action's own.
    ARGSPEC: t.ClassVar[dict[str, dict[str, t.Any]]] = {}
    #: Mode of a new file on POSIX targets when the task gives none; None leaves it to the copy module (umask).
    NEW_FILE_MODE: t.ClassVar[str | None] = None

    def ini_request(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> IniRequest:
        """The settings to merge for these options; raise SmailError for bad input."""
        raise NotImplementedError

    def before_write(self, args: dict[str, t.Any], merged: _ini.MergeResult, secrets: set[str]) -> dict[str, t.Any]:
        """A last check of the merged file before it is copied; returns extra result fields, raises SmailError."""
        return {}

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        secrets: set[str] = set()
        try:
            _validation, args = self.validate_argument_spec(self.ARGSPEC)
            secrets.update(str(args[name]) for name, spec in self.ARGSPEC.items() if spec.get("no_log") and args.get(name))
            result.update(self._merge_and_write(args, task_vars, secrets))
        except SmailError as exc:  # the INI core's IniError among them: it names the setting, never quotes a value
            result.update(TaskResult.from_error(exc).fields, failed=True)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        # Belt and braces: nothing built above carries a secret, but a value could still echo through a message.
        return mask_result(result, secrets)

    @property
    def is_windows(self) -> bool:
        """Whether the target speaks PowerShell, i.e. gets win_copy instead of copy."""
        return getattr(self._connection._shell, "SHELL_FAMILY", None) == "powershell"

    def _merge_and_write(self, args: dict[str, t.Any], task_vars: dict[str, t.Any], secrets: set[str]) -> dict[str, t.Any]:
        dest = args["dest"]
        windows = self.is_windows
        if windows and not self._shared_loader_obj.action_loader.has_plugin(WINDOWS_MODULES["copy"], collection_list=self._task.collections):
            raise SmailError("missing_collection", f"{self._task.action} needs the ansible.windows collection for Windows targets.",
                             hint="Install it on the controller: ansible-galaxy collection install ansible.windows")
        if not dest or dest.endswith(("/", "\\")):
            raise OptionError("dest", "must be the path of a file, not of a directory")
        request = self.ini_request(args, task_vars)
        secrets.update(request.secret_values)
        # Refuse bad input before the target is even contacted.
        _ini.validate_settings(request.settings, field=request.field, encoding=args["encoding"])

        existing = self._read_target_file(dest, windows, task_vars)
        if existing is None and not args.get("create", True):
            raise SmailError("dest_missing", f"{dest} does not exist and create is false.", details={"dest": dest})
        merged = _ini.merge_ini(existing.data if existing else None, request.settings, encoding=args["encoding"],
                                newline=NEWLINES[args["newline"]], field=request.field, source="dest")
        holds_secret = bool(request.secret_values) or holds_secret_value(merged, request.secret_keys)
        task_mode = args.get("mode")
        if holds_secret and not windows:
            args = {**args, "mode": mode_for_secret_file(task_mode)}
        result: dict[str, t.Any] = self.before_write(args, merged, secrets)
        if self._task.diff:
            result["diff"] = masked_diff(merged, dest=dest, existed=existing is not None, secret_keys=request.secret_keys)

        written = self._write_target_file(merged.data, args, existing, windows, task_vars)
        if written.get("failed"):
            result.update(failed=True, error="write_failed", msg=f"Could not write {dest}: {written.get('msg', 'copy failed')}")
            return result
        result.update(changed=bool(written.get("changed")), dest=dest, updated=merged.updated)
        if written.get("backup_file"):
            result["backup_file"] = written["backup_file"]
        if windows and any(args.get(name) is not None for name in FILE_ATTRIBUTES):
            result["warnings"] = ["mode, owner and group apply to POSIX targets only; they were ignored."]
        elif holds_secret and task_mode is not None and others_may_read(written.get("mode", task_mode)):
            # Never the secret: which file, and what to do.
            result["warnings"] = [f"{dest} holds a secret, and its mode {written.get('mode', task_mode)} lets other "
                                  "users read it; leave mode unset (0600) unless they must."]
        return result

    def _read_target_file(self, dest: str, windows: bool, task_vars: dict[str, t.Any]) -> TargetFile | None:
        """The target's current file, or None when there is none: one module run."""
        if windows:
            read = self._execute_module(module_name=WINDOWS_MODULES["read"], module_args={"src": dest}, task_vars=task_vars)
            message = str(read.get("msg", ""))
            if read.get("failed") and message.endswith(WINDOWS_NOT_FOUND):
                return None
            isdir = bool(read.get("failed")) and message.endswith(WINDOWS_IS_DIRECTORY)
        else:
            read = self._execute_module(module_name=POSIX_MODULES["read"], module_args={"path": dest}, task_vars=task_vars)
            if not read.get("failed") and not read.get("exists"):
                return None
            isdir = bool(read.get("isdir"))
        if isdir:
            raise OptionError("dest", f"{dest} is a directory")
        if read.get("failed"):
            raise SmailError("read_failed", f"Could not read {dest}: {read.get('msg', 'read failed')}", details={"dest": dest})
        status = {} if windows else {name: read[name] for name in ("mode", "uid", "gid", "owner", "group")}
        return TargetFile(data=base64.b64decode(read["content"]), status=status)

    def _write_target_file(self, data: bytes, args: dict[str, t.Any], existing: TargetFile | None, windows: bool,
                           task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """Bring ``dest`` to ``data`` and the task's attributes with the fewest module runs; the result of the last."""
        if existing is not None and existing.data == data:
            wanted = {} if windows else wanted_attributes(args)
            if not wanted or not attributes_differ(wanted, existing.status):
                return {"changed": False}
            file_args = {"path": args["dest"], "state": "file", "follow": True, **wanted}
            return self._execute_module(module_name=POSIX_MODULES["file"], module_args=file_args, task_vars=task_vars)
        if self._task.check_mode and not windows:
            # What the copy action answers in check mode for different content; win_copy's action answers for itself.
            return {"changed": True}
        return self._copy_to_target(data, args, existed=existing is not None, windows=windows, task_vars=task_vars)

    def _copy_to_target(self, data: bytes, args: dict[str, t.Any], *, existed: bool, windows: bool,
                        task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """Copy ``data`` to ``dest`` from a controller temp file; returns the copy's result."""
        new_file_mode = args.get("mode") or self.NEW_FILE_MODE
        # POSIX check mode never gets here (it stops before the copy): no placeholder is made then.
        placeholder = not windows and not existed and new_file_mode is not None
        local_tempdir = tempfile.mkdtemp(dir=C.DEFAULT_LOCAL_TMP)
        try:
            rendered = os.path.join(local_tempdir, "rendered.ini")
            with os.fdopen(os.open(rendered, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.write(data)
            # A backup of the empty placeholder made for a new file would be noise.
            backup = bool(args["backup"] and existed)
            if windows:
                return self._run_win_copy_action(rendered, args["dest"], backup, task_vars)
            if placeholder:
                self._create_placeholder(args["dest"], new_file_mode, args, task_vars)
            try:
                copied = self._run_copy_module(rendered, data, args, backup, task_vars)
            except BaseException:
                if placeholder:
                    self._remove_placeholder(args["dest"], task_vars)
                raise
            if copied.get("failed") and placeholder:
                self._remove_placeholder(args["dest"], task_vars)
            return copied
        finally:
            shutil.rmtree(local_tempdir, ignore_errors=True)

    def _create_placeholder(self, dest: str, mode: t.Any, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> None:
        """Create ``dest`` empty with its final mode: copying onto an existing file keeps its mode, a new one gets the umask's."""
        file_args = {"path": dest, "state": "touch", **wanted_attributes({**args, "mode": mode})}
        touched = self._execute_module(module_name=POSIX_MODULES["file"], module_args=file_args, task_vars=task_vars)
        if touched.get("failed"):
            raise SmailError("write_failed", f"Could not create {dest}: {touched.get('msg', 'file failed')}", details={"dest": dest})

    def _remove_placeholder(self, dest: str, task_vars: dict[str, t.Any]) -> None:
        self._execute_module(module_name=POSIX_MODULES["file"], module_args={"path": dest, "state": "absent"}, task_vars=task_vars)

    def _run_copy_module(self, rendered: str, data: bytes, args: dict[str, t.Any], backup: bool,
                         task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """What the copy action does once it knows the content differs, without its stat of ``dest``: already read."""
        shell = self._connection._shell
        remote = self._transfer_file(rendered, shell.join_path(shell.tmpdir, "rendered.ini"))
        self._fixup_perms2((shell.tmpdir, remote))
        # checksum: the copy module checks the transferred file against it, as after the copy action.
        copy_args = {"src": remote, "dest": args["dest"], "follow": True, "checksum": checksum_s(data), **wanted_attributes(args)}
        if backup:
            copy_args["backup"] = True
        return self._execute_module(module_name=POSIX_MODULES["copy"], module_args=copy_args, task_vars=task_vars)

    def _run_win_copy_action(self, rendered: str, dest: str, backup: bool, task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        new_task = self._task.copy()
        # decrypt off: a rendered file that happened to start like a vault file must be copied as is.
        new_task.args = {"src": rendered, "dest": dest, "decrypt": False, **({"backup": True} if backup else {})}
        # win_copy's own diff would show the real text; the masked one is built by the caller.
        new_task.diff = False
        new_task.no_log = True
        copy_action = self._shared_loader_obj.action_loader.get(
            WINDOWS_MODULES["copy"],
            task=new_task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        return copy_action.run(task_vars=task_vars)
