# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the token request and the SMTP connection share, from options: certificate checks and timeout, and the retry
policy.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import os
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.grants import TLSSettings
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import RetryPolicy


def tls_settings(options: t.Mapping[str, t.Any]) -> TLSSettings:
    """How certificates are checked, for the token endpoint and the SMTP server alike."""
    timeout = options.get("timeout") or 30
    if timeout <= 0:
        raise OptionError("timeout", "must be a positive number of seconds")
    ca_path = options.get("ca_path")
    # Checked before the token endpoint or the SMTP server is contacted: no retry makes a missing file appear.
    if ca_path and not (os.path.isfile(ca_path) and os.access(ca_path, os.R_OK)):
        raise OptionError("ca_path", f"{ca_path!r} is not a readable file (a PEM file of the CA certificates to trust)")
    return TLSSettings(validate_certs=options.get("validate_certs", True), ca_path=ca_path, timeout=float(timeout))


def retry_policy(options: t.Mapping[str, t.Any]) -> RetryPolicy:
    """How transient failures are retried, from ``retries``, ``retry_delay`` and ``retry_max_time``."""
    retries = options.get("retries")
    delay = options.get("retry_delay")
    max_time = options.get("retry_max_time")
    policy = RetryPolicy(retries=2 if retries is None else int(retries), delay=1.0 if delay is None else float(delay),
                         max_time=60.0 if max_time is None else float(max_time))
    if policy.retries < 0:
        raise OptionError("retries", "must be 0 or more")
    if policy.delay < 0:
        raise OptionError("retry_delay", "must be 0 or more seconds")
    if policy.max_time <= 0:
        raise OptionError("retry_max_time", "must be a positive number of seconds")
    return policy
