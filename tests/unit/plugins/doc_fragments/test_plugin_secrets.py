# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plugins' secret options are declared ``secret`` (ansible-core 2.22 masks them wherever they appear)."""

from __future__ import annotations

import yaml

from ansible_collections.smail.xoauth2.plugins.doc_fragments import oauth2, smtp
from ansible_collections.smail.xoauth2.plugins.module_utils._options import OAUTH2_ARGSPEC, SMTP_ARGSPEC

#: ansible-core takes ``secret`` for these option types only (config manager: _SECRET_ALLOWED_TYPES).
SECRET_TYPES = ("str", "list")


def plugin_options(fragment) -> dict:
    return yaml.safe_load(fragment.ModuleDocFragment.PLUGINS)["options"]


def test_every_no_log_option_a_plugin_reads_is_secret():
    for fragment, argspec in ((oauth2, OAUTH2_ARGSPEC), (smtp, SMTP_ARGSPEC)):
        options = plugin_options(fragment)
        expected = {name for name, spec in argspec.items()
                    if spec.get("no_log") and spec.get("type", "str") in SECRET_TYPES and name in options}
        declared = {name for name, option in options.items() if option.get("secret")}
        assert declared == expected
        assert expected, fragment.__name__


def test_the_secret_options_are_the_known_ones():
    declared = {name for fragment in (oauth2, smtp) for name, option in plugin_options(fragment).items()
                if option.get("secret")}
    assert declared == {"client_secret", "refresh_token", "access_token", "client_certificate_key", "password"}
