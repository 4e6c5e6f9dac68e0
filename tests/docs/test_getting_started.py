# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""docs/getting-started.md runs as written, against a sandbox of its own, like a doctest.

Its ``sh`` blocks run in order in one bash, in an empty project folder that is also HOME; a ``yaml`` or ``ini`` block
whose first line is ``# NAME`` is written to NAME. HTML comments, which a reader does not see, say what a person does
elsewhere (the console's download, a browser, an inventory), done against the sandbox:

- ``<!-- guide-test: run`` ... ``-->``: shell lines run at that point;
- ``<!-- guide-test: file NAME -->``: the next block is written to NAME;
- ``<!-- guide-test: stand-ins`` ... ``-->``: ``PLACEHOLDER => VALUE`` lines, replaced in every later block (VALUE may
  name the script's environment, ``$SANDBOX_CLIENT_ID``).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

import pytest

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
GUIDE = COLLECTION_ROOT / "docs" / "getting-started.md"
BROWSER = COLLECTION_ROOT / "tests" / "integration" / "targets" / "authorize" / "files" / "browser.py"
ACCOUNT = "alerts@example.com"

_PART = re.compile(
    r"<!-- guide-test: (?P<directive>run|stand-ins|file)(?P<argument>[^\n]*?)(?:\n(?P<body>.*?))?\s*-->"
    r"|^```(?P<lang>\w+)\n(?P<code>.*?)^```$",
    re.DOTALL | re.MULTILINE,
)
_FILE_HEADER = re.compile(r"#\s*(?P<name>[\w./-]+\.(?:yml|yaml|cfg|ini|json))\s*$")


def guide_script(text: str, environment: dict[str, str]) -> str:
    """The guide as one bash script: its blocks and its comments' steps, in the order a reader meets them."""
    lines = ["set -e"]
    stand_ins: dict[str, str] = {}
    next_file: str | None = None
    for number, part in enumerate(_PART.finditer(text), start=1):
        where = f"echo '>>> guide part {number}, line {text.count(chr(10), 0, part.start()) + 1}'"
        directive = part.group("directive")
        if directive == "run":
            lines += [where, part.group("body") or ""]
        elif directive == "stand-ins":
            for entry in (part.group("body") or "").splitlines():
                placeholder, _separator, value = entry.partition(" => ")
                stand_ins[placeholder.strip()] = string.Template(value.strip()).substitute(environment)
        elif directive == "file":
            next_file = part.group("argument").strip()
        else:
            code = part.group("code")
            for placeholder, value in stand_ins.items():
                code = code.replace(placeholder, value)
            header = _FILE_HEADER.match(code.splitlines()[0]) if code.strip() else None
            name = next_file or (header.group("name") if header and part.group("lang") in ("yaml", "ini") else None)
            next_file = None
            if name is not None:
                lines += [where, f"mkdir -p {shlex.quote(os.path.dirname(name) or '.')}",
                          f"cat > {shlex.quote(name)} <<'GUIDE_BLOCK'\n{code}GUIDE_BLOCK"]
            elif part.group("lang") == "sh":
                lines += [where, code]
            else:
                raise AssertionError(f"a {part.group('lang')} block of the guide without a file name: {code[:60]!r}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def guide_sandbox(tmp_path_factory):
    """A sandbox whose account is the guide's, so the guide's addresses need no stand-in."""
    from xoauth2_sandbox import Sandbox  # pylint: disable=import-outside-toplevel,import-error

    with Sandbox(tmp_path_factory.mktemp("guide-sandbox"), account=ACCOUNT) as running:
        yield running


def received(mail_dir: Path) -> list:
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(mail_dir.glob("*.eml"))]


def test_the_guide_runs_as_written(guide_sandbox, tmp_path):
    settings = guide_sandbox.settings
    project = tmp_path / "project"
    project.mkdir()
    keep = ("LANG", "LC_ALL", "TMPDIR", "ANSIBLE_COLLECTIONS_PATH")
    environment = {name: value for name, value in os.environ.items() if name in keep}
    environment.update(
        HOME=str(project),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTION_ROOT.parents[2]),
        GUIDE_BROWSER=f"{sys.executable} {BROWSER}",
        **{f"SANDBOX_{key.upper()}": str(value) for key, value in settings.items() if isinstance(value, (str, int))},
    )
    script = guide_script(GUIDE.read_text(encoding="utf-8"), environment)
    (tmp_path / "guide.sh").write_text(script, encoding="utf-8")
    done = subprocess.run(["bash", str(tmp_path / "guide.sh")], cwd=project, env=environment, capture_output=True,
                          text=True, timeout=600, check=False)
    transcript = done.stdout + done.stderr
    (tmp_path / "guide.log").write_text(transcript, encoding="utf-8")
    assert done.returncode == 0, f"the guide failed (script: {tmp_path / 'guide.sh'}):\n{transcript[-6000:]}"

    # Step 2 wrote the vault block into a folder that did not exist; step 4 configured both hosts from it.
    assert "vault_smail_refresh_token: !vault |" in (project / "group_vars" / "all" / "smail_token.yml").read_text()
    for host in ("pc-01", "pc-02"):
        token_ini = (project / "hosts" / host / "SMAIL" / "smail_refresh_token.ini").read_bytes().decode("cp932")
        assert f"ClientID={settings['client_id']}" in token_ini
        assert re.search(r"RefreshToken=1//sandbox-", token_ini)
    # Step 5: the task's mail and the callback's summary reached the sandbox.
    messages = received(Path(settings["mail_dir"]))
    subjects = [message["Subject"] for message in messages]
    assert "SMAIL configured on 2 hosts" in subjects
    assert len(messages) == 2, subjects
    assert all(message["To"] == "ops@example.com" for message in messages)
    # The guide's commands show no secret of the sandbox's client.
    assert settings["client_secret"] not in transcript
    assert settings["refresh_token"] not in transcript


def test_the_extractor_reads_files_stand_ins_and_hidden_steps():
    text = """
<!-- guide-test: stand-ins
SECRET-... => $VALUE
-->
```yaml
# site.yml
key: SECRET-...
```
<!-- guide-test: file tasks/one.yml -->
```yaml
- name: one
```
<!-- guide-test: run
echo hidden
-->
```sh
echo SECRET-...
```
"""
    script = guide_script(text, {"VALUE": "v1"})
    assert "cat > site.yml <<'GUIDE_BLOCK'\n# site.yml\nkey: v1\nGUIDE_BLOCK" in script
    assert "mkdir -p tasks\ncat > tasks/one.yml <<'GUIDE_BLOCK'\n- name: one\n" in script
    assert script.index("echo hidden") < script.index("echo v1")
    with pytest.raises(AssertionError, match="without a file name"):
        guide_script("```yaml\nkey: 1\n```\n", {})
