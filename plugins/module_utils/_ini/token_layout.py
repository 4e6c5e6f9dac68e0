# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The layout of SMAIL's refresh-token INI (``smail_refresh_token.ini``): one section, one key per token field.

SmailRefreshToken.exe writes ``[OAUTH]`` with ``ClientID``, ``ClientSecret``, ``RefreshToken``, ``TokenURI``, ...;
other SMAIL versions may use other names, so a :class:`TokenIniLayout` can remap the section and the keys. The same
layout value is used by the writer (the ``token_ini`` action) and by every reader (``mail``, ``access_token``, the
callback, the rotated-token write-back), from the options ``section``/``keys`` and ``token_ini_section``/
``token_ini_keys``. The generic INI engine is ``_ini``.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import dataclasses
import typing as t
from types import MappingProxyType

from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini

DEFAULT_SECTION = "OAUTH"
#: Field name -> INI key in smail_refresh_token.ini; read-only so no caller can change it for the others.
DEFAULT_KEYS: t.Mapping[str, str] = MappingProxyType({
    "account": "Account",
    "client_id": "ClientID",
    "client_secret": "ClientSecret",
    "refresh_token": "RefreshToken",
    "token_uri": "TokenURI",
    "auth_uri": "AuthURI",
})
FIELDS = tuple(DEFAULT_KEYS)
SECRET_FIELDS = ("client_secret", "refresh_token")


@dataclasses.dataclass(frozen=True)
class TokenIniLayout:
    """Where each token field lives: ``section`` and field -> key (defaults for the fields not remapped)."""

    section: str = DEFAULT_SECTION
    keys: t.Mapping[str, str] = dataclasses.field(default_factory=lambda: DEFAULT_KEYS, hash=False)

    @classmethod
    def from_options(cls, section: str | None = None, keys: t.Mapping[str, t.Any] | None = None, *,
                     section_option: str = "section", keys_option: str = "keys") -> TokenIniLayout:
        """The layout of the options; IniError naming ``section_option`` or ``keys_option[field]`` when unusable."""
        mapping = dict(DEFAULT_KEYS)
        for field, key in (keys or {}).items():
            if field not in DEFAULT_KEYS:
                raise _ini.IniError(f"{keys_option}[{field}]", f"unknown token field; expected one of {', '.join(FIELDS)}")
            if key is None:
                continue  # a suboption left at null keeps its default
            if not isinstance(key, str) or not key.strip():
                raise _ini.IniError(f"{keys_option}[{field}]", "must be a non-empty INI key name")
            mapping[field] = key
        if section is not None and (not isinstance(section, str) or not section.strip()):
            raise _ini.IniError(section_option, "must be a non-empty INI section name")
        return cls(section=section or DEFAULT_SECTION, keys=MappingProxyType(mapping))

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The INI keys holding secrets in this layout."""
        return tuple(self.keys[field] for field in SECRET_FIELDS)

    def _entries(self, values: t.Mapping[str, t.Mapping[str, str]]) -> tuple[str | None, t.Mapping[str, str]]:
        """(section name, entries) the fields are read from: the layout's section, else the first holding a token key."""
        wanted = self.section.lower()
        for name, entries in values.items():
            if name.lower() == wanted:
                return name, entries
        for name in values:
            if any(_ini.lookup(values, name, key) is not None for key in self.keys.values()):
                return name, values[name]
        return None, {}

    def read(self, data: bytes, *, encoding: str = _ini.DEFAULT_ENCODING, source: str = "file") -> dict[str, str]:
        """Field -> value for the token fields present, as a Windows reader sees them (may be empty strings).

        Looks in the layout's section; only if that section is absent, in the first section (file order) holding any
        of the keys. Names are case-insensitive.
        """
        values = _ini.read_ini(data, encoding=encoding, source=source)
        section = self._entries(values)[0]
        if section is None:
            return {}
        found = {field: _ini.lookup(values, section, key) for field, key in self.keys.items()}
        return {field: value for field, value in found.items() if value is not None}

    def section_read(self, data: bytes, *, encoding: str = _ini.DEFAULT_ENCODING) -> str | None:
        """The name of the section :meth:`read` takes its values from, as spelled in the file; None when none."""
        return self._entries(_ini.read_ini(data, encoding=encoding))[0]

    def settings(self, values: t.Mapping[str, str | None], *, section: str | None = None) -> dict[str, dict[str, str | None]]:
        """``merge_ini`` settings writing the given fields in ``section`` (the layout's by default); None leaves a field alone."""
        entries: dict[str, str | None] = {}
        for field, value in values.items():
            if field not in self.keys:
                raise _ini.IniError(field, f"unknown token field; expected one of {', '.join(FIELDS)}")
            if value is not None:
                entries[self.keys[field]] = value
        return {section or self.section: entries}


DEFAULT_LAYOUT = TokenIniLayout()
