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
      - If not set, the environment variable E(SMAIL_XOAUTH2_PROVIDER) is used.
    type: str
    choices: [google, microsoft, custom]
    default: google
  grant:
    description:
      - How the access token is obtained.
      - V(refresh_token) exchanges a refresh token obtained at consent (C(SmailRefreshToken.exe),
        M(smail.xoauth2.authorize)), one person's grant.
      - V(service_account) (Google Workspace) signs an assertion with O(service_account_key) and acts as
        O(delegated_user) through domain-wide delegation, with no refresh token and no person's consent.
        See C(docs/grant-google-service-account.md).
      - V(client_credentials) (Microsoft 365) obtains an app token for the Entra app O(client_id) with O(client_secret),
        or with O(client_certificate) and O(client_certificate_key); O(tenant) must name the directory.
        See C(docs/grant-microsoft-client-credentials.md).
      - If not set, the environment variable E(SMAIL_XOAUTH2_GRANT) is used.
    type: str
    choices: [refresh_token, client_credentials, service_account]
    default: refresh_token
  service_account_key:
    description:
      - The JSON key of a Google service account, as a dict or JSON text, for O(grant=service_account). Keep it in a
        vault-encrypted file and read it with C(lookup('ansible.builtin.file', 'sa-key.json.vault')).
      - If not set, the environment variable E(SMAIL_XOAUTH2_SERVICE_ACCOUNT_KEY) is used.
    type: raw
  delegated_user:
    description:
      - The Workspace user the service account sends as (O(grant=service_account)). Defaults to the SMTP C(username),
        itself defaulting to the sender. A token for the service account itself is always refused by Gmail.
      - If not set, the environment variable E(SMAIL_XOAUTH2_DELEGATED_USER) is used.
    type: str
  client_certificate:
    description:
      - The PEM certificate of the Entra app (as uploaded under Certificates & secrets), for O(grant=client_credentials)
        without a client secret. The app authenticates with an assertion signed by O(client_certificate_key).
      - If not set, the environment variable E(SMAIL_XOAUTH2_CLIENT_CERTIFICATE) is used.
    type: str
  client_certificate_key:
    description:
      - The PEM private key (RSA) of O(client_certificate).
      - If not set, the environment variable E(SMAIL_XOAUTH2_CLIENT_CERTIFICATE_KEY) is used.
    type: str
  client_id:
    description:
      - The OAuth client ID (the C(client_id) of the downloaded C(client_secret_*.json)).
      - If not set, the environment variable E(SMAIL_XOAUTH2_CLIENT_ID) is used, then the O(token_ini) file.
    type: str
  client_secret:
    description:
      - The OAuth client secret; with O(grant=client_credentials), the Entra app's client secret (its Value).
      - Leave it out for a public client, such as a Microsoft Entra ID app with "Allow public client flows" and no
        secret (what M(smail.xoauth2.authorize) with O(smail.xoauth2.authorize#module:mode=device) needs); its refresh
        token refreshes without one, and the request then carries no C(client_secret) field at all.
      - If not set, the environment variable E(SMAIL_XOAUTH2_CLIENT_SECRET) is used, then the O(token_ini) file.
    type: str
  refresh_token:
    description:
      - The long-lived refresh token obtained at consent (by C(SmailRefreshToken.exe) or M(smail.xoauth2.authorize)).
      - If not set, the environment variable E(SMAIL_XOAUTH2_REFRESH_TOKEN) is used, then the O(token_ini) file.
    type: str
  token_uri:
    description:
      - The token endpoint. Defaults to the O(provider)'s; with O(grant=service_account), to the C(token_uri) of
        O(service_account_key) first (C(https://oauth2.googleapis.com/token) in Google's key files).
      - If not set, the environment variable E(SMAIL_XOAUTH2_TOKEN_URI) is used, then the O(token_ini) file's C(TokenURI).
      - It may contain C({tenant}), as the Microsoft endpoints do, for example
        C(https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token); it is replaced by O(tenant) (C(common) when
        not set), also when the endpoint comes from the environment, O(token_ini) or the key.
      - It must be C(https://); plain C(http://) is refused (V(invalid_option)) unless the host is a loopback address.
        Plain C(http://) goes to that address directly, never through a proxy of the environment (E(HTTP_PROXY)).
      - It may not contain a backslash, a blank or user information (C(user@) before the host), on which URL parsers
        disagree (V(invalid_option)).
    type: str
  tenant:
    description:
      - The Microsoft Entra tenant (ID or domain) for O(provider=microsoft). C(common) when not set, which serves
        O(grant=refresh_token) only; O(grant=client_credentials) needs the app's own tenant (unless O(token_uri) is given).
      - If not set, the environment variable E(SMAIL_XOAUTH2_TENANT) is used.
    type: str
  scopes:
    description:
      - Scopes to request. Defaults to the O(provider)'s for the O(grant), which are C(https://mail.google.com/) for
        Google, C(https://outlook.office.com/SMTP.Send offline_access) for a Microsoft refresh token and
        C(https://outlook.office365.com/.default) for Microsoft client credentials.
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
  token_ini_section:
    description:
      - The section of O(token_ini) holding the token fields, for SMAIL versions whose file differs from
        C(SmailRefreshToken.exe)'s. The same as the C(section) option of M(smail.xoauth2.token_ini).
      - Defaults to C(OAUTH); when the file has no such section, the first section holding a token key is read.
    type: str
  token_ini_keys:
    description:
      - The INI keys of the token fields in O(token_ini), where they differ from the defaults; the same as the C(keys)
        option of M(smail.xoauth2.token_ini). Fields not given keep their default key.
      - Fields are C(account) (C(Account)), C(client_id) (C(ClientID)), C(client_secret) (C(ClientSecret)),
        C(refresh_token) (C(RefreshToken)), C(token_uri) (C(TokenURI)) and C(auth_uri) (C(AuthURI)).
      - A rotated refresh token (O(persist_rotated_token)) is written back under the same key.
    type: dict
  token_cache:
    description:
      - Reuse access tokens across tasks, forks and hosts on the machine that refreshes them, while they stay valid for
        O(token_expiry_margin) seconds. Entries are files of mode C(0600) in a C(0700) directory, named by a hash of token endpoint,
        client ID, client secret, refresh token and scopes (of the grant's own credentials for the app-only grants).
      - The certificate checks are part of that name too (O(validate_certs), and O(ca_path) as an absolute path), so
        a token fetched with O(validate_certs=false) or against another CA is never used by a task that checks
        certificates differently, nor is a failure of the token endpoint that such a task remembered.
      - The cache also keeps, per refresh token (under a hash of it, no secret), when it was obtained
        (M(smail.xoauth2.authorize) on the controller, or a rotation) and the expiry a token endpoint stated for it,
        for O(refresh_token_warn_days). With V(false) no file is read or written; only an expiry stated in the task's
        own refresh is known then.
    type: bool
    default: true
  token_cache_dir:
    description:
      - The token cache directory. Defaults to C(~/.ansible/smail_xoauth2/tokens) of the user running the task.
      - It must belong to the user running the task and be writable by nobody else; a missing one is created with
        mode C(0700), and an existing one loses group and other read access. A directory of another user, or one
        that group or others may write to (such as C(/tmp) itself), fails with V(token_cache_insecure) before any
        token is read or written. Files in it are opened without following symlinks; a token entry that is a symlink
        or another user's file is ignored and replaced, a lock file like that fails with V(token_cache_insecure).
      - A transient failure of the token endpoint is remembered there for 30 seconds (its error code and time, no
        secret), so that other tasks and forks of the same grant fail at once with V(token_endpoint_unavailable)
        instead of each retrying; a successful refresh clears it. A task waits for another one's refresh of the same
        grant at most the O(timeout) plus 5 seconds, then refreshes on its own.
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
        first, so that it cannot expire during a slow send.
      - Unset, the provider decides, V(600) for O(provider=microsoft) (Microsoft's High Volume Email,
        C(smtp-hve.office365.com), refuses a token with less than 10 minutes left with C(501 5.5.127)) and V(300)
        for the others.
      - Independently of this, when the server refuses a cached token (revoked by a password change or an admin),
        the cache entry is dropped, the token refreshed once and the login tried once more.
    type: int
  refresh_token_warn_days:
    description:
      - Warn when the refresh token expires within this many days, naming the expiry time and what to do (authorize
        again). V(0) turns the warning off.
      - The expiry is known only when a token endpoint stated it (C(refresh_token_expires_in) in its answer to
        M(smail.xoauth2.authorize) or to a refresh, for example for Google's time-limited access); it is kept in the
        token cache (see O(token_cache)) and returned as C(refresh_token_expires_at). No expiry is guessed, so a
        refresh token of unknown lifetime never warns.
    type: int
    default: 2
    version_added: 1.0.0
"""

    # Where plugins, which have no task arguments, read these options: environment variables and ansible.cfg.
    # secret: ansible-core 2.22 masks the value in all output (older lines ignore the key; the plugin masks it too).
    # service_account_key is not marked: ansible-core takes the key for str and list options only, and the collection
    # registers the private key it holds when it parses it.
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
    secret: true
    env:
      - name: SMAIL_XOAUTH2_CLIENT_SECRET
    ini:
      - section: callback_smail_xoauth2_notify
        key: client_secret
  refresh_token:
    secret: true
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
    secret: true
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
  grant:
    env:
      - name: SMAIL_XOAUTH2_GRANT
    ini:
      - section: callback_smail_xoauth2_notify
        key: grant
  service_account_key:
    env:
      - name: SMAIL_XOAUTH2_SERVICE_ACCOUNT_KEY
  delegated_user:
    env:
      - name: SMAIL_XOAUTH2_DELEGATED_USER
    ini:
      - section: callback_smail_xoauth2_notify
        key: delegated_user
  client_certificate:
    env:
      - name: SMAIL_XOAUTH2_CLIENT_CERTIFICATE
  client_certificate_key:
    secret: true
    env:
      - name: SMAIL_XOAUTH2_CLIENT_CERTIFICATE_KEY
  token_ini_section:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_INI_SECTION
    ini:
      - section: callback_smail_xoauth2_notify
        key: token_ini_section
  token_ini_keys:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_INI_KEYS
  token_expiry_margin:
    env:
      - name: SMAIL_XOAUTH2_TOKEN_EXPIRY_MARGIN
    ini:
      - section: callback_smail_xoauth2_notify
        key: token_expiry_margin
  refresh_token_warn_days:
    env:
      - name: SMAIL_XOAUTH2_REFRESH_TOKEN_WARN_DAYS
    ini:
      - section: callback_smail_xoauth2_notify
        key: refresh_token_warn_days
"""
