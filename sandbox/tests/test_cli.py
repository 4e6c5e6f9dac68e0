# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The command line and the Dovecot submission server in front of the sandbox."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

import dovecot_submission
import xoauth2_sandbox
from sandbox_client import SETTINGS_KEYS, TIMEOUT, client_context, decoded_challenge, fetch_access_token, new_message, stored_message, xoauth2_response

# The package's folder: ``python DIR run|wait|stop`` runs its __main__.py.
PACKAGE_DIR = Path(xoauth2_sandbox.__file__).resolve().parent


# --------------------------------------------------------------------------------------------------
# CLI and Dovecot


def test_cli_run_wait_stop(tmp_path: Path) -> None:
    script = str(PACKAGE_DIR)  # run as a directory, as the Makefile does
    state_dir = tmp_path / "cli"
    with subprocess.Popen([sys.executable, script, "run", "--state-dir", str(state_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            waited = subprocess.run([sys.executable, script, "wait", "--state-dir", str(state_dir), "--timeout", "20"], check=False)
            assert waited.returncode == 0
            assert set(json.loads((state_dir / "sandbox.json").read_text(encoding="utf-8"))) == SETTINGS_KEYS
            stopped = subprocess.run([sys.executable, script, "stop", "--state-dir", str(state_dir), "--timeout", "20"], check=False)
            assert stopped.returncode == 0
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert not (state_dir / "sandbox.json").exists() and not (state_dir / "sandbox.pid").exists()


def test_dovecot_submission_validates_tokens_with_tokeninfo_and_relays(settings: dict[str, t.Any], tmp_path: Path) -> None:
    if dovecot_submission.find_dovecot() is None:
        pytest.fail("dovecot is not installed; CI installs dovecot-core and dovecot-submissiond")
    token = fetch_access_token(settings)
    message, marker = new_message(settings["account"], "friend@example.com")

    with dovecot_submission.DovecotSubmission(tmp_path / "dovecot-state", settings) as dovecot:
        assert json.loads(dovecot.settings_path.read_text(encoding="utf-8")) == {"dovecot_submission_port": dovecot.port}
        with smtplib.SMTP(settings["host"], dovecot.port, timeout=TIMEOUT) as client:
            client.starttls(context=client_context(settings))
            client.ehlo()
            code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], "ya29.not-issued"))
            assert code == 334 and decoded_challenge(challenge)["status"] == "401"
            assert client.docmd("")[0] == 535
            assert client.docmd("AUTH", "XOAUTH2 " + xoauth2_response(settings["account"], token))[0] == 235
            client.send_message(message)

    assert not dovecot.settings_path.exists()
    eml_path, sidecar = stored_message(settings, marker)
    assert (sidecar["port"], sidecar["mail_from"], sidecar["rcpt_tos"]) == ("relay", settings["account"], ["friend@example.com"])
    assert b"with ESMTPSA" in eml_path.read_bytes()  # Dovecot's Received: header
