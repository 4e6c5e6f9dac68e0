# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What SMTP replies mean."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import replies as _smtp_replies
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import session as _smtp_session


def decoded(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8")


class TestReplyClasses:
    @pytest.mark.parametrize(("code", "text", "expected"), [
        (535, "5.7.8 Username and Password not accepted.", (5, 7, 8)),
        (454, "4.7.0 Temporary authentication failure", (4, 7, 0)),
        (550, "4.7.1 broken server", None),  # the class must agree with the reply code (RFC 2034 section 4)
        (452, "Too many recipients", None),
        (250, "2.1.5 OK", (2, 1, 5)),
    ])
    def test_enhanced_status(self, code, text, expected):
        assert _smtp_replies.enhanced_status(code, text) == expected

    @pytest.mark.parametrize(("code", "text", "expected"), [
        (452, "4.5.3 Too many recipients", True),
        (452, "Too many recipients", True),
        (552, "5.5.3 Too many recipients", True),
        (552, "Too many recipients", True),
        (552, "4.5.3 mixed classes", True),  # the broken enhanced code is ignored: 552 at RCPT is read as 452
        (452, "4.2.2 Mailbox full", False),  # deferred, like any 4xx
        (552, "5.2.2 Mailbox full", False),  # refused: the enhanced code names the reason
        (451, "4.3.0 Try later", False),
    ])
    def test_too_many_recipients(self, code, text, expected):
        assert _smtp_replies.too_many_recipients(code, text) is expected

    @pytest.mark.parametrize("mechanism", ["xoauth2", "plain"])
    def test_a_temporary_auth_failure_does_not_blame_the_credentials(self, mechanism):
        temporary = _smtp_session._auth_hint(mechanism, 454, "4.7.0 Temporary authentication failure")
        final = _smtp_session._auth_hint(mechanism, 535, "5.7.8 Username and Password not accepted")
        assert "later" in temporary and "check" not in temporary.lower()
        assert "check" in final.lower()

    def test_auth_over_clear_text_gets_the_tls_hint(self):
        assert "secure" in _smtp_session._auth_hint("plain", 538, "5.7.11 Encryption required for requested authentication mechanism")
