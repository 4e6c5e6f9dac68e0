# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How often and how long a transient failure is retried: exponential backoff with jitter, bounded in time.

Which failures are transient is decided where they happen (the SMTP core, the token core); this file only
says when to try again. It is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import random
import typing as t


class RetryPolicy(t.NamedTuple):
    """``retries`` more attempts after the first, the n-th after about ``delay * 2**(n-1)`` seconds.

    The pause is drawn between half and all of that ("equal jitter"), so forks that failed together do not
    come back together. No retry starts once ``max_time`` seconds have passed since the first attempt.
    """

    retries: int = 2
    delay: float = 1.0
    max_time: float = 60.0

    def pause(self, failed_attempts: int, elapsed: float, *, rand: t.Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before the next attempt after ``failed_attempts`` failures, or None to give up."""
        if failed_attempts > self.retries:
            return None
        full = self.delay * 2 ** (failed_attempts - 1)
        pause = full / 2 + rand() * full / 2
        if elapsed + pause > self.max_time:
            return None
        return pause


NO_RETRY = RetryPolicy(retries=0)
