# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""From option values to a delivered mail: the one send path of the module, the callback and the roles.

Options arrive as a plain mapping (``module.params`` or a plugin's ``get_option()`` values) with the names of the
``oauth2``, ``tls`` and ``smtp`` option groups. Credentials and tokens come from ``_credentials``, the server and the
retry policy from ``_connection``; this file runs the delivery, with the spool. It has no Ansible imports.
"""

from __future__ import annotations

import json
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers, _retry
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._send import connection as _connection
from ansible_collections.smail.xoauth2.plugins.module_utils._send import settings as _settings
from ansible_collections.smail.xoauth2.plugins.module_utils._send.credentials import (
    Credentials,
    obtain_token,
    read_credentials,
    refresh_token_expiry,
    scope_warnings,
    settle_rotation,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import endpoint as _smtp_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import replies as _smtp_replies
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import sasl as _smtp_sasl
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import session as _smtp_session
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript

if t.TYPE_CHECKING:
    from ansible_collections.smail.xoauth2.plugins.module_utils._spool import queue as _spool

# The _spool package (the write-ahead queue and its mail files) is imported when spool_dir is set: a send without it
# never compiles the spool in the module process (about 10 ms of its start, measured with python -X importtime).

BEARER_MECHANISMS = ("xoauth2", "oauthbearer")


class BearerLogins:
    """The SASL login of a bearer mechanism, renewed once when the server refuses a token that came from the cache.

    A refresh token the endpoint rotated on the way (the first token or the renewal) is stored at once
    (``settle_rotation``): the endpoint has replaced it whether or not any mail goes out.
    """

    def __init__(self, options: t.Mapping[str, t.Any], credentials: Credentials, *, mechanism: str, username: str,
                 transcript: _smtp_transcript.Transcript, check_only: bool = False) -> None:
        self.options = options
        self.credentials = credentials
        self.mechanism = mechanism
        self.username = username
        self.transcript = transcript
        self.check_only = check_only
        self.rotated = False
        #: Problems storing a rotated refresh token; never a secret.
        self.warnings: list[str] = []
        self.token = self._obtain()
        self.renewed = False
        self._expiry: tuple[_grants.AccessToken, _refresh_expiry.ExpiryReport] | None = None

    def _obtain(self, refused: str | None = None) -> _grants.AccessToken:
        token = obtain_token(self.options, self.credentials, refused=refused, default_user=self.username)
        self.transcript.add_secret(token.token)
        self.transcript.add_secret(token.rotated_refresh_token)
        self.warnings.extend(scope_warnings(token))
        rotation = settle_rotation(self.options, self.credentials, token, check_only=self.check_only)
        if rotation is not None:
            self.rotated = True
            if rotation.warning:
                self.warnings.append(rotation.warning)
            # A later renewal in this send uses (and a later rotation replaces) the new one.
            self.credentials.refresh_token = token.rotated_refresh_token
        return token

    def login(self) -> _smtp_sasl.SASLLogin:
        return _smtp_sasl.SASLLogin(mechanism=self.mechanism, username=self.username, secret=self.token.token)

    def expiry(self) -> _refresh_expiry.ExpiryReport:
        """The refresh token's known expiry and its warning, for the current token (computed once per token)."""
        if self._expiry is None or self._expiry[0] is not self.token:
            report = refresh_token_expiry(self.options, self.token if self.token.source != "given" else None)
            self._expiry = (self.token, report)
        return self._expiry[1]

    def renew(self) -> _smtp_sasl.SASLLogin | None:
        if self.token.source != "cache" or self.renewed:
            return None  # a token refused right after its refresh, or one given as is: a new one would not help
        self.token = self._obtain(refused=self.token.token)  # a failure here leaves the renewal to the next attempt
        self.renewed = True
        return self.login()


class Delivery(t.NamedTuple):
    """The outcome of :func:`deliver`, as task result fields plus the secrets an adapter must mask."""

    result: dict[str, t.Any]
    secrets: list[str]
    transcript: _smtp_transcript.Transcript
    token: _grants.AccessToken | None = None
    #: Problems that did not stop the send (a rotated refresh token that could not be stored, a spooled mail),
    #: for module.warn(); they never hold a secret.
    warnings: t.Sequence[str] = ()


_Error = t.TypeVar("_Error", bound=SmailError)


def add_provider_hint(options: t.Mapping[str, t.Any], error: _Error) -> _Error:
    """``error`` with the provider's hint for the server's reply, where the registry has one (AUTH and MAIL refusals),
    and the registry's own error code for an AUTH refusal that means something of its own (``basic_auth_disabled``)."""
    if error.code not in ("smtp_auth", "sender_refused"):
        return error
    challenge = error.details.get("auth_challenge")
    reply = error.msg + (json.dumps(challenge, separators=(",", ":")) if challenge else "")
    mechanism = options.get("auth") or "xoauth2"
    entry = _providers.get_provider(options.get("provider")).reply_entry(reply, mechanism=mechanism)
    if entry is not None:
        error.hint = entry.hint
        if entry.code and error.code == "smtp_auth":
            error.code = entry.code
    return error


def open_spool(options: t.Mapping[str, t.Any]) -> _spool.Spool | None:
    """The spool named by ``spool_dir``, or None when spooling is off."""
    directory = options.get("spool_dir")
    if not directory:
        return None
    from ansible_collections.smail.xoauth2.plugins.module_utils._spool.queue import DEFAULT_LIFETIME, Spool  # pylint: disable=import-outside-toplevel

    lifetime = options.get("spool_lifetime")
    return Spool(directory, lifetime=DEFAULT_LIFETIME if lifetime is None else int(lifetime))


def connection_settings(options: t.Mapping[str, t.Any], *, default_username: str | None
                        ) -> tuple[_smtp_endpoint.SMTPEndpoint, Credentials, str]:
    """The server, the OAuth2 credentials and the SMTP account of the options, checked before any connection."""
    mechanism = options.get("auth") or "xoauth2"
    endpoint = _connection.smtp_endpoint(options)
    credentials = read_credentials(options) if mechanism in BEARER_MECHANISMS else Credentials()
    username = options.get("username") or credentials.account or default_username or ""
    # The secret is checked for presence later, once it is known; here only the shape of the connection.
    _smtp_endpoint.validate_connection(endpoint, _smtp_sasl.SASLLogin(mechanism=mechanism, username=username, secret="unchecked"))
    return endpoint, credentials, username


def _mask_option_secrets(options: t.Mapping[str, t.Any], credentials: Credentials, transcript: _smtp_transcript.Transcript) -> None:
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
                  transcript: _smtp_transcript.Transcript, check_only: bool = False) -> _smtp_sasl.LoginSource:
    mechanism = options.get("auth") or "xoauth2"
    if mechanism in BEARER_MECHANISMS:
        return BearerLogins(options, credentials, mechanism=mechanism, username=username, transcript=transcript,
                            check_only=check_only)
    return _smtp_sasl.StaticLogin(_smtp_sasl.SASLLogin(mechanism=mechanism, username=username, secret=options.get("password")))


class _ReusedConnection:
    """The sessions of one send: the connection of one window kept for the next, so that a send's windows share one
    connection as a single delivery would; handed back to ``inner`` (its way of ending or keeping it) at the end."""

    def __init__(self, inner: _smtp_delivery.SessionProvider) -> None:
        self.inner = inner
        self.session: _smtp_session.SMTPSession | None = None

    def open(self, endpoint: _smtp_endpoint.SMTPEndpoint, logins: _smtp_sasl.LoginSource,
             transcript: _smtp_transcript.Transcript) -> _smtp_session.SMTPSession:
        session, self.session = self.session, None
        if session is not None:
            if session.connected:
                return session
            self.inner.release(session)
        return self.inner.open(endpoint, logins, transcript)

    def release(self, session: _smtp_session.SMTPSession) -> None:
        if session.connected:
            self.session = session
        else:
            self.inner.release(session)

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            self.inner.release(session)


def _reason(error: SmailError | None) -> str:
    return f"{error.code}: {error.msg}" if error is not None else "not attempted"


def _waits_for(error: SmailError | None) -> str:
    """What a mail deferred after ``error`` waits for (``_spool.Control.waits_for``)."""
    return "server" if error is None or getattr(error, "stage", None) in _SESSION_STAGES else "mail"


def _untried(envelope: _smtp_message.Envelope, error: _smtp_replies.SMTPError) -> _smtp_delivery.Outcome:
    outcome = _smtp_delivery.Outcome(envelope, pending=list(envelope.recipients))
    outcome.error = error
    return outcome


def _session_failed(outcomes: t.Sequence[_smtp_delivery.Outcome]) -> _smtp_replies.SMTPError | None:
    """The failure of a window's connection or login when no transaction of it got anywhere, else None."""
    errors = [outcome.error for outcome in outcomes]
    if outcomes and all(error is not None and error.stage in _SESSION_STAGES for error in errors) \
            and not any(outcome.accepted or outcome.refused for outcome in outcomes):
        return errors[0]
    return None


_SESSION_STAGES = frozenset(("connect", "tls", "ehlo", "auth"))
#: Login failures that no fix of the credentials ends: the provider turned the mechanism off for good (Exchange
#: Online's 5.7.30 for a password), so the mail is not kept to wait for it.
_NOT_KEPT = frozenset(("basic_auth_disabled",))


class _Send:
    """One send or flush as its phases: enqueue, log in, transmit (this send's mail, then what is due), settle,
    result. With a spool every mail is delivered from its file (a write-ahead queue, see ``_spool``): claimed
    window by window (``_spool.CLAIM_WINDOW``) over one connection, each recipient's answer written in place."""

    def __init__(self, options: t.Mapping[str, t.Any], *, endpoint: _smtp_endpoint.SMTPEndpoint, username: str,
                 spool: _spool.Spool | None, transcript: _smtp_transcript.Transcript, sessions: _smtp_delivery.SessionProvider) -> None:
        self.options = options
        self.endpoint = endpoint
        self.username = username
        self.spool = spool
        self.transcript = transcript
        self.connection = _ReusedConnection(sessions)
        self.warnings: list[str] = []
        #: Warnings about this send's own mails, shortened for a large batch (``_few``).
        self.own_warnings: list[str] = []
        self.fields: dict[str, t.Any] = {"attempts": 0, "failed_attempts": [], "spool_delivered": [],
                                         "spool_refused": []}
        if spool is not None:
            self.fields["spool_expired"] = []
        #: Spooled mail files this send has looked at: none is taken twice.
        self._seen: set[str] = set()

    def own_paths(self, paths: t.Iterable[str]) -> None:
        """This send's own mail files: its drains never look at them (:meth:`own_mail` delivers them)."""
        self._seen.update(paths)

    # --- transmit ---------------------------------------------------------------------------------

    def _deliver(self, logins: _smtp_sasl.LoginSource, envelopes: t.Sequence[_smtp_message.Envelope], *,
                 policy: _retry.RetryPolicy, on_transaction: _smtp_delivery.TransactionHook | None) -> list[_smtp_delivery.Outcome]:
        report = _smtp_delivery.deliver_envelopes(self.endpoint, logins, envelopes, policy=policy, transcript=self.transcript,
                                                  on_transaction=on_transaction, sessions=self.connection)
        self.fields["attempts"] += report.attempts
        self.fields["failed_attempts"].extend(report.failed_attempts)
        return report.outcomes

    def _window(self, claim: _spool.Claim, logins: _smtp_sasl.LoginSource, *,
                policy: _retry.RetryPolicy) -> list[_smtp_delivery.Outcome]:
        """The claimed mails over the send's connection, each recipient's answer written before the next command."""
        messages = {}
        envelopes = []
        for message in claim.messages:
            envelope = message.envelope()
            messages[id(envelope)] = message
            envelopes.append(envelope)

        def progress(outcome: _smtp_delivery.Outcome) -> None:
            message = messages[id(outcome.envelope)]
            try:
                claim.progress(message, outcome)
            except SmailError as exc:
                # Nothing more is sent of it: whoever has it now must not get it again from a later delivery.
                self.warnings.append(f"The spooled mail {message.message_id}: {exc.full_msg}")
                outcome.error = _smtp_replies.SMTPError(exc.code, exc.msg, stage="data", hint=exc.hint,
                                                        may_have_been_delivered=bool(outcome.accepted))

        return self._deliver(logins, envelopes, policy=policy, on_transaction=progress)

    def own_mail(self, logins: _smtp_sasl.LoginSource, envelopes: t.Sequence[_smtp_message.Envelope],
                 queued: t.Sequence[_spool.SpooledMessage], *, policy: _retry.RetryPolicy,
                 settle: t.Callable[[_smtp_message.Envelope, _smtp_delivery.Outcome, _spool.Claim | None, _spool.SpooledMessage | None],
                                    None]) -> None:
        """This send's mail, with the task's retries: from its spool files window by window when it was enqueued."""
        if self.spool is None:
            for envelope, outcome in zip(envelopes, self._deliver(logins, envelopes, policy=policy,
                                                                  on_transaction=None)):
                settle(envelope, outcome, None, None)
            return
        failure: _smtp_replies.SMTPError | None = None
        remaining = list(zip(envelopes, queued))
        while remaining:
            with self.spool.claim(self.username, paths=[message.path for _envelope, message in remaining], own=True,
                                  known={message.path: message for _envelope, message in remaining}) as claim:
                taken = {message.path for message in claim.messages}
                self._seen.update(taken)  # settled by this send: not taken again by its drain
                window = [(envelope, message) for envelope, message in remaining if message.path in taken]
                remaining = [(envelope, message) for envelope, message in remaining if message.path not in taken]
                if not window:  # pragma: no cover - leased files are this process's: only a broken spool gets here
                    raise SmailError("spool_read", f"The mail spool {self.spool.directory} lost this send's mail files.")
                if failure is None:
                    outcomes = self._window(claim, logins, policy=policy)
                    failure = _session_failed(outcomes)
                else:  # the connection or the login failed for good or after the retries: the rest is not tried
                    outcomes = [_untried(message.envelope(), failure) for _envelope, message in window]
                for (envelope, message), outcome in zip(window, outcomes):
                    settle(envelope, outcome, claim, message)

    def spooled_mail(self, logins: _smtp_sasl.LoginSource, *, due_only: bool, policy: _retry.RetryPolicy,
                     windows: int | None = None) -> bool:
        """The account's spooled mail (what is due, or all of it), window after window (at most ``windows``), until
        none is left or the connection fails; False when it failed. A mail still waiting gets its own next attempt
        time, so one deferring mailbox never holds up the others."""
        if self.spool is None:
            return True
        seen = self._seen
        try:
            order = self.spool.candidates(self.username, due_only=due_only, skip=seen)  # read once per drain
        except SmailError as exc:
            self.warnings.append(f"The mail spool was not delivered: {exc.full_msg}")
            return False
        while order and (windows is None or windows > 0):
            windows = None if windows is None else windows - 1
            try:
                with self.spool.claim(self.username, paths=order) as claim:
                    for expired in claim.expired:
                        self.fields["spool_expired"].append(expired.summary())
                        self.warnings.append(f"The spooled mail {expired.message_id} was not delivered within "
                                             f"spool_lifetime; it is held at {expired.path} as expired.")
                    looked = [*claim.passed, *(message.path for message in claim.expired),
                              *(message.path for message in claim.messages)]
                    seen.update(looked)
                    order = order[len(looked):]  # a claim looks at the paths in order, and stops at a full window
                    if not claim.messages:
                        continue
                    outcomes = self._window(claim, logins, policy=policy)
                    for message, outcome in zip(claim.messages, outcomes):
                        self._settle_spooled(claim, message, outcome)
            except SmailError as exc:
                self.warnings.append(f"The rest of the mail spool was not delivered: {exc.full_msg}")
                return False
            if _session_failed(outcomes) is not None:
                return False
        return True

    # --- settle -----------------------------------------------------------------------------------

    def _settle_spooled(self, claim: _spool.Claim, message: _spool.SpooledMessage, outcome: _smtp_delivery.Outcome) -> None:
        """Remove, hold or defer a spooled mail after its delivery, and say so."""
        if not claim.holds(message):
            self.fields["spool_delivered"].append(message.message_id or message.path)
            return
        current = claim.current(message)
        error = outcome.error
        if not current.recipients:
            held = claim.hold(message, "refused", "Refused for good: " + "; ".join(
                f"{address}: {reply}" for address, reply in current.refused.items()))
            self.fields["spool_refused"].append(held.summary())
            self.warnings.append(f"The spooled mail {message.message_id} was refused for good by the server for "
                                 f"{', '.join(held.refused)}; it is held at {held.path} and will not be retried.")
        elif error is not None and not error.transient and error.stage not in _SESSION_STAGES:
            held = claim.hold(message, error.code, _reason(error))
            self.warnings.append(f"The spooled mail {message.message_id} was not delivered and will not be retried "
                                 f"({held.summary()['held_reason']}); it is held at {held.path}.")
        else:
            claim.defer(message, _reason(error), waits_for=_waits_for(error))

    def _keep_own(self, envelope: _smtp_message.Envelope, outcome: _smtp_delivery.Outcome, claim: _spool.Claim,
                  message: _spool.SpooledMessage, result: dict[str, t.Any]) -> None:
        """Bring the file of one of this send's mails to match its outcome: held (its delivery became unknown),
        deferred (a transient failure, or the credentials: kept for a later send) or removed (a final failure that
        the task reports itself). Raises SmailError ``spool_write``."""
        error = outcome.error
        if not outcome.pending or error is None:
            claim.forget(message)  # refused by some recipients for good, reported by the task
        elif error.code == "delivery_unknown":
            from ansible_collections.smail.xoauth2.plugins.module_utils._spool.mail_file import UNKNOWN_HINT  # pylint: disable=import-outside-toplevel

            held = claim.hold(message, error.code, _reason(error))
            result.update(held=True, spool_path=held.path)
            self.own_warnings.append(f"The delivery of {envelope.message_id} became unknown ({error.code}); it is "
                                     f"kept, held, at {held.path}. {UNKNOWN_HINT}")
        elif error.transient or (error.stage == "auth" and error.code not in _NOT_KEPT):
            claim.defer(message, _reason(error), waits_for=_waits_for(error))
            result.update(spooled=True, spool_path=message.path)
            if error.transient:
                self.own_warnings.append(
                    f"The mail {envelope.message_id} could not be sent now ({error.code}: {error.msg}) and was "
                    f"spooled to {message.path}; the next send with the same spool_dir and account delivers it.")
            else:
                error.details.update(spooled=True, spool_path=message.path)
                error.msg = (f"{error.msg} The mail is kept in the spool at {message.path}: once the credentials are "
                             "fixed, the smail.xoauth2.spool module with flush=true delivers it (or a later send, when "
                             "it is due).")
        else:
            claim.forget(message)

    def settle_own(self, envelope: _smtp_message.Envelope, outcome: _smtp_delivery.Outcome, claim: _spool.Claim | None,
                   message: _spool.SpooledMessage | None) -> tuple[dict[str, t.Any], SmailError | None]:
        """The result of one of this send's mails: delivered, spooled, held, or failed with its error; its spool file
        brought to match (:meth:`_keep_own`). A file that cannot be updated fails this mail alone."""
        result = _message_result(envelope, outcome)
        if outcome.error is not None:
            outcome.error = add_provider_hint(self.options, outcome.error)
        error = outcome.error
        if claim is not None and message is not None and claim.holds(message):
            try:
                self._keep_own(envelope, outcome, claim, message, result)
            except SmailError as exc:
                failure = SmailError(exc.code, f"{error.msg if error else 'The mail'} Its spool file could not be "
                                     f"updated: {exc.msg}", hint=exc.hint,
                                     details={"may_have_been_delivered": bool(outcome.accepted), "cause": _reason(error)})
                result.update(error=failure.code, msg=failure.full_msg)
                return result, failure
        if result.get("spooled") and error is not None and error.transient:
            return result, None
        if outcome.pending and error is not None:
            if outcome.accepted:
                error.details["may_have_been_delivered"] = True
            if result.get("held") and self.spool is not None:
                error.details.update(held=True, spool_path=result["spool_path"])
                error.msg = f"{error.msg} It is held in the spool at {result['spool_path']}, never sent again by itself."
                error.hint = (f"Check the recipients' mailboxes for {envelope.message_id}; then the smail.xoauth2.spool "
                              f"module with spool_dir={self.spool.directory} either releases it (release: "
                              f"['{envelope.message_id}'], sent once more by flush: true or the next send) or deletes "
                              f"it (discard: ['{envelope.message_id}']).")
            result.update(error=error.code, msg=error.msg)
            return result, error
        if outcome.refused and not self.options.get("allow_partial"):
            refusal = _refusal(result)
            result.update(error=refusal.code, msg=refusal.msg)
            return result, refusal
        return result, None

    # --- result -----------------------------------------------------------------------------------

    def spool_fields(self) -> dict[str, t.Any]:
        """What waits in the spool for the account now, and how much of it is held (with a warning)."""
        if self.spool is None:
            return {"spool_pending": []}
        try:
            pending = [message.summary() for message in self.spool.pending(self.username)]
            held = self.spool.held_count(self.username)
        except SmailError as exc:
            self.warnings.append(f"The mail spool could not be listed after the delivery: {exc.full_msg}")
            return {"spool_pending": []}
        if held:
            self.warnings.append(f"{held} held mail(s) for {self.username} in the mail spool {self.spool.directory}, never "
                                 "sent by themselves: list them with the smail.xoauth2.spool module, then release or "
                                 "discard them.")
        return {"spool_pending": pending, "spool_held_count": held}

    def close(self) -> None:
        self.connection.close()
        if self.spool is not None:
            self.spool.end_lease()


def _bearer_result(logins: _smtp_sasl.LoginSource | None, result: dict[str, t.Any], warnings: list[str]) -> None:
    """The refresh token's rotation and expiry, for a send that logged in with a bearer token."""
    if isinstance(logins, BearerLogins):
        warnings.extend(logins.warnings)
        if logins.rotated:
            result["refresh_token_rotated"] = True
        expiry = logins.expiry()
        result.update(expiry.fields())
        warnings.extend(expiry.warnings)


def flush_spool(options: t.Mapping[str, t.Any], *, transcript: _smtp_transcript.Transcript | None = None,
                sessions: _smtp_delivery.SessionProvider = _smtp_delivery.NEW_SESSIONS) -> Delivery:
    """Deliver every pending mail ``spool_dir`` holds for the options' SMTP account, due or not (``postqueue -f``).

    ``sessions`` gives each attempt its connection (default: a new one per attempt).
    """
    transcript = transcript or _smtp_transcript.Transcript()
    spool = open_spool(options)
    if spool is None:
        raise OptionError("spool_dir", "is required to flush a spool")
    endpoint, credentials, username = connection_settings(options, default_username=None)
    policy = _settings.retry_policy(options)
    _refresh_expiry.warn_days(options)
    _mask_option_secrets(options, credentials, transcript)
    send = _Send(options, endpoint=endpoint, username=username, spool=spool, transcript=transcript, sessions=sessions)
    result: dict[str, t.Any] = {}
    try:
        if spool.candidates(username, due_only=False):
            logins = _login_source(options, credentials, username=username, transcript=transcript)
            _smtp_endpoint.validate_connection(endpoint, logins.login())
            send.spooled_mail(logins, due_only=False, policy=policy)
            _bearer_result(logins, result, send.warnings)
        result.update(send.fields, **send.spool_fields())
    finally:
        send.close()
    return Delivery(result=result, secrets=sorted(transcript.secrets), transcript=transcript, warnings=send.warnings)


def prepare_envelope(spec: _smtp_message.MessageSpec, *, option_prefix: str = "") -> _smtp_message.Envelope:
    """The message built and its envelope; OptionError names the option (``messages[2].to`` in a batch)."""
    try:
        msg = _smtp_message.build_message(spec)
        recipients = _smtp_message.envelope_recipients(spec)
        if not recipients:
            raise OptionError("to", "at least one recipient is required in to, cc or bcc")
        sender = _smtp_message.parse_address(spec.sender, option="sender").addr_spec
    except OptionError as exc:
        if not option_prefix:
            raise
        raise OptionError(f"{option_prefix}{exc.option}", exc.problem) from None
    return _smtp_message.Envelope(sender, tuple(recipients), _smtp_message.message_bytes(msg), msg["Message-ID"])


def _message_result(envelope: _smtp_message.Envelope, outcome: _smtp_delivery.Outcome | None) -> dict[str, t.Any]:
    return {"message_id": envelope.message_id, "sender": envelope.sender,
            "recipients": list(outcome.accepted) if outcome else [], "refused": dict(outcome.refused) if outcome else {},
            "spooled": False, "error": None}


def _refusal(result: dict[str, t.Any]) -> _smtp_replies.SMTPError:
    refused = "; ".join(f"{address}: {reply}" for address, reply in result["refused"].items())
    return _smtp_replies.SMTPError("recipients_refused", f"The server refused recipient(s) of {result['message_id']}: {refused} "
                                   f"(delivered to: {', '.join(result['recipients']) or 'nobody'}).", stage="rcpt",
                                   may_have_been_delivered=bool(result["recipients"]),
                                   hint="Set allow_partial=true to accept a mail that reached only some recipients.")


class BatchDelivery(t.NamedTuple):
    """What :func:`deliver_batch` did: one result and, for a message that failed, its error, per message."""

    delivery: Delivery
    errors: list[SmailError | None]


#: Given the refresh token's expiry report once the access token is had, new message specs to send instead, or None.
ReviseMessages = t.Callable[[_refresh_expiry.ExpiryReport], t.Optional[t.Sequence[_smtp_message.MessageSpec]]]


def deliver_batch(options: t.Mapping[str, t.Any], specs: t.Sequence[_smtp_message.MessageSpec], *, check_only: bool = False,
                  transcript: _smtp_transcript.Transcript | None = None, option_prefix: str = "messages",
                  sessions: _smtp_delivery.SessionProvider = _smtp_delivery.NEW_SESSIONS,
                  revise: ReviseMessages | None = None) -> BatchDelivery:
    """Build, authenticate and send every message of ``specs`` over one connection with one token, retries and the spool.

    Every message is checked before anything is written or sent. With ``spool_dir`` every message is first written
    to the spool (``_spool``: a write-ahead queue) and delivered from there, so that a task that dies at any point
    leaves it there; a message still waiting after the retries stays there with a next attempt time of its own, one
    whose delivery became unknown is held, and one the credentials kept from being sent (the token endpoint, a
    refused login) is kept while the task fails. Then the account's spooled mail that is due is sent too, over the
    same connection, tried once each. After a 421 or a dropped connection between messages the rest go over a new
    connection; a message the server accepted is never sent again. The result has ``results``, one per message,
    and the send's ``attempts``, ``failed_attempts``, ``spool_delivered``, ``spool_refused``, ``spool_expired``,
    ``spool_pending`` and ``spool_held_count``. Raises SmailError for a failure that concerns every message (bad
    options, the token without a spool); the secrets to mask are then in ``transcript.secrets``. ``sessions`` gives
    each attempt its connection (default: a new one per attempt; check mode always opens its own).

    With a bearer mechanism the result has ``refresh_token_expires_at`` when the refresh token's expiry is known, and
    the warnings the one of ``refresh_token_warn_days`` when it is near. ``revise`` (the notify callback's) is called
    with that report once the token is had and before anything is sent; specs it returns replace ``specs`` (same
    number, checked again, and enqueued in place of the first ones).
    """
    transcript = transcript or _smtp_transcript.Transcript()
    _refresh_expiry.warn_days(options)  # a bad value fails before the token endpoint is asked
    envelopes = _envelopes_of(specs, option_prefix)
    endpoint, credentials, username = connection_settings(options, default_username=envelopes[0].sender)
    policy = _settings.retry_policy(options)
    spool = None if check_only else open_spool(options)
    _mask_option_secrets(options, credentials, transcript)
    send = _Send(options, endpoint=endpoint, username=username, spool=spool, transcript=transcript, sessions=sessions)
    batch = _Batch(send, envelopes)
    try:
        batch.enqueue()
        if not batch.log_in(credentials, check_only=check_only):
            return batch.result()
        if revise is not None:
            batch.revise(revise, option_prefix)
        if check_only:
            return batch.check_session()
        # What waited longest goes first: one window of the due spooled mail, this send's own, then the rest.
        send.spooled_mail(batch.logins, due_only=True, policy=_retry.NO_RETRY, windows=1)
        send.own_mail(batch.logins, batch.envelopes, batch.queued, policy=policy, settle=batch.settle)
        send.spooled_mail(batch.logins, due_only=True, policy=_retry.NO_RETRY)
        return batch.result()
    finally:
        send.close()


def _envelopes_of(specs: t.Sequence[_smtp_message.MessageSpec], option_prefix: str) -> list[_smtp_message.Envelope]:
    return [prepare_envelope(spec, option_prefix=f"{option_prefix}[{index}]." if option_prefix else "")
            for index, spec in enumerate(specs)]


class _Batch:
    """The phases of :func:`deliver_batch` around :class:`_Send`: enqueue, log in, revise, and the result."""

    def __init__(self, send: _Send, envelopes: list[_smtp_message.Envelope]) -> None:
        self.send = send
        self.options = send.options
        self.envelopes = envelopes
        self.queued: list[_spool.SpooledMessage] = []
        self.mechanism = send.options.get("auth") or "xoauth2"
        self.logins: _smtp_sasl.LoginSource = _smtp_sasl.StaticLogin(_smtp_sasl.SASLLogin(
            mechanism=self.mechanism, username=send.username, secret=send.options.get("password")))
        self.bearer: BearerLogins | None = None
        self.results: list[dict[str, t.Any]] = []
        self.errors: list[SmailError | None] = []

    def enqueue(self) -> None:
        """Every mail on disk before anything else happens (with a spool)."""
        if self.send.spool is not None:
            self.queued = self.send.spool.enqueue(self.envelopes, account=self.send.username,
                                                  server=f"{self.send.endpoint.host}:{self.send.endpoint.port}")
            self.send.own_paths(message.path for message in self.queued)

    def log_in(self, credentials: Credentials, *, check_only: bool) -> bool:
        """The login of the send (a bearer token obtained); False when no token could be had and the mail was kept.

        Raises the TokenError without a spool, and SmailError for a login the server could never take.
        """
        send = self.send
        if self.mechanism in BEARER_MECHANISMS:
            try:
                self.bearer = t.cast(BearerLogins, _login_source(self.options, credentials, username=send.username,
                                                                 transcript=send.transcript, check_only=check_only))
            except _grants.TokenError as exc:
                if send.spool is None:
                    raise
                with send.spool.claim(send.username, paths=[message.path for message in self.queued], own=True) as claim:
                    for envelope, message in zip(self.envelopes, self.queued):
                        self.settle(envelope, _failed_before_sending(envelope, exc), claim, message)
                return False
            self.logins = self.bearer
        _smtp_endpoint.validate_connection(send.endpoint, self.logins.login())
        return True

    def revise(self, revise: ReviseMessages, option_prefix: str) -> None:
        """The messages ``revise`` gives once the refresh token's expiry is known, enqueued in place of the first."""
        if self.bearer is None:
            return
        revised = revise(self.bearer.expiry())
        if revised is None:
            return
        if len(revised) != len(self.envelopes):
            raise ValueError("revise must return as many messages as it was given")
        replaced = self.queued
        self.envelopes = _envelopes_of(revised, option_prefix)
        self.enqueue()
        if self.send.spool is not None:
            with self.send.spool.claim(self.send.username, paths=[message.path for message in replaced],
                                       own=True) as claim:
                for message in claim.messages:
                    claim.forget(message)

    def check_session(self) -> BatchDelivery:
        """Check mode: log in to the server and send nothing."""
        send = self.send
        with _smtp_session.SMTPSession(send.endpoint, self.logins.login(), transcript=send.transcript) as session:
            try:
                session.open_with(self.logins)
            except SmailError as exc:
                exc.details.setdefault("token_source", self.token_source())
                raise add_provider_hint(self.options, exc) from None
            session.quit()
        send.fields["attempts"] = 1
        self.results.extend({**_message_result(envelope, None), "recipients": list(envelope.recipients)}
                            for envelope in self.envelopes)
        self.errors.extend([None] * len(self.envelopes))
        return self.result()

    def settle(self, envelope: _smtp_message.Envelope, outcome: _smtp_delivery.Outcome, claim: _spool.Claim | None,
               message: _spool.SpooledMessage | None) -> None:
        result, error = self.send.settle_own(envelope, outcome, claim, message)
        self.results.append(result)
        self.errors.append(error)

    def token_source(self) -> str | None:
        return self.bearer.token.source if self.bearer else None  # a renewal changes it

    def result(self) -> BatchDelivery:
        send = self.send
        send.warnings.extend(_few(send.own_warnings))
        summary: dict[str, t.Any] = {"auth_mechanism": self.mechanism, **send.fields, "results": self.results,
                                     "token_source": self.token_source(), **send.spool_fields()}
        _bearer_result(self.bearer, summary, send.warnings)
        return BatchDelivery(Delivery(result=summary, secrets=sorted(send.transcript.secrets), transcript=send.transcript,
                                      token=self.bearer.token if self.bearer else None, warnings=send.warnings),
                             errors=self.errors)


def _few(warnings: list[str], shown: int = 3) -> list[str]:
    """A batch's warnings about its own messages, the first few in full: a batch of thousands spooled warns once."""
    if len(warnings) <= shown + 1:
        return warnings
    return warnings[:shown] + [f"{len(warnings) - shown} more messages of this batch were spooled or held likewise; "
                               "their results say where."]


def _failed_before_sending(envelope: _smtp_message.Envelope, error: _grants.TokenError) -> _smtp_delivery.Outcome:
    """The outcome of an envelope that was never offered to a server because no token could be had."""
    outcome = _smtp_delivery.Outcome(envelope, pending=list(envelope.recipients))
    outcome.error = _smtp_delivery.login_failure(error)
    return outcome


def deliver(options: t.Mapping[str, t.Any], spec: _smtp_message.MessageSpec, *, check_only: bool = False,
            transcript: _smtp_transcript.Transcript | None = None,
            sessions: _smtp_delivery.SessionProvider = _smtp_delivery.NEW_SESSIONS,
            revise: ReviseMessages | None = None) -> Delivery:
    """Build, authenticate and send ``spec``: :func:`deliver_batch` for one message, its result at the top level.

    Raises SmailError on failure, with the result fields in its details; the secrets to mask are then in
    ``transcript.secrets``. ``check_only`` authenticates without sending.
    """
    batch = deliver_batch(options, [spec], check_only=check_only, transcript=transcript, option_prefix="",
                          sessions=sessions, revise=revise)
    summary = dict(batch.delivery.result)
    own = summary.pop("results")[0]
    own.pop("error")
    own.pop("msg", None)
    result = {**own, **summary, "sent": bool(own["recipients"]) and not check_only}
    error = batch.errors[0]
    if error is not None:
        error.details.update({key: value for key, value in result.items() if key not in ("spooled", "sent")})
        raise error
    return batch.delivery._replace(result=result)
