# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The notify callback: events in, one call of the send path out, and warnings instead of errors."""

from __future__ import annotations

import datetime
import functools
import sys
import types
from html import escape as html_escape

import pytest
from ansible.executor.stats import AggregateStats
from ansible.executor.task_result import CallbackTaskResult
from ansible.inventory.host import Host
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret, VaultSecretsContext
from ansible.playbook.task import Task

from ansible_collections.smail.xoauth2.plugins.callback import notify
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import cache as _token_cache
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message

CLIENT_SECRET = "GOCSPX-client-secret-value"
REFRESH_TOKEN = "1//refresh-token-value"


class RecordingDisplay:
    """Stands in for ansible's Display: keeps warnings and verbose lines."""

    verbosity = 0

    def __init__(self):
        self.warnings = []
        self.shown = []
        self.verbose = []

    def warning(self, msg, *args, **kwargs):
        self.warnings.append(msg)

    def display(self, msg, *args, **kwargs):
        self.shown.append(msg)

    def v(self, msg, *args, **kwargs):
        self.verbose.append(msg)

    vv = vvv = vvvv = v


def option_defaults():
    """Every option the callback reads, at its documented default."""
    values = {name: spec.get("default") for name, spec in notify.CONNECTION_ARGSPEC.items()}
    values.update({"to": None, "cc": None, "sender": None, "on": "failure", "subject": None, "max_output": 2000,
                   "credentials_file": None, "spool": True})
    return values


class Deliveries(list):
    """Calls of the send path; ``expiry`` is the refresh token's expiry report the fake send gets with its token."""

    expiry = _refresh_expiry.ExpiryReport()


@pytest.fixture()
def deliveries(monkeypatch):
    """Calls of the send path, which answers as a successful send (after ``revise``, as the real one does)."""
    calls = Deliveries()

    def deliver(options, spec, *, check_only=False, transcript=None, revise=None):
        revised = revise(calls.expiry) if revise is not None else None
        spec = revised[0] if revised else spec
        calls.append(types.SimpleNamespace(options=options, spec=spec, transcript=transcript))
        result = {"message_id": "<1@example.com>", "recipients": list(spec.to), "refused": {}, "sent": True}
        return _mailer.Delivery(result=result, secrets=[], transcript=transcript, warnings=calls.expiry.warnings)

    monkeypatch.setattr(_mailer, "deliver", deliver)
    return calls


def make_callback(**options):
    callback = notify.CallbackModule(display=RecordingDisplay())
    values = option_defaults()
    values.update(to=["ops@example.com"], sender="Ansible <ansible@example.com>", provider="custom",
                  client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
    values.update(options)
    # What set_options() would have read from the environment and ansible.cfg.
    callback._plugin_options = values
    given = {"to", "sender", "provider", "client_secret", "refresh_token", *options}
    callback._origins = {name: "env: SMAIL_XOAUTH2_X" if name in given else "default" for name in values}
    return callback


def task(name, no_log=False):
    new = Task()
    new.name = name
    new.no_log = no_log
    return new


class TaskResultStandIn:
    """What a callback may read of the CallbackTaskResult it is given: the public host, task and result (2.19+).

    Its constructor is not public (2.21 builds it from an internal result type), so the tests build this instead;
    test_stand_in_matches_ansible_core checks the installed ansible-core still offers the same names.
    """

    PUBLIC = ("host", "task", "result")

    def __init__(self, host, task_, data):
        self._values = {"host": host, "task": task_, "result": data}

    host = property(lambda self: self._values["host"])
    task = property(lambda self: self._values["task"])
    result = property(lambda self: self._values["result"])


def test_stand_in_matches_ansible_core():
    for name in TaskResultStandIn.PUBLIC:
        assert isinstance(getattr(CallbackTaskResult, name), (property, functools.cached_property)), name


def result(host, task_, data):
    return TaskResultStandIn(Host(host), task_, data)


def run_playbook(callback, *, fail_on=(), no_log=False, unreachable=(), ignored=(), extra_vars=None):
    """Feed the callback the events of a three-host run of site.yml; returns the stats it ends with."""
    stats = AggregateStats()
    callback.v2_playbook_on_start(types.SimpleNamespace(_file_name="/srv/ansible/site.yml"))
    variable_manager = types.SimpleNamespace(extra_vars=dict(extra_vars or {}))
    callback.v2_playbook_on_play_start(types.SimpleNamespace(get_name=lambda: "Web tier",
                                                             get_variable_manager=lambda: variable_manager))
    for host in ("web1", "web2", "web3"):
        if host in unreachable:
            stats.increment("dark", host)
            callback.v2_runner_on_unreachable(result(host, task("Gathering Facts"), {"msg": "ssh: no route", "unreachable": True}))
            continue
        stats.increment("ok", host)
        stats.increment("changed", host)
        callback.v2_runner_on_ok(result(host, task("Install nginx"), {"changed": True}))
        if host in ignored:
            stats.increment("ok", host)
            stats.increment("ignored", host)
            callback.v2_runner_on_failed(result(host, task("Optional check"), {"failed": True, "msg": "meh"}), ignore_errors=True)
        if host in fail_on:
            stats.increment("failures", host)
            data = {"failed": True, "msg": f"password hunter2 rejected on {host}"}
            if no_log:
                data = {"failed": True, "censored": "the output has been hidden", "_ansible_no_log": True}
            callback.v2_runner_on_failed(result(host, task("Check <disk>", no_log=no_log), data))
    callback.v2_playbook_on_stats(stats)
    return stats


class TestSend:
    def test_one_mail_for_a_failed_run(self, deliveries):
        callback = make_callback()
        run_playbook(callback, fail_on=("web1", "web2"))
        assert len(deliveries) == 1
        call = deliveries[0]
        assert set(call.options) == set(notify.CONNECTION_ARGSPEC)
        assert call.options["client_secret"] == CLIENT_SECRET
        spec = call.spec
        assert spec.subject == "[ansible] site.yml: FAILED on 2/3 hosts"
        assert spec.to == ("ops@example.com",)
        assert spec.sender == "Ansible <ansible@example.com>"
        assert spec.subtype == "html"
        assert "- web1 | Check <disk> | failed\n    password hunter2 rejected on web1" in spec.text_body
        assert "Check &lt;disk&gt;" in spec.body
        assert ("Auto-Submitted", "auto-generated") in spec.headers
        # The secrets are registered for masking before anything is contacted.
        assert {CLIENT_SECRET, REFRESH_TOKEN} <= call.transcript.secrets
        assert callback._display.warnings == []

    def test_the_message_builds(self, deliveries):
        run_playbook(make_callback(), fail_on=("web2",))
        msg = _smtp_message.build_message(deliveries[0].spec)
        assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]

    def test_clean_run_sends_nothing_on_failure(self, deliveries):
        run_playbook(make_callback())
        assert deliveries == []

    def test_ignored_failures_do_not_count(self, deliveries):
        run_playbook(make_callback(), ignored=("web3",))
        assert deliveries == []

    @pytest.mark.parametrize("on", ["changed", "always"])
    def test_changed_run(self, deliveries, on):
        run_playbook(make_callback(on=on), ignored=("web3",))
        assert len(deliveries) == 1
        text = deliveries[0].spec.text_body
        assert deliveries[0].spec.subject == "[ansible] site.yml: changed on 3/3 hosts"
        assert "Ignored and rescued errors (1)\n- web3 | Optional check | ignored\n    meh" in text
        assert "- web2: 1 changed\n    Install nginx" in text

    def test_unreachable(self, deliveries):
        run_playbook(make_callback(), unreachable=("web3",))
        assert "- web3 | Gathering Facts | unreachable\n    ssh: no route" in deliveries[0].spec.text_body

    def test_no_log(self, deliveries):
        run_playbook(make_callback(), fail_on=("web1",), no_log=True)
        spec = deliveries[0].spec
        assert "output hidden by no_log" in spec.text_body
        assert "hunter2" not in spec.text_body + spec.body

    def test_max_output(self, deliveries):
        run_playbook(make_callback(max_output=8), fail_on=("web1",))
        assert "    password [... 25 more characters]\n" in deliveries[0].spec.text_body


class TestSubjectTemplate:
    def test_rendered_over_the_summary(self, deliveries):
        template = "{{ playbook }} {{ status }}: {{ failed_hosts | join(',') }} of {{ hosts | length }}\n on {{ controller }}"
        callback = make_callback(subject=template)
        run_playbook(callback, fail_on=("web1", "web3"))
        assert deliveries[0].spec.subject.startswith("site.yml FAILED: web1,web3 of 3 on ")

    @pytest.mark.parametrize("template", ["{{ nothing.here }}", "{{ ''.__class__.__mro__ }}", "{% if %}", "  "])
    def test_falls_back_to_the_default(self, deliveries, template):
        callback = make_callback(subject=template)
        run_playbook(callback, fail_on=("web1",))
        assert deliveries[0].spec.subject == "[ansible] site.yml: FAILED on 1/3 hosts"
        assert len(callback._display.warnings) == (0 if not template.strip() else 1)


class TestFailuresAreWarnings:
    def test_send_error(self, monkeypatch):
        def deliver(options, spec, *, check_only=False, transcript=None, revise=None):
            # A core bug that would echo a secret: the callback's masking still hides it.
            raise SmailError("invalid_grant", f"The token endpoint refused {REFRESH_TOKEN}.", hint="Authorize again.")

        monkeypatch.setattr(_mailer, "deliver", deliver)
        callback = make_callback()
        run_playbook(callback, fail_on=("web1",))
        [warning] = callback._display.warnings
        assert warning == ("smail.xoauth2.notify: the summary mail was not sent (invalid_grant): "
                           "The token endpoint refused *****. Hint: Authorize again.")

    def test_unexpected_error(self, monkeypatch):
        def deliver(options, spec, *, check_only=False, transcript=None, revise=None):
            raise RuntimeError(f"boom {CLIENT_SECRET}")

        monkeypatch.setattr(_mailer, "deliver", deliver)
        callback = make_callback()
        run_playbook(callback, fail_on=("web1",))
        [warning] = callback._display.warnings
        assert warning == "smail.xoauth2.notify: the summary mail was not sent (unexpected RuntimeError): boom *****"
        assert CLIENT_SECRET not in "".join(callback._display.verbose)

    def test_real_send_path_with_a_bad_option(self):
        callback = make_callback(host=None)
        run_playbook(callback, fail_on=("web1",))
        [warning] = callback._display.warnings
        assert "(invalid_option): Option 'host'" in warning

    def test_missing_recipient_disables(self, deliveries):
        callback = make_callback(to=None)
        run_playbook(callback, fail_on=("web1",))
        assert callback.disabled
        [warning] = callback._display.warnings
        assert "set to (SMAIL_XOAUTH2_NOTIFY_TO" in warning


class TestSentLine:
    def test_one_line_at_default_verbosity(self, deliveries):
        callback = make_callback()
        run_playbook(callback, fail_on=("web1",))
        assert callback._display.shown == ["smail.xoauth2.notify: summary mail <1@example.com> sent to ops@example.com"]
        assert CLIENT_SECRET not in "".join(callback._display.shown)


VAULT_SECRET = VaultSecret(b"vault-password-of-the-run")


def credentials_yaml(**extra):
    lines = ["client_id: file-client.apps.example.com", f"client_secret: {CLIENT_SECRET}-from-file",
             f"refresh_token: {REFRESH_TOKEN}-from-file", "token_uri: https://127.0.0.1:1/token", "port: '2465'"]
    lines += [f"{name}: {value}" for name, value in extra.items()]
    return "\n".join(lines) + "\n"


def playbook_with_vault(tmp_path):
    """A stand-in playbook whose loader holds the run's vault secrets, as ansible-playbook's does."""
    loader = DataLoader()
    loader.set_vault_secrets([("default", VAULT_SECRET)])
    return types.SimpleNamespace(_file_name=str(tmp_path / "site.yml"), _loader=loader)


class TestCredentialsFile:
    def test_values_fill_what_is_not_set(self, deliveries, tmp_path):
        path = tmp_path / "credentials.yml"
        path.write_text(credentials_yaml(), encoding="utf-8")
        # client_secret is set through its environment variable: it wins over the file.
        callback = make_callback(credentials_file=str(path), refresh_token=None, client_secret="from-the-environment")
        run_playbook(callback, fail_on=("web1",))
        [call] = deliveries
        assert call.options["client_id"] == "file-client.apps.example.com"
        assert call.options["refresh_token"] == REFRESH_TOKEN + "-from-file"
        assert call.options["client_secret"] == "from-the-environment"
        assert call.options["port"] == 2465
        # A default (auth) is not "set": the file would win over it, and the file does not name it.
        assert call.options["auth"] == "xoauth2"
        assert REFRESH_TOKEN + "-from-file" in call.transcript.secrets
        assert callback._display.warnings == []

    def test_file_wins_over_a_default(self, deliveries, tmp_path):
        path = tmp_path / "credentials.yml"
        path.write_text(credentials_yaml(timeout=7), encoding="utf-8")
        callback = make_callback(credentials_file=str(path))
        run_playbook(callback, fail_on=("web1",))
        assert deliveries[0].options["timeout"] == 7

    def test_vaulted_file_is_decrypted_with_the_playbooks_secrets(self, deliveries, tmp_path):
        path = tmp_path / "credentials.yml"
        path.write_bytes(VaultLib([("default", VAULT_SECRET)]).encrypt(credentials_yaml()))
        assert CLIENT_SECRET.encode() not in path.read_bytes()
        callback = make_callback(credentials_file=str(path), client_secret=None, refresh_token=None)
        callback.v2_playbook_on_start(playbook_with_vault(tmp_path))
        run_playbook(callback, fail_on=("web1",))
        [call] = deliveries
        assert call.options["client_secret"] == CLIENT_SECRET + "-from-file"
        # Plain str, not a tagged subclass that would pass isinstance().
        assert type(call.options["client_secret"]) is str  # pylint: disable=unidiomatic-typecheck

    def test_inline_vaulted_value(self, deliveries, tmp_path, monkeypatch):
        # ansible-playbook makes its vault secrets the process's VaultSecretsContext, which decrypts !vault values.
        monkeypatch.setattr(VaultSecretsContext, "_current", VaultSecretsContext([("default", VAULT_SECRET)]))
        encrypted = VaultLib([("default", VAULT_SECRET)]).encrypt(CLIENT_SECRET).decode()
        indented = "\n".join("  " + line for line in encrypted.splitlines())
        path = tmp_path / "credentials.yml"
        path.write_text(f"client_id: inline\nclient_secret: !vault |\n{indented}\n", encoding="utf-8")
        callback = make_callback(credentials_file=str(path), client_secret=None)
        callback.v2_playbook_on_start(playbook_with_vault(tmp_path))
        run_playbook(callback, fail_on=("web1",))
        assert deliveries[0].options["client_secret"] == CLIENT_SECRET

    def test_vaulted_file_without_the_password(self, deliveries, tmp_path):
        path = tmp_path / "credentials.yml"
        path.write_bytes(VaultLib([("default", VAULT_SECRET)]).encrypt(credentials_yaml()))
        callback = make_callback(credentials_file=str(path))
        run_playbook(callback, fail_on=("web1",))
        assert deliveries == []
        [warning] = callback._display.warnings
        assert "(invalid_option)" in warning and "credentials_file" in warning and "cannot be decrypted" in warning

    def test_unknown_option(self, deliveries, tmp_path):
        path = tmp_path / "credentials.yml"
        path.write_text(credentials_yaml(vault_smail_client_id="x"), encoding="utf-8")
        callback = make_callback(credentials_file=str(path))
        run_playbook(callback, fail_on=("web1",))
        assert deliveries == []
        [warning] = callback._display.warnings
        assert "does not have: vault_smail_client_id" in warning

    def test_bad_type(self, deliveries, tmp_path):
        path = tmp_path / "credentials.yml"
        path.write_text("port: many\n", encoding="utf-8")
        callback = make_callback(credentials_file=str(path))
        run_playbook(callback, fail_on=("web1",))
        assert deliveries == []
        [warning] = callback._display.warnings
        assert "port" in warning

    @pytest.mark.parametrize("content", ["- just\n- a list\n", f"client_secret: {CLIENT_SECRET}\n  bad: [indent\n"])
    def test_not_a_mapping_and_yaml_errors_show_no_value(self, deliveries, tmp_path, content):
        path = tmp_path / "credentials.yml"
        path.write_text(content, encoding="utf-8")
        callback = make_callback(credentials_file=str(path))
        run_playbook(callback, fail_on=("web1",))
        assert deliveries == []
        [warning] = callback._display.warnings
        assert "credentials_file" in warning
        assert CLIENT_SECRET not in warning

    def test_missing_file(self, deliveries, tmp_path):
        callback = make_callback(credentials_file=str(tmp_path / "nowhere.yml"))
        run_playbook(callback, fail_on=("web1",))
        assert deliveries == []
        [warning] = callback._display.warnings
        assert "nowhere.yml" in warning


class TestSpool:
    def test_spools_by_default_under_the_controller_users_ansible_dir(self, deliveries, monkeypatch, tmp_path):
        monkeypatch.setenv("HOME", str(tmp_path))
        options = make_callback().connection_options()
        assert options["spool_dir"] == str(tmp_path / ".ansible" / "smail_xoauth2" / "spool")

    def test_a_spool_dir_of_its_own_and_off(self, deliveries):
        assert make_callback(spool_dir="/srv/spool").connection_options()["spool_dir"] == "/srv/spool"
        assert make_callback(spool=False, spool_dir="/srv/spool").connection_options()["spool_dir"] is None


class TestAWXJob:
    """An AWX / AAP job (AWX's job variables among the extra variables) runs in a container thrown away at its end."""

    #: Some of the variables AWX adds to every job's extra variables.
    AWX_VARS = {"awx_job_id": 4242, "awx_job_launch_type": "manual", "awx_job_template_name": "Deploy",
                "tower_job_id": 4242, "tower_job_launch_type": "manual"}

    @staticmethod
    def failing_send(monkeypatch):
        def deliver(options, spec, *, check_only=False, transcript=None, revise=None):
            raise SmailError("smtp_connect", "Could not connect to smtp.gmail.com:465: Connection refused.")

        monkeypatch.setattr(_mailer, "deliver", deliver)

    @pytest.mark.parametrize("extra_vars", [AWX_VARS, {"awx_job_id": "17"}, {"tower_job_id": 17}])
    def test_without_a_spool_dir_nothing_is_spooled_nor_promised(self, monkeypatch, tmp_path, extra_vars):
        monkeypatch.setenv("HOME", str(tmp_path))
        self.failing_send(monkeypatch)
        callback = make_callback()
        run_playbook(callback, fail_on=("web1",), extra_vars=extra_vars)
        assert callback.connection_options()["spool_dir"] is None
        [warning] = callback._display.warnings
        job = str(extra_vars.get("awx_job_id", extra_vars.get("tower_job_id")))
        assert warning.startswith("smail.xoauth2.notify: the summary mail was not sent (smtp_connect): Could not connect")
        assert f"It is not kept for a later run: AWX job {job} runs in a container that is thrown away" in warning
        assert "no later run will send it" in warning and "docs/awx.md" in warning
        assert not (tmp_path / ".ansible").exists()

    def test_a_spool_dir_of_its_own_is_used(self, deliveries):
        callback = make_callback(spool_dir="/srv/spool")
        run_playbook(callback, fail_on=("web1",), extra_vars=self.AWX_VARS)
        assert deliveries[0].options["spool_dir"] == "/srv/spool"
        assert not callback.unkept_in_awx

    def test_spool_off_says_nothing_of_awx(self, monkeypatch):
        self.failing_send(monkeypatch)
        callback = make_callback(spool=False)
        run_playbook(callback, fail_on=("web1",), extra_vars=self.AWX_VARS)
        [warning] = callback._display.warnings
        assert "AWX" not in warning

    @pytest.mark.parametrize("extra_vars", [{}, {"awx_job_id": ""}, {"awx_job_id": None}, {"job_id": 5}])
    def test_outside_awx_the_default_spool_stays(self, deliveries, monkeypatch, tmp_path, extra_vars):
        # JOB_ID in the environment alone (Grid Engine sets it too) does not make a run an AWX job.
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("JOB_ID", "4242")
        callback = make_callback()
        run_playbook(callback, fail_on=("web1",), extra_vars=extra_vars)
        assert deliveries[0].options["spool_dir"] == str(tmp_path / ".ansible" / "smail_xoauth2" / "spool")


class TestRefreshTokenExpiry:
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=5)

    def test_a_near_expiry_heads_the_summary_and_is_warned_of_once(self, deliveries):
        deliveries.expiry = _refresh_expiry.report(self.soon, days=2, now=datetime.datetime.now(datetime.timezone.utc))
        callback = make_callback()
        run_playbook(callback, fail_on=("web1",))

        spec = deliveries[0].spec
        notice = f"Notice: {deliveries.expiry.warning}"
        assert spec.text_body.splitlines()[2] == notice
        assert "<b>Notice:</b> The refresh token expires at" in spec.body
        assert callback._display.warnings == [f"smail.xoauth2.notify: {deliveries.expiry.warning}"]
        assert REFRESH_TOKEN not in spec.text_body + spec.body

    def test_no_notice_without_a_near_expiry(self, deliveries):
        run_playbook(make_callback(), fail_on=("web1",))
        assert "Notice:" not in deliveries[0].spec.text_body and "Notice:" not in deliveries[0].spec.body

    def test_a_run_without_a_summary_still_warns_from_the_token_cache(self, deliveries, tmp_path):
        cache = _token_cache.TokenCache(str(tmp_path / "tokens"))
        cache.store_refresh_record(REFRESH_TOKEN, _refresh_expiry.RefreshTokenRecord(expires_at=self.soon))
        callback = make_callback(token_cache_dir=str(tmp_path / "tokens"))
        run_playbook(callback)  # a clean run: on=failure sends nothing

        assert deliveries == []
        assert len(callback._display.warnings) == 1
        assert "The refresh token expires at" in callback._display.warnings[0]
        assert REFRESH_TOKEN not in callback._display.warnings[0]

    def test_a_run_without_a_summary_and_no_record_is_quiet(self, deliveries, tmp_path):
        callback = make_callback(token_cache_dir=str(tmp_path / "tokens"))
        run_playbook(callback)
        assert deliveries == [] and callback._display.warnings == []


class TestSecretsInTheSummary:
    """A failing task that prints its environment puts the callback's own credentials into its output."""

    secret = "s3cr&t<GOCSPX>\"value'"  # what HTML escapes, so that the escaped form must be masked too
    private_key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    access_token = "ya29.access-token-the-callback-obtained"

    @pytest.fixture()
    def token_deliveries(self, deliveries, monkeypatch):
        """The fake send path, which registers the access token it obtains before ``revise``, as the real one does."""
        real = _mailer.deliver

        def deliver(options, spec, *, transcript=None, **kwargs):
            transcript.add_secret(self.access_token)
            return real(options, spec, transcript=transcript, **kwargs)

        monkeypatch.setattr(_mailer, "deliver", deliver)
        return deliveries

    def run_failing_env_dump(self, callback, *extra):
        callback.v2_playbook_on_start(types.SimpleNamespace(_file_name="/srv/ansible/site.yml"))
        dump = "\n".join([f"SMAIL_XOAUTH2_CLIENT_SECRET={self.secret}", f"SMAIL_XOAUTH2_REFRESH_TOKEN={REFRESH_TOKEN}",
                          f"SMAIL_XOAUTH2_CLIENT_CERTIFICATE_KEY={self.private_key}", f"TOKEN={self.access_token}", *extra])
        callback.v2_runner_on_failed(result("web1", task("Show the environment"), {"failed": True, "rc": 1, "stdout": dump}))
        stats = AggregateStats()
        stats.increment("failures", "web1")
        callback.v2_playbook_on_stats(stats)

    def test_the_callbacks_secrets_and_access_token_are_masked_in_text_and_html(self, token_deliveries):
        callback = make_callback(client_secret=self.secret, client_certificate_key=self.private_key)
        self.run_failing_env_dump(callback)
        spec = token_deliveries[0].spec
        rendered = spec.text_body + spec.body + spec.subject
        assert "SMAIL_XOAUTH2_CLIENT_SECRET=" in spec.text_body  # the output is there, its secrets are not
        for secret in (self.secret, REFRESH_TOKEN, self.private_key, self.access_token):
            assert secret not in rendered
        assert html_escape(self.secret) not in spec.body and html_escape(self.access_token) not in spec.body
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in rendered

    def test_secrets_registered_with_ansible_core_are_masked(self, deliveries, monkeypatch):
        # ansible-core 2.22's ansible.module_utils.secrets; older lines have no such module.
        registered = "vault-password-of-another-task"
        fake = types.ModuleType("ansible.module_utils.secrets")
        fake.mask_secrets = lambda value, mask_placeholder="$REDACTED$": value.replace(registered, mask_placeholder)
        monkeypatch.setitem(sys.modules, "ansible.module_utils.secrets", fake)
        callback = make_callback()
        self.run_failing_env_dump(callback, f"DB_PASSWORD={registered}")
        spec = deliveries[0].spec
        assert "DB_PASSWORD=" in spec.text_body
        assert registered not in spec.text_body + spec.body
