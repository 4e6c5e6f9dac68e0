# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A playbook run as a summary mail: the recap per host, the failed and the changed tasks, as text and HTML.

The ``smail.xoauth2.notify`` callback records events into a :class:`PlaybookRun`; this file decides whether the
run is worth a mail and renders it. This file is private to the collection and has no Ansible imports.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import html
import json
import typing as t

#: What a failure shows instead of the result of a task run with ``no_log``.
NO_LOG_MESSAGE = "output hidden by no_log"

SEND_ON = ("failure", "changed", "always")
RECAP_COLUMNS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")

STATUS_FAILED = "FAILED"
STATUS_CHANGED = "changed"
STATUS_OK = "ok"

# Kinds of task problems: the first two make a run fail, the others were absorbed by the play.
FAILED = "failed"
UNREACHABLE = "unreachable"
IGNORED = "ignored"
RESCUED = "rescued"

# Background colours of non-zero recap cells; light shades keep the numbers readable in any mail client.
_CELL_COLOURS = {
    "ok": "#d4edda",
    "changed": "#fff3cd",
    "failed": "#f8d7da",
    "unreachable": "#f8d7da",
}
_STATUS_COLOURS = {STATUS_FAILED: "#b02a37", STATUS_CHANGED: "#997404", STATUS_OK: "#146c43"}


@dataclasses.dataclass(frozen=True)
class HostRecap:
    """The play recap line of one host."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @classmethod
    def from_counts(cls, host: str, counts: t.Mapping[str, int]) -> HostRecap:
        """From the counters of ansible's ``AggregateStats.summarize()``, which calls ``failed`` ``failures``."""
        values = {column: int(counts.get("failures" if column == "failed" else column, 0) or 0) for column in RECAP_COLUMNS}
        return cls(host=host, **values)

    @property
    def has_failed(self) -> bool:
        return self.failed > 0 or self.unreachable > 0

    def count(self, column: str) -> int:
        return int(getattr(self, column))


@dataclasses.dataclass(frozen=True)
class TaskProblem:
    """A task that failed on a host, or could not reach it; ``message`` is already shortened or hidden."""

    host: str
    task: str
    message: str
    kind: str = FAILED


@dataclasses.dataclass
class PlaybookRun:
    """Everything the summary mail reports about one ``ansible-playbook`` run."""

    controller: str
    started: datetime.datetime
    finished: datetime.datetime | None = None
    playbooks: list[str] = dataclasses.field(default_factory=list)
    plays: list[str] = dataclasses.field(default_factory=list)
    recap: list[HostRecap] = dataclasses.field(default_factory=list)
    problems: list[TaskProblem] = dataclasses.field(default_factory=list)
    #: Host name to the names of the tasks that changed it, in the order they ran.
    changed_tasks: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    #: Notices about the sending itself, shown first (a refresh token about to expire); never a secret.
    notices: list[str] = dataclasses.field(default_factory=list)

    def add_notice(self, text: str) -> None:
        if text and text not in self.notices:
            self.notices.append(text)

    def add_playbook(self, path: str) -> None:
        if path not in self.playbooks:
            self.playbooks.append(path)

    def add_play(self, name: str) -> None:
        if name and name not in self.plays:
            self.plays.append(name)

    def record_problem(self, problem: TaskProblem) -> None:
        self.problems.append(problem)

    def record_change(self, host: str, task: str) -> None:
        self.changed_tasks.setdefault(host, []).append(task)

    def finish(self, recap: t.Iterable[HostRecap], finished: datetime.datetime) -> None:
        """Take the final recap; problems the recap does not count as failures were rescued or ignored.

        A failure inside a block with a rescue section is reported like any failure, and only the recap tells
        that the host recovered; a host with both kinds of failure keeps all of them as failures.
        """
        self.recap = sorted(recap, key=lambda line: line.host)
        self.finished = finished
        by_host = {line.host: line for line in self.recap}
        reclassified = []
        for problem in self.problems:
            line = by_host.get(problem.host)
            if line is not None and problem.kind == FAILED and line.failed == 0:
                problem = dataclasses.replace(problem, kind=RESCUED)
            elif line is not None and problem.kind == UNREACHABLE and line.unreachable == 0:
                problem = dataclasses.replace(problem, kind=IGNORED)
            reclassified.append(problem)
        self.problems = reclassified

    @property
    def playbook(self) -> str:
        """The playbook file name(s), without directories."""
        return ", ".join(path.replace("\\", "/").rsplit("/", 1)[-1] for path in self.playbooks) or "(no playbook)"

    @property
    def hosts(self) -> list[str]:
        return [line.host for line in self.recap]

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts with a failed task or unreachable at the end of the run."""
        return [line.host for line in self.recap if line.has_failed]

    @property
    def changed_hosts(self) -> list[str]:
        return [line.host for line in self.recap if line.changed > 0]

    @property
    def failures(self) -> list[TaskProblem]:
        """Failed and unreachable tasks that count against the run."""
        return [problem for problem in self.problems if problem.kind in (FAILED, UNREACHABLE)]

    @property
    def absorbed_errors(self) -> list[TaskProblem]:
        """Failures the play ignored (``ignore_errors``, ``ignore_unreachable``) or rescued."""
        return [problem for problem in self.problems if problem.kind in (IGNORED, RESCUED)]

    @property
    def status(self) -> str:
        """``FAILED`` when a host failed or was unreachable, else ``changed`` when a host changed, else ``ok``."""
        if self.failed_hosts:
            return STATUS_FAILED
        if self.changed_hosts:
            return STATUS_CHANGED
        return STATUS_OK

    @property
    def duration(self) -> datetime.timedelta:
        end = self.finished or self.started
        return max(end - self.started, datetime.timedelta(0))


# --- failure messages ---------------------------------------------------------------------------

def shorten(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, saying how many were cut."""
    return _Budget(limit).head(text)


class _Budget:
    """The characters left for one failure message; what does not fit is cut, and the cut is marked."""

    def __init__(self, limit: int) -> None:
        self.left = max(limit, 0)

    def head(self, text: str) -> str:
        kept = text[:self.left]
        self.left -= len(kept)
        if len(kept) == len(text):
            return kept
        return f"{kept} [... {len(text) - len(kept)} more characters]" if kept else f"[... {len(text)} characters]"

    def tail(self, text: str) -> str:
        """The end of ``text``: the end of an error output says most."""
        kept = text[len(text) - self.left:] if self.left else ""
        self.left -= len(kept)
        if len(kept) == len(text):
            return kept
        return f"[... {len(text) - len(kept)} characters before] {kept}" if kept else f"[... {len(text)} characters]"


def _as_text(value: t.Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def is_hidden(result: t.Mapping[str, t.Any]) -> bool:
    """True for the result of a task run with ``no_log`` (ansible marks it, and censors it on the way to callbacks)."""
    return bool(result.get("_ansible_no_log")) or "censored" in result


def failure_message(result: t.Mapping[str, t.Any], *, max_output: int, no_log: bool = False,
                    mask: t.Callable[[str], str] = str) -> str:
    """What a failed or unreachable task result says in at most ``max_output`` characters, or the no_log notice.

    ``msg`` and the return code come first, then the end of ``stderr`` (or of ``stdout`` when there is no ``msg``),
    then the messages of failed loop items, until ``max_output`` characters are used. ``mask`` hides secrets in each
    text before it is cut.
    """
    if no_log or is_hidden(result):
        return NO_LOG_MESSAGE
    return "\n".join(_describe(result, _Budget(max_output), mask)) or "(no message)"


def _describe(result: t.Mapping[str, t.Any], budget: _Budget, mask: t.Callable[[str], str]) -> list[str]:
    lines = []
    msg = mask(_as_text(result.get("msg") or "")).strip()
    head = "\n".join(part for part in (msg, f"rc: {result['rc']}" if result.get("rc") not in (None, 0) else "") if part)
    if head:
        lines.append(budget.head(head))
    stderr = mask(_as_text(result.get("stderr") or "")).strip()
    stdout = mask(_as_text(result.get("stdout") or "")).strip()
    if stderr:
        lines.append("stderr: " + budget.tail(stderr))
    elif stdout and not msg:
        lines.append("stdout: " + budget.tail(stdout))
    failed_items = [item for item in result.get("results") or ()
                    if isinstance(item, t.Mapping) and (item.get("failed") or item.get("unreachable"))]
    for index, item in enumerate(failed_items):
        if budget.left <= 0:
            lines.append(f"[... {len(failed_items) - index} more failed items]")
            break
        if is_hidden(item):
            # The label of a no_log item may be the secret itself.
            lines.append(f"item: {NO_LOG_MESSAGE}")
            continue
        label = shorten(mask(_as_text(item.get("_ansible_item_label", item.get("item")))), 80)
        lines.append(f"item {label}: " + "\n".join(_describe(item, budget, mask) or ["(no message)"]))
    return lines


# --- decisions ----------------------------------------------------------------------------------

def should_send(on: str, run: PlaybookRun) -> bool:
    """Whether ``on`` (``failure``, ``changed`` or ``always``) asks for a mail about ``run``."""
    if on not in SEND_ON:
        raise ValueError(f"on must be one of {', '.join(SEND_ON)}, not {on!r}")
    if on == "always":
        return True
    if on == "changed":
        return run.status in (STATUS_FAILED, STATUS_CHANGED)
    return run.status == STATUS_FAILED


def outcome(run: PlaybookRun) -> str:
    """``FAILED on 2/40 hosts``, ``changed on 3/40 hosts`` or ``ok on 40 hosts``."""
    total = len(run.recap)
    if run.status == STATUS_FAILED:
        return f"FAILED on {len(run.failed_hosts)}/{total} hosts"
    if run.status == STATUS_CHANGED:
        return f"changed on {len(run.changed_hosts)}/{total} hosts"
    return f"ok on {total} hosts"


def headline(run: PlaybookRun) -> str:
    """``site.yml: FAILED on 2/40 hosts``."""
    return f"{run.playbook}: {outcome(run)}"


def default_subject(run: PlaybookRun) -> str:
    return f"[ansible] {headline(run)}"


def format_duration(duration: datetime.timedelta) -> str:
    """``12s``, ``3m 05s`` or ``1h 02m 03s``."""
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def format_time(moment: datetime.datetime) -> str:
    """The controller's local time with its UTC offset."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def template_variables(run: PlaybookRun) -> dict[str, t.Any]:
    """The summary as plain values, for the ``subject`` template."""
    return {
        "playbook": run.playbook,
        "playbook_paths": list(run.playbooks),
        "plays": list(run.plays),
        "status": run.status,
        "headline": headline(run),
        "hosts": run.hosts,
        "failed_hosts": run.failed_hosts,
        "changed_hosts": run.changed_hosts,
        "failures": [{"host": problem.host, "task": problem.task, "kind": problem.kind} for problem in run.failures],
        "recap": {line.host: {column: line.count(column) for column in RECAP_COLUMNS} for line in run.recap},
        "controller": run.controller,
        "started": format_time(run.started),
        "duration": format_duration(run.duration),
        "duration_seconds": int(run.duration.total_seconds()),
    }


def _changed_task_counts(names: list[str]) -> list[str]:
    """Task names in order of first change, ``name (3 times)`` for a task that changed the host repeatedly."""
    counts = collections.Counter(names)
    return [name if counts[name] == 1 else f"{name} ({counts[name]} times)" for name in dict.fromkeys(names)]


def _facts(run: PlaybookRun) -> list[tuple[str, str]]:
    facts = [("Playbook", ", ".join(run.playbooks) or run.playbook)]
    if run.plays:
        facts.append(("Plays", ", ".join(run.plays)))
    facts += [
        ("Status", outcome(run)),
        ("Controller", run.controller),
        ("Started", format_time(run.started)),
        ("Duration", format_duration(run.duration)),
    ]
    return facts


# --- text ---------------------------------------------------------------------------------------

def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines() or [""])


def render_text(run: PlaybookRun) -> str:
    """The plain-text part: facts, a fixed-width recap, failures, absorbed errors and changed tasks."""
    lines = [headline(run), ""]
    if run.notices:
        lines += [f"Notice: {notice}" for notice in run.notices] + [""]
    width = max(len(label) for label, _value in _facts(run)) + 1
    lines += [f"{label + ':':<{width}} {value}" for label, value in _facts(run)]

    lines += ["", "Recap"]
    host_width = max([len("host")] + [len(host) for host in run.hosts])
    lines.append("  ".join([f"{'host':<{host_width}}"] + [f"{column:>{len(column)}}" for column in RECAP_COLUMNS]))
    for line in run.recap:
        lines.append("  ".join([f"{line.host:<{host_width}}"] + [f"{line.count(column):>{len(column)}}" for column in RECAP_COLUMNS]))
    if not run.recap:
        lines.append("(no hosts)")

    for title, problems in (("Failed tasks", run.failures), ("Ignored and rescued errors", run.absorbed_errors)):
        if not problems:
            continue
        lines += ["", f"{title} ({len(problems)})"]
        for problem in problems:
            lines.append(f"- {problem.host} | {problem.task} | {problem.kind}")
            lines.append(_indent(problem.message, "    "))

    if run.changed_tasks:
        lines += ["", "Changed tasks"]
        for host in sorted(run.changed_tasks):
            names = run.changed_tasks[host]
            lines.append(f"- {host}: {len(names)} changed")
            lines += [f"    {name}" for name in _changed_task_counts(names)]
    return "\n".join(lines) + "\n"


# --- HTML ---------------------------------------------------------------------------------------

_CELL = "padding: 4px 10px; border: 1px solid #ccc;"


def _cell(text: str, *, tag: str = "td", style: str = "") -> str:
    return f'<{tag} style="{_CELL}{style}">{html.escape(text)}</{tag}>'


def render_html(run: PlaybookRun) -> str:
    """The HTML part, every value escaped, styles inline because mail clients drop style sheets."""
    status_colour = _STATUS_COLOURS[run.status]
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>' + html.escape(headline(run)) + "</title></head>",
        '<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; color: #212529;">',
        f'<h2 style="color: {status_colour};">{html.escape(headline(run))}</h2>',
    ]
    out += [f'<p style="padding: 6px 10px; background-color: #fff3cd; border: 1px solid #ffe69c;"><b>Notice:</b> '
            f'{html.escape(notice)}</p>' for notice in run.notices]
    out.append('<table style="border-collapse: collapse;">')
    for label, value in _facts(run):
        out.append(f"<tr>{_cell(label, tag='th', style=' text-align: left;')}{_cell(value)}</tr>")
    out.append("</table>")

    out += ["<h3>Recap</h3>", '<table style="border-collapse: collapse;">',
            "<tr>" + _cell("host", tag="th") + "".join(_cell(column, tag="th") for column in RECAP_COLUMNS) + "</tr>"]
    for line in run.recap:
        cells = [_cell(line.host, style=" font-weight: bold;" if line.has_failed else "")]
        for column in RECAP_COLUMNS:
            count = line.count(column)
            colour = _CELL_COLOURS.get(column) if count else None
            cells.append(_cell(str(count), style=" text-align: right;" + (f" background-color: {colour};" if colour else "")))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    if not run.recap:
        out.append("<p>(no hosts)</p>")

    for title, problems in (("Failed tasks", run.failures), ("Ignored and rescued errors", run.absorbed_errors)):
        if not problems:
            continue
        out += [f"<h3>{html.escape(title)} ({len(problems)})</h3>", '<table style="border-collapse: collapse;">',
                "<tr>" + "".join(_cell(name, tag="th") for name in ("host", "task", "kind", "message")) + "</tr>"]
        for problem in problems:
            colour = "#f8d7da" if problem.kind in (FAILED, UNREACHABLE) else "#e2e3e5"
            out.append(
                "<tr>" + _cell(problem.host) + _cell(problem.task)
                + _cell(problem.kind, style=f" background-color: {colour};")
                + f'<td style="{_CELL}"><pre style="margin: 0; white-space: pre-wrap;">{html.escape(problem.message)}</pre></td>'
                + "</tr>"
            )
        out.append("</table>")

    if run.changed_tasks:
        out += ["<h3>Changed tasks</h3>", '<table style="border-collapse: collapse;">',
                "<tr>" + "".join(_cell(name, tag="th") for name in ("host", "changed", "tasks")) + "</tr>"]
        for host in sorted(run.changed_tasks):
            names = run.changed_tasks[host]
            items = "".join(f"<li>{html.escape(name)}</li>" for name in _changed_task_counts(names))
            out.append("<tr>" + _cell(host) + _cell(str(len(names)), style=" text-align: right; background-color: #fff3cd;")
                       + f'<td style="{_CELL}"><ul style="margin: 0; padding-left: 18px;">{items}</ul></td></tr>')
        out.append("</table>")
    out += ["</body></html>", ""]
    return "\n".join(out)
