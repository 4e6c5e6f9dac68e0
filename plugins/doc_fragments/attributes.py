# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The attributes the modules share; each module keeps only its own C(support) and C(details).

    A module's own attribute keys win over a fragment's (ansible-doc merges each attribute key by key).
    """

    # Every module: what the attributes mean.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
"""

    # Modules with an action plugin of the same name (plugins/action/NAME.py): none of them supports async or
    # bypasses the host loop.
    ACTION = r"""
options: {}
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
  bypass_host_loop:
    description:
      - Forces a 'global' task that does not execute per host, this bypasses per host templating and serial,
        throttle and other loop considerations.
      - Conditionals will work as if C(run_once) is being used, variables used will be from the first available host.
      - This action will not work normally outside of lockstep strategies.
    support: none
"""
