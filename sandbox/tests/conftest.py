# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sandbox's own tests (``make sandbox-tests``): one running sandbox for the session, and ``sandbox/`` on sys.path.

They need no collection and no particular ansible-core line. The Dovecot test fails (it does not skip) without
Dovecot, because CI installs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The package and the scripts beside it (dovecot_submission.py, show_mail.py) are imported by name.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xoauth2_sandbox import Sandbox  # noqa: E402 (after the path above)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """A running sandbox; ``sandbox.settings`` holds ports, CA path and test credentials."""
    with Sandbox(tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture()
def settings(sandbox):
    return sandbox.settings
