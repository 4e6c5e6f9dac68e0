# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""From option values to a delivered mail: the one send path of the module, the callback and the roles.

Options arrive as a plain mapping (``module.params`` or a plugin's ``get_option()`` values) with the names of the
``oauth2``, ``tls`` and ``smtp`` option groups. Credentials and tokens come from ``_credentials``, the server and the
retry policy from ``_connection``; this file runs the delivery, with the spool. It has no Ansible imports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _connection, _oauth2, _providers, _smtp
from ansible_collections.smail.xoauth2.plugins.module_utils._credentials import (
    Credentials,
    obtain_token,
    read_credentials,
    settle_rotation,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError

if t.TYPE_CHECKING:
    from ansible_collections.smail.xoauth2.plugins.module_utils import _spool

BEARER_MECHANISMS = ("xoauth2", "oauthbearer")


class BearerLogins:
    """The SASL login of a bearer mechanism, renewed once when the server refuses a token that came from the cache."""

    def __init__(self, options: t.Mapping[str, t.Any], credentials: Credentials, *, mechanism: str, username: str,
                 transcript: _smtp.Transcript) -> None:
        self.options = options
        self.credentials = credentials
        self.mechanism = mechanism
        self.username = username
        self.transcript = transcript
        self.token = self._obtain()
        self.renewed = False

    def _obtain(self, refused: str | None = None) -> _oauth2.AccessToken:
        token = obtain_token(self.options, self.credentials, refused=refused, default_user=self.username)
        self.transcript.add_secret(token.token)
        self.transcript.add_secret(token.rotated_refresh_token)
        return token

    def login(self) -> _smtp.SASLLogin:
        return _smtp.SASLLogin(mechanism=self.mechanism, username=self.username, secret=self.token.token)

    def renew(self) -> _smtp.SASLLogin | None:
        if self.token.source != "cache" or self.renewed:
            return None  # a token refused right after its refresh, or one given as is: a new one would not help
        self.renewed = True
        self.token = self._obtain(refused=self.token.token)
        return self.login()


@dataclasses.dataclass
class Delivery:
    """The outcome of :func:`deliver`, as task result fields plus the secrets an adapter must mask."""

    result: dict[str, t.Any]
    secrets: list[str]
    transcript: _smtp.Transcript
    token: _oauth2.AccessToken | None = None
    #: Problems that did not stop the send (a rotated refresh token that could not be stored, a spooled mail),
    #: for module.warn(); they never hold a secret.
    warnings: list[str] = dataclasses.field(default_factory=list)


def add_provider_hint(options: t.Mapping[str, t.Any], error: SmailError) -> SmailError:
    """``error`` with the provider's hint for the server's reply, where the registry has one (AUTH and MAIL refusals)."""
    if error.code not in ("smtp_auth", "sender_refused"):
        return error
    challenge = error.details.get("auth_challenge")
    reply = error.msg + (json.dumps(challenge, separators=(",", ":")) if challenge else "")
    hint = _providers.get_provider(options.get("provider")).reply_hint(reply)
    if hint:
        error.hint = hint
    return error


def open_spool(options: t.Mapping[str, t.Any]) -> _spool.Spool | None:
    """The spool named by ``spool_dir``, or None when spooling is off."""
    directory = options.get("spool_dir")
    if not directory:
        return None
    from ansible_collections.smail.xoauth2.plugins.module_utils import _spool  # pylint: disable=import-outside-toplevel
    return _spool.Spool(directory)


def _settle_spooled(spool: _spool.Spool, queued: list[_spool.SpooledMessage], outcomes: list[_smtp.Outcome],
                    warnings: list[str]) -> tuple[list[str], list[dict[str, t.Any]]]:
    """Remove what the server took, set aside what must not be tried again; returns (delivered ids, pending)."""
    delivered: list[str] = []
    pending: list[dict[str, t.Any]] = []
    for message, outcome in zip(queued, outcomes):
        if not outcome.pending:
            spool.remove(message)
            delivered.append(message.message_id or message.path)
        elif outcome.error is not None and not outcome.error.transient:
            held = spool.set_aside(message, outcome.error.full_msg)
            warnings.append(f"The spooled mail {message.message_id} was not delivered and will not be retried "
                            f"({outcome.error.code}: {outcome.error.msg}); it was moved to {held}.")
        else:
            pending.append(message.summary())
    return delivered, pending


def _spool_own(spool: _spool.Spool, envelope: _smtp.Envelope, recipients: t.Sequence[str], *, account: str,
               endpoint: _smtp.SMTPEndpoint, error: SmailError) -> tuple[dict[str, t.Any], str]:
    """Spool ``envelope`` for ``recipients`` because of ``error``; returns the result fields and the warning."""
    spooled = spool.add(account=account, server=f"{endpoint.host}:{endpoint.port}", sender=envelope.sender,
                        recipients=tuple(recipients), message_id=envelope.message_id, data=envelope.data,
                        reason=f"{error.code}: {error.msg}")
    warning = (f"The mail {envelope.message_id} could not be sent now ({error.code}: {error.msg}) and was spooled to "
               f"{spooled.path}; the next send with the same spool_dir and account delivers it.")
    return {"spooled": True, "spool_path": spooled.path}, warning


def connection_settings(options: t.Mapping[str, t.Any], *, default_username: str | None
                        ) -> tuple[_smtp.SMTPEndpoint, Credentials, str]:
    """The server, the OAuth2 credentials and the SMTP account of the options, checked before any connection."""
    mechanism = options.get("auth") or "xoauth2"
    endpoint = _connection.smtp_endpoint(options)
    credentials = read_credentials(options) if mechanism in BEARER_MECHANISMS else Credentials()
    username = options.get("username") or credentials.account or default_username or ""
    # The secret is checked for presence later, once it is known; here only the shape of the connection.
    _smtp.validate_connection(endpoint, _smtp.SASLLogin(mechanism=mechanism, username=username, secret="unchecked"))
    return endpoint, credentials, username


def _mask_option_secrets(options: t.Mapping[str, t.Any], credentials: Credentials, transcript: _smtp.Transcript) -> None:
    for value in (options.get("client_secret"), options.get("refresh_token"), credentials.client_secret,
                  credentials.refresh_token, options.get("password"), options.get("client_certificate_key")):
        transcript.add_secret(value)
    key = options.get("service_account_key")
    if isinstance(key, str):
        transcript.add_secret(key)
        try:
            key = json.loads(key)
        except ValueError:
            return
    transcript.add_secret(key)


def _login_source(options: t.Mapping[str, t.Any], credentials: Credentials, *, username: str,
                  transcript: _smtp.Transcript) -> _smtp.LoginSource:
    mechanism = options.get("auth") or "xoauth2"
    if mechanism in BEARER_MECHANISMS:
        return BearerLogins(options, credentials, mechanism=mechanism, username=username, transcript=transcript)
    return _smtp.StaticLogin(_smtp.SASLLogin(mechanism=mechanism, username=username, secret=options.get("password")))


def flush_spool(options: t.Mapping[str, t.Any], *, transcript: _smtp.Transcript | None = None) -> Delivery:
    """Deliver what ``spool_dir`` holds for the options' SMTP account, as a send would before its own mail."""
    transcript = transcript or _smtp.Transcript()
    spool = open_spool(options)
    if spool is None:
        raise OptionError("spool_dir", "is required to flush a spool")
    endpoint, credentials, username = connection_settings(options, default_username=None)
    policy = _connection.retry_policy(options)
    _mask_option_secrets(options, credentials, transcript)
    warnings: list[str] = []
    with spool.claim(username) as queued:
        if not queued:
            return Delivery(result={"spool_delivered": [], "spool_pending": [], "attempts": 0, "failed_attempts": []},
                            secrets=sorted(transcript.secrets), transcript=transcript)
        logins = _login_source(options, credentials, username=username, transcript=transcript)
        _smtp.validate_connection(endpoint, logins.login())
        report = _smtp.deliver_envelopes(endpoint, logins, [_smtp.Envelope(m.sender, m.recipients, m.data, m.message_id)
                                                            for m in queued], policy=policy, transcript=transcript)
        delivered, pending = _settle_spooled(spool, queued, report.outcomes, warnings)
    return Delivery(result={"spool_delivered": delivered, "spool_pending": pending, "attempts": report.attempts,
                            "failed_attempts": report.failed_attempts},
                    secrets=sorted(transcript.secrets), transcript=transcript, warnings=warnings)


def deliver(options: t.Mapping[str, t.Any], spec: _smtp.MessageSpec, *, check_only: bool = False,
            transcript: _smtp.Transcript | None = None) -> Delivery:
    """Build, authenticate and send ``spec`` as the options say, with retries and the spool.

    Every input is checked before the token endpoint or the SMTP server is contacted. A mail that certainly did not
    reach the server (after the retries) goes to ``spool_dir`` when one is set; mail spooled earlier for the same
    account is sent first, over the same connection. Raises SmailError on failure; the secrets to mask are then in
    ``transcript.secrets``. ``check_only`` authenticates without sending.
    """
    transcript = transcript or _smtp.Transcript()
    mechanism = options.get("auth") or "xoauth2"
    msg = _smtp.build_message(spec)
    recipients = _smtp.envelope_recipients(spec)
    if not recipients:
        raise OptionError("to", "at least one recipient is required in to, cc or bcc")
    envelope_sender = _smtp.parse_address(spec.sender, option="sender").addr_spec
    endpoint, credentials, username = connection_settings(options, default_username=envelope_sender)
    policy = _connection.retry_policy(options)
    spool = None if check_only else open_spool(options)
    envelope = _smtp.Envelope(envelope_sender, tuple(recipients), _smtp.message_bytes(msg), msg["Message-ID"])
    _mask_option_secrets(options, credentials, transcript)

    warnings: list[str] = []
    result: dict[str, t.Any] = {"message_id": envelope.message_id, "sender": envelope_sender, "auth_mechanism": mechanism}
    logins: _smtp.LoginSource
    bearer: BearerLogins | None = None
    if mechanism in BEARER_MECHANISMS:
        try:
            bearer = t.cast(BearerLogins, _login_source(options, credentials, username=username, transcript=transcript))
        except _oauth2.TokenError as exc:
            if not (exc.transient and spool is not None):
                raise
            fields, warning = _spool_own(spool, envelope, recipients, account=username, endpoint=endpoint, error=exc)
            result.update(fields, recipients=[], refused={}, token_source=None, sent=False, attempts=0,
                          failed_attempts=[], spool_delivered=[],
                          spool_pending=[message.summary() for message in spool.pending(username)])
            return Delivery(result=result, secrets=sorted(transcript.secrets), transcript=transcript, warnings=[warning])
        # Stored before the send: the endpoint has rotated the token whether or not the mail goes out.
        rotation = settle_rotation(options, credentials, bearer.token, check_only=check_only)
        if rotation is not None:
            result["refresh_token_rotated"] = True
            if rotation.warning:
                warnings.append(rotation.warning)
        logins = bearer
    else:
        logins = _smtp.StaticLogin(_smtp.SASLLogin(mechanism=mechanism, username=username, secret=options.get("password")))
    _smtp.validate_connection(endpoint, logins.login())

    def token_source() -> str | None:  # a renewal changes it
        return bearer.token.source if bearer else None

    if check_only:
        with _smtp.SMTPSession(endpoint, logins.login(), transcript=transcript) as session:
            try:
                session.open_with(logins)
            except SmailError as exc:
                exc.details.setdefault("token_source", token_source())
                raise add_provider_hint(options, exc) from None
            session.quit()
        result.update(recipients=recipients, refused={}, token_source=token_source(), sent=False, attempts=1,
                      failed_attempts=[])
        return Delivery(result=result, secrets=sorted(transcript.secrets), transcript=transcript,
                        token=bearer.token if bearer else None, warnings=warnings)

    with (spool.claim(username) if spool is not None else contextlib.nullcontext([])) as queued:
        report = _smtp.deliver_envelopes(
            endpoint, logins,
            [_smtp.Envelope(m.sender, m.recipients, m.data, m.message_id) for m in queued] + [envelope],
            policy=policy, transcript=transcript)
        spool_delivered, spool_pending = (_settle_spooled(spool, queued, report.outcomes[:-1], warnings)
                                          if spool is not None else ([], []))
        own = report.outcomes[-1]
        result.update(recipients=own.accepted, refused=own.refused, token_source=token_source(), attempts=report.attempts,
                      failed_attempts=report.failed_attempts, spool_delivered=spool_delivered, spool_pending=spool_pending,
                      spooled=False, sent=bool(own.accepted))
        if own.pending and own.error is not None and own.error.transient and spool is not None:
            fields, warning = _spool_own(spool, envelope, own.pending, account=username, endpoint=endpoint, error=own.error)
            result.update(fields)
            spool_pending.append({"message_id": envelope.message_id, "recipients": list(own.pending),
                                  "path": fields["spool_path"]})
            warnings.append(warning)
        elif own.pending and own.error is not None:
            own.error.details.update({key: result[key] for key in ("message_id", "recipients", "refused", "token_source",
                                                                   "attempts", "failed_attempts", "spool_delivered",
                                                                   "spool_pending")})
            if own.accepted:
                own.error.details["may_have_been_delivered"] = True
            raise add_provider_hint(options, own.error)
    if own.refused and not options.get("allow_partial"):
        refused = "; ".join(f"{address}: {reply}" for address, reply in own.refused.items())
        error = _smtp.SMTPError("recipients_refused", f"The server refused recipient(s): {refused}. "
                                f"Delivered to: {', '.join(own.accepted) or 'nobody'}.", stage="rcpt",
                                may_have_been_delivered=bool(own.accepted),
                                hint="Set allow_partial=true to accept a mail that reached only some recipients.",
                                details={**result, "stage": "rcpt"})
        raise error
    return Delivery(result=result, secrets=sorted(transcript.secrets), transcript=transcript,
                    token=bearer.token if bearer else None, warnings=warnings)


