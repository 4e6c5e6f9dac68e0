#!/usr/bin/python
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: slurp_stat
short_description: Read a file and its mode, owner and group in one go; a missing file is an answer, not a failure
version_added: 1.0.0
description:
  - Returns whether O(path) exists and, when it does, its mode, owner and group and (unless it is a directory) its
    content, base64-encoded - what M(ansible.builtin.stat) and M(ansible.builtin.slurp) return, in one module run.
  - A missing file is reported as RV(exists=false); M(ansible.builtin.slurp) fails on it.
  - Symbolic links are followed; the attributes are those of the file that was read.
  - M(smail.xoauth2.smail_ini) and M(smail.xoauth2.token_ini) read their file on POSIX targets with it.
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
extends_documentation_fragment:
  - smail.xoauth2.attributes
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - The file to read.
    type: path
    required: true
notes:
  - The whole file is held in memory and returned base64-encoded; it is meant for small files such as configuration.
seealso:
  - module: ansible.builtin.slurp
  - module: ansible.builtin.stat
"""

EXAMPLES = r"""
- name: Read smail.ini if there is one
  smail.xoauth2.slurp_stat:
    path: /srv/smail/smail.ini
  register: smail_ini

- name: Show its text
  ansible.builtin.debug:
    msg: "{{ smail_ini.content | b64decode }}"
  when: smail_ini.exists and not smail_ini.isdir
"""

RETURN = r"""
exists:
  description: Whether O(path) exists.
  returned: always
  type: bool
  sample: true
isdir:
  description: Whether O(path) is a directory (then RV(content) is not returned).
  returned: when RV(exists=true)
  type: bool
  sample: false
mode:
  description: The permission bits, four octal digits.
  returned: when RV(exists=true)
  type: str
  sample: "0640"
uid:
  description: The numeric owner.
  returned: when RV(exists=true)
  type: int
  sample: 1000
gid:
  description: The numeric group.
  returned: when RV(exists=true)
  type: int
  sample: 1000
owner:
  description: The name of the owner, or V(null) when the user database has none for RV(uid).
  returned: when RV(exists=true)
  type: str
  sample: smail
group:
  description: The name of the group, or V(null) when the group database has none for RV(gid).
  returned: when RV(exists=true)
  type: str
  sample: smail
content:
  description: The file's bytes, base64-encoded.
  returned: when RV(exists=true) and RV(isdir=false)
  type: str
  sample: W1NNVFBdDQpTZXJ2ZXI9c210cC5nbWFpbC5jb20NCg==
encoding:
  description: The encoding of RV(content), always V(base64).
  returned: when RV(content) is returned
  type: str
  sample: base64
"""

import base64
import grp
import os
import pwd
import stat
import typing as t

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = {"path": {"type": "path", "required": True}}


def _attributes(status: os.stat_result) -> dict[str, t.Any]:
    try:
        owner: str | None = pwd.getpwuid(status.st_uid).pw_name
    except KeyError:
        owner = None
    try:
        group: str | None = grp.getgrgid(status.st_gid).gr_name
    except KeyError:
        group = None
    return {"exists": True, "isdir": stat.S_ISDIR(status.st_mode), "mode": f"{stat.S_IMODE(status.st_mode):04o}",
            "uid": status.st_uid, "gid": status.st_gid, "owner": owner, "group": group}


def read_file(path: str) -> dict[str, t.Any]:
    """What the module returns for ``path``; raises OSError when it exists but cannot be read."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return {"exists": False}
    except IsADirectoryError:
        return _attributes(os.stat(path))
    with handle:
        # The attributes of the very file read, even if path is replaced meanwhile.
        result = _attributes(os.fstat(handle.fileno()))
        if not result["isdir"]:
            result.update(content=base64.b64encode(handle.read()).decode("ascii"), encoding="base64")
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    path = module.params["path"]
    try:
        result = read_file(path)
    except OSError as exc:
        module.fail_json(msg=f"Could not read {path}: {exc.strerror or exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
