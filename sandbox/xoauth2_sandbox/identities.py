# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""App-only identities: Google service accounts, Entra ID apps, and the RS256 JWTs they sign."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
import re
import secrets
import typing as t
import urllib.parse
import uuid

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from .common import JWT_CLOCK_SKEW_SECONDS, SERVICE_ACCOUNT_PROJECT, utc_now


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ValueError when ``text`` is not base64url."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass(frozen=True)
class SignedJwt:
    """A compact JWS (RFC 7515) split into its parts; parsing checks the shape only, not the signature."""

    header: dict[str, t.Any]
    claims: dict[str, t.Any]
    signing_input: bytes = dataclasses.field(repr=False)
    signature: bytes = dataclasses.field(repr=False)

    @classmethod
    def parse(cls, token: str) -> SignedJwt:
        """Split ``header.claims.signature``; raises ValueError when it is no JWT with JSON objects in it."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        header, claims = (json.loads(b64url_decode(part)) for part in parts[:2])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("JWT header and claims must be JSON objects")  # noqa: TRY004 - parse() promises ValueError
        return cls(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2]))

    def signed_by(self, public_key: rsa.RSAPublicKey) -> bool:
        """Whether this is an RS256 JWT whose signature ``public_key`` verifies."""
        if self.header.get("alg") != "RS256":
            return False
        try:
            public_key.verify(self.signature, self.signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def claim_text(self, name: str) -> str | None:
        """A string claim, or None when it is missing or not a string."""
        value = self.claims.get(name)
        return value if isinstance(value, str) else None


def unverified_jwt_claims(token: str | None) -> dict[str, t.Any]:
    """The claims of a JWT without checking its signature (for the request log only); {} if it is none."""
    try:
        return SignedJwt.parse(token or "").claims
    except ValueError:
        return {}


def jwt_window_is_sane(start: t.Any, end: t.Any, *, now: float, max_lifetime: float | None = None) -> bool:
    """Whether numeric ``start`` (``iat`` or ``nbf``) and ``exp`` make a JWT valid now, give or take the clock skew,
    and (with ``max_lifetime``) for at most that many seconds."""
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (start, end)):
        return False
    if start > now + JWT_CLOCK_SKEW_SECONDS or end < now - JWT_CLOCK_SKEW_SECONDS or end <= start:
        return False
    return max_lifetime is None or end - start <= max_lifetime


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM, the format of Google's key files and of most certificate tooling."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


@dataclasses.dataclass(frozen=True)
class ServiceAccount:
    """A Google service account: its public key, and the Workspace domain that granted it domain-wide delegation
    of ``delegated_scopes`` (None: no delegation, so it can get tokens for itself only)."""

    client_email: str
    client_id: str
    private_key_id: str
    public_key: rsa.RSAPublicKey = dataclasses.field(repr=False)
    delegated_domain: str | None = None
    delegated_scopes: frozenset[str] = frozenset()

    @classmethod
    def generate(cls, name: str, *, delegated_domain: str | None = None,
                 delegated_scopes: frozenset[str] = frozenset()) -> tuple[ServiceAccount, rsa.RSAPrivateKey]:
        """A new account ``<name>@<project>.iam.gserviceaccount.com`` with a fresh RSA 2048 key."""
        key = new_rsa_key()
        account = cls(
            client_email=f"{name}@{SERVICE_ACCOUNT_PROJECT}.iam.gserviceaccount.com",
            client_id=f"1{secrets.randbelow(10**20):020d}",
            private_key_id=secrets.token_hex(20),
            public_key=key.public_key(),
            delegated_domain=delegated_domain,
            delegated_scopes=delegated_scopes,
        )
        return account, key

    def key_file(self, key: rsa.RSAPrivateKey, *, token_uri: str, auth_uri: str) -> dict[str, str]:
        """The account's key in Google's JSON key file format (what ``from_service_account_info`` reads)."""
        return {
            "type": "service_account",
            "project_id": SERVICE_ACCOUNT_PROJECT,
            "private_key_id": self.private_key_id,
            "private_key": private_key_pem(key),
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": auth_uri,
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                    + urllib.parse.quote(self.client_email),
            "universe_domain": "googleapis.com",
        }


def self_signed_certificate(key: rsa.RSAPrivateKey, *, common_name: str) -> x509.Certificate:
    """A one-year self-signed certificate of ``key``, as ``New-SelfSignedCertificate`` makes for an app registration."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = utc_now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


@dataclasses.dataclass(frozen=True)
class MicrosoftApp:
    """An Entra ID app registration with a client secret and a certificate; Exchange Online lets it send
    (SMTP.SendAsApp) as ``mailbox`` only."""

    client_id: str
    tenant_id: str
    #: The tenant's verified domain, accepted in the token path like its id.
    tenant_domain: str
    mailbox: str
    client_secret: str = dataclasses.field(repr=False)
    #: base64url SHA-1 of the certificate's DER: the ``x5t`` of the client assertions it signs.
    certificate_x5t: str
    #: base64url SHA-256 of the DER: ``x5t#S256``, which newer MSAL versions send instead.
    certificate_x5t_s256: str
    public_key: rsa.RSAPublicKey = dataclasses.field(repr=False)

    @classmethod
    def generate(cls, *, mailbox: str) -> tuple[MicrosoftApp, x509.Certificate, rsa.RSAPrivateKey]:
        """A new app in a new tenant (the mailbox's domain), with a fresh secret, key and self-signed certificate."""
        key = new_rsa_key()
        certificate = self_signed_certificate(key, common_name="smail-xoauth2 sandbox app")
        der = certificate.public_bytes(serialization.Encoding.DER)
        app = cls(
            client_id=str(uuid.uuid4()),
            tenant_id=str(uuid.uuid4()),
            tenant_domain=mailbox.rpartition("@")[2].lower(),
            mailbox=mailbox,
            client_secret=f"sandbox~{secrets.token_urlsafe(30)}",
            certificate_x5t=b64url_encode(hashlib.sha1(der).digest()),  # x5t is SHA-1 by definition (RFC 7515 4.1.7)
            certificate_x5t_s256=b64url_encode(hashlib.sha256(der).digest()),
            public_key=key.public_key(),
        )
        return app, certificate, key

    def in_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id, self.tenant_domain)

    def knows_certificate_of(self, header: t.Mapping[str, t.Any]) -> bool:
        """Whether the JWT header's thumbprint (``x5t`` or ``x5t#S256``) names the app's certificate."""
        return header.get("x5t") == self.certificate_x5t or header.get("x5t#S256") == self.certificate_x5t_s256
