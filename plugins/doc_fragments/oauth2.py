# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The OAuth2 option group (ARGSPEC: C(OAUTH2_ARGSPEC) in plugins/module_utils/_options.py)."""

    DOCUMENTATION = r"""
options:
  provider:
    description:
      - The OAuth 2.0 provider whose defaults apply.
      - V(google) uses the token endpoint C(https://oauth2.googleapis.com/token), the scope C(https://mail.google.com/)
        and C(smtp.gmail.com:465) with implicit TLS.
      - V(microsoft) uses C(https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token), sends the scopes
        C(https://outlook.office.com/SMTP.Send offline_access) on every refresh (Azure AD requires them), and
        C(smtp.office365.com:587) with STARTTLS.
      - V(custom) has no defaults; give O(token_uri), and the SMTP server's C(host) where mail is sent.
    type: str
    choices: [google, microsoft, custom]
    default: google
  client_id:
    description:
      - The OAuth client ID (the C(client_id) of the downloaded C(client_secret_*.json)).
      - If not set, the environment variable E(SMAIL_XOAUTH2_CLIENT_ID) is used, then the O(token_ini) file.
    type: str
  client_secret:
    description:
      - The OAuth client secret.
      - If not set, the environment variable E(SMAIL_XOAUTH2_CLIENT_SECRET) is used, then the O(token_ini) file.
    type: str
  refresh_token:
    description:
      - The long-lived refresh token obtained at consent (by C(SmailRefreshToken.exe) or M(smail.xoauth2.authorize)).
      - If not set, the environment variable E(SMAIL_XOAUTH2_REFRESH_TOKEN) is used, then the O(token_ini) file.
    type: str
  token_uri:
    description:
      - The token endpoint. Defaults to the O(provider)'s.
      - If not set, the environment variable E(SMAIL_XOAUTH2_TOKEN_URI) is used, then the O(token_ini) file's C(TokenURI).
    type: str
  tenant:
    description:
      - The Microsoft Entra tenant (ID or domain) for O(provider=microsoft). C(common) when not set.
    type: str
  scopes:
    description:
      - Scopes to request on refresh. Defaults to the O(provider)'s.
      - Google ignores them on refresh; Microsoft and V(custom) providers receive them.
    type: list
    elements: str
  access_token:
    description:
      - An access token to use as is; no refresh and no cache are involved.
      - Mutually exclusive in practice with the refresh options, which are then ignored.
    type: str
  token_ini:
    description:
      - Path, on the host that runs the task, of an existing SMAIL refresh-token INI (C(smail_refresh_token.ini))
        to read the account, client ID, client secret, refresh token and C(TokenURI) from.
      - Options given explicitly win over the file's values.
      - The file is read as cp932 unless it starts with a UTF-8 or UTF-16 byte order mark.
    type: path
  token_cache:
    description:
      - Reuse access tokens across tasks, forks and hosts on the machine that refreshes them, until 60 seconds before
        they expire. Entries are files of mode C(0600) in a C(0700) directory, named by a hash of token endpoint,
        client ID, refresh token and scopes.
    type: bool
    default: true
  token_cache_dir:
    description:
      - The token cache directory. Defaults to C(~/.ansible/smail_xoauth2/tokens) of the user running the task.
    type: path
  persist_rotated_token:
    description:
      - When the token endpoint returns a new refresh token (Microsoft does on every refresh) and the refresh token
        was read from O(token_ini), write the new one back into that file, on the host that runs the task.
      - The file is replaced atomically and keeps its encoding, byte order mark, line breaks, every other line, its
        mode and, where permitted, its owner. It is left alone when it no longer holds the refresh token that was used
        (another task changed it meanwhile), and in check mode.
      - Without this, or when the refresh token came from an option, the new refresh token is not stored; the old one
        stays valid with Microsoft until it expires.
    type: bool
    default: false
  token_expiry_margin:
    description:
      - Seconds a cached access token must still be valid to be used; a token closer to its expiry is refreshed
        first, so that it cannot expire during a slow send (Microsoft refuses a token close to expiry with
        C(501 5.5.127)).
      - Independently of this, when the server refuses a cached token (revoked by a password change or an admin),
        the cache entry is dropped, the token refreshed once and the login tried once more.
    type: int
    default: 300
"""

    # Where plugins, which have no task arguments, read these options: environment variables and ansible.cfg.
    # Only the sources; a plugin extends both smail.xoauth2.oauth2 and smail.xoauth2.oauth2.plugins. The ini section is
    # the smail.xoauth2.notify callback's, the only plugin using this group.
    PLUGINS = r"""
options:
  provider:
    env:
      - name: SMAIL_XOAUTH2_PROVIDER
    ini:
      - section: callback_smail_xoauth2_notify
        key: provider
  client_id:
    env:
      - name: SMAIL_XOAUTH2_CLIENT_ID
    ini:
      - section: callback_smail_xoauth2_notify
        key: client_id
  client_secret:
    env:
      - name: SMAIL_XOAUTH2_CLIENT_SECRET
    ini:
      - section: callback_smail_xoauth2_notify
        key: client_secret
  refresh_token:
    env:
      - name: SMAIL_XOAUTH2_REFRESH_TOKEN
    ini:
      - section: callback_smail_xoauth2_notify
        key: refresh_token
  token_uri:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_URI
    ini:
      - section: callback_smail_xoauth2_notify
        key: token_uri
  tenant:
    env:
      - name: SMAIL_XOAUTH2_TENANT
    ini:
      - section: callback_smail_xoauth2_notify
        key: tenant
  scopes:
    env:
      - name: SMAIL_XOAUTH2_SCOPES
    ini:
      - section: callback_smail_xoauth2_notify
        key: scopes
  access_token:
    env:
      - name: SMAIL_XOAUTH2_ACCESS_TOKEN
    ini:
      - section: callback_smail_xoauth2_notify
        key: access_token
  token_ini:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_INI
    ini:
      - section: callback_smail_xoauth2_notify
        key: token_ini
  token_cache:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_CACHE
    ini:
      - section: callback_smail_xoauth2_notify
        key: token_cache
  token_cache_dir:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_CACHE_DIR
    ini:
      - section: callback_smail_xoauth2_notify
        key: token_cache_dir
  persist_rotated_token:
    env:
      - name: SMAIL_XOAUTH2_PERSIST_ROTATED_TOKEN
    ini:
      - section: callback_smail_xoauth2_notify
        key: persist_rotated_token
  token_expiry_margin:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_EXPIRY_MARGIN
    ini:
      - section: callback_smail_xoauth2_notify
        key: token_expiry_margin
"""
