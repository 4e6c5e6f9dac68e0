# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The connection from options: what is refused before the token endpoint or the SMTP server is contacted."""

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._send import settings as _settings


@pytest.mark.parametrize("name", ["missing.pem", "a-directory"])
def test_a_ca_path_that_is_not_a_readable_file_is_an_option_error(tmp_path, name):
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(OptionError) as info:
        _settings.tls_settings({"ca_path": str(tmp_path / name)})
    assert (info.value.code, info.value.option) == ("invalid_option", "ca_path")


def test_a_readable_ca_path_is_kept(settings):
    assert _settings.tls_settings({"ca_path": settings["ca_path"]}).ca_path == settings["ca_path"]
