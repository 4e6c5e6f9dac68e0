# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One SMTP connection driven step by step (connect, tls, ehlo, auth, mail, rcpt, data, quit) by :class:`SMTPSession`;
each failure is an :class:`SMTPError` that names its step and says whether the message may have been delivered.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import base64
import re
import select
import smtplib
import socket
import ssl
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.endpoint import SMTPEndpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.failure import expects_implicit_tls, explain, silent_greeting
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.message import Envelope
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.replies import SMTPError, enhanced_status, reply_text, too_many_recipients
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.sasl import (
    LoginSource,
    SASLLogin,
    decode_error_challenge,
    oauthbearer_initial_response,
    plain_initial_response,
    xoauth2_initial_response,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.transcript import TranscribedSMTP, TranscribedSMTPSSL, Transcript

# The _mime package's 7bit downgrade is imported only to send 8bit data to a server without 8BITMIME, which a
# module process otherwise never compiles (about 1 ms).

#: How long a plain connection waits for the greeting before it checks whether the port expects implicit TLS.
FIRST_GREETING_WAIT = 2.0


class RcptReplies:
    """The server's answers to one round of RCPT TO."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        #: 4xx: may be accepted later.
        self.deferred: dict[str, str] = {}
        #: 452, or a 552 that means the same: not in this transaction, but in a new one at once (RFC 5321 4.5.3.1.10).
        self.too_many: dict[str, str] = {}
        #: 5xx: refused for good.
        self.refused: dict[str, str] = {}


class SMTPSession:
    """One SMTP connection driven step by step; use as a context manager so the socket is always closed.

    Steps: :meth:`connect` (TCP, implicit TLS, greeting), :meth:`ehlo`, :meth:`starttls`, :meth:`authenticate`,
    :meth:`mail_from`, :meth:`rcpt_to`, :meth:`data`, :meth:`quit`. :meth:`open` runs the first four;
    :meth:`transact` runs MAIL, RCPT and DATA for one :class:`Envelope`.
    """

    def __init__(self, endpoint: SMTPEndpoint, login: SASLLogin, *, transcript: Transcript | None = None) -> None:
        self.endpoint = endpoint
        self.login = login
        self.transcript = transcript or Transcript()
        self.transcript.add_secret(login.secret)
        self._smtp: TranscribedSMTP | TranscribedSMTPSSL | None = None
        self._tls_context: ssl.SSLContext | None = None

    # connection plumbing

    def __enter__(self) -> SMTPSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket without QUIT (used after failures)."""
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    @property
    def connected(self) -> bool:
        """False once the connection was closed, by a failure, a 421 or QUIT."""
        return self._smtp is not None and self._smtp.sock is not None

    @property
    def smtp(self) -> TranscribedSMTP | TranscribedSMTPSSL:
        if self._smtp is None:
            raise SMTPError("smtp_connect", "Not connected.", stage="connect")
        return self._smtp

    def _fail(self, exc: BaseException, *, stage: str, after_final_dot: bool = False) -> SMTPError:
        """Translate a low-level failure during ``stage`` into an SMTPError (and close the socket)."""
        self.close()
        # What a failure means is imported with the first failure: a send that succeeds never loads it.

        return explain(exc, endpoint=self.endpoint, mask=self.transcript.mask, stage=stage, after_final_dot=after_final_dot)

    def _command(self, line: str, *, stage: str) -> tuple[int, str]:
        try:
            code, message = self.smtp.docmd(line)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage=stage) from None
        self._closed_by(code)
        return code, reply_text(message)

    def _closed_by(self, code: int) -> None:
        # 421: the server closes the channel (RFC 5321 section 3.8); nothing more can be said on it.
        if code == 421:
            self.close()

    # steps

    def connect(self) -> None:
        """TCP connect (with implicit TLS for ``ssl``) and read the greeting.

        The TLS context is made first, so a bad ``ca_path`` fails before any connection. A greeting that never comes
        on a port that answers a TLS handshake instead is final ``smtp_tls``: the port expects implicit TLS.
        """
        endpoint = self.endpoint
        if endpoint.secure != "never":
            self._tls_context = endpoint.ssl_context()
        self.transcript.note(f"connect {endpoint.host}:{endpoint.port} ({endpoint.secure})")
        stage = "tls" if endpoint.secure == "ssl" else "connect"
        try:
            if endpoint.secure == "ssl":
                smtp: TranscribedSMTP | TranscribedSMTPSSL = TranscribedSMTPSSL(local_hostname=endpoint.ehlohost, timeout=endpoint.timeout,
                                                                                context=self._tls_context)
            else:
                smtp = TranscribedSMTP(local_hostname=endpoint.ehlohost, timeout=endpoint.timeout)
                smtp.before_greeting = self._refuse_an_implicit_tls_port
            smtp.transcript = self.transcript
            smtp._host = endpoint.host  # pylint: disable=protected-access  # smtplib checks the certificate against it
            self._smtp = smtp
            code, greeting = smtp.connect(endpoint.host, endpoint.port)
        except ssl.SSLError as exc:
            raise self._fail(exc, stage=stage) from None
        except (OSError, smtplib.SMTPException) as exc:
            error = self._fail(exc, stage="connect")
            # smtplib reports a greeting that timed out as a disconnect; a TCP connect that timed out is not one.
            if endpoint.secure != "ssl" and error.code == "smtp_timeout" and isinstance(exc, smtplib.SMTPServerDisconnected):

                error = silent_greeting(endpoint, error)
            raise error from None
        except ValueError as exc:  # UnicodeError from the IDNA codec: an empty or overlong label, a stray character
            self.close()
            raise SMTPError("invalid_option", f"Option 'host': {endpoint.host!r} is not a host name ({exc}).", stage="connect",
                            transient=False, details={"option": "host"}) from None
        if code != 220:
            self.close()
            raise SMTPError("smtp_connect", f"{endpoint.host}:{endpoint.port} refused the session in its greeting: "
                            f"{code} {reply_text(greeting)}", stage="connect", details={"smtp_code": code})

    def _refuse_an_implicit_tls_port(self, sock: socket.socket) -> None:
        """Final ``smtp_tls`` at once for a plain connection to a port that waits for a TLS handshake (465).

        Such a port says nothing, as a slow server does: after :data:`FIRST_GREETING_WAIT` without a greeting, a
        second connection tries a TLS handshake. A port that answers it fails now; any other keeps its whole timeout.
        """
        wait = min(FIRST_GREETING_WAIT, self.endpoint.timeout)
        if select.select([sock], [], [], wait)[0]:
            return

        error = expects_implicit_tls(self.endpoint, waited=wait)
        if error is not None:
            self.transcript.note(f"no greeting within {wait:g} s, and the port answers TLS: implicit TLS expected")
            raise error

    def ehlo(self) -> None:
        """EHLO; the server's extensions are then in ``self.smtp.esmtp_features``."""
        try:
            code, message = self.smtp.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="ehlo") from None
        if code != 250:
            self.close()
            raise SMTPError("smtp_connect", f"The server refused EHLO: {code} {reply_text(message)}", stage="ehlo",
                            details={"smtp_code": code})

    def starttls(self) -> None:
        """Upgrade to TLS (verifying the certificate) and say EHLO again, as RFC 3207 requires."""
        if not self.smtp.has_extn("starttls"):
            self.close()
            raise SMTPError("smtp_tls", f"{self.endpoint.host}:{self.endpoint.port} does not offer STARTTLS.", stage="tls",
                            transient=False, hint="Use secure=ssl for implicit TLS (port 465), or check the port.")
        try:
            code, message = self.smtp.starttls(context=self._tls_context or self.endpoint.ssl_context())
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="tls") from None
        if code != 220:
            self.close()
            raise SMTPError("smtp_tls", f"The server refused STARTTLS: {code} {reply_text(message)}", stage="tls",
                            details={"smtp_code": code})
        self.ehlo()

    def authenticate(self) -> None:
        """Run the SASL exchange of ``login.mechanism``; raise SMTPError ``smtp_auth`` with the server's text."""
        login = self.login
        if login.mechanism == "none":
            return
        mechanism = login.mechanism.upper()
        offered = (self.smtp.esmtp_features.get("auth") or "").upper().split()
        if mechanism not in offered:
            self.close()
            raise SMTPError("smtp_auth", f"The server does not offer AUTH {mechanism} (it offers: {' '.join(offered) or 'no AUTH'}).",
                            stage="auth", hint="Check auth and secure: many servers offer AUTH only after TLS.")
        username, secret = login.username or "", login.secret or ""
        if login.mechanism == "xoauth2":
            initial, abort_answer = xoauth2_initial_response(username, secret), ""
        elif login.mechanism == "oauthbearer":
            initial = oauthbearer_initial_response(username, secret, host=self.endpoint.host, port=self.endpoint.port)
            abort_answer = base64.b64encode(b"\x01").decode("ascii")
        elif login.mechanism == "plain":
            initial, abort_answer = plain_initial_response(username, secret), "*"
        else:
            initial, abort_answer = "", "*"
        self.transcript.add_secret(initial)
        challenge = None
        self.smtp.in_sasl_exchange = True
        try:
            if login.mechanism == "login":
                code, reply = self._login_exchange(username, secret)
            else:
                code, reply = self._command(f"AUTH {mechanism} {initial}", stage="auth")
                if code == 334:
                    # A bearer-token server reports the rejection as a challenge and waits for the client to end the exchange.
                    challenge = decode_error_challenge(reply)
                    code, reply = self._command(abort_answer, stage="auth")
        finally:
            if self._smtp is not None:
                self.smtp.in_sasl_exchange = False
        if code != 235:
            self.close()
            details: dict[str, t.Any] = {"smtp_code": code}
            if login.mechanism in ("xoauth2", "oauthbearer") and challenge:
                details["auth_challenge"] = challenge
            raise SMTPError("smtp_auth", f"The server refused AUTH {mechanism} for {username}: {code} {self.transcript.mask(reply)}",
                            stage="auth", details=details, hint=_auth_hint(login.mechanism, code, reply))

    def _login_exchange(self, username: str, password: str) -> tuple[int, str]:
        encoded_user = base64.b64encode(username.encode("utf-8")).decode("ascii")
        encoded_password = base64.b64encode(password.encode("utf-8")).decode("ascii")
        self.transcript.add_secret(encoded_password)
        code, reply = self._command("AUTH LOGIN", stage="auth")
        for answer in (encoded_user, encoded_password):
            if code != 334:
                break
            code, reply = self._command(answer, stage="auth")
        return code, reply

    def open(self) -> None:
        """Connect, EHLO, STARTTLS when asked, and authenticate."""
        self.connect()
        self.ehlo()
        if self.endpoint.secure == "starttls":
            self.starttls()
        self.authenticate()

    def open_with(self, logins: LoginSource) -> None:
        """:meth:`open` with ``logins.login()``; when the server refuses that bearer token, once more with a renewed one.

        A token can be revoked on the server side (password change, admin action) long before it expires; only a
        new token helps then, and a token refused right after its refresh is final.
        """
        self.login = logins.login()
        self.transcript.add_secret(self.login.secret)
        try:
            self.open()
        except SMTPError as exc:
            if exc.code != "smtp_auth" or exc.transient or self.login.mechanism not in ("xoauth2", "oauthbearer"):
                raise
            renewed = logins.renew()
            if renewed is None:
                raise
            self.transcript.note("the server refused the access token: trying once more with a refreshed one")
            self.close()
            self.login = renewed
            self.transcript.add_secret(renewed.secret)
            self.open()

    def mail_from(self, sender: str, options: t.Sequence[str] = ()) -> None:
        """MAIL FROM with ESMTP ``options``; a refusal is ``sender_refused``."""
        try:
            code, message = self.smtp.mail(sender, list(options))
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="mail") from None
        self._closed_by(code)
        if code != 250:
            text = reply_text(message)
            self._reset()
            raise SMTPError("sender_refused", f"The server refused the sender {sender}: {code} {text}", stage="mail",
                            details={"smtp_code": code},
                            hint="The sender must be the authenticated account or one of its verified aliases.")

    def rcpt_to(self, recipients: t.Sequence[str]) -> RcptReplies:
        """RCPT TO for each address, sorted by the reply into accepted, too many (452), deferred (4xx) and refused (5xx).

        A 421 ends the session: ``smtp_connect`` with the reply code, transient.
        """
        replies = RcptReplies()
        for address in recipients:
            try:
                code, message = self.smtp.rcpt(address)
            except (OSError, smtplib.SMTPException) as exc:
                raise self._fail(exc, stage="rcpt") from None
            self._closed_by(code)
            text = f"{code} {reply_text(message)}"
            if code == 421:
                raise SMTPError("smtp_connect", f"The server closed the connection at RCPT TO {address}: {text}",
                                stage="rcpt", details={"smtp_code": code})
            if code in (250, 251):
                replies.accepted.append(address)
            elif too_many_recipients(code, reply_text(message)):
                replies.too_many[address] = text
            elif 400 <= code < 500:
                replies.deferred[address] = text
            else:
                replies.refused[address] = text
        return replies

    def data(self, payload: bytes) -> None:
        """DATA, the dot-stuffed message and the final dot; a loss after the dot is ``delivery_unknown``."""
        code, reply = self._command("DATA", stage="data")
        if code != 354:
            self._reset()
            raise SMTPError("data_refused", f"The server refused DATA: {code} {reply}", stage="data", details={"smtp_code": code})
        body = re.sub(rb"(?m)^\.", b"..", payload)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.transcript.client(f"<message: {len(payload)} bytes>")
        try:
            self.smtp.sock.sendall(body + b".\r\n")  # type: ignore[union-attr]  # connected, so sock is set
        except OSError as exc:
            # A server discards a message whose final dot never arrived.
            raise self._fail(exc, stage="data") from None
        self.transcript.client(".")
        try:
            code, message = self.smtp.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            raise self._fail(exc, stage="data", after_final_dot=True) from None
        self._closed_by(code)
        if code != 250:
            self._reset()
            raise SMTPError("data_refused", f"The server refused the message: {code} {reply_text(message)}", stage="data",
                            details={"smtp_code": code})

    def prepare(self, envelope: Envelope) -> tuple[bytes, list[str]]:
        """The bytes to send to this server and the MAIL FROM options they need; SMTPError before anything is sent.

        8bit data goes with ``BODY=8BITMIME`` to a server that offers it and is re-encoded as 7bit otherwise;
        non-ASCII addresses need ``SMTPUTF8``; a message over the server's ``SIZE`` is refused here, not after DATA.
        """
        smtp = self.smtp
        options: list[str] = []
        data = envelope.data
        addresses = (envelope.sender, *envelope.recipients)
        utf8 = not all(address.isascii() for address in addresses)
        if utf8:
            if not smtp.has_extn("smtputf8"):
                raise SMTPError("smtputf8_unsupported", f"{self.endpoint.host} does not offer SMTPUTF8, which the non-ASCII "
                                "address(es) need: " + ", ".join(a for a in addresses if not a.isascii()),
                                stage="mail", transient=False, hint="Use ASCII addresses with this server.")
            options.append("SMTPUTF8")
        if not data.isascii():
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            elif not utf8:
                from ansible_collections.smail.xoauth2.plugins.module_utils._mime.downgrade import downgrade_to_7bit  # pylint: disable=import-outside-toplevel

                data = downgrade_to_7bit(data)
                self.transcript.note("the server does not offer 8BITMIME: the message was re-encoded as 7bit")
        limit = smtp.esmtp_features.get("size", "")
        if limit.isdigit():
            if int(limit) and len(data) > int(limit):
                raise SMTPError("message_too_large", f"The message has {len(data)} bytes; {self.endpoint.host} takes at most "
                                f"{limit} (SIZE).", stage="mail", transient=False,
                                hint="Send large files as links, or fewer attachments per mail.")
            options.append(f"SIZE={len(data)}")
        return data, options

    def transact(self, envelope: Envelope, recipients: t.Sequence[str]) -> RcptReplies:
        """MAIL, RCPT for ``recipients`` and DATA; returns the RCPT replies once the server accepted the message.

        With no recipient accepted nothing is sent: the replies come back without DATA. Raises SMTPError for a
        refusal at MAIL or DATA (or a lost connection), with ``transient`` saying whether trying later may help.
        """
        payload, mail_options = self.prepare(envelope)
        self.mail_from(envelope.sender, mail_options)
        replies = self.rcpt_to(recipients)
        if not replies.accepted:
            self._reset()
            return replies
        self.data(payload)
        return replies

    def quit(self, *, timeout: float | None = None) -> None:
        """QUIT politely, waiting at most ``timeout`` seconds (when given) for the answer instead of the session's
        whole timeout; failures here do not matter any more, and the socket is closed either way."""
        if self._smtp is None:
            return
        try:
            sock = self._smtp.sock
            if timeout is not None and sock is not None:
                current = sock.gettimeout()
                sock.settimeout(timeout if current is None else min(current, timeout))
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self.close()

    def resume(self, transcript: Transcript) -> bool:
        """Take up this open, authenticated session for a new send that records in ``transcript``: True when the
        server still answers RSET with 250; otherwise the connection is closed (nothing of the new send was said)."""
        self.transcript = transcript
        transcript.add_secret(self.login.secret)
        if not self.connected:
            return False
        self.smtp.transcript = transcript
        transcript.note(f"reuse the session with {self.endpoint.host}:{self.endpoint.port}")
        try:
            code, _reply = self._command("RSET", stage="connect")
        except SMTPError:
            return False
        if code != 250:
            self.close()
            return False
        return True

    def _reset(self) -> None:
        if not self.connected:
            return
        try:
            self.smtp.rset()
        except (OSError, smtplib.SMTPException, SMTPError):
            pass


def _auth_hint(mechanism: str, code: int, reply: str) -> str:
    """What to do about a refused AUTH: nothing but wait for a 4xx (454 4.7.0), the credentials for a 5xx."""
    status = enhanced_status(code, reply)
    if 400 <= code < 500:
        return "The server could not verify the login just now (a temporary failure): a later attempt may succeed."
    if status is not None and status[1:] == (7, 11):
        return "The server takes this mechanism only over TLS: use secure=ssl or secure=starttls."
    if mechanism in ("xoauth2", "oauthbearer"):
        return ("The access token was refused: check that username is the account that granted it, that its scopes "
                "include mail sending (Google: https://mail.google.com/, Microsoft: SMTP.Send), and that it has not expired.")
    return "Check username and password (Gmail and Microsoft 365 need an app password for PLAIN/LOGIN)."
