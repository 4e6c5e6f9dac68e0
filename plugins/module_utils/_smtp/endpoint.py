# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where and how to connect: host, port, TLS mode and certificate checks, and the settings refused before any connection.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import ssl
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._net import has_blank_or_control, is_loopback
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.replies import SMTPError
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.sasl import (
    SASLLogin,
)

SECURE_MODES = ("ssl", "starttls", "never")
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "never": 25}
AUTH_MECHANISMS = ("xoauth2", "oauthbearer", "plain", "login", "none")


class SMTPEndpoint(t.NamedTuple):
    """Where and how to connect."""

    host: str
    port: int
    secure: str = "ssl"
    timeout: float = 30.0
    validate_certs: bool = True
    ca_path: str | None = None
    ehlohost: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server certificate and host name unless told not to.

        A ``ca_path`` that is not a readable CA bundle is SMTPError ``invalid_option``, final: no retry can fix it.
        """
        try:
            context = ssl.create_default_context(cafile=self.ca_path) if self.ca_path else ssl.create_default_context()
        except OSError as exc:  # ssl.SSLError is one: a file without a certificate in it
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
            raise SMTPError("invalid_option", f"Option 'ca_path': cannot load {self.ca_path!r} as CA certificates ({reason}).",
                            stage="tls", transient=False, details={"option": "ca_path"},
                            hint="Set ca_path to a readable PEM file of the CA certificates to trust.") from None
        if not self.validate_certs:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def validate_connection(endpoint: SMTPEndpoint, login: SASLLogin) -> None:
    """Refuse settings that would send credentials in clear text or make no sense; raise OptionError."""
    if endpoint.secure not in SECURE_MODES:
        raise OptionError("secure", f"must be one of {', '.join(SECURE_MODES)}")
    if login.mechanism not in AUTH_MECHANISMS:
        raise OptionError("auth", f"must be one of {', '.join(AUTH_MECHANISMS)}")
    if not endpoint.host:
        raise OptionError("host", "is required (no provider default applies)")
    if not 0 < endpoint.port < 65536:
        raise OptionError("port", f"{endpoint.port} is not a TCP port")
    ehlohost = endpoint.ehlohost or ""
    if not ehlohost.isascii() or has_blank_or_control(ehlohost):
        # RFC 5321 section 4.1.1.1: EHLO takes a domain or an address literal, ASCII without blanks.
        raise OptionError("ehlohost", "must be an ASCII host name or address literal, without blanks, line breaks or "
                                      "control characters (an IDN in its xn-- form)")
    if endpoint.secure == "never" and login.mechanism != "none" and not is_loopback(endpoint.host):
        raise OptionError("secure", "'never' sends credentials in clear text; it is allowed only to a loopback host or with auth=none")
    if login.mechanism != "none" and not login.username:
        raise OptionError("username", f"is required for auth={login.mechanism}")
    if login.mechanism != "none" and not login.secret:
        option = "password" if login.mechanism in ("plain", "login") else "access_token"
        raise OptionError(option, f"is required for auth={login.mechanism}")
