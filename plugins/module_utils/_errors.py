# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Errors as values: every failure of the collection carries a stable code, one of :data:`CODES`.

This file is private to the collection and has no Ansible imports. A task result is made from an error in one place,
``_task_result.TaskResult.from_error``.
"""

from __future__ import annotations

import typing as t

#: Every ``error`` code the collection returns, with what it means in one line. docs/troubleshooting.md documents each
#: (cause and fix), and the RETURN docs of the modules name them; tests/unit/docs/test_troubleshooting.py keeps the
#: three and the code that raises them in step.
CODES: dict[str, str] = {
    # the token endpoint (OAuth error answers of RFC 6749 section 5.2 that keep their name, then the collection's own)
    "invalid_grant": "the refresh token, code or assertion was refused (expired, revoked, used)",
    "invalid_client": "the token endpoint does not know the client or refused its credential",
    "unauthorized_client": "the client may not use this grant",
    "invalid_scope": "the token endpoint refused the scopes",
    "invalid_request": "Entra ID refused the client credentials request (most often the tenant)",
    "token_endpoint_error": "another OAuth error answer of the token endpoint",
    "token_endpoint_unavailable": "the token endpoint answered 5xx, 408 or 429, now or a moment ago",
    "token_endpoint_unreachable": "the token endpoint could not be reached (DNS, connect, proxy)",
    "token_endpoint_tls": "the token endpoint's certificate is not trusted",
    "token_endpoint_bad_response": "the answer was no OAuth token response",
    "token_endpoint_redirect": "the token endpoint answered with a redirect, which is never followed",
    "token_cache": "the token cache directory or its lock could not be created or opened",
    "token_cache_insecure": "the token cache belongs to another user or others may write to it",
    "token_ini_write": "the rotated refresh token could not be written to the token INI",
    "missing_library": "a Python library is missing where the task runs",
    # the SMTP session
    "smtp_connect": "the SMTP server could not be reached",
    "smtp_tls": "TLS with the SMTP server failed or its certificate is not trusted",
    "smtp_timeout": "the SMTP server did not answer in time",
    "smtp_auth": "the SMTP server refused the login",
    "basic_auth_disabled": "Exchange Online refused a password login: Basic authentication is off",
    "sender_refused": "the SMTP server refused MAIL FROM",
    "recipients_refused": "the SMTP server refused every recipient",
    "recipients_deferred": "a recipient was still deferred after the retries",
    "data_refused": "the SMTP server refused the message",
    "message_too_large": "the message is larger than the server's SIZE",
    "smtputf8_unsupported": "an address is not ASCII and the server lacks SMTPUTF8",
    "delivery_unknown": "the connection was lost after the message was sent",
    # the spool
    "spool_write": "the spool could not be created or written",
    "spool_read": "the spool could not be read",
    "spool_lock": "the spool needs file locks, which the system lacks",
    "spool_insecure": "the spool belongs to another user or others may write to it",
    # files the collection keeps for itself
    "insecure_path": "a private file or directory belongs to another user or others may write to it",
    # input and the INI actions
    "invalid_option": "bad input, found before anything was sent or written",
    "missing_collection": "a collection the task needs on this host is not installed",
    "dest_missing": "no file at dest and create is false",
    "read_failed": "dest could not be read on the host",
    "write_failed": "dest could not be written on the host",
    # the consent (authorize)
    "access_denied": "the user refused consent",
    "authorization_error": "the authorization endpoint answered with an error",
    "state_mismatch": "the redirect was not for this consent",
    "redirect_uri_mismatch": "the token endpoint does not accept the loopback redirect URI",
    "timeout": "nobody finished the consent in time",
    "device_access_denied": "access was refused at the verification address",
    "device_code_expired": "the device code expired before access was allowed",
    "no_refresh_token": "the endpoint issued no refresh token",
    "pending_store": "the store of pending authorizations could not be created or written",
    "pending_store_insecure": "the store of pending authorizations belongs to another user or others may write to it",
}


class SmailError(Exception):
    """A failure with a stable machine-readable ``code``, a human ``msg`` and an optional ``hint``.

    ``details`` holds extra result fields (never secrets) that callers merge into a task result.
    """

    def __init__(self, code: str, msg: str, *, hint: str | None = None, details: dict[str, t.Any] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.hint = hint
        self.details = dict(details or {})

    @property
    def full_msg(self) -> str:
        """The message followed by the hint, as shown to a user."""
        return f"{self.msg} Hint: {self.hint}" if self.hint else self.msg

    def __str__(self) -> str:
        return f"{self.code}: {self.full_msg}"


class OptionError(SmailError):
    """Bad input, found before anything was sent or written; names the option and the problem."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__("invalid_option", f"Option '{option}': {problem}", details={"option": option})
        self.option = option
        self.problem = problem


class MissingLibraryError(SmailError):
    """A Python library the refresh needs is not installed where it runs; ``library`` is its name on PyPI.

    A task result tells it as ansible-core does (``TaskResult.from_error``); the consent of ``authorize``, which runs on
    the controller only, raises ``missing_library`` with its own message.
    """

    def __init__(self, library: str, exc: ImportError) -> None:
        super().__init__("missing_library", f"The Python library {library} is required to refresh an access token: {exc}",
                         details={"library": library})
        self.library = library
