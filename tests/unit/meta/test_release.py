# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ready to publish: the license text, galaxy.yml, version_added, and a release built in a scratch copy.

The release itself (``antsibull-changelog release``) is a maintainer's step; here it runs on a copy, and the tarball
``ansible-galaxy collection build`` makes of that copy must hold the license and the release notes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def galaxy() -> dict:
    return yaml.safe_load((COLLECTION_ROOT / "galaxy.yml").read_text(encoding="utf-8"))


def test_copying_is_the_gpl_3_that_galaxy_yml_names():
    text = (COLLECTION_ROOT / "COPYING").read_text(encoding="utf-8")
    assert galaxy()["license"] == ["GPL-3.0-or-later"]
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 3, 29 June 2007" in text[:200]
    assert "END OF TERMS AND CONDITIONS" in text and "How to Apply These Terms to Your New Programs" in text
    assert len(text) > 30000  # the whole text, not a pointer to it


def test_galaxy_yml_has_no_placeholder():
    text = (COLLECTION_ROOT / "galaxy.yml").read_text(encoding="utf-8")
    assert ".invalid" not in text and "example." not in text
    for key in ("repository", "documentation", "homepage", "issues"):
        assert galaxy().get(key) is None or str(galaxy()[key]).startswith("https://"), key


def test_every_version_added_is_released_or_this_release():
    changelog = yaml.safe_load((COLLECTION_ROOT / "changelogs" / "changelog.yaml").read_text(encoding="utf-8"))
    known = set(changelog.get("releases") or {}) | {galaxy()["version"]}
    found = {}
    for path in [*(COLLECTION_ROOT / "plugins").rglob("*.py"), *(COLLECTION_ROOT / "roles").rglob("argument_specs.yml")]:
        for version in re.findall(r"version_added: *['\"]?([0-9][0-9.]*)", path.read_text(encoding="utf-8")):
            found.setdefault(version, set()).add(str(path.relative_to(COLLECTION_ROOT)))
    assert {version: sorted(paths) for version, paths in found.items() if version not in known} == {}


def _run(*argv, cwd: Path) -> str:
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"
    done = subprocess.run([str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_release_in_a_scratch_copy_ships_its_notes_and_license(tmp_path):
    scratch = tmp_path / "ansible_collections" / "smail" / "xoauth2"
    shutil.copytree(COLLECTION_ROOT, scratch, ignore=shutil.ignore_patterns(".git", "output", "__pycache__", ".pytest_cache"))
    version = galaxy()["version"]
    _run(BIN / "antsibull-changelog", "lint", cwd=scratch)
    _run(BIN / "antsibull-changelog", "release", "--date", "2026-12-31", cwd=scratch)
    notes = (scratch / "CHANGELOG.rst").read_text(encoding="utf-8")
    assert f"\nv{version}\n" in notes and "Release Summary" in notes
    # A first release lists every plugin and role as new (their version_added is this release).
    for heading, name in (("New Modules", "smail.xoauth2.mail"), ("New Plugins", "smail.xoauth2.notify"),
                          ("New Roles", "smail.xoauth2.smail_client")):
        assert heading in notes and name in notes, heading
    assert list((scratch / "changelogs" / "fragments").glob("*.yml")) == []

    _run(BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp_path / "dist", scratch, cwd=tmp_path)
    (tarball,) = (tmp_path / "dist").glob(f"smail-xoauth2-{version}.tar.gz")
    with tarfile.open(tarball) as archive:
        members = set(archive.getnames())
        assert {"COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "README.md"} <= members
        assert archive.extractfile("COPYING").read() == (COLLECTION_ROOT / "COPYING").read_bytes()
