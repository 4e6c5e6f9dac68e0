# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The documentation's promises about secrets in the output say where they hold.

ansible-core's ANSIBLE_DEBUG=1 prints a module process's arguments and raw output: a promise of "every verbosity" or
"-vvvv" that does not say so is wrong for that output.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

COLLECTION_ROOT = Path(__file__).resolve().parents[3]
MODULES = sorted(path.stem for path in (COLLECTION_ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
PROMISE = re.compile(r"every verbosity|-vvvv|any verbosity", re.IGNORECASE)


def _text(value) -> str:
    if isinstance(value, list):
        return " ".join(_text(item) for item in value)
    return str(value or "")


@pytest.mark.parametrize("name", MODULES)
def test_a_promise_about_the_output_names_what_ansible_debug_prints(name):
    doc = yaml.safe_load(importlib.import_module(f"ansible_collections.smail.xoauth2.plugins.modules.{name}").DOCUMENTATION)
    for part in ("description", "notes"):
        for paragraph in doc.get(part) or ():
            text = _text(paragraph)
            if PROMISE.search(text):
                assert "ANSIBLE_DEBUG" in text and "docs/security.md" in text, f"{name} {part}: {text}"


def test_the_security_document_covers_what_it_must():
    text = (COLLECTION_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for heading in ("## What is secret", "## File modes", "## http, proxies and redirects", "## TLS and the token cache",
                    "### What `ANSIBLE_DEBUG` does"):
        assert heading in text
