# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Option groups shared by the collection's modules and plugins: one ARGSPEC each.

Each group matches a doc fragment of the same name (``smail.xoauth2.oauth2``, ``smail.xoauth2.tls``,
``smail.xoauth2.smtp``). Modules combine them with :func:`merge_argspecs`; plugins read the same names
through ``get_option()`` and hand the resulting plain dict to the cores.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import env_fallback

from ansible_collections.smail.xoauth2.plugins.module_utils._providers import GRANTS, PROVIDER_NAMES

OAUTH2_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "provider": {"type": "str", "default": "google", "choices": list(PROVIDER_NAMES),
                 "fallback": (env_fallback, ["SMAIL_XOAUTH2_PROVIDER"])},
    "grant": {"type": "str", "default": "refresh_token", "choices": list(GRANTS),
              "fallback": (env_fallback, ["SMAIL_XOAUTH2_GRANT"])},
    "client_id": {"type": "str", "fallback": (env_fallback, ["SMAIL_XOAUTH2_CLIENT_ID"])},
    "client_secret": {"type": "str", "no_log": True, "fallback": (env_fallback, ["SMAIL_XOAUTH2_CLIENT_SECRET"])},
    "refresh_token": {"type": "str", "no_log": True, "fallback": (env_fallback, ["SMAIL_XOAUTH2_REFRESH_TOKEN"])},
    "token_uri": {"type": "str", "no_log": False, "fallback": (env_fallback, ["SMAIL_XOAUTH2_TOKEN_URI"])},
    "tenant": {"type": "str", "fallback": (env_fallback, ["SMAIL_XOAUTH2_TENANT"])},
    "scopes": {"type": "list", "elements": "str"},
    "access_token": {"type": "str", "no_log": True},
    "service_account_key": {"type": "raw", "no_log": True, "fallback": (env_fallback, ["SMAIL_XOAUTH2_SERVICE_ACCOUNT_KEY"])},
    "delegated_user": {"type": "str", "fallback": (env_fallback, ["SMAIL_XOAUTH2_DELEGATED_USER"])},
    "client_certificate": {"type": "str", "fallback": (env_fallback, ["SMAIL_XOAUTH2_CLIENT_CERTIFICATE"])},
    "client_certificate_key": {"type": "str", "no_log": True,
                               "fallback": (env_fallback, ["SMAIL_XOAUTH2_CLIENT_CERTIFICATE_KEY"])},
    "token_ini": {"type": "path"},
    "token_ini_section": {"type": "str", "no_log": False},
    "token_ini_keys": {"type": "dict", "no_log": False},
    "token_cache": {"type": "bool", "default": True},
    "token_cache_dir": {"type": "path"},
    "persist_rotated_token": {"type": "bool", "default": False},
    "token_expiry_margin": {"type": "int", "no_log": False},
    "refresh_token_warn_days": {"type": "int", "default": 2, "no_log": False},
}

TLS_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "timeout": {"type": "int", "default": 30},
}

SMTP_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "host": {"type": "str"},
    "port": {"type": "int"},
    "secure": {"type": "str", "choices": ["ssl", "starttls", "never"]},
    "auth": {"type": "str", "default": "xoauth2", "choices": ["xoauth2", "oauthbearer", "plain", "login", "none"]},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "ehlohost": {"type": "str"},
    "retries": {"type": "int", "default": 2},
    "retry_delay": {"type": "float", "default": 1.0},
    "retry_max_time": {"type": "float", "default": 60.0},
    "allow_partial": {"type": "bool", "default": False},
    "spool_dir": {"type": "path"},
    "spool_lifetime": {"type": "int", "default": 432000},
}


def merge_argspecs(*specs: t.Mapping[str, dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """One argument spec from several groups; a name defined twice is a programming error."""
    merged: dict[str, dict[str, t.Any]] = {}
    for spec in specs:
        overlap = merged.keys() & spec.keys()
        if overlap:
            raise ValueError(f"option defined in two groups: {', '.join(sorted(overlap))}")
        merged.update({name: dict(definition) for name, definition in spec.items()})
    return merged


# The INI file an action renders on the target (doc fragment smail.xoauth2.ini_file); shared by token_ini and smail_ini.
INI_FILE_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "dest": {"type": "str", "required": True},
    "encoding": {"type": "str", "default": "cp932"},
    "newline": {"type": "str", "default": "crlf", "choices": ["crlf", "lf"]},
    "backup": {"type": "bool", "default": False},
    "mode": {"type": "raw"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
}
