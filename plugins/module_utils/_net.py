# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where secrets may go: the loopback test, the https rule for OAuth 2.0 endpoints, and which requests skip proxies.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import urllib.parse

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    import ipaddress  # pylint: disable=import-outside-toplevel  # needed only for http URLs and secure=never

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def has_blank_or_control(text: str) -> bool:
    """True when ``text`` holds a blank, a line break or another ASCII control character (NUL and DEL included)."""
    return any(ord(char) <= 0x20 or ord(char) == 0x7F for char in text)


def refuse_ambiguous_url(option: str, url: str) -> None:
    """OptionError naming ``option`` for a URL whose host two parsers could read differently.

    ``http://evil.example\\@127.0.0.1/`` is loopback to ``urlsplit`` and evil.example to requests (urllib3) and to
    browsers; ``urlsplit`` also drops tabs and line breaks that others keep. So no backslash, no
    blank or control character, and no user information (``user:password@``): an OAuth endpoint needs none of them.
    """
    if "\\" in url:
        raise OptionError(option, "must not contain a backslash: URL parsers disagree on the host it names")
    if has_blank_or_control(url):
        raise OptionError(option, "must not contain blanks or control characters")
    if "@" in urllib.parse.urlsplit(url).netloc:
        raise OptionError(option, "must not contain user information (user@ or user:password@ before the host); "
                                  "the client authenticates with client_id and client_secret")


def require_secure_url(option: str, url: str) -> str:
    """``url`` when it is https, or http to a loopback host; else OptionError naming ``option``.

    Client secrets, refresh tokens and authorization codes are posted to these URLs: plain http would put them on the
    wire in clear text, which is acceptable only when the wire is the loopback interface (a local proxy or sandbox).
    The URL must also be one that every parser reads alike (:func:`refuse_ambiguous_url`).
    """
    refuse_ambiguous_url(option, url)
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme not in ("https", "http") or not parsed.hostname:
        raise OptionError(option, "must be an http(s) URL with a host")
    if scheme == "http" and not is_loopback(parsed.hostname):
        raise OptionError(option, f"plain http would send credentials in clear text to {parsed.hostname}; "
                                  "use https (http is allowed only to a loopback host)")
    return url


def goes_direct(url: str) -> bool:
    """True when a request to ``url`` must not go through a proxy of the environment: plain http.

    :func:`require_secure_url` lets plain http reach a loopback host only, where it never leaves the machine; an
    ``HTTP_PROXY`` would forward it, form and secrets in clear text, over the network. https may use a proxy: the
    proxy sees the host name only.
    """
    return urllib.parse.urlsplit(url).scheme.lower() == "http"
