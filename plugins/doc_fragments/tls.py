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
    type: path
  timeout:
    description:
      - Seconds to wait for the token endpoint and for each SMTP reply.
    type: int
    default: 30
"""
