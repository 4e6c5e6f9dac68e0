# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The device authorization grant (RFC 8628): a refresh token approved in a browser on any other device.

The controller asks the device authorization endpoint for a device code and a user code, shows the user code and
the verification URI, and polls the token endpoint with the device code until the user approved or refused, the code
expired, or the wait ran out. The request forms and the poll (:func:`poll_for_token`) are plain functions with the
HTTP post, the clock and the sleep passed in, so that every answer of the endpoint is tested without waiting.

The device code is a credential: whoever holds it while the user approves gets the tokens. It is never shown,
logged or put in a repr. The user code is meant to be shown; alone it obtains nothing.

This file has no Ansible imports.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils import _providers, _secrets
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import endpoint as _token_endpoint
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.plugin_utils._client_secrets import ClientSecrets
from ansible_collections.smail.xoauth2.plugins.plugin_utils._consent import (
    Authorization,
    ConsentError,
    authorization_from_token,
    resolve_endpoints,
)

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: The poll interval when the endpoint names none (RFC 8628 section 3.2).
DEFAULT_INTERVAL = 5
#: What ``slow_down`` adds to the interval, for this and every later poll (RFC 8628 section 3.5).
SLOW_DOWN_STEP = 5

#: Answers (RFC 8628 section 3.5, and Microsoft's ``authorization_declined``) that mean the user refused.
_REFUSALS = ("access_denied", "authorization_declined")

_DEVICE_HINTS = {
    "invalid_client": (
        "The endpoint does not accept this client for the device flow: check client_id, and give client_secret only "
        "for a confidential client. In Microsoft Entra ID, set App registrations > the app > Authentication > "
        "Allow public client flows to Yes."
    ),
    "unauthorized_client": (
        "This client may not use the device authorization grant: in Microsoft Entra ID, set App registrations > the "
        "app > Authentication > Allow public client flows to Yes; elsewhere, allow the device flow for the client."
    ),
}

#: How a form is posted: (URL, form) -> (HTTP status, JSON object of the answer); :func:`_token_endpoint.post_form`.
PostForm = t.Callable[[str, t.Mapping[str, str]], tuple[int, dict[str, t.Any]]]


@dataclasses.dataclass(frozen=True)
class DeviceClient:
    """The OAuth client and endpoints of one device authorization."""

    client_id: str
    client_secret: str | None
    device_authorization_uri: str
    token_uri: str
    scopes: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"DeviceClient(client_id={self.client_id!r}, device_authorization_uri={self.device_authorization_uri!r}, "
                f"token_uri={self.token_uri!r})")


@dataclasses.dataclass(frozen=True)
class DeviceAuthorization:
    """The device authorization endpoint's answer: what the user is shown, and the device code that is polled with."""

    device_code: str
    user_code: str
    verification_uri: str
    #: The verification URI with the user code in it, for a QR code or a click; None when the endpoint gave none.
    verification_uri_complete: str | None
    #: Seconds the device code lives.
    expires_in: int
    #: Seconds between two polls.
    interval: int

    def __repr__(self) -> str:
        return (f"DeviceAuthorization(user_code={self.user_code!r}, verification_uri={self.verification_uri!r}, "
                f"expires_in={self.expires_in!r}, interval={self.interval!r})")


def resolve_device_client(*, provider: str, client_id: str | None = None, client_secret: str | None = None,
                          device_authorization_uri: str | None = None, token_uri: str | None = None,
                          tenant: str | None = None, scopes: str | t.Iterable[str] | None = None,
                          client_secrets: ClientSecrets | None = None) -> DeviceClient:
    """The client of a device authorization; OptionError names a gap, or refuses a provider whose device flow cannot
    issue a mail token, before any request."""
    refusal = _providers.get_provider(provider).device_flow_refusal
    if refusal:
        raise OptionError("mode", f"device cannot be used with provider {provider!r}: {refusal}. "
                                  "Use mode=loopback (a browser on this machine) or mode=manual (a browser anywhere)")
    resolved = resolve_endpoints(
        provider=provider, endpoints={"device_authorization_uri": device_authorization_uri, "token_uri": token_uri},
        client_id=client_id, client_secret=client_secret, tenant=tenant, scopes=scopes, client_secrets=client_secrets)
    return DeviceClient(
        client_id=resolved.client_id,
        client_secret=resolved.client_secret,
        device_authorization_uri=resolved.endpoints["device_authorization_uri"],
        token_uri=resolved.endpoints["token_uri"],
        scopes=resolved.scopes,
    )


def _client_form(client: DeviceClient) -> dict[str, str]:
    form = {"client_id": client.client_id}
    if client.client_secret:
        form["client_secret"] = client.client_secret
    return form


def device_authorization_form(client: DeviceClient) -> dict[str, str]:
    """The form of the device authorization request (RFC 8628 section 3.1)."""
    return {**_client_form(client), "scope": " ".join(client.scopes)}


def device_token_form(client: DeviceClient, device_code: str) -> dict[str, str]:
    """The form of a poll of the token endpoint (RFC 8628 section 3.4)."""
    return {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, **_client_form(client)}


def _seconds(value: t.Any) -> int | None:
    """A positive whole number of seconds from a JSON number or numeric string; None for anything else."""
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 else None


def parse_device_authorization(status: int, data: t.Mapping[str, t.Any], *, uri: str) -> DeviceAuthorization:
    """The device authorization endpoint's answer; TokenError for a refusal or an answer without what is needed."""
    if status != 200 or data.get("error"):
        raise _token_endpoint.token_endpoint_error(
            str(data.get("error") or status), str(data.get("error_description") or ""),
            request="the device authorization request", hints=_DEVICE_HINTS, endpoint="device authorization endpoint")
    # Google's and Azure AD v1's answers say verification_url.
    verification_uri = data.get("verification_uri") or data.get("verification_url")
    fields = (data.get("device_code"), data.get("user_code"), verification_uri)
    expires_in = _seconds(data.get("expires_in"))
    if not all(isinstance(field, str) and field for field in fields) or expires_in is None:
        raise _token_endpoint.bad_response_error(
            f"The device authorization endpoint {uri} did not answer with device_code, user_code, verification_uri "
            "and expires_in.")
    complete = data.get("verification_uri_complete")
    _secrets.register(str(fields[0]))  # the device code obtains the tokens
    return DeviceAuthorization(
        device_code=str(fields[0]), user_code=str(fields[1]), verification_uri=str(verification_uri),
        verification_uri_complete=complete if isinstance(complete, str) and complete else None,
        expires_in=expires_in, interval=_seconds(data.get("interval")) or DEFAULT_INTERVAL,
    )


def _shown(shown_at: datetime.datetime | None) -> str:
    return f"The code was shown at {_refresh_expiry.iso_utc(shown_at)}. " if shown_at else ""


def _gave_up(authorization: DeviceAuthorization, *, timeout: float, expired: bool,
             shown_at: datetime.datetime | None = None) -> ConsentError:
    if expired:
        return ConsentError("device_code_expired", f"The device code expired ({authorization.expires_in} seconds) before "
                                                   "access was allowed: no refresh token was issued.",
                            hint=f"{_shown(shown_at)}Run the task again and enter the new code at "
                                 f"{authorization.verification_uri} in time.")
    return ConsentError("timeout", f"Access was not allowed within {timeout:g} seconds.",
                        hint=f"{_shown(shown_at)}Enter the code at {authorization.verification_uri} sooner, or raise timeout.")


def poll_for_token(client: DeviceClient, authorization: DeviceAuthorization, *, post: PostForm, timeout: float,
                   clock: t.Callable[[], float] = time.monotonic,
                   sleep: t.Callable[[float], t.Any] = time.sleep,
                   shown_at: datetime.datetime | None = None) -> dict[str, t.Any]:
    """Poll the token endpoint every ``interval`` seconds until it answers with tokens, which are returned.

    ``authorization_pending`` polls on, ``slow_down`` adds :data:`SLOW_DOWN_STEP` seconds to the interval. Raises
    ConsentError ``device_access_denied`` (refused), ``device_code_expired`` (the endpoint says so, or the next poll
    would come after the code's ``expires_in``) or ``timeout`` (it would come after ``timeout`` seconds), whose hints
    say when the code was ``shown_at``, and the TokenError of any other answer. The clock starts at the call.
    """
    started = clock()
    expired = timeout >= authorization.expires_in
    gives_up_at = started + min(timeout, authorization.expires_in)
    interval = authorization.interval
    form = device_token_form(client, authorization.device_code)
    while True:
        if clock() + interval > gives_up_at:
            raise _gave_up(authorization, timeout=timeout, expired=expired, shown_at=shown_at)
        sleep(interval)
        status, data = post(client.token_uri, form)
        error = str(data.get("error") or "")
        if status == 200 and not error:
            return data
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if error in _REFUSALS:
            raise ConsentError("device_access_denied", f"Access was refused at {authorization.verification_uri}: no "
                                                       "refresh token was issued.",
                               hint="Run the task again and allow access, signed in as the account that sends the mail.",
                               details={"endpoint_error": error})
        if error == "expired_token":
            raise _gave_up(authorization, timeout=timeout, expired=True, shown_at=shown_at)
        raise _token_endpoint.token_endpoint_error(error or str(status), str(data.get("error_description") or ""),
                                                   request="the device code", hints=_DEVICE_HINTS)


def run_device_flow(client: DeviceClient, *, timeout: float, tls: _grants.TLSSettings | None = None,
                    announce: t.Callable[[DeviceAuthorization], t.Any] = lambda authorization: None,
                    login_hint: str | None = None, post: PostForm | None = None,
                    clock: t.Callable[[], float] = time.monotonic,
                    sleep: t.Callable[[float], t.Any] = time.sleep,
                    now: t.Callable[[], datetime.datetime] = _grants.utcnow) -> Authorization:  # pylint: disable=protected-access
    """The whole device flow: ask for the codes, ``announce`` them, poll until approved, return the refresh token.

    A wait that ends without tokens says when (``now()`` after ``announce``) the code was shown."""
    tls = tls or _grants.TLSSettings()

    def post_with_tls(uri: str, form: t.Mapping[str, str]) -> tuple[int, dict[str, t.Any]]:
        return _token_endpoint.post_form(uri, form, tls=tls)

    post = post or post_with_tls
    status, data = post(client.device_authorization_uri, device_authorization_form(client))
    authorization = parse_device_authorization(status, data, uri=client.device_authorization_uri)
    announce(authorization)
    token = poll_for_token(client, authorization, post=post, timeout=timeout, clock=clock, sleep=sleep, shown_at=now())
    return authorization_from_token(token, requested_scopes=client.scopes, login_hint=login_hint)
