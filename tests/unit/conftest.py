# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared fixtures: the local XOAUTH2 sandbox (token endpoint and SMTP servers) started once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def _sandbox_dir() -> Path:
    """The sandbox sources: named by the Makefile, or beside the tests in a checkout."""
    named = os.environ.get("SMAIL_XOAUTH2_SANDBOX_DIR")
    path = Path(named) if named else Path(__file__).resolve().parents[2] / "sandbox"
    if not (path / "xoauth2_sandbox.py").is_file():
        raise RuntimeError(f"sandbox sources not found at {path}; set SMAIL_XOAUTH2_SANDBOX_DIR")
    return path


sys.path.insert(0, str(_sandbox_dir()))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """A running sandbox; ``sandbox.settings`` holds ports, CA path and test credentials."""
    from xoauth2_sandbox import Sandbox  # pylint: disable=import-outside-toplevel,import-error

    with Sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture()
def settings(sandbox):
    return sandbox.settings
