# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.smail_ini: merge settings into SMAIL's own smail.ini on the target."""

from __future__ import annotations

import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._options import INI_FILE_ARGSPEC, merge_argspecs
from ansible_collections.smail.xoauth2.plugins.plugin_utils._ini_action import IniFileAction, IniRequest

SMAIL_INI_ARGSPEC = merge_argspecs(
    INI_FILE_ARGSPEC,
    {
        "settings": {"type": "dict", "required": True},
        "create": {"type": "bool", "default": True},
        "secret_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
    },
)


def ini_text_settings(settings: t.Mapping[t.Any, t.Any]) -> dict[t.Any, t.Any]:
    """``settings`` with YAML numbers turned into INI text; booleans are refused, their INI spelling is ambiguous."""
    converted: dict[t.Any, t.Any] = {}
    for section, entries in settings.items():
        if not isinstance(entries, t.Mapping):
            # Left for the INI core, which names the section in its error.
            converted[section] = entries
            continue
        converted[section] = {}
        for key, value in entries.items():
            if isinstance(value, bool):
                raise OptionError(f"settings[{section}][{key}]", "is a boolean; quote the text SMAIL expects, for example '1' or '0'")
            converted[section][key] = str(value) if isinstance(value, (int, float)) else value
    return converted


def secret_values(settings: t.Mapping[t.Any, t.Any], secret_keys: t.Iterable[str]) -> set[str]:
    """The values of ``settings`` under any of ``secret_keys`` (compared case-insensitively, in any section)."""
    folded = {key.lower() for key in secret_keys}
    return {value for entries in settings.values() if isinstance(entries, t.Mapping)
            for key, value in entries.items() if isinstance(key, str) and key.lower() in folded and isinstance(value, str) and value}


class ActionModule(IniFileAction):
    """Merge ``settings`` into smail.ini, keeping every line it does not manage."""

    ARGSPEC = SMAIL_INI_ARGSPEC

    def ini_request(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> IniRequest:
        settings = ini_text_settings(args["settings"])
        return IniRequest(
            settings=settings,
            secret_keys=list(args["secret_keys"]),
            secret_values=secret_values(settings, args["secret_keys"]),
        )
