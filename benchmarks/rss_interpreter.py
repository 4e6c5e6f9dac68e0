#!/usr/bin/env python3
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An ansible_python_interpreter that records the peak memory and wall time of each module process (case 6).

Runs BENCH_REAL_PYTHON with the arguments and standard streams it was given, then appends the child's peak
resident set size (ru_maxrss of RUSAGE_CHILDREN, KiB on Linux) and its wall time to BENCH_RSS_LOG as one JSON line.
The wrapper's own memory is not counted: RUSAGE_CHILDREN covers only the processes it waited for.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def main() -> int:
    """Run the real interpreter, record its peak RSS, and exit with its status."""
    started = time.monotonic()
    completed = subprocess.run([os.environ["BENCH_REAL_PYTHON"], *sys.argv[1:]], check=False)
    wall_s = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.environ["BENCH_RSS_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"argv": sys.argv[1:2], "maxrss_kib": usage.ru_maxrss, "wall_s": wall_s}) + "\n")
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
