# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""AWX and Ansible Automation Platform jobs: each runs in a container that is thrown away when the job ends.

A file a job writes under its home directory (the default spool, the default token cache) is gone with the container,
so nothing written there can be sent by a later run. A job is recognised by the job variables AWX adds to the extra
variables of every job it runs, ``awx_job_id`` and its older name ``tower_job_id``:
https://ansible.readthedocs.io/projects/awx/en/latest/userguide/job_templates.html#launch-a-job-template and
https://docs.ansible.com/automation-controller/latest/html/userguide/job_templates.html#ug-jobtemplates-extravars
(AWX also sets ``JOB_ID`` and ``AWX_HOST`` in the job's environment, but documents neither, and ``JOB_ID`` is Grid
Engine's too: the environment alone does not tell an AWX job.)

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import typing as t

#: The job variables that carry the job's ID, in the order they are looked at.
JOB_ID_VARIABLES = ("awx_job_id", "tower_job_id")


def job_id(extra_vars: t.Mapping[str, t.Any] | None) -> str | None:
    """The ID of the AWX / Automation Platform job whose extra variables are ``extra_vars``; None outside a job."""
    for name in JOB_ID_VARIABLES:
        value = (extra_vars or {}).get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def unkept_summary_notice(job: str) -> str:
    """What becomes of a summary mail that could not be sent in AWX job ``job`` without a spool directory of its own."""
    return (f"It is not kept for a later run: AWX job {job} runs in a container that is thrown away when the job ends, "
            "so no later run will send it. To keep such a summary, set spool_dir (SMAIL_XOAUTH2_SPOOL_DIR) to a path "
            "that outlives the job; see docs/awx.md.")
