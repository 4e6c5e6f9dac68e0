# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Prepare the files `make demo` runs playbooks/demo.yml with, and report what it produced.

``python sandbox/demo.py prepare --state-dir STATE --demo-dir DIR`` writes, from the running sandbox's settings, what
a user keeps next to their playbooks:

- ``DIR/inventory.yml``: three local hosts, each with its own ``smail_install_dir`` under ``DIR/hosts/``, and the
  sandbox's endpoints (not secret);
- ``DIR/group_vars/all/vault.yml``: the sandbox's client ID, client secret and refresh token, encrypted with
  ``ansible-vault`` under a demo-only password kept in ``DIR/vault-password``;
- ``DIR/ansible.cfg``: that inventory, that password file and the ``smail.xoauth2.notify`` callback, whose spool is
  ``DIR/spool``.

``python sandbox/demo.py report --state-dir STATE --demo-dir DIR`` prints the files the run rendered (every secret
the sandbox issued shown as ``********``) and the text part of every message the sandbox received.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from show_mail import MAIL_DIR, render_message

HOSTS = ("smail-01", "smail-02", "smail-03")
HOSTS_DIR = "hosts"
RENDERED_FILES = ("smail.ini", "smail_refresh_token.ini")
# The sandbox's settings that are secrets; the report masks their values wherever they appear.
SECRET_SETTINGS = ("client_secret", "refresh_token", "revoked_refresh_token", "app_password")
MASK = "********"
RECIPIENT = "Operations <ops@example.com>"


def heading(title: str) -> str:
    return f"\n{'=' * 78}\n{title}\n{'=' * 78}"


def read_settings(state_dir: Path) -> dict:
    return json.loads((state_dir / "sandbox.json").read_text(encoding="utf-8"))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file of mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(text, encoding="utf-8")


def inventory(settings: dict, demo_dir: Path) -> dict:
    """Three hosts on the controller, each with its own folder; the sandbox's endpoints as group variables."""
    return {
        "smail_hosts": {
            "hosts": {host: {"smail_install_dir": str(demo_dir / HOSTS_DIR / host)} for host in HOSTS},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "smail_account": settings["account"],
                "smail_provider": "custom",
                "smail_token_uri": settings["token_uri"],
                "smail_ca_path": settings["ca_path"],
                "smail_smtp_server": settings["host"],
                "smail_smtp_port": settings["smtp_ssl_port"],
                "demo_recipient": RECIPIENT,
                "demo_token_cache_dir": str(demo_dir / "token-cache"),
            },
        },
    }


def ansible_cfg(settings: dict, demo_dir: Path) -> str:
    """The demo's ansible.cfg: inventory, vault password file, and the callback reading the token INI of smail-01."""
    return f"""\
[defaults]
inventory = {demo_dir / 'inventory.yml'}
vault_password_file = {demo_dir / 'vault-password'}
callbacks_enabled = smail.xoauth2.notify

# The run summary, sent from the controller. The demo's hosts are folders on the controller, so the callback can read
# the token INI the smail_client role wrote for smail-01; on a real controller, keep one of its own.
[callback_smail_xoauth2_notify]
on = always
to = {RECIPIENT}
sender = Ansible <{settings['account']}>
provider = custom
token_ini = {demo_dir / HOSTS_DIR / HOSTS[0] / 'smail_refresh_token.ini'}
token_cache_dir = {demo_dir / 'token-cache'}
# A summary that cannot be sent waits here, with the demo, not in the controller user's ~/.ansible.
spool_dir = {demo_dir / 'spool'}
ca_path = {settings['ca_path']}
host = {settings['host']}
port = {settings['smtp_ssl_port']}
"""


def encrypt_with_ansible_vault(plaintext: str, *, password_file: Path, output: Path) -> None:
    """``ansible-vault encrypt`` from standard input, so the plaintext never touches the disk."""
    output.parent.mkdir(parents=True, exist_ok=True)
    ansible_vault = Path(sys.executable).parent / "ansible-vault"
    subprocess.run([str(ansible_vault), "encrypt", "--vault-password-file", str(password_file), "--output", str(output), "-"],
                   input=plaintext, text=True, check=True, stdout=subprocess.DEVNULL)
    output.chmod(0o600)


def prepare(state_dir: Path, demo_dir: Path) -> int:
    settings = read_settings(state_dir)
    demo_dir.mkdir(parents=True, exist_ok=True)
    password_file = demo_dir / "vault-password"
    write_private(password_file, secrets.token_urlsafe(24) + "\n")
    vault_file = demo_dir / "group_vars" / "all" / "vault.yml"
    credentials = {
        "vault_smail_client_id": settings["client_id"],
        "vault_smail_client_secret": settings["client_secret"],
        "vault_smail_refresh_token": settings["refresh_token"],
    }
    encrypt_with_ansible_vault(yaml.safe_dump(credentials, sort_keys=False), password_file=password_file, output=vault_file)
    write_private(demo_dir / "inventory.yml", yaml.safe_dump(inventory(settings, demo_dir), sort_keys=False))
    write_private(demo_dir / "ansible.cfg", ansible_cfg(settings, demo_dir))

    print(heading("Demo files"))
    print(f"{display_path(demo_dir / 'ansible.cfg')}: inventory, vault password file, smail.xoauth2.notify callback")
    print(f"{display_path(demo_dir / 'inventory.yml')}: {', '.join(HOSTS)} (local), the sandbox's endpoints")
    vault_header = vault_file.read_text(encoding="utf-8").splitlines()[0]
    print(f"{display_path(vault_file)}: client ID, client secret, refresh token, encrypted ({vault_header})")
    print(f"{display_path(password_file)}: the vault password, made for this demo only")
    return 0


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, for shorter lines."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def masked(text: str, secret_values: list[str]) -> str:
    for value in sorted(secret_values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def rendered_files_report(demo_dir: Path, secret_values: list[str]) -> tuple[list[str], bool]:
    """Lines listing every rendered file, then each distinct content once; and whether all files exist."""
    lines: list[str] = []
    complete = True
    contents: dict[str, list[Path]] = {}
    for host in HOSTS:
        for name in RENDERED_FILES:
            path = demo_dir / HOSTS_DIR / host / name
            if not path.is_file():
                lines.append(f"  {display_path(path)}  MISSING")
                complete = False
                continue
            lines.append(f"  {display_path(path)}  mode {path.stat().st_mode & 0o777:04o}")
            # SMAIL's files are cp932 with CRLF line breaks; shown here as text.
            text = masked(path.read_bytes().decode("cp932").replace("\r\n", "\n"), secret_values)
            contents.setdefault(text, []).append(path)
    for text, paths in contents.items():
        hosts = ", ".join(path.parent.name for path in paths)
        lines.append(f"\n--- {paths[0].name} ({hosts})")
        lines.append(text.rstrip("\n"))
    return lines, complete


def report(state_dir: Path, demo_dir: Path) -> int:
    settings = read_settings(state_dir)
    secret_values = [settings[name] for name in SECRET_SETTINGS if settings.get(name)]

    print(heading("Rendered files, secrets shown as " + MASK))
    lines, complete = rendered_files_report(demo_dir, secret_values)
    print("\n".join(lines))

    # The sandbox starts empty for each demo: every message it holds came from this run.
    messages = sorted((state_dir / MAIL_DIR).glob("*.eml"))
    print(heading(f"Messages the sandbox received: {len(messages)} (text parts)"))
    for path in messages:
        print()
        print(masked(render_message(path), secret_values))
    return 0 if complete and messages else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare and report the `make demo` run.")
    parser.add_argument("action", choices=["prepare", "report"])
    parser.add_argument("--state-dir", type=Path, required=True, help="the sandbox's state directory (sandbox.json)")
    parser.add_argument("--demo-dir", type=Path, required=True, help="where the demo's files go")
    args = parser.parse_args(argv)
    demo_dir = args.demo_dir.resolve()
    if args.action == "prepare":
        return prepare(args.state_dir, demo_dir)
    return report(args.state_dir, demo_dir)


if __name__ == "__main__":
    sys.exit(main())
