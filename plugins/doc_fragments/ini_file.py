# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The INI file option group (ARGSPEC: C(INI_FILE_ARGSPEC) in plugins/module_utils/_options.py)."""

    DOCUMENTATION = r"""
options:
  dest:
    description:
      - Path of the INI file on the target, for example C(C:\SMAIL\smail.ini) or C(/srv/smail/smail.ini).
      - Its directory must exist.
    type: str
    required: true
  encoding:
    description:
      - The encoding of a new file, and the encoding an existing file is read and written in.
      - V(cp932) (Shift_JIS as Japanese Windows reads it) is what SMAIL, an ANSI Windows program, expects.
        V(utf-8), V(utf-16) and any other Python codec name are accepted.
      - A UTF-8 byte order mark is written only with V(utf-8-sig); V(utf-16) always writes one (little endian),
        as Windows needs it to recognise UTF-16.
      - An existing file that starts with a UTF-8 or UTF-16 byte order mark keeps that encoding and its mark,
        whatever this option says.
      - A value the encoding cannot hold fails the task, naming the key, before anything is written.
    type: str
    default: cp932
  newline:
    description:
      - The line break of a new file, V(crlf) (C(\r\n), what Windows programs expect) or V(lf) (C(\n)).
      - An existing file keeps its own line breaks; lines added to it use the first line break found in it.
    type: str
    choices: [crlf, lf]
    default: crlf
  backup:
    description:
      - Keep the previous file, with a timestamp in its name, when the content changes. See RV(backup_file).
    type: bool
    default: false
  mode:
    description:
      - The permissions of the file on POSIX targets, as for M(ansible.builtin.copy) (quote octal modes, V('0600')).
      - A new file is created with this mode before any content is written to it.
      - When not set, a file that holds a secret (the token INI, or a value under C(secret_keys) of
        M(smail.xoauth2.smail_ini)) gets V('0600'), also an existing file. A mode set here that lets group or others
        read such a file is kept, with a warning naming the file.
      - Ignored on Windows targets, where a new file inherits the ACL of its folder.
    type: raw
  owner:
    description:
      - The user owning the file on POSIX targets. Ignored on Windows targets.
    type: str
  group:
    description:
      - The group owning the file on POSIX targets. Ignored on Windows targets.
    type: str
notes:
  - The file is merged, never overwritten. SMAIL reads it with C(GetPrivateProfileString), so the rules are Windows' -
    leading and trailing blanks are ignored, a line starting with C([) starts a section, C(;) starts a comment, a line
    is split at its first C(=), a value loses surrounding quotes, and section and key names compare
    case-insensitively. Managed keys are updated in place; every other line (comments, unknown keys, order, blank
    lines, characters the encoding could not round-trip) is kept byte for byte. New keys go after the last key of
    their section, new sections at the end of the file.
  - Values that a Windows reader would read back differently, or that could inject lines, are refused before anything
    is written - CR, LF, NUL or other control characters anywhere; V([), V(]) or V(=) in a key; V([) or V(]) in a
    section name; a key starting with V(;) or V(#); leading or trailing blanks, or surrounding quotes, in a value.
  - The file is rendered on the controller and copied with M(ansible.builtin.copy) to POSIX targets or
    M(ansible.windows.win_copy) to Windows targets (chosen by the connection's shell), from a temporary file, so
    values never appear in the arguments of a task. Nothing is written when the input is refused. On POSIX targets the
    new file replaces the old one atomically, so a failed write leaves the old file intact; on Windows targets
    M(ansible.windows.win_copy) overwrites the file in place.
  - Windows targets need the C(ansible.windows) collection on the controller.
"""
