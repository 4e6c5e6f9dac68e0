# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""TaskResult.from_error: the one mapping from an error of the collection to a failed task result."""

from __future__ import annotations

import pickle

import pytest
from ansible.module_utils.basic import missing_required_lib

from ansible_collections.smail.xoauth2.plugins.module_utils import _errors, _private_file
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import CODES, MissingLibraryError, OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult


def test_an_error_becomes_its_details_code_and_message_with_the_hint():
    error = SmailError("spool_write", "Cannot write to the mail spool /s.", hint="Fix the disk.", details={"dest": "/s"})

    outcome = TaskResult.from_error(error, transcript=["220 ready"])

    assert outcome.failed is True
    assert outcome.fields == {"dest": "/s", "error": "spool_write", "msg": "Cannot write to the mail spool /s. Hint: Fix the disk.",
                              "transcript": ["220 ready"]}


def test_secrets_and_warnings_go_with_the_result():
    outcome = TaskResult.from_error(SmailError("smtp_auth", "refused"), secrets=["s3cret", ""], warnings=["careful"])

    assert outcome.secrets == {"s3cret"} and outcome.warnings == ["careful"]


def test_an_option_error_names_the_option():
    outcome = TaskResult.from_error(OptionError("port", "must be between 0 and 65535"))

    assert outcome.fields == {"option": "port", "error": "invalid_option", "msg": "Option 'port': must be between 0 and 65535"}


def test_a_missing_library_is_told_as_ansible_core_tells_it():
    with pytest.raises(ImportError) as info:
        import a_library_that_is_not_there  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
    error = MissingLibraryError("google-auth", info.value)

    outcome = TaskResult.from_error(error)

    assert outcome.fields == {"error": "missing_library", "msg": missing_required_lib("google-auth")}


def test_an_ini_error_is_bad_input_naming_the_setting():
    with pytest.raises(SmailError) as info:
        _ini.validate_settings({"OAUTH": {"Refresh=Token": "x"}})

    assert isinstance(info.value, _ini.IniError) and isinstance(info.value, ValueError)
    # What the INI actions returned when they translated IniError themselves.
    assert TaskResult.from_error(info.value).fields == {"option": "settings[OAUTH][Refresh=Token]", "error": "invalid_option",
                                                        "msg": f"Option 'settings[OAUTH][Refresh=Token]': {info.value.problem}"}


def test_an_insecure_path_is_an_error_with_a_code(tmp_path):
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")

    with pytest.raises(SmailError) as info:
        _private_file.read_private_file(str(tmp_path / "link"))

    assert info.value.code == "insecure_path" and info.value.details == {"path": str(tmp_path / "link")}
    assert TaskResult.from_error(info.value).fields["msg"] == f"{tmp_path / 'link'} is a symbolic link."
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.code, copy.path, copy.reason) == ("insecure_path", info.value.path, info.value.reason)


@pytest.mark.parametrize("error", [
    _ini.IniError("settings[A][B]", "contains a line break"),
    _private_file.InsecurePathError("/d", "belongs to another user (uid 1001)"),
    MissingLibraryError("requests", ImportError("No module named 'requests'")),
    OptionError("to", "is required"),
], ids=lambda error: type(error).__name__)
def test_every_error_class_of_the_collection_carries_a_registered_code(error):
    assert isinstance(error, _errors.SmailError) and error.code in CODES
