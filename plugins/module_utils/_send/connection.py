# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The SMTP server from options: host, port and TLS mode with the provider's defaults, and how its certificate is
checked (``settings``).

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._send.settings import tls_settings
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.endpoint import DEFAULT_PORTS, SMTPEndpoint


def smtp_endpoint(options: t.Mapping[str, t.Any]) -> SMTPEndpoint:
    """Host, port and TLS mode from the options, defaulting from the provider's registry entry."""
    provider = _providers.get_provider(options.get("provider"))
    secure = options.get("secure") or provider.smtp_secure or "ssl"
    host = options.get("host") or provider.smtp_host
    if not host:
        raise OptionError("host", f"is required with provider {provider.name!r}")
    tls = tls_settings(options)
    default_port = provider.smtp_port if secure == provider.smtp_secure and provider.smtp_port else DEFAULT_PORTS.get(secure, 465)
    return SMTPEndpoint(host=host, port=int(options.get("port") or default_port), secure=secure, timeout=tls.timeout,
                        validate_certs=tls.validate_certs, ca_path=tls.ca_path, ehlohost=options.get("ehlohost"))
