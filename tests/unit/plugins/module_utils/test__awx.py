# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AWX / Automation Platform jobs, told by the job variables AWX adds to their extra variables."""

from __future__ import annotations

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _awx


@pytest.mark.parametrize(("extra_vars", "job"), [
    ({"awx_job_id": 4242, "tower_job_id": 4242, "awx_job_template_name": "Deploy"}, "4242"),
    ({"awx_job_id": "17"}, "17"),
    ({"tower_job_id": 9}, "9"),
    ({"awx_job_id": "", "tower_job_id": 9}, "9"),
    ({}, None),
    (None, None),
    ({"awx_job_id": None}, None),
    ({"awx_job_id": "  "}, None),
    ({"job_id": 3, "awx_host": "https://awx.example.com"}, None),
])
def test_job_id(extra_vars, job):
    assert _awx.job_id(extra_vars) == job


def test_the_notice_promises_no_later_delivery():
    notice = _awx.unkept_summary_notice("4242")
    assert "AWX job 4242" in notice and "no later run will send it" in notice
    assert "spool_dir" in notice and "docs/awx.md" in notice
    assert "next" not in notice
