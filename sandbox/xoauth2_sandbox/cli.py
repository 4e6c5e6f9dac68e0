# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The command line: ``run``, ``wait`` and ``stop`` over a state directory."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .common import LOG, PID_FILE, SETTINGS_FILE, wait_for_file
from .sandbox import Sandbox


def run(state_dir: Path) -> int:
    """Run the sandbox in the foreground until SIGTERM or SIGINT."""
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    sandbox = Sandbox(state_dir)
    pid_path = sandbox.state_dir / PID_FILE
    sandbox.state_dir.mkdir(parents=True, exist_ok=True)
    pid_path.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        settings = sandbox.start()
        LOG.info("sandbox ready: %s", sandbox.settings_path)
        print(json.dumps({k: v for k, v in settings.items() if k.endswith(("_port", "_uri", "_url"))}), flush=True)
        while not stop_requested.wait(0.5):
            pass
    finally:
        sandbox.stop()
        pid_path.unlink(missing_ok=True)
    return 0


def stop_running(state_dir: Path, timeout: float) -> int:
    """Send SIGTERM to the sandbox recorded in ``state_dir`` and wait until it has cleaned up."""
    pid_path = Path(state_dir) / PID_FILE
    try:
        pid = int(pid_path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        print(f"no sandbox pid file at {pid_path}", file=sys.stderr)
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_path.unlink(missing_ok=True)
        return 0
    # run() removes the pid file as its last step.
    deadline = time.monotonic() + timeout
    while pid_path.exists():
        if time.monotonic() >= deadline:
            print(f"sandbox (pid {pid}) did not stop within {timeout}s", file=sys.stderr)
            return 1
        time.sleep(0.1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xoauth2_sandbox", description="Local Gmail-like XOAUTH2 sandbox (token endpoint and SMTP servers).")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run in the foreground until SIGTERM/SIGINT")
    wait_parser = commands.add_parser("wait", help="wait until a running sandbox has written sandbox.json")
    stop_parser = commands.add_parser("stop", help="stop the sandbox recorded in the state directory")
    for sub in (run_parser, wait_parser, stop_parser):
        sub.add_argument("--state-dir", type=Path, required=True)
    for sub in (wait_parser, stop_parser):
        sub.add_argument("--timeout", type=float, default=30.0)
    run_parser.add_argument("-v", "--verbose", action="store_true", help="log every SMTP and HTTP exchange")
    args = parser.parse_args(argv)

    if args.command == "run":
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        if not args.verbose:
            # aiosmtpd logs every connection and a deprecation notice per AUTH at INFO/WARNING.
            logging.getLogger("mail.log").setLevel(logging.ERROR)
        return run(args.state_dir)
    if args.command == "wait":
        if wait_for_file(args.state_dir / SETTINGS_FILE, args.timeout):
            return 0
        print(f"{args.state_dir / SETTINGS_FILE} did not appear within {args.timeout}s", file=sys.stderr)
        return 1
    return stop_running(args.state_dir, args.timeout)
