#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: mail
short_description: Send mail through SMTP with OAuth 2.0 (XOAUTH2, OAUTHBEARER)
version_added: 1.0.0
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
    details:
      - For a Windows host, run the task on the controller with C(delegate_to) localhost (its O(token_ini), if any, is
        then a file on the controller); the mail goes from the controller, as it does for any host that has no Python
        with google-auth.
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
    version_added: 1.0.0
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
  inline:
    description:
      - Images an HTML O(body) shows inline, each referred to from it as C(<img src="cid:CID">) with the image's
        O(inline[].cid), as in M(community.general.mail) (since its 13.3.0); no image is then fetched from an external
        URL, which mail clients block by default.
      - The HTML part and the images are sent as one C(multipart/related) part (RFC 2387), each image with its cid in
        angle brackets as C(Content-ID) and with C(Content-Disposition) V(inline). Only with O(subtype=html); other
        files go in O(attach).
    type: list
    elements: dict
    default: []
    version_added: 1.0.0
    suboptions:
      path:
        description: Path, on the host that runs the task, of the image file.
        type: path
        required: true
      cid:
        description:
          - The Content-ID the body refers to, without the angle brackets, for example V(logo) for
            C(<img src="cid:logo">). Unique within the mail; letters, digits and C(!#$%&'*+-/=?^_`{|}~.@).
        type: str
        required: true
      mime_type:
        description:
          - The image's MIME type, for example V(image/png).
          - Guessed from the file name when not set; the task fails when it cannot be guessed, or is not an image type.
        type: str
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
    version_added: 1.0.0
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
        O(subtype), O(text_body), O(attach), O(inline) and O(headers) are defaults for every item, and none of them is
        required at the top level then.
      - After a 421 or a dropped connection between messages the rest go over a new connection; a message the server
        accepted is never sent again. The retry and spool rules (O(retries), O(spool_dir)) apply per message.
      - The task fails when any message failed, unless O(allow_partial=true); RV(results) says what became of each.
    type: list
    elements: dict
    version_added: 1.0.0
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
      inline:
        description: Images its HTML body shows, as O(inline).
        type: list
        elements: dict
        version_added: 1.0.0
        suboptions:
          path:
            description: Path of the image file.
            type: path
            required: true
          cid:
            description: The Content-ID the body refers to as C(cid:...), without angle brackets.
            type: str
            required: true
          mime_type:
            description: The image's MIME type; guessed from the file name when not set.
            type: str
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
    enabled for the mailbox.
  - Where it runs. When the task runs on the controller (the C(local) connection, C(delegate_to) localhost, a play on C(localhost))
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

- name: An HTML mail with the logo inline (not fetched from a URL)
  smail.xoauth2.mail:
    sender: reports@example.com
    to: team@example.com
    subject: Weekly report
    subtype: html
    body: '<img src="cid:logo" alt="Example Corp"><p>All green.</p>'
    inline:
      - path: files/logo.png
        cid: logo
    token_ini: /opt/smail/smail_refresh_token.ini

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
    token_ini: /opt/smail/smail_refresh_token.ini

- name: Report from Windows hosts - the mail goes from the controller, with a token INI kept there
  smail.xoauth2.mail:
    sender: alerts@example.com
    to: ops@example.com
    subject: "{{ inventory_hostname }} updated"
    token_ini: /etc/ansible/smail_refresh_token.ini
  delegate_to: localhost

- name: One mail per team, in one task over one SMTP connection (a batch)
  smail.xoauth2.mail:
    sender: "Deploy bot <deploy@example.com>"
    subject: "Deployment of {{ release }} finished"
    client_id: "{{ vault_smail_client_id }}"
    client_secret: "{{ vault_smail_client_secret }}"
    refresh_token: "{{ vault_smail_refresh_token }}"
    messages:
      - to: [ops@example.com]
        body: "{{ ansible_play_hosts | length }} hosts updated."
      - to: [dev@example.com]
        cc: [qa@example.com]
        subject: "Release {{ release }} is live"
        body: "Release notes: https://wiki.example.com/releases/{{ release }}"
  delegate_to: localhost
  run_once: true
  register: batch

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
  version_added: 1.0.0
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
      description: The stable code of its failure (see C(docs/troubleshooting.md)), or null.
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
  description:
    - True when the mail could not be sent now and waits in O(spool_dir) for a later send or flush.
    - Also on a failure of the credentials (RV(error=invalid_grant), a refused login) with O(spool_dir). The task
      fails, and the mail is kept until a flush after the credentials are fixed.
  returned: success, and such failures
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
  description: Mail still waiting in O(spool_dir) for this account (path, C(Message-ID), recipients, reason,
    C(attempts), C(next_attempt_at), C(last_error)).
  returned: success and failures of the SMTP session
  type: list
  elements: dict
spool_held_count:
  description: How many mails of this account are held in O(spool_dir) (delivery unknown, refused for good,
    expired); while there are any, every send warns.
  returned: success and failures of the SMTP session, with O(spool_dir)
  type: int
  sample: 0
  version_added: 1.1.0
spool_expired:
  description: Mail spooled earlier that this send found older than O(spool_lifetime); it is held now
    (C(held_code=expired)) and reported in a warning.
  returned: success and failures of the SMTP session, with O(spool_dir)
  type: list
  elements: dict
  version_added: 1.1.0
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
      V(invalid_option); all codes, with cause and fix, in C(docs/troubleshooting.md).
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import exit_module
from ansible_collections.smail.xoauth2.plugins.module_utils._tasks.mail import ARGUMENT_SPEC, run


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    exit_module(module, run(module.params, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
