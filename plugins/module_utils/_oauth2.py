# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token core: OAuth 2.0 provider presets, access-token refresh, and a shared token cache.

A send through XOAUTH2 needs a short-lived access token. It is obtained from a long-lived refresh
token at the provider's token endpoint (RFC 6749 section 6) with google-auth, which is imported
only when a refresh is actually needed. Tokens are cached on the machine that refreshed them, so
that tasks, forks and hosts sharing one account refresh once per token lifetime.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._net import require_secure_url
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import ensure_private_directory, write_private_file
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows controllers are not supported by ansible-core
    fcntl = None  # type: ignore[assignment]


#: Seconds a cached token must stay valid to be handed out: enough for a slow send (Microsoft refuses a token
#: close to its expiry with 501 5.5.127).
EXPIRY_MARGIN_SECONDS = 300

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
MICROSOFT_TOKEN_URI = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
MICROSOFT_AUTH_URI = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"


@dataclasses.dataclass(frozen=True)
class ProviderPreset:
    """Defaults of one OAuth 2.0 mail provider."""

    name: str
    token_uri: str | None
    auth_uri: str | None
    scopes: tuple[str, ...]
    #: Azure AD refuses a refresh request without ``scope``; Google does not need it.
    send_scopes_on_refresh: bool
    smtp_host: str | None
    smtp_port: int | None
    smtp_secure: str | None
    #: Extra parameters of the consent URL that make the provider return a refresh token.
    consent_params: tuple[tuple[str, str], ...] = ()


# Google returns a refresh token only for offline access, and a new one only when the consent screen is shown again.
_OFFLINE_CONSENT = (("access_type", "offline"), ("prompt", "consent"))

PROVIDERS: dict[str, ProviderPreset] = {
    "google": ProviderPreset(
        name="google",
        token_uri=GOOGLE_TOKEN_URI,
        auth_uri=GOOGLE_AUTH_URI,
        scopes=("https://mail.google.com/",),
        send_scopes_on_refresh=False,
        smtp_host="smtp.gmail.com",
        smtp_port=465,
        smtp_secure="ssl",
        consent_params=_OFFLINE_CONSENT,
    ),
    "microsoft": ProviderPreset(
        name="microsoft",
        token_uri=MICROSOFT_TOKEN_URI,
        auth_uri=MICROSOFT_AUTH_URI,
        scopes=("https://outlook.office.com/SMTP.Send", "offline_access"),
        send_scopes_on_refresh=True,
        smtp_host="smtp.office365.com",
        smtp_port=587,
        smtp_secure="starttls",
    ),
    "custom": ProviderPreset(
        name="custom",
        token_uri=None,
        auth_uri=None,
        scopes=(),
        send_scopes_on_refresh=True,
        smtp_host=None,
        smtp_port=None,
        smtp_secure=None,
        consent_params=_OFFLINE_CONSENT,
    ),
}


@dataclasses.dataclass(frozen=True)
class RefreshTokenGrant:
    """What a token endpoint needs to turn a refresh token into an access token."""

    client_id: str
    client_secret: str | None
    refresh_token: str
    token_uri: str
    scopes: tuple[str, ...] = ()
    send_scopes: bool = False

    def __repr__(self) -> str:
        # Secrets stay out of reprs, so they cannot leak through a traceback or a debug print.
        return f"RefreshTokenGrant(client_id={self.client_id!r}, token_uri={self.token_uri!r}, scopes={self.scopes!r})"

    def cache_key(self) -> str:
        """A hash naming this grant in the token cache; it reveals nothing of the refresh token."""
        material = json.dumps([self.token_uri, self.client_id, self.refresh_token, sorted(self.scopes)])
        return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class TLSSettings:
    """How the token endpoint's certificate is checked."""

    validate_certs: bool = True
    ca_path: str | None = None
    timeout: float = 30.0


@dataclasses.dataclass(frozen=True)
class AccessToken:
    """An access token and where it came from (``given``, ``cache`` or ``refresh``)."""

    token: str
    source: str
    expires_at: datetime.datetime | None = None
    scopes: tuple[str, ...] = ()
    #: The new refresh token when the endpoint rotated it (Microsoft does on every refresh).
    rotated_refresh_token: str | None = None

    def __repr__(self) -> str:
        return f"AccessToken(source={self.source!r}, expires_at={self.expires_at!r}, scopes={self.scopes!r})"

    def expires_in(self, now: datetime.datetime | None = None) -> int | None:
        """Whole seconds until expiry, or None when unknown."""
        if self.expires_at is None:
            return None
        now = now or _utcnow()
        return max(0, int((self.expires_at - now).total_seconds()))


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def split_scopes(scopes: str | t.Iterable[str] | None) -> tuple[str, ...]:
    """Scopes given as a space-separated string or a list, as a tuple without duplicates."""
    if scopes is None:
        return ()
    items = scopes.split() if isinstance(scopes, str) else [part for item in scopes for part in str(item).split()]
    return tuple(dict.fromkeys(items))


def fill_tenant(uri: str, tenant: str | None) -> str:
    """``uri`` with its ``{tenant}`` placeholder (Microsoft endpoints) replaced by ``tenant``, ``common`` by default."""
    return uri.replace("{tenant}", tenant or "common") if "{tenant}" in uri else uri


def resolve_grant(
    *,
    provider: str,
    client_id: str | None,
    client_secret: str | None,
    refresh_token: str | None,
    token_uri: str | None = None,
    tenant: str | None = None,
    scopes: str | t.Iterable[str] | None = None,
) -> RefreshTokenGrant:
    """Combine explicit options with the provider preset; raise OptionError naming what is missing."""
    preset = PROVIDERS.get(provider)
    if preset is None:
        raise OptionError("provider", f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    if not client_id:
        raise OptionError("client_id", "is required to refresh an access token (or give access_token)")
    if not refresh_token:
        raise OptionError("refresh_token", "is required to refresh an access token (or give access_token)")
    uri = token_uri or preset.token_uri
    if not uri:
        raise OptionError("token_uri", f"is required with provider {provider!r}")
    uri = require_secure_url("token_uri", fill_tenant(uri, tenant))
    resolved_scopes = split_scopes(scopes) or preset.scopes
    return RefreshTokenGrant(
        client_id=client_id,
        client_secret=client_secret or None,
        refresh_token=refresh_token,
        token_uri=uri,
        scopes=resolved_scopes,
        send_scopes=preset.send_scopes_on_refresh and bool(resolved_scopes),
    )


# --- errors -------------------------------------------------------------------------------------

_ENDPOINT_ERROR_HINTS = {
    "invalid_grant": (
        "The refresh token has expired or was revoked: authorize again (smail.xoauth2.authorize or "
        "SmailRefreshToken.exe) and store the new refresh token. Google apps whose OAuth consent screen is left "
        "in 'Testing' get refresh tokens that expire after 7 days; publish the app to avoid that."
    ),
    "invalid_client": (
        "The token endpoint does not know this client: check client_id and client_secret "
        "(from the client_secret_*.json of the OAuth client) and that the client was not deleted."
    ),
    "unauthorized_client": (
        "This client may not use the refresh-token grant: the refresh token belongs to another client ID, "
        "or the OAuth client is not of the 'Desktop app' type."
    ),
    "invalid_scope": "The token endpoint refused the scopes: request only scopes that were granted at consent.",
}


class TokenError(SmailError):
    """The token endpoint refused the refresh, could not be reached, or answered nonsense.

    ``transient`` is True when trying again later may succeed (the endpoint was unreachable, timed out, or
    answered 5xx): the request certainly did not produce a token.
    """

    def __init__(self, code: str, msg: str, *, hint: str | None = None, details: dict[str, t.Any] | None = None,
                 transient: bool = False) -> None:
        super().__init__(code, msg, hint=hint, details=details)
        self.transient = transient


def token_endpoint_error(code: str, description: str, *, request: str = "the refresh",
                         hints: t.Mapping[str, str] | None = None) -> TokenError:
    """A TokenError for an OAuth error answer (RFC 6749 section 5.2) to ``request``.

    Known codes (those with a hint) are kept as the error code; others become ``token_endpoint_error``. ``hints``
    adds or replaces hints, for requests other than a refresh.
    """
    known_hints = {**_ENDPOINT_ERROR_HINTS, **(hints or {})}
    hint = known_hints.get(code)
    known = code if code in known_hints else "token_endpoint_error"
    return TokenError(known, f"The token endpoint refused {request}: {code}: {description}".rstrip(": "), hint=hint,
                      details={"endpoint_error": code})


def _shorten(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def transport_error(cause: BaseException, *, token_uri: str) -> TokenError:
    """A TokenError for a token endpoint that could not be talked to: untrusted certificate or network failure."""
    import requests  # pylint: disable=import-outside-toplevel

    if isinstance(cause, requests.exceptions.SSLError):
        return TokenError(
            "token_endpoint_tls",
            f"The certificate of the token endpoint {token_uri} could not be verified: {_shorten(cause, 300)}",
            hint="Set ca_path to the CA bundle that signed it (for example a TLS-inspecting proxy's CA); "
                 "validate_certs=false is for tests only.",
        )
    return TokenError(
        "token_endpoint_unreachable",
        f"The token endpoint {token_uri} could not be reached: {_shorten(cause, 300)}",
        hint="Check DNS, the network path and the HTTPS_PROXY/NO_PROXY environment of the host that refreshes.",
        transient=True,
    )


def bad_response_error(message: str) -> TokenError:
    """A TokenError for an answer that is not an OAuth token response (wrong URL, a proxy's page, ...)."""
    return TokenError("token_endpoint_bad_response", message,
                      hint="Check token_uri: it must be the provider's OAuth 2.0 token endpoint.")


def map_refresh_exception(exc: BaseException, *, token_uri: str) -> TokenError:
    """Translate what google-auth raises during a refresh into a TokenError with a stable code."""
    from google.auth import exceptions as gexc  # pylint: disable=import-outside-toplevel

    if isinstance(exc, gexc.TransportError):
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc.__cause__
        return transport_error(cause or exc, token_uri=token_uri)
    if isinstance(exc, gexc.RefreshError):
        data = exc.args[1] if len(exc.args) > 1 else None
        if getattr(exc, "retryable", False):
            # google-auth has already retried a 5xx, 408 or 429 answer three times with backoff.
            return TokenError("token_endpoint_unavailable", f"The token endpoint {token_uri} is unavailable: "
                              f"{_shorten(json.dumps(data) if isinstance(data, dict) else str(data))}",
                              hint="The provider has an outage or limits the rate; the mail can wait in spool_dir.",
                              transient=True)
        if isinstance(data, dict) and data.get("error"):
            return token_endpoint_error(str(data["error"]), str(data.get("error_description") or ""))
        message = str(exc.args[0]) if exc.args else str(exc)
        return bad_response_error(f"The token endpoint {token_uri} gave an unusable answer: {_shorten(message)}")
    return bad_response_error(f"The token endpoint {token_uri} gave an unusable answer ({type(exc).__name__}).")


# --- refresh ------------------------------------------------------------------------------------

class MissingLibraryError(SmailError):
    """A Python library needed for the refresh is not installed where the refresh runs."""

    def __init__(self, library: str, exc: ImportError) -> None:
        super().__init__("missing_library", f"The Python library {library} is required to refresh an access token: {exc}",
                         details={"library": library})
        self.library = library


def _requests_session(token_uri: str, tls: TLSSettings):
    import requests  # pylint: disable=import-outside-toplevel
    from requests.utils import get_environ_proxies  # pylint: disable=import-outside-toplevel

    session = requests.Session()
    if tls.ca_path or not tls.validate_certs:
        # With trust_env, requests lets REQUESTS_CA_BUNDLE override session.verify; an explicit choice must win,
        # so the environment is read for proxies only.
        session.trust_env = False
        session.proxies.update(get_environ_proxies(token_uri))
        session.verify = tls.ca_path if (tls.ca_path and tls.validate_certs) else tls.validate_certs
    return session


def refresh_access_token(grant: RefreshTokenGrant, *, tls: TLSSettings | None = None) -> AccessToken:
    """Exchange the refresh token for a new access token at ``grant.token_uri``.

    Raises TokenError (with a stable code) or MissingLibraryError; never returns a token without expiry
    unless the endpoint gave none.
    """
    tls = tls or TLSSettings()
    try:
        import requests  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
        from google.auth.transport.requests import Request  # pylint: disable=import-outside-toplevel
        from google.oauth2.credentials import Credentials  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibraryError("google-auth", exc) from None

    class _RequestWithTimeout(Request):
        def __call__(self, *args, **kwargs):  # pylint: disable=signature-differs
            kwargs["timeout"] = tls.timeout  # type: ignore[union-attr]  # set above; mypy does not narrow in closures
            return super().__call__(*args, **kwargs)

    credentials = Credentials(
        token=None,
        refresh_token=grant.refresh_token,
        client_id=grant.client_id,
        client_secret=grant.client_secret or "",
        token_uri=grant.token_uri,
        scopes=list(grant.scopes) if grant.send_scopes else None,
    )
    session = _requests_session(grant.token_uri, tls)
    try:
        credentials.refresh(_RequestWithTimeout(session))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # google-auth raises RefreshError/TransportError, and TypeError/KeyError on malformed bodies.
        raise map_refresh_exception(exc, token_uri=grant.token_uri) from None
    finally:
        session.close()
    if not credentials.token:
        raise bad_response_error(f"The token endpoint {grant.token_uri} returned no access_token.")
    expires_at = None
    if credentials.expiry is not None:
        expires_at = credentials.expiry.replace(tzinfo=datetime.timezone.utc)
    granted = tuple(credentials.granted_scopes or ()) or grant.scopes
    rotated = credentials.refresh_token if credentials.refresh_token not in (None, grant.refresh_token) else None
    return AccessToken(token=credentials.token, source="refresh", expires_at=expires_at, scopes=granted,
                       rotated_refresh_token=rotated)


# --- cache --------------------------------------------------------------------------------------

def default_cache_dir() -> str:
    """The cache directory used when none is given: ``~/.ansible/smail_xoauth2/tokens``."""
    return os.path.join(os.path.expanduser("~"), ".ansible", "smail_xoauth2", "tokens")


class TokenCache:
    """Access tokens on disk, one 0600 JSON file per grant in a 0700 directory.

    The lock taken by :meth:`locked` spans lookup, refresh and store, so concurrent tasks, forks and
    hosts on one machine refresh a grant once, not once each.
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or default_cache_dir()

    def _ensure_directory(self) -> None:
        try:
            ensure_private_directory(self.directory)
        except OSError as exc:
            raise SmailError("token_cache", f"Cannot create the token cache directory {self.directory}: {exc.strerror}",
                             hint="Set token_cache_dir to a writable directory or token_cache=false.") from None

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")

    @contextlib.contextmanager
    def locked(self, key: str) -> t.Iterator[None]:
        """Hold an exclusive lock for ``key`` (a no-op where fcntl is missing)."""
        self._ensure_directory()
        fd = os.open(os.path.join(self.directory, f"{key}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def load(self, key: str, *, now: datetime.datetime | None = None, margin: float = EXPIRY_MARGIN_SECONDS) -> AccessToken | None:
        """The cached token for ``key`` if it stays valid for more than ``margin`` seconds, else None."""
        now = now or _utcnow()
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                entry = json.load(handle)
            expires_at = datetime.datetime.fromtimestamp(float(entry["expires_at"]), datetime.timezone.utc)
            token = str(entry["access_token"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if (expires_at - now).total_seconds() <= margin:
            return None
        return AccessToken(token=token, source="cache", expires_at=expires_at, scopes=tuple(entry.get("scopes") or ()))

    def store(self, key: str, token: AccessToken) -> None:
        """Write ``token`` atomically (the collection's private-file writer: 0600 from creation, fsync, rename)."""
        if token.expires_at is None:
            return  # a token of unknown lifetime cannot be reused safely
        self._ensure_directory()
        entry = {"access_token": token.token, "expires_at": token.expires_at.timestamp(), "scopes": list(token.scopes)}
        write_private_file(self._path(key), json.dumps(entry).encode("utf-8"))


def obtain_access_token(
    *,
    grant: RefreshTokenGrant | None,
    access_token: str | None = None,
    cache: TokenCache | None = None,
    tls: TLSSettings | None = None,
    refresh: t.Callable[..., AccessToken] = refresh_access_token,
    refused: str | None = None,
    margin: float = EXPIRY_MARGIN_SECONDS,
    retry: RetryPolicy = NO_RETRY,
    sleep: t.Callable[[float], None] = time.sleep,
) -> AccessToken:
    """An access token for the grant: the given one as is, else a cached one, else a fresh refresh.

    ``refused`` is a token the server has just refused: it is never handed out again, and the refresh that
    replaces it happens once even when many processes saw it refused at the same time. A rotated refresh token is
    reported on the result; the cache keeps only the access token, under the old refresh token and, when rotated,
    under the new one too, so the next task finds it whichever it uses. Transient endpoint failures are retried
    as ``retry`` says.
    """
    if access_token:
        return AccessToken(token=access_token, source="given")
    if grant is None:
        raise OptionError("refresh_token", "either access_token or client_id, client_secret and refresh_token are required")

    def refresh_with_retries() -> AccessToken:
        started = time.monotonic()
        failures = 0
        while True:
            try:
                return refresh(grant, tls=tls)
            except TokenError as exc:
                failures += 1
                pause = retry.pause(failures, time.monotonic() - started) if exc.transient else None
                if pause is None:
                    exc.details.setdefault("token_attempts", failures)
                    raise
                sleep(pause)

    if cache is None:
        return refresh_with_retries()
    key = grant.cache_key()
    with cache.locked(key):
        cached = cache.load(key, margin=margin)
        if cached is not None and cached.token != refused:
            return cached
        token = refresh_with_retries()
        keys = [key]
        if token.rotated_refresh_token:
            keys.append(dataclasses.replace(grant, refresh_token=token.rotated_refresh_token).cache_key())
        for name in keys:
            try:
                cache.store(name, token)
            except OSError:
                pass  # a cache that cannot be written costs a refresh next time, never the send
        return token
