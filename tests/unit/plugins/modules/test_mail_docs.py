# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What ``ansible-doc smail.xoauth2.mail`` shows: notes one by one, examples that use only documented options."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

COLLECTIONS_PATH = Path(__file__).resolve().parents[7]


@pytest.fixture(scope="module")
def mail_doc():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH), ANSIBLE_NOCOLOR="1")
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "--json", "smail.xoauth2.mail"],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["smail.xoauth2.mail"]


def _names(options):
    """Every option name and alias, with the suboptions of each by name."""
    names, suboptions = set(), {}
    for name, spec in options.items():
        names |= {name, *spec.get("aliases", [])}
        if "suboptions" in spec:
            suboptions[name] = _names(spec["suboptions"])[0]
    return names, suboptions


def test_each_note_is_one_paragraph(mail_doc):
    notes = mail_doc["doc"]["notes"]
    assert any(note.startswith("Where it runs.") for note in notes)
    run_together = [note for note in notes if re.search(r"\S\s+- [A-Z]", note)]
    assert run_together == []


def test_examples_use_documented_options_and_show_a_batch(mail_doc):
    names, suboptions = _names(mail_doc["doc"]["options"])
    tasks = yaml.safe_load(mail_doc["examples"])
    batches = []
    for task in tasks:
        args = task["smail.xoauth2.mail"]
        assert set(args) <= names, f"{task['name']}: {set(args) - names}"
        for message in args.get("messages", []):
            assert set(message) <= suboptions["messages"], f"{task['name']}: {set(message) - suboptions['messages']}"
        if len(args.get("messages", [])) >= 2:
            batches.append(task)
    assert batches, "no example sends a batch (messages)"


def test_windows_hosts_send_from_the_controller(mail_doc):
    platform = mail_doc["doc"]["attributes"]["platform"]
    assert platform["platforms"] == "posix"
    assert "delegate_to" in " ".join(platform["details"]) and "Windows" in " ".join(platform["details"])
    windows_paths = [task["name"] for task in yaml.safe_load(mail_doc["examples"])
                     if any(re.match(r"^[A-Za-z]:\\", str(value)) for value in task["smail.xoauth2.mail"].values())]
    # The module runs on POSIX hosts (the controller for a Windows host): a Windows path is never one it reads.
    assert windows_paths == []
