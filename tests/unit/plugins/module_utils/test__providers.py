# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The provider registry, and every copy of its lists in docs, argspecs and role specs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ansible_collections.smail.xoauth2.plugins.doc_fragments.oauth2 import ModuleDocFragment as OAuth2Fragment
from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._options import OAUTH2_ARGSPEC

ROOT = Path(__file__).resolve().parents[4]
LISTS = {"provider": list(_providers.PROVIDER_NAMES), "grant": list(_providers.GRANTS)}


def module_documentation(path: Path) -> dict:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    return {}


def role_options(spec: dict) -> list[tuple[str, dict]]:
    found = []
    for entry in spec.get("argument_specs", {}).values():
        for name, option in (entry.get("options") or {}).items():
            found.append((name, option))
            found.extend(role_options({"argument_specs": {"_": {"options": option.get("options") or {}}}}))
    return found


def copies():
    """(where, option name, choices) of every option that lists providers or grants."""
    found = [("OAUTH2_ARGSPEC", name, OAUTH2_ARGSPEC[name].get("choices")) for name in LISTS]
    fragment = yaml.safe_load(OAuth2Fragment.DOCUMENTATION)["options"]
    found += [("doc fragment oauth2", name, fragment[name].get("choices")) for name in LISTS]
    for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        for name, option in (module_documentation(path).get("options") or {}).items():
            if name in LISTS:
                found.append((path.name, name, option.get("choices")))
    for path in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        for name, option in role_options(yaml.safe_load(path.read_text(encoding="utf-8"))):
            for listed in LISTS:
                if name == listed or name.endswith("_" + listed):
                    found.append((str(path.relative_to(ROOT)), name, option.get("choices")))
    return found


def test_every_copy_of_the_lists_matches_the_registry():
    found = copies()
    assert any(entry[0].startswith("roles/") for entry in found), "the role specs list providers"
    for where, name, choices in found:
        listed = "grant" if name.endswith("grant") else "provider"
        assert choices == LISTS[listed], f"{where}: {name} choices {choices} differ from the registry {LISTS[listed]}"


def test_grants_per_provider():
    assert _providers.get_provider("google").grants == ("refresh_token", "service_account")
    assert _providers.get_provider("microsoft").grants == ("refresh_token", "client_credentials")
    with pytest.raises(OptionError) as info:
        _providers.check_grant(_providers.get_provider("google"), "client_credentials")
    assert info.value.option == "grant"
    with pytest.raises(OptionError) as info:
        _providers.get_provider("yahoo")
    assert info.value.option == "provider"


def test_app_tokens_need_a_tenant():
    microsoft = _providers.get_provider("microsoft")
    with pytest.raises(OptionError) as info:
        microsoft.endpoint("token_uri", explicit=None, tenant=None, grant="client_credentials")
    assert info.value.option == "tenant"
    assert microsoft.endpoint("token_uri", explicit=None, tenant="contoso.example", grant="client_credentials") == (
        "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token")
    assert microsoft.endpoint("token_uri", explicit=None, tenant=None).endswith("/common/oauth2/v2.0/token")
    with pytest.raises(OptionError) as info:
        microsoft.endpoint("token_uri", explicit="http://login.example.com/t", tenant=None)
    assert info.value.option == "token_uri"


@pytest.mark.parametrize("provider, reply, phrase", [
    ("microsoft", "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", "Set-CASMailbox"),
    ("microsoft", "535 5.7.3 Authentication unsuccessful", "SMTP.SendAsApp"),
    ("microsoft", "530 5.7.57 Client not authenticated to send mail.", "starttls"),
    ("google", "535-5.7.8 Username and Password not accepted.", "domain-wide delegation"),
    ("google", 'challenge {"status":"400","schemes":"Bearer"}', "https://mail.google.com/"),
])
def test_reply_hints(provider, reply, phrase):
    assert phrase in (_providers.get_provider(provider).reply_hint(reply) or "")


def test_describe_feeds_the_roles():
    info = _providers.describe("microsoft")
    assert (info["smtp_host"], info["smtp_port"], info["smtp_secure"]) == ("smtp.office365.com", 587, "starttls")
    assert _providers.describe("custom")["smtp_host"] is None


@pytest.mark.parametrize("reply", [
    "550 5.7.30 Basic authentication is not supported for Client Submission",
    "550 5.7.30 Basic authentication is not supported for Client Submission.",
])
def test_a_status_code_marker_matches_the_whole_code(reply):
    entry = _providers.get_provider("microsoft").reply_entry(reply)
    assert entry is not None and entry.marker == "5.7.30"
    assert entry.code == "basic_auth_disabled"
    assert "xoauth2" in entry.hint and "docs/migration.md" in entry.hint
    assert "SMTP.SendAsApp" not in entry.hint


@pytest.mark.parametrize("reply, marker", [
    ("535 5.7.3 Authentication unsuccessful", "5.7.3"),
    ("535 5.7.3. Authentication unsuccessful", "5.7.3"),
    ("501 5.5.127 The token expires too soon", "5.5.127"),
    ("535 5.7.139 Authentication unsuccessful", "5.7.139"),
])
def test_status_code_markers(reply, marker):
    entry = _providers.get_provider("microsoft").reply_entry(reply)
    assert entry is not None and entry.marker == marker


def test_microsoft_renews_tokens_ten_minutes_before_expiry():
    # High Volume Email refuses a token with less than 10 minutes left (501 5.5.127).
    assert _providers.get_provider("microsoft").token_expiry_margin >= 600
    assert _providers.get_provider("google").token_expiry_margin == _providers.DEFAULT_TOKEN_EXPIRY_MARGIN


@pytest.mark.parametrize("provider, reply", [
    ("google", "535-5.7.8 Username and Password not accepted. For more information, go to 5.7.8 https://support.google.com/mail/?p=BadCredentials"),
    ("microsoft", "535 5.7.3 Authentication unsuccessful"),
    ("custom", "535-5.7.8 Username and Password not accepted."),
])
@pytest.mark.parametrize("mechanism", ["plain", "login"])
def test_a_password_login_gets_the_password_hint_not_the_tokens(provider, reply, mechanism):
    hint = _providers.get_provider(provider).reply_hint(reply, mechanism=mechanism) or ""
    assert "app password" in hint
    assert "token" not in hint and "delegation" not in hint and "SMTP.SendAsApp" not in hint


def test_the_mailer_names_the_password_for_a_refused_plain_login():
    from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer  # pylint: disable=import-outside-toplevel
    from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import replies as _smtp_replies  # pylint: disable=import-outside-toplevel

    refused = _smtp_replies.SMTPError("smtp_auth", "The server refused AUTH PLAIN for a@gmail.com: 535 5.7.8 Username and Password "
                                      "not accepted.", stage="auth", hint="generic")
    hinted = _mailer.add_provider_hint({"provider": "google", "auth": "plain"}, refused)
    assert "app password" in hinted.hint and "token" not in hinted.hint
