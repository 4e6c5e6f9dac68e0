# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.token_ini: render SmailRefreshToken.exe's INI (account, client, refresh token) on the target."""

from __future__ import annotations

import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import token_layout as _token_ini
from ansible_collections.smail.xoauth2.plugins.module_utils._options import (
    INI_FILE_ARGSPEC,
    OAUTH2_ARGSPEC,
    TLS_ARGSPEC,
    merge_argspecs,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._send import credentials as _credentials
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _client_secrets
from ansible_collections.smail.xoauth2.plugins.plugin_utils._ini_action import IniFileAction, IniRequest

# Options that mean what they mean for smail.xoauth2.mail; the values come from the task only (vault), never
# from the controller's environment, so the environment fallbacks are dropped.
_SHARED_OAUTH2_OPTIONS = ("provider", "client_id", "client_secret", "refresh_token", "token_uri", "tenant")

TOKEN_INI_ARGSPEC = merge_argspecs(
    INI_FILE_ARGSPEC,
    TLS_ARGSPEC,
    {name: {key: value for key, value in OAUTH2_ARGSPEC[name].items() if key != "fallback"} for name in _SHARED_OAUTH2_OPTIONS},
    {
        "account": {"type": "str", "required": True},
        "auth_uri": {"type": "str"},
        "client_secrets_file": {"type": "path", "no_log": False},
        "section": {"type": "str", "default": _token_ini.DEFAULT_SECTION},
        "keys": {
            "type": "dict",
            "apply_defaults": True,
            "options": {field: {"type": "str", "default": key} for field, key in _token_ini.DEFAULT_KEYS.items()},
        },
        "verify": {"type": "bool", "default": False},
    },
)


def token_values(args: t.Mapping[str, t.Any], from_file: t.Mapping[str, str]) -> dict[str, str | None]:
    """The token fields to write: the options, else the client secrets file, else the provider's URIs."""
    entry = _providers.get_provider(args["provider"])
    values = {field: args.get(field) or from_file.get(field) for field in _token_ini.FIELDS}
    for which in ("token_uri", "auth_uri"):
        if values[which] or getattr(entry, which):
            # SMAIL posts the client secret and the refresh token there: the same https rule as the collection's own.
            values[which] = entry.endpoint(which, explicit=values[which], tenant=args.get("tenant"))
    return values


def token_settings(values: t.Mapping[str, str | None], *, section: str, keys: t.Mapping[str, str],
                   encoding: str) -> dict[str, dict[str, str | None]]:
    """``merge_ini`` settings for the token fields; errors name the option at fault (section, keys.X or the field)."""
    try:
        _ini.validate_settings({section: {}}, encoding=encoding)
    except _ini.IniError as exc:
        raise OptionError("section", exc.problem) from None
    seen: dict[str, str] = {}
    for field, key in keys.items():
        try:
            _ini.validate_settings({section: {key: ""}}, encoding=encoding)
        except _ini.IniError as exc:
            raise OptionError(f"keys.{field}", exc.problem) from None
        if key.lower() in seen:
            raise OptionError(f"keys.{field}", f"is the same INI key as keys.{seen[key.lower()]}")
        seen[key.lower()] = field
    for field, value in values.items():
        try:
            _ini.validate_settings({section: {keys[field]: value}}, encoding=encoding)
        except _ini.IniError as exc:
            raise OptionError(field, f"{exc.problem} (key {keys[field]} in [{section}])") from None
    return _token_ini.TokenIniLayout(section=section, keys=keys).settings(values)


class ActionModule(IniFileAction):
    """Render the refresh-token INI; a secret file, 0600 from creation on POSIX."""

    ARGSPEC = TOKEN_INI_ARGSPEC
    NEW_FILE_MODE = "0600"

    def ini_request(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> IniRequest:
        from_file = (_client_secrets.read_client_secrets(self, args["client_secrets_file"]).as_options()
                     if args.get("client_secrets_file") else {})
        values = token_values(args, from_file)
        keys = args["keys"]
        # Both the remapped and the default secret keys are masked: an old file may still hold the default ones.
        secret_keys = sorted(set(_token_ini.TokenIniLayout(section=args["section"], keys=keys).secret_keys)
                             | set(_token_ini.DEFAULT_LAYOUT.secret_keys))
        return IniRequest(
            settings=token_settings(values, section=args["section"], keys=keys, encoding=args["encoding"]),
            secret_keys=secret_keys,
            secret_values={value for field in _token_ini.SECRET_FIELDS if (value := values.get(field))},
            field="token_ini",
        )

    def before_write(self, args: dict[str, t.Any], merged: _ini.MergeResult, secrets: set[str]) -> dict[str, t.Any]:
        if not args["verify"]:
            return {}
        # Verify what the file will hold, including values kept from the existing file.
        layout = _token_ini.TokenIniLayout(section=args["section"], keys=args["keys"])
        written = layout.read(merged.data, encoding=merged.encoding)
        secrets.update(written[field] for field in _token_ini.SECRET_FIELDS if written.get(field))
        options = {name: args.get(name) for name in ("provider", "tenant", "validate_certs", "ca_path", "timeout")}
        options.update({field: written.get(field) for field in ("client_id", "client_secret", "refresh_token", "token_uri")})
        options["token_cache"] = False
        token = _credentials.obtain_token(options)
        secrets.update(value for value in (token.token, token.rotated_refresh_token) if value)
        return {"verified": True}
