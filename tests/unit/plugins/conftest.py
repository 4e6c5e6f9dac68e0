# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake target for the INI actions: files in a dict, and a log of every module or action run against it."""

from __future__ import annotations

import base64
import hashlib
import importlib
import ntpath
import posixpath
import typing as t
from unittest.mock import MagicMock

import pytest
import yaml

from ansible_collections.smail.xoauth2.plugins.plugin_utils import _ini_action

DEFAULT_ATTRIBUTES = {"mode": "0644", "owner": "smail", "group": "smail"}
IDS = {"smail": 1000, "root": 0}
NAMES = {str(number): name for name, number in IDS.items()}


class FakeTarget:
    """Files of a target (bytes, and mode/owner/group), and the log of every module or action run against it.

    ``calls`` has one entry per module or action the INI action runs; ``processes`` one per module process a real
    target would start for them (the win_copy action runs its module once to compare, once more to copy).
    """

    def __init__(self, files: dict[str, bytes] | None = None, *, has_windows: bool = True, copy_fails: bool = False,
                 attributes: dict[str, dict[str, str]] | None = None, directories: t.Iterable[str] = (),
                 unreadable: t.Iterable[str] = ()) -> None:
        self.files = dict(files or {})
        self.directories = set(directories)
        self.unreadable = set(unreadable)
        self.attributes = {path: {**DEFAULT_ATTRIBUTES, **(attributes or {}).get(path, {})} for path in self.files}
        self.calls: list[tuple[str, dict[str, t.Any]]] = []
        self.processes: list[str] = []
        self.remote_tmp: dict[str, bytes] = {}
        self.has_windows = has_windows
        self.copy_fails = copy_fails
        self.check_mode = False
        self.copy_tasks: list[t.Any] = []

    def stat(self, path, all_vars, follow, checksum=True):
        self.calls.append(("stat", {"path": path, "follow": follow}))
        self.processes.append("ansible.legacy.stat")
        return {"exists": path in self.files, "isdir": False}

    def transfer(self, local_path: str, remote_path: str) -> str:
        with open(local_path, "rb") as handle:
            self.remote_tmp[remote_path] = handle.read()
        return remote_path

    def module(self, module_name, module_args, task_vars):
        self.calls.append((module_name, dict(module_args)))
        self.processes.append(module_name)
        handler = {"smail.xoauth2.slurp_stat": self._slurp_stat, "ansible.windows.slurp": self._win_slurp,
                   "ansible.legacy.copy": self._copy, "ansible.legacy.file": self._file}.get(module_name)
        if handler is None:
            raise AssertionError(f"unexpected module {module_name}")
        return handler(module_args)

    def _slurp_stat(self, args):
        path = args["path"]
        if path in self.unreadable:
            return {"failed": True, "msg": f"Could not read {path}: Permission denied"}
        if path in self.directories:
            return {"changed": False, "exists": True, "isdir": True, **DEFAULT_ATTRIBUTES, "uid": 1000, "gid": 1000}
        if path not in self.files:
            return {"changed": False, "exists": False}
        attributes = self.attributes[path]
        return {"changed": False, "exists": True, "isdir": False, **attributes, "uid": IDS[attributes["owner"]],
                "gid": IDS[attributes["group"]], "content": base64.b64encode(self.files[path]).decode(), "encoding": "base64"}

    def _win_slurp(self, args):
        if args["src"] in self.unreadable:
            return {"failed": True, "changed": False, "msg": f"Access to the path '{args['src']}' is denied."}
        if args["src"] in self.directories:
            return {"failed": True, "changed": False, "msg": f"Path {args['src']} is a directory"}
        if args["src"] not in self.files:
            return {"failed": True, "changed": False, "msg": f"Path {args['src']} is not found"}
        return {"changed": False, "content": base64.b64encode(self.files[args["src"]]).decode(), "encoding": "base64"}

    def _set_attributes(self, path, args) -> bool:
        wanted = {name: str(args[name]) for name in DEFAULT_ATTRIBUTES if args.get(name) is not None}
        # Numeric owners and groups are ids, as the file module reads them.
        wanted.update({name: NAMES[wanted[name]] for name in ("owner", "group") if wanted.get(name, "").isdigit()})
        current = self.attributes.setdefault(path, dict(DEFAULT_ATTRIBUTES))
        changed = any(current[name] != value for name, value in wanted.items())
        if not self.check_mode:
            current.update(wanted)
        return changed

    def _copy(self, args):
        assert not self.check_mode, "the copy module is not needed in check mode"
        data = self.remote_tmp[args["src"]]
        assert args["checksum"] == hashlib.sha1(data).hexdigest()
        if self.copy_fails:
            return {"failed": True, "msg": "disk full"}
        dest = args["dest"]
        changed = self.files.get(dest) != data
        result = {"changed": changed, "dest": dest}
        if args.get("backup") and changed and dest in self.files:
            result["backup_file"] = dest + ".bak"
        self.files[dest] = data
        result["changed"] = self._set_attributes(dest, args) or changed
        return result

    def _file(self, args):
        path = args["path"]
        if args["state"] == "touch":
            self.files.setdefault(path, b"")
            self._set_attributes(path, args)
            return {"changed": True}
        if args["state"] == "absent":
            self.files.pop(path, None)
            self.attributes.pop(path, None)
            return {"changed": True}
        assert args["state"] == "file" and path in self.files
        return {"changed": self._set_attributes(path, args)}

    def action_loader(self) -> MagicMock:
        loader = MagicMock()
        loader.has_plugin.side_effect = lambda name, collection_list=None: self.has_windows or not name.startswith("ansible.windows.")
        loader.get.side_effect = self.copy_action
        return loader

    def copy_action(self, name, task, **kwargs):
        """ansible.windows.win_copy: a module run to compare checksums, another to copy when they differ."""
        assert name == "ansible.windows.win_copy", name
        self.copy_tasks.append(task)
        action = MagicMock()

        def run(task_vars=None):
            args = dict(task.args)
            with open(args["src"], "rb") as handle:
                data = handle.read()
            self.calls.append((name, args))
            self.processes.append(name)
            if self.copy_fails:
                return {"failed": True, "msg": "disk full"}
            changed = self.files.get(args["dest"]) != data
            if changed and not task.check_mode:
                self.processes.append(name)
                self.files[args["dest"]] = data
            result = {"changed": changed, "dest": args["dest"],
                      # What a real copy would add with diff on: the real text. It must never come back.
                      "diff": [{"after": data.decode("latin-1")}]}
            if args.get("backup") and changed:
                result["backup_file"] = args["dest"] + ".bak"
            return result

        action.run.side_effect = run
        return action

    def names(self) -> list[str]:
        return [name for name, _args in self.calls]


def run_action(action_class, args, target, *, shell_family="sh", check_mode=False, diff=False, loader=None, search_path=()):
    """Run an INI action the way the executor would, against ``target``; returns the task result."""
    task = MagicMock()
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = diff
    task.action = "smail.xoauth2.test"
    task.collections = []
    task.get_search_path.return_value = list(search_path)
    target.check_mode = check_mode

    def copy_task():
        new_task = MagicMock()
        new_task.check_mode = check_mode
        new_task.diff = diff
        return new_task

    task.copy.side_effect = copy_task
    connection = MagicMock()
    connection._shell.SHELL_FAMILY = shell_family
    connection._shell.tmpdir = "C:\\remote\\tmp" if shell_family == "powershell" else "/remote/tmp"
    connection._shell.join_path.side_effect = ntpath.join if shell_family == "powershell" else posixpath.join
    action = action_class(task, connection, MagicMock(), loader or MagicMock(), MagicMock(), None)
    action._shared_loader_obj = MagicMock(action_loader=target.action_loader())
    action._execute_remote_stat = target.stat
    action._execute_module = target.module
    action._transfer_file = target.transfer
    action._fixup_perms2 = MagicMock()
    action._remove_tmp_path = MagicMock()
    return action.run(task_vars={})


@pytest.fixture()
def make_target():
    """The FakeTarget class, to build a target with files or failures."""
    return FakeTarget


@pytest.fixture()
def local_tmp(tmp_path, monkeypatch):
    """The controller's local temp dir (where rendered files go), empty at the start of the test."""
    local = tmp_path / "local_tmp"
    local.mkdir()
    monkeypatch.setattr(_ini_action.C, "DEFAULT_LOCAL_TMP", str(local))
    return local


@pytest.fixture()
def run_ini_action(local_tmp):
    """run_action(action_class, args, target, ...) with the rendered files kept in ``local_tmp``."""
    return run_action


def _normalised(options: t.Mapping[str, t.Any] | None) -> dict[str, t.Any] | None:
    """Argument spec or documented options reduced to what both must agree on."""
    if not options:
        return None
    return {
        name: {
            "type": spec.get("type", "str"),
            "required": bool(spec.get("required", False)),
            "default": spec.get("default"),
            "choices": spec.get("choices"),
            "elements": spec.get("elements"),
            "options": _normalised(spec.get("options") or spec.get("suboptions")),
        }
        for name, spec in options.items()
    }


def documented_options(module_name: str) -> dict[str, t.Any]:
    """The options of a module's DOCUMENTATION with this collection's doc fragments merged in."""
    module = importlib.import_module(f"ansible_collections.smail.xoauth2.plugins.modules.{module_name}")
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc["options"])
    for fragment in doc.get("extends_documentation_fragment", []):
        if fragment.startswith("smail.xoauth2."):
            fragment_module = importlib.import_module(f"ansible_collections.smail.xoauth2.plugins.doc_fragments.{fragment.split('.')[2]}")
            for name, spec in yaml.safe_load(fragment_module.ModuleDocFragment.DOCUMENTATION)["options"].items():
                assert name not in options, f"{name} documented twice"
                options[name] = spec
    return options


@pytest.fixture()
def docs_match_argspec():
    """assert docs_match_argspec(module_name, argspec): the doc-only module documents exactly the action's options."""
    def check(module_name: str, argspec: t.Mapping[str, t.Any]) -> bool:
        assert _normalised(documented_options(module_name)) == _normalised(argspec)
        return True
    return check


@pytest.fixture(autouse=True)
def secret_masker(monkeypatch):
    """ansible-core's own masking (2.22 on) with nothing registered before the test: ``mask(text)``, the text with the
    registered secrets as ``$REDACTED$``; None on a line without it (there results are masked by the collection).

    Used by every test: the registry is process-wide, and values registered by earlier tests (any length counts, as
    ``x``) would mask parts of every word a later test renders.
    """
    try:
        from ansible.module_utils import secrets
        from ansible.module_utils._internal import _secrets as core_secrets
    except ImportError:
        return None
    monkeypatch.setattr(secrets, "_secret_masker", core_secrets.SecretMasker())
    return secrets.mask_secrets


class FakeClock:
    """A clock that moves only when something sleeps on it: ``clock()`` reads it, ``clock.sleep(seconds)`` moves it.

    ``pauses`` lists every sleep, in order, so a test says how long the code waited without waiting itself.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += max(seconds, 0)


@pytest.fixture()
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def google_auth_backoff(monkeypatch) -> list[float]:
    """google-auth's pauses between its own retries of a 5xx, 408 or 429 answer (1 s, then 2 s), recorded, not slept.

    Used by every test: google-auth sleeps on the real clock and takes no sleeper, and a test of an outage would wait
    three seconds per refresh.
    """
    from google.auth import _exponential_backoff  # pylint: disable=import-outside-toplevel

    pauses: list[float] = []
    monkeypatch.setattr(_exponential_backoff, "time", type("Time", (), {"sleep": staticmethod(pauses.append)}))
    return pauses
