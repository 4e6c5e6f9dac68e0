# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""README.md: its sections in the order collection READMEs keep, every plugin in its table, a batch example."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
README = (COLLECTION_ROOT / "README.md").read_text(encoding="utf-8")
# The sections certified collections' READMEs have, in this order.
SECTIONS = ["Description", "Requirements", "Installation", "Use cases", "Testing", "Release notes", "License"]


def test_it_starts_with_make_demo_and_make_test():
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL).group(1)
    assert README.index("```sh") < README.index("\n## ")
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]


def test_its_sections_are_those_of_a_collection_readme_in_order():
    headings = re.findall(r"^## (.+)$", README, re.MULTILINE)
    found = [next((heading for heading in headings if heading.lower().startswith(name.lower())), None) for name in SECTIONS]
    assert None not in found, dict(zip(SECTIONS, found))
    assert [headings.index(heading) for heading in found] == sorted(headings.index(heading) for heading in found)


def test_the_table_names_every_plugin_role_and_playbook():
    table = README[README.index("| content | what it does |"):]
    table = table[:table.index("\n\n")]
    names = {path.stem for folder in ("modules", "action", "callback", "filter")
             for path in (COLLECTION_ROOT / "plugins" / folder).glob("*.py") if not path.stem.startswith("_")}
    names |= {path.name for path in (COLLECTION_ROOT / "roles").iterdir() if path.is_dir()}
    names |= {path.stem for path in (COLLECTION_ROOT / "playbooks").glob("*.yml") if path.stem != "demo"}
    missing = sorted(name for name in names if f"`smail.xoauth2.{name}`" not in table)
    assert missing == []


def test_a_yaml_example_sends_a_batch():
    tasks = [task for block in re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)
             for task in (yaml.safe_load(block) or []) if isinstance(task, dict)]
    batches = [task for task in tasks if len(task.get("smail.xoauth2.mail", {}).get("messages", [])) >= 2]
    assert batches, "no smail.xoauth2.mail task with messages in the README"


def test_the_map_of_the_core_names_every_file_and_package():
    start = README.index("Its Python core is plain Python")
    core_map = README[start:README.index("\n## ", start)]
    named = set(re.findall(r"`(?:plugins/(?:module_utils|plugin_utils)/)?(_\w+(?:\.py|/))`", core_map))
    present = {path.name + ("/" if path.is_dir() else "")
               for folder in ("module_utils", "plugin_utils")
               for path in (COLLECTION_ROOT / "plugins" / folder).iterdir()
               if path.name.startswith("_") and path.name != "__init__.py" and path.name != "__pycache__"}
    assert sorted(present - named) == []
    # A package's bullet names each of its files.
    for package in sorted(name for name in present if name.endswith("/")):
        bullet = core_map[core_map.index(f"`plugins/module_utils/{package}`"):]
        bullet = bullet[:bullet.find("\n- ") if "\n- " in bullet else len(bullet)]
        files = {path.name for path in (COLLECTION_ROOT / "plugins" / "module_utils" / package).glob("*.py")} - {"__init__.py"}
        assert sorted(name for name in files if f"`{name}`" not in bullet) == [], package
    assert (COLLECTION_ROOT / "docs" / "architecture.md").is_file() and "docs/architecture.md" in core_map
