# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SASL for SMTP AUTH: the initial client responses of XOAUTH2, OAUTHBEARER and PLAIN, and where a session gets its login.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import json
import typing as t


def xoauth2_initial_response(username: str, access_token: str) -> str:
    """The base64 XOAUTH2 initial client response: ``user=U^Aauth=Bearer T^A^A``."""
    raw = f"user={username}\x01auth=Bearer {access_token}\x01\x01"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def oauthbearer_initial_response(username: str, access_token: str, *, host: str, port: int) -> str:
    """The base64 OAUTHBEARER (RFC 7628) initial response: ``n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A``."""
    raw = f"n,a={username},\x01host={host}\x01port={port}\x01auth=Bearer {access_token}\x01\x01"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def plain_initial_response(username: str, password: str) -> str:
    """The base64 PLAIN (RFC 4616) response: ``\\0user\\0password``."""
    return base64.b64encode(f"\x00{username}\x00{password}".encode("utf-8")).decode("ascii")


def decode_error_challenge(challenge: str) -> dict[str, t.Any] | None:
    """The JSON error a server sends as a 334 challenge after a rejected bearer token, if it is one."""
    try:
        decoded = json.loads(base64.b64decode(challenge.strip(), validate=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


class SASLLogin(t.NamedTuple):
    """The SASL mechanism and what it presents: an access token (bearer mechanisms) or a password."""

    mechanism: str
    username: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:
        return f"SASLLogin(mechanism={self.mechanism!r}, username={self.username!r})"


class LoginSource(t.Protocol):
    """Where a session gets its SASL login, and a new one after the server refused a bearer token."""

    def login(self) -> SASLLogin:
        """The login to present."""

    def renew(self) -> SASLLogin | None:
        """A login with a new token after a refusal, or None when a new one cannot help (refused right after a refresh)."""


class StaticLogin:
    """A login that cannot be renewed: a password, no AUTH, or an access token given as is."""

    def __init__(self, value: SASLLogin) -> None:
        self.value = value

    def login(self) -> SASLLogin:
        return self.value

    def renew(self) -> SASLLogin | None:
        return None
