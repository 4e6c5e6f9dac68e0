# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``python sandbox/xoauth2_sandbox run|wait|stop --state-dir DIR``, and ``python -m xoauth2_sandbox`` from ``sandbox/``."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a directory: Python put the package's own folder first on sys.path; its parent is what holds the package.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from xoauth2_sandbox.cli import main  # noqa: E402 (after the path above)

if __name__ == "__main__":
    sys.exit(main())
