#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: spool
short_description: List or deliver the mail waiting in a smail.xoauth2 spool
version_added: 1.0.0
description:
  - Mail that M(smail.xoauth2.mail) or the C(smail.xoauth2.notify) callback could not send for a reason that proves the
    server did not take it is kept in O(spool_dir) (see O(spool_dir) and C(docs/reliability.md)). Every later send
    with the same spool and account delivers what is due of it; this module delivers all of it, due or not, without
    sending a mail of its own, for example from cron after an outage, or lists what waits.
  - With O(flush=false) (the default) it only lists, and contacts nothing.
  - With O(flush=true) it delivers the spooled mail of the SMTP account (O(username), else the account of
    O(token_ini)) oldest first, with the retries of O(retries), at most 32 files open at a time. After each
    recipient's final answer the file is brought up to date before anything else is sent, so a recipient who has
    the mail never gets it again, even after a crash. A file is removed once every recipient has the mail.
  - Mail that the server refused for good for a recipient, or whose delivery became unknown (the connection was lost
    after the whole message was sent), is held in the spool and reported in a warning, never retried by itself.
    After checking the recipients' mailboxes, O(release) queues held mail again (sent by this task with
    O(flush=true), else by the next send) and O(discard) deletes it.
  - Files in the spool that are not usable spooled mail (corrupt, unreadable, another user's) are kept, listed in
    RV(spool_unreadable) and reported in a warning.
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
    details: Lists what a flush would deliver and what O(release) and O(discard) would change, and changes or
      contacts nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
options:
  flush:
    description:
      - Deliver the spooled mail of the account, rather than only list it. A flush takes every pending mail,
        whether its next attempt is due or not (as Postfix's C(postqueue -f)); a send takes only what is due.
    type: bool
    default: false
  release:
    description:
      - C(Message-ID)s of held mail to queue again for the recipients that do not have it yet (angle brackets
        optional). Only after checking that the recipients did not receive it, as a mail whose delivery was unknown
        may have arrived.
      - Every C(Message-ID) must belong to mail in the spool, and a held one must have a recipient left, or the task
        fails before anything changes. Mail already waiting again (released by another run at the same time) is left
        as it is; each change is made under the file's lock, so concurrent runs release it once.
    type: list
    elements: str
    default: []
  discard:
    description:
      - C(Message-ID)s of held mail to delete from the spool (angle brackets optional). Every one must belong to held
        mail, or the task fails before anything changes.
    type: list
    elements: str
    default: []
notes:
  - O(spool_dir) is required.
  - When the task runs on the controller (the C(local) connection, C(delegate_to) localhost), the action of the same name
    runs the module's code in the controller's worker process, with no module process; with C(become), C(async),
    an C(ansible_python_interpreter) other than the controller's Python, on any other host, or with the variable
    C(smail_xoauth2_in_process=false) (or the controller's environment variable C(SMAIL_XOAUTH2_IN_PROCESS=0)) it runs
    as a module process. The result is the same either way.
"""

EXAMPLES = r"""
- name: What waits in the notification spool?
  smail.xoauth2.spool:
    spool_dir: /var/spool/smail-xoauth2
  register: waiting

- name: A mail whose delivery was unknown did not arrive (checked in the mailbox); send it once more
  smail.xoauth2.spool:
    spool_dir: /var/spool/smail-xoauth2
    release:
      - "<178912345678.4242.1234567890@ops.example.com>"
    flush: true
    username: alerts@example.com
    client_id: "{{ vault_smail_client_id }}"
    client_secret: "{{ vault_smail_client_secret }}"
    refresh_token: "{{ vault_smail_refresh_token }}"

- name: Forget held mail that did arrive
  smail.xoauth2.spool:
    spool_dir: /var/spool/smail-xoauth2
    discard:
      - "<178912345678.4243.1234567890@ops.example.com>"

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
  description: Mail still waiting (path, C(Message-ID), recipients, when and why it was spooled, C(attempts),
    C(next_attempt_at), C(last_error)); for every account when listing, for O(username)'s after a flush.
  returned: always
  type: list
  elements: dict
spool_delivered:
  description: The C(Message-ID)s delivered by this flush.
  returned: always
  type: list
  elements: str
spool_held:
  description: Mail held in the spool (delivery unknown, refused for good, expired), never retried automatically,
    with C(held_code), C(held_reason), C(held_at), and C(delivered) and C(refused) (recipient and the server's
    reply) where known.
  returned: always
  type: list
  elements: dict
spool_held_count:
  description: How many mails RV(spool_held) lists.
  returned: always
  type: int
  version_added: 1.1.0
spool_expired:
  description: Mail this flush found older than O(spool_lifetime); held now (C(held_code=expired)).
  returned: always
  type: list
  elements: dict
  version_added: 1.1.0
spool_refused:
  description: Mail of this flush that the server refused for good for at least one recipient and that no recipient
    waits for any more; now held (see RV(spool_held)).
  returned: always
  type: list
  elements: dict
spool_released:
  description: The C(Message-ID)s of held mail queued again by O(release) (would be, in check mode).
  returned: always
  type: list
  elements: str
spool_discarded:
  description: The C(Message-ID)s of held mail deleted by O(discard) (would be, in check mode).
  returned: always
  type: list
  elements: str
spool_unreadable:
  description: Paths of files in the spool that are no usable spooled mail (corrupt, unreadable, another user's);
    kept as they are.
  returned: always
  type: list
  elements: str
refresh_token_expires_at:
  description: When the refresh token expires, in ISO 8601 UTC, as a token endpoint stated it (as for
    M(smail.xoauth2.mail)); within O(refresh_token_warn_days) of it the flush also warns.
  returned: after a flush that obtained a token, when the expiry is known
  type: str
  sample: "2026-01-08T12:00:00Z"
  version_added: 1.0.0
attempts:
  description: How many connections the flush took (0 when nothing waited, or when only listing).
  returned: always
  type: int
error:
  description: The stable code of a failure (as for M(smail.xoauth2.mail)); all codes, with cause and fix, in
    C(docs/troubleshooting.md).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import exit_module
from ansible_collections.smail.xoauth2.plugins.module_utils._tasks.spool import ARGUMENT_SPEC, run


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    exit_module(module, run(module.params, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
