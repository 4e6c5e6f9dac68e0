# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The SMTP option group (ARGSPEC: C(SMTP_ARGSPEC) in plugins/module_utils/_options.py)."""

    DOCUMENTATION = r"""
options:
  host:
    description:
      - The SMTP server. Defaults to the O(provider)'s (C(smtp.gmail.com), C(smtp.office365.com)).
    type: str
  port:
    description:
      - The SMTP port. Defaults to 465 for O(secure=ssl), 587 for O(secure=starttls) and 25 for O(secure=never).
    type: int
  secure:
    description:
      - V(ssl) speaks TLS from the first byte (implicit TLS, port 465).
      - V(starttls) connects in clear text and upgrades with STARTTLS before authenticating (port 587); a server
        without STARTTLS is an error, never a silent downgrade.
      - V(never) uses no TLS at all; refused unless O(host) is a loopback address or O(auth=none).
      - Defaults to the O(provider)'s (V(ssl) for google and custom, V(starttls) for microsoft).
      - A mode that does not match the port fails at once with C(error=smtp_tls), not after the retries. V(ssl) on a
        plain port fails at the handshake (OpenSSL's C(WRONG_VERSION_NUMBER)); V(starttls) or V(never) on an
        implicit-TLS port fails after the first wait of O(timeout) for a greeting, as the port then answers TLS.
    type: str
    choices: [ssl, starttls, never]
  auth:
    description:
      - The SASL mechanism.
      - V(xoauth2) (Gmail, Microsoft 365) and V(oauthbearer) (RFC 7628) present an OAuth2 access token.
      - V(plain) and V(login) present O(username) and O(password) (an app password).
      - V(none) sends without authenticating.
    type: str
    choices: [xoauth2, oauthbearer, plain, login, none]
    default: xoauth2
  username:
    description:
      - The account to authenticate as. Defaults to the account of O(token_ini), else the sender's address.
    type: str
  password:
    description:
      - The password for O(auth=plain) or O(auth=login).
    type: str
  ehlohost:
    description:
      - The name to announce in EHLO. Defaults to this host's fully qualified name.
    type: str
  retries:
    description:
      - How many more times to try after a failure that proves the server did not take the mail (a connection or
        TLS failure, a timeout before the final dot, a V(421) at any step, a 4xx at AUTH, MAIL, RCPT or in reply to
        DATA), and after a token endpoint that was unreachable.
      - Never retried are a 5xx reply, and a connection lost after the final dot of DATA (C(error=delivery_unknown)),
        since the server may have queued the mail. A recipient deferred with a 4xx is retried for that recipient
        alone. Every attempt sends the same message with the same C(Message-ID).
      - Recipients a server has no room for in one transaction (V(452), or V(552) read as V(452) as RFC 5321 asks,
        at RCPT) go in a new transaction on the same connection at once, without a pause and without using up a
        retry, as long as the transaction before delivered to somebody.
      - Settings that no retry can fix fail at once and are never spooled, such as a O(ca_path) that is not a
        readable file, a O(host) that does not resolve, or a O(secure) mode that does not match the port.
      - See C(docs/reliability.md) in the collection for the whole policy and the faults it was tested against.
    type: int
    default: 2
  retry_delay:
    description:
      - Seconds before the first retry; each further retry waits twice as long, with random jitter (half to all of
        that time), so that forks that failed together do not come back together.
    type: float
    default: 1.0
  retry_max_time:
    description:
      - No retry starts once this many seconds have passed since the first attempt.
    type: float
    default: 60.0
  allow_partial:
    description:
      - When the server refuses some recipients for good (5xx) but takes the mail for others, succeed and list the
        refused ones in C(refused). By default such a send fails (the others have the mail, so
        C(may_have_been_delivered=true)).
    type: bool
    default: false
  spool_dir:
    description:
      - A directory on the host that sends, used as a write-ahead queue. Every mail of the task is first written there
        (one private file per mail, 0600, in a 0700 directory of the SMTP account, fsync'd) and then delivered from
        there, so a task that times out, is killed or whose worker dies leaves its mail in the spool for a later send.
      - A mail that could not be sent for a reason that proves the server did not take it (after the retries) stays
        there, with a next attempt time of its own (5 minutes, doubling up to about an hour after each failed
        attempt). The task then succeeds with C(spooled=true) and a warning saying why and where. A mail that a
        credential problem kept back (the token endpoint refuses the refresh token, the server refuses a fresh
        token) is kept as well, while the task fails and says so.
      - Every later send with the same O(spool_dir) and the same SMTP account also delivers what is due for that
        account, tried once each, with the original C(Message-ID) and C(Date), over its connection, 32 at a time (the
        first 32 before its own mail, the rest after it); a mail still waiting gets a later attempt time, so a mailbox
        that keeps deferring does not hold up the others. After each recipient's final answer its state is written
        into the file, in place, before anything else is sent, so a recipient who has the mail never gets it again;
        the file is removed once every recipient has the mail. C(spool_delivered), C(spool_refused), C(spool_expired),
        C(spool_pending) and C(spool_held_count) say what happened.
      - A mail whose delivery is unknown (connection lost after the final dot) is never sent again by itself, as that
        could deliver it twice; the task fails with C(error=delivery_unknown) and the mail is kept in the spool, held
        (C(held=true)), so that after checking the mailbox M(smail.xoauth2.spool) can release or discard it. A
        spooled mail that a recipient refuses for good, that later fails for good, or that outlives
        O(spool_lifetime), is held too, and reported. Every send and flush warns while the account has held mail.
      - Off by default for the modules and the roles; the C(smail.xoauth2.notify) callback spools by default (its
        C(spool) option), in C(~/.ansible/smail_xoauth2/spool), except in an AWX job, whose container is thrown away
        at its end. The M(smail.xoauth2.spool) module lists or flushes a spool, for example from cron.
      - As for the token cache, the directory must belong to the user running the task and be writable by nobody else,
        and a symlink to it must be that user's (or root's); an existing one loses group and other read access. Else
        the task fails with V(spool_insecure) before anything is written there. Only regular files are read there.
    type: path
  spool_lifetime:
    description:
      - How long, in seconds, a spooled mail is tried before it is held as expired (C(held_code=expired)) and
        reported instead. The default is 5 days, as Postfix's C(maximal_queue_lifetime).
    type: int
    default: 432000
    version_added: 1.1.0
"""

    # Where plugins, which have no task arguments, read these options: environment variables and ansible.cfg.
    # Only the sources; a plugin extends both smail.xoauth2.smtp and smail.xoauth2.smtp.plugins. The ini section is
    # the smail.xoauth2.notify callback's, the only plugin using this group.
    PLUGINS = r"""
options:
  host:
    env:
      - name: SMAIL_XOAUTH2_HOST
    ini:
      - section: callback_smail_xoauth2_notify
        key: host
  port:
    env:
      - name: SMAIL_XOAUTH2_PORT
    ini:
      - section: callback_smail_xoauth2_notify
        key: port
  secure:
    env:
      - name: SMAIL_XOAUTH2_SECURE
    ini:
      - section: callback_smail_xoauth2_notify
        key: secure
  auth:
    env:
      - name: SMAIL_XOAUTH2_AUTH
    ini:
      - section: callback_smail_xoauth2_notify
        key: auth
  username:
    env:
      - name: SMAIL_XOAUTH2_USERNAME
    ini:
      - section: callback_smail_xoauth2_notify
        key: username
  password:
    secret: true
    env:
      - name: SMAIL_XOAUTH2_PASSWORD
    ini:
      - section: callback_smail_xoauth2_notify
        key: password
  ehlohost:
    env:
      - name: SMAIL_XOAUTH2_EHLOHOST
    ini:
      - section: callback_smail_xoauth2_notify
        key: ehlohost
  retries:
    env:
      - name: SMAIL_XOAUTH2_RETRIES
    ini:
      - section: callback_smail_xoauth2_notify
        key: retries
  retry_delay:
    env:
      - name: SMAIL_XOAUTH2_RETRY_DELAY
    ini:
      - section: callback_smail_xoauth2_notify
        key: retry_delay
  retry_max_time:
    env:
      - name: SMAIL_XOAUTH2_RETRY_MAX_TIME
    ini:
      - section: callback_smail_xoauth2_notify
        key: retry_max_time
  allow_partial:
    env:
      - name: SMAIL_XOAUTH2_ALLOW_PARTIAL
    ini:
      - section: callback_smail_xoauth2_notify
        key: allow_partial
  spool_dir:
    env:
      - name: SMAIL_XOAUTH2_SPOOL_DIR
    ini:
      - section: callback_smail_xoauth2_notify
        key: spool_dir
  spool_lifetime:
    env:
      - name: SMAIL_XOAUTH2_SPOOL_LIFETIME
    ini:
      - section: callback_smail_xoauth2_notify
        key: spool_lifetime
"""
