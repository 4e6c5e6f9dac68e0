#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/authorize.py); this file is its documentation.

from __future__ import annotations

DOCUMENTATION = r"""
module: authorize
short_description: Obtain a refresh token through the OAuth 2.0 consent flow, like SmailRefreshToken.exe
version_added: 1.0.0
description:
  - Runs the consent flow of a desktop OAuth client on the controller and returns the refresh token that
    M(smail.xoauth2.mail), M(smail.xoauth2.token_ini) and SMAIL need - what C(SmailRefreshToken.exe) does on Windows.
  - In O(mode=loopback) and O(mode=manual) it is the authorization code grant with PKCE (S256) and a random
    C(state). The browser is sent back to C(http://127.0.0.1:PORT/) after the consent.
  - In O(mode=loopback) the task listens on that address, shows the consent URL, opens the browser (Python's
    C(webbrowser), so E(BROWSER) is honoured), waits for the redirect, checks its C(state), tells the browser it may
    close the tab, and exchanges the code for the tokens. A request with another C(state), which any local user
    could send, is answered with an error page and ignored (shown at C(-v)); the task waits on until O(timeout).
  - In O(mode=manual), for a controller without a browser, a first run returns RV(authorization_url). Open it in any
    browser and allow access; the browser then fails to load C(http://127.0.0.1:PORT/...). A second run with that
    address as O(authorization_response) (for example read with M(ansible.builtin.pause)) exchanges the code. The
    PKCE verifier waits in between in a file of mode C(0600) under C(~/.ansible/smail_xoauth2/pending/) of the
    controller user. It is deleted once used and ignored after 10 minutes.
  - In O(mode=device), the device authorization grant (RFC 8628) for a controller without a browser, the task asks
    O(device_authorization_uri) for a code and shows, at the default verbosity, the verification address and the user
    code. They are written to the controller's standard error at once, so that they appear also when the output goes to
    a pipe or a file (a CI job, C(| tee), a job log; redirect both with C(2>&1)). Open that address on any device (a
    phone will do), enter the code, sign in and allow access. Meanwhile the task polls the token endpoint at the
    interval the endpoint names (5 seconds unless it says otherwise, 5 more after each C(slow_down) answer) until
    access is allowed or refused, the code expires, or O(timeout) passes. The device code it polls with is never shown.
    A wait that ends without access says when the code was shown.
  - O(mode=device) works with O(provider=microsoft) (the Entra ID app must allow public client flows) and with
    O(provider=custom) and its O(device_authorization_uri). It is refused for O(provider=google) before any request -
    Google does not allow the Gmail scope C(https://mail.google.com/) on its device flow. Use O(mode=loopback) or
    O(mode=manual) there.
  - The refresh token is in the registered result. Because an action cannot mask one value and still hand it to the
    next task, a successful result is hidden from the output as a whole, as with C(no_log), at every verbosity up to
    C(-vvvv) (see C(docs/security.md) for what ansible-core's E(ANSIBLE_DEBUG) prints).
    Register it and use it, for example with M(smail.xoauth2.token_ini) or the C(ansible.builtin.vault) filter.
    Failures are shown.
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
requirements:
  - requests on the controller, and google-auth-oauthlib for O(mode=loopback) and O(mode=manual)
extends_documentation_fragment:
  - smail.xoauth2.attributes
  - smail.xoauth2.attributes.action
attributes:
  check_mode:
    support: none
    details: The consent cannot be simulated; the task is skipped in check mode.
  diff_mode:
    support: none
  platform:
    platforms: all
    details: Runs on the controller whatever the target is. Use it once, for example with C(run_once) or on C(localhost).
options:
  provider:
    description:
      - The OAuth 2.0 provider whose endpoints and scopes apply when they are not given.
      - V(google) uses C(https://accounts.google.com/o/oauth2/auth) and C(https://oauth2.googleapis.com/token), the scope
        C(https://mail.google.com/), and asks for C(access_type=offline) and C(prompt=consent) so that a refresh token is
        returned.
      - V(microsoft) uses C(https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize), C(.../token) and, in
        O(mode=device), C(.../devicecode), and the scopes C(https://outlook.office.com/SMTP.Send offline_access).
      - V(custom) has no endpoints or scopes of its own; it asks for a refresh token as V(google) does.
    type: str
    choices: [google, microsoft, custom]
    default: google
  client_id:
    description:
      - The OAuth client ID. Defaults to the C(client_id) of O(client_secrets_file).
    type: str
  client_secret:
    description:
      - The OAuth client secret. Defaults to the C(client_secret) of O(client_secrets_file).
      - Not needed for public clients (Microsoft Entra ID "Mobile and desktop applications").
    type: str
  client_secrets_file:
    description:
      - Path, on the controller, of the client JSON downloaded from the Google Cloud console (C(client_secret_*.json),
        with the top key C(installed) or C(web)). It may be encrypted with Ansible Vault.
      - Relative paths are searched like the C(src) of M(ansible.builtin.copy) (the role's or play's C(files) directory).
      - Its C(client_id), C(client_secret), C(auth_uri) and C(token_uri) fill the options that are not given.
    type: path
  auth_uri:
    description:
      - The authorization endpoint, where the browser is sent for the consent.
      - Defaults to the C(auth_uri) of O(client_secrets_file), then to the O(provider)'s. C({tenant}) is replaced by
        O(tenant).
    type: str
  device_authorization_uri:
    description:
      - The device authorization endpoint (RFC 8628) of O(mode=device). Like O(token_uri), it must be C(https://) (or
        C(http://) to a loopback address).
      - Defaults to the O(provider)'s - C(https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode) for
        V(microsoft); required for V(custom). C({tenant}) is replaced by O(tenant).
    type: str
  token_uri:
    description:
      - The token endpoint. It must be C(https://); plain C(http://) is refused (V(invalid_option)) unless the host is a
        loopback address, since the client secret and the code would travel unencrypted. Plain C(http://) goes to that
        address directly, never through a proxy of the environment.
      - This and the other endpoint options (O(auth_uri), O(device_authorization_uri)) may not contain a backslash, a
        blank or user information (C(user@) before the host), since parsers disagree on the host such a URL names.
      - Defaults to the C(token_uri) of O(client_secrets_file), then to the O(provider)'s. C({tenant}) is replaced by
        O(tenant).
    type: str
  tenant:
    description:
      - The Microsoft Entra tenant (ID or domain) for O(provider=microsoft). C(common) when not set.
    type: str
  scopes:
    description:
      - The scopes to ask consent for. Defaults to the O(provider)'s - C(https://mail.google.com/) for V(google).
      - Add C(openid) and C(email) to learn the account in RV(account) from the ID token.
    type: list
    elements: str
  login_hint:
    description:
      - The mail account to authorize; the consent page preselects it.
      - Also returned as RV(account) when the token endpoint does not name the account.
    type: str
  mode:
    description:
      - V(loopback) runs the whole consent in one task, with a browser on the controller.
      - V(manual) runs it in two tasks, with a browser anywhere; see the description.
      - V(device) runs it in one task, with a code entered in a browser on any device (RFC 8628); see the description.
        Not for O(provider=google).
    type: str
    choices: [loopback, manual, device]
    default: loopback
    aliases: [flow]
  port:
    description:
      - The port of C(http://127.0.0.1:PORT/), the redirect URI. V(0) picks a free one.
      - Google "Desktop app" clients and Microsoft Entra ID loopback redirect URIs accept any port.
    type: int
    default: 0
  timeout:
    description:
      - Seconds to wait for the consent in O(mode=loopback) and O(mode=device). In O(mode=device) the wait also ends
        when the device code expires (Microsoft's live 15 minutes), with RV(error=device_code_expired).
    type: int
    default: 300
  open_browser:
    description:
      - Open the consent URL with Python's C(webbrowser) in O(mode=loopback). It uses E(BROWSER) when set, else the
        desktop's default browser. A console browser such as C(lynx) is only started when E(BROWSER) names it.
      - The URL is shown on the console in any case.
    type: bool
    default: true
  authorization_response:
    description:
      - In O(mode=manual), the second run - the whole address the browser landed on after the consent
        (C(http://127.0.0.1:PORT/?state=...&code=...)).
    type: str
  validate_certs:
    description:
      - Verify the certificate of the token endpoint (and of O(device_authorization_uri)). Set to V(false) only for tests.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to trust for the token endpoint (and O(device_authorization_uri)) instead of the
        system's.
    type: path
  token_cache:
    description:
      - Record in the controller's token cache when the refresh token was obtained and the expiry the token endpoint
        stated for it (C(refresh_token_expires_in)), under a hash of the refresh token, never the token itself.
      - M(smail.xoauth2.mail), M(smail.xoauth2.access_token) and the C(smail.xoauth2.notify) callback that use the
        same cache on the controller return RV(refresh_token_expires_at) from there and warn as their
        C(refresh_token_warn_days) says, even when they only reuse a cached access token.
    type: bool
    default: true
    version_added: 1.0.0
  token_cache_dir:
    description:
      - The token cache directory, as for M(smail.xoauth2.mail). Defaults to C(~/.ansible/smail_xoauth2/tokens) of the
        controller user.
    type: path
    version_added: 1.0.0
notes:
  - The task blocks for up to O(timeout) seconds in O(mode=loopback) and O(mode=device).
  - Google returns a refresh token on every consent thanks to C(prompt=consent). Apps whose publishing status is
    "Testing" get refresh tokens that expire after 7 days; publish the app (Google Cloud console, OAuth consent screen
    (Google Auth Platform > Audience), B(Publish app)) to get refresh tokens without that limit.
  - A refresh token expires when the token endpoint says so (RV(refresh_token_expires_at)), and otherwise when the
    provider's rules say (unused for months, revoked, a password change); run this task again then.
  - Microsoft returns a new refresh token on every refresh; see O(smail.xoauth2.mail#module:persist_rotated_token).
seealso:
  - module: smail.xoauth2.token_ini
  - module: smail.xoauth2.access_token
  - module: smail.xoauth2.mail
"""

EXAMPLES = r"""
- name: Authorize with the browser of this machine
  smail.xoauth2.authorize:
    client_secrets_file: client_secret_smail.json
    login_hint: alerts@example.com
  register: consent
  delegate_to: localhost
  run_once: true

- name: Give the refresh token to SMAIL
  smail.xoauth2.token_ini:
    dest: C:\SMAIL\smail_refresh_token.ini
    account: alerts@example.com
    client_secrets_file: client_secret_smail.json
    refresh_token: "{{ consent.refresh_token }}"

- name: Headless controller, step 1 - get the consent URL
  smail.xoauth2.authorize:
    client_secrets_file: client_secret_smail.json
    mode: manual
  register: step1

- name: Headless controller, step 2 - wait for the address the browser landed on
  ansible.builtin.pause:
    prompt: "Open {{ step1.authorization_url }} , allow access, and paste the address of the page that fails to load"
  register: landed

- name: Headless controller, step 3 - exchange the code
  smail.xoauth2.authorize:
    client_secrets_file: client_secret_smail.json
    mode: manual
    authorization_response: "{{ landed.user_input }}"
  register: consent

- name: Microsoft 365
  smail.xoauth2.authorize:
    provider: microsoft
    tenant: contoso.onmicrosoft.com
    client_id: "{{ m365_client_id }}"
    login_hint: reports@contoso.com
  register: consent

- name: Microsoft 365 from a headless controller - enter the code shown on a phone or any other device
  smail.xoauth2.authorize:
    provider: microsoft
    tenant: contoso.onmicrosoft.com
    client_id: "{{ m365_client_id }}"
    mode: device
    timeout: 900
  register: consent
"""

RETURN = r"""
refresh_token:
  description:
    - The refresh token. The whole result is hidden from the task output; use it through the registered variable.
  returned: success, except the first run of O(mode=manual)
  type: str
  sample: "1//0gAbCdEf..."
account:
  description: The account from the ID token (with the scopes C(openid email)), else O(login_hint), else null.
  returned: success, except the first run of O(mode=manual)
  type: str
  sample: alerts@example.com
scopes:
  description: The scopes the token endpoint granted.
  returned: success, except the first run of O(mode=manual)
  type: list
  elements: str
  sample: ["https://mail.google.com/"]
refresh_token_expires_at:
  description:
    - When the refresh token expires, in ISO 8601 UTC, as the token endpoint stated it (C(refresh_token_expires_in)).
  returned: success, when the token endpoint stated it
  type: str
  sample: "2026-01-08T12:00:00Z"
  version_added: 1.0.0
expires_in:
  description: Seconds the access token issued with the refresh token stays valid (the access token is not returned).
  returned: success, except the first run of O(mode=manual)
  type: int
  sample: 3599
authorization_url:
  description: The consent URL to open in a browser, with the PKCE challenge (S256) and the state.
  returned: first run of O(mode=manual)
  type: str
  sample: "https://accounts.google.com/o/oauth2/auth?response_type=code&client_id=...&code_challenge_method=S256"
redirect_uri:
  description: The address the browser is sent to after the consent; what to give as O(authorization_response) starts with it.
  returned: first run of O(mode=manual)
  type: str
  sample: "http://127.0.0.1:53682/"
error:
  description:
    - The stable code of a failure - V(access_denied) (the consent was refused), V(state_mismatch) (in O(mode=manual),
      the redirect belongs to another consent, or was already used), V(timeout) (no consent within O(timeout), or more than 10
      minutes between the runs of O(mode=manual)), V(invalid_grant) (the code expired or was used, or the PKCE verifier
      does not match), V(redirect_uri_mismatch), V(invalid_client), V(unauthorized_client), V(authorization_error),
      V(no_refresh_token), V(token_endpoint_unreachable), V(token_endpoint_tls), V(token_endpoint_bad_response),
      V(token_endpoint_unavailable), V(token_endpoint_error), V(missing_library), V(invalid_option).
    - In O(mode=device) also V(device_access_denied) (access was refused at the verification address) and
      V(device_code_expired) (the code expired before access was allowed). V(invalid_option) naming O(mode) refuses
      O(provider=google).
    - All codes, with cause and fix, in C(docs/troubleshooting.md).
  returned: failure
  type: str
  sample: access_denied
"""
