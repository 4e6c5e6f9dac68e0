# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Search captured output and every file under some directories for the secrets of a sandbox run.

Usage: scan_secrets.py SPEC.json. SPEC names `sandbox_json` (the sandbox's settings), `extra_secrets` (JSON files
of label -> secret, or of label -> list of secrets), `cache_dirs` (token caches: read for their access tokens, never
scanned), `outputs` (files of captured stdout/stderr), `scan_dirs` and `exclude` (paths left out of the walk).

The needles are the sandbox's client secrets, refresh tokens, app password and private keys (whole, JSON-escaped,
and each line of their PEM body), every access token found in the caches and in `extra_secrets`, and the base64
XOAUTH2, OAUTHBEARER and PLAIN strings for every account, SMTP port and token; also any string shaped like a
sandbox access or refresh token, known or not. Zip archives (AnsiballZ payloads, inline or as files) and the
base64 message data of spool files are searched inside too.

Prints a JSON report: `hits` (label and where, never the secret), `needles`, `cached_tokens`, `sasl_tokens`,
`outputs_scanned`, `files_scanned` and `files`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import re
import sys
import typing as t
import zipfile

# Anything the sandbox issues looks like this, whether or not the test learnt of it (token_cache=false, for example).
TOKEN_SHAPES = {
    "a sandbox access token": re.compile(rb"ya29\.sandbox-[A-Za-z0-9_-]{20,}"),
    "a sandbox refresh token": re.compile(rb"1//sandbox-[A-Za-z0-9_-]{20,}"),
    "a base64 XOAUTH2 string": re.compile(rb"dXNlcj[A-Za-z0-9+/]{30,}"),
    "a base64 OAUTHBEARER string": re.compile(rb"bixhP[A-Za-z0-9+/]{30,}"),
}
ANSIBALLZ = re.compile(rb"ZIPDATA = \"\"\"([A-Za-z0-9+/=\s]+)\"\"\"")
SANDBOX_SECRET_KEYS = ("client_secret", "refresh_token", "revoked_refresh_token", "microsoft_client_secret",
                       "microsoft_refresh_token", "app_password", "microsoft_app_client_secret",
                       "microsoft_app_certificate_key")
ACCOUNT_KEYS = ("account", "microsoft_account", "microsoft_app_mailbox", "workspace_user")


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def add_secret(needles: dict[str, bytes], label: str, value: str) -> None:
    """Add ``value`` under ``label``, its JSON-escaped form, and each long line of a PEM body on its own."""
    needles[label] = value.encode("utf-8")
    escaped = json.dumps(value)[1:-1]
    if escaped != value:
        needles[label + " (JSON-escaped)"] = escaped.encode("utf-8")
    if "-----BEGIN" in value:
        for number, line in enumerate(value.splitlines()):
            if len(line) >= 40 and not line.startswith("-----"):
                needles[f"{label} (line {number})"] = line.encode("ascii")


def cached_tokens(cache_dirs: t.Iterable[str]) -> list[str]:
    tokens = []
    for directory in cache_dirs:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            if name.endswith(".json"):
                with open(os.path.join(directory, name), encoding="utf-8") as handle:
                    entry = json.load(handle)
                tokens.extend(entry[key] for key in ("access_token", "refresh_token") if entry.get(key))
    return tokens


def build_needles(spec: dict[str, t.Any]) -> dict[str, bytes]:
    """Every secret to look for, by a label that does not show it."""
    with open(spec["sandbox_json"], encoding="utf-8") as handle:
        sandbox = json.load(handle)
    needles: dict[str, bytes] = {}
    for key in SANDBOX_SECRET_KEYS:
        add_secret(needles, f"sandbox {key}", sandbox[key])
    for key in ("service_account_key", "service_account_key_undelegated"):
        add_secret(needles, f"sandbox {key}.private_key", sandbox[key]["private_key"])
    tokens: dict[str, str] = {}
    for path in spec["extra_secrets"]:
        with open(path, encoding="utf-8") as handle:
            for label, values in json.load(handle).items():
                for number, value in enumerate(values if isinstance(values, list) else [values]):
                    add_secret(needles, f"{label} #{number}", value)
                    tokens[f"{label} #{number}"] = value
    for number, token in enumerate(cached_tokens(spec["cache_dirs"])):
        add_secret(needles, f"cached token #{number}", token)
        tokens[f"cached token #{number}"] = token
    accounts = [sandbox[key] for key in ACCOUNT_KEYS] + [sandbox["service_account_key"]["client_email"]]
    ports = sorted({value for key, value in sandbox.items() if key.startswith("smtp_") and key.endswith("_port")})
    for label, token in tokens.items():
        for user in accounts:
            needles[f"XOAUTH2 of {label} for {user}"] = b64(f"user={user}\x01auth=Bearer {token}\x01\x01").encode()
            for port in ports:
                needles[f"OAUTHBEARER of {label} for {user} port {port}"] = b64(
                    f"n,a={user},\x01host={sandbox['host']}\x01port={port}\x01auth=Bearer {token}\x01\x01").encode()
    for user in accounts:
        needles[f"PLAIN for {user}"] = b64(f"\x00{user}\x00{sandbox['app_password']}").encode()
        needles[f"PLAIN with authzid for {user}"] = b64(f"{user}\x00{user}\x00{sandbox['app_password']}").encode()
    return needles


def sasl_tokens(needles: dict[str, bytes]) -> int:
    """How many tokens the XOAUTH2 needles were computed for."""
    return len({label.split(" of ", 1)[1].rsplit(" for ", 1)[0] for label in needles if label.startswith("XOAUTH2 of ")})


def expansions(data: bytes) -> t.Iterator[tuple[str, bytes]]:
    """``data`` itself, then what is packed inside it: zip members, AnsiballZ payloads, spool message data."""
    yield "", data
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    for where, inner in expansions(archive.read(name)):
                        yield f"!{name}{where}", inner
        except zipfile.BadZipFile:
            pass
    for match in ANSIBALLZ.finditer(data):
        try:
            payload = base64.b64decode(b"".join(match.group(1).split()))
        except binascii.Error:
            continue
        for where, inner in expansions(payload):
            yield f"!ZIPDATA{where}", inner
    # A spool file (format 2) ends with its body, one JSON line holding the base64 message data.
    for line in data.splitlines():
        if line.startswith(b"{") and b'"data"' in line:
            try:
                entry = json.loads(line)
                yield "!data", base64.b64decode(entry["data"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                pass


def search(data: bytes, where: str, needles: dict[str, bytes]) -> list[dict[str, str]]:
    hits = []
    for suffix, blob in expansions(data):
        for label, needle in needles.items():
            if needle in blob:
                hits.append({"secret": label, "where": where + suffix})
        for label, shape in TOKEN_SHAPES.items():
            if shape.search(blob):
                hits.append({"secret": label, "where": where + suffix})
    return hits


def walk(scan_dirs: t.Iterable[str], exclude: t.Iterable[str]) -> t.Iterator[str]:
    excluded = [os.path.realpath(path) for path in exclude]
    for top in scan_dirs:
        for root, dirs, files in os.walk(top):
            dirs[:] = [name for name in dirs if os.path.realpath(os.path.join(root, name)) not in excluded]
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path) and os.path.realpath(path) not in excluded:
                    yield path


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    needles = build_needles(spec)
    hits: list[dict[str, str]] = []
    scanned: list[str] = []
    for path in spec["outputs"]:
        with open(path, "rb") as handle:
            hits.extend(search(handle.read(), f"output {os.path.basename(path)}", needles))
    for path in walk(spec["scan_dirs"], spec["exclude"]):
        with open(path, "rb") as handle:
            hits.extend(search(handle.read(), path, needles))
        scanned.append(path)
    print(json.dumps({"hits": hits, "needles": len(needles), "outputs_scanned": len(spec["outputs"]),
                      "cached_tokens": len(cached_tokens(spec["cache_dirs"])), "sasl_tokens": sasl_tokens(needles),
                      "files_scanned": len(scanned), "files": sorted(scanned)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
