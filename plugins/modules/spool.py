#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: spool
short_description: List or deliver the mail waiting in a smail.xoauth2 spool
version_added: 0.2.0
description:
  - Mail that M(smail.xoauth2.mail) or the C(smail.xoauth2.notify) callback could not send for a reason that proves the
    server did not take it is kept in O(spool_dir) (see O(spool_dir) and C(docs/reliability.md)). Every later send
    with the same spool and account delivers it first; this module does the same without sending a mail of its
    own, for example from cron after an outage, or lists what waits.
  - With O(flush=false) (the default) it only lists, and contacts nothing.
  - With O(flush=true) it delivers the spooled mail of the SMTP account (O(username), else the account of
    O(token_ini)) oldest first over one connection, with the retries of O(retries); each file is removed once the
    server accepted its mail. Mail whose delivery became unknown or that the server refused for good is set
    aside in the spool and reported in a warning, never retried.
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
requirements:
  - google-auth and requests (on the host that runs the task) to flush with a bearer mechanism
extends_documentation_fragment:
  - smail.xoauth2.oauth2
  - smail.xoauth2.tls
  - smail.xoauth2.smtp
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Lists what a flush would deliver, and contacts nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  flush:
    description:
      - Deliver the spooled mail of the account, rather than only list it.
    type: bool
    default: false
notes:
  - O(spool_dir) is required.
"""

EXAMPLES = r"""
- name: What waits in the notification spool?
  smail.xoauth2.spool:
    spool_dir: /var/spool/smail-xoauth2
  register: waiting

- name: Deliver it now that the server is back
  smail.xoauth2.spool:
    spool_dir: /var/spool/smail-xoauth2
    flush: true
    username: alerts@example.com
    client_id: "{{ vault_smail_client_id }}"
    client_secret: "{{ vault_smail_client_secret }}"
    refresh_token: "{{ vault_smail_refresh_token }}"
"""

RETURN = r"""
spool_pending:
  description: Mail still waiting (path, C(Message-ID), recipients, when and why it was spooled); for every account
    when listing, for O(username)'s after a flush.
  returned: always
  type: list
  elements: dict
spool_delivered:
  description: The C(Message-ID)s delivered by this flush.
  returned: always
  type: list
  elements: str
spool_held:
  description: Mail set aside in the spool (delivery unknown, or refused for good), never retried automatically.
  returned: always
  type: list
  elements: dict
attempts:
  description: How many connections the flush took (0 when nothing waited, or when only listing).
  returned: always
  type: int
error:
  description: The stable code of a failure (as for M(smail.xoauth2.mail)).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.smail.xoauth2.plugins.module_utils import _mailer, _smtp, _spool
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import MissingLibraryError
from ansible_collections.smail.xoauth2.plugins.module_utils._options import (
    OAUTH2_ARGSPEC,
    SMTP_ARGSPEC,
    TLS_ARGSPEC,
    merge_argspecs,
)


def main() -> None:
    argspec = merge_argspecs(OAUTH2_ARGSPEC, TLS_ARGSPEC, SMTP_ARGSPEC, {"flush": {"type": "bool", "default": False}})
    module = AnsibleModule(argument_spec=argspec, supports_check_mode=True)
    if not module.params["spool_dir"]:
        module.fail_json(msg="Option 'spool_dir': is required", error="invalid_option", option="spool_dir")
    spool = _spool.Spool(module.params["spool_dir"])
    transcript = _smtp.Transcript()
    result: dict = {"spool_delivered": [], "attempts": 0}
    try:
        if module.params["flush"] and not module.check_mode:
            delivery = _mailer.flush_spool(module.params, transcript=transcript)
            module.no_log_values.update(delivery.secrets)
            for warning in delivery.warnings:
                module.warn(warning)
            result = delivery.result
        else:
            result["spool_pending"] = [message.summary() for message in spool.pending()]
        result["spool_held"] = [message.summary() for message in spool.held()]
    except MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), error=exc.code)
    except SmailError as exc:
        module.no_log_values.update(transcript.secrets)
        module.fail_json(**exc.as_result())
    module.exit_json(changed=bool(result["spool_delivered"]), **result)


if __name__ == "__main__":
    main()
