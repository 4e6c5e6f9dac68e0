#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/token_ini.py); this file is its documentation.

from __future__ import annotations

DOCUMENTATION = r"""
module: token_ini
short_description: Write SMAIL's refresh-token INI (smail_refresh_token.ini) from vaulted credentials
version_added: 1.0.0
description:
  - Writes the file that C(SmailRefreshToken.exe) would write next to C(smail.exe) - the mail account, the OAuth client
    ID and secret, the refresh token, the token endpoint (C(TokenURI)) and the authorization endpoint - so that SMAIL can
    send through C(OAUTH-XOAUTH2) on every host without running the consent flow there.
  - The file is merged, not overwritten - keys this task does not set, and every other line, are kept byte for byte.
    Options left unset leave their key as it is in the file.
  - A new file is a secret file from the start - on POSIX targets it is created with mode C(0600) (or O(mode)) before
    any value is written to it; on Windows targets it inherits the ACL of its folder.
  - The client secret and the refresh token never appear in the task's arguments, its result, its diff (shown as
    C(********)) or the output up to C(-vvvv). ansible-core's own debug output (E(ANSIBLE_DEBUG=1)) prints the raw
    output of the modules this action runs on the target, the file read back included, outside this promise (see
    C(docs/security.md)).
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
extends_documentation_fragment:
  - smail.xoauth2.ini_file
  - smail.xoauth2.tls
  - smail.xoauth2.attributes
  - smail.xoauth2.attributes.action
attributes:
  check_mode:
    support: full
    details: With O(verify=true) the refresh is still made, as it changes nothing on the target.
  diff_mode:
    support: full
    details: The client secret and the refresh token are shown as C(********).
  platform:
    platforms: [posix, windows]
options:
  account:
    description:
      - The mail address the refresh token belongs to, written as C(Account).
    type: str
    required: true
  provider:
    description:
      - The OAuth 2.0 provider whose endpoints are written when O(token_uri) and O(auth_uri) are not given (and not in
        O(client_secrets_file)).
      - V(google) writes C(https://oauth2.googleapis.com/token) and C(https://accounts.google.com/o/oauth2/auth).
      - V(microsoft) writes C(https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token) and
        C(https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize), with O(tenant).
      - V(custom) has no defaults; keys without a value are left as they are in the file.
    type: str
    choices: [google, microsoft, custom]
    default: google
  tenant:
    description:
      - The Microsoft Entra tenant (ID or domain) for O(provider=microsoft). C(common) when not set.
    type: str
  client_id:
    description:
      - The OAuth client ID, written as C(ClientID).
      - Defaults to the C(client_id) of O(client_secrets_file).
    type: str
  client_secret:
    description:
      - The OAuth client secret, written as C(ClientSecret).
      - Defaults to the C(client_secret) of O(client_secrets_file).
      - Unlike M(smail.xoauth2.mail), this and the other credential options are never read from environment variables
        of the controller - keep them in Ansible Vault.
    type: str
  refresh_token:
    description:
      - The refresh token, written as C(RefreshToken).
    type: str
  token_uri:
    description:
      - The token endpoint, written as C(TokenURI).
      - Defaults to the C(token_uri) of O(client_secrets_file), then to the O(provider)'s.
    type: str
  auth_uri:
    description:
      - The authorization endpoint, written as C(AuthURI).
      - Defaults to the C(auth_uri) of O(client_secrets_file), then to the O(provider)'s.
    type: str
  client_secrets_file:
    description:
      - Path, on the controller, of the client JSON downloaded from the Google Cloud console (C(client_secret_*.json),
        with the top key C(installed) or C(web)). It may be encrypted with Ansible Vault.
      - Relative paths are searched like the C(src) of M(ansible.builtin.copy) (the role's or play's C(files) directory).
      - Its C(client_id), C(client_secret), C(token_uri) and C(auth_uri) fill the options that are not given.
    type: path
  section:
    description:
      - The INI section holding the keys.
    type: str
    default: OAUTH
  keys:
    description:
      - The INI key of each field.
      - The defaults are our best knowledge of the file C(SmailRefreshToken.exe) writes, not a published format. If your
        version of SMAIL writes other names, map them here (only the fields you list change).
    type: dict
    suboptions:
      account:
        description: Key of O(account).
        type: str
        default: Account
      client_id:
        description: Key of O(client_id).
        type: str
        default: ClientID
      client_secret:
        description: Key of O(client_secret). Its value is masked in diffs.
        type: str
        default: ClientSecret
      refresh_token:
        description: Key of O(refresh_token). Its value is masked in diffs.
        type: str
        default: RefreshToken
      token_uri:
        description: Key of O(token_uri).
        type: str
        default: TokenURI
      auth_uri:
        description: Key of O(auth_uri).
        type: str
        default: AuthURI
  verify:
    description:
      - Before writing, refresh an access token once, on the controller, with the values the file will hold (including
        values kept from the existing file). If the token endpoint refuses, nothing is written and the task fails with
        the endpoint's error in RV(error) (for example V(invalid_grant) for a revoked refresh token).
      - The refresh is made on every run, also when the file is already up to date and in check mode. The access token
        is neither cached nor returned.
      - Needs google-auth and requests on the controller.
    type: bool
    default: false
notes:
  - The default encoding (cp932) and line breaks (CRLF) are what SMAIL reads on Japanese Windows. The values of this
    file are ASCII in practice, so other encodings only matter for the account name.
seealso:
  - module: smail.xoauth2.smail_ini
  - module: smail.xoauth2.mail
"""

EXAMPLES = r"""
- name: Give SMAIL its refresh token on every Windows host
  smail.xoauth2.token_ini:
    dest: C:\SMAIL\smail_refresh_token.ini
    account: alerts@example.com
    client_id: "{{ vault_smail_client_id }}"
    client_secret: "{{ vault_smail_client_secret }}"
    refresh_token: "{{ vault_smail_refresh_token }}"

- name: Take the client from the console's JSON (vault-encrypted in the role's files/) and check the token first
  smail.xoauth2.token_ini:
    dest: /srv/smail/smail_refresh_token.ini
    account: alerts@example.com
    client_secrets_file: client_secret_smail.json
    refresh_token: "{{ vault_smail_refresh_token }}"
    verify: true
    owner: smail
    group: smail

- name: A SMAIL build that names the keys differently
  smail.xoauth2.token_ini:
    dest: C:\SMAIL\smail_refresh_token.ini
    account: alerts@example.com
    refresh_token: "{{ vault_smail_refresh_token }}"
    section: OAuth2
    keys:
      refresh_token: Token
      account: MailAddress
"""

RETURN = r"""
dest:
  description: The path of the file on the target.
  returned: success
  type: str
  sample: C:\SMAIL\smail_refresh_token.ini
updated:
  description: The keys added, changed or removed, as C(Section/Key). Never values.
  returned: success
  type: list
  elements: str
  sample: [OAUTH/RefreshToken]
backup_file:
  description: The copy of the previous file, when O(backup=true) and the file changed.
  returned: changed and O(backup=true)
  type: str
  sample: /srv/smail/smail_refresh_token.ini.12345.2026-01-01@10:00:00~
verified:
  description: True when O(verify=true) and the token endpoint issued an access token.
  returned: when O(verify=true)
  type: bool
  sample: true
error:
  description:
    - The stable code of a failure, for example V(invalid_option) (bad input, nothing written), V(invalid_grant),
      V(invalid_client), V(token_endpoint_unreachable) (O(verify=true)), V(missing_collection), V(read_failed),
      V(write_failed); all codes, with cause and fix, in C(docs/troubleshooting.md).
  returned: failure
  type: str
  sample: invalid_grant
"""
