# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SASL initial responses of the SMTP core."""

from __future__ import annotations

import base64

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import sasl as _smtp_sasl


def decoded(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8")


class TestSASL:
    def test_xoauth2(self):
        assert decoded(_smtp_sasl.xoauth2_initial_response("u@example.com", "tok")) == "user=u@example.com\x01auth=Bearer tok\x01\x01"

    def test_oauthbearer(self):
        raw = decoded(_smtp_sasl.oauthbearer_initial_response("u@example.com", "tok", host="smtp.example.com", port=587))
        assert raw == "n,a=u@example.com,\x01host=smtp.example.com\x01port=587\x01auth=Bearer tok\x01\x01"

    def test_plain(self):
        assert decoded(_smtp_sasl.plain_initial_response("u", "p")) == "\x00u\x00p"

    def test_error_challenge(self):
        challenge = base64.b64encode(b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}').decode()
        assert _smtp_sasl.decode_error_challenge(challenge)["status"] == "400"
        assert _smtp_sasl.decode_error_challenge("not base64!") is None
