# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Talking to the token endpoint: a refresh, a service account's assertion, the client credentials, and their errors.

Imported only when a token is actually fetched: a send with a cached token never loads this file, nor google-auth.
Every failure becomes a :class:`_grants.TokenError` with a stable code and a hint naming what to check.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
import typing as t
import urllib.parse

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import MissingLibraryError, OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._net import goes_direct
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.app_grants import ClientCredentialsGrant, ServiceAccountGrant
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.expiry import expiry_from
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2.grants import AccessToken, Grant, RefreshTokenGrant, TLSSettings, TokenError, utcnow

if t.TYPE_CHECKING:
    import requests
    from google.auth.credentials import Credentials as GoogleCredentials
    from google.auth.transport.requests import Request as GoogleRequest

    class _RequestWithStatedLifetime(GoogleRequest):
        """What :func:`_timeout_request` returns: google-auth's transport, remembering the stated lifetime."""

        refresh_token_expires_in: t.Any

_ENDPOINT_ERROR_HINTS = {
    "invalid_grant": (
        "The refresh token has expired or was revoked: authorize again (smail.xoauth2.authorize or "
        "SmailRefreshToken.exe) and store the new refresh token."
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


def token_endpoint_error(code: str, description: str, *, request: str = "the refresh",
                         hints: t.Mapping[str, str] | None = None, endpoint: str = "token endpoint") -> TokenError:
    """A TokenError for an OAuth error answer (RFC 6749 section 5.2) of ``endpoint`` to ``request``.

    Known codes (those with a hint) are kept as the error code; others become ``token_endpoint_error``. ``hints``
    adds or replaces hints, for requests other than a refresh.
    """
    known_hints = {**_ENDPOINT_ERROR_HINTS, **(hints or {})}
    hint = known_hints.get(code)
    known = code if code in known_hints else "token_endpoint_error"
    return TokenError(known, f"The {endpoint} refused {request}: {code}: {description}".rstrip(": "), hint=hint,
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


def redirect_error(status: int, *, token_uri: str, location: str | None) -> TokenError:
    """A TokenError for a token endpoint that answered with a redirect, which is never followed."""
    target = urllib.parse.urlsplit(location or "").hostname or "an unnamed place"
    return TokenError(
        "token_endpoint_redirect",
        f"The token endpoint {token_uri} answered {status}, a redirect to {target}; token requests are not redirected, "
        "so that the client secret and the grant go to token_uri only.",
        hint="Set token_uri to the provider's OAuth 2.0 token endpoint itself (its final https:// URL); if a proxy or "
             "captive portal redirects, let the host reach the endpoint directly.",
        details={"status": status},
    )


def refuse_redirects(session: requests.Session, *, token_uri: str) -> None:
    """Make every request of the requests ``session`` raise :func:`redirect_error` on a 3xx instead of following it.

    The check is a response hook: it runs before requests would follow a redirect, so a 307 or 308 cannot re-send
    the form (with the client secret) elsewhere, whoever builds the request (google-auth, oauthlib or this file).
    """
    def refuse(response: requests.Response, *_args: t.Any, **_kwargs: t.Any) -> requests.Response:
        if 300 <= response.status_code < 400:
            response.close()
            raise redirect_error(response.status_code, token_uri=token_uri, location=response.headers.get("Location"))
        return response

    session.hooks["response"].append(refuse)


def bypass_proxies_for_plain_http(session: requests.Session, *, uri: str) -> None:
    """Make the requests ``session`` ignore the environment's proxies when ``uri`` is plain http (loopback only).

    requests reads ``HTTP_PROXY`` (and ``.netrc``) per request while ``trust_env`` is on: off, nothing but the
    session's own (empty) proxies is used, for google-auth's, oauthlib's and this file's requests alike.
    """
    if goes_direct(uri):
        session.trust_env = False
        session.proxies.clear()


def map_refresh_exception(exc: BaseException, *, token_uri: str, request: str = "the refresh",
                          hints: t.Mapping[str, str] | None = None) -> TokenError:
    """Translate what google-auth raises during a refresh into a TokenError with a stable code."""
    from google.auth import exceptions as gexc  # pylint: disable=import-outside-toplevel

    if isinstance(exc, TokenError):
        return exc  # raised by this file's own checks, such as refuse_redirects
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


def _requests_session(token_uri: str, tls: TLSSettings) -> requests.Session:
    import requests  # pylint: disable=import-outside-toplevel
    from requests.utils import get_environ_proxies  # pylint: disable=import-outside-toplevel

    session = requests.Session()
    if tls.ca_path or not tls.validate_certs:
        # With trust_env, requests lets REQUESTS_CA_BUNDLE override session.verify; an explicit choice must win,
        # so the environment is read for proxies only.
        session.trust_env = False
        session.proxies.update(get_environ_proxies(token_uri))
        session.verify = tls.ca_path if (tls.ca_path and tls.validate_certs) else tls.validate_certs
    bypass_proxies_for_plain_http(session, uri=token_uri)
    refuse_redirects(session, token_uri=token_uri)
    return session


def post_form(uri: str, form: t.Mapping[str, str], *, tls: TLSSettings) -> tuple[int, dict[str, t.Any]]:
    """POST ``form`` to the OAuth endpoint ``uri``: the status and JSON object of its answer, errors included.

    Raises TokenError: ``token_endpoint_unavailable`` (transient) for 5xx, 408 and 429, ``token_endpoint_bad_response``
    for an answer that is no JSON object, the transport's codes, and ``token_endpoint_redirect`` (never followed).
    """
    try:
        import requests  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise MissingLibraryError("requests", exc) from None
    session = _requests_session(uri, tls)
    try:
        response = session.post(uri, data=dict(form), timeout=tls.timeout, headers={"Accept": "application/json"})
    except requests.exceptions.RequestException as exc:
        raise transport_error(exc, token_uri=uri) from None
    finally:
        session.close()
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise TokenError("token_endpoint_unavailable", f"The token endpoint {uri} answered {response.status_code}.",
                         hint="The provider has an outage or limits the rate; the mail can wait in spool_dir.", transient=True)
    if not isinstance(data, dict):
        raise bad_response_error(f"The token endpoint {uri} answered {response.status_code} without JSON.")
    return response.status_code, data


#: What google-auth logs when a token answer's ``scope`` lacks a requested scope; the collection reports that itself
#: (``AccessToken.missing_scopes``), leaving out the scopes a provider never lists (Entra ID's ``offline_access``).
_GOOGLE_SCOPE_WARNING = "Not all requested scopes were granted"


class _WithoutGoogleScopeWarning:
    """A logging filter that drops google-auth's scope warning: with no logging configured it would reach stderr, which
    Ansible reports as data a worker process "errantly sent" there."""

    @staticmethod
    def filter(record: t.Any) -> bool:
        return not str(record.msg).startswith(_GOOGLE_SCOPE_WARNING)


def _hide_google_scope_warning() -> None:
    import logging  # pylint: disable=import-outside-toplevel

    logger = logging.getLogger("google.oauth2.credentials")
    if not any(isinstance(existing, _WithoutGoogleScopeWarning) for existing in logger.filters):
        logger.addFilter(_WithoutGoogleScopeWarning())


def missing_scopes(grant: RefreshTokenGrant, granted: t.Sequence[str]) -> tuple[str, ...]:
    """The scopes ``grant`` asked for that a token answer listing ``granted`` lacks; none when it listed none."""
    if not granted or not grant.send_scopes:
        return ()
    unlisted = _providers.get_provider(grant.provider).unlisted_scopes
    return tuple(scope for scope in grant.scopes if scope not in granted and scope not in unlisted)


def refresh_access_token(grant: RefreshTokenGrant, *, tls: TLSSettings | None = None) -> AccessToken:
    """Exchange the refresh token for a new access token at ``grant.token_uri``.

    A grant without a client secret is a public client's (Entra ID's "Allow public client flows"): its request has no
    ``client_secret`` field at all, as a public client must not send one
    (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token).

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
    request = _timeout_request(session, tls.timeout, public_client=not grant.client_secret)
    _hide_google_scope_warning()
    try:
        credentials.refresh(request)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # google-auth raises RefreshError/TransportError, and TypeError/KeyError on malformed bodies.
        raise map_refresh_exception(exc, token_uri=grant.token_uri,
                                    hints=_providers.get_provider(grant.provider).refresh_error_hints) from None
    finally:
        session.close()
    token = _google_token(credentials, token_uri=grant.token_uri, fallback_scopes=grant.scopes)
    rotated = credentials.refresh_token if credentials.refresh_token not in (None, grant.refresh_token) else None
    # google-auth keeps no field of the answer but the tokens and expiry: the request saw the rest.
    return token._replace(rotated_refresh_token=rotated,
                          refresh_token_expires_at=expiry_from(utcnow(), request.refresh_token_expires_in),
                          missing_scopes=missing_scopes(grant, tuple(getattr(credentials, "granted_scopes", None) or ())))


def _without_client_secret(body: t.Any) -> t.Any:
    """A form body (bytes or str) without its ``client_secret`` field; anything else as it is."""
    if not isinstance(body, (bytes, str)):
        return body
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    kept = urllib.parse.urlencode([(name, value) for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True)
                                   if name != "client_secret"])
    return kept.encode("utf-8") if isinstance(body, bytes) else kept


def _timeout_request(session: requests.Session, timeout: float, *, public_client: bool = False) -> _RequestWithStatedLifetime:
    """google-auth's requests transport with ``timeout``; for a ``public_client``, forms leave out ``client_secret``
    (google-auth always sends the field, empty when there is no secret)."""
    from google.auth.transport.requests import Request  # pylint: disable=import-outside-toplevel

    class _RequestWithTimeout(Request):
        #: The ``refresh_token_expires_in`` of the last JSON answer, as given (None when it had none).
        refresh_token_expires_in: t.Any = None

        def __call__(self, *args: t.Any, **kwargs: t.Any) -> t.Any:  # pylint: disable=signature-differs
            kwargs["timeout"] = timeout
            if public_client and "body" in kwargs:
                kwargs["body"] = _without_client_secret(kwargs["body"])
            response = super().__call__(*args, **kwargs)
            self.refresh_token_expires_in = _stated_refresh_lifetime(getattr(response, "data", b""))
            return response

    # The class is made here, where google-auth is imported: its static type is declared above, for type checkers.
    return t.cast("_RequestWithStatedLifetime", _RequestWithTimeout(session))


def _stated_refresh_lifetime(body: t.Any) -> t.Any:
    """``refresh_token_expires_in`` of a token endpoint's JSON answer; only that field is kept, never a token."""
    if b"refresh_token_expires_in" not in (body if isinstance(body, bytes) else b""):
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("refresh_token_expires_in") if isinstance(answer, dict) else None


def _google_token(credentials: GoogleCredentials, *, token_uri: str, fallback_scopes: tuple[str, ...]) -> AccessToken:
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
    status, data = post_form(grant.token_uri, form, tls=tls)
    if status != 200 or data.get("error"):
        raise token_endpoint_error(str(data.get("error") or status), str(data.get("error_description") or ""),
                                   request="the client credentials request", hints=_CLIENT_CREDENTIALS_HINTS)
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise bad_response_error(f"The token endpoint {grant.token_uri} returned no access_token.")
    expires_in = str(data.get("expires_in") or "")
    expires_at = utcnow() + datetime.timedelta(seconds=int(expires_in)) if expires_in.isdigit() else None
    return AccessToken(token=token, source="refresh", expires_at=expires_at, scopes=grant.scopes)


def fetch_access_token(grant: Grant, *, tls: TLSSettings | None = None) -> AccessToken:
    """A new access token for any grant: a refresh, a service account's assertion, or the client credentials."""
    if isinstance(grant, ServiceAccountGrant):
        return service_account_token(grant, tls=tls)
    if isinstance(grant, ClientCredentialsGrant):
        return client_credentials_token(grant, tls=tls)
    return refresh_access_token(grant, tls=tls)
