# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sandbox: every server started on free loopback ports, and ``sandbox.json`` written once all listen."""

from __future__ import annotations

import dataclasses
import secrets
import socketserver
import ssl
import threading
import typing as t
import uuid
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .common import (
    ACCOUNT,
    AUTHORIZE_PATH,
    CA_FILE,
    DEVICE_APPROVE_PATH,
    DEVICE_CODE_PATH,
    DEVICE_DENY_PATH,
    DEVICE_VERIFICATION_PATH,
    FAULT_TOKEN_PATH,
    GMAIL_SCOPE,
    GMAIL_SIZE_LIMIT,
    HOST,
    MAIL_DIR,
    MICROSOFT_ACCOUNT,
    MICROSOFT_AUTHORIZE_PATH,
    MICROSOFT_DEVICE_CODE_PATH,
    MICROSOFT_SMTP_SCOPE,
    MICROSOFT_TOKEN_PATH,
    REVOKE_PATH,
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
    SETTINGS_FILE,
    SMALL_SIZE_LIMIT,
    SMTP_HOSTNAME,
    TOKEN_LOG_FILE,
    TOKEN_NO_ACCESS_TOKEN_PATH,
    TOKEN_NOT_JSON_PATH,
    TOKEN_PATH,
    TOKENINFO_PATH,
    UNTRUSTED_CA_FILE,
    free_port,
    write_json_atomically,
)
from .endpoint import TokenEndpointApp, TokenEndpointServer
from .faults import FaultRegistry
from .identities import MicrosoftApp, ServiceAccount, private_key_pem
from .oauth import TokenAuthority
from .smtp import AppPasswordAuthenticator, GmailLikeHandler, GreetingRefusalServer, MailStore, RelaySinkHandler, SandboxController


@dataclasses.dataclass(frozen=True)
class TlsMaterial:
    """Server TLS contexts of the trusted and the untrusted CA."""

    trusted: ssl.SSLContext
    untrusted: ssl.SSLContext


@dataclasses.dataclass(frozen=True)
class AppOnlyGrants:
    """The identities of the app-only grants, with the private keys handed to clients in ``sandbox.json``."""

    workspace_user: str
    delegated: ServiceAccount
    delegated_key: rsa.RSAPrivateKey = dataclasses.field(repr=False)
    undelegated: ServiceAccount
    undelegated_key: rsa.RSAPrivateKey = dataclasses.field(repr=False)
    app: MicrosoftApp
    app_certificate: x509.Certificate
    app_key: rsa.RSAPrivateKey = dataclasses.field(repr=False)

    @classmethod
    def register(cls, authority: TokenAuthority, *, workspace_user: str, app_mailbox: str) -> AppOnlyGrants:
        """New service accounts (one with domain-wide delegation of the mail scope for ``workspace_user``'s domain)
        and an Entra ID app that may send as ``app_mailbox``, registered with ``authority``."""
        domain = workspace_user.rpartition("@")[2].lower()
        delegated, delegated_key = ServiceAccount.generate(
            "notifier", delegated_domain=domain, delegated_scopes=frozenset({GMAIL_SCOPE}))
        undelegated, undelegated_key = ServiceAccount.generate("reporter")
        app, app_certificate, app_key = MicrosoftApp.generate(mailbox=app_mailbox)
        for account in (delegated, undelegated):
            authority.register_service_account(account)
        authority.register_app(app)
        return cls(workspace_user, delegated, delegated_key, undelegated, undelegated_key, app, app_certificate, app_key)

    def settings(self, *, token_uri: str, auth_uri: str) -> dict[str, t.Any]:
        """The ``sandbox.json`` entries of the app-only grants."""
        return {
            "service_account_key": self.delegated.key_file(self.delegated_key, token_uri=token_uri, auth_uri=auth_uri),
            "service_account_key_undelegated": self.undelegated.key_file(
                self.undelegated_key, token_uri=token_uri, auth_uri=auth_uri),
            "workspace_user": self.workspace_user,
            "workspace_domain": self.delegated.delegated_domain,
            "microsoft_app_client_id": self.app.client_id,
            "microsoft_app_client_secret": self.app.client_secret,
            "microsoft_app_certificate": self.app_certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "microsoft_app_certificate_key": private_key_pem(self.app_key),
            "microsoft_tenant_id": self.app.tenant_id,
            "microsoft_app_mailbox": self.app.mailbox,
        }


class Sandbox:
    """All sandbox servers; ``start()`` makes them listen and writes ``sandbox.json``, ``stop()`` ends them.

    ``settings`` (the content of ``sandbox.json``) is filled by ``start()``; ``authority`` lets tests
    issue, look up and revoke access tokens in-process, and ``faults`` counts the fault triggers seen.
    """

    def __init__(self, state_dir: Path | str, *, account: str = ACCOUNT) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.account = account
        self.settings: dict[str, t.Any] = {}
        self.authority = TokenAuthority()
        self.faults = FaultRegistry()
        self._threaded_servers: list[tuple[socketserver.BaseServer, threading.Thread]] = []
        self._controllers: list[SandboxController] = []

    @property
    def settings_path(self) -> Path:
        return self.state_dir / SETTINGS_FILE

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> dict[str, t.Any]:
        """Start every server, then write ``sandbox.json``; returns the settings."""
        if self._controllers or self._threaded_servers:
            raise RuntimeError("the sandbox is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # A stale file would tell waiting callers that servers listen before they do.
        self.settings_path.unlink(missing_ok=True)
        mail_dir = self.state_dir / MAIL_DIR
        mail_dir.mkdir(exist_ok=True)
        token_log = self.state_dir / TOKEN_LOG_FILE
        # Fresh counters (and hangs that hang again) for every run: stop() released the last registry.
        self.faults = FaultRegistry()
        try:
            tls = self._create_tls_material()
            client = self.authority.register_client()
            refresh_token = self.authority.grant_refresh_token(client.client_id, self.account)
            revoked_refresh_token = self.authority.grant_refresh_token(client.client_id, self.account, revoked=True)
            microsoft_client = self.authority.register_client(str(uuid.uuid4()), f"sandbox~{secrets.token_urlsafe(30)}")
            microsoft_refresh_token = self.authority.grant_refresh_token(
                microsoft_client.client_id, MICROSOFT_ACCOUNT, scope=f"{MICROSOFT_SMTP_SCOPE} offline_access")
            microsoft_public_client = self.authority.register_client(str(uuid.uuid4()), public=True)
            microsoft_public_refresh_token = self.authority.grant_refresh_token(
                microsoft_public_client.client_id, MICROSOFT_ACCOUNT, scope=f"{MICROSOFT_SMTP_SCOPE} offline_access")
            app_password = secrets.token_urlsafe(12)
            app_only = AppOnlyGrants.register(self.authority, workspace_user=self.account, app_mailbox=MICROSOFT_ACCOUNT)

            app = TokenEndpointApp(self.authority, token_log, account=self.account, faults=self.faults)
            https_port = self._serve_http(app, tls.trusted)
            https_untrusted_port = self._serve_http(app, tls.untrusted)
            http_port = self._serve_http(app, None)
            unreachable_port = free_port()

            mail_store = MailStore(mail_dir)
            authenticator = AppPasswordAuthenticator(self.account, app_password, faults=self.faults)

            def authenticated_smtp(name: str, *, eight_bit: bool = True, **kwargs: t.Any) -> int:
                handler = GmailLikeHandler(name, self.authority, mail_store, faults=self.faults, eight_bit=eight_bit)
                return self._serve_smtp(handler, auth_required=True, authenticator=authenticator,
                                        enable_SMTPUTF8=eight_bit, **kwargs)

            smtp_ssl_port = authenticated_smtp("ssl", ssl_context=tls.trusted, auth_require_tls=False)
            smtp_starttls_port = authenticated_smtp("starttls", tls_context=tls.trusted, require_starttls=True)
            smtp_untrusted_port = authenticated_smtp("untrusted", ssl_context=tls.untrusted, auth_require_tls=False)
            smtp_plain_port = authenticated_smtp("plain", auth_require_tls=False)
            smtp_relay_port = self._serve_smtp(RelaySinkHandler(mail_store), auth_exclude_mechanism=["PLAIN", "LOGIN"])
            smtp_greeting_421_port = self._serve_threaded(GreetingRefusalServer((HOST, 0), tls.trusted), "smtp-greeting-421")
            # No TLS to offer and AUTH only after TLS: EHLO shows neither, and MAIL is refused (530).
            smtp_no_starttls_port = authenticated_smtp("no_starttls")
            smtp_small_size_port = authenticated_smtp("small_size", ssl_context=tls.trusted, auth_require_tls=False,
                                                      data_size_limit=SMALL_SIZE_LIMIT)
            smtp_7bit_port = authenticated_smtp("7bit", eight_bit=False, ssl_context=tls.trusted, auth_require_tls=False)
        except BaseException:
            self.stop()
            raise

        https = f"https://{HOST}:{https_port}"
        self.settings = {
            "host": HOST,
            "ca_path": str(self.state_dir / CA_FILE),
            "state_dir": str(self.state_dir),
            "mail_dir": str(mail_dir),
            "token_log": str(token_log),
            "account": self.account,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "refresh_token": refresh_token,
            "revoked_refresh_token": revoked_refresh_token,
            "app_password": app_password,
            "token_uri": f"{https}{TOKEN_PATH}",
            "token_uri_untrusted": f"https://{HOST}:{https_untrusted_port}{TOKEN_PATH}",
            "token_uri_http": f"http://{HOST}:{http_port}{TOKEN_PATH}",
            "tokeninfo_url": f"http://{HOST}:{http_port}{TOKENINFO_PATH}?access_token=",
            "token_uri_not_json": f"{https}{TOKEN_NOT_JSON_PATH}",
            "token_uri_no_access_token": f"{https}{TOKEN_NO_ACCESS_TOKEN_PATH}",
            "token_uri_unreachable": f"https://{HOST}:{unreachable_port}{TOKEN_PATH}",
            # Keep {fault}: tests put a fault spec there (see parse_fault_spec).
            "token_uri_fault": f"{https}{FAULT_TOKEN_PATH}",
            "revoke_uri": f"{https}{REVOKE_PATH}",
            "auth_uri": f"{https}{AUTHORIZE_PATH}",
            "microsoft_account": MICROSOFT_ACCOUNT,
            "microsoft_client_id": microsoft_client.client_id,
            "microsoft_client_secret": microsoft_client.client_secret,
            "microsoft_refresh_token": microsoft_refresh_token,
            "microsoft_public_client_id": microsoft_public_client.client_id,
            "microsoft_public_refresh_token": microsoft_public_refresh_token,
            # Keep {tenant}: the collection fills it in from its tenant option, as for login.microsoftonline.com.
            "microsoft_token_uri": f"{https}{MICROSOFT_TOKEN_PATH}",
            "microsoft_auth_uri": f"{https}{MICROSOFT_AUTHORIZE_PATH}",
            "microsoft_device_authorization_uri": f"{https}{MICROSOFT_DEVICE_CODE_PATH}",
            "device_authorization_uri": f"{https}{DEVICE_CODE_PATH}",
            "device_verification_uri": f"{https}{DEVICE_VERIFICATION_PATH}",
            "device_approve_uri": f"{https}{DEVICE_APPROVE_PATH}",
            "device_deny_uri": f"{https}{DEVICE_DENY_PATH}",
            "smtp_ssl_port": smtp_ssl_port,
            "smtp_starttls_port": smtp_starttls_port,
            "smtp_untrusted_port": smtp_untrusted_port,
            "smtp_plain_port": smtp_plain_port,
            "smtp_relay_port": smtp_relay_port,
            "smtp_greeting_421_port": smtp_greeting_421_port,
            "smtp_no_starttls_port": smtp_no_starttls_port,
            "smtp_small_size_port": smtp_small_size_port,
            "smtp_7bit_port": smtp_7bit_port,
            **app_only.settings(token_uri=f"{https}{TOKEN_PATH}", auth_uri=f"{https}{AUTHORIZE_PATH}"),
        }
        write_json_atomically(self.settings_path, self.settings)
        return self.settings

    def stop(self) -> None:
        """Stop every server that runs and remove ``sandbox.json``; safe to call more than once."""
        self.settings_path.unlink(missing_ok=True)
        self.faults.release()
        while self._controllers:
            self._controllers.pop().stop()
        while self._threaded_servers:
            server, thread = self._threaded_servers.pop()
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _create_tls_material(self) -> TlsMaterial:
        """Two unrelated CAs; only the trusted one's certificate is handed to clients (``ca.pem``)."""
        identities = (HOST, "localhost", "::1")
        trusted_ca = trustme.CA(organization_name="xoauth2 sandbox trusted CA")
        untrusted_ca = trustme.CA(organization_name="xoauth2 sandbox untrusted CA")
        trusted_cert = trusted_ca.issue_cert(*identities)
        untrusted_cert = untrusted_ca.issue_cert(*identities)
        trusted_ca.cert_pem.write_to_path(str(self.state_dir / CA_FILE))
        untrusted_ca.cert_pem.write_to_path(str(self.state_dir / UNTRUSTED_CA_FILE))
        chain_path = self.state_dir / SERVER_CERT_FILE
        chain_path.write_bytes(b"".join(blob.bytes() for blob in trusted_cert.cert_chain_pems))
        key_path = self.state_dir / SERVER_KEY_FILE
        key_path.touch(mode=0o600)
        trusted_cert.private_key_pem.write_to_path(str(key_path))
        contexts = []
        for cert in (trusted_cert, untrusted_cert):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            contexts.append(context)
        return TlsMaterial(trusted=contexts[0], untrusted=contexts[1])

    def _serve_http(self, app: TokenEndpointApp, ssl_context: ssl.SSLContext | None) -> int:
        return self._serve_threaded(TokenEndpointServer((HOST, 0), app, ssl_context), "token-endpoint")

    def _serve_threaded(self, server: socketserver.TCPServer, name: str) -> int:
        """Serve ``server`` (already bound) in a daemon thread until ``stop()``; returns its port."""
        port = int(server.server_address[1])
        # shutdown() returns when the loop next looks up (every poll_interval, 0.5 s by default): stop() is prompt.
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{name}-{port}",
                                  daemon=True)
        thread.start()
        self._threaded_servers.append((server, thread))
        return port

    def _serve_smtp(self, handler: t.Any, attempts: int = 3, **smtp_options: t.Any) -> int:
        """Start an SMTP server for ``handler`` on a free port; returns the port."""
        attempt = 0
        while True:
            attempt += 1
            port = free_port()
            controller = SandboxController(
                handler,
                hostname=HOST,
                port=port,
                server_hostname=SMTP_HOSTNAME,
                ident="ESMTP xoauth2-sandbox",
                **{"data_size_limit": GMAIL_SIZE_LIMIT, **smtp_options},
            )
            try:
                controller.start()
            except OSError:
                # Another process took the port between probing and binding it.
                if attempt == attempts:
                    raise
                continue
            self._controllers.append(controller)
            return port
