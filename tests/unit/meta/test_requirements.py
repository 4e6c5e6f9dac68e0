# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The project venv's requirement files: `make demo` installs the runtime and the sandbox, `make test` the rest too."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

# The checkout (the built copy holds no sandbox/): named by the Makefile, or above the tests.
CHECKOUT = (Path(os.environ["SMAIL_XOAUTH2_SANDBOX_DIR"]).parent if os.environ.get("SMAIL_XOAUTH2_SANDBOX_DIR")
            else Path(__file__).resolve().parents[3])
TOOLS = {"ansible-lint", "ruff", "mypy", "antsibull-changelog", "antsibull-docs", "ansible-builder", "pytest", "pytest-xdist"}
DEMO_NEEDS = {"ansible-core", "google-auth", "requests", "google-auth-oauthlib", "aiosmtpd", "trustme", "cryptography"}


def requirement_names(path: Path) -> set[str]:
    """The distribution names a requirement file installs, its ``-r`` includes followed."""
    names: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r"):
            names |= requirement_names(path.parent / line[2:].strip())
        elif line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def test_the_demo_requirements_are_the_runtime_and_the_sandbox():
    demo = requirement_names(CHECKOUT / "requirements-demo.txt")
    assert DEMO_NEEDS <= demo
    assert demo & TOOLS == set()


def test_the_dev_requirements_add_the_tools():
    assert DEMO_NEEDS | TOOLS <= requirement_names(CHECKOUT / "requirements-dev.txt")


def pip_installs(target: str, tmp_path: Path) -> list[str]:
    """The requirement files that ``make TARGET`` installs into a new venv, from its dry run."""
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(["make", "-n", "--no-print-directory", f"VENV={tmp_path / 'venv'}", f"BUILD={tmp_path / 'build'}",
                           target], cwd=CHECKOUT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return re.findall(r"pip install .*?-r (\S+)", done.stdout)


@pytest.mark.parametrize("target", ["sandbox-start", "playground"])
def test_the_demo_installs_no_tools(target, tmp_path):
    # sandbox-start is the demo's first prerequisite (a dry run of `demo` itself would run its recursive makes).
    assert pip_installs(target, tmp_path) == ["requirements-demo.txt"]


@pytest.mark.parametrize("target", ["lint", "units", "docs-tests", "sandbox-tests"])
def test_the_tests_install_the_tools_too(target, tmp_path):
    assert pip_installs(target, tmp_path) == ["requirements-demo.txt", "requirements-dev.txt"]


def test_make_test_and_the_ci_runner_name_the_same_suites():
    # .ci/core_root.sh runs `test` suite by suite: its list must be the Makefile's, the guide's and the sandbox's tests
    # included.
    makefile = (CHECKOUT / "Makefile").read_text(encoding="utf-8")
    runner = (CHECKOUT / ".ci" / "core_root.sh").read_text(encoding="utf-8")
    make_test = re.search(r"^test: (.+)$", makefile, re.MULTILINE).group(1).split()
    runner_test = re.search(r'"\$suite" = test \]; then expanded\+=\(([^)]*)\)', runner).group(1).split()
    assert make_test == runner_test
    assert make_test.count("sandbox-tests") == 1 and make_test.count("docs-tests") == 1 and "units" in make_test


def test_ci_runs_the_sandbox_tests_on_one_line_and_the_guide_on_the_oldest_and_newest():
    # .ci/matrix.sh: the legs run in order ("CORE SUITE...") and the two run side by side (run_leg "$core" ...); one
    # of them runs `test`, with docs-tests and sandbox-tests in it; the newest line runs the guide again (docs-tests),
    # and no line runs the sandbox's tests again.
    matrix = (CHECKOUT / ".ci" / "matrix.sh").read_text(encoding="utf-8")
    legs = [leg.split() for leg in re.findall(r'"2\.\d+((?: [a-z-]+)+)"', matrix)]
    legs += [leg.split() for leg in re.findall(r'run_leg "\$core" "\$line_targets"((?: [a-z-]+)+)', matrix)]
    assert len(legs) == 3, legs
    with_test = [leg for leg in legs if "test" in leg]
    assert len(with_test) == 1, legs
    assert not [leg for leg in legs if "sandbox-tests" in leg], legs
    newest = max(re.findall(r'"(2\.\d+)(?: [a-z-]+)+"', matrix), key=lambda core: int(core.split(".")[1]))
    assert re.search(rf'"{re.escape(newest)}(?: [a-z-]+)* docs-tests', matrix), newest
