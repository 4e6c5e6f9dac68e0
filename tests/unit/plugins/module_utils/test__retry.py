# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The retry policy: exponential backoff with jitter, a count and a time bound."""

from __future__ import annotations

from ansible_collections.smail.xoauth2.plugins.module_utils._retry import NO_RETRY, RetryPolicy


def test_pauses_double_within_half_to_full_jitter():
    policy = RetryPolicy(retries=3, delay=1.0, max_time=100)
    assert [policy.pause(n, 0, rand=lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert [policy.pause(n, 0, rand=lambda: 0.999999) for n in (1, 2, 3)] == [
        pytest_approx(1.0), pytest_approx(2.0), pytest_approx(4.0)]


def pytest_approx(value):
    import pytest  # pylint: disable=import-outside-toplevel

    return pytest.approx(value, rel=1e-5)


def test_gives_up_after_the_retries():
    policy = RetryPolicy(retries=2, delay=0.1)
    assert policy.pause(2, 0) is not None
    assert policy.pause(3, 0) is None
    assert NO_RETRY.pause(1, 0) is None


def test_gives_up_when_the_pause_would_pass_the_time_bound():
    policy = RetryPolicy(retries=5, delay=4.0, max_time=10.0)
    assert policy.pause(1, 5.0, rand=lambda: 0.0) == 2.0
    assert policy.pause(1, 9.0, rand=lambda: 0.0) is None
