# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""meta/execution-environment.yml and bindep.txt, read the way ansible-builder reads them.

``ansible-builder create`` only writes a build context; the collection's requirements are introspected later, in the
container build. The test writes the context for an execution environment that includes this collection from a
locally built tarball, then replays the context's galaxy and introspection steps without a container: the collection
installed from the context's own requirements.yml, the context's own introspect.py over it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
BASE_IMAGE = "registry.example.invalid/ee-minimal:latest"


def run(*argv: str | Path, cwd: Path) -> str:
    """Run a command, returning its stdout; a failure shows its output."""
    # Without the test run's PYTHONPATH and collection paths, galaxy would find this collection installed already.
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH")}
    done = subprocess.run([str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_tarball(out: Path) -> Path:
    run(BIN / "ansible-galaxy", "collection", "build", COLLECTION_ROOT, "--output-path", out, cwd=out)
    (tarball,) = out.glob("smail-xoauth2-*.tar.gz")
    return tarball


def write_ee_definition(directory: Path, tarball: Path) -> Path:
    definition = {
        "version": 3,
        "images": {"base_image": {"name": BASE_IMAGE}},
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core>=2.19,<2.20"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": {"collections": [{"name": f"collections/{tarball.name}", "type": "file"}]},
        },
        # The tarball travels in the context, where the galaxy stage's requirements.yml finds it.
        "additional_build_files": [{"src": str(tarball), "dest": "collections"}],
    }
    path = directory / "execution-environment.yml"
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")
    return path


def test_collection_metadata_names_requirements_and_bindep():
    meta = yaml.safe_load((COLLECTION_ROOT / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert meta == {"version": 1, "dependencies": {"python": "requirements.txt", "system": "bindep.txt"}}
    for name in meta["dependencies"].values():
        assert (COLLECTION_ROOT / name).is_file()


def test_builder_context_lists_google_auth(tmp_path):
    tarball = build_tarball(tmp_path)
    definition = write_ee_definition(tmp_path, tarball)
    context = tmp_path / "context"
    run(BIN / "ansible-builder", "create", "--file", definition, "--context", context, "--output-filename", "Containerfile",
        cwd=tmp_path)

    build = context / "_build"
    assert (build / "collections" / tarball.name).is_file()
    assert BASE_IMAGE in (context / "Containerfile").read_text(encoding="utf-8")

    # The galaxy stage: install from the context's requirements.yml, in the context's _build directory.
    installed = tmp_path / "usr_share_ansible" / "collections"
    run(BIN / "ansible-galaxy", "collection", "install", "-r", build / "requirements.yml", "-p", installed, cwd=build)
    # The builder stage: the context's own introspect.py, as the Containerfile runs it.
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    run(sys.executable, build / "scripts" / "introspect.py", "introspect", installed,
        "--write-pip", pip_out, "--write-bindep", bindep_out, cwd=tmp_path)

    pip_lines = pip_out.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("google-auth>=2.30") and "smail.xoauth2" in line for line in pip_lines), pip_lines
    assert any(line.startswith("requests>=2.31") for line in pip_lines), pip_lines
    bindep_lines = bindep_out.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("ca-certificates") and "smail.xoauth2" in line for line in bindep_lines), bindep_lines
