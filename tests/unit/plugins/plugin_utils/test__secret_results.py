# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.smail.xoauth2.plugins.plugin_utils import _secret_results


def test_a_result_with_a_token_is_hidden_and_the_rest_shown_at_v(monkeypatch):
    shown = []
    monkeypatch.setattr(_secret_results.display, "v", shown.append)
    result = {"changed": False, "access_token": "ya29.secret", "expires_in": 3599, "invocation": {"module_args": {}},
              "_ansible_parsed": True}

    assert _secret_results.hide_from_output(result, label="host: x") is result

    assert result["_ansible_no_log"] is True and result["access_token"] == "ya29.secret"
    assert shown == ['host: x: {"changed": false, "expires_in": 3599} (tokens hidden)']


def test_a_result_without_a_token_is_shown(monkeypatch):
    shown = []
    monkeypatch.setattr(_secret_results.display, "v", shown.append)
    result = {"failed": True, "error": "invalid_grant", "refresh_token": None}
    assert "_ansible_no_log" not in _secret_results.hide_from_output(result, label="x")
    assert not shown
