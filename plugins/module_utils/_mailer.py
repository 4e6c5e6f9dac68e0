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
import json
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _connection, _oauth2, _providers, _refresh_expiry, _smtp
from ansible_collections.smail.xoauth2.plugins.module_utils._credentials import (
    Credentials,
    obtain_token,
    read_credentials,
    refresh_token_expiry,
    scope_warnings,
    settle_rotation,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError

if t.TYPE_CHECKING:
    from ansible_collections.smail.xoauth2.plugins.module_utils import _retry, _spool

BEARER_MECHANISMS = ("xoauth2", "oauthbearer")


class BearerLogins:
    """The SASL login of a bearer mechanism, renewed once when the server refuses a token that came from the cache.

    A refresh token the endpoint rotated on the way (the first token or the renewal) is stored at once
    (``settle_rotation``): the endpoint has replaced it whether or not any mail goes out.
    """

    def __init__(self, options: t.Mapping[str, t.Any], credentials: Credentials, *, mechanism: str, username: str,
                 transcript: _smtp.Transcript, check_only: bool = False) -> None:
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
        self._expiry: tuple[_oauth2.AccessToken, _refresh_expiry.ExpiryReport] | None = None

    def _obtain(self, refused: str | None = None) -> _oauth2.AccessToken:
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

    def login(self) -> _smtp.SASLLogin:
        return _smtp.SASLLogin(mechanism=self.mechanism, username=self.username, secret=self.token.token)

    def expiry(self) -> _refresh_expiry.ExpiryReport:
        """The refresh token's known expiry and its warning, for the current token (computed once per token)."""
        if self._expiry is None or self._expiry[0] is not self.token:
            report = refresh_token_expiry(self.options, self.token if self.token.source != "given" else None)
            self._expiry = (self.token, report)
        return self._expiry[1]

    def renew(self) -> _smtp.SASLLogin | None:
        if self.token.source != "cache" or self.renewed:
            return None  # a token refused right after its refresh, or one given as is: a new one would not help
        self.token = self._obtain(refused=self.token.token)  # a failure here leaves the renewal to the next attempt
        self.renewed = True
        return self.login()


class Delivery(t.NamedTuple):
    """The outcome of :func:`deliver`, as task result fields plus the secrets an adapter must mask."""

    result: dict[str, t.Any]
    secrets: list[str]
    transcript: _smtp.Transcript
    token: _oauth2.AccessToken | None = None
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
    from ansible_collections.smail.xoauth2.plugins.module_utils import _spool  # pylint: disable=import-outside-toplevel
    return _spool.Spool(directory)


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
                  transcript: _smtp.Transcript, check_only: bool = False) -> _smtp.LoginSource:
    mechanism = options.get("auth") or "xoauth2"
    if mechanism in BEARER_MECHANISMS:
        return BearerLogins(options, credentials, mechanism=mechanism, username=username, transcript=transcript,
                            check_only=check_only)
    return _smtp.StaticLogin(_smtp.SASLLogin(mechanism=mechanism, username=username, secret=options.get("password")))


class _SpoolDelivery:
    """A send that drains the account's spool too: window by window (see ``_spool.CLAIM_WINDOW``), each file brought
    up to date right after each of its transactions, and the send's own mail in the first window."""

    def __init__(self, spool: _spool.Spool | None, username: str, warnings: list[str],
                 sessions: _smtp.SessionProvider = _smtp.NEW_SESSIONS) -> None:
        self.spool = spool
        self.username = username
        self.warnings = warnings
        self.sessions = sessions
        self.fields: dict[str, t.Any] = {"attempts": 0, "failed_attempts": [], "spool_delivered": [],
                                         "spool_refused": []}
        self._unrecorded: set[str] = set()

    def _record(self, claim: _spool.Claim, message: _spool.SpooledMessage, outcome: _smtp.Outcome) -> str:
        try:
            return claim.record(message, outcome)
        except SmailError as exc:
            if message.path not in self._unrecorded:  # once per message, however often its state is recorded
                self._unrecorded.add(message.path)
                self.warnings.append(f"The spooled mail {message.message_id}: {exc.full_msg}")
            return "unrecorded"

    def _report(self, claim: _spool.Claim, message: _spool.SpooledMessage, state: str) -> None:
        current = claim.current(message)
        if state == "delivered":
            self.fields["spool_delivered"].append(message.message_id or message.path)
        elif state == "refused":
            self.fields["spool_refused"].append(current.summary())
            self.warnings.append(f"The spooled mail {message.message_id} was refused for good by the server for "
                                 f"{', '.join(current.refused)}; it is held at {current.path} and will not be retried.")
        elif state == "held":
            self.warnings.append(f"The spooled mail {message.message_id} was not delivered and will not be retried "
                                 f"({current.held_reason}); it is held at {current.path}.")

    def run(self, endpoint: _smtp.SMTPEndpoint, logins: _smtp.LoginSource, own: t.Sequence[_smtp.Envelope], *,
            policy: _retry.RetryPolicy, transcript: _smtp.Transcript,
            settle_own: t.Callable[[list[_smtp.Outcome]], None] = lambda outcomes: None) -> None:
        """Deliver the spooled mail, and ``own`` with the first window; ``settle_own`` gets ``own``'s outcomes at once.

        Drains window after window while a window settles at least one message; a window that settles none (the
        server is down, the account refused) ends the drain: what is left waits for the next send.
        """
        seen: set[str] = set()
        todo = list(own)
        first = True
        while True:
            with contextlib.ExitStack() as stack:
                try:
                    claim = stack.enter_context(self.spool.claim(self.username, skip=seen)) if self.spool else None
                except SmailError as exc:
                    if first:
                        raise  # nothing sent yet: the spool's problem is the task's
                    self.warnings.append(f"The rest of the mail spool was not delivered: {exc.full_msg}")
                    return
                first = False
                queued = claim.messages if claim is not None else []
                if not queued and not todo:
                    return
                settled = self._deliver_window(endpoint, logins, claim, queued, todo, policy=policy,
                                               transcript=transcript, settle_own=settle_own)
                todo = []
                if claim is not None:
                    seen.update(message.path for message in queued)
                    seen.update(claim.passed)
            if not queued or not settled:
                return

    def _deliver_window(self, endpoint: _smtp.SMTPEndpoint, logins: _smtp.LoginSource, claim: _spool.Claim | None,
                        queued: list[_spool.SpooledMessage], own: list[_smtp.Envelope], *,
                        policy: _retry.RetryPolicy, transcript: _smtp.Transcript,
                        settle_own: t.Callable[[list[_smtp.Outcome]], None]) -> int:
        """One window's spooled mail, then ``own``, over one connection; returns how many spooled mails were settled."""
        envelopes = [_smtp.Envelope(m.sender, m.recipients, m.data, m.message_id) for m in queued]
        spooled = {id(envelope): message for envelope, message in zip(envelopes, queued)}

        def record(outcome: _smtp.Outcome) -> None:
            message = spooled.get(id(outcome.envelope))
            if message is not None and claim is not None:
                self._record(claim, message, outcome)

        report = _smtp.deliver_envelopes(endpoint, logins, envelopes + own, policy=policy, transcript=transcript,
                                         on_transaction=record, sessions=self.sessions)
        self.fields["attempts"] += report.attempts
        self.fields["failed_attempts"].extend(report.failed_attempts)
        settled = 0
        for message, outcome in zip(queued, report.outcomes):
            state = self._record(t.cast("_spool.Claim", claim), message, outcome)
            self._report(t.cast("_spool.Claim", claim), message, state)
            settled += state != "pending"
        if own:
            settle_own(report.outcomes[len(queued):])
        return settled

    def pending(self) -> list[dict[str, t.Any]]:
        """What waits in the spool for the account now; after a delivery a listing that fails is only a warning."""
        if self.spool is None:
            return []
        try:
            return [message.summary() for message in self.spool.pending(self.username)]
        except SmailError as exc:
            self.warnings.append(f"The mail spool could not be listed after the delivery: {exc.full_msg}")
            return []


def flush_spool(options: t.Mapping[str, t.Any], *, transcript: _smtp.Transcript | None = None,
                sessions: _smtp.SessionProvider = _smtp.NEW_SESSIONS) -> Delivery:
    """Deliver what ``spool_dir`` holds for the options' SMTP account, as a send would before its own mail.

    ``sessions`` gives each attempt its connection (default: a new one per attempt).
    """
    transcript = transcript or _smtp.Transcript()
    spool = open_spool(options)
    if spool is None:
        raise OptionError("spool_dir", "is required to flush a spool")
    endpoint, credentials, username = connection_settings(options, default_username=None)
    policy = _connection.retry_policy(options)
    _refresh_expiry.warn_days(options)
    _mask_option_secrets(options, credentials, transcript)
    warnings: list[str] = []
    run = _SpoolDelivery(spool, username, warnings, sessions)
    if not spool.pending(username):
        return Delivery(result={**run.fields, "spool_pending": []}, secrets=sorted(transcript.secrets),
                        transcript=transcript)
    logins = _login_source(options, credentials, username=username, transcript=transcript)
    result: dict[str, t.Any] = {}
    _smtp.validate_connection(endpoint, logins.login())
    run.run(endpoint, logins, (), policy=policy, transcript=transcript)
    if isinstance(logins, BearerLogins):
        warnings.extend(logins.warnings)
        if logins.rotated:
            result["refresh_token_rotated"] = True
        expiry = logins.expiry()
        result.update(expiry.fields())
        warnings.extend(expiry.warnings)
    result.update(run.fields, spool_pending=run.pending())
    return Delivery(result=result, secrets=sorted(transcript.secrets), transcript=transcript, warnings=warnings)


def prepare_envelope(spec: _smtp.MessageSpec, *, option_prefix: str = "") -> _smtp.Envelope:
    """The message built and its envelope; OptionError names the option (``messages[2].to`` in a batch)."""
    try:
        msg = _smtp.build_message(spec)
        recipients = _smtp.envelope_recipients(spec)
        if not recipients:
            raise OptionError("to", "at least one recipient is required in to, cc or bcc")
        sender = _smtp.parse_address(spec.sender, option="sender").addr_spec
    except OptionError as exc:
        if not option_prefix:
            raise
        raise OptionError(f"{option_prefix}{exc.option}", exc.problem) from None
    return _smtp.Envelope(sender, tuple(recipients), _smtp.message_bytes(msg), msg["Message-ID"])


def _message_result(envelope: _smtp.Envelope, outcome: _smtp.Outcome | None) -> dict[str, t.Any]:
    return {"message_id": envelope.message_id, "sender": envelope.sender,
            "recipients": list(outcome.accepted) if outcome else [], "refused": dict(outcome.refused) if outcome else {},
            "spooled": False, "error": None}


def _refusal(result: dict[str, t.Any]) -> _smtp.SMTPError:
    refused = "; ".join(f"{address}: {reply}" for address, reply in result["refused"].items())
    return _smtp.SMTPError("recipients_refused", f"The server refused recipient(s) of {result['message_id']}: {refused} "
                           f"(delivered to: {', '.join(result['recipients']) or 'nobody'}).", stage="rcpt",
                           may_have_been_delivered=bool(result["recipients"]),
                           hint="Set allow_partial=true to accept a mail that reached only some recipients.")


class BatchDelivery(t.NamedTuple):
    """What :func:`deliver_batch` did: one result and, for a message that failed, its error, per message."""

    delivery: Delivery
    errors: list[SmailError | None]


def _settle_own(options: t.Mapping[str, t.Any], spool: _spool.Spool | None, envelope: _smtp.Envelope,
                outcome: _smtp.Outcome, *, account: str, endpoint: _smtp.SMTPEndpoint,
                warnings: list[str]) -> tuple[dict[str, t.Any], SmailError | None]:
    """The result of one of this send's messages: delivered, spooled, held (fate unknown), or failed with its error.

    A spool that cannot be written fails this message alone: the results of the others stay true.
    """
    result = _message_result(envelope, outcome)
    error = outcome.error
    if outcome.pending and error is not None and spool is not None and (error.transient or error.code == "delivery_unknown"):
        try:
            if error.transient:
                fields, warning = spool.keep_unsent(envelope, outcome, account=account, endpoint=endpoint, error=error)
            else:
                fields, warning = spool.hold_unknown(envelope, outcome, account=account, endpoint=endpoint, error=error)
        except SmailError as exc:
            kept = SmailError(exc.code, f"{error.msg} It could not be kept in the spool either: {exc.msg}", hint=exc.hint,
                              details={"may_have_been_delivered": bool(outcome.accepted) or error.code == "delivery_unknown",
                                       "cause": error.code})
            result.update(error=kept.code, msg=kept.full_msg)
            return result, kept
        result.update(fields)
        warnings.append(warning)
        if error.transient:
            return result, None
    if outcome.pending and error is not None:
        if outcome.accepted:
            error.details["may_have_been_delivered"] = True
        error = add_provider_hint(options, error)
        if result.get("held") and spool is not None:
            error.details.update(held=True, spool_path=result["spool_path"])
            error.msg = f"{error.msg} It is held in the spool at {result['spool_path']}, never sent again by itself."
            error.hint = (f"Check the recipients' mailboxes for {envelope.message_id}; then the smail.xoauth2.spool module "
                          f"with spool_dir={spool.directory} either releases it (release: ['{envelope.message_id}'], sent "
                          f"once more by flush: true or the next send) or deletes it (discard: ['{envelope.message_id}']).")
        result.update(error=error.code, msg=error.msg)
        return result, error
    if outcome.refused and not options.get("allow_partial"):
        refusal = _refusal(result)
        result.update(error=refusal.code, msg=refusal.msg)
        return result, refusal
    return result, None


#: Given the refresh token's expiry report once the access token is had, new message specs to send instead, or None.
ReviseMessages = t.Callable[[_refresh_expiry.ExpiryReport], t.Optional[t.Sequence[_smtp.MessageSpec]]]


def deliver_batch(options: t.Mapping[str, t.Any], specs: t.Sequence[_smtp.MessageSpec], *, check_only: bool = False,
                  transcript: _smtp.Transcript | None = None, option_prefix: str = "messages",
                  sessions: _smtp.SessionProvider = _smtp.NEW_SESSIONS,
                  revise: ReviseMessages | None = None) -> BatchDelivery:
    """Build, authenticate and send every message of ``specs`` over one connection with one token, retries and the spool.

    Every message is checked before the token endpoint or the SMTP server is contacted. A message the server certainly
    did not take (after the retries) goes to ``spool_dir`` when one is set, and one whose delivery became unknown is
    kept there held; mail spooled earlier for the same account is sent too (:class:`_SpoolDelivery`), the first
    window of it before this send's own mail, over the same connection. After a 421 or a dropped connection between
    messages the rest go over a new connection; a message the server accepted is never sent again. The result has
    ``results``, one per message, and the send's ``attempts``, ``failed_attempts``, ``spool_delivered``,
    ``spool_refused`` and ``spool_pending``. Raises SmailError for a failure that concerns every message (bad
    options, the token); the secrets to mask are then in ``transcript.secrets``. ``sessions`` gives each attempt its
    connection (default: a new one per attempt; check mode always opens its own).

    With a bearer mechanism the result has ``refresh_token_expires_at`` when the refresh token's expiry is known, and
    the warnings the one of ``refresh_token_warn_days`` when it is near. ``revise`` (the notify callback's) is called
    with that report once the token is had and before anything is sent; specs it returns replace ``specs`` (same
    number, checked again).
    """
    transcript = transcript or _smtp.Transcript()
    mechanism = options.get("auth") or "xoauth2"
    _refresh_expiry.warn_days(options)  # a bad value fails before the token endpoint is asked

    def envelopes_of(these: t.Sequence[_smtp.MessageSpec]) -> list[_smtp.Envelope]:
        return [prepare_envelope(spec, option_prefix=f"{option_prefix}[{index}]." if option_prefix else "")
                for index, spec in enumerate(these)]

    envelopes = envelopes_of(specs)
    endpoint, credentials, username = connection_settings(options, default_username=envelopes[0].sender)
    policy = _connection.retry_policy(options)
    spool = None if check_only else open_spool(options)
    _mask_option_secrets(options, credentials, transcript)

    warnings: list[str] = []
    run = _SpoolDelivery(spool, username, warnings, sessions)
    summary: dict[str, t.Any] = {"auth_mechanism": mechanism, **run.fields, "spool_pending": [], "token_source": None}
    results: list[dict[str, t.Any]] = []
    errors: list[SmailError | None] = []
    logins: _smtp.LoginSource
    bearer: BearerLogins | None = None
    if mechanism in BEARER_MECHANISMS:
        try:
            bearer = t.cast(BearerLogins, _login_source(options, credentials, username=username, transcript=transcript,
                                                        check_only=check_only))
        except _oauth2.TokenError as exc:
            if not (exc.transient and spool is not None):
                raise
            own_warnings: list[str] = []
            for envelope in envelopes:
                result, error = _settle_own(options, spool, envelope, _failed_before_sending(envelope, exc),
                                            account=username, endpoint=endpoint, warnings=own_warnings)
                results.append(result)
                errors.append(error)
            warnings.extend(_few(own_warnings))
            summary.update(results=results, spool_pending=run.pending())
            return BatchDelivery(Delivery(result=summary, secrets=sorted(transcript.secrets), transcript=transcript,
                                          warnings=warnings), errors=errors)
        logins = bearer
        revised = revise(bearer.expiry()) if revise is not None else None
        if revised is not None:
            if len(revised) != len(envelopes):
                raise ValueError("revise must return as many messages as it was given")
            envelopes = envelopes_of(revised)
    else:
        logins = _smtp.StaticLogin(_smtp.SASLLogin(mechanism=mechanism, username=username, secret=options.get("password")))
    _smtp.validate_connection(endpoint, logins.login())

    def token_source() -> str | None:  # a renewal changes it
        return bearer.token.source if bearer else None

    def finish(result: dict[str, t.Any]) -> None:
        if bearer is not None:
            warnings.extend(bearer.warnings)
            if bearer.rotated:
                result["refresh_token_rotated"] = True
            expiry = bearer.expiry()
            result.update(expiry.fields())
            warnings.extend(expiry.warnings)

    if check_only:
        with _smtp.SMTPSession(endpoint, logins.login(), transcript=transcript) as session:
            try:
                session.open_with(logins)
            except SmailError as exc:
                exc.details.setdefault("token_source", token_source())
                raise add_provider_hint(options, exc) from None
            session.quit()
        summary.update(attempts=1, token_source=token_source(),
                       results=[{**_message_result(envelope, None), "recipients": list(envelope.recipients)}
                                for envelope in envelopes])
        finish(summary)
        return BatchDelivery(Delivery(result=summary, secrets=sorted(transcript.secrets), transcript=transcript,
                                      token=bearer.token if bearer else None, warnings=warnings),
                             errors=[None] * len(envelopes))

    def settle_own(outcomes: list[_smtp.Outcome]) -> None:
        own_warnings: list[str] = []
        for envelope, outcome in zip(envelopes, outcomes):
            result, error = _settle_own(options, spool, envelope, outcome, account=username, endpoint=endpoint,
                                        warnings=own_warnings)
            results.append(result)
            errors.append(error)
        warnings.extend(_few(own_warnings))

    run.run(endpoint, logins, envelopes, policy=policy, transcript=transcript, settle_own=settle_own)
    summary.update(run.fields, results=results, token_source=token_source(), spool_pending=run.pending())
    finish(summary)
    return BatchDelivery(Delivery(result=summary, secrets=sorted(transcript.secrets), transcript=transcript,
                                  token=bearer.token if bearer else None, warnings=warnings), errors=errors)


def _few(warnings: list[str], shown: int = 3) -> list[str]:
    """A batch's warnings about its own messages, the first few in full: a batch of thousands spooled warns once."""
    if len(warnings) <= shown + 1:
        return warnings
    return warnings[:shown] + [f"{len(warnings) - shown} more messages of this batch were spooled or held likewise; "
                               "their results say where."]


def _failed_before_sending(envelope: _smtp.Envelope, error: _oauth2.TokenError) -> _smtp.Outcome:
    """The outcome of an envelope that was never offered to a server because no token could be had."""
    outcome = _smtp.Outcome(envelope, pending=list(envelope.recipients))
    outcome.error = _smtp.login_failure(error)
    return outcome


def deliver(options: t.Mapping[str, t.Any], spec: _smtp.MessageSpec, *, check_only: bool = False,
            transcript: _smtp.Transcript | None = None,
            sessions: _smtp.SessionProvider = _smtp.NEW_SESSIONS,
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
