# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The send path's side of the spool against the sandbox: each recipient served once, nothing dropped or lost."""

from __future__ import annotations

import datetime
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._ini import token_layout as _token_ini
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import cache as _token_cache
from ansible_collections.smail.xoauth2.plugins.module_utils._oauth2 import grants as _grants
from ansible_collections.smail.xoauth2.plugins.module_utils._send import credentials as _credentials
from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
from ansible_collections.smail.xoauth2.plugins.module_utils._send import settings as _settings
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._spool import queue as _spool
from ansible_collections.smail.xoauth2.plugins.module_utils._task_result import TaskResult


def options(settings, tmp_path, **extra):
    values = {"client_id": settings["client_id"], "client_secret": settings["client_secret"],
              "refresh_token": settings["refresh_token"], "token_uri": settings["token_uri"],
              "username": settings["account"], "token_cache_dir": str(tmp_path / "tokens"),
              "host": settings["host"], "port": settings["smtp_ssl_port"], "secure": "ssl",
              "ca_path": settings["ca_path"], "timeout": 10, "spool_dir": str(tmp_path / "spool"),
              "retries": 1, "retry_delay": 0.01, "retry_max_time": 30}
    values.update(extra)
    return values


def spool_mail(settings, tmp_path, subject, recipients, *, account=None) -> _spool.SpooledMessage:
    """A mail spooled as an earlier send would have: the exact bytes, for its recipients."""
    account = account or settings["account"]
    msg = _smtp_message.build_message(_smtp_message.MessageSpec(sender=account, subject=subject, to=tuple(recipients)))
    return _spool.Spool(str(tmp_path / "spool")).add(
        account=account, server="127.0.0.1:465", sender=account, recipients=recipients, message_id=msg["Message-ID"],
        data=_smtp_message.message_bytes(msg), reason="smtp_connect: Connection refused")


def copies_for(settings, subject) -> list[tuple[str, ...]]:
    """The recipients of each stored copy of the mail with ``subject``."""
    found = []
    for path in Path(settings["mail_dir"]).glob("*.eml"):
        if f"Subject: {subject}\r\n".encode() in path.read_bytes():
            found.append(tuple(json.loads(path.with_suffix(".json").read_text())["rcpt_tos"]))
    return found


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}


def test_a_spooled_mail_refused_for_good_is_held_and_reported_not_delivered(settings, tmp_path):
    spooled = spool_mail(settings, tmp_path, "refused spooled", ["ops@example.com", "reject-spooled@example.com"])

    delivery = _mailer.flush_spool(options(settings, tmp_path))

    assert delivery.result["spool_delivered"] == []
    (refused,) = delivery.result["spool_refused"]
    assert refused["message_id"] == spooled.message_id and list(refused["refused"]) == ["reject-spooled@example.com"]
    assert refused["delivered"] == ["ops@example.com"] and refused["held_code"] == "refused"
    assert any("refused for good" in warning and spooled.message_id in warning for warning in delivery.warnings)
    (held,) = _spool.Spool(str(tmp_path / "spool")).held()
    assert held.refused["reject-spooled@example.com"].startswith("550") and held.recipients == ()
    assert copies_for(settings, "refused spooled") == [("ops@example.com",)]
    # Held means never retried: another flush sends nothing.
    assert _mailer.flush_spool(options(settings, tmp_path)).result["attempts"] == 0
    assert copies_for(settings, "refused spooled") == [("ops@example.com",)]


def test_a_partly_delivered_spooled_mail_goes_only_to_the_recipients_left(settings, tmp_path):
    deferred = "fault-rcpt451x1-partly@example.com"
    spool_mail(settings, tmp_path, "partly spooled", ["ops@example.com", deferred])

    first = _mailer.flush_spool(options(settings, tmp_path, retries=0))
    (waiting,) = first.result["spool_pending"]
    assert waiting["recipients"] == [deferred] and waiting["delivered"] == ["ops@example.com"]
    second = _mailer.flush_spool(options(settings, tmp_path, retries=0))

    assert len(second.result["spool_delivered"]) == 1 and second.result["spool_pending"] == []
    assert sorted(copies_for(settings, "partly spooled")) == sorted([("ops@example.com",), (deferred,)])


def test_a_spool_larger_than_the_open_file_limit_drains(settings, tmp_path):
    for number in range(300):
        spool_mail(settings, tmp_path, f"fd limit {number:03d}", ["ops@example.com"])
    script = textwrap.dedent("""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
        delivery = _mailer.flush_spool(json.loads(sys.argv[1]))
        print(json.dumps([len(delivery.result["spool_delivered"]), len(delivery.result["spool_pending"])]))
    """)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(options(settings, tmp_path))], env=child_env(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [300, 0]
    assert list((tmp_path / "spool").rglob("*.mail")) == []
    stored = [path for path in Path(settings["mail_dir"]).glob("*.eml") if b"Subject: fd limit " in path.read_bytes()]
    assert len(stored) == 300


def test_a_kill_right_after_a_250_does_not_resend_that_mail(settings, tmp_path):
    first = spool_mail(settings, tmp_path, "killed first", ["ops@example.com"])
    spool_mail(settings, tmp_path, "killed second", ["fault-rcptslow20x1-killed@example.com"])
    script = "import json, sys\nfrom ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer\n" \
             "_mailer.flush_spool(json.loads(sys.argv[1]))\n"
    with subprocess.Popen([sys.executable, "-c", script, json.dumps(options(settings, tmp_path, timeout=30))],
                          env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as flush:
        # Kill it while the second mail's RCPT waits for its answer (20 s), once the first mail's file is settled
        # (or, where it is not settled before the next command, after 15 s).
        deadline = time.monotonic() + 15
        while os.path.exists(first.path) and time.monotonic() < deadline:
            time.sleep(0.02)
        flush.send_signal(signal.SIGKILL)
    assert copies_for(settings, "killed first") == [("ops@example.com",)]
    assert not os.path.exists(first.path)

    _mailer.flush_spool(options(settings, tmp_path))

    assert copies_for(settings, "killed first") == [("ops@example.com",)]
    assert len(copies_for(settings, "killed second")) == 1


def test_a_failed_token_renewal_spools_the_own_mail_and_loses_nothing(sandbox, settings, tmp_path):
    values = options(settings, tmp_path, token_uri=settings["token_uri_unreachable"], retries=0)
    # The cache holds a token the server no longer takes; its renewal meets a token endpoint that is down.
    revoked = sandbox.authority.issue_access_token(settings["account"]).token
    sandbox.authority.revoke_access_token(revoked)
    grant = _credentials.resolve_grant(values, _credentials.read_credentials(values))
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    key = _token_cache.cache_key(grant, _settings.tls_settings(values))
    _credentials.token_cache(values).store(key, _grants.AccessToken(token=revoked, source="endpoint", expires_at=expires))
    earlier = spool_mail(settings, tmp_path, "renewal earlier", ["ops@example.com"])

    delivery = _mailer.deliver(values, _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",),
                                                                 subject="renewal own"))

    assert delivery.result["spooled"] is True and not delivery.result["sent"]
    pending = {entry["message_id"] for entry in delivery.result["spool_pending"]}
    assert earlier.message_id in pending and delivery.result["message_id"] in pending
    assert copies_for(settings, "renewal own") == [] and copies_for(settings, "renewal earlier") == []


def test_a_full_disk_fails_the_batch_before_anything_is_sent(settings, tmp_path, monkeypatch):
    # Every mail is on disk before its first SMTP command: a spool that cannot take it fails the task first.
    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_spool, "write_all", disk_full)
    specs = [_smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject=f"enospc {number}")
             for number in range(3)]

    with pytest.raises(SmailError) as info:
        _mailer.deliver_batch(options(settings, tmp_path, retries=0), specs)

    assert info.value.code == "spool_write" and "No space left" in info.value.msg
    assert str(tmp_path / "spool") in info.value.msg
    assert [copies_for(settings, f"enospc {number}") for number in range(3)] == [[], [], []]
    assert [path.name for path in (tmp_path / "spool").rglob("*") if path.is_file()] == []


def test_a_flush_stores_a_rotated_refresh_token(settings, tmp_path):
    path = tmp_path / "smail_refresh_token.ini"
    path.write_bytes("\r\n".join([
        "[OAUTH]", f"Account={settings['microsoft_account']}", f"ClientID={settings['microsoft_client_id']}",
        f"ClientSecret={settings['microsoft_client_secret']}", f"RefreshToken={settings['microsoft_refresh_token']}",
        f"TokenURI={settings['microsoft_token_uri']}", ""]).encode("cp932"))
    path.chmod(0o600)
    values = {"provider": "microsoft", "tenant": "contoso.example", "token_ini": str(path), "persist_rotated_token": True,
              "token_cache_dir": str(tmp_path / "tokens"), "host": settings["host"], "port": settings["smtp_starttls_port"],
              "ca_path": settings["ca_path"], "timeout": 10, "spool_dir": str(tmp_path / "spool")}
    spool_mail(settings, tmp_path, "rotated flush", ["ops@example.com"], account=settings["microsoft_account"])

    delivery = _mailer.flush_spool(values)

    assert len(delivery.result["spool_delivered"]) == 1 and delivery.result["refresh_token_rotated"] is True
    stored = _token_ini.DEFAULT_LAYOUT.read(path.read_bytes())["refresh_token"]
    assert stored != settings["microsoft_refresh_token"] and stored in delivery.secrets


def test_a_mail_whose_fate_is_unknown_is_kept_held(settings, tmp_path):
    spec = _smtp_message.MessageSpec(sender=settings["account"], to=("drop-after-data-unknown@example.com",), subject="unknown fate")

    with pytest.raises(SmailError) as info:
        _mailer.deliver(options(settings, tmp_path), spec)

    error = info.value
    assert error.code == "delivery_unknown" and error.details["may_have_been_delivered"] is True
    (held,) = _spool.Spool(str(tmp_path / "spool")).held()
    assert error.details["held"] is True and error.details["spool_path"] == held.path
    assert held.message_id == error.details["message_id"] and held.recipients == ("drop-after-data-unknown@example.com",)
    assert "check the recipients' mailboxes" in held.held_reason
    # The task's message says where the mail is held and how to release or discard it.
    shown = TaskResult.from_error(error).fields["msg"]
    assert f"held in the spool at {held.path}" in shown
    assert f"spool_dir={tmp_path / 'spool'}" in shown
    assert f"release: ['{held.message_id}']" in shown and f"discard: ['{held.message_id}']" in shown
    assert len(copies_for(settings, "unknown fate")) == 1
    # Not resent by itself.
    assert _mailer.flush_spool(options(settings, tmp_path)).result["attempts"] == 0


def closed_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_send_killed_between_its_attempts_leaves_its_mail_for_the_next(settings, tmp_path):
    # The server is down: the send waits between its attempts, its mail already on disk; then it is killed.
    values = options(settings, tmp_path, port=closed_port(), retries=3, retry_delay=60, retry_max_time=600)
    script = textwrap.dedent("""
        import json, sys
        from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer
        from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
        values = json.loads(sys.argv[1])
        _mailer.deliver(values, _smtp_message.MessageSpec(sender=values["username"], to=("ops@example.com",), subject="killed send"))
    """)
    with subprocess.Popen([sys.executable, "-c", script, json.dumps(values)], env=child_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as send:
        spool_dir = tmp_path / "spool"
        deadline = time.monotonic() + 60
        while not list(spool_dir.rglob("*.mail")) and time.monotonic() < deadline:
            time.sleep(0.02)
        send.send_signal(signal.SIGKILL)
    (pending,) = _spool.Spool(str(spool_dir)).pending()
    assert pending.recipients == ("ops@example.com",)

    delivery = _mailer.flush_spool(options(settings, tmp_path))

    assert delivery.result["spool_delivered"] == [pending.message_id]
    assert copies_for(settings, "killed send") == [("ops@example.com",)]


def test_a_refused_refresh_token_keeps_the_mail_and_a_flush_sends_it_once_fixed(settings, tmp_path):
    spec = _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="invalid grant kept")

    with pytest.raises(SmailError) as info:
        _mailer.deliver(options(settings, tmp_path, refresh_token="1//revoked-or-expired"), spec)

    error = info.value
    assert error.code == "invalid_grant" and error.details["spooled"] is True
    assert "flush=true" in error.msg and error.details["spool_path"] in error.msg
    (kept,) = _spool.Spool(str(tmp_path / "spool")).pending()
    assert kept.path == error.details["spool_path"] and kept.control.attempts == 1
    assert copies_for(settings, "invalid grant kept") == []

    delivery = _mailer.flush_spool(options(settings, tmp_path))

    assert delivery.result["spool_delivered"] == [kept.message_id] and delivery.result["spool_pending"] == []
    assert copies_for(settings, "invalid grant kept") == [("ops@example.com",)]


def test_a_deferring_mailbox_does_not_hold_up_the_others(settings, tmp_path):
    stuck = [spool_mail(settings, tmp_path, f"stuck {n}", ["fault-rcpt451-stuck@example.com"]) for n in range(32)]
    fresh = [spool_mail(settings, tmp_path, f"fresh {n}", ["ops@example.com"]) for n in range(5)]

    delivery = _mailer.deliver(options(settings, tmp_path, retries=0),
                               _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="own"))

    assert sorted(delivery.result["spool_delivered"]) == sorted(message.message_id for message in fresh)
    assert [len(copies_for(settings, f"fresh {n}")) for n in range(5)] == [1] * 5
    waiting = {entry["message_id"]: entry for entry in delivery.result["spool_pending"]}
    assert set(waiting) == {message.message_id for message in stuck}
    assert all(entry["attempts"] == 1 and entry["next_attempt_at"] for entry in waiting.values())


def test_held_mail_is_counted_and_warned_of_on_every_send(settings, tmp_path):
    with pytest.raises(SmailError):
        _mailer.deliver(options(settings, tmp_path), _smtp_message.MessageSpec(
            sender=settings["account"], to=("drop-after-data-unknown@example.com",), subject="held for the count"))

    delivery = _mailer.deliver(options(settings, tmp_path),
                               _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="next"))

    assert delivery.result["spool_held_count"] == 1
    assert any("1 held mail(s)" in warning for warning in delivery.warnings)


def test_revised_messages_replace_the_enqueued_ones_and_go_once(settings, tmp_path):
    # The notify callback revises its summary once the token is had: the first enqueued copy must not go as well.
    first = _smtp_message.MessageSpec(sender=settings["account"], to=("ops@example.com",), subject="revise first")
    revised = first._replace(subject="revise second")

    delivery = _mailer.deliver(options(settings, tmp_path), first, revise=lambda report: [revised])

    assert delivery.result["sent"] is True and delivery.result["spool_pending"] == []
    assert copies_for(settings, "revise first") == [] and copies_for(settings, "revise second") == [("ops@example.com",)]
    assert list((tmp_path / "spool").rglob("*.mail")) == []
