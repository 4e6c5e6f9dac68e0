# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.spool's work: its argument spec and its entry function.

The module (``plugins/modules/spool.py``) and the in-process action (``plugins/action/spool.py``) are thin adapters over
:func:`run`; neither imports the other.
"""

from __future__ import annotations

import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _errors
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._options import (
    OAUTH2_ARGSPEC,
    SMTP_ARGSPEC,
    TLS_ARGSPEC,
    merge_argspecs,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript
from ansible_collections.smail.xoauth2.plugins.module_utils._spool import queue as _spool
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult

#: The module's options, validated by AnsibleModule here and by ArgumentSpecValidator in the in-process action.
ARGUMENT_SPEC = merge_argspecs(OAUTH2_ARGSPEC, TLS_ARGSPEC, SMTP_ARGSPEC, {
    "flush": {"type": "bool", "default": False},
    "release": {"type": "list", "elements": "str", "default": []},
    "discard": {"type": "list", "elements": "str", "default": []},
})


def run(params: dict, *, check_mode: bool = False, sessions: _smtp_delivery.SessionProvider = _smtp_delivery.NEW_SESSIONS) -> TaskResult:
    """List, release, discard or deliver the spool of validated ``params``: the task's result.

    The module process and the in-process action (``plugins/action/spool.py``) both call this.
    """
    if not params["spool_dir"]:
        return TaskResult.from_error(_errors.OptionError("spool_dir", "is required"))
    both = sorted(set(map(str.casefold, params["release"])) & set(map(str.casefold, params["discard"])))
    if both:
        return TaskResult.failure(f"Options 'release' and 'discard': both name {', '.join(both)}",
                                  error="invalid_option", option="release")
    transcript = _smtp_transcript.Transcript()
    result: dict = {"spool_delivered": [], "spool_refused": [], "spool_expired": [], "attempts": 0}
    secrets: t.Collection[str] = ()
    warnings: list[str] = []
    released: list[_spool.SpooledMessage] = []
    discarded: list[_spool.SpooledMessage] = []
    try:
        spool = t.cast(_spool.Spool, _mailer.open_spool(params))  # spool_dir is set
        # Every Message-ID is checked before anything changes; each change is made under the file's lock, and one
        # another run made first (a concurrent release, a delivery) is not made again.
        to_release = [message for message in spool.by_id(params["release"], option="release") if message.held]
        to_discard = spool.by_id(params["discard"], option="discard")
        for message in to_discard:
            if not message.held:
                raise _errors.OptionError("discard", f"the mail {message.message_id} is not held but waiting to be "
                                          "sent; only held mail can be discarded")
        for message in to_release:
            spool.check_release(message)
        if not check_mode:
            released = [message for message in to_release if spool.release(message)]
            discarded = [message for message in to_discard if spool.discard(message)]
        else:
            released, discarded = to_release, to_discard
        if params["flush"] and not check_mode:
            delivery = _mailer.flush_spool(params, transcript=transcript, sessions=sessions)
            secrets = delivery.secrets
            warnings.extend(delivery.warnings)
            result = delivery.result
        else:
            result["spool_pending"] = [message.summary() for message in spool.pending()]
        result["spool_held"] = [message.summary() for message in spool.held()]
        result["spool_held_count"] = len(result["spool_held"])
        result["spool_unreadable"] = spool.unreadable()
    except SmailError as exc:
        return TaskResult.from_error(exc, secrets=transcript.secrets)
    result["spool_released"] = [message.message_id for message in released]
    result["spool_discarded"] = [message.message_id for message in discarded]
    if result["spool_unreadable"]:
        warnings.append(f"{len(result['spool_unreadable'])} file(s) in the mail spool {params['spool_dir']} are no "
                        "usable spooled mail and were left as they are: " + ", ".join(result["spool_unreadable"]))
    changed = bool(result["spool_delivered"] or result["spool_refused"] or result.get("spool_expired") or released
                   or discarded)
    return TaskResult({"changed": changed, **result}, secrets=secrets, warnings=warnings)
