#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mail
short_description: Send mail through SMTP with OAuth 2.0 (XOAUTH2, OAUTHBEARER)
version_added: 0.1.0
description:
  - Sends one mail through an SMTP server, authenticating with an OAuth 2.0 access token (Gmail, Microsoft 365, or any
    XOAUTH2/OAUTHBEARER server), or with an app password.
  - The access token is refreshed from a refresh token (given directly, from the environment, or read from a SMAIL
    refresh-token INI on the host) and cached until shortly before it expires.
  - When a token endpoint stated when the refresh token itself expires, the task returns it in
    RV(refresh_token_expires_at) and warns within O(refresh_token_warn_days) of it.
  - Option names follow M(community.general.mail) where the meaning is the same. Unlike it, certificates are verified,
    the message is built with Python's modern C(email) API, and C(changed) is V(true) when a mail was sent.
  - The send runs step by step (connect, tls, ehlo, auth, mail, rcpt, data); a failure names its step in RV(stage)
    and its stable code in RV(error), and says in RV(may_have_been_delivered) whether a retry could send the mail twice.
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
requirements:
  - google-auth and requests (on the host that runs the task), unless O(access_token) is given or O(auth) is a password mechanism
extends_documentation_fragment:
  - smail.xoauth2.oauth2
  - smail.xoauth2.tls
  - smail.xoauth2.smtp
  - smail.xoauth2.attributes
attributes:
  check_mode:
    support: full
    details: Obtains the access token and authenticates to the server (proving the credentials), then quits without sending.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  sender:
    description:
      - The sender, as C(addr@example.com) or C(Display Name <addr@example.com>). Also the envelope sender.
      - Required, here or (with O(messages)) in every message.
    type: str
    aliases: [from]
  to:
    description:
      - Recipients in the C(To) header, each C(addr) or C(Name <addr>).
    type: list
    elements: str
    default: []
    aliases: [recipients]
  cc:
    description:
      - Recipients in the C(Cc) header.
    type: list
    elements: str
    default: []
  bcc:
    description:
      - Recipients that receive the mail without appearing in any header.
    type: list
    elements: str
    default: []
  reply_to:
    description:
      - Addresses for the C(Reply-To) header.
    type: list
    elements: str
    default: []
  subject:
    description:
      - The subject. Non-ASCII text is encoded as RFC 2047 encoded words (ISO-2022-JP ones with O(charset=iso-2022-jp)).
      - Required, here or (with O(messages)) in every message.
    type: str
    aliases: [msg]
  body:
    description:
      - The body, plain text or HTML as O(subtype) says.
    type: str
    default: ''
  subtype:
    description:
      - V(html) sends a C(multipart/alternative) mail with the HTML body and a plain-text part, which is O(text_body)
        or, when that is not given, a rendering of the HTML.
    type: str
    choices: [plain, html]
    default: plain
  text_body:
    description:
      - The plain-text alternative of an HTML O(body), for O(subtype=html) only.
    type: str
    version_added: 0.1.0
  charset:
    description:
      - The character set of the body parts, for example V(utf-8) or V(iso-2022-jp).
    type: str
    default: utf-8
  attach:
    description:
      - Paths, on the host that runs the task, of files to attach. The MIME type is guessed from the file name.
    type: list
    elements: path
    default: []
  attachment_name_encoding:
    description:
      - How a non-ASCII attachment file name is written in the mail's headers.
      - V(rfc2231) writes it as RFC 2231 C(filename*=utf-8''...), which most current mail clients read.
      - V(rfc2047) writes it as RFC 2047 encoded words in O(charset) inside the quoted C(filename) and C(name)
        (C(filename="=?iso-2022-jp?b?...?=")), the form SMAIL and Japanese mail clients write; several Japanese
        clients show RFC 2231 names garbled.
      - V(auto) is V(rfc2047) when O(charset) is ISO-2022-JP, else V(rfc2231).
      - ASCII file names are written as they are in every case.
    type: str
    choices: [auto, rfc2231, rfc2047]
    default: auto
    version_added: 0.2.0
  headers:
    description:
      - Extra headers, as a dictionary of name to value. Headers that other options set cannot be given here.
    type: dict
    default: {}
  message_id_domain:
    description:
      - The domain part of the generated C(Message-ID). Defaults to the sender's domain.
    type: str
  messages:
    description:
      - Send several mails in one task, over ONE authenticated connection with one access token (a batch).
      - Each item is a message; the top-level O(sender), O(to), O(cc), O(bcc), O(reply_to), O(subject), O(body),
        O(subtype), O(text_body), O(attach) and O(headers) are defaults for every item, and none of them is required at
        the top level then.
      - After a 421 or a dropped connection between messages the rest go over a new connection; a message the server
        accepted is never sent again. The retry and spool rules (O(retries), O(spool_dir)) apply per message.
      - The task fails when any message failed, unless O(allow_partial=true); RV(results) says what became of each.
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      sender:
        description: The sender of this message.
        type: str
      to:
        description: Its C(To) recipients.
        type: list
        elements: str
      cc:
        description: Its C(Cc) recipients.
        type: list
        elements: str
      bcc:
        description: Its hidden recipients.
        type: list
        elements: str
      reply_to:
        description: Its C(Reply-To) addresses.
        type: list
        elements: str
      subject:
        description: Its subject.
        type: str
      body:
        description: Its body.
        type: str
      subtype:
        description: V(plain) or V(html).
        type: str
        choices: [plain, html]
      text_body:
        description: The text alternative of an HTML body.
        type: str
      attach:
        description: Files to attach.
        type: list
        elements: path
      headers:
        description: Extra headers.
        type: dict
  debug:
    description:
      - Return the SMTP conversation in RV(transcript), with the AUTH exchange and every secret shown as C(*****).
    type: bool
    default: false
seealso:
  - module: community.general.mail
notes:
  - Gmail requires the scope C(https://mail.google.com/) for SMTP; Microsoft 365 requires C(SMTP.Send) and SMTP AUTH
    enabled for the mailbox.  - Where it runs. When the task runs on the controller (the C(local) connection, C(delegate_to) localhost, a play on C(localhost))
    the action of the same name runs the module's code in the controller's worker process, with no module process;
    the items of a loop then share one SMTP connection (checked with C(RSET) before each mail, ended with C(QUIT) when
    the task ends or after 30 seconds unused) and the cached token. Anywhere else, and with C(become), C(async) or an
    C(ansible_python_interpreter) other than the controller's Python, it runs as a module process on that host.
  - Set the variable C(smail_xoauth2_in_process=false) (for a task, a play or a host), or the controller's environment
    variable C(SMAIL_XOAUTH2_IN_PROCESS=0), to run it as a module process on the controller too. Either way the SMTP
    connection and the token request come from the controller, as they do with C(delegate_to) localhost; the
    results are the same, except that with O(debug=true) the transcript of a mail that reuses a connection starts
    with C(RSET) instead of the login, and ends without C(QUIT) (the connection stays open for the next item).
"""

EXAMPLES = r"""
- name: Notify through Gmail with a vaulted refresh token
  smail.xoauth2.mail:
    sender: "Deploy bot <deploy@example.com>"
    to:
      - ops@example.com
    subject: "Deployment of {{ release }} finished"
    body: "{{ ansible_play_hosts | length }} hosts updated."
    client_id: "{{ vault_smail_client_id }}"
    client_secret: "{{ vault_smail_client_secret }}"
    refresh_token: "{{ vault_smail_refresh_token }}"
  delegate_to: localhost
  run_once: true

- name: Send with the credentials SMAIL already has on a host
  smail.xoauth2.mail:
    sender: alerts@example.com
    to: ops@example.com
    subject: Disk almost full
    body: "{{ inventory_hostname }}: {{ disk_report }}"
    token_ini: /opt/smail/smail_refresh_token.ini

- name: Microsoft 365 with an HTML body
  smail.xoauth2.mail:
    provider: microsoft
    tenant: contoso.onmicrosoft.com
    sender: reports@contoso.com
    to: team@contoso.com
    subject: Weekly report
    subtype: html
    body: "<h1>Report</h1><p>All green.</p>"
    client_id: "{{ vault_m365_client_id }}"
    refresh_token: "{{ vault_m365_refresh_token }}"

- name: Send as a Workspace user through a Google service account (no refresh token)
  smail.xoauth2.mail:
    grant: service_account
    service_account_key: "{{ lookup('ansible.builtin.file', 'files/smail-notifier.json.vault') }}"
    sender: alerts@example.com
    to: ops@example.com
    subject: Nightly backup done

- name: Send as a mailbox with a Microsoft 365 app's certificate (client credentials)
  smail.xoauth2.mail:
    provider: microsoft
    grant: client_credentials
    tenant: contoso.onmicrosoft.com
    client_id: "{{ vault_m365_app_client_id }}"
    client_certificate: "{{ lookup('ansible.builtin.file', 'files/smail-notifier.pem') }}"
    client_certificate_key: "{{ lookup('ansible.builtin.file', 'files/smail-notifier.key.vault') }}"
    sender: alerts@contoso.com
    to: ops@contoso.com
    subject: Nightly backup done

- name: Keep the mail for later when the server is down, and retry transient failures harder
  smail.xoauth2.mail:
    sender: alerts@example.com
    to: ops@example.com
    subject: Disk almost full
    spool_dir: /var/spool/smail-xoauth2
    retries: 4
    retry_delay: 2
    token_ini: 'C:\Tools\smail\smail_refresh_token.ini'

- name: Prove the credentials without sending (check mode)
  smail.xoauth2.mail:
    sender: deploy@example.com
    to: ops@example.com
    subject: never sent
  check_mode: true
"""

RETURN = r"""
message_id:
  description: The C(Message-ID) of the mail.
  returned: success
  type: str
  sample: "<171234567890.12345.678@example.com>"
sender:
  description: The envelope sender address.
  returned: success
  type: str
  sample: deploy@example.com
recipients:
  description: The envelope recipients the server accepted (in check mode, those it would be sent to).
  returned: success
  type: list
  elements: str
  sample: [ops@example.com]
refused:
  description:
    - Recipients the server refused for good (5xx), with its reply. The mail went to the others.
    - Without O(allow_partial=true) a refused recipient fails the task (these fields are then returned too).
  returned: success, and failure with RV(error=recipients_refused)
  type: dict
  sample: {"nobody@example.com": "550 5.1.1 The email account that you tried to reach does not exist."}
auth_mechanism:
  description: The SASL mechanism used.
  returned: success
  type: str
  sample: xoauth2
token_source:
  description: Where the access token came from, V(given), V(cache) or V(refresh); null for password mechanisms.
  returned: success and on failures after the token was obtained
  type: str
  sample: refresh
refresh_token_expires_at:
  description:
    - When the refresh token expires (the new one, if it was rotated), in ISO 8601 UTC, as a token endpoint stated it
      (C(refresh_token_expires_in)) in this task's refresh or, with O(token_cache), in an earlier one or in the
      consent of M(smail.xoauth2.authorize) on the same machine. Not returned when nobody stated it.
    - Within O(refresh_token_warn_days) of it the task also warns; run M(smail.xoauth2.authorize) again before then.
  returned: success, when the expiry is known
  type: str
  sample: "2026-01-08T12:00:00Z"
  version_added: 0.2.0
refresh_token_rotated:
  description: True when the token endpoint returned a new refresh token (Microsoft does on every refresh).
  returned: when the refresh token was rotated
  type: bool
  sample: true
results:
  description:
    - With O(messages), what became of each message, in order. The top-level RV(message_id), RV(recipients) and
      RV(refused) are not returned then.
  returned: with O(messages)
  type: list
  elements: dict
  contains:
    message_id:
      description: Its C(Message-ID).
      type: str
    sender:
      description: Its envelope sender.
      type: str
    recipients:
      description: The recipients the server accepted.
      type: list
      elements: str
    refused:
      description: Recipients refused for good, with the reply.
      type: dict
    spooled:
      description: True when it was written to O(spool_dir) instead.
      type: bool
    error:
      description: The stable code of its failure, or null.
      type: str
    msg:
      description: What went wrong, when RV(results[].error) is set.
      type: str
  sample: [{"message_id": "<1@example.com>", "sender": "a@example.com", "recipients": ["b@example.com"], "refused": {},
            "spooled": false, "error": null}]
attempts:
  description: How many connections the send took (1 without retries); 0 when the mail was spooled before any.
  returned: success and failures of the SMTP session
  type: int
  sample: 2
failed_attempts:
  description: Each failed attempt, with its step, stable code, reply code and the server's reply (never a secret).
  returned: success and failures of the SMTP session
  type: list
  elements: dict
  sample: [{"attempt": 1, "stage": "data", "error": "data_refused", "smtp_code": 451,
            "reply": "The server refused the message: 451 4.3.0 Mail server temporarily rejected message."}]
spooled:
  description: True when the mail could not be sent now and was written to O(spool_dir) instead.
  returned: success
  type: bool
  sample: false
spool_path:
  description: The spool file of this mail.
  returned: when RV(spooled=true) or RV(held=true)
  type: str
held:
  description:
    - True when the delivery of this mail became unknown (RV(error=delivery_unknown)) and O(spool_dir) is set; the
      mail is kept in the spool, held. It is never resent by itself; check the recipients' mailboxes, then release
      or discard it with M(smail.xoauth2.spool).
  returned: failure with RV(error=delivery_unknown) and O(spool_dir) set
  type: bool
spool_refused:
  description: Mail spooled earlier that the server refused for good for a recipient during this send; it is held
    in the spool (path, C(Message-ID), C(delivered), C(refused) with the server's reply) and reported in a warning.
  returned: success and failures of the SMTP session
  type: list
  elements: dict
spool_delivered:
  description: The C(Message-ID)s of mail spooled earlier that this send delivered first.
  returned: success and failures of the SMTP session
  type: list
  elements: str
spool_pending:
  description: Mail still waiting in O(spool_dir) for this account (path, C(Message-ID), recipients, reason).
  returned: success and failures of the SMTP session
  type: list
  elements: dict
transcript:
  description: The SMTP conversation, one line per command (C(C:)) or reply (C(S:)), with secrets masked.
  returned: when O(debug=true)
  type: list
  elements: str
  sample: ["S: 220 smtp.example.com ESMTP", "C: AUTH XOAUTH2 *****", "S: 235 2.7.0 Accepted"]
error:
  description:
    - The stable code of a failure, for example V(invalid_grant), V(invalid_client), V(token_endpoint_unreachable),
      V(token_endpoint_tls), V(token_endpoint_bad_response), V(smtp_connect), V(smtp_tls), V(smtp_timeout),
      V(token_endpoint_unavailable), V(smtp_auth), V(basic_auth_disabled), V(sender_refused), V(recipients_refused), V(recipients_deferred),
      V(data_refused), V(delivery_unknown), V(message_too_large), V(smtputf8_unsupported), V(spool_write),
      V(invalid_option).
  returned: failure
  type: str
  sample: invalid_grant
stage:
  description: The step of the SMTP session that failed (connect, tls, ehlo, auth, mail, rcpt, data).
  returned: failure of the SMTP session
  type: str
  sample: auth
may_have_been_delivered:
  description:
    - True when the connection was lost after the whole message was sent (RV(error=delivery_unknown)); the server
      may have delivered it, so do not blindly retry. Also true when some recipients have the mail and others
      were refused or are still deferred.
  returned: failure of the SMTP session
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.smail.xoauth2.plugins.module_utils import _mailer, _smtp
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import MissingLibraryError
from ansible_collections.smail.xoauth2.plugins.module_utils._options import (
    OAUTH2_ARGSPEC,
    SMTP_ARGSPEC,
    TLS_ARGSPEC,
    merge_argspecs,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult, exit_module

MESSAGE_ARGSPEC = {
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
    "attachment_name_encoding": {"type": "str", "default": "auto", "choices": list(_smtp.ATTACHMENT_NAME_ENCODINGS)},
    "attach": {"type": "list", "elements": "path", "default": []},
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
        "headers": {"type": "dict"},
    }},
    "debug": {"type": "bool", "default": False},
}
#: The message options a batch item may set; the top-level values are their defaults.
PER_MESSAGE = tuple(MESSAGE_ARGSPEC["messages"]["options"])
#: The module's options, validated by AnsibleModule here and by ArgumentSpecValidator in the in-process action.
ARGUMENT_SPEC = merge_argspecs(OAUTH2_ARGSPEC, TLS_ARGSPEC, SMTP_ARGSPEC, MESSAGE_ARGSPEC)


def message_spec(params: dict, item: dict | None = None, *, prefix: str = "") -> _smtp.MessageSpec:
    """The message options (a batch item's over the top-level ones) as the SMTP core's MessageSpec."""
    values = dict(params)
    values.update({name: value for name, value in (item or {}).items() if value is not None})
    for required in ("sender", "subject"):
        if values.get(required) is None:
            raise OptionError(f"{prefix}{required}", "is required" + (" (here or at the top level)" if prefix else ""))
    return _smtp.MessageSpec(
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
        headers=tuple((str(name), str(value)) for name, value in values["headers"].items()),
        message_id_domain=values["message_id_domain"],
    )


def batch_result(params: dict, *, check_mode: bool, transcript: _smtp.Transcript,
                 sessions: _smtp.SessionProvider = _smtp.NEW_SESSIONS) -> TaskResult:
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
        first = batch.errors[failed[0]]
        return TaskResult.failure(f"{len(failed)} of {len(specs)} messages failed; the first, messages[{failed[0]}]: "
                                  f"{first.full_msg if first else ''}", secrets=delivery.secrets,
                                  warnings=delivery.warnings,
                                  **{**result, "error": first.code if first else "batch_failed", "changed": changed})
    if check_mode:
        result["msg"] = f"Check mode: authenticated to the server; {len(specs)} mails were not sent."
    return TaskResult({"changed": changed, **result}, secrets=delivery.secrets, warnings=delivery.warnings)


def run(params: dict, *, check_mode: bool = False, sessions: _smtp.SessionProvider = _smtp.NEW_SESSIONS) -> TaskResult:
    """Send the mail (or the ``messages`` batch) of validated ``params``: the task's result.

    The module process and the in-process action (``plugins/action/mail.py``) both call this; ``sessions`` lets the
    action keep one SMTP connection across the items of a loop (default: a connection per attempt).
    """
    transcript = _smtp.Transcript()
    try:
        if params["messages"]:
            return batch_result(params, check_mode=check_mode, transcript=transcript, sessions=sessions)
        delivery = _mailer.deliver(params, message_spec(params), check_only=check_mode, transcript=transcript,
                                   sessions=sessions)
    except MissingLibraryError as exc:
        return TaskResult.failure(missing_required_lib(exc.library), error=exc.code)
    except SmailError as exc:
        extra = {"transcript": transcript.lines} if params["debug"] else {}
        return TaskResult({**exc.as_result(), **extra}, failed=True, secrets=transcript.secrets)
    result = dict(delivery.result)
    sent = result.pop("sent")
    if params["debug"]:
        result["transcript"] = delivery.transcript.lines
    if check_mode:
        result["msg"] = "Check mode: authenticated to the server; the mail was not sent."
    # A spooled mail, or spooled mail delivered first, changed something too.
    changed = sent or bool(result.get("spooled")) or bool(result.get("spool_delivered")) or check_mode
    return TaskResult({"changed": changed, **result}, secrets=delivery.secrets, warnings=delivery.warnings)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    exit_module(module, run(module.params, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
