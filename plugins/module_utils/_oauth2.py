# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The token core: grants, access tokens from the token endpoint, and a shared token cache.

A send through XOAUTH2 needs a short-lived access token. It comes from one of three grants: a long-lived refresh
token (RFC 6749 section 6), a Google service account's signed assertion acting as a Workspace user (RFC 7523,
domain-wide delegation), or an app's client credentials (RFC 6749 section 4.4, Microsoft Entra ID). google-auth does
the work and is imported only when a token is actually fetched. Tokens are cached on the machine that fetched them,
so that tasks, forks and hosts sharing one grant fetch once per token lifetime. Provider knowledge (endpoints,
scopes) lives in ``_providers``.

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

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import ensure_private_directory, write_private_file
from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows controllers are not supported by ansible-core
    fcntl = None  # type: ignore[assignment]


#: Seconds a cached token must stay valid to be handed out: enough for a slow send (Microsoft refuses a token
#: close to its expiry with 501 5.5.127).
EXPIRY_MARGIN_SECONDS = 300


@dataclasses.dataclass(frozen=True)
class RefreshTokenGrant:
    """What a token endpoint needs to turn a refresh token into an access token."""

    client_id: str
    client_secret: str | None
    refresh_token: str
    token_uri: str
    scopes: tuple[str, ...] = ()
    send_scopes: bool = False
    grant_type: t.ClassVar[str] = _providers.REFRESH_TOKEN

    def __repr__(self) -> str:
        # Secrets stay out of reprs, so they cannot leak through a traceback or a debug print.
        return f"RefreshTokenGrant(client_id={self.client_id!r}, token_uri={self.token_uri!r}, scopes={self.scopes!r})"

    def cache_key(self) -> str:
        """A hash naming this grant in the token cache; it reveals nothing of the refresh token."""
        material = json.dumps([self.token_uri, self.client_id, self.refresh_token, sorted(self.scopes)])
        return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _digest(*parts: t.Any) -> str:
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class ServiceAccountGrant:
    """A Google service account that signs its own assertion (RFC 7523), acting as ``subject`` (domain-wide delegation)."""

    key: t.Mapping[str, t.Any] = dataclasses.field(compare=False)
    subject: str | None
    token_uri: str
    scopes: tuple[str, ...] = ()
    grant_type: t.ClassVar[str] = _providers.SERVICE_ACCOUNT

    def __repr__(self) -> str:
        return (f"ServiceAccountGrant(client_email={self.key.get('client_email')!r}, subject={self.subject!r}, "
                f"token_uri={self.token_uri!r}, scopes={self.scopes!r})")

    def cache_key(self) -> str:
        """A hash naming this grant in the token cache; it reveals nothing of the key."""
        return _digest(self.grant_type, self.token_uri, self.key.get("client_email"), self.key.get("private_key_id"),
                       self.key.get("private_key"), self.subject, sorted(self.scopes))


@dataclasses.dataclass(frozen=True)
class ClientCredentialsGrant:
    """An app token for the app itself (RFC 6749 section 4.4): a client secret, or a certificate's signed assertion."""

    client_id: str
    token_uri: str
    client_secret: str | None = None
    certificate: str | None = None
    certificate_key: str | None = None
    scopes: tuple[str, ...] = ()
    grant_type: t.ClassVar[str] = _providers.CLIENT_CREDENTIALS

    def __repr__(self) -> str:
        how = "certificate" if self.certificate else "secret"
        return f"ClientCredentialsGrant(client_id={self.client_id!r}, token_uri={self.token_uri!r}, with={how!r}, scopes={self.scopes!r})"

    def cache_key(self) -> str:
        """A hash naming this grant in the token cache; it reveals nothing of the secret or the key."""
        return _digest(self.grant_type, self.token_uri, self.client_id, self.client_secret, self.certificate,
                       self.certificate_key, sorted(self.scopes))


Grant = t.Union[RefreshTokenGrant, ServiceAccountGrant, ClientCredentialsGrant]


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


def parse_service_account_key(value: t.Any) -> dict[str, t.Any]:
    """The JSON key of a service account, given as a dict or as JSON text; OptionError without echoing the key."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise OptionError("service_account_key", "is not JSON (give the service account's JSON key file content)") from None
    if not isinstance(value, t.Mapping):
        raise OptionError("service_account_key", "must be the JSON key of a service account (a dict or JSON text)")
    if value.get("type") != "service_account":
        raise OptionError("service_account_key", f"is a key of type {value.get('type')!r}, not 'service_account'")
    missing = [field for field in ("client_email", "private_key") if not value.get(field)]
    if missing:
        raise OptionError("service_account_key", f"lacks {', '.join(missing)}")
    return dict(value)


def resolve_grant(
    *,
    provider: str,
    client_id: str | None,
    client_secret: str | None,
    refresh_token: str | None,
    token_uri: str | None = None,
    tenant: str | None = None,
    scopes: str | t.Iterable[str] | None = None,
    grant: str | None = None,
    service_account_key: t.Any = None,
    delegated_user: str | None = None,
    client_certificate: str | None = None,
    client_certificate_key: str | None = None,
) -> Grant:
    """Combine explicit options with the provider's registry entry; raise OptionError naming what is missing."""
    entry = _providers.get_provider(provider)
    grant_type = _providers.check_grant(entry, grant)
    resolved_scopes = split_scopes(scopes) or entry.default_scopes(grant_type)
    if grant_type == _providers.SERVICE_ACCOUNT:
        if not service_account_key:
            raise OptionError("service_account_key", "is required for grant=service_account")
        key = parse_service_account_key(service_account_key)
        uri = entry.endpoint("token_uri", explicit=token_uri or key.get("token_uri"), tenant=tenant, grant=grant_type)
        return ServiceAccountGrant(key=key, subject=delegated_user or None, token_uri=uri, scopes=resolved_scopes)
    if not client_id:
        raise OptionError("client_id", f"is required for grant={grant_type} (or give access_token)")
    uri = entry.endpoint("token_uri", explicit=token_uri, tenant=tenant, grant=grant_type)
    if grant_type == _providers.CLIENT_CREDENTIALS:
        if bool(client_certificate) != bool(client_certificate_key):
            raise OptionError("client_certificate_key" if client_certificate else "client_certificate",
                              "client_certificate and client_certificate_key go together")
        if not client_secret and not client_certificate:
            raise OptionError("client_secret", "or client_certificate and client_certificate_key are required for grant=client_credentials")
        if not resolved_scopes:
            raise OptionError("scopes", f"is required for grant=client_credentials with provider {entry.name!r}")
        return ClientCredentialsGrant(client_id=client_id, token_uri=uri, client_secret=client_secret or None,
                                      certificate=client_certificate or None, certificate_key=client_certificate_key or None,
                                      scopes=resolved_scopes)
    if not refresh_token:
        raise OptionError("refresh_token", "is required to refresh an access token (or give access_token)")
    return RefreshTokenGrant(
        client_id=client_id,
        client_secret=client_secret or None,
        refresh_token=refresh_token,
        token_uri=uri,
        scopes=resolved_scopes,
        send_scopes=entry.send_scopes_on_refresh and bool(resolved_scopes),
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


_SERVICE_ACCOUNT_HINTS = {
    "unauthorized_client": (
        "The service account may not act as delegated_user with these scopes: in the Google Admin console, Security > "
        "Access and data control > API controls > Manage domain-wide delegation, add the service account's client ID "
        "(its 'Unique ID', not its e-mail) with the scope https://mail.google.com/."
    ),
    "invalid_grant": (
        "The assertion was refused: the key may be deleted or disabled (Google Cloud console > IAM & Admin > Service "
        "accounts > Keys), this host's clock may be off, or delegated_user is not a user of the Workspace domain."
    ),
    "invalid_scope": "Request the scope https://mail.google.com/ (the default), as listed in the domain-wide delegation.",
}

_CLIENT_CREDENTIALS_HINTS = {
    "invalid_client": (
        "Entra ID did not accept the app's credential: check client_secret (Microsoft Entra admin center > App "
        "registrations > the app > Certificates & secrets: the secret's Value, not its Secret ID, and its expiry), or "
        "that client_certificate is the certificate uploaded there and client_certificate_key its private key."
    ),
    "unauthorized_client": "The app may not use the client credentials grant: check that it is a confidential client "
                           "of this tenant (App registrations > the app > Authentication).",
    "invalid_scope": "Client credentials take a resource's .default scope: https://outlook.office365.com/.default (the default).",
    "invalid_request": "Check tenant: app tokens need the tenant ID or domain of the app's directory, not common.",
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


def map_refresh_exception(exc: BaseException, *, token_uri: str, request: str = "the refresh",
                          hints: t.Mapping[str, str] | None = None) -> TokenError:
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
            return token_endpoint_error(str(data["error"]), str(data.get("error_description") or ""), request=request,
                                        hints=hints)
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
        from google.oauth2.credentials import Credentials  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibraryError("google-auth", exc) from None

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
        credentials.refresh(_timeout_request(session, tls.timeout))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # google-auth raises RefreshError/TransportError, and TypeError/KeyError on malformed bodies.
        raise map_refresh_exception(exc, token_uri=grant.token_uri) from None
    finally:
        session.close()
    token = _google_token(credentials, token_uri=grant.token_uri, fallback_scopes=grant.scopes)
    rotated = credentials.refresh_token if credentials.refresh_token not in (None, grant.refresh_token) else None
    return dataclasses.replace(token, rotated_refresh_token=rotated)


def _timeout_request(session, timeout: float):
    from google.auth.transport.requests import Request  # pylint: disable=import-outside-toplevel

    class _RequestWithTimeout(Request):
        def __call__(self, *args, **kwargs):  # pylint: disable=signature-differs
            kwargs["timeout"] = timeout
            return super().__call__(*args, **kwargs)

    return _RequestWithTimeout(session)


def _google_token(credentials, *, token_uri: str, fallback_scopes: tuple[str, ...]) -> AccessToken:
    if not credentials.token:
        raise bad_response_error(f"The token endpoint {token_uri} returned no access_token.")
    expires_at = credentials.expiry.replace(tzinfo=datetime.timezone.utc) if credentials.expiry is not None else None
    granted = tuple(getattr(credentials, "granted_scopes", None) or ()) or fallback_scopes
    return AccessToken(token=credentials.token, source="refresh", expires_at=expires_at, scopes=granted)


def service_account_token(grant: ServiceAccountGrant, *, tls: TLSSettings | None = None) -> AccessToken:
    """An access token for the service account acting as ``grant.subject``, through google-auth's JWT bearer grant."""
    tls = tls or TLSSettings()
    try:
        from google.oauth2 import service_account  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibraryError("google-auth", exc) from None
    try:
        # google-auth posts to the key's token_uri: the resolved one replaces it.
        credentials = service_account.Credentials.from_service_account_info(
            {**grant.key, "token_uri": grant.token_uri}, scopes=list(grant.scopes), subject=grant.subject)
    except (ValueError, KeyError, TypeError):
        raise OptionError("service_account_key", "holds no usable private key (give the JSON key file as downloaded)") from None
    session = _requests_session(grant.token_uri, tls)
    try:
        credentials.refresh(_timeout_request(session, tls.timeout))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise map_refresh_exception(exc, token_uri=grant.token_uri, request="the service account's assertion",
                                    hints=_SERVICE_ACCOUNT_HINTS) from None
    finally:
        session.close()
    return _google_token(credentials, token_uri=grant.token_uri, fallback_scopes=grant.scopes)


def client_assertion(grant: ClientCredentialsGrant, *, now: float | None = None) -> str:
    """The signed JWT that authenticates the app with its certificate (RS256, ``x5t`` = the certificate's SHA-1)."""
    import base64  # pylint: disable=import-outside-toplevel
    import ssl  # pylint: disable=import-outside-toplevel
    import uuid  # pylint: disable=import-outside-toplevel

    try:
        from google.auth import crypt, jwt  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibraryError("google-auth", exc) from None
    try:
        der = ssl.PEM_cert_to_DER_cert((grant.certificate or "").strip())
    except ValueError:
        raise OptionError("client_certificate", "is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    try:
        signer = crypt.RSASigner.from_string(grant.certificate_key or "")
    except (ValueError, IndexError, TypeError):
        raise OptionError("client_certificate_key", "is not a PEM RSA private key") from None
    thumbprint = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode("ascii")  # noqa: S324 - x5t is SHA-1 by definition
    issued = int(now if now is not None else time.time())
    claims = {"aud": grant.token_uri, "iss": grant.client_id, "sub": grant.client_id, "jti": str(uuid.uuid4()),
              "nbf": issued, "iat": issued, "exp": issued + 600}
    try:
        return jwt.encode(signer, claims, header={"x5t": thumbprint}).decode("ascii")
    except (TypeError, ValueError):  # an EC or otherwise non-RSA key loads, then cannot sign RS256
        raise OptionError("client_certificate_key", "is not a PEM RSA private key (RS256 needs RSA)") from None


def client_credentials_token(grant: ClientCredentialsGrant, *, tls: TLSSettings | None = None) -> AccessToken:
    """An app token from the client credentials grant (RFC 6749 section 4.4), authenticated by secret or certificate."""
    tls = tls or TLSSettings()
    form = {"grant_type": "client_credentials", "client_id": grant.client_id, "scope": " ".join(grant.scopes)}
    if grant.certificate:
        form.update(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    client_assertion=client_assertion(grant))
    else:
        form["client_secret"] = grant.client_secret or ""
    try:
        import requests  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibraryError("requests", exc) from None
    session = _requests_session(grant.token_uri, tls)
    try:
        response = session.post(grant.token_uri, data=form, timeout=tls.timeout, headers={"Accept": "application/json"})
    except requests.exceptions.RequestException as exc:
        raise transport_error(exc, token_uri=grant.token_uri) from None
    finally:
        session.close()
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise TokenError("token_endpoint_unavailable", f"The token endpoint {grant.token_uri} answered {response.status_code}.",
                         hint="The provider has an outage or limits the rate; the mail can wait in spool_dir.", transient=True)
    if not isinstance(data, dict):
        raise bad_response_error(f"The token endpoint {grant.token_uri} answered {response.status_code} without JSON.")
    if response.status_code != 200 or data.get("error"):
        raise token_endpoint_error(str(data.get("error") or response.status_code), str(data.get("error_description") or ""),
                                   request="the client credentials request", hints=_CLIENT_CREDENTIALS_HINTS)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise bad_response_error(f"The token endpoint {grant.token_uri} returned no access_token.")
    expires_in = str(data.get("expires_in") or "")
    expires_at = _utcnow() + datetime.timedelta(seconds=int(expires_in)) if expires_in.isdigit() else None
    return AccessToken(token=token, source="refresh", expires_at=expires_at, scopes=grant.scopes)


def fetch_access_token(grant: Grant, *, tls: TLSSettings | None = None) -> AccessToken:
    """A new access token for any grant: a refresh, a service account's assertion, or the client credentials."""
    if isinstance(grant, ServiceAccountGrant):
        return service_account_token(grant, tls=tls)
    if isinstance(grant, ClientCredentialsGrant):
        return client_credentials_token(grant, tls=tls)
    return refresh_access_token(grant, tls=tls)


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
    grant: Grant | None,
    access_token: str | None = None,
    cache: TokenCache | None = None,
    tls: TLSSettings | None = None,
    refresh: t.Callable[..., AccessToken] = fetch_access_token,
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
        if token.rotated_refresh_token and isinstance(grant, RefreshTokenGrant):
            keys.append(dataclasses.replace(grant, refresh_token=token.rotated_refresh_token).cache_key())
        for name in keys:
            try:
                cache.store(name, token)
            except OSError:
                pass  # a cache that cannot be written costs a refresh next time, never the send
        return token
