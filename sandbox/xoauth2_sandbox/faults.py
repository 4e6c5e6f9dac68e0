# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fault language: ``fault-<spec>@...`` addresses and ``/fault/<spec>/token`` URLs, parsed and counted."""

from __future__ import annotations

import dataclasses
import re
import threading

from .common import (
    CLOSING_REPLY,
    FAULT_ADDRESS_PREFIX,
    MAILBOX_FULL_REPLY,
    MESSAGE_REJECTED_REPLY,
    TEMPORARY_REJECT_REPLY,
    TOO_MANY_RECIPIENTS_552_REPLY,
    TOO_MANY_RECIPIENTS_REPLY,
    local_part,
)

#: Fault kinds by where they fire. Triggered by addresses and URLs alone, so tests need no control channel.
MAIL_FAULTS = frozenset({"mail421"})
RCPT_FAULTS = frozenset({"rcpt451", "rcpt452", "rcpt552", "rcpt421", "rcptslow", "rcptfull"})
DATA_FAULTS = frozenset({"data451", "data550", "dataslow"})
TOKEN_FAULTS = frozenset({"status500", "status503", "hang", "notjson", "noaccesstoken", "redirect307", "rtexpires",
                          "lifetime"})
#: Kinds of the AUTH identity (the user name of PLAIN/LOGIN, XOAUTH2's user=, OAUTHBEARER's a=), as Exchange Online
#: answers: ``basicauth`` a password login, ``hve`` a bearer token close to its expiry.
AUTH_FAULTS = frozenset({"basicauth", "hve"})
#: Kinds followed by a number of seconds (``rcptslow5``).
TIMED_FAULTS = frozenset({"rcptslow", "dataslow", "hang", "rtexpires", "lifetime"})
SMTP_FAULT_REPLIES = {
    "mail421": CLOSING_REPLY,
    "rcpt451": TEMPORARY_REJECT_REPLY,
    "rcpt452": TOO_MANY_RECIPIENTS_REPLY,
    "rcpt552": TOO_MANY_RECIPIENTS_552_REPLY,
    "rcptfull": MAILBOX_FULL_REPLY,
    "rcpt421": CLOSING_REPLY,
    "data451": TEMPORARY_REJECT_REPLY,
    "data550": MESSAGE_REJECTED_REPLY,
}
# Longest first: the alternation must not stop at a shorter kind that prefixes a longer one.
_FAULT_KINDS = sorted(MAIL_FAULTS | RCPT_FAULTS | DATA_FAULTS | TOKEN_FAULTS | AUTH_FAULTS, key=len, reverse=True)
_FAULT_SPEC_PATTERN = re.compile(
    rf"(?P<kind>{'|'.join(_FAULT_KINDS)})(?P<seconds>\d+(?:\.\d+)?)?(?:x(?P<times>\d+))?(?:-(?P<tag>.*))?",
    re.IGNORECASE | re.DOTALL,
)


class FaultSpecError(ValueError):
    """A fault spec that does not follow the grammar, or names a fault that cannot fire where it was given."""


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """One parsed fault: what happens, for how long, and how many times for its ``trigger``."""

    #: The exact string the fault is counted by (an address, lower-cased, or a token endpoint spec).
    trigger: str
    kind: str
    #: The wait of a timed kind (``rcptslow``, ``dataslow``, ``hang``), the stated lifetime of ``rtexpires``; 0 for the
    #: others.
    seconds: float = 0.0
    #: Fire the first ``times`` occurrences of ``trigger`` only; None: every time.
    times: int | None = None


def parse_fault_spec(spec: str, *, trigger: str, allowed: frozenset[str]) -> FaultSpec:
    """Parse ``<what>[<S>][x<N>][-<tag>]`` (case-insensitive) into a fault of one of the ``allowed`` kinds.

    Raises :class:`FaultSpecError` when ``spec`` does not follow the grammar, a timed kind lacks its
    seconds (or another kind has some), ``x0`` is given, or the kind is not ``allowed``.
    """
    match = _FAULT_SPEC_PATTERN.fullmatch(spec)
    if match is None:
        raise FaultSpecError(f"not a fault spec: {spec!r}")
    kind = match["kind"].lower()
    if kind not in allowed:
        raise FaultSpecError(f"fault {kind!r} cannot fire here (allowed: {', '.join(sorted(allowed))})")
    if (match["seconds"] is None) == (kind in TIMED_FAULTS):
        raise FaultSpecError(f"fault {kind!r} {'needs' if kind in TIMED_FAULTS else 'takes no'} seconds")
    times = int(match["times"]) if match["times"] is not None else None
    if times == 0:
        raise FaultSpecError("x0 would never fire; leave x<N> out to fire every time")
    return FaultSpec(trigger=trigger, kind=kind, seconds=float(match["seconds"] or 0), times=times)


def address_fault(address: str, *, allowed: frozenset[str]) -> FaultSpec | None:
    """The fault of an envelope address ``fault-<spec>@...`` counted by the whole address; None for other addresses.

    Raises :class:`FaultSpecError` for a ``fault-`` address whose spec is wrong, so typos fail loudly.
    """
    local = local_part(address)
    if not local.startswith(FAULT_ADDRESS_PREFIX):
        return None
    return parse_fault_spec(local[len(FAULT_ADDRESS_PREFIX):], trigger=address.lower(), allowed=allowed)


class FaultRegistry:
    """How often each fault trigger was seen, so that ``x<N>`` faults fire the first N times only.

    Thread-safe: the HTTP listeners' threads and the SMTP servers' event loops share one instance.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._released = threading.Event()

    def fires(self, fault: FaultSpec) -> bool:
        """Count one occurrence of ``fault.trigger``; True when the fault applies to this occurrence."""
        with self._lock:
            seen = self._seen.get(fault.trigger, 0) + 1
            self._seen[fault.trigger] = seen
        return fault.times is None or seen <= fault.times

    def seen(self, trigger: str) -> int:
        """How many occurrences of ``trigger`` were counted so far."""
        with self._lock:
            return self._seen.get(trigger, 0)

    def wait(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``, or less once :meth:`release` was called."""
        self._released.wait(seconds)

    def release(self) -> None:
        """End every current and future :meth:`wait` at once (the sandbox is stopping)."""
        self._released.set()
