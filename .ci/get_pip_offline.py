"""Stand-in for ansible-test's get-pip bootstrap script, whose download host is unreachable here.

ansible-test runs this file in-process with pip's own arguments; it installs pip with ensurepip
(bundled with CPython) and then the requested packages from the package index.
"""

import subprocess
import sys

ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + ARGS)
