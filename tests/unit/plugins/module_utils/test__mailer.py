# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The send path end to end: a Microsoft send whose rotated refresh token is written back into the token INI."""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.smail.xoauth2.plugins.module_utils import _mailer, _smtp, _token_ini


def write(tmp_path: Path, data: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "smail_refresh_token.ini"
    path.write_bytes(data)
    path.chmod(mode)
    return path


def microsoft_token_ini(settings, tmp_path) -> Path:
    text = "\r\n".join([
        "[OAUTH]",
        f"Account={settings['microsoft_account']}",
        f"ClientID={settings['microsoft_client_id']}",
        f"ClientSecret={settings['microsoft_client_secret']}",
        f"RefreshToken={settings['microsoft_refresh_token']}",
        f"TokenURI={settings['microsoft_token_uri']}",
        "",
    ])
    return write(tmp_path, text.encode("cp932"))


def test_microsoft_send_persists_the_rotated_token(settings, tmp_path):
    path = microsoft_token_ini(settings, tmp_path)
    before = path.read_bytes()
    options = {"provider": "microsoft", "tenant": "contoso.example", "token_ini": str(path), "persist_rotated_token": True,
               "token_cache_dir": str(tmp_path / "cache"), "host": settings["host"], "port": settings["smtp_starttls_port"],
               "ca_path": settings["ca_path"], "timeout": 10}
    spec = _smtp.MessageSpec(sender=settings["microsoft_account"], to=("ops@example.com",), subject="rotation")

    delivery = _mailer.deliver(options, spec)

    assert delivery.result["sent"] and delivery.result["refresh_token_rotated"] is True
    assert delivery.warnings == []
    new_token = _token_ini.DEFAULT_LAYOUT.read(path.read_bytes())["refresh_token"]
    assert new_token != settings["microsoft_refresh_token"]
    assert path.read_bytes() == before.replace(settings["microsoft_refresh_token"].encode(), new_token.encode())
    assert new_token in delivery.secrets
    last = json.loads(Path(settings["token_log"]).read_text(encoding="utf-8").splitlines()[-1])
    assert (last["tenant"], last["scope"]) == ("contoso.example", "https://outlook.office.com/SMTP.Send offline_access")

    # The access token was cached under the new refresh token too: the next send refreshes nothing.
    again = _mailer.deliver(options, spec)
    assert again.result["token_source"] == "cache" and "refresh_token_rotated" not in again.result


def test_microsoft_check_mode_leaves_the_file(settings, tmp_path):
    path = microsoft_token_ini(settings, tmp_path)
    before = path.read_bytes()
    options = {"provider": "microsoft", "tenant": "contoso.example", "token_ini": str(path), "persist_rotated_token": True,
               "token_cache": False, "host": settings["host"], "port": settings["smtp_starttls_port"],
               "ca_path": settings["ca_path"], "timeout": 10}
    spec = _smtp.MessageSpec(sender=settings["microsoft_account"], to=("ops@example.com",), subject="check")
    delivery = _mailer.deliver(options, spec, check_only=True)
    assert delivery.result["refresh_token_rotated"] is True and not delivery.result["sent"]
    assert path.read_bytes() == before


def test_a_rotated_token_that_cannot_be_stored_is_a_warning_not_a_failure(settings, tmp_path):
    options = {"provider": "microsoft", "tenant": "contoso.example", "client_id": settings["microsoft_client_id"],
               "client_secret": settings["microsoft_client_secret"], "refresh_token": settings["microsoft_refresh_token"],
               "token_uri": settings["microsoft_token_uri"], "persist_rotated_token": True, "token_cache": False,
               "host": settings["host"], "port": settings["smtp_starttls_port"], "ca_path": settings["ca_path"], "timeout": 10}
    spec = _smtp.MessageSpec(sender=settings["microsoft_account"], to=("ops@example.com",), subject="warning")
    delivery = _mailer.deliver(options, spec)
    assert delivery.result["sent"] and len(delivery.warnings) == 1 and "token_ini" in delivery.warnings[0]
