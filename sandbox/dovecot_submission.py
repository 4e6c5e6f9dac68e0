# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Dovecot's submission server (2.3 or 2.4) as a third-party XOAUTH2/OAUTHBEARER server for the sandbox.

Dovecot validates bearer tokens through the sandbox's ``tokeninfo_url`` (passdb ``oauth2``) and relays
accepted mail to the sandbox's relay sink, so a message sent through Dovecot ends up in the
sandbox's ``mail_dir`` like any other. Its listener offers STARTTLS with the sandbox's trusted
certificate. Everything Dovecot needs lives under ``<state_dir>/dovecot`` (its sockets move to a short
``/tmp/xoauth2-dovecot-<hash>`` when the state directory is too deep for Unix socket paths); the
port is written to ``<state_dir>/dovecot.json`` as ``{"dovecot_submission_port": N}``.

Observed with Debian's Dovecot 2.3.19.1 (the settings below are shaped by these observations):

* A bad or unknown token over XOAUTH2 is answered like Gmail does it, in two steps: first
  ``334`` with base64 of ``{"status":"401","schemes":"bearer","scope":"mail"}``; after the client's
  (empty) answer, a single-line ``535 5.7.8 Authentication failed.``. OAUTHBEARER is the same with
  ``{"status":"invalid_token"}`` (no schemes, no scope; the client answers ``AQ==``). A user that
  is not the token's ``email`` is refused the same way. Success is ``235 2.7.0 Logged in.``.
* Malformed client responses get no challenge: undecodable base64 is ``501 5.5.2 Invalid base64
  data in initial response``, a decodable string without user or token is ``535 5.7.8``.
* A 535 arrives about 0.5 s after the client's last line, even with the delays below switched off;
  ``dovecot stop`` takes 2-3 s.
* When the tokeninfo endpoint cannot be reached, AUTH gets ``454 4.7.0 Temporary authentication
  failure.``, not 535.
* AUTH XOAUTH2/OAUTHBEARER is advertised before STARTTLS too (they are not "plaintext" mechanisms).
* Dovecot advertises CHUNKING and BURL itself but relays with plain DATA when the relay does not
  offer CHUNKING; the relay's final reply is passed on prefixed with ``2.0.0``.
* A failed authentication is answered after ``auth_failure_delay`` (2 s) and later attempts from the
  same IP are delayed by the anvil "auth penalty" (2 s, 4 s, ... up to 15 s); both are switched off
  here so that tests stay fast.
* Login processes refuse to run as root and mail processes refuse uid 0, so the login user is
  ``dovenull`` and the static userdb maps everyone to ``nobody``; the other services run as root.

Dovecot 2.4 (Debian 13) has a configuration syntax of its own: the file must start with
``dovecot_config_version``, the SSL and mail settings are renamed, and tokens are checked by the
``oauth2`` settings (no passdb; ``oauth2_introspection_mode`` is required, so tokeninfo is also the
introspection URL, asked with GET). 2.4 also takes any ``error`` member in a 4xx answer for a failure of
its own (XOAUTH2 status ``500``, not ``401``), so it asks the sandbox's tokeninfo with ``error_member=no``.
``write_config`` writes the syntax of the ``dovecot --version`` it finds.

CLI: ``python sandbox/dovecot_submission.py start|stop|run --state-dir DIR`` (DIR holds a running
sandbox's ``sandbox.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

# The sandbox directory is on sys.path: it is the script's directory, or tests put it there.
from xoauth2_sandbox import HOST, SERVER_CERT_FILE, SERVER_KEY_FILE, SETTINGS_FILE, free_port, wait_for_file, write_json_atomically

LOG = logging.getLogger("dovecot_submission")

DOVECOT_JSON_FILE = "dovecot.json"
DOVECOT_DIR = "dovecot"
#: Users of the Debian package (dovecot-core creates them); login processes must not run as root.
LOGIN_USER = "dovenull"
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"
#: sun_path holds 108 bytes; Dovecot's longest socket below base_dir is "token-login/tokenlogin".
UNIX_SOCKET_PATH_MAX = 107
SOCKET_NAME_ROOM = 32


class DovecotError(RuntimeError):
    """Dovecot is missing, refused its configuration, or did not start listening in time."""


def find_dovecot() -> str | None:
    """Path of the ``dovecot`` binary (also looked for in /usr/sbin, which is often not on PATH)."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def dovecot_version(binary: str) -> tuple[int, int]:
    """Major and minor version of ``binary`` (``dovecot --version`` prints for example ``2.4.1-4 (7d8c0e5759)``)."""
    output = subprocess.run([binary, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False).stdout
    try:
        major, minor = output.split()[0].split(".")[:2]
        return int(major), int(minor)
    except (IndexError, ValueError):
        raise DovecotError(f"cannot read the version of {binary} from {output.strip()!r}") from None


def port_accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def process_is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a daemonized master may never be reaped here)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return True
    return "\nState:\tZ" not in status


@dataclasses.dataclass(frozen=True)
class DovecotLayout:
    """Where the files of one sandbox Dovecot instance live (all under ``<state_dir>/dovecot``)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def oauth2_config(self) -> Path:
        return self.root / "oauth2.conf.ext"

    @property
    def base_dir(self) -> Path:
        """``<root>/run``, or a short twin in /tmp when that would make socket paths too long."""
        preferred = self.root / "run"
        if len(str(preferred)) + 1 + SOCKET_NAME_ROOM <= UNIX_SOCKET_PATH_MAX:
            return preferred
        # Deep state directories (pytest's, for one) would push Dovecot's sockets past the limit.
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path("/tmp") / f"xoauth2-dovecot-{digest}"

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def master_pid(self) -> Path:
        return self.base_dir / "master.pid"


class DovecotSubmission:
    """One Dovecot submission server in front of a running sandbox (see the module docstring)."""

    def __init__(self, state_dir: Path | str, sandbox_settings: t.Mapping[str, t.Any], *, auth_debug: bool = False) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.sandbox_settings = dict(sandbox_settings)
        self.auth_debug = auth_debug
        self.layout = DovecotLayout(self.state_dir / DOVECOT_DIR)
        self.port: int | None = None
        self._binary = find_dovecot()

    @property
    def settings_path(self) -> Path:
        return self.state_dir / DOVECOT_JSON_FILE

    def __enter__(self) -> DovecotSubmission:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 15.0) -> dict[str, int]:
        """Write the configuration, start Dovecot as a daemon, wait until it listens; returns ``{"dovecot_submission_port": N}``."""
        if self._binary is None:
            raise DovecotError("dovecot is not installed (Debian: apt-get install dovecot-core dovecot-submissiond)")
        self.settings_path.unlink(missing_ok=True)
        self._stop_stale_instance()
        self.port = free_port()
        self.write_config(self.port)
        # A socket left by an instance with the penalty enabled would switch it back on (and log errors).
        (self.layout.base_dir / "anvil-auth-penalty").unlink(missing_ok=True)
        # The daemonized master inherits stdout/stderr: pipes would stay open (and a caller capturing
        # them would wait) for as long as Dovecot runs, so its startup output goes to a file.
        startup_log = self.layout.root / "startup.log"
        with startup_log.open("w", encoding="utf-8") as output:
            returncode = subprocess.call([self._binary, "-c", str(self.layout.config)], stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        if returncode != 0:
            raise DovecotError(f"dovecot failed to start (rc={returncode}): {startup_log.read_text(encoding='utf-8').strip()}")
        deadline = time.monotonic() + timeout
        while not port_accepts_connections(HOST, self.port):
            if time.monotonic() >= deadline:
                self.stop()
                raise DovecotError(f"dovecot did not listen on {HOST}:{self.port} within {timeout}s; see {self.layout.log}")
            time.sleep(0.05)
        settings = {"dovecot_submission_port": self.port}
        write_json_atomically(self.settings_path, settings)
        return settings

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the instance (``dovecot -c FILE stop``) and wait until its master process is gone."""
        self.settings_path.unlink(missing_ok=True)
        if self._binary is None or not self.layout.config.exists():
            return
        pid = self._master_pid()
        if pid is not None and not process_is_running(pid):
            return
        # Without a pid file (a master that has only just started), `dovecot stop` still finds it.
        # It returns once the master is gone, which takes Dovecot 2-3 s.
        subprocess.run([self._binary, "-c", str(self.layout.config), "stop"], stdin=subprocess.DEVNULL, capture_output=True, check=False)
        deadline = time.monotonic() + timeout
        while pid is not None and process_is_running(pid):
            if time.monotonic() >= deadline:
                LOG.warning("dovecot master %s still runs %ss after stop", pid, timeout)
                return
            time.sleep(0.05)
        if not self.layout.base_dir.is_relative_to(self.layout.root):
            shutil.rmtree(self.layout.base_dir, ignore_errors=True)

    def write_config(self, port: int) -> Path:
        """Write ``dovecot.conf`` (and for 2.3 its oauth2 passdb file) for a listener on ``port``; returns the config path."""
        layout = self.layout
        for directory in (layout.root, layout.base_dir, layout.lib_dir, layout.mail_dir):
            directory.mkdir(parents=True, exist_ok=True)
        version = dovecot_version(self._binary) if self._binary else (2, 3)
        config = self._config_2_4(port, version) if version >= (2, 4) else self._config_2_3(port)
        layout.config.write_text(config, encoding="utf-8")
        return layout.config

    def _common_settings(self, port: int, *, listener_address: str) -> str:
        """The settings whose names 2.3 and 2.4 share; a listener's address is ``address`` in 2.3, ``listen`` in 2.4."""
        layout = self.layout
        return f"""\
instance_name = xoauth2-sandbox-{port}
base_dir = {layout.base_dir}
state_dir = {layout.lib_dir}
log_path = {layout.log}
auth_verbose = yes
auth_debug = {"yes" if self.auth_debug else "no"}

protocols = submission
listen = {HOST}
hostname = submission.sandbox.localhost

# Only the login processes must not run as root; everything else may, in this sandbox.
default_internal_user = root
default_internal_group = root
default_login_user = {LOGIN_USER}
first_valid_uid = 1

auth_mechanisms = xoauth2 oauthbearer
# Tests expect a refusal at once, not after the default 2 s delay.
auth_failure_delay = 0

submission_relay_host = {HOST}
submission_relay_port = {int(self.sandbox_settings["smtp_relay_port"])}
submission_relay_trusted = no

service submission-login {{
  inet_listener submission {{
    {listener_address} = {HOST}
    port = {port}
  }}
  # 2.4 also listens for implicit TLS on 465 by default: port 0 turns that listener off.
  inet_listener submissions {{
    port = 0
  }}
}}

# mode = 0 keeps the anvil-auth-penalty socket from being created; without it the auth process
# applies no "auth penalty" (growing delays after failed logins from one IP).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    def _config_2_3(self, port: int) -> str:
        layout = self.layout
        sandbox_state = Path(self.sandbox_settings["state_dir"])
        layout.oauth2_config.write_text(
            "\n".join(
                [
                    "# Validate bearer tokens with the sandbox's Google-like tokeninfo endpoint;",
                    "# Dovecot appends the (escaped) token to tokeninfo_url and compares `email` with the user.",
                    f"tokeninfo_url = {self.sandbox_settings['tokeninfo_url']}",
                    "username_attribute = email",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        return f"""\
# Generated by sandbox/dovecot_submission.py for Dovecot 2.3; rewritten on every start.
{self._common_settings(port, listener_address="address")}
ssl = yes
ssl_cert = <{sandbox_state / SERVER_CERT_FILE}
ssl_key = <{sandbox_state / SERVER_KEY_FILE}

passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {layout.oauth2_config}
}}
userdb {{
  driver = static
  args = uid={MAIL_USER} gid={MAIL_GROUP} home={layout.mail_dir}/%u allow_all_users=yes
}}
mail_location = maildir:{layout.mail_dir}/%u/Maildir
"""

    def _config_2_4(self, port: int, version: tuple[int, int]) -> str:
        layout = self.layout
        sandbox_state = Path(self.sandbox_settings["state_dir"])
        # 2.4 reads an `error` member in the answer as its own failure: the sandbox leaves it out when asked.
        tokeninfo_url = str(self.sandbox_settings["tokeninfo_url"]).replace("?access_token=", "?error_member=no&access_token=")
        release = f"{version[0]}.{version[1]}.0"
        return f"""\
# Generated by sandbox/dovecot_submission.py for Dovecot 2.4; rewritten on every start.
dovecot_config_version = {release}
dovecot_storage_version = {release}
{self._common_settings(port, listener_address="listen")}
ssl = yes
ssl_server_cert_file = {sandbox_state / SERVER_CERT_FILE}
ssl_server_key_file = {sandbox_state / SERVER_KEY_FILE}

# Validate bearer tokens with the sandbox's Google-like tokeninfo endpoint: Dovecot appends the
# (escaped) token to the URL and compares `email` with the user. 2.4 wants an introspection mode too.
oauth2 {{
  tokeninfo_url = {tokeninfo_url}
  introspection_mode = get
  introspection_url = {tokeninfo_url}
  username_attribute = email
}}
userdb static {{
  fields {{
    uid = {MAIL_USER}
    gid = {MAIL_GROUP}
    home = {layout.mail_dir}/%{{user}}
  }}
  static_allow_all_users = yes
}}
mail_driver = maildir
mail_path = {layout.mail_dir}/%{{user}}/Maildir
"""

    def _master_pid(self) -> int | None:
        try:
            return int(self.layout.master_pid.read_text(encoding="utf-8").split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _stop_stale_instance(self) -> None:
        """Stop a Dovecot left running in this state directory by an earlier, interrupted run."""
        pid = self._master_pid()
        if pid is not None and process_is_running(pid):
            LOG.info("stopping a stale dovecot (pid %s) in %s", pid, self.layout.root)
            self.stop()


def load_sandbox_settings(state_dir: Path, timeout: float) -> dict[str, t.Any]:
    """The running sandbox's ``sandbox.json`` in ``state_dir``, waiting up to ``timeout`` seconds for it."""
    path = Path(state_dir) / SETTINGS_FILE
    if not wait_for_file(path, timeout):
        raise DovecotError(f"{path} did not appear within {timeout}s; start the sandbox first")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Dovecot submission server in front of the XOAUTH2 sandbox.")
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start Dovecot as a daemon and write dovecot.json")
    stop_parser = commands.add_parser("stop", help="stop the Dovecot of the state directory")
    run_parser = commands.add_parser("run", help="start Dovecot, wait for SIGTERM/SIGINT, stop it")
    for sub in (start_parser, stop_parser, run_parser):
        sub.add_argument("--state-dir", type=Path, required=True)
    for sub in (start_parser, run_parser):
        sub.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for sandbox.json and the listener")
        sub.add_argument("--auth-debug", action="store_true", help="Dovecot auth_debug (logs tokens to dovecot.log)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if args.command == "stop":
        # stop() only needs the layout, not the sandbox settings.
        DovecotSubmission(args.state_dir, {}).stop()
        return 0
    try:
        dovecot = DovecotSubmission(args.state_dir, load_sandbox_settings(args.state_dir, args.timeout), auth_debug=args.auth_debug)
        settings = dovecot.start(timeout=args.timeout)
    except DovecotError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(settings), flush=True)
    if args.command == "start":
        return 0
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        dovecot.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
