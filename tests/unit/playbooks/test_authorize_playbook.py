# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""playbooks/authorize.yml: the variables a user sets with -e, read from its templates."""

from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.meta
import yaml
from ansible.vars.reserved import get_reserved_names

PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "authorize.yml"
CONDITION_KEYS = ("when", "that", "failed_when", "changed_when")
# Names a template reads from Ansible itself (globals and lookups), reserved because users must not set them.
TEMPLATE_GLOBALS = {"omit", "lookup", "query", "q", "now", "undef", "range", "dict", "lipsum", "cycler", "joiner",
                    "namespace", "hostvars"}


def _expressions(node, key=None):
    """Every Jinja2 template of the playbook, conditions included (they are bare expressions)."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _expressions(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _expressions(value, key)
    elif isinstance(node, str):
        yield node if "{{" in node else ("{{ %s }}" % node if key in CONDITION_KEYS else None)


class _AnyFilter(dict):
    """Every filter and test name is known: only the variable names matter here."""

    def __contains__(self, name):
        return True

    def __missing__(self, name):
        return lambda value, *args, **kwargs: value

    def get(self, name, default=None):
        return self[name]


def referenced_variables() -> set[str]:
    environment = jinja2.Environment()
    environment.filters = _AnyFilter(environment.filters)
    environment.tests = _AnyFilter(environment.tests)
    names: set[str] = set()
    for template in _expressions(yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))):
        if template is not None:
            names |= jinja2.meta.find_undeclared_variables(environment.parse(template))
    return names


def test_it_reads_the_variables_users_give():
    names = referenced_variables()
    assert {"mode", "account", "client_secrets_file", "vault_output_file", "consent_timeout", "consent_port"} <= names


def test_no_variable_a_user_sets_is_a_name_ansible_reserves():
    # Ansible warns "Found variable using reserved name" for each of them when given with -e.
    assert (referenced_variables() - TEMPLATE_GLOBALS) & set(get_reserved_names()) == set()


def test_the_vault_block_is_named_by_no_role_variable():
    # smail_refresh_token: "{{ smail_refresh_token }}" in a role's vars would be a recursive loop.
    text = PLAYBOOK.read_text(encoding="utf-8")
    assert "vault_variable | default('vault_smail_refresh_token')" in text
    role_variables = set()
    for spec in Path(PLAYBOOK.parents[1], "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text(encoding="utf-8"))["argument_specs"].values():
            role_variables |= set(entry.get("options", {}))
    assert "smail_refresh_token" in role_variables
    assert "vault_smail_refresh_token" not in role_variables
