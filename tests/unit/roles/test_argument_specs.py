# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The examples of every role entry point (meta/argument_specs.yml), which ``ansible-doc -t role`` shows.

Each example play must be one ansible-playbook accepts, use its role and give it only variables the entry point
documents, the required ones included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
ENTRY_POINTS = [
    (path.parent.parent.name, name, entry)
    for path in sorted(COLLECTION_ROOT.glob("roles/*/meta/argument_specs.yml"))
    for name, entry in yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"].items()
]
IDS = [f"{role}:{name}" for role, name, _entry in ENTRY_POINTS]


def role_uses(plays: list[dict], fqcn: str) -> list[dict]:
    """The variables given to ``fqcn`` by each use in ``plays`` (under ``roles:`` or by include/import_role)."""
    uses = []
    for play in plays:
        uses += [entry.get("vars", {}) for entry in play.get("roles", []) if entry.get("role") == fqcn]
        pending = list(play.get("tasks", []))
        while pending:
            task = pending.pop()
            for section in ("block", "rescue", "always"):
                pending += task.get(section, [])
            for action in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
                if (task.get(action) or {}).get("name") == fqcn:
                    uses.append(task.get("vars", {}))
    return uses


@pytest.mark.parametrize(("role", "name", "entry"), ENTRY_POINTS, ids=IDS)
def test_examples_give_the_role_documented_variables(role: str, name: str, entry: dict) -> None:
    fqcn = f"smail.xoauth2.{role}"
    plays = yaml.safe_load(entry["examples"])
    uses = role_uses(plays, fqcn)
    options = entry["options"]
    required = {option for option, spec in options.items() if spec.get("required")}
    assert uses, f"no example play uses {fqcn}"
    for given in uses:
        assert set(given) <= set(options), f"undocumented: {sorted(set(given) - set(options))}"
        assert required <= set(given), f"required, not given: {sorted(required - set(given))}"


@pytest.mark.parametrize(("role", "name", "entry"), ENTRY_POINTS, ids=IDS)
def test_examples_pass_the_syntax_check(role: str, name: str, entry: dict, tmp_path: Path) -> None:
    playbook = tmp_path / f"{role}-{name}.yml"
    playbook.write_text(entry["examples"], encoding="utf-8")
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    done = subprocess.run([str(ansible_playbook), "--syntax-check", "-i", "localhost,", str(playbook)],
                          capture_output=True, text=True, env={**os.environ, "ANSIBLE_NOCOLOR": "1"}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
