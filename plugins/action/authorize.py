# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""smail.xoauth2.authorize: the consent flow of SmailRefreshToken.exe, on the controller, returning a refresh token."""

from __future__ import annotations

import os
import time
import typing as t
import webbrowser

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import cache as _token_cache
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._options import OAUTH2_ARGSPEC, TLS_ARGSPEC, merge_argspecs
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult
from ansible_collections.smail.xoauth2.plugins.plugin_utils import _client_secrets, _consent, _device_flow
from ansible_collections.smail.xoauth2.plugins.plugin_utils._core_adapter import keep_tokens_out_of_output, mask_result

display = Display()

# The client and its endpoints mean what they mean for smail.xoauth2.mail; like token_ini, the values come from the
# task only, never from the controller's environment.
_SHARED_OAUTH2_OPTIONS = ("provider", "client_id", "client_secret", "token_uri", "tenant", "scopes", "token_cache",
                          "token_cache_dir")

AUTHORIZE_ARGSPEC = merge_argspecs(
    {name: {key: value for key, value in OAUTH2_ARGSPEC[name].items() if key != "fallback"} for name in _SHARED_OAUTH2_OPTIONS},
    # The TLS group's timeout is the token endpoint's; here timeout is the wait for the consent.
    {name: TLS_ARGSPEC[name] for name in ("validate_certs", "ca_path")},
    {
        "client_secrets_file": {"type": "path", "no_log": False},
        "auth_uri": {"type": "str"},
        "device_authorization_uri": {"type": "str"},
        "login_hint": {"type": "str"},
        "mode": {"type": "str", "default": "loopback", "choices": ["loopback", "manual", "device"], "aliases": ["flow"]},
        "port": {"type": "int", "default": 0},
        "timeout": {"type": "int", "default": 300},
        "open_browser": {"type": "bool", "default": True},
        "authorization_response": {"type": "str", "no_log": True},
    },
)


def show_now(message: str) -> None:
    """Show ``message`` at once, whatever stdout is: what the user must act on while the task waits.

    A worker's display goes to the controller, which writes it to its stdout without flushing: to a pipe or a file
    (CI jobs, ``| tee``, job logs) stdout is block-buffered and nothing would appear before the task ends. Python
    writes stderr line by line whatever it is, so the message goes there (and to the log file, as any display).
    """
    display.display(message, stderr=True)


def open_in_browser(url: str) -> bool:
    """Open ``url`` with Python's webbrowser, so BROWSER is honoured; False when no browser was opened.

    Without BROWSER, a console browser (lynx, w3m) that webbrowser would pick on a terminal is not started: it would
    fight Ansible for the terminal. The URL is shown anyway.
    """
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    # webbrowser runs console browsers as GenericBrowser; graphical ones are BackgroundBrowser or UnixBrowser.
    console = isinstance(browser, webbrowser.GenericBrowser) and not isinstance(browser, webbrowser.BackgroundBrowser)
    if console and not os.environ.get("BROWSER"):
        return False
    return browser.open(url, new=1, autoraise=True)


def authorized_result(authorization: _consent.Authorization) -> dict[str, t.Any]:
    """The task result of a consent that produced a refresh token: registered in full, the token out of the output."""
    result = {
        "changed": True,
        "refresh_token": authorization.refresh_token,
        "account": authorization.account,
        "scopes": list(authorization.scopes),
        "expires_in": authorization.expires_in,
    }
    expires_at = _refresh_expiry.iso_utc(authorization.refresh_token_expires_at)
    if expires_at:
        result[_refresh_expiry.RESULT_KEY] = expires_at
    return keep_tokens_out_of_output(result, label="smail.xoauth2.authorize")


def record_refresh_token(args: t.Mapping[str, t.Any], authorization: _consent.Authorization) -> str | None:
    """Keep when the refresh token was obtained, and its stated expiry, in the controller's token cache.

    Best effort: the refresh token is the result, and a cache that cannot be written costs only the warning
    returned (never a secret). Nothing is written with ``token_cache=false``.
    """
    if not args.get("token_cache", True):
        return None
    try:
        cache = _token_cache.TokenCache(args.get("token_cache_dir"))
        cache.store_refresh_record(authorization.refresh_token, authorization.record())
    except SmailError as exc:
        return f"When the refresh token was obtained is not recorded in the token cache: {exc.full_msg}"
    return None


class ActionModule(ActionBase):
    """Run the consent on the controller: loopback (a browser here), manual (a browser anywhere, two tasks) or device
    (a code entered on any device, RFC 8628)."""

    TRANSFERS_FILES = False
    _supports_check_mode = False
    _supports_async = False
    #: What the waits for the consent (the loopback redirect, the device flow's polls) read and pause with.
    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        secrets: set[str] = set()
        try:
            _validation, args = self.validate_argument_spec(AUTHORIZE_ARGSPEC)
            secrets.update(str(args[name]) for name, spec in AUTHORIZE_ARGSPEC.items() if spec.get("no_log") and args.get(name))
            result.update(self._authorize(args, secrets))
        except SmailError as exc:
            result.update(TaskResult.from_error(exc).fields, failed=True)
        # Nothing above echoes a secret of the task's arguments; this keeps it so if a message ever did.
        return mask_result(result, secrets)

    def _authorize(self, args: dict[str, t.Any], secrets: set[str]) -> dict[str, t.Any]:
        from_file = _client_secrets.read_client_secrets(self, args["client_secrets_file"]) if args.get("client_secrets_file") else None
        if from_file is not None and from_file.client_secret:
            secrets.add(from_file.client_secret)
        if not 0 <= args["port"] <= 65535:
            raise OptionError("port", "must be between 0 and 65535")
        if args["mode"] != "manual":
            if args.get("authorization_response"):
                raise OptionError("authorization_response", "is for mode=manual")
            if args["timeout"] <= 0:
                raise OptionError("timeout", "must be a positive number of seconds")
        tls = _grants.TLSSettings(validate_certs=args["validate_certs"], ca_path=args.get("ca_path"))
        if args["mode"] == "device":
            authorization = self._device(args, from_file, tls, secrets)
        else:
            client = _consent.resolve_client(
                provider=args["provider"], client_id=args.get("client_id"), client_secret=args.get("client_secret"),
                auth_uri=args.get("auth_uri"), token_uri=args.get("token_uri"), tenant=args.get("tenant"),
                scopes=args.get("scopes"), client_secrets=from_file,
            )
            if args["mode"] == "manual" and not args.get("authorization_response"):
                return self._start_manual(client, args)
            authorization = (self._finish_manual(client, args, tls) if args["mode"] == "manual"
                             else self._loopback(client, args, tls))
        account = f" for {authorization.account}" if authorization.account else ""
        expires_at = _refresh_expiry.iso_utc(authorization.refresh_token_expires_at)
        expiry = f"; the token endpoint says it expires at {expires_at}" if expires_at else ""
        display.display(f"smail.xoauth2.authorize: refresh token obtained{account}{expiry}; it is in the registered "
                        "result, not in the output.")
        result = authorized_result(authorization)
        warning = record_refresh_token(args, authorization)
        if warning:
            result["warnings"] = [warning]
        return result

    @staticmethod
    def _start_manual(client: _consent.ConsentClient, args: dict[str, t.Any]) -> dict[str, t.Any]:
        pending = _consent.start_manual(client, store=_consent.PendingStore(), port=args["port"], login_hint=args.get("login_hint"))
        display.display(f"smail.xoauth2.authorize: open this URL in a browser, allow access, then give the address "
                        f"of the page it lands on (starting with {pending.redirect_uri}) as authorization_response "
                        f"within {_consent.PENDING_LIFETIME_SECONDS // 60} minutes:\n{pending.url}")
        return {
            "changed": False,
            "authorization_url": pending.url,
            "redirect_uri": pending.redirect_uri,
            "msg": "Open authorization_url, allow access, and run this task again with authorization_response set "
                   "to the address the browser lands on.",
        }

    @staticmethod
    def _finish_manual(client: _consent.ConsentClient, args: dict[str, t.Any],
                       tls: _grants.TLSSettings) -> _consent.Authorization:
        return _consent.finish_manual(client, args["authorization_response"], store=_consent.PendingStore(), tls=tls,
                                      login_hint=args.get("login_hint"))

    def _loopback(self, client: _consent.ConsentClient, args: dict[str, t.Any], tls: _grants.TLSSettings) -> _consent.Authorization:
        return _consent.run_loopback(
            client, port=args["port"], timeout=args["timeout"], login_hint=args.get("login_hint"), tls=tls,
            announce=lambda url: show_now(
                f"smail.xoauth2.authorize: waiting up to {args['timeout']} seconds for the consent. If no browser "
                f"opens, open this URL in a browser on this machine:\n{url}"),
            open_browser=open_in_browser if args["open_browser"] else None,
            note=lambda message: display.v(f"smail.xoauth2.authorize: {message}"), clock=self.clock,
        )

    def _device(self, args: dict[str, t.Any], from_file: _client_secrets.ClientSecrets | None, tls: _grants.TLSSettings,
                secrets: set[str]) -> _consent.Authorization:
        client = _device_flow.resolve_device_client(
            provider=args["provider"], client_id=args.get("client_id"), client_secret=args.get("client_secret"),
            device_authorization_uri=args.get("device_authorization_uri"), token_uri=args.get("token_uri"),
            tenant=args.get("tenant"), scopes=args.get("scopes"), client_secrets=from_file,
        )

        def announce(authorization: _device_flow.DeviceAuthorization) -> None:
            # The device code obtains the tokens: it must never reach the output, even through an endpoint's message.
            secrets.add(authorization.device_code)
            wait = min(args["timeout"], authorization.expires_in)
            complete = (f"\nor open {authorization.verification_uri_complete} , which carries the code"
                        if authorization.verification_uri_complete else "")
            show_now(f"smail.xoauth2.authorize: on any device, open {authorization.verification_uri} and enter "
                     f"the code {authorization.user_code}{complete}\nthen sign in and allow access; waiting up "
                     f"to {wait} seconds.")

        return _device_flow.run_device_flow(client, timeout=args["timeout"], tls=tls, announce=announce,
                                            login_hint=args.get("login_hint"), clock=self.clock, sleep=self.sleep)
