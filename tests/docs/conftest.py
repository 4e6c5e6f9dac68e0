# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The documentation's own tests (``make docs-tests``): the guides run as written, with real ansible-playbook runs
against a sandbox of their own, so they are no unit tests. ``sandbox/`` goes on sys.path as in tests/unit."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _sandbox_dir() -> Path:
    """The sandbox sources: named by the Makefile, or beside the tests in a checkout."""
    named = os.environ.get("SMAIL_XOAUTH2_SANDBOX_DIR")
    path = Path(named) if named else Path(__file__).resolve().parents[2] / "sandbox"
    if not (path / "xoauth2_sandbox" / "__init__.py").is_file():
        raise RuntimeError(f"sandbox sources not found at {path}; set SMAIL_XOAUTH2_SANDBOX_DIR")
    return path


sys.path.insert(0, str(_sandbox_dir()))
