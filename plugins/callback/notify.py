# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: notify
type: notification
short_description: Mail one summary of each playbook run through SMTP with OAuth 2.0
version_added: 1.0.0
description:
  - At the end of a playbook run, sends one mail summarising it - the playbook, the controller, start and duration,
    the recap per host (ok, changed, failed, unreachable, skipped, rescued, ignored), every failed or unreachable task
    with its host and message, failures that were ignored or rescued, and the tasks that changed each host.
  - The mail has a plain-text part and an HTML part with a coloured recap table.
  - It is sent with the same token and SMTP code as M(smail.xoauth2.mail), from the controller, with the same
    OAuth 2.0, TLS and SMTP options, read from environment variables or C(ansible.cfg).
  - If the mail cannot be sent, the callback shows a warning with the error code and a hint; the result of the
    playbook is unchanged.
  - When the refresh token expires within O(refresh_token_warn_days) (an expiry a token endpoint stated, kept in the
    token cache), the callback shows a warning and the summary mail starts with a notice saying when, and to run
    M(smail.xoauth2.authorize) again. A run that sends no summary (see O(on)) still warns when the token cache on the
    controller knows such an expiry; no token is fetched for that.
  - Enable it with C(callbacks_enabled = smail.xoauth2.notify) in the C([defaults]) section of C(ansible.cfg), or
    E(ANSIBLE_CALLBACKS_ENABLED=smail.xoauth2.notify).
author:
  - smail.xoauth2 maintainers (@smail-xoauth2)
requirements:
  - google-auth and requests on the controller, unless O(access_token) is given or O(auth) is a password mechanism
extends_documentation_fragment:
  - smail.xoauth2.oauth2
  - smail.xoauth2.oauth2.plugins
  - smail.xoauth2.tls
  - smail.xoauth2.tls.plugins
  - smail.xoauth2.smtp
  - smail.xoauth2.smtp.plugins
options:
  to:
    description:
      - Recipients of the summary, each C(addr) or C(Name <addr>). Comma-separated in the environment variable.
      - Without O(to) and O(sender) the callback warns once and sends nothing.
    type: list
    elements: str
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_TO
    ini:
      - section: callback_smail_xoauth2_notify
        key: to
  cc:
    description:
      - Recipients in the C(Cc) header.
    type: list
    elements: str
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_CC
    ini:
      - section: callback_smail_xoauth2_notify
        key: cc
  sender:
    description:
      - The sender, as C(addr@example.com) or C(Display Name <addr@example.com>). Also the envelope sender and,
        unless O(username) or the account of O(token_ini) says otherwise, the account to authenticate as.
    type: str
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_SENDER
    ini:
      - section: callback_smail_xoauth2_notify
        key: sender
  "on":
    description:
      - When to send.
      - V(failure) when a host had a failed task or was unreachable (failures that were ignored or rescued do not
        count).
      - V(changed) when a host failed or was changed.
      - V(always) after every run.
    type: str
    choices: [failure, changed, always]
    default: failure
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_ON
    ini:
      - section: callback_smail_xoauth2_notify
        key: "on"
  subject:
    description:
      - The subject, a Jinja2 template rendered in a sandbox over the summary (not Ansible's templating - plain
        Jinja2 filters only, no lookups or host variables).
      - 'Variables: C(playbook) (file name), C(playbook_paths), C(plays), C(status) (C(FAILED), C(changed) or
        C(ok)), C(headline) (for example C(site.yml: FAILED on 2/40 hosts)), C(hosts), C(failed_hosts),
        C(changed_hosts) (lists of host names), C(failures) (list of dictionaries with C(host), C(task) and C(kind)),
        C(recap) (host name to its counters), C(controller), C(started), C(duration) (for example C(3m 05s)) and
        C(duration_seconds).'
      - 'Defaults to C([ansible] {{ headline }}), for example C([ansible] site.yml: FAILED on 2/40 hosts),
        C([ansible] site.yml: changed on 3/40 hosts) or C([ansible] site.yml: ok on 40 hosts).'
      - A template that fails to render falls back to the default, with a warning. Line breaks become spaces.
    type: str
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_SUBJECT
    ini:
      - section: callback_smail_xoauth2_notify
        key: subject
  credentials_file:
    description:
      - A YAML file, on the controller, of OAuth2, TLS and SMTP option names and their values - for example
        C(client_id), C(client_secret), C(refresh_token), C(token_uri), C(host), C(port) - such as a
        C(group_vars) file would hold for M(smail.xoauth2.mail), but with the option names themselves.
      - The file may be encrypted with C(ansible-vault), whole or value by value (C(!vault)); it is decrypted with the
        vault secrets of the C(ansible-playbook) run (C(--vault-id), C(--ask-vault-pass), C(--vault-password-file) or
        E(ANSIBLE_VAULT_PASSWORD_FILE)), once the playbook has started.
      - An option set through its environment variable or C(ansible.cfg) wins over the file; the file wins over the
        option's default and over O(token_ini).
      - A name that is not one of those options, or a value of the wrong type, is an error reported as a warning
        (V(invalid_option)); nothing is sent then.
    type: path
    version_added: 1.0.0
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_CREDENTIALS_FILE
    ini:
      - section: callback_smail_xoauth2_notify
        key: credentials_file
  spool:
    description:
      - Keep a summary that could not be sent (server or token endpoint unreachable, a 4xx after the retries) in
        O(spool_dir), so that the next run's summary delivers it first; see C(docs/reliability.md).
      - O(spool_dir) defaults to C(~/.ansible/smail_xoauth2/spool) of the controller user when this is on.
      - In an AWX or Ansible Automation Platform job (one whose extra variables hold AWX's C(awx_job_id) or
        C(tower_job_id)) without an O(spool_dir) of its own, nothing is spooled, because the job's container, with its
        home directory, is thrown away when the job ends. A summary that could not be sent is then lost, and the warning
        says so; give O(spool_dir) a path that outlives the job to keep it (C(docs/awx.md)).
    type: bool
    default: true
    version_added: 1.0.0
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_SPOOL
    ini:
      - section: callback_smail_xoauth2_notify
        key: spool
  max_output:
    description:
      - How many characters of each failure message are kept - its C(msg) and return code first, then the end of
        its C(stderr), then the messages of failed loop items. Cuts are marked.
      - V(0) keeps host and task names only.
    type: int
    default: 2000
    env:
      - name: SMAIL_XOAUTH2_NOTIFY_MAX_OUTPUT
    ini:
      - section: callback_smail_xoauth2_notify
        key: max_output
notes:
  - The callback has no task variables and no host variables; every option comes from its environment variable, from
    the C([callback_smail_xoauth2_notify]) section of C(ansible.cfg), or from O(credentials_file), which may be
    vault-encrypted. Paths (O(credentials_file), O(token_ini), O(ca_path), O(token_cache_dir)) are on the controller.
  - A summary mail that was sent is reported in one line at default verbosity, with its C(Message-ID) and recipients.
  - Results of tasks with C(no_log) never reach the mail; their failures read C(output hidden by no_log). No option
    value that is a secret (O(client_secret), O(refresh_token), O(access_token), O(password)) is ever shown; keep
    them in the environment or in an C(ansible.cfg) only you can read.
  - A failure in a block with a C(rescue) section is listed as rescued when its host ends the run without failures;
    a host with both rescued and unrescued failures lists all of them as failed.
  - One mail per C(ansible-playbook) run; with several playbooks on the command line they share it.
seealso:
  - module: smail.xoauth2.mail
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = smail.xoauth2.notify
#
# [callback_smail_xoauth2_notify]
# to = ops@example.com
# sender = Ansible <ansible@example.com>
# on = failure
# subject = [ansible] {{ playbook }} {{ status }} ({{ failed_hosts | length }} of {{ hosts | length }} hosts failed)
# token_ini = /etc/ansible/smail_refresh_token.ini

# Or with the secrets in a vault-encrypted file of option names (client_id: ..., client_secret: ...,
# refresh_token: ...), decrypted with the playbook's own vault password:
# [callback_smail_xoauth2_notify]
# to = ops@example.com
# sender = ansible@example.com
# credentials_file = /etc/ansible/smail_notify_credentials.yml
#
# ansible-playbook --vault-password-file ~/.vault_pass site.yml

# Or only through the environment, with the secrets of a Gmail client:
# export ANSIBLE_CALLBACKS_ENABLED=smail.xoauth2.notify
# export SMAIL_XOAUTH2_NOTIFY_TO=ops@example.com
# export SMAIL_XOAUTH2_NOTIFY_SENDER=ansible@example.com
# export SMAIL_XOAUTH2_CLIENT_ID=1234-abc.apps.googleusercontent.com
# export SMAIL_XOAUTH2_CLIENT_SECRET=...
# export SMAIL_XOAUTH2_REFRESH_TOKEN=...
# ansible-playbook site.yml
"""

import datetime
import html
import socket
import traceback
import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import AnsibleVaultError
from ansible.plugins.callback import CallbackBase

from ansible_collections.smail.xoauth2.plugins.module_utils import _awx, _summary
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import expiry as _refresh_expiry
from ansible_collections.smail.xoauth2.plugins.module_utils._options import (
    OAUTH2_ARGSPEC,
    SMTP_ARGSPEC,
    TLS_ARGSPEC,
    merge_argspecs,
)
from ansible_collections.smail.xoauth2.plugins.module_utils._send import credentials as _credentials
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import transcript as _smtp_transcript
from ansible_collections.smail.xoauth2.plugins.module_utils._spool.queue import default_spool_dir as _spool_default_dir
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult

if t.TYPE_CHECKING:
    # ansible-core ships no type information: these name what the callback is given, for the reader.
    from ansible.executor.stats import AggregateStats
    from ansible.playbook import Playbook
    from ansible.playbook.play import Play
    from ansible.playbook.task import Task
    from ansible.utils.display import Display

CONNECTION_ARGSPEC = merge_argspecs(OAUTH2_ARGSPEC, TLS_ARGSPEC, SMTP_ARGSPEC)
SECRET_OPTIONS = tuple(name for name, spec in CONNECTION_ARGSPEC.items() if spec.get("no_log"))
# RFC 3834: keeps vacation responders and mailing lists from answering a machine.
SUMMARY_HEADERS = (("Auto-Submitted", "auto-generated"),)


# How credentials_file values are checked and converted: the option types, without defaults or fallbacks, which
# belong to the options themselves.
CREDENTIALS_FILE_ARGSPEC = {
    name: {key: value for key, value in spec.items() if key not in ("default", "fallback")}
    for name, spec in CONNECTION_ARGSPEC.items()
}


def _plain(value: t.Any) -> t.Any:
    """YAML data as plain Python values; an inline-vaulted string is decrypted by str()."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


def read_credentials_file(path: str, *, loader: DataLoader) -> dict[str, t.Any]:
    """The option values of a credentials file, typed like the options; OptionError (never a value) when unusable.

    ``loader`` decrypts vaulted content with the vault secrets it holds (the playbook's own).
    """
    try:
        data = _plain(loader.load_from_file(path, cache="none"))
    except (AnsibleVaultError, ReferenceError):
        # ReferenceError: an inline !vault value outside an ansible CLI run, which has no vault secrets to offer.
        raise OptionError("credentials_file", f"{path} cannot be decrypted: run the playbook with the vault password "
                                              "or vault ID it was encrypted with") from None
    except AnsibleError as exc:
        # Only the exception's type: a YAML error quotes the line it stopped at, which may hold a secret.
        raise OptionError("credentials_file", f"{path} cannot be read as YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise OptionError("credentials_file", f"{path} must hold a mapping of option names to values")
    unknown = sorted(set(data) - set(CREDENTIALS_FILE_ARGSPEC))
    if unknown:
        raise OptionError("credentials_file", f"{path} names options the callback does not have: {', '.join(unknown)}")
    validated = ArgumentSpecValidator(CREDENTIALS_FILE_ARGSPEC).validate(data)
    if validated.error_messages:
        raise OptionError("credentials_file", f"{path}: {'; '.join(validated.error_messages)}")
    return {name: validated.validated_parameters[name] for name in data}


def _task_result_parts(result: t.Any) -> tuple[str, Task, dict[str, t.Any]]:
    """Host name, task and result dictionary of a task result, in ansible-core 2.17 and later."""
    # 2.19 made host, task and result public and deprecated the underscored names that 2.17 and 2.18 only have.
    host = getattr(result, "host", None) or result._host
    task = getattr(result, "task", None) or result._task
    data = result.result if hasattr(type(result), "result") else result._result
    return host.get_name(), task, data


def _task_name(task: Task) -> str:
    # An unnamed task is named after its action, as in ansible's own output.
    return str(task.get_name() or task.action or "").strip()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def mask_registered_secrets(text: str) -> str:
    """``text`` with every secret registered with ansible-core masked: its no_log values, vault secrets, ...

    ``ansible.module_utils.secrets`` exists from ansible-core 2.22 on; older lines have no such registry, and their
    callbacks get no_log results censored instead.
    """
    try:
        from ansible.module_utils.secrets import mask_secrets  # pylint: disable=import-outside-toplevel
    except ImportError:
        return text
    return mask_secrets(text, mask_placeholder=_smtp_transcript.MASK)


def mask_text(text: str, transcript: _smtp_transcript.Transcript) -> str:
    """``text`` with every secret of ``transcript`` and every secret registered with ansible-core masked."""
    return mask_registered_secrets(transcript.mask(text))


def mask_html(text: str, transcript: _smtp_transcript.Transcript) -> str:
    """Rendered HTML with every secret of ``transcript`` masked, also where the rendering escaped it (``&amp;``)."""
    for secret in sorted(transcript.secrets, key=len, reverse=True):
        text = text.replace(html.escape(secret), _smtp_transcript.MASK)
    return mask_text(text, transcript)


class CallbackModule(CallbackBase):
    """Collects the events of a playbook run into a summary and mails it at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "smail.xoauth2.notify"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: Display | None = None, options: dict[str, t.Any] | None = None) -> None:
        super().__init__(display=display, options=options)
        self.run: _summary.PlaybookRun | None = None
        # The playbook's loader, which holds its vault secrets; set when the playbook starts.
        self.loader: DataLoader | None = None
        # The ID of the AWX job this run is, from its extra variables; None outside AWX. Set when a play starts.
        self.awx_job: str | None = None
        # True once the options say this AWX job would spool into its own throwaway home directory: it does not.
        self.unkept_in_awx = False
        # The callback's own secrets, read at the first failure (see _own_secrets).
        self._secrets: _smtp_transcript.Transcript | None = None

    def _current_run(self) -> _summary.PlaybookRun:
        """The run being recorded; created at the first event, normally v2_playbook_on_start."""
        if self.run is None:
            self.run = _summary.PlaybookRun(controller=socket.gethostname(), started=_now())
        return self.run

    def _warn(self, text: str, transcript: _smtp_transcript.Transcript | None = None) -> None:
        self._display.warning(f"smail.xoauth2.notify: {transcript.mask(text) if transcript else text}")

    # events

    def v2_playbook_on_start(self, playbook: Playbook) -> None:
        first = self.run is None
        self.loader = getattr(playbook, "_loader", None) or self.loader
        self._current_run().add_playbook(str(playbook._file_name))
        if first:
            missing = [name for name in ("to", "sender") if not self.get_option(name)]
            if missing:
                self._warn(f"no summary mail will be sent: set {' and '.join(missing)} "
                           f"({', '.join('SMAIL_XOAUTH2_NOTIFY_' + name.upper() for name in missing)}, "
                           "or the [callback_smail_xoauth2_notify] section of ansible.cfg).")
                # ansible-core skips a callback that says it is disabled.
                self.disabled = True

    def v2_playbook_on_play_start(self, play: Play) -> None:
        self._current_run().add_play(play.get_name().strip())
        if self.awx_job is None:
            self.awx_job = _awx.job_id(play.get_variable_manager().extra_vars)

    def v2_runner_on_ok(self, result: t.Any) -> None:
        host, task, data = _task_result_parts(result)
        if data.get("changed"):
            self._current_run().record_change(host, _task_name(task))

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._record_problem(result, _summary.IGNORED if ignore_errors else _summary.FAILED)

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._record_problem(result, _summary.UNREACHABLE)

    def _record_problem(self, result: t.Any, kind: str) -> None:
        host, task, data = _task_result_parts(result)
        no_log = isinstance(task.no_log, bool) and task.no_log
        secrets = self._own_secrets()

        def mask(text: str) -> str:
            return mask_text(text, secrets)

        # Masked before the output is cut to max_output, so that no part of a secret is left at the cut.
        message = _summary.failure_message(data, max_output=self.get_option("max_output"), no_log=no_log, mask=mask)
        self._current_run().record_problem(_summary.TaskProblem(host=host, task=mask(_task_name(task)), message=message,
                                                                kind=kind))

    def _own_secrets(self) -> _smtp_transcript.Transcript:
        """A transcript holding the callback's secret option values (environment, ansible.cfg, credentials_file).

        A task that prints its environment shows them (SMAIL_XOAUTH2_CLIENT_SECRET=...): they are masked in the
        summary. Read once; options that cannot be read yet leave out what they would add.
        """
        if self._secrets is None:
            self._secrets = _smtp_transcript.Transcript()
            try:
                options = self.connection_options()
            except SmailError:
                options = {name: self.get_option(name) for name in SECRET_OPTIONS}
            for name in SECRET_OPTIONS:
                self._secrets.add_secret(options.get(name))
        return self._secrets

    def v2_playbook_on_stats(self, stats: AggregateStats) -> None:
        run = self._current_run()
        run.finish([_summary.HostRecap.from_counts(host, stats.summarize(host)) for host in stats.processed], _now())
        if not _summary.should_send(self.get_option("on"), run):
            self._display.vv(f"smail.xoauth2.notify: no summary mail, the run is {run.status} and on={self.get_option('on')}")
            self.warn_recorded_expiry()
            return
        self.send_summary(run)

    def warn_recorded_expiry(self) -> None:
        """Without a summary to send, still warn of a refresh token that will die, as far as the token cache knows.

        No token is fetched for it; a problem reading the options or the cache only shows at -vv.
        """
        transcript = _smtp_transcript.Transcript()
        try:
            options = self.connection_options()
            for name in SECRET_OPTIONS:
                transcript.add_secret(options.get(name))
            expiry = _credentials.recorded_refresh_token_expiry(options)
        except SmailError as exc:
            self._display.vv(transcript.mask(f"smail.xoauth2.notify: the refresh token's expiry was not checked: {exc}"))
            return
        if expiry.warning:
            self._warn(expiry.warning, transcript)

    # sending

    def subject(self, run: _summary.PlaybookRun) -> str:
        """The rendered ``subject`` template, or the default subject."""
        default = _summary.default_subject(run)
        template = self.get_option("subject")
        if not template:
            return default
        # Imported here: only a run with a subject template needs Jinja2's sandbox.
        from jinja2 import StrictUndefined  # pylint: disable=import-outside-toplevel
        from jinja2.sandbox import SandboxedEnvironment  # pylint: disable=import-outside-toplevel

        try:
            rendered = SandboxedEnvironment(undefined=StrictUndefined).from_string(str(template)).render(
                _summary.template_variables(run))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Jinja2 raises TemplateError subclasses, the sandbox SecurityError, a filter anything.
            self._warn(f"the subject template failed ({type(exc).__name__}: {exc}); using the default subject.")
            return default
        return " ".join(rendered.split()) or default

    def _option_is_set(self, name: str) -> bool:
        """True when the option has a value from its environment variable or ansible.cfg, not only its default."""
        try:
            value, origin = self.get_option_and_origin(name)
        except KeyError:
            value, origin = self.get_option(name), None
        return value is not None and origin != "default"

    def connection_options(self) -> dict[str, t.Any]:
        """The OAuth2, TLS and SMTP options: environment and ansible.cfg, then credentials_file, then defaults."""
        options = {name: self.get_option(name) for name in CONNECTION_ARGSPEC}
        path = self.get_option("credentials_file")
        if path:
            from_file = read_credentials_file(path, loader=self.loader or DataLoader())
            options.update({name: value for name, value in from_file.items() if not self._option_is_set(name)})
        # A summary is sent at the end of a run, often during the outage it reports: by default it waits in a spool,
        # except in an AWX job, whose home directory is thrown away with its container.
        self.unkept_in_awx = bool(self.get_option("spool") and not options.get("spool_dir") and self.awx_job is not None)
        if not self.get_option("spool") or self.unkept_in_awx:
            options["spool_dir"] = None
        elif not options.get("spool_dir"):
            options["spool_dir"] = _spool_default_dir()
        return options

    def _unkept_notice(self) -> str:
        """`` It is not kept ...`` after a failure in an AWX job without spool_dir, else nothing."""
        return f" {_awx.unkept_summary_notice(self.awx_job)}" if self.unkept_in_awx and self.awx_job is not None else ""

    def send_summary(self, run: _summary.PlaybookRun) -> None:
        """Mail the summary through the collection's one send path; a failure is a warning, never an error."""
        transcript = _smtp_transcript.Transcript()
        # The refresh token's expiry warnings of a send that then failed: shown with the failure.
        notices: list[str] = []
        try:
            options = self.connection_options()
            # Registered before the send: a failure before the SMTP session would otherwise leave them unmasked.
            for name in SECRET_OPTIONS:
                transcript.add_secret(options.get(name))
            for secret in self._own_secrets().secrets:
                transcript.add_secret(secret)

            def masked(spec: _smtp_message.MessageSpec) -> _smtp_message.MessageSpec:
                # The transcript holds every secret the send knows, the access token once it is had.
                return spec._replace(subject=mask_text(spec.subject, transcript), body=mask_html(spec.body, transcript),
                                     text_body=None if spec.text_body is None else mask_text(spec.text_body, transcript))

            spec = masked(_smtp_message.MessageSpec(
                sender=self.get_option("sender"),
                to=tuple(self.get_option("to") or ()),
                cc=tuple(self.get_option("cc") or ()),
                subject=self.subject(run),
                subtype="html",
                body=_summary.render_html(run),
                text_body=_summary.render_text(run),
                headers=SUMMARY_HEADERS,
            ))

            def add_expiry_notice(expiry: _refresh_expiry.ExpiryReport) -> list[_smtp_message.MessageSpec]:
                # Once the token is had, before the mail is built for good: the summary is masked again, now also
                # against the access token, and gets the expiry notice when there is one.
                if expiry.warning:
                    notices.append(expiry.warning)
                    run.add_notice(expiry.warning)
                return [masked(spec._replace(body=_summary.render_html(run), text_body=_summary.render_text(run)))]

            delivery = _mailer.deliver(options, spec, transcript=transcript, revise=add_expiry_notice)
        except SmailError as exc:
            for notice in notices:
                self._warn(notice, transcript)
            failure = TaskResult.from_error(exc).fields
            self._warn(f"the summary mail was not sent ({failure['error']}): {failure['msg']}{self._unkept_notice()}",
                       transcript)
            return
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # A bug must not turn a finished playbook into a crash; the traceback is for -vvv.
            self._warn(f"the summary mail was not sent (unexpected {type(exc).__name__}): {exc}{self._unkept_notice()}",
                       transcript)
            self._display.vvv(transcript.mask(traceback.format_exc()))
            return
        self._report_delivery(delivery, transcript)

    def _report_delivery(self, delivery: _mailer.Delivery, transcript: _smtp_transcript.Transcript) -> None:
        """Show what became of a summary the send path took: its warnings, refused recipients, spooled mails it
        delivered first, and the summary sent (at default verbosity) unless it was spooled."""
        for warning in delivery.warnings:
            self._warn(warning, transcript)
        if delivery.result["refused"]:
            refused = ", ".join(f"{address} ({reply})" for address, reply in delivery.result["refused"].items())
            self._warn(f"the summary mail was not accepted for {refused}.", transcript)
        for message_id in delivery.result.get("spool_delivered") or ():
            self._display.display(f"smail.xoauth2.notify: spooled mail {message_id} delivered")
        if delivery.result.get("spooled"):
            return  # the warning above says why and where
        # At default verbosity: without it a sent summary leaves no trace in the output.
        self._display.display(f"smail.xoauth2.notify: summary mail {delivery.result['message_id']} sent to "
                              f"{', '.join(delivery.result['recipients'])}")
