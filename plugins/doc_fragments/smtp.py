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
"""
