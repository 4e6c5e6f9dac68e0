# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A local, Gmail-like XOAUTH2 sandbox: an OAuth 2.0 token endpoint and SMTP servers on loopback.

Everything listens on 127.0.0.1 on free ports and is described by ``<state_dir>/sandbox.json``,
which is written (atomically) only once every server listens. Only the standard library, aiosmtpd,
trustme and cryptography (trustme's own dependency, for the app-only grants' keys) are used.

* Token endpoint (Google-like): ``POST /token`` with ``grant_type=refresh_token`` or
  ``authorization_code`` (PKCE S256 or plain verified), ``GET /tokeninfo``, and a few deliberately
  broken paths for error tests. Served over HTTPS with a certificate of the trusted CA (``ca.pem``),
  over HTTPS with a certificate of an unrelated CA, and over plain HTTP.
* Authorization endpoint (Google-like): ``GET /authorize`` consents at once and redirects to the
  loopback ``redirect_uri`` with ``code`` and ``state``, or with ``error=access_denied`` when
  ``login_hint`` starts with ``deny`` or ``deny=1`` is given. A refresh token is issued for
  ``access_type=offline`` only, and after the first consent of an account only with ``prompt=consent``.
* Microsoft-like endpoints under ``/ms/{tenant}/oauth2/v2.0/`` (``authorize`` and ``token``): a refresh
  needs ``scope``, and every refresh returns a new refresh token. As with Azure AD, the old refresh
  token stays valid. A refresh token is issued when the scope includes ``offline_access``.
* App-only grants: Google's JWT bearer grant (RFC 7523) for service accounts, with domain-wide
  delegation when the assertion's ``sub`` names a Workspace user, on ``/token``; and Entra ID's client
  credentials grant (a client secret or a certificate-signed client assertion) on the Microsoft token
  path, whose app token may send as one mailbox only.
* Device authorization grant (RFC 8628): ``POST /device/code`` (and Microsoft's ``.../devicecode``) issues a
  device code and a user code; the token paths answer ``authorization_pending`` until the user code is approved
  (``POST /device/approve``) or denied (``POST /device/deny``), ``slow_down`` to polls sooner than the interval,
  and ``expired_token`` after expiry. Switches in the request's query (``approve_after=N``, ``slow_down=N``, ...)
  decide for the user, so that a client that blocks while it polls can be tested alone.
* Revocation (Google-like): ``POST /revoke`` with ``token=`` forgets an access or refresh token.
* SMTP (smtp.gmail.com-like): implicit TLS, STARTTLS, implicit TLS with the untrusted certificate,
  and plain SMTP, all requiring ``AUTH XOAUTH2 | OAUTHBEARER | PLAIN | LOGIN`` before MAIL and offering
  8BITMIME and SMTPUTF8; plus a plain relay sink without AUTH (for a third-party server such as
  Dovecot to relay to), and listeners that misbehave: a ``421`` greeting, no STARTTLS, ``SIZE 2048``,
  and a 7-bit server.
* Faults injected by addresses and URLs alone (no control channel): ``fault-<spec>@...`` envelope
  addresses and ``/fault/<spec>/token``, counted per exact trigger so that ``x<N>`` faults fire the
  first N times only (see :func:`parse_fault_spec` and ``sandbox/README.md``).
* Every accepted message is stored under ``<state_dir>/mail`` as ``.eml`` (exact bytes) with a
  ``.json`` sidecar describing the envelope and the authentication (never the token).

Run ``python sandbox/xoauth2_sandbox run --state-dir DIR`` (foreground until SIGTERM/SIGINT),
``... wait --state-dir DIR`` (until ``sandbox.json`` exists) and ``... stop --state-dir DIR``; with ``sandbox/`` on
``sys.path``, ``python -m xoauth2_sandbox`` is the same.

The modules, each importing only those above it: ``common`` (names, ports, files, replies), ``faults`` (the fault
language), ``identities`` (service accounts, Entra ID apps, their JWTs), ``oauth`` (the token authority),
``endpoint`` (its HTTP paths), ``smtp`` (the SMTP servers and the mail store), ``sandbox`` (all of it started
together) and ``cli``.
"""

from __future__ import annotations

from .cli import main
from .common import HOST, SERVER_CERT_FILE, SERVER_KEY_FILE, SETTINGS_FILE, free_port, wait_for_file, write_json_atomically
from .sandbox import Sandbox

# What the scripts beside the package (dovecot_submission.py) and the tests' fixtures import by the package's name.
__all__ = ["HOST", "SERVER_CERT_FILE", "SERVER_KEY_FILE", "SETTINGS_FILE", "Sandbox", "free_port", "main", "wait_for_file",
           "write_json_atomically"]
