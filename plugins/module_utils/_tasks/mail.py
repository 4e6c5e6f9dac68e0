# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.mail's work: its argument spec and its entry function.

The module (``plugins/modules/mail.py``) and the in-process action (``plugins/action/mail.py``) are thin adapters over
:func:`run`; neither imports the other.
"""

from __future__ import annotations

import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._options import (
    OAUTH2_ARGSPEC,
    SMTP_ARGSPEC,
    TLS_ARGSPEC,
    merge_argspecs,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult

#: An image of an HTML body (``inline``), the suboptions of community.general.mail's option of that name.
INLINE_OPTIONS = {
    "path": {"type": "path", "required": True},
    "cid": {"type": "str", "required": True},
    "mime_type": {"type": "str"},
}
MESSAGE_ARGSPEC: dict[str, dict[str, t.Any]] = {
    "sender": {"type": "str", "aliases": ["from"]},
    "to": {"type": "list", "elements": "str", "default": [], "aliases": ["recipients"]},
    "cc": {"type": "list", "elements": "str", "default": []},
    "bcc": {"type": "list", "elements": "str", "default": []},
    "reply_to": {"type": "list", "elements": "str", "default": []},
    "subject": {"type": "str", "aliases": ["msg"]},
    "body": {"type": "str", "default": ""},
    "subtype": {"type": "str", "default": "plain", "choices": ["plain", "html"]},
    "text_body": {"type": "str"},
    "charset": {"type": "str", "default": "utf-8"},
    "attachment_name_encoding": {"type": "str", "default": "auto", "choices": list(_smtp_message.ATTACHMENT_NAME_ENCODINGS)},
    "attach": {"type": "list", "elements": "path", "default": []},
    "inline": {"type": "list", "elements": "dict", "default": [], "options": INLINE_OPTIONS},
    "headers": {"type": "dict", "default": {}},
    "message_id_domain": {"type": "str"},
    "messages": {"type": "list", "elements": "dict", "options": {
        "sender": {"type": "str"},
        "to": {"type": "list", "elements": "str"},
        "cc": {"type": "list", "elements": "str"},
        "bcc": {"type": "list", "elements": "str"},
        "reply_to": {"type": "list", "elements": "str"},
        "subject": {"type": "str"},
        "body": {"type": "str"},
        "subtype": {"type": "str", "choices": ["plain", "html"]},
        "text_body": {"type": "str"},
        "attach": {"type": "list", "elements": "path"},
        "inline": {"type": "list", "elements": "dict", "options": INLINE_OPTIONS},
        "headers": {"type": "dict"},
    }},
    "debug": {"type": "bool", "default": False},
}
#: The message options a batch item may set; the top-level values are their defaults.
PER_MESSAGE = tuple(MESSAGE_ARGSPEC["messages"]["options"])
#: The module's options, validated by AnsibleModule here and by ArgumentSpecValidator in the in-process action.
ARGUMENT_SPEC = merge_argspecs(OAUTH2_ARGSPEC, TLS_ARGSPEC, SMTP_ARGSPEC, MESSAGE_ARGSPEC)


def message_spec(params: dict, item: dict | None = None, *, prefix: str = "") -> _smtp_message.MessageSpec:
    """The message options (a batch item's over the top-level ones) as the SMTP core's MessageSpec."""
    values = dict(params)
    values.update({name: value for name, value in (item or {}).items() if value is not None})
    for required in ("sender", "subject"):
        if values.get(required) is None:
            raise OptionError(f"{prefix}{required}", "is required" + (" (here or at the top level)" if prefix else ""))
    return _smtp_message.MessageSpec(
        sender=values["sender"],
        subject=values["subject"],
        to=tuple(values["to"]),
        cc=tuple(values["cc"]),
        bcc=tuple(values["bcc"]),
        reply_to=tuple(values["reply_to"]),
        body=values["body"],
        subtype=values["subtype"],
        text_body=values["text_body"],
        charset=values["charset"],
        attachment_name_encoding=values["attachment_name_encoding"],
        attachments=tuple(values["attach"]),
        inline=_smtp_message.inline_images(values["inline"]),
        headers=tuple((str(name), str(value)) for name, value in values["headers"].items()),
        message_id_domain=values["message_id_domain"],
    )


def batch_result(params: dict, *, check_mode: bool, transcript: _smtp_transcript.Transcript,
                 sessions: _smtp_delivery.SessionProvider = _smtp_delivery.NEW_SESSIONS) -> TaskResult:
    """``messages``: one connection, a result per message; failed when one failed, unless allow_partial."""
    specs = [message_spec(params, item, prefix=f"messages[{index}].") for index, item in enumerate(params["messages"])]
    batch = _mailer.deliver_batch(params, specs, check_only=check_mode, transcript=transcript, sessions=sessions)
    delivery = batch.delivery
    result = dict(delivery.result)
    if params["debug"]:
        result["transcript"] = delivery.transcript.lines
    sent = sum(1 for item in result["results"] if item["recipients"] and not check_mode)
    changed = bool(sent or result["spool_delivered"] or check_mode
                   or any(item["spooled"] for item in result["results"]))
    failed = [index for index, error in enumerate(batch.errors) if error is not None]
    if failed and not params["allow_partial"]:
        first = next(error for error in batch.errors if error is not None)
        return TaskResult.failure(f"{len(failed)} of {len(specs)} messages failed; the first, messages[{failed[0]}]: "
                                  f"{first.full_msg}", secrets=delivery.secrets, warnings=delivery.warnings,
                                  **{**result, "error": first.code, "changed": changed})
    if check_mode:
        result["msg"] = f"Check mode: authenticated to the server; {len(specs)} mails were not sent."
    return TaskResult({"changed": changed, **result}, secrets=delivery.secrets, warnings=delivery.warnings)


def run(params: dict, *, check_mode: bool = False, sessions: _smtp_delivery.SessionProvider = _smtp_delivery.NEW_SESSIONS) -> TaskResult:
    """Send the mail (or the ``messages`` batch) of validated ``params``: the task's result.

    The module process and the in-process action (``plugins/action/mail.py``) both call this; ``sessions`` lets the
    action keep one SMTP connection across the items of a loop (default: a connection per attempt).
    """
    transcript = _smtp_transcript.Transcript()
    try:
        if params["messages"]:
            return batch_result(params, check_mode=check_mode, transcript=transcript, sessions=sessions)
        delivery = _mailer.deliver(params, message_spec(params), check_only=check_mode, transcript=transcript,
                                   sessions=sessions)
    except SmailError as exc:
        extra = {"transcript": transcript.lines} if params["debug"] else {}
        return TaskResult.from_error(exc, secrets=transcript.secrets, **extra)
    result = dict(delivery.result)
    sent = result.pop("sent")
    if params["debug"]:
        result["transcript"] = delivery.transcript.lines
    if check_mode:
        result["msg"] = "Check mode: authenticated to the server; the mail was not sent."
    # A spooled mail, or spooled mail delivered first, changed something too.
    changed = sent or bool(result.get("spooled")) or bool(result.get("spool_delivered")) or check_mode
    return TaskResult({"changed": changed, **result}, secrets=delivery.secrets, warnings=delivery.warnings)
