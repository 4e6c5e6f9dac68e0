# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The transcript of a session (like ``smail -d``): every command and reply, with the AUTH exchange and all secrets
read ``*****``.

Its one tie to Ansible is ``_secrets``: every secret the transcript masks is also handed to ansible-core's own masking
where the line has one. This file is private to the collection.
"""

from __future__ import annotations

import smtplib
import socket
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _secrets

if t.TYPE_CHECKING:
    from _typeshed import ReadableBuffer


MASK = "*****"


class Transcript:
    """Commands (``C:``) and replies (``S:``) of one session, with every registered secret masked."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._secrets: set[str] = set()

    def add_secret(self, secret: t.Any) -> None:
        """Mask ``secret`` wherever it would appear from now on (shorter strings are ignored as too common).

        A service account key (a mapping) registers its private key and key ID; other non-strings are ignored.
        """
        if isinstance(secret, t.Mapping):
            for field in ("private_key", "private_key_id"):
                self.add_secret(secret.get(field))
            return
        if isinstance(secret, str) and len(secret) >= 4:
            self._secrets.add(secret)
            _secrets.register(secret)

    @property
    def secrets(self) -> frozenset[str]:
        """Every secret registered so far, for callers that mask output of their own."""
        return frozenset(self._secrets)

    def mask(self, text: str) -> str:
        """``text`` with every registered secret replaced by the mask."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def client(self, line: str) -> None:
        self.lines.append("C: " + self.mask(line))

    def server(self, code: int, message: str) -> None:
        for part in (message or "").splitlines() or [""]:
            self.lines.append(f"S: {code} {self.mask(part)}")

    def note(self, text: str) -> None:
        self.lines.append("-- " + self.mask(text))


class _TranscribingMixin:
    """Records every line smtplib sends or receives; lines sent during SASL are masked whole."""

    transcript: Transcript
    _host: str  # smtplib's own attribute, not in its stubs
    in_sasl_exchange = False

    def send(self, s: ReadableBuffer | str) -> None:  # noqa: D401 - smtplib's own signature
        if isinstance(s, str):
            for line in s.splitlines():
                if self.in_sasl_exchange:
                    words = line.split(" ", 2)
                    if words[0].upper() == "AUTH":
                        shown = " ".join(words[:2] + [MASK] if len(words) > 2 else words)
                    else:
                        shown = MASK if line else ""
                    self.transcript.client(shown)
                else:
                    self.transcript.client(line)
        return super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        code, message = super().getreply()  # type: ignore[misc]
        self.transcript.server(code, message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message))
        return code, message


class TranscribedSMTP(_TranscribingMixin, smtplib.SMTP):
    #: Called with the connected socket before the greeting is read; it may raise to give up on the connection.
    before_greeting: t.Callable[[socket.socket], None] | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]  # smtplib's own, not in its stubs
        if self.before_greeting is not None:
            try:
                self.before_greeting(sock)
            except BaseException:
                sock.close()
                raise
        return sock


class TranscribedSMTPSSL(_TranscribingMixin, smtplib.SMTP_SSL):
    pass
