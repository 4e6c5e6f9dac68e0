# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a failed SMTP step means: the SMTPError for a low-level exception, with the hint that helps.

Imported by :class:`_smtp.SMTPSession` on its first failure, so a send that succeeds never loads it.
This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import SMTPEndpoint, SMTPError, reply_text

_TIMEOUTS = (socket.timeout, TimeoutError)  # distinct classes before Python 3.10


def explain(exc: BaseException, *, endpoint: SMTPEndpoint, mask: t.Callable[[str], str], stage: str,
            after_final_dot: bool = False) -> SMTPError:
    """The SMTPError for ``exc`` during ``stage``; ``mask`` hides secrets in the exception's text."""
    where = f"{endpoint.host}:{endpoint.port}"
    if after_final_dot:
        return SMTPError(
            "delivery_unknown",
            f"The connection to {where} was lost after the message was sent, before the server confirmed it "
            f"({type(exc).__name__}: {mask(str(exc))}). The message may have been delivered.",
            stage=stage, may_have_been_delivered=True,
            hint="Check the recipient's mailbox before sending again, or a retry may deliver it twice.",
        )
    # smtplib reports a read timeout as a disconnect; the timeout is its context.
    if isinstance(exc, _TIMEOUTS) or isinstance(exc.__context__, _TIMEOUTS):
        if stage == "connect" and endpoint.secure != "ssl":
            return SMTPError("smtp_timeout", f"{where} sent no SMTP greeting within {endpoint.timeout:g} s.",
                             stage=stage, hint="A port that expects implicit TLS (465) waits silently for a TLS "
                                               "handshake: use secure=ssl there, or check the port.")
        return SMTPError("smtp_timeout", f"No answer from {where} within {endpoint.timeout:g} s during {stage}.",
                         stage=stage, hint="Raise timeout, or check that the port speaks SMTP with the chosen secure mode.")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SMTPError("smtp_tls", f"The certificate of {where} could not be verified: {exc.verify_message}.",
                         stage=stage, transient=False,
                         hint="Set ca_path to the CA bundle that signed it; validate_certs=false is for tests only.")
    if isinstance(exc, ssl.SSLError):
        return SMTPError("smtp_tls", f"TLS with {where} failed: {exc}.", stage=stage,
                         hint="Check secure: 'ssl' is implicit TLS (port 465), 'starttls' upgrades a plain connection (port 587).")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SMTPError("smtp_connect", f"{where} closed the connection during {stage}: {exc}", stage=stage)
    if isinstance(exc, smtplib.SMTPResponseException):
        return SMTPError("smtp_connect", f"{where} answered {exc.smtp_code} during {stage}: {reply_text(exc.smtp_error)}",
                         stage=stage, details={"smtp_code": exc.smtp_code})
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return SMTPError("smtp_connect", f"Cannot connect to {where}: {reason}.", stage=stage,
                         hint="Check host, port and the network path (a firewall may block outgoing SMTP).")
    return SMTPError("smtp_connect", f"{where}: {type(exc).__name__}: {exc}", stage=stage)
