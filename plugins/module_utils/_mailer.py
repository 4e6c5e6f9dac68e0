# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""From option values to a delivered mail: the one send path of the module, the callback and the roles.

Options arrive as a plain mapping (``module.params`` or a plugin's ``get_option()`` values) with the
names of the ``oauth2``, ``tls`` and ``smtp`` option groups. This file has no Ansible imports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _ini, _oauth2, _smtp
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import write_private_file
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import RetryPolicy

if t.TYPE_CHECKING:
    from ansible_collections.smail.xoauth2.plugins.module_utils import _spool

BEARER_MECHANISMS = ("xoauth2", "oauthbearer")


@dataclasses.dataclass
class Credentials:
    """OAuth2 credentials from options, completed from a SMAIL refresh-token INI where options are silent."""

    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    token_uri: str | None = None
    account: str | None = None
    #: Where the refresh token came from: ``options`` or the token INI's path.
    origin: str = "options"

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, token_uri={self.token_uri!r}, account={self.account!r})"


def read_credentials(options: t.Mapping[str, t.Any]) -> Credentials:
    """The credentials named by the options; ``token_ini`` fills what the options leave empty."""
    credentials = Credentials(
        client_id=options.get("client_id"),
        client_secret=options.get("client_secret"),
        refresh_token=options.get("refresh_token"),
        token_uri=options.get("token_uri"),
    )
    path = options.get("token_ini")
    if not path:
        return credentials
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise OptionError("token_ini", f"cannot read {path}: {exc.strerror}") from None
    try:
        values = _ini.read_token_ini(data)
    except _ini.IniError as exc:
        raise OptionError("token_ini", f"{path} is not a readable token INI: {exc.problem}") from None
    for field in ("client_id", "client_secret", "refresh_token", "token_uri", "account"):
        if not getattr(credentials, field) and values.get(field):
            setattr(credentials, field, values[field])
            if field == "refresh_token":
                credentials.origin = path
    if not credentials.refresh_token and not options.get("access_token"):
        raise OptionError("token_ini", f"{path} holds no refresh token under the expected keys")
    return credentials


def tls_settings(options: t.Mapping[str, t.Any]) -> _oauth2.TLSSettings:
    """How certificates are checked, for the token endpoint and the SMTP server alike."""
    timeout = options.get("timeout") or 30
    if timeout <= 0:
        raise OptionError("timeout", "must be a positive number of seconds")
    return _oauth2.TLSSettings(validate_certs=options.get("validate_certs", True), ca_path=options.get("ca_path"),
                               timeout=float(timeout))


def token_cache(options: t.Mapping[str, t.Any]) -> _oauth2.TokenCache | None:
    """The shared token cache, or None when ``token_cache`` is off."""
    if not options.get("token_cache", True):
        return None
    return _oauth2.TokenCache(options.get("token_cache_dir"))


def obtain_token(options: t.Mapping[str, t.Any], credentials: Credentials | None = None, *,
                 refused: str | None = None) -> _oauth2.AccessToken:
    """An access token for the options: given, cached or refreshed; never ``refused``, a token the server refused."""
    if options.get("access_token"):
        return _oauth2.obtain_access_token(grant=None, access_token=options["access_token"])
    credentials = credentials or read_credentials(options)
    grant = _oauth2.resolve_grant(
        provider=options.get("provider") or "google",
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        refresh_token=credentials.refresh_token,
        token_uri=credentials.token_uri,
        tenant=options.get("tenant"),
        scopes=options.get("scopes"),
    )
    return _oauth2.obtain_access_token(grant=grant, cache=token_cache(options), tls=tls_settings(options), refused=refused,
                                       margin=expiry_margin(options), retry=retry_policy(options))


# --- rotated refresh tokens ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RotationOutcome:
    """What became of a refresh token the token endpoint replaced (Microsoft does on every refresh)."""

    new_refresh_token: str
    #: The token INI the new refresh token was written to, or None when it was not written anywhere.
    persisted_to: str | None = None
    #: Why it was not written although ``persist_rotated_token`` asked for it.
    warning: str | None = None

    def __repr__(self) -> str:
        return f"RotationOutcome(persisted_to={self.persisted_to!r}, warning={self.warning!r})"


def _token_ini_section(data: bytes, refresh_token: str) -> str | None:
    """The section from which :func:`_ini.read_token_ini` reads ``refresh_token``; None when it reads another value."""
    if _ini.read_token_ini(data).get("refresh_token") != refresh_token:
        return None
    values = _ini.read_ini(data)
    preferred = [name for name in values if name.lower() == _ini.TOKEN_INI_SECTION.lower()]
    if preferred:
        return preferred[0]
    # Without [OAUTH] the reader takes the first section holding a token key; earlier ones hold none.
    key = _ini.TOKEN_INI_KEYS["refresh_token"]
    return next(name for name in values if _ini.lookup(values, name, key) == refresh_token)


def persist_rotated_refresh_token(path: str, *, old_token: str, new_token: str) -> bool:
    """Replace ``old_token`` by ``new_token`` in the token INI at ``path``, atomically.

    Every other byte stays as it was (encoding, byte order mark, line breaks, other lines and keys), and the file
    keeps its mode and owner. Returns False, writing nothing, when the file no longer holds ``old_token``. Raises
    SmailError ``token_ini_write`` when the file cannot be read, understood or written.
    """
    real_path = os.path.realpath(path)
    try:
        with open(real_path, "rb") as handle:
            data = handle.read()
        original = os.stat(real_path)
    except OSError as exc:
        raise SmailError("token_ini_write", f"Cannot read {path}: {exc.strerror}.") from None
    try:
        section = _token_ini_section(data, old_token)
        if section is None:
            return False
        merged = _ini.merge_ini(data, _ini.token_ini_settings({"refresh_token": new_token}, section=section), source="token_ini")
    except _ini.IniError as exc:
        raise SmailError("token_ini_write", f"Cannot update {path}: {exc.field} {exc.problem}.") from None
    if merged.changed:
        try:
            write_private_file(real_path, merged.data, like=original)
        except OSError as exc:
            raise SmailError("token_ini_write", f"Cannot write {path}: {exc.strerror}.",
                             hint="The user running the task needs write access to the file and its directory.") from None
    return True


def settle_rotation(options: t.Mapping[str, t.Any], credentials: Credentials, token: _oauth2.AccessToken, *,
                    check_only: bool = False) -> RotationOutcome | None:
    """Deal with a refresh token the endpoint rotated; None when it did not rotate.

    With ``persist_rotated_token`` and a refresh token read from ``token_ini``, the new one is written back into that
    file (never in check mode); otherwise it is only handed back, for the caller to return or drop.
    """
    new_token = token.rotated_refresh_token
    if not new_token:
        return None
    if not options.get("persist_rotated_token") or check_only:
        return RotationOutcome(new_refresh_token=new_token)
    path = credentials.origin
    if path == "options" or not credentials.refresh_token:
        return RotationOutcome(new_token, warning="persist_rotated_token applies to a refresh token read from token_ini; "
                                                  "this one came from the options, so the new one was not stored.")
    try:
        written = persist_rotated_refresh_token(path, old_token=credentials.refresh_token, new_token=new_token)
    except SmailError as exc:
        return RotationOutcome(new_token, warning=f"The rotated refresh token was not stored: {exc.full_msg}")
    if not written:
        return RotationOutcome(new_token, warning=f"{path} no longer holds the refresh token that was used (changed "
                                                  "meanwhile); the rotated refresh token was not written to it.")
    return RotationOutcome(new_token, persisted_to=path)


def smtp_endpoint(options: t.Mapping[str, t.Any]) -> _smtp.SMTPEndpoint:
    """Host, port and TLS mode from the options, defaulting from the provider preset."""
    preset = _oauth2.PROVIDERS.get(options.get("provider") or "google", _oauth2.PROVIDERS["custom"])
    secure = options.get("secure") or preset.smtp_secure or "ssl"
    host = options.get("host") or preset.smtp_host
    if not host:
        raise OptionError("host", f"is required with provider {preset.name!r}")
    tls = tls_settings(options)
    return _smtp.SMTPEndpoint(host=host, port=int(options.get("port") or _smtp.DEFAULT_PORTS[secure]), secure=secure, timeout=tls.timeout,
                              validate_certs=tls.validate_certs, ca_path=tls.ca_path, ehlohost=options.get("ehlohost"))


def retry_policy(options: t.Mapping[str, t.Any]) -> RetryPolicy:
    """How transient failures are retried, from ``retries``, ``retry_delay`` and ``retry_max_time``."""
    retries = options.get("retries")
    delay = options.get("retry_delay")
    max_time = options.get("retry_max_time")
    policy = RetryPolicy(retries=2 if retries is None else int(retries), delay=1.0 if delay is None else float(delay),
                         max_time=60.0 if max_time is None else float(max_time))
    if policy.retries < 0:
        raise OptionError("retries", "must be 0 or more")
    if policy.delay < 0:
        raise OptionError("retry_delay", "must be 0 or more seconds")
    if policy.max_time <= 0:
        raise OptionError("retry_max_time", "must be a positive number of seconds")
    return policy


def expiry_margin(options: t.Mapping[str, t.Any]) -> float:
    """Seconds a cached token must stay valid to be used (``token_expiry_margin``)."""
    margin = options.get("token_expiry_margin")
    if margin is None:
        return _oauth2.EXPIRY_MARGIN_SECONDS
    if margin < 0:
        raise OptionError("token_expiry_margin", "must be 0 or more seconds")
    return float(margin)


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
        token = obtain_token(self.options, self.credentials, refused=refused)
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
    endpoint = smtp_endpoint(options)
    credentials = read_credentials(options) if mechanism in BEARER_MECHANISMS else Credentials()
    username = options.get("username") or credentials.account or default_username or ""
    # The secret is checked for presence later, once it is known; here only the shape of the connection.
    _smtp.validate_connection(endpoint, _smtp.SASLLogin(mechanism=mechanism, username=username, secret="unchecked"))
    return endpoint, credentials, username


def _mask_option_secrets(options: t.Mapping[str, t.Any], credentials: Credentials, transcript: _smtp.Transcript) -> None:
    for value in (options.get("client_secret"), options.get("refresh_token"), credentials.client_secret,
                  credentials.refresh_token, options.get("password")):
        transcript.add_secret(value)


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
    policy = retry_policy(options)
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
    policy = retry_policy(options)
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
                raise
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
            raise own.error
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


def expires_at_iso(token: _oauth2.AccessToken) -> str | None:
    """The token's expiry as ISO 8601 UTC (``2026-01-01T00:00:00Z``), or None."""
    if token.expires_at is None:
        return None
    return token.expires_at.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
