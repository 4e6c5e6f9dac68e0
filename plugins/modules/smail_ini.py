#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/smail_ini.py); this file is its documentation.

from __future__ import annotations

DOCUMENTATION = r"""
module: smail_ini
short_description: Merge settings into SMAIL's smail.ini, keeping everything else byte for byte
version_added: 1.0.0
description:
  - Sets keys of SMAIL's own settings file C(smail.ini) (for example the SMTP server and C(OAUTH-XOAUTH2)
    authentication) on Windows and POSIX hosts.
  - The existing file is read from the target and merged - it may hold settings SMAIL wrote itself. Managed keys are
    updated in place; comments, unknown keys, their order and blank lines are kept byte for byte.
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
extends_documentation_fragment:
  - smail.xoauth2.ini_file
  - smail.xoauth2.attributes
  - smail.xoauth2.attributes.action
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Values of O(secret_keys) are shown as C(********).
  platform:
    platforms: [posix, windows]
options:
  settings:
    description:
      - The settings to merge, as a dictionary of section names to dictionaries of key names to values.
      - A value of V(null) removes the key (every occurrence of it in the section). Sections that only remove keys are
        not created.
      - Section and key names compare case-insensitively, as Windows does; an existing key keeps its spelling.
      - Numbers are written as text; booleans are refused (write the text SMAIL expects, for example V('1')).
    type: dict
    required: true
  create:
    description:
      - Create the file when it does not exist. With V(false), a missing file fails the task.
    type: bool
    default: true
  secret_keys:
    description:
      - Names of keys (in any section, case-insensitive) whose values are secrets, for example a password. Their values
        are shown as C(********) in diffs and scrubbed from the task's result.
      - When the file holds a value under one of them, it gets mode C(0600) on POSIX targets unless O(mode) is set.
    type: list
    elements: str
    default: []
seealso:
  - module: smail.xoauth2.token_ini
  - module: community.general.ini_file
"""

EXAMPLES = r"""
# The collection writes the authentication type as AuthType in [SMTP] (as the smail_client role does) and the token
# file's name as TokenFile; check these names against the smail.ini of the SMAIL version in use.
- name: Send through Gmail with OAuth (the token file comes from smail.xoauth2.token_ini)
  smail.xoauth2.smail_ini:
    dest: C:\SMAIL\smail.ini
    settings:
      SMTP:
        Server: smtp.gmail.com
        Port: 465
        AuthType: OAUTH-XOAUTH2
        TokenFile: smail_refresh_token.ini
        OldPassword: null

- name: A POSIX host (for example a Wine prefix), UTF-8 with LF line breaks
  smail.xoauth2.smail_ini:
    dest: /srv/smail/smail.ini
    encoding: utf-8
    newline: lf
    mode: "0640"
    settings:
      SMTP:
        Server: smtp.office365.com
        Port: 587
"""

RETURN = r"""
dest:
  description: The path of the file on the target.
  returned: success
  type: str
  sample: C:\SMAIL\smail.ini
updated:
  description: The keys added, changed or removed, as C(Section/Key). Never values.
  returned: success
  type: list
  elements: str
  sample: [SMTP/Server, SMTP/OldPassword]
backup_file:
  description: The copy of the previous file, when O(backup=true) and the file changed.
  returned: changed and O(backup=true)
  type: str
  sample: C:\SMAIL\smail.ini.12345.20260101-100000.bak
error:
  description:
    - The stable code of a failure, for example V(invalid_option) (bad input, nothing written), V(dest_missing)
      (O(create=false)), V(missing_collection), V(read_failed), V(write_failed); all codes, with cause and fix, in
      C(docs/troubleshooting.md).
  returned: failure
  type: str
  sample: invalid_option
"""
