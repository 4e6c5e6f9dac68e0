# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The run summary core: what a failure says, when to send, and the text and HTML renderings."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils import _summary
from ansible_collections.smail.xoauth2.plugins.module_utils._summary import HostRecap, PlaybookRun, TaskProblem

STARTED = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def make_run(recap=(), problems=(), changes=(), playbooks=("/srv/ansible/site.yml",)):
    run = PlaybookRun(controller="ctl.example.com", started=STARTED, playbooks=list(playbooks), plays=["Web tier"])
    for problem in problems:
        run.record_problem(problem)
    for host, task in changes:
        run.record_change(host, task)
    run.finish(list(recap), STARTED + datetime.timedelta(minutes=3, seconds=5))
    return run


def failed_run():
    recap = [HostRecap("web2", ok=3, changed=1, failed=1), HostRecap("web1", ok=2, unreachable=1),
             HostRecap("web3", ok=4, changed=2)]
    problems = [TaskProblem("web2", "Check <disk>", "disk & full"),
                TaskProblem("web1", "Gathering Facts", "ssh: connect refused", kind=_summary.UNREACHABLE)]
    changes = [("web3", "Install nginx"), ("web3", "Install nginx"), ("web2", "Write <config>")]
    return make_run(recap, problems, changes)


class TestHostRecap:
    def test_from_counts_maps_failures(self):
        line = HostRecap.from_counts("web1", {"ok": 3, "failures": 1, "unreachable": 0, "changed": 2, "skipped": 1,
                                              "rescued": 0, "ignored": 4})
        assert line == HostRecap("web1", ok=3, changed=2, failed=1, skipped=1, ignored=4)
        assert line.has_failed


class TestPlaybookRun:
    def test_status_and_hosts(self):
        run = failed_run()
        assert run.hosts == ["web1", "web2", "web3"]
        assert run.status == _summary.STATUS_FAILED
        assert run.failed_hosts == ["web1", "web2"]
        assert run.changed_hosts == ["web2", "web3"]
        assert run.playbook == "site.yml"
        assert run.duration == datetime.timedelta(minutes=3, seconds=5)

    def test_changed_and_ok(self):
        assert make_run([HostRecap("a", ok=1, changed=1), HostRecap("b", ok=1)]).status == _summary.STATUS_CHANGED
        assert make_run([HostRecap("a", ok=1)]).status == _summary.STATUS_OK

    def test_failures_the_recap_does_not_count_were_rescued_or_ignored(self):
        run = make_run(
            [HostRecap("a", ok=2, rescued=1), HostRecap("b", ok=1, ignored=1, skipped=1), HostRecap("c", failed=1)],
            [TaskProblem("a", "in block", "boom"), TaskProblem("b", "ping", "gone", kind=_summary.UNREACHABLE),
             TaskProblem("c", "real", "broken")],
        )
        assert [(p.host, p.kind) for p in run.problems] == [("a", "rescued"), ("b", "ignored"), ("c", "failed")]
        assert [p.host for p in run.failures] == ["c"]
        assert [p.host for p in run.absorbed_errors] == ["a", "b"]

    def test_several_playbooks(self):
        assert make_run(playbooks=("a/one.yml", "two.yml")).playbook == "one.yml, two.yml"


class TestFailureMessage:
    def test_msg_rc_and_stderr_tail(self):
        message = _summary.failure_message({"msg": "non-zero return code", "rc": 2, "stderr": "x" * 50 + "END"},
                                           max_output=1000)
        assert message.startswith("non-zero return code\nrc: 2\nstderr: ")
        assert message.endswith("END")

    def test_stderr_keeps_its_end(self):
        message = _summary.failure_message({"stderr": "start " + "x" * 100 + " the real error"}, max_output=20)
        assert message == "stderr: [... 101 characters before] xxxxx the real error"

    def test_stderr_gets_what_msg_leaves(self):
        message = _summary.failure_message({"msg": "0123456789", "stderr": "abcdefghij"}, max_output=15)
        assert message == "0123456789\nstderr: [... 5 characters before] fghij"

    def test_items_stop_when_the_budget_is_used(self):
        items = [{"item": n, "failed": True, "msg": "m" * 10} for n in range(5)]
        message = _summary.failure_message({"results": items}, max_output=25)
        assert message == ("item 0: mmmmmmmmmm\nitem 1: mmmmmmmmmm\nitem 2: mmmmm [... 5 more characters]\n"
                           "[... 2 more failed items]")

    def test_stdout_only_without_msg(self):
        assert _summary.failure_message({"stdout": "out"}, max_output=100) == "stdout: out"
        assert _summary.failure_message({"msg": "m", "stdout": "out"}, max_output=100) == "m"

    def test_truncated_to_max_output(self):
        message = _summary.failure_message({"msg": "y" * 5000}, max_output=100)
        assert message == "y" * 100 + " [... 4900 more characters]"

    def test_zero_keeps_nothing(self):
        assert _summary.failure_message({"msg": "a detail", "stderr": "more"}, max_output=0) == (
            "[... 8 characters]\nstderr: [... 4 characters]")

    def test_structured_msg(self):
        assert _summary.failure_message({"msg": {"b": 1, "a": [2]}}, max_output=100) == '{"a": [2], "b": 1}'

    def test_empty(self):
        assert _summary.failure_message({"failed": True}, max_output=100) == "(no message)"

    @pytest.mark.parametrize("result, no_log", [
        ({"msg": "password is hunter2", "_ansible_no_log": True}, False),
        ({"censored": "the output has been hidden", "changed": False}, False),
        ({"msg": "password is hunter2"}, True),
    ])
    def test_no_log(self, result, no_log):
        assert _summary.failure_message(result, max_output=100, no_log=no_log) == "output hidden by no_log"

    def test_loop_items(self):
        result = {"msg": "One or more items failed", "results": [
            {"item": "a", "failed": False},
            {"_ansible_item_label": "b", "failed": True, "msg": "b broke"},
            {"failed": True, "censored": "hidden", "_ansible_no_log": True},
        ]}
        assert _summary.failure_message(result, max_output=500) == (
            "One or more items failed\nitem b: b broke\nitem: output hidden by no_log")


class TestShouldSend:
    @pytest.mark.parametrize("on, status, expected", [
        ("failure", "FAILED", True), ("failure", "changed", False), ("failure", "ok", False),
        ("changed", "FAILED", True), ("changed", "changed", True), ("changed", "ok", False),
        ("always", "FAILED", True), ("always", "changed", True), ("always", "ok", True),
    ])
    def test_matrix(self, on, status, expected):
        recap = {"FAILED": [HostRecap("a", failed=1)], "changed": [HostRecap("a", changed=1)], "ok": [HostRecap("a", ok=1)]}
        run = make_run(recap[status])
        assert run.status == status
        assert _summary.should_send(on, run) is expected

    def test_unknown(self):
        with pytest.raises(ValueError):
            _summary.should_send("sometimes", make_run())


class TestSubject:
    def test_default_subjects(self):
        assert _summary.default_subject(failed_run()) == "[ansible] site.yml: FAILED on 2/3 hosts"
        changed = make_run([HostRecap("a", changed=1), HostRecap("b"), HostRecap("c")])
        assert _summary.default_subject(changed) == "[ansible] site.yml: changed on 1/3 hosts"
        assert _summary.default_subject(make_run([HostRecap("a"), HostRecap("b")])) == "[ansible] site.yml: ok on 2 hosts"

    def test_template_variables(self):
        variables = _summary.template_variables(failed_run())
        assert variables["playbook"] == "site.yml"
        assert variables["status"] == "FAILED"
        assert variables["hosts"] == ["web1", "web2", "web3"]
        assert variables["failed_hosts"] == ["web1", "web2"]
        assert variables["changed_hosts"] == ["web2", "web3"]
        assert variables["duration"] == "3m 05s"
        assert variables["duration_seconds"] == 185
        assert variables["controller"] == "ctl.example.com"
        assert variables["failures"][0] == {"host": "web2", "task": "Check <disk>", "kind": "failed"}
        assert variables["recap"]["web1"]["unreachable"] == 1

    @pytest.mark.parametrize("seconds, text", [(12, "12s"), (185, "3m 05s"), (3723, "1h 02m 03s")])
    def test_duration(self, seconds, text):
        assert _summary.format_duration(datetime.timedelta(seconds=seconds)) == text


class TestRenderText:
    def test_sections(self):
        text = _summary.render_text(failed_run())
        assert text.startswith("site.yml: FAILED on 2/3 hosts\n")
        assert "Playbook:   /srv/ansible/site.yml" in text
        assert "Controller: ctl.example.com" in text
        assert "Duration:   3m 05s" in text
        assert "host  ok  changed  failed  unreachable  skipped  rescued  ignored" in text
        assert "web1   2        0       0            1        0        0        0" in text
        assert "Failed tasks (2)\n- web2 | Check <disk> | failed\n    disk & full\n" in text
        assert "- web1 | Gathering Facts | unreachable" in text
        assert "- web3: 2 changed\n    Install nginx (2 times)\n" in text
        assert "Ignored and rescued errors" not in text

    def test_multiline_message_is_indented(self):
        run = make_run([HostRecap("a", failed=1)], [TaskProblem("a", "t", "line 1\nline 2")])
        assert "    line 1\n    line 2\n" in _summary.render_text(run)

    def test_no_hosts(self):
        assert "(no hosts)" in _summary.render_text(make_run())


class TestRenderHTML:
    def test_everything_is_escaped(self):
        run = make_run([HostRecap("<web>", failed=1)], [TaskProblem("<web>", "<script>alert(1)</script>", "a & <b>")],
                       [("<web>", "Write <config>")], playbooks=("x<y>.yml",))
        page = _summary.render_html(run)
        assert "<script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "a &amp; &lt;b&gt;" in page
        assert "&lt;web&gt;" in page and "<web>" not in page
        assert "Write &lt;config&gt;" in page
        assert "x&lt;y&gt;.yml" in page

    def test_coloured_cells(self):
        page = _summary.render_html(failed_run())
        web2 = next(line for line in page.splitlines() if ">web2</td><td" in line and "text-align: right" in line)
        assert "background-color: #d4edda;\">3<" in web2  # ok: green
        assert "background-color: #fff3cd;\">1<" in web2  # changed: amber
        assert "background-color: #f8d7da;\">1<" in web2  # failed: red
        web1 = next(line for line in page.splitlines() if ">web1</td><td" in line and "text-align: right" in line)
        assert web1.count("#f8d7da") == 1  # only unreachable; zero counts stay plain

    def test_sections(self):
        page = _summary.render_html(failed_run())
        assert "<h3>Failed tasks (2)</h3>" in page
        assert "<h3>Changed tasks</h3>" in page
        assert "<li>Install nginx (2 times)</li>" in page
