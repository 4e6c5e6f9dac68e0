# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The consent flow: obtain a refresh token as SmailRefreshToken.exe does, on the controller.

It is the OAuth 2.0 authorization code grant (RFC 6749 section 4.1) of a desktop client: PKCE with S256
(RFC 7636), a random ``state``, and a redirect to a loopback address (RFC 8252). google-auth-oauthlib's
``Flow`` builds the consent URL and exchanges the code. What its ``InstalledAppFlow.run_local_server`` does
not let a caller control is here: the wait for the redirect (an overall deadline, requests without a code
such as ``/favicon.ico`` ignored, the state checked before anything else, the page the browser shows), the
headless ``manual`` mode whose PKCE verifier waits in a file between two tasks, and errors with stable codes
(``access_denied``, ``state_mismatch``, ``timeout``, and the token endpoint's, such as ``invalid_grant``).

This file has no Ansible imports.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import html
import http.server
import json
import os
import socket
import threading
import time
import typing as t
import urllib.parse

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers, _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import endpoint as _token_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._private_file import (
    InsecurePathError,
    ensure_own_private_directory,
    read_private_file,
    write_private_file,
)
from ansible_collections.smail.xoauth2.plugins.plugin_utils._client_secrets import ClientSecrets

if t.TYPE_CHECKING:
    from google_auth_oauthlib.flow import Flow

#: How long a manual-mode authorization waits for its pasted redirect (Google's codes live about as long).
PENDING_LIFETIME_SECONDS = 600
LOOPBACK_HOST = "127.0.0.1"

_EXCHANGE_HINTS = {
    "invalid_grant": (
        "The authorization code was refused: it expired, was already used, or the PKCE code verifier does not match "
        "the challenge of the consent URL. Start the authorization again."
    ),
    "redirect_uri_mismatch": (
        "The token endpoint does not accept the loopback redirect URI for this client: use a Google client of the "
        "'Desktop app' type, or register http://localhost as a 'Mobile and desktop applications' redirect URI in Entra ID."
    ),
}


class ConsentError(SmailError):
    """The consent did not produce a refresh token: refused, interrupted, or answered with something unusable."""


@dataclasses.dataclass(frozen=True)
class ConsentClient:
    """The OAuth client and endpoints of one consent."""

    client_id: str
    client_secret: str | None
    auth_uri: str
    token_uri: str
    scopes: tuple[str, ...]
    #: Extra parameters of the consent URL, from the provider preset.
    consent_params: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return f"ConsentClient(client_id={self.client_id!r}, auth_uri={self.auth_uri!r}, token_uri={self.token_uri!r})"


@dataclasses.dataclass(frozen=True)
class PendingAuthorization:
    """A consent URL handed to the user, and what its code exchange will need."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str

    def __repr__(self) -> str:
        return f"PendingAuthorization(redirect_uri={self.redirect_uri!r})"


@dataclasses.dataclass(frozen=True)
class Authorization:
    """The outcome of a consent: a refresh token and what is known about it."""

    refresh_token: str
    access_token: str
    expires_in: int | None
    scopes: tuple[str, ...]
    #: The account from the ID token (scopes ``openid email``), else the login hint, else None.
    account: str | None
    #: When the token endpoint answered with the refresh token.
    obtained_at: datetime.datetime | None = None
    #: When the refresh token expires, if the token endpoint said so (``refresh_token_expires_in``).
    refresh_token_expires_at: datetime.datetime | None = None

    def __repr__(self) -> str:
        return (f"Authorization(account={self.account!r}, scopes={self.scopes!r}, expires_in={self.expires_in!r}, "
                f"refresh_token_expires_at={self.refresh_token_expires_at!r})")

    def record(self) -> _refresh_expiry.RefreshTokenRecord:
        """What the token cache keeps about the refresh token: when it was obtained and its stated expiry."""
        return _refresh_expiry.RefreshTokenRecord(obtained_at=self.obtained_at, expires_at=self.refresh_token_expires_at)


class ResolvedClient(t.NamedTuple):
    """A consent's client, endpoints and scopes, each from the options, then the client JSON, then the provider."""

    provider: _providers.Provider
    client_id: str
    client_secret: str | None
    #: The endpoints asked for, by option name, tenant filled in and https checked.
    endpoints: dict[str, str]
    scopes: tuple[str, ...]


def resolve_endpoints(*, provider: str, endpoints: t.Mapping[str, str | None], client_id: str | None = None,
                      client_secret: str | None = None, tenant: str | None = None,
                      scopes: str | t.Iterable[str] | None = None,
                      client_secrets: ClientSecrets | None = None) -> ResolvedClient:
    """The client and ``endpoints`` (option name: the option's value) of a consent; OptionError names a gap.

    Each endpoint is the option, else the client JSON's key of that name, else the provider's, in the order given.
    """
    entry = _providers.get_provider(provider)
    from_file = client_secrets or ClientSecrets(client_id="")  # an empty file fills nothing
    resolved_id = client_id or from_file.client_id
    if not resolved_id:
        raise OptionError("client_id", "is required (or give client_secrets_file)")
    resolved = {name: entry.endpoint(name, explicit=explicit or getattr(from_file, name, None), tenant=tenant)
                for name, explicit in endpoints.items()}
    resolved_scopes = _grants.split_scopes(scopes) or entry.default_scopes(_providers.REFRESH_TOKEN)
    if not resolved_scopes:
        raise OptionError("scopes", f"is required with provider {provider!r}")
    return ResolvedClient(entry, resolved_id, client_secret or from_file.client_secret, resolved, resolved_scopes)


def resolve_client(*, provider: str, client_id: str | None = None, client_secret: str | None = None,
                   auth_uri: str | None = None, token_uri: str | None = None, tenant: str | None = None,
                   scopes: str | t.Iterable[str] | None = None, client_secrets: ClientSecrets | None = None) -> ConsentClient:
    """The client of a consent in the browser (authorization code grant); OptionError names a gap."""
    resolved = resolve_endpoints(provider=provider, endpoints={"auth_uri": auth_uri, "token_uri": token_uri},
                                 client_id=client_id, client_secret=client_secret, tenant=tenant, scopes=scopes,
                                 client_secrets=client_secrets)
    return ConsentClient(
        client_id=resolved.client_id,
        client_secret=resolved.client_secret,
        auth_uri=resolved.endpoints["auth_uri"],
        token_uri=resolved.endpoints["token_uri"],
        scopes=resolved.scopes,
        consent_params=resolved.provider.consent_params,
    )


def loopback_redirect_uri(port: int) -> str:
    """The redirect URI of a desktop client listening on ``port`` of the IPv4 loopback address."""
    return f"http://{LOOPBACK_HOST}:{port}/"


def _flow(client: ConsentClient, redirect_uri: str, code_verifier: str | None = None) -> Flow:
    try:
        from google_auth_oauthlib.flow import Flow  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise SmailError("missing_library", f"The Python library google-auth-oauthlib is required on the controller "
                                            f"to obtain a refresh token: {exc}", details={"library": "google-auth-oauthlib"}) from None
    config = {"installed": {
        "client_id": client.client_id,
        # Flow reads the key even when the secret is given to fetch_token; a public client has an empty one.
        "client_secret": client.client_secret or "",
        "auth_uri": client.auth_uri,
        "token_uri": client.token_uri,
        "redirect_uris": [redirect_uri],
    }}
    return Flow.from_client_config(config, scopes=list(client.scopes), redirect_uri=redirect_uri, code_verifier=code_verifier)


def start_authorization(client: ConsentClient, *, redirect_uri: str, login_hint: str | None = None) -> PendingAuthorization:
    """A consent URL with a fresh PKCE verifier (S256) and state, redirecting to ``redirect_uri``."""
    flow = _flow(client, redirect_uri)
    # Flow always adds access_type=offline; only providers that ask for it in their preset get it (None drops it).
    params: dict[str, str | None] = {"access_type": None, **dict(client.consent_params)}
    if login_hint:
        params["login_hint"] = login_hint
    url, state = flow.authorization_url(**params)
    return PendingAuthorization(url=url, state=state, code_verifier=flow.code_verifier, redirect_uri=redirect_uri)


def _query(response: str) -> dict[str, str]:
    """The parameters of a redirect, given as the whole URL or as its query string."""
    text = response.strip()
    query = urllib.parse.urlsplit(text).query if "?" in text else text
    return dict(urllib.parse.parse_qsl(query, keep_blank_values=True))


def parse_authorization_response(response: str, *, expected_state: str) -> str:
    """The code of the redirect to the client, after its state was checked.

    Raises ConsentError ``state_mismatch`` first, then ``access_denied`` (the user refused) or ``authorization_error``
    (another error of the authorization endpoint), and OptionError when there is no code.
    """
    params = _query(response)
    state = params.get("state")
    if state is None or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise ConsentError("state_mismatch", "The redirect does not carry the state of the consent URL that was opened.",
                           hint="Use the URL of the browser's last page for the consent URL of this run; a redirect with "
                                "a foreign state may be a forged request.")
    error = params.get("error")
    if error == "access_denied":
        raise ConsentError("access_denied", "The consent was refused in the browser: no refresh token was issued.",
                           hint="Run the authorization again and allow access, with the account that sends the mail.")
    if error:
        description = params.get("error_description", "")
        raise ConsentError("authorization_error", f"The authorization endpoint answered {error}: {description}".rstrip(": "),
                           details={"endpoint_error": error})
    code = params.get("code")
    if not code:
        raise OptionError("authorization_response", "holds no code: give the whole URL the browser was sent to")
    return code


def account_from_id_token(id_token: str | None) -> str | None:
    """The account named by an OpenID Connect ID token (read, not verified: it came straight from the token endpoint)."""
    if not id_token or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict):
        return None
    return next((claims[name] for name in ("email", "preferred_username", "upn") if isinstance(claims.get(name), str)), None)


def _exchange_error(exc: BaseException, *, token_uri: str) -> SmailError:
    """Translate what requests and oauthlib raise during the code exchange into an error with a stable code."""
    import requests  # pylint: disable=import-outside-toplevel
    from oauthlib.oauth2.rfc6749 import errors as oauth_errors  # pylint: disable=import-outside-toplevel

    if isinstance(exc, SmailError):
        return exc  # already named, such as a refused redirect
    if isinstance(exc, requests.exceptions.RequestException):
        return _token_endpoint.transport_error(exc, token_uri=token_uri)
    if isinstance(exc, oauth_errors.MissingTokenError):
        return _token_endpoint.bad_response_error(f"The token endpoint {token_uri} returned no access_token.")
    if isinstance(exc, oauth_errors.OAuth2Error):
        return _token_endpoint.token_endpoint_error(exc.error, exc.description or "", request="the authorization code",
                                                    hints=_EXCHANGE_HINTS)
    return _token_endpoint.bad_response_error(f"The token endpoint {token_uri} gave an unusable answer ({type(exc).__name__}).")


@contextlib.contextmanager
def _plain_http_allowed(token_uri: str) -> t.Iterator[None]:
    """Let oauthlib talk to an ``http://`` token endpoint, which it refuses by default, for this exchange only.

    The refresh (google-auth) accepts such an endpoint too; the user chose it, as for a local test server.
    """
    if not token_uri.lower().startswith("http://"):
        yield
        return
    previous = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["OAUTHLIB_INSECURE_TRANSPORT"]
        else:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = previous


def exchange_code(client: ConsentClient, code: str, *, redirect_uri: str, code_verifier: str,
                  tls: _grants.TLSSettings | None = None, login_hint: str | None = None,
                  now: datetime.datetime | None = None) -> Authorization:
    """Exchange the authorization code, with its PKCE verifier, for a refresh token (obtained ``now``, by default
    when the token endpoint answered)."""
    tls = tls or _grants.TLSSettings()
    flow = _flow(client, redirect_uri, code_verifier=code_verifier)
    # A 307 would re-POST the code, its verifier and the client secret to wherever it points.
    _token_endpoint.refuse_redirects(flow.oauth2session, token_uri=client.token_uri)
    _token_endpoint.bypass_proxies_for_plain_http(flow.oauth2session, uri=client.token_uri)
    verify: bool | str = tls.ca_path if (tls.ca_path and tls.validate_certs) else tls.validate_certs
    try:
        # Client credentials in the body: Google accepts both ways, Azure AD public clients only this one.
        with _plain_http_allowed(client.token_uri):
            token = flow.fetch_token(code=code, include_client_id=True, client_secret=client.client_secret or None,
                                     verify=verify, timeout=tls.timeout)
    except Warning as changed:
        # oauthlib raises when the granted scopes differ from the requested ones (Azure AD drops offline_access);
        # the token is on the exception.
        token = getattr(changed, "token", None)
        if token is None:
            raise _exchange_error(changed, token_uri=client.token_uri) from None
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise _exchange_error(exc, token_uri=client.token_uri) from None
    return authorization_from_token(token, requested_scopes=client.scopes, login_hint=login_hint, now=now)


def authorization_from_token(token: t.Mapping[str, t.Any], *, requested_scopes: tuple[str, ...],
                             login_hint: str | None = None, now: datetime.datetime | None = None) -> Authorization:
    """The outcome of a consent from the token endpoint's answer; ConsentError ``no_refresh_token`` without one.

    The refresh token counts as obtained ``now`` (by default, when this is called, right after the answer), and
    expires then plus the answer's ``refresh_token_expires_in`` when it has one.
    """
    obtained_at = now or _grants.utcnow()  # pylint: disable=protected-access
    refresh_token = token.get("refresh_token")
    if not refresh_token:
        raise ConsentError("no_refresh_token", "The token endpoint issued an access token but no refresh token.",
                           hint="Google returns one for access_type=offline with prompt=consent; Microsoft when the scopes "
                                "include offline_access. Check the scopes and the provider.")
    try:
        expires_in: int | None = int(float(token["expires_in"]))
    except (KeyError, TypeError, ValueError):
        expires_in = None
    _secrets.register(str(refresh_token), str(token.get("access_token") or ""))
    return Authorization(
        refresh_token=str(refresh_token),
        access_token=str(token.get("access_token") or ""),
        expires_in=expires_in,
        scopes=_grants.split_scopes(token.get("scope")) or requested_scopes,
        account=account_from_id_token(token.get("id_token")) or login_hint or None,
        obtained_at=obtained_at,
        refresh_token_expires_at=_refresh_expiry.expiry_from(obtained_at, token.get("refresh_token_expires_in")),
    )


# --- loopback mode ------------------------------------------------------------------------------

_PAGE = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>smail.xoauth2</title></head>"
         "<body><h1>{title}</h1><p>{text}</p><p>You can close this tab and return to Ansible.</p></body></html>")


class _RedirectServer(http.server.HTTPServer):
    allow_reuse_address = False

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected_state = ""
        #: The code, or the error, of every redirect that carried one; the wait ends at the first.
        self.received: list[str | SmailError] = []
        #: Redirects with another state than the consent's: never the consent's answer, so the wait goes on.
        self.foreign = 0
        #: Told of each foreign redirect (without its parameters).
        self.note: t.Callable[[str], t.Any] = lambda message: None


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    server: _RedirectServer
    #: Seconds a connected client may take to send its request; a stalled one must not outlast the deadline.
    timeout = 10

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        params = _query(urllib.parse.urlsplit(self.path).query)
        if not {"code", "error", "state"} & params.keys():
            # The browser's own requests (favicon, prefetch) are not the redirect.
            self._answer(404, "Not found", "This address only receives the answer of the consent page.")
            return
        try:
            self.server.received.append(parse_authorization_response(self.path, expected_state=self.server.expected_state))
        except ConsentError as exc:
            if exc.code != "state_mismatch":
                self.server.received.append(exc)
                self._answer(400, "Authorization failed", exc.msg)
                return
            # Any local user can send this request: it must not end (or decide) the consent that is waiting.
            self.server.foreign += 1
            self.server.note(f"ignored a request to {loopback_redirect_uri(self.server.server_port)} whose state is not "
                             "the consent's (a forged request, or the answer to an older consent page); still waiting")
            self._answer(400, "Not this consent", "This answer does not belong to the consent that is waiting.")
            return
        except SmailError as exc:
            self.server.received.append(exc)
            self._answer(400, "Authorization failed", exc.msg)
            return
        self._answer(200, "Authorization received", "smail.xoauth2 has what it needs to obtain the refresh token.")

    def _answer(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: t.Any) -> None:  # pylint: disable=redefined-builtin
        pass  # the request line carries the authorization code


class LoopbackReceiver:
    """An HTTP server on the loopback address that waits for the browser's redirect back from the consent page."""

    def __init__(self, port: int = 0, *, note: t.Callable[[str], t.Any] = lambda message: None) -> None:
        try:
            self._server = _RedirectServer((LOOPBACK_HOST, port), _RedirectHandler)
        except OSError as exc:
            raise OptionError("port", f"cannot listen on {LOOPBACK_HOST}:{port}: {exc.strerror}") from None
        self._server.note = note

    @property
    def redirect_uri(self) -> str:
        return loopback_redirect_uri(int(self._server.server_port))

    def __enter__(self) -> LoopbackReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.server_close()

    def wait(self, *, state: str, timeout: float, clock: t.Callable[[], float] = time.monotonic) -> str:
        """The code of the first redirect with ``state``; ConsentError ``timeout`` after ``timeout`` seconds by ``clock``.

        Redirects with another state are answered, told to ``note`` and otherwise ignored until the deadline.
        """
        self._server.expected_state = state
        self._server.received.clear()
        self._server.foreign = 0
        deadline = clock() + timeout
        while not self._server.received:
            remaining = deadline - clock()
            if remaining <= 0:
                ignored = (f" ({self._server.foreign} request(s) with another state were ignored)"
                           if self._server.foreign else "")
                raise ConsentError("timeout", f"No answer of the consent page reached {self.redirect_uri} within "
                                              f"{timeout:g} seconds{ignored}.",
                                   hint="Open the URL shown in a browser on the controller and allow access, raise timeout, "
                                        "or use mode=manual where the controller has no browser.")
            self._server.timeout = remaining
            self._server.handle_request()
        outcome = self._server.received[0]
        if isinstance(outcome, SmailError):
            raise outcome
        return outcome


def _open_in_background(open_browser: t.Callable[[str], t.Any], url: str) -> None:
    """Call ``open_browser(url)`` without waiting: a console browser may only return once the redirect was served."""
    def run() -> None:
        with contextlib.suppress(Exception):
            open_browser(url)

    threading.Thread(target=run, name="smail-xoauth2-browser", daemon=True).start()


def run_loopback(client: ConsentClient, *, port: int = 0, timeout: float = 300, login_hint: str | None = None,
                 announce: t.Callable[[str], t.Any] = lambda url: None,
                 open_browser: t.Callable[[str], t.Any] | None = None,
                 tls: _grants.TLSSettings | None = None,
                 note: t.Callable[[str], t.Any] = lambda message: None,
                 clock: t.Callable[[], float] = time.monotonic) -> Authorization:
    """The whole consent on this machine: listen, show the URL, open the browser, wait for the redirect, exchange.

    ``note`` is told of each request to the listener with another state, which is ignored. The wait for the redirect
    ends ``timeout`` seconds after it began by ``clock``.
    """
    with LoopbackReceiver(port, note=note) as receiver:
        pending = start_authorization(client, redirect_uri=receiver.redirect_uri, login_hint=login_hint)
        announce(pending.url)
        if open_browser is not None:
            _open_in_background(open_browser, pending.url)
        code = receiver.wait(state=pending.state, timeout=timeout, clock=clock)
    return exchange_code(client, code, redirect_uri=pending.redirect_uri, code_verifier=pending.code_verifier, tls=tls,
                         login_hint=login_hint)


# --- manual mode --------------------------------------------------------------------------------

def default_pending_dir() -> str:
    """Where manual-mode authorizations wait: ``~/.ansible/smail_xoauth2/pending``."""
    return os.path.join(os.path.expanduser("~"), ".ansible", "smail_xoauth2", "pending")


class PendingStore:
    """Manual-mode authorizations between their two tasks.

    One 0600 JSON file per authorization in a 0700 directory, named by a hash of its state (the state itself is
    never on disk), read once and deleted, and ignored and removed after :data:`PENDING_LIFETIME_SECONDS`.

    A directory of another user, or one that others may write to, is refused with ``pending_store_insecure``: a
    planted entry would choose the code verifier and redirect URI of the exchange. An entry that is a symlink or
    another user's is not read: the authorization counts as unknown (``state_mismatch``) and the entry is removed.
    """

    def __init__(self, directory: str | None = None, *, lifetime: float = PENDING_LIFETIME_SECONDS) -> None:
        self.directory = directory or default_pending_dir()
        self.lifetime = lifetime

    def _path(self, state: str) -> str:
        return os.path.join(self.directory, hashlib.sha256(state.encode("utf-8")).hexdigest() + ".json")

    def _ensure_directory(self) -> None:
        try:
            ensure_own_private_directory(self.directory)
        except InsecurePathError as exc:
            raise SmailError("pending_store_insecure", f"The directory of pending authorizations {exc.path} {exc.reason}: "
                                                       "another user could plant an authorization there.",
                             hint=f"Make {self.directory} a directory of the user running Ansible with mode 0700, "
                                  "or remove it (it is created again).") from None
        except OSError as exc:
            raise SmailError("pending_store", f"Cannot create {self.directory}: {exc.strerror}") from None

    def purge(self, now: float | None = None) -> None:
        """Remove every authorization older than the lifetime."""
        now = time.time() if now is None else now
        with contextlib.suppress(OSError):
            for name in os.listdir(self.directory):
                path = os.path.join(self.directory, name)
                with contextlib.suppress(OSError):
                    if name.endswith(".json") and now - os.lstat(path).st_mtime > self.lifetime:
                        os.unlink(path)

    def save(self, pending: PendingAuthorization, client: ConsentClient) -> None:
        """Keep what the code exchange needs (the PKCE verifier, the redirect URI), mode 0600 from creation."""
        self._ensure_directory()
        self.purge()
        entry = {"created": time.time(), "client_id": client.client_id, "redirect_uri": pending.redirect_uri,
                 "code_verifier": pending.code_verifier}
        try:
            write_private_file(self._path(pending.state), json.dumps(entry).encode("utf-8"))
        except OSError as exc:
            raise SmailError("pending_store", f"Cannot write to {self.directory}: {exc.strerror}") from None

    def take(self, state: str) -> dict[str, t.Any]:
        """The authorization started with ``state``, removed from the store; ConsentError when unknown or expired."""
        self._ensure_directory()
        path = self._path(state)
        try:
            data = read_private_file(path)
            entry = json.loads(data) if data is not None else None
        except (OSError, ValueError, InsecurePathError):
            entry = None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if entry is None:
            raise ConsentError("state_mismatch", "No authorization started on this controller waits for this redirect.",
                               hint="It was already used, or the URL belongs to another authorization: run the first "
                                    "step (without authorization_response) again and use its URL.")
        if not isinstance(entry, dict) or time.time() - float(entry.get("created", 0)) > self.lifetime:
            raise ConsentError("timeout", f"The authorization was started more than {self.lifetime / 60:g} minutes ago.",
                               hint="Run the first step again and paste the redirect within that time.")
        return entry


def unused_port() -> int:
    """A TCP port of the loopback address that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        return int(probe.getsockname()[1])


def start_manual(client: ConsentClient, *, store: PendingStore, port: int = 0,
                 login_hint: str | None = None) -> PendingAuthorization:
    """First step without a local browser: a consent URL whose redirect the user copies back; the verifier is stored."""
    pending = start_authorization(client, redirect_uri=loopback_redirect_uri(port or unused_port()), login_hint=login_hint)
    store.save(pending, client)
    return pending


def finish_manual(client: ConsentClient, authorization_response: str, *, store: PendingStore,
                  tls: _grants.TLSSettings | None = None, login_hint: str | None = None) -> Authorization:
    """Second step: the pasted redirect's code, exchanged with the verifier stored by :func:`start_manual`."""
    state = _query(authorization_response).get("state")
    if not state:
        raise ConsentError("state_mismatch", "The pasted URL has no state parameter.",
                           hint="Paste the whole URL of the page the browser was sent to after the consent.")
    entry = store.take(state)
    if entry.get("client_id") != client.client_id:
        raise ConsentError("state_mismatch", "The redirect belongs to an authorization of another client_id.")
    code = parse_authorization_response(authorization_response, expected_state=state)
    return exchange_code(client, code, redirect_uri=str(entry["redirect_uri"]), code_verifier=str(entry["code_verifier"]),
                         tls=tls, login_hint=login_hint)
