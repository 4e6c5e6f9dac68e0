# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Errors as values: every failure of the collection's cores carries a stable code.

This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import typing as t


class SmailError(Exception):
    """A failure with a stable machine-readable ``code``, a human ``msg`` and an optional ``hint``.

    ``details`` holds extra result fields (never secrets) that callers merge into a task result.
    """

    def __init__(self, code: str, msg: str, *, hint: str | None = None, details: dict[str, t.Any] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.hint = hint
        self.details = dict(details or {})

    @property
    def full_msg(self) -> str:
        """The message followed by the hint, as shown to a user."""
        return f"{self.msg} Hint: {self.hint}" if self.hint else self.msg

    def as_result(self) -> dict[str, t.Any]:
        """Fields for a failed task result: ``error``, ``msg`` (with the hint) and the details."""
        result: dict[str, t.Any] = dict(self.details)
        result.update(error=self.code, msg=self.full_msg)
        return result

    def __str__(self) -> str:
        return f"{self.code}: {self.full_msg}"


class OptionError(SmailError):
    """Bad input, found before anything was sent or written; names the option and the problem."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__("invalid_option", f"Option '{option}': {problem}", details={"option": option})
        self.option = option
        self.problem = problem
