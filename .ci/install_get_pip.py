"""Put the offline get-pip stand-in where the installed ansible-test looks for its pip bootstrap script.

ansible-test reads ``~/.ansible/test/cache/get_pip_<pip version>.py`` before it tries to download one; the pip
version is the ``pip=`` default in its ``python_requirements.py`` (24.2 in ansible-core 2.19, 25.2 in 2.21).
Run with the venv's Python: ``python .ci/install_get_pip.py .ci/get_pip_offline.py``.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

PIP_DEFAULT = re.compile(r"""default_packages\s*=\s*dict\(\s*pip\s*=\s*['"]([0-9.]+)['"]""")


def ansible_test_pip_version() -> str:
    """The pip version the installed ansible-test bootstraps in its virtual environments."""
    spec = importlib.util.find_spec("ansible_test")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("ansible-test is not installed in this Python")
    source = Path(list(spec.submodule_search_locations)[0], "_internal", "python_requirements.py")
    match = PIP_DEFAULT.search(source.read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit(f"no default pip version found in {source}: update .ci/install_get_pip.py")
    return match.group(1)


def main(argv: list[str]) -> int:
    stand_in = Path(argv[1])
    target = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{ansible_test_pip_version().replace('.', '_')}.py"
    if not target.exists() or target.read_bytes() != stand_in.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stand_in, target)
        print(f"== get-pip: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
