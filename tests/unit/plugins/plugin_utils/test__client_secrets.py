# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import codecs
import json

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.plugin_utils._client_secrets import ClientSecrets, parse_client_secrets

SECRET = "GOCSPX-client-secret-value"
CLIENT = {
    "client_id": "123-abc.apps.googleusercontent.com",
    "project_id": "smail",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "token_uri": "https://oauth2.googleapis.com/token",
    "client_secret": SECRET,
    "redirect_uris": ["http://localhost"],
}


@pytest.mark.parametrize("kind", ["installed", "web"])
def test_console_json(kind):
    parsed = parse_client_secrets(json.dumps({kind: CLIENT}).encode())
    assert parsed == ClientSecrets(client_id=CLIENT["client_id"], client_secret=SECRET, auth_uri=CLIENT["auth_uri"],
                                   token_uri=CLIENT["token_uri"], redirect_uris=("http://localhost",), kind=kind)
    assert SECRET not in repr(parsed)


def test_bom_text_and_missing_fields():
    parsed = parse_client_secrets(codecs.BOM_UTF8 + json.dumps({"installed": {"client_id": "cid", "token_uri": 7}}).encode())
    assert (parsed.client_id, parsed.client_secret, parsed.token_uri, parsed.redirect_uris) == ("cid", None, None, ())
    assert parse_client_secrets('{"installed": {"client_id": "cid"}}').client_id == "cid"


@pytest.mark.parametrize("data, problem", [
    (b'{"installed": {"client_secret": "' + SECRET.encode() + b'"', "not valid JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b'{"other": {"client_secret": "' + SECRET.encode() + b'"}}', "no 'installed' or 'web'"),
    (b'{"installed": {"client_secret": "' + SECRET.encode() + b'"}}', "no client_id"),
    (b'["' + SECRET.encode() + b'"]', "no 'installed' or 'web'"),
])
def test_errors_name_the_option_and_never_the_secret(data, problem):
    with pytest.raises(OptionError) as info:
        parse_client_secrets(data)
    assert info.value.option == "client_secrets_file"
    assert problem in info.value.msg
    assert SECRET not in str(info.value) and info.value.__cause__ is None
