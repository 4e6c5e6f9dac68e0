# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a failed SMTP step means: the SMTPError for a low-level exception, with the hint that helps.

Imported by :class:`_smtp_session.SMTPSession` on its first failure, so a send that succeeds never loads it.
This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.endpoint import SMTPEndpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.replies import SMTPError, reply_text

_TIMEOUTS = (socket.timeout, TimeoutError)  # distinct classes before Python 3.10
#: getaddrinfo's answers for a name that does not exist, or has no address: a retry asks the same resolver again.
_UNKNOWN_NAME = frozenset(code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None)
#: OpenSSL's reasons for a peer that does not speak the TLS the client expects (plain SMTP, no common version).
_TLS_MISMATCH = frozenset({"WRONG_VERSION_NUMBER", "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"})
#: How long a silent port gets to answer a TLS handshake.
_PROBE_TIMEOUT = 5.0


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
        # A version mismatch is the configuration (secure, port), so it is final; a handshake cut short may not be.
        return SMTPError("smtp_tls", f"TLS with {where} failed: {exc}.", stage=stage,
                         transient=False if getattr(exc, "reason", None) in _TLS_MISMATCH else None,
                         hint="Check secure and port: 'ssl' is implicit TLS (port 465), 'starttls' upgrades a plain "
                              "connection (port 587).")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SMTPError("smtp_connect", f"{where} closed the connection during {stage}: {exc}", stage=stage)
    if isinstance(exc, smtplib.SMTPResponseException):
        return SMTPError("smtp_connect", f"{where} answered {exc.smtp_code} during {stage}: {reply_text(exc.smtp_error)}",
                         stage=stage, details={"smtp_code": exc.smtp_code})
    if isinstance(exc, socket.gaierror) and exc.errno in _UNKNOWN_NAME:
        return SMTPError("smtp_connect", f"Cannot connect to {where}: the host name does not resolve ({exc.strerror}).",
                         stage=stage, transient=False,
                         hint="Check host: the name is unknown to DNS (a typo, or a name only another network's resolver knows).")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return SMTPError("smtp_connect", f"Cannot connect to {where}: {reason}.", stage=stage,
                         hint="Check host, port and the network path (a firewall may block outgoing SMTP).")
    return SMTPError("smtp_connect", f"{where}: {type(exc).__name__}: {exc}", stage=stage)


def silent_greeting(endpoint: SMTPEndpoint, error: SMTPError) -> SMTPError:
    """``error``, a greeting that never came on a plain connection; final ``smtp_tls`` when the port answers TLS instead.

    An implicit-TLS port waits for the client's handshake as the client waits for the greeting: another attempt would
    wait just as long, so the hint comes after the first.
    """
    return expects_implicit_tls(endpoint, waited=endpoint.timeout) or error


def expects_implicit_tls(endpoint: SMTPEndpoint, *, waited: float) -> SMTPError | None:
    """Final ``smtp_tls`` when ``endpoint``, silent for ``waited`` seconds on a plain connection, answers TLS instead."""
    if not _answers_tls(endpoint):
        return None
    return SMTPError("smtp_tls", f"{endpoint.host}:{endpoint.port} sent no SMTP greeting within {waited:g} s "
                     f"but answers a TLS handshake: it expects implicit TLS, not secure={endpoint.secure}.",
                     stage="connect", transient=False,
                     hint="Use secure=ssl with this port (465 is the implicit-TLS port), or secure=starttls with port 587.")


def _answers_tls(endpoint: SMTPEndpoint) -> bool:
    """Whether ``endpoint`` completes a TLS handshake; nothing is sent over it, so its certificate is not checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=min(endpoint.timeout, _PROBE_TIMEOUT)) as raw:
            with context.wrap_socket(raw, server_hostname=endpoint.host):
                return True
    except OSError:  # ssl.SSLError is one: whatever listens there does not speak TLS
        return False
