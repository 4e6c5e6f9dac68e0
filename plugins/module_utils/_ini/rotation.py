# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Rotated refresh tokens: what becomes of a refresh token the token endpoint replaced (Microsoft does on every refresh).

The token cache has by then recorded the new refresh token as obtained at the rotation, with any expiry stated along
with it (``_tokens.obtain_access_token``), so ``refresh_token_expires_at`` and its warning follow the new token.
This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import os
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import engine as _ini
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import token_layout as _token_ini
from ansible_collections.smail.xoauth2.plugins.module_utils._ini.token_layout import TokenIniLayout
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import write_private_file


class RotationOutcome(t.NamedTuple):
    """What became of a refresh token the token endpoint replaced (Microsoft does on every refresh)."""

    new_refresh_token: str
    #: The token INI the new refresh token was written to, or None when it was not written anywhere.
    persisted_to: str | None = None
    #: Why it was not written although ``persist_rotated_token`` asked for it.
    warning: str | None = None

    def __repr__(self) -> str:
        return f"RotationOutcome(persisted_to={self.persisted_to!r}, warning={self.warning!r})"


def persist_rotated_refresh_token(path: str, *, old_token: str, new_token: str,
                                  layout: TokenIniLayout | None = None) -> bool:
    """Replace ``old_token`` by ``new_token`` in the token INI at ``path``, atomically.

    Every other byte stays as it was (encoding, byte order mark, line breaks, other lines and keys), and the file
    keeps its mode and owner. Returns False, writing nothing, when the file no longer holds ``old_token``. Raises
    SmailError ``token_ini_write`` when the file cannot be read, understood or written.
    """
    layout = layout or _token_ini.DEFAULT_LAYOUT
    real_path = os.path.realpath(path)
    try:
        with open(real_path, "rb") as handle:
            data = handle.read()
        original = os.stat(real_path)
    except OSError as exc:
        raise SmailError("token_ini_write", f"Cannot read {path}: {exc.strerror}.") from None
    try:
        # The new token goes where the reader found the old one, in the same layout.
        if layout.read(data).get("refresh_token") != old_token:
            return False
        section = layout.section_read(data)
        merged = _ini.merge_ini(data, layout.settings({"refresh_token": new_token}, section=section), source="token_ini")
    except _ini.IniError as exc:
        raise SmailError("token_ini_write", f"Cannot update {path}: {exc.field} {exc.problem}.") from None
    if merged.changed:
        try:
            write_private_file(real_path, merged.data, like=original)
        except OSError as exc:
            raise SmailError("token_ini_write", f"Cannot write {path}: {exc.strerror}.",
                             hint="The user running the task needs write access to the file and its directory.") from None
    return True


def settle_rotation(options: t.Mapping[str, t.Any], *, new_token: str, origin: str, old_token: str | None,
                    layout: TokenIniLayout | None, check_only: bool = False) -> RotationOutcome:
    """Deal with ``new_token``, the refresh token the endpoint rotated in place of ``old_token``.

    With ``persist_rotated_token`` and a refresh token read from a token INI (``origin``, its path), the new one is
    written back into that file (never in check mode); otherwise it is only handed back, for the caller to return or drop.
    """
    if not options.get("persist_rotated_token") or check_only:
        return RotationOutcome(new_refresh_token=new_token)
    path = origin
    if path == "options" or not old_token:
        return RotationOutcome(new_token, warning="persist_rotated_token applies to a refresh token read from token_ini; "
                                                  "this one came from the options, so the new one was not stored.")
    try:
        written = persist_rotated_refresh_token(path, old_token=old_token, new_token=new_token, layout=layout)
    except SmailError as exc:
        return RotationOutcome(new_token, warning=f"The rotated refresh token was not stored: {exc.full_msg}")
    if not written:
        return RotationOutcome(new_token, warning=f"{path} no longer holds the refresh token that was used (changed "
                                                  "meanwhile); the rotated refresh token was not written to it.")
    return RotationOutcome(new_token, persisted_to=path)
