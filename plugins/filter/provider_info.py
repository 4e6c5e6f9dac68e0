# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: provider_info
short_description: What the collection knows about an OAuth 2.0 mail provider
version_added: 1.0.0
description:
  - Returns the collection's registry entry of a provider (V(google), V(microsoft), V(custom)), with its SMTP server, port and
    TLS mode, token, authorization and device authorization endpoints, grants and default scopes.
  - The roles take their per-provider defaults from it, so they always agree with the modules.
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
options:
  _input:
    description: The provider name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The SMTP server of Microsoft 365
  ansible.builtin.debug:
    msg: "{{ ('microsoft' | smail.xoauth2.provider_info).smtp_host }}:{{ ('microsoft' | smail.xoauth2.provider_info).smtp_port }}"
"""

RETURN = r"""
_value:
  description: The registry entry.
  type: dict
  contains:
    name:
      description: The provider.
      type: str
    smtp_host:
      description: The SMTP server, or null for V(custom).
      type: str
    smtp_port:
      description: The SMTP port, or null for V(custom).
      type: int
    smtp_secure:
      description: V(ssl) or V(starttls), or null for V(custom).
      type: str
    token_uri:
      description: The token endpoint, with C({tenant}) for Microsoft; null for V(custom).
      type: str
    auth_uri:
      description: The authorization endpoint, with C({tenant}) for Microsoft; null for V(custom).
      type: str
    device_authorization_uri:
      description:
        - The device authorization endpoint (RFC 8628) of M(smail.xoauth2.authorize) O(smail.xoauth2.authorize#module:mode=device),
          with C({tenant}); null for V(google) (its device flow does not allow the Gmail scope) and V(custom).
      type: str
    grants:
      description: The grants the provider supports.
      type: list
      elements: str
    scopes:
      description: The default scopes per grant.
      type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._providers import describe


def provider_info(name: str) -> dict[str, t.Any]:
    """The registry entry of provider ``name`` as plain data."""
    try:
        return describe(name)
    except OptionError as exc:
        raise AnsibleFilterError(exc.msg) from None


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"provider_info": provider_info}
