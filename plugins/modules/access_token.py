#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name (plugins/action/access_token.py) runs this module and hides its result from the output.

from __future__ import annotations

DOCUMENTATION = r"""
module: access_token
short_description: Obtain an OAuth 2.0 access token, to check credentials or hand it to other tools
version_added: 1.0.0
description:
  - Obtains an access token the way M(smail.xoauth2.mail) does before it sends - from the token cache while a cached
    token stays valid, else by refreshing the refresh token - and returns it with its lifetime.
  - Run on every host, it is a fleet-wide check that the credentials there (options, or a SMAIL refresh-token INI read
    with O(token_ini)) still work. A revoked or expired refresh token fails with RV(error=invalid_grant).
  - The tokens are in the registered result. Because a task cannot mask one value and still hand it to the next task,
    a result holding a token is hidden from the output as a whole, as with C(no_log), at every verbosity up to
    C(-vvvv). Failures are shown. ansible-core's own debug output (E(ANSIBLE_DEBUG=1)) prints a module process's
    arguments and raw result, tokens included, outside this promise; in the controller's worker process it prints
    neither (see C(docs/security.md)).
  - When the token endpoint rotates the refresh token (Microsoft does on every refresh), the new one is written back
    into O(token_ini) with O(persist_rotated_token=true), and returned in RV(refresh_token) otherwise, to be stored
    again (for example in Ansible Vault).
  - When a token endpoint stated when the refresh token expires, that is returned in RV(refresh_token_expires_at),
    and within O(refresh_token_warn_days) of it the task warns, so that a fleet-wide check finds refresh tokens that
    will die before the mail fails.
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
requirements:
  - google-auth and requests (on the host that runs the task), unless O(access_token) is given
extends_documentation_fragment:
  - smail.xoauth2.oauth2
  - smail.xoauth2.tls
  - smail.xoauth2.attributes
  - smail.xoauth2.attributes.action
attributes:
  action:
    details: The action hides a result holding a token from the output.
  check_mode:
    support: full
    details: The token is obtained (and cached) as usual and returned; a rotated refresh token is returned, never written.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - An access token is a bearer credential for its lifetime (about an hour). Hand it only to tools that need it.
  - When the task runs on the controller (the C(local) connection, C(delegate_to) localhost), the action of the same name
    runs the module's code in the controller's worker process, with no module process; with C(become),
    an C(ansible_python_interpreter) other than the controller's Python, on any other host, or with the variable
    C(smail_xoauth2_in_process=false) (or the controller's environment variable C(SMAIL_XOAUTH2_IN_PROCESS=0)) it runs
    as a module process. The result is the same either way.
seealso:
  - module: smail.xoauth2.mail
  - module: smail.xoauth2.authorize
"""

EXAMPLES = r"""
- name: Check that SMAIL's credentials on every host still work
  smail.xoauth2.access_token:
    token_ini: /opt/smail/smail_refresh_token.ini
    token_cache: false
  register: check

- name: Report the lifetime
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: token from {{ check.token_source }}, valid until {{ check.expires_at }}"

- name: Microsoft 365, storing each rotated refresh token back into the INI
  smail.xoauth2.access_token:
    provider: microsoft
    tenant: contoso.onmicrosoft.com
    token_ini: /opt/smail/smail_refresh_token.ini
    persist_rotated_token: true

- name: Hand a token to another tool
  smail.xoauth2.access_token:
    client_id: "{{ vault_smail_client_id }}"
    client_secret: "{{ vault_smail_client_secret }}"
    refresh_token: "{{ vault_smail_refresh_token }}"
  register: token
  delegate_to: localhost

- name: Call an API with it
  ansible.builtin.uri:
    url: https://gmail.googleapis.com/gmail/v1/users/me/profile
    headers:
      Authorization: "Bearer {{ token.access_token }}"
  no_log: true
"""

RETURN = r"""
access_token:
  description:
    - The access token. The whole result is hidden from the task output; use it through the registered variable.
    - Not returned when it was given in O(access_token).
  returned: success
  type: str
  sample: "ya29.a0AfB_..."
expires_in:
  description: Seconds until the access token expires; null when the token endpoint did not say.
  returned: success
  type: int
  sample: 3599
expires_at:
  description: When the access token expires, in ISO 8601 UTC; null when unknown.
  returned: success
  type: str
  sample: "2026-01-01T12:00:00Z"
scopes:
  description: The scopes of the access token, as far as known.
  returned: success
  type: list
  elements: str
  sample: ["https://mail.google.com/"]
token_source:
  description: Where the access token came from - V(cache), V(refresh) or V(given).
  returned: success
  type: str
  sample: refresh
refresh_token_expires_at:
  description:
    - When the refresh token expires (the new one, if it was rotated), in ISO 8601 UTC, as a token endpoint stated it
      (C(refresh_token_expires_in)) in this refresh or, with O(token_cache), an earlier one or the consent of
      M(smail.xoauth2.authorize) on this machine.
    - Within O(refresh_token_warn_days) of it the task also warns; run M(smail.xoauth2.authorize) again before then.
  returned: success, when the expiry is known
  type: str
  sample: "2026-01-08T12:00:00Z"
  version_added: 1.0.0
refresh_token_rotated:
  description: True when the token endpoint returned a new refresh token.
  returned: when the refresh token was rotated
  type: bool
  sample: true
refresh_token_persisted:
  description: True when the new refresh token was written into O(token_ini).
  returned: when the refresh token was rotated
  type: bool
  sample: true
refresh_token:
  description:
    - The new refresh token, when it was not written into O(token_ini). Store it; the old one stops working when it
      expires.
  returned: when the refresh token was rotated and not persisted
  type: str
  sample: "M.C540_BAY.0.U.-Cv..."
error:
  description:
    - The stable code of a failure, for example V(invalid_grant), V(invalid_client), V(invalid_scope),
      V(token_endpoint_unreachable), V(token_endpoint_tls), V(token_endpoint_bad_response), V(invalid_option); all codes, with cause
      and fix, in C(docs/troubleshooting.md).
  returned: failure
  type: str
  sample: invalid_grant
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import exit_module
from ansible_collections.smail.xoauth2.plugins.module_utils._tasks.access_token import ARGUMENT_SPEC, run


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    exit_module(module, run(module.params, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
