# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Refresh tokens that will die: the pure date logic, with ``now`` always given."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
REFRESH_TOKEN = "1//0g-refresh-token-value"


def hours(count):
    return datetime.timedelta(hours=count)


class TestExpiryFrom:
    def test_obtained_time_plus_the_stated_seconds(self):
        assert _refresh_expiry.expiry_from(NOW, 3600) == NOW + hours(1)

    def test_googles_seven_days(self):
        assert _refresh_expiry.expiry_from(NOW, 604799) == NOW + datetime.timedelta(days=7, seconds=-1)

    @pytest.mark.parametrize("stated", ["3600", " 3600 ", 3600.0])
    def test_digits_and_floats_count(self, stated):
        assert _refresh_expiry.expiry_from(NOW, stated) == NOW + hours(1)

    @pytest.mark.parametrize("stated", [None, "", "soon", "-5", -5, 0, "0", True, [], {}, "1e3", float("nan")])
    def test_nothing_usable_gives_no_expiry(self, stated):
        assert _refresh_expiry.expiry_from(NOW, stated) is None


def test_iso_utc():
    assert _refresh_expiry.iso_utc(NOW + datetime.timedelta(microseconds=999)) == "2026-03-01T12:00:00Z"
    tokyo = datetime.timezone(datetime.timedelta(hours=9))
    assert _refresh_expiry.iso_utc(datetime.datetime(2026, 3, 1, 21, 0, tzinfo=tokyo)) == "2026-03-01T12:00:00Z"
    assert _refresh_expiry.iso_utc(None) is None


class TestWarnDays:
    def test_default(self):
        assert _refresh_expiry.warn_days({}) == 2
        assert _refresh_expiry.warn_days({"refresh_token_warn_days": None}) == 2

    def test_given(self):
        assert _refresh_expiry.warn_days({"refresh_token_warn_days": 0}) == 0
        assert _refresh_expiry.warn_days({"refresh_token_warn_days": 14}) == 14

    @pytest.mark.parametrize("value", [-1, True, "2"])
    def test_refused(self, value):
        with pytest.raises(OptionError) as info:
            _refresh_expiry.warn_days({"refresh_token_warn_days": value})
        assert info.value.option == "refresh_token_warn_days"


class TestWarning:
    def test_inside_the_window(self):
        warning = _refresh_expiry.expiry_warning(NOW + hours(23), days=2, now=NOW)
        assert "2026-03-02T11:00:00Z" in warning
        assert "in 23 hours" in warning
        assert "smail.xoauth2.authorize again" in warning
        assert "refresh_token_warn_days=2" in warning

    def test_at_the_edge_of_the_window(self):
        assert _refresh_expiry.expiry_warning(NOW + datetime.timedelta(days=2), days=2, now=NOW) is not None
        assert "in 1 day 23 hours" in _refresh_expiry.expiry_warning(NOW + hours(47.5), days=2, now=NOW)

    def test_outside_the_window(self):
        assert _refresh_expiry.expiry_warning(NOW + datetime.timedelta(days=2, seconds=1), days=2, now=NOW) is None
        assert _refresh_expiry.expiry_warning(NOW + datetime.timedelta(days=30), days=7, now=NOW) is None

    def test_zero_disables(self):
        assert _refresh_expiry.expiry_warning(NOW + datetime.timedelta(minutes=5), days=0, now=NOW) is None
        assert _refresh_expiry.expiry_warning(NOW - hours(1), days=0, now=NOW) is None

    def test_unknown_expiry_never_warns(self):
        assert _refresh_expiry.expiry_warning(None, days=365, now=NOW) is None

    def test_already_expired(self):
        warning = _refresh_expiry.expiry_warning(NOW - datetime.timedelta(minutes=90), days=2, now=NOW)
        assert "expired at 2026-03-01T10:30:00Z (1 hour 30 minutes ago)" in warning

    def test_minutes_and_seconds(self):
        assert "in 5 minutes" in _refresh_expiry.expiry_warning(NOW + datetime.timedelta(minutes=5, seconds=59),
                                                                days=1, now=NOW)
        assert "in less than a minute" in _refresh_expiry.expiry_warning(NOW + datetime.timedelta(seconds=30),
                                                                         days=1, now=NOW)

    def test_injectable_now_moves_the_window(self):
        expires = NOW + datetime.timedelta(days=10)
        assert _refresh_expiry.expiry_warning(expires, days=2, now=NOW) is None
        assert _refresh_expiry.expiry_warning(expires, days=2, now=NOW + datetime.timedelta(days=9)) is not None


class TestReport:
    def test_unknown_expiry_gives_no_key(self):
        report = _refresh_expiry.report(None, days=2, now=NOW)
        assert report.fields() == {}
        assert report.warnings == []

    def test_known_expiry_outside_the_window(self):
        report = _refresh_expiry.report(NOW + datetime.timedelta(days=5), days=2, now=NOW)
        assert report.fields() == {"refresh_token_expires_at": "2026-03-06T12:00:00Z"}
        assert report.warnings == []

    def test_known_expiry_inside_the_window(self):
        report = _refresh_expiry.report(NOW + hours(1), days=2, now=NOW)
        assert report.fields() == {"refresh_token_expires_at": "2026-03-01T13:00:00Z"}
        [warning] = report.warnings
        assert "2026-03-01T13:00:00Z" in warning

    def test_known_expiry_with_the_warning_off(self):
        report = _refresh_expiry.report(NOW + hours(1), days=0, now=NOW)
        assert report.fields() == {"refresh_token_expires_at": "2026-03-01T13:00:00Z"}
        assert report.warnings == []


class TestRecord:
    def test_round_trip(self):
        record = _refresh_expiry.RefreshTokenRecord(obtained_at=NOW, expires_at=NOW + hours(1))
        assert _refresh_expiry.RefreshTokenRecord.from_json(record.as_json()) == record

    def test_unknown_times_are_left_out(self):
        assert _refresh_expiry.RefreshTokenRecord(obtained_at=NOW).as_json() == {"obtained_at": NOW.timestamp()}
        assert _refresh_expiry.RefreshTokenRecord.from_json({}) == _refresh_expiry.RefreshTokenRecord()

    @pytest.mark.parametrize("data", [None, [], "x", {"expires_at": "tomorrow"}, {"obtained_at": True},
                                      {"expires_at": 1e300}])
    def test_damaged_records_are_ignored(self, data):
        assert _refresh_expiry.RefreshTokenRecord.from_json(data) is None

    def test_stated_replaces_only_a_known_expiry(self):
        record = _refresh_expiry.RefreshTokenRecord(obtained_at=NOW, expires_at=NOW + hours(1))
        assert record.stated(None) == record
        assert record.stated(NOW + hours(2)) == record._replace(expires_at=NOW + hours(2))

    def test_key_reveals_nothing_of_the_token(self):
        key = _refresh_expiry.record_key(REFRESH_TOKEN)
        assert len(key) == 64 and REFRESH_TOKEN not in key
        assert key == _refresh_expiry.record_key(REFRESH_TOKEN)
        assert key != _refresh_expiry.record_key(REFRESH_TOKEN + "x")
