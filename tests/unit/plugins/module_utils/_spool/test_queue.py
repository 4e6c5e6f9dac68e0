# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mail spool on real files: the format, written in place; privacy; leases, claims, schedules and lifetimes;
exclusive changes by concurrent processes; format 1 converted."""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.smail.xoauth2.plugins.module_utils._errors import OptionError, SmailError
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import delivery as _smtp_delivery
from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message
from ansible_collections.smail.xoauth2.plugins.module_utils._spool import queue as _spool

ACCOUNT = "User@Example.com"
MESSAGE = (b"Message-ID: <1@example.com>\r\nDate: Wed, 02 Dec 2026 02:30:00 +0000\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
           b"\r\nbody \xc3\xa9\r\n.\r\n")
RECIPIENTS = ("a@example.com", "bcc@example.com")


class Clock:
    """A clock the test moves: the spool's schedule and lifetimes wait on no real time."""

    def __init__(self) -> None:
        self.now = time.time()  # where a child process's real clock meets it

    def __call__(self) -> float:
        return self.now


def envelope(message_id: str | None = "<1@example.com>", recipients=RECIPIENTS, data: bytes = MESSAGE) -> _smtp_message.Envelope:
    return _smtp_message.Envelope("user@example.com", tuple(recipients), data, message_id)


def add(spool: _spool.Spool, *, account: str = ACCOUNT, message_id: str | None = "<1@example.com>",
        recipients=RECIPIENTS, data: bytes = MESSAGE) -> _spool.SpooledMessage:
    return spool.add(account=account, server="127.0.0.1:465", sender="user@example.com", recipients=list(recipients),
                     message_id=message_id, data=data, reason="smtp_connect: Connection refused")


def outcome_of(message: _spool.SpooledMessage, *, accepted=(), refused=None, pending=(), error=None) -> _smtp_delivery.Outcome:
    outcome = _smtp_delivery.Outcome(message.envelope(), pending=list(pending))
    outcome.accepted, outcome.refused, outcome.error = list(accepted), dict(refused or {}), error
    return outcome


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def child_env() -> dict[str, str]:
    """The environment for a child Python that imports the collection as this process does."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}


def run_child(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=child_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


def locked_elsewhere(path: str) -> bool:
    """Whether another process fails to lock the file now at ``path``."""
    probe = "import fcntl, sys\nwith open(sys.argv[1], 'rb') as f:\n    try:\n        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n" \
            "    except OSError:\n        sys.exit(1)\n"
    return subprocess.run([sys.executable, "-c", probe, path], check=False).returncode == 1


@pytest.fixture()
def clock():
    return Clock()


@pytest.fixture()
def spool(tmp_path, clock):
    return _spool.Spool(str(tmp_path / "spool"), clock=clock)


class TestFormat:
    def test_one_private_file_in_a_private_directory_of_the_account(self, spool, tmp_path):
        message = add(spool)
        account_dir = tmp_path / "spool" / "user@example.com"
        assert mode_of(tmp_path / "spool") == 0o700 and mode_of(account_dir) == 0o700
        assert [name for name in os.listdir(account_dir) if not name.startswith(".")] == [os.path.basename(message.path)]
        assert mode_of(message.path) == 0o600 and message.path.endswith(_spool.SUFFIX)

    def test_the_file_is_the_documented_control_records_and_body(self, spool, clock):
        message = add(spool)
        raw = open(message.path, "rb").read()
        control = json.loads(raw[:_spool.CONTROL_SIZE])
        assert control == {"spool": 2, "state": "pending", "attempts": 0, "next_attempt": int(clock.now), "lease": None,
                           "last_error": None, "waits_for": None, "held_code": None, "held_reason": None,
                           "held_at": None}
        records = [json.loads(raw[_spool.CONTROL_SIZE + index * _spool.RECORD_SIZE:][:_spool.RECORD_SIZE])
                   for index in range(2)]
        assert records == [["pending", ""], ["pending", ""]]
        body = json.loads(raw[_spool.CONTROL_SIZE + 2 * _spool.RECORD_SIZE:])
        assert body["recipients"] == list(RECIPIENTS) and base64.b64decode(body["data"]) == MESSAGE
        assert body["account"] == ACCOUNT and body["message_id"] == "<1@example.com>"

    def test_the_message_comes_back_byte_for_byte(self, spool):
        data = MESSAGE + bytes(range(256))
        add(spool, data=data)
        (read,) = spool.pending(ACCOUNT)
        assert read.data == data and read.recipients == RECIPIENTS

    def test_long_replies_and_reasons_are_cut_to_their_fixed_size(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            claim.progress(message, outcome_of(message, accepted=["a@example.com"],
                                               refused={"bcc@example.com": "550 " + "é" * 400}))
            claim.hold(message, "refused", "x" * 5000)
        (held,) = spool.held()
        assert held.refused["bcc@example.com"].startswith("550 ") and held.held_reason.startswith("xxx")
        assert os.path.getsize(message.path) == os.path.getsize(message.path)  # still readable, same layout

    def test_summary_has_no_content(self, spool):
        summary = add(spool).summary()
        assert "data" not in summary and MESSAGE.decode("utf-8", "replace") not in json.dumps(summary)
        assert summary["attempts"] == 0 and summary["recipients"] == list(RECIPIENTS)

    def test_an_account_never_names_a_hidden_or_outside_directory(self):
        assert _spool.account_directory_name("User@Example.com") == "user@example.com"
        assert _spool.account_directory_name("../x") == "%2E%2E%2Fx"
        assert "/" not in _spool.account_directory_name("a/b@example.com")
        assert not _spool.account_directory_name(".hidden@example.com").startswith(".")


class TestEnqueue:
    def test_a_batch_is_on_disk_before_anything_else_and_leased_to_this_process(self, spool, tmp_path):
        queued = spool.enqueue([envelope(f"<{number}@example.com>") for number in range(3)], account=ACCOUNT,
                               server="smtp.example.com:465")
        assert [message.message_id for message in spool.pending(ACCOUNT)] == [f"<{n}@example.com>" for n in range(3)]
        lease = queued[0].control.lease
        assert lease and all(message.control.lease == lease for message in queued)
        # Another process passes leased mail by while this one lives...
        script = """
            import sys
            from ansible_collections.smail.xoauth2.plugins.module_utils._spool.queue import Spool
            with Spool(sys.argv[1]).claim(sys.argv[2], due_only=False) as claim:
                print(len(claim.messages), len(claim.passed))
        """
        assert run_child(script, spool.directory, ACCOUNT).stdout.split()[0] == "0"
        # ...and takes it once the lease ends (the process ended, however: the kernel drops the lock).
        spool.end_lease()
        assert run_child(script, spool.directory, ACCOUNT).stdout.split()[0] == "3"

    def test_a_process_killed_after_enqueueing_leaves_its_mail_pending_for_others(self, spool, clock):
        script = """
            import os, signal, sys
            from ansible_collections.smail.xoauth2.plugins.module_utils._smtp.message import Envelope
            from ansible_collections.smail.xoauth2.plugins.module_utils._spool.queue import Spool
            Spool(sys.argv[1]).enqueue([Envelope("user@example.com", ("a@example.com",), b"x\\r\\n", "<k@example.com>")],
                                       account=sys.argv[2], server="s:465")
            os.kill(os.getpid(), signal.SIGKILL)
        """
        assert run_child(script, spool.directory, ACCOUNT).returncode == -9
        clock.now = time.time() + 1  # the child's clock went on
        with spool.claim(ACCOUNT) as claim:
            assert [message.message_id for message in claim.messages] == ["<k@example.com>"]

    def test_a_full_disk_leaves_nothing_and_names_the_directory(self, spool, monkeypatch):
        def disk_full(*_args):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(_spool, "write_all", disk_full)
        with pytest.raises(SmailError) as info:
            spool.enqueue([envelope(), envelope("<2@example.com>")], account=ACCOUNT, server="s:465")
        assert info.value.code == "spool_write" and spool.account_directory(ACCOUNT) in info.value.msg
        assert [name for name in os.listdir(spool.account_directory(ACCOUNT)) if not name.startswith(".lease-")] == []


class TestPrivacy:
    @pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
    def test_a_spool_others_may_write_to_is_refused_not_tightened(self, tmp_path, mode):
        directory = tmp_path / "spool"
        directory.mkdir()
        directory.chmod(mode)
        with pytest.raises(SmailError) as info:
            add(_spool.Spool(str(directory)))
        assert info.value.code == "spool_insecure" and mode_of(directory) == mode
        assert os.listdir(directory) == []

    def test_another_users_symlink_is_not_followed(self, tmp_path):
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o755)
        link = tmp_path / "spool"
        link.symlink_to(target)
        os.lchown(link, 65534, 65534)
        with pytest.raises(SmailError) as info:
            add(_spool.Spool(str(link)))
        assert info.value.code == "spool_insecure" and os.listdir(target) == [] and mode_of(target) == 0o755

    def test_another_users_file_is_never_delivered(self, spool):
        message = add(spool)
        os.chown(message.path, 65534, 65534)
        assert spool.pending() == [] and spool.unreadable() == [message.path]
        with spool.claim(ACCOUNT, due_only=False) as claim:
            assert claim.messages == []

    def test_a_fifo_blocks_nothing_and_is_reported(self, spool, tmp_path):
        add(spool, message_id="<real@example.com>")
        fifo = os.path.join(spool.account_directory(ACCOUNT), "00000000000000000000-0000000000000000.mail")
        os.mkfifo(fifo, 0o600)
        os.mkfifo(tmp_path / "spool" / "planted.json", 0o600)
        # In a child with a deadline: a FIFO opened for reading without O_NONBLOCK would block it for good.
        script = """
            import json, sys
            from ansible_collections.smail.xoauth2.plugins.module_utils._spool.queue import Spool
            spool = Spool(sys.argv[1])
            with spool.claim(sys.argv[2], due_only=False) as claim:
                taken = [message.message_id for message in claim.messages]
            print(json.dumps([taken, [m.message_id for m in spool.pending()], spool.unreadable()]))
        """
        done = run_child(script, spool.directory, ACCOUNT, timeout=30)
        assert done.returncode == 0, done.stderr
        taken, pending, unreadable = json.loads(done.stdout)
        assert taken == ["<real@example.com>"] and pending == ["<real@example.com>"]
        assert sorted(unreadable) == sorted([fifo, str(tmp_path / "spool" / "planted.json")])

    def test_corrupt_and_short_files_are_kept_and_reported(self, spool):
        directory = spool.account_directory(ACCOUNT)
        add(spool)
        bad = [os.path.join(directory, f"0000000000000000000{number}-bad.mail") for number in range(3)]
        for path, content in zip(bad, [b"not json", b'{"spool": 2}', open(spool.pending()[0].path, "rb").read()[:1500]]):
            with open(path, "wb") as handle:
                handle.write(content)
        assert sorted(spool.unreadable()) == sorted(bad) and len(spool.pending()) == 1
        assert all(os.path.exists(path) for path in bad)


class TestProgressInPlace:
    def test_a_served_recipient_is_written_in_place_with_no_new_file(self, spool, monkeypatch):
        message = add(spool)
        before = os.stat(message.path)
        with spool.claim(ACCOUNT) as claim:
            # A full disk: nothing that needs a new block or a new file may be written any more.
            real_open = os.open

            def no_new_files(path, flags, *args):
                if flags & os.O_CREAT:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_open(path, flags, *args)

            monkeypatch.setattr(_spool.os, "open", no_new_files)
            state = claim.progress(message, outcome_of(message, accepted=["a@example.com"], pending=["bcc@example.com"]))
            monkeypatch.undo()
            assert state == "pending" and locked_elsewhere(message.path)
        after = os.stat(message.path)
        assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
        (narrowed,) = spool.pending()
        assert narrowed.recipients == ("bcc@example.com",) and narrowed.delivered == ("a@example.com",)

    def test_every_recipient_served_removes_the_file(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            assert claim.progress(message, outcome_of(message, accepted=list(RECIPIENTS))) == "delivered"
            assert not claim.holds(message)
        assert not os.path.exists(message.path) and spool.pending() == []

    def test_a_refused_recipient_and_nobody_left_is_held_as_refused(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            assert claim.progress(message, outcome_of(message, accepted=["a@example.com"],
                                                      refused={"bcc@example.com": "550 5.1.1 no"})) == "pending"
            claim.hold(message, "refused", "Refused for good: bcc@example.com: 550 5.1.1 no")
        (held,) = spool.held()
        assert held.path == message.path and held.recipients == () and held.control.held_code == "refused"
        assert held.refused == {"bcc@example.com": "550 5.1.1 no"} and held.delivered == ("a@example.com",)

    def test_an_unknown_fate_is_held_with_what_to_check(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            claim.hold(message, "delivery_unknown", "delivery_unknown: lost after the final dot")
        (held,) = spool.held()
        assert "check the recipients' mailboxes" in held.held_reason and held.summary()["held_code"] == "delivery_unknown"
        with spool.claim(ACCOUNT, due_only=False) as claim:
            assert claim.messages == []  # never retried by itself


class TestSchedule:
    def test_a_deferred_mail_waits_for_its_own_next_attempt(self, spool, clock):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            deferred = claim.defer(message, "recipients_deferred: 452 4.2.2 full")
        assert deferred.control.attempts == 1 and deferred.control.next_attempt == int(clock.now) + _spool.MIN_BACKOFF
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == []  # not due
        with spool.claim(ACCOUNT, due_only=False) as claim:
            assert len(claim.messages) == 1  # an explicit flush takes it
            claim.defer(message, "recipients_deferred: 452 4.2.2 full")
        clock.now += _spool.MIN_BACKOFF * 2
        with spool.claim(ACCOUNT) as claim:
            assert len(claim.messages) == 1

    def test_mail_that_waits_for_the_server_goes_with_the_next_send_that_reaches_it(self, spool):
        waiting = add(spool, message_id="<server@example.com>")
        deferring = add(spool, message_id="<mailbox@example.com>")
        with spool.claim(ACCOUNT) as claim:
            claim.defer(waiting, "smtp_connect: Connection refused", waits_for="server")
            claim.defer(deferring, "recipients_deferred: 452 4.2.2 full", waits_for="mail")
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == [spool.pending()[0]] and claim.messages[0].message_id == "<server@example.com>"

    def test_backoff_doubles_up_to_the_maximum(self):
        assert [_spool.backoff(n) for n in range(1, 7)] == [300, 600, 1200, 2400, 4000, 4000]

    def test_deferring_mail_never_starves_newer_mail(self, spool, clock):
        stuck = [add(spool, message_id=f"<stuck{n}@example.com>") for n in range(_spool.CLAIM_WINDOW)]
        with spool.claim(ACCOUNT) as claim:
            for message in claim.messages:
                claim.defer(message, "recipients_deferred: 452")
        fresh = [add(spool, message_id=f"<fresh{n}@example.com>") for n in range(5)]
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == fresh
        assert len(stuck) == _spool.CLAIM_WINDOW

    def test_a_mail_past_its_lifetime_is_held_as_expired(self, tmp_path, clock):
        spool = _spool.Spool(str(tmp_path / "spool"), lifetime=3600, clock=clock)
        message = add(spool)
        clock.now = message.spooled_ns / 1e9 + 3601
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == [] and [held.message_id for held in claim.expired] == [message.message_id]
        (held,) = spool.held()
        assert held.control.held_code == "expired" and "3600 s" in held.held_reason

    def test_a_bad_lifetime_names_the_option(self, tmp_path):
        with pytest.raises(OptionError, match="spool_lifetime"):
            _spool.Spool(str(tmp_path), lifetime=0)


class TestClaim:
    def test_only_the_accounts_directory_is_read(self, spool, tmp_path, monkeypatch):
        mine = add(spool)
        add(spool, account="other@example.com", message_id="<other@example.com>")
        opened = []
        real_open = _spool.open_regular

        def watch(path, flags):
            opened.append(path)
            return real_open(path, flags)

        monkeypatch.setattr(_spool, "open_regular", watch)
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == [mine]
        assert spool.held_count(ACCOUNT) == 0
        assert opened and all(os.path.dirname(path) == spool.account_directory(ACCOUNT) for path in opened)

    def test_claimed_mail_is_locked_until_exit(self, spool):
        add(spool)
        with spool.claim(ACCOUNT) as claim:
            assert len(claim.messages) == 1
            with spool.claim(ACCOUNT) as again:  # flock belongs to open files: refused in this process too
                assert again.messages == []
        with spool.claim(ACCOUNT) as claim:
            assert len(claim.messages) == 1

    def test_a_file_delivered_between_open_and_lock_is_skipped(self, spool, monkeypatch):
        first = add(spool, message_id="<1@example.com>")
        second = add(spool, message_id="<2@example.com>")
        real_flock = _spool.fcntl.flock
        calls = []

        def flock_after_another_process_finished(fd, operation):
            if not calls:
                os.unlink(first.path)  # another process delivered it and removed the file before this lock
            calls.append(fd)
            return real_flock(fd, operation)

        monkeypatch.setattr(_spool.fcntl, "flock", flock_after_another_process_finished)
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == [second]

    def test_the_open_file_limit_ends_a_window_not_the_spool(self, spool, monkeypatch):
        messages = [add(spool, message_id=f"<{n}@example.com>") for n in range(3)]
        real_open = _spool.open_regular
        opened = []

        def emfile_on_the_third(path, flags):
            if flags & os.O_RDWR:
                opened.append(path)
                if len(opened) == 3:
                    raise OSError(errno.EMFILE, "Too many open files")
            return real_open(path, flags)

        monkeypatch.setattr(_spool, "open_regular", emfile_on_the_third)
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == messages[:2] and claim.passed == []

    def test_concurrent_processes_never_take_one_mail_twice(self, spool, tmp_path):
        ids = [f"<{number}@example.com>" for number in range(60)]
        for message_id in ids:
            add(spool, message_id=message_id)
        worker = """
            import sys
            from ansible_collections.smail.xoauth2.plugins.module_utils._spool.queue import Spool
            spool = Spool(sys.argv[1])
            taken = []
            while True:
                with spool.claim(sys.argv[2], due_only=False) as claim:
                    for message in claim.messages:
                        taken.append(message.message_id)
                        claim.progress(message, type("O", (), {"accepted": list(message.recipients), "refused": {}})())
                if not claim.messages and not spool.pending(sys.argv[2]):
                    break
            print("\\n".join(taken))
        """
        with contextlib.ExitStack() as running:
            workers = [running.enter_context(subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(worker), spool.directory, ACCOUNT], env=child_env(),
                stdout=subprocess.PIPE, text=True)) for number in range(3)]
            outputs = [process.communicate(timeout=120)[0] for process in workers]
        taken = [line for output in outputs for line in output.split()]
        assert sorted(taken) == sorted(ids)

    def test_stale_temp_files_are_swept_fresh_ones_kept(self, spool, clock):
        add(spool)
        directory = spool.account_directory(ACCOUNT)
        stale, fresh = os.path.join(directory, ".x.mail.aaaa.tmp"), os.path.join(directory, ".y.mail.bbbb.tmp")
        for path in (stale, fresh):
            with open(path, "wb") as handle:
                handle.write(MESSAGE)
        os.utime(stale, (clock.now - 2 * _spool.STALE_TEMP_SECONDS,) * 2)
        os.utime(fresh, (clock.now,) * 2)
        with spool.claim(ACCOUNT):
            pass
        assert not os.path.exists(stale) and os.path.exists(fresh)


class TestChangesById:
    def hold(self, spool, message_id="<1@example.com>", recipients=RECIPIENTS):
        message = add(spool, message_id=message_id, recipients=recipients)
        with spool.claim(ACCOUNT) as claim:
            claim.hold(message, "delivery_unknown", "delivery_unknown: lost")
        return spool.by_id([message_id], option="release")[0]

    def test_release_queues_it_again_in_place_and_due(self, spool):
        held = self.hold(spool)
        assert spool.release(held) is True
        (pending,) = spool.pending()
        assert pending.path == held.path and not pending.held and pending.recipients == RECIPIENTS
        assert spool.release(held) is False  # released already: nothing happens twice

    def test_concurrent_releases_release_once(self, spool):
        held = self.hold(spool)
        script = """
            import sys
            from ansible_collections.smail.xoauth2.plugins.module_utils._spool.queue import Spool
            spool = Spool(sys.argv[1])
            (message,) = spool.by_id(["<1@example.com>"], option="release")
            print(spool.release(message))
        """
        with contextlib.ExitStack() as running:
            workers = [running.enter_context(subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(script), spool.directory], env=child_env(),
                stdout=subprocess.PIPE, text=True)) for number in range(4)]
            answers = sorted(process.communicate(timeout=60)[0].strip() for process in workers)
        assert answers == ["False", "False", "False", "True"]
        assert len(spool.pending()) == 1 and spool.held() == []

    def test_discard_removes_only_held_mail(self, spool):
        held = self.hold(spool)
        assert spool.discard(held) is True and spool.held() == [] and not os.path.exists(held.path)
        assert spool.discard(held) is False

    def test_an_unknown_message_id_names_the_option(self, spool):
        self.hold(spool)
        with pytest.raises(OptionError, match="'release'.*<nope@example.com>"):
            spool.by_id(["<nope@example.com>"], option="release")

    def test_held_mail_with_nobody_left_cannot_be_released(self, spool):
        message = add(spool, recipients=("a@example.com",))
        with spool.claim(ACCOUNT) as claim:
            claim.progress(message, outcome_of(message, refused={"a@example.com": "550 no"}))
            claim.hold(message, "refused", "Refused for good")
        (held,) = spool.held()
        with pytest.raises(OptionError, match="discard it instead"):
            spool.check_release(held)

    def test_held_count_reads_control_blocks(self, spool):
        self.hold(spool)
        add(spool, message_id="<2@example.com>")
        assert spool.held_count(ACCOUNT) == 1 and spool.held_count("nobody@example.com") == 0


class TestFormat1:
    def v1_file(self, directory, name, **extra) -> str:
        entry = {"format": 1, "account": ACCOUNT, "server": "s:465", "sender": "user@example.com",
                 "recipients": ["bcc@example.com"], "delivered": ["a@example.com"], "message_id": "<old@example.com>",
                 "spooled_at": "2026-12-01T00:00:00Z", "reason": "smtp_connect: refused",
                 "data": base64.b64encode(MESSAGE).decode(), **extra}
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.chmod(path, 0o600)
        return path

    def test_pending_and_held_files_are_converted_once_with_their_served_recipients(self, spool):
        pending = self.v1_file(spool.directory, "01-aa.json")
        held = self.v1_file(spool.directory, "02-bb.held.json", message_id="<held@example.com>",
                            held_reason="delivery_unknown: lost", held_at="2026-12-01T00:05:00Z")
        (converted,) = spool.pending(ACCOUNT)
        assert converted.recipients == ("bcc@example.com",) and converted.delivered == ("a@example.com",)
        assert converted.spooled_at == "2026-12-01T00:00:00Z" and converted.data == MESSAGE
        (kept,) = spool.held()
        assert kept.message_id == "<held@example.com>" and kept.control.held_code == "delivery_unknown"
        assert not os.path.exists(pending) and not os.path.exists(held)

    def test_a_conversion_cut_short_by_a_crash_is_not_done_twice(self, spool):
        self.v1_file(spool.directory, "01-aa.json")
        assert len(spool.pending(ACCOUNT)) == 1
        self.v1_file(spool.directory, "01-aa.json")  # the old file left behind by a crash before its removal
        assert len(_spool.Spool(spool.directory).pending(ACCOUNT)) == 1
