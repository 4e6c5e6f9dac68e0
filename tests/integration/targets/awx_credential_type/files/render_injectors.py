# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Render a credential type's injectors as AWX does: each value a Jinja2 template over the credential's inputs.

Reads the inputs as JSON on stdin (they hold secrets: never on the command line), writes the environment and the
extra variables as JSON files of mode 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment


def render_injectors(credential_type: dict, inputs: dict) -> dict:
    """{'env': {...}, 'extra_vars': {...}} with every value rendered; a missing required input is an error."""
    missing = [name for name in credential_type["inputs"].get("required", []) if not inputs.get(name)]
    if missing:
        raise SystemExit(f"missing required inputs: {', '.join(missing)}")
    declared = {field["id"] for field in credential_type["inputs"]["fields"]}
    unknown = sorted(set(inputs) - declared)
    if unknown:
        raise SystemExit(f"inputs not declared by the credential type: {', '.join(unknown)}")
    # AWX renders a declared input that the credential leaves empty as an empty string; an undeclared name is a typo.
    namespace = {**dict.fromkeys(declared, ""), **inputs}
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    injectors = credential_type["injectors"]
    return {kind: {name: env.from_string(str(template)).render(**namespace) for name, template in injectors.get(kind, {}).items()}
            for kind in ("env", "extra_vars")}


def write_private_json(path: str, value: dict) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump(value, handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("credential_type")
    parser.add_argument("--env-out", required=True)
    parser.add_argument("--extra-vars-out", required=True)
    args = parser.parse_args()
    with open(args.credential_type, encoding="utf-8") as handle:
        credential_type = yaml.safe_load(handle)
    rendered = render_injectors(credential_type, json.load(sys.stdin))
    write_private_json(args.env_out, rendered["env"])
    write_private_json(args.extra_vars_out, rendered["extra_vars"])
    print(json.dumps({"env": sorted(rendered["env"]), "extra_vars": sorted(rendered["extra_vars"])}))


if __name__ == "__main__":
    main()
