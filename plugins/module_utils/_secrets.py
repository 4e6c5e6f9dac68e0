# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Secrets the collection learns while it works, handed to ansible-core's own masking where the line has one.

From ansible-core 2.22 on, ``ansible.module_utils.secrets`` masks every registered value in all output (as
``$REDACTED$``), and values registered in a module or worker process travel back to the controller with the result.
A value is registered the moment the collection learns it (a token, the SASL string, a device code, a key read from a
file), so that a warning or a display line printed before the task ends is masked too. Older lines have no such
registry: there the collection masks the result itself (``no_log_values`` in a module, ``remove_values`` in the
in-process action), and registering does nothing.
"""

from __future__ import annotations

import typing as t

try:
    from ansible.module_utils.secrets import register_secrets as _register_secrets
except ImportError:  # ansible-core before 2.22
    _register_secrets = None

#: Whether this ansible-core masks registered secrets in its output (2.22 and later).
CORE_MASKS_SECRETS = _register_secrets is not None


def register(*values: t.Any) -> None:
    """Register each string of ``values`` (None and other types ignored) as a secret with ansible-core's masking."""
    texts = [value for value in values if isinstance(value, str) and value.strip()]
    if _register_secrets is not None and texts:
        _register_secrets(texts)
