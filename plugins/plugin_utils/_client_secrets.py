# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OAuth client JSON that the Google Cloud console downloads (``client_secret_*.json``).

Its one top key is ``installed`` (a Desktop app client) or ``web``; under it are ``client_id``,
``client_secret``, ``auth_uri``, ``token_uri`` and ``redirect_uris``. Errors name the option
``client_secrets_file`` and never quote the file, which holds the client secret.

The parser has no Ansible imports; :func:`read_client_secrets` reads the file through an action's loader.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from ansible.errors import AnsibleError

from ansible_collections.smail.xoauth2.plugins.module_utils import _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError

OPTION = "client_secrets_file"


@dataclasses.dataclass(frozen=True)
class ClientSecrets:
    """The OAuth client described by a client JSON; absent fields are None."""

    client_id: str
    client_secret: str | None = None
    auth_uri: str | None = None
    token_uri: str | None = None
    redirect_uris: tuple[str, ...] = ()
    #: ``installed`` or ``web``.
    kind: str = "installed"

    def __repr__(self) -> str:
        return f"ClientSecrets(client_id={self.client_id!r}, kind={self.kind!r}, token_uri={self.token_uri!r})"

    def as_options(self) -> dict[str, str]:
        """The client ID, secret and URIs the file gives, under the option names they fill."""
        fields = {"client_id": self.client_id, "client_secret": self.client_secret, "token_uri": self.token_uri,
                  "auth_uri": self.auth_uri}
        return {name: value for name, value in fields.items() if value}


def _text(client: dict, field: str) -> str | None:
    value = client.get(field)
    return value if isinstance(value, str) and value else None


def parse_client_secrets(data: bytes | str) -> ClientSecrets:
    """The client of a ``client_secret_*.json`` (UTF-8, a BOM allowed); OptionError when it is not one."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise OptionError(OPTION, "is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except ValueError:
        # No detail from the parser: it would quote the text, which holds the secret.
        raise OptionError(OPTION, "is not valid JSON") from None
    kind = next((name for name in ("installed", "web") if isinstance(document, dict) and isinstance(document.get(name), dict)), None)
    if kind is None:
        raise OptionError(OPTION, "has no 'installed' or 'web' client (is it a client_secret_*.json from the console?)")
    client = document[kind]
    client_id = _text(client, "client_id")
    if client_id is None:
        raise OptionError(OPTION, "has no client_id")
    redirect_uris = client.get("redirect_uris")
    _secrets.register(_text(client, "client_secret"))
    return ClientSecrets(
        client_id=client_id,
        client_secret=_text(client, "client_secret"),
        auth_uri=_text(client, "auth_uri"),
        token_uri=_text(client, "token_uri"),
        redirect_uris=tuple(uri for uri in redirect_uris if isinstance(uri, str)) if isinstance(redirect_uris, list) else (),
        kind=kind,
    )


def read_client_secrets(action: t.Any, path: str) -> ClientSecrets:
    """The client JSON at ``path`` on the controller, searched like copy's ``src`` and decrypted when vaulted.

    ``action`` is the running action plugin, whose loader knows the vault secrets.
    """
    try:
        found = action._find_needle("files", path)  # pylint: disable=protected-access
        real_path = action._loader.get_real_file(found, decrypt=True)  # pylint: disable=protected-access
    except AnsibleError as exc:
        raise OptionError(OPTION, f"cannot read {path}: {exc.message}") from None
    try:
        with open(real_path, "rb") as handle:
            data = handle.read()
    finally:
        action._loader.cleanup_tmp_file(real_path)  # pylint: disable=protected-access
    return parse_client_secrets(data)
