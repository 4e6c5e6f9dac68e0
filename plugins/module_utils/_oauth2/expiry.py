# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Refresh tokens that will die: when one was obtained, when its token endpoint says it expires, and the warning.

A token endpoint may state a refresh token's remaining lifetime in ``refresh_token_expires_in`` (seconds, next to
``expires_in`` of the access token): Google does for time-limited access, Entra ID for single-page apps, other
servers as they please. The token cache keeps what was learnt (:class:`RefreshTokenRecord`) under a hash of the
refresh token, so a later task that only reuses a cached access token still knows. An expiry that no endpoint stated
is never guessed.

Pure date logic: every function that needs the time takes ``now``; nothing here reads a clock or a file.
This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import datetime
import hashlib
import typing as t

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError

#: ``refresh_token_warn_days`` when not set: warn two days before a known expiry.
DEFAULT_WARN_DAYS = 2
#: The option that sets the window; 0 turns the warning off.
WARN_DAYS_OPTION = "refresh_token_warn_days"
#: The result key that reports a known expiry.
RESULT_KEY = "refresh_token_expires_at"

_RECORD_KEY_SALT = "smail.xoauth2 refresh token record\0"


class RefreshTokenRecord(t.NamedTuple):
    """What is known about one refresh token: when it was obtained, and when its endpoint said it expires."""

    #: When the consent (``authorize``) or a rotation produced it; None when it was first met in a refresh.
    obtained_at: datetime.datetime | None = None
    #: When the token endpoint said it expires; None when no endpoint said so.
    expires_at: datetime.datetime | None = None

    def as_json(self) -> dict[str, float]:
        """Epoch seconds, for the token cache; unknown times are left out."""
        data = {"obtained_at": _epoch(self.obtained_at), "expires_at": _epoch(self.expires_at)}
        return {name: value for name, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: t.Any) -> RefreshTokenRecord | None:
        """The record of :meth:`as_json`; None for anything else (a damaged or foreign file)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(obtained_at=_from_epoch(data.get("obtained_at")), expires_at=_from_epoch(data.get("expires_at")))
        except (TypeError, ValueError, OverflowError, OSError):
            return None

    def stated(self, expires_at: datetime.datetime | None) -> RefreshTokenRecord:
        """This record with a newly stated expiry; an unstated one (None) keeps what was known."""
        return self if expires_at is None else self._replace(expires_at=expires_at)


def _epoch(moment: datetime.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _from_epoch(value: t.Any) -> datetime.datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a time")
    return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)


def record_key(refresh_token: str) -> str:
    """The token cache's name for the record of ``refresh_token``: a salted hash that reveals nothing of it."""
    return hashlib.sha256((_RECORD_KEY_SALT + refresh_token).encode("utf-8")).hexdigest()


def stated_lifetime(value: t.Any) -> int | None:
    """Seconds of a token response's ``refresh_token_expires_in`` (a number or digits); None when absent or unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 else None


def expiry_from(obtained_at: datetime.datetime, expires_in: t.Any) -> datetime.datetime | None:
    """When a refresh token stated to live ``expires_in`` seconds at ``obtained_at`` expires; None when not stated."""
    seconds = stated_lifetime(expires_in)
    if seconds is None:
        return None
    return obtained_at + datetime.timedelta(seconds=seconds)


def iso_utc(moment: datetime.datetime | None) -> str | None:
    """``moment`` as ISO 8601 UTC to the second (``2026-01-01T00:00:00Z``); None stays None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def warn_days(options: t.Mapping[str, t.Any]) -> int:
    """The ``refresh_token_warn_days`` of the options (:data:`DEFAULT_WARN_DAYS` when unset); OptionError when negative."""
    days = options.get(WARN_DAYS_OPTION)
    if days is None:
        return DEFAULT_WARN_DAYS
    if isinstance(days, bool) or not isinstance(days, int):
        raise OptionError(WARN_DAYS_OPTION, "must be a whole number of days")
    if days < 0:
        raise OptionError(WARN_DAYS_OPTION, "must be 0 (no warning) or more days")
    return days


def expires_within(expires_at: datetime.datetime | None, *, days: int, now: datetime.datetime) -> bool:
    """True when a known expiry is less than ``days`` days away (or past); never for an unknown one or ``days=0``."""
    if expires_at is None or days <= 0:
        return False
    return expires_at - now <= datetime.timedelta(days=days)


def _span(delta: datetime.timedelta) -> str:
    """``2 days 3 hours``, ``5 hours``, ``12 minutes``: the two largest units, rounded down."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour")] if days else [(hours, "hour"), (minutes, "minute")]
    text = " ".join(f"{count} {unit}{'' if count == 1 else 's'}" for count, unit in parts if count)
    return text or "less than a minute"


def expiry_warning(expires_at: datetime.datetime | None, *, days: int, now: datetime.datetime) -> str | None:
    """The warning for a refresh token that expires within ``days`` days of ``now``; None outside the window.

    It names the expiry time and what to do, and never any token.
    """
    if expires_at is None or not expires_within(expires_at, days=days, now=now):
        return None
    when = iso_utc(expires_at)
    if expires_at <= now:
        state = f"expired at {when} ({_span(now - expires_at)} ago)"
    else:
        state = f"expires at {when} (in {_span(expires_at - now)})"
    return (f"The refresh token {state}, as its token endpoint stated (refresh_token_warn_days={days}). Run "
            "smail.xoauth2.authorize again (or SmailRefreshToken.exe) and store the new refresh token where this one "
            "is kept (vault, token_ini) before then; after that, mail fails with invalid_grant.")


class ExpiryReport(t.NamedTuple):
    """What a task reports about its refresh token: the expiry when known, and the warning when it is near."""

    expires_at: datetime.datetime | None = None
    warning: str | None = None

    def fields(self) -> dict[str, str]:
        """The result fields: ``refresh_token_expires_at`` only when the expiry is known."""
        when = iso_utc(self.expires_at)
        return {RESULT_KEY: when} if when else {}

    @property
    def warnings(self) -> list[str]:
        return [self.warning] if self.warning else []


def report(expires_at: datetime.datetime | None, *, days: int, now: datetime.datetime) -> ExpiryReport:
    """The :class:`ExpiryReport` of a refresh token expiring at ``expires_at`` (None: unknown), seen at ``now``."""
    return ExpiryReport(expires_at=expires_at, warning=expiry_warning(expires_at, days=days, now=now))
