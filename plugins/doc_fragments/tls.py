# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The TLS option group (ARGSPEC: C(TLS_ARGSPEC) in plugins/module_utils/_options.py)."""

    DOCUMENTATION = r"""
options:
  validate_certs:
    description:
      - Verify the certificates of the token endpoint and of the SMTP server (chain and host name).
      - Set to V(false) only for tests.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to trust instead of the system's, for the token endpoint and the SMTP server
        (for example the CA of a TLS-inspecting proxy, or of a test server).
      - When set, it wins over E(REQUESTS_CA_BUNDLE); E(HTTPS_PROXY) and E(NO_PROXY) still apply.
      - A path that is not a readable file fails with C(error=invalid_option) before any connection, never retried
        or spooled.
    type: path
  timeout:
    description:
      - Seconds to wait for the token endpoint and for each SMTP reply.
    type: int
    default: 30
"""

    # Where plugins, which have no task arguments, read these options: environment variables and ansible.cfg.
    # Only the sources; a plugin extends both smail.xoauth2.tls and smail.xoauth2.tls.plugins. The ini section is
    # the smail.xoauth2.notify callback's, the only plugin using this group.
    PLUGINS = r"""
options:
  validate_certs:
    env:
      - name: SMAIL_XOAUTH2_VALIDATE_CERTS
    ini:
      - section: callback_smail_xoauth2_notify
        key: validate_certs
  ca_path:
    env:
      - name: SMAIL_XOAUTH2_CA_PATH
    ini:
      - section: callback_smail_xoauth2_notify
        key: ca_path
  timeout:
    env:
      - name: SMAIL_XOAUTH2_TIMEOUT
    ini:
      - section: callback_smail_xoauth2_notify
        key: timeout
"""
