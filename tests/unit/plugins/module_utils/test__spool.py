# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The mail spool on real files: format, privacy, listings, holding, and claims by concurrent processes."""

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

from ansible_collections.smail.xoauth2.plugins.module_utils import _smtp, _spool
from ansible_collections.smail.xoauth2.plugins.module_utils._errors import SmailError

ACCOUNT = "User@Example.com"
MESSAGE = (b"Message-ID: <1@example.com>\r\nDate: Wed, 02 Dec 2026 02:30:00 +0000\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
           b"\r\nbody \xc3\xa9\r\n.\r\n")


def add(spool: _spool.Spool, *, account: str = ACCOUNT, message_id: str | None = "<1@example.com>",
        data: bytes = MESSAGE) -> _spool.SpooledMessage:
    return spool.add(account=account, server="127.0.0.1:465", sender="user@example.com",
                     recipients=["a@example.com", "bcc@example.com"], message_id=message_id, data=data,
                     reason="smtp_connect: Connection refused")


@contextlib.contextmanager
def claimed(spool: _spool.Spool, account: str):
    """The messages of a claim (the first window), locked while the block runs."""
    with spool.claim(account) as claim:
        yield claim.messages


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def child_env() -> dict[str, str]:
    """The environment for a child Python that imports the collection as this process does."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}


@pytest.fixture()
def spool(tmp_path):
    return _spool.Spool(str(tmp_path / "spool"))


class TestAdd:
    def test_one_private_file_in_a_private_directory(self, spool, tmp_path):
        message = add(spool)
        directory = tmp_path / "spool"
        assert mode_of(directory) == 0o700
        assert os.listdir(directory) == [os.path.basename(message.path)]
        assert mode_of(message.path) == 0o600 and os.path.dirname(message.path) == str(directory)

    def test_the_file_is_the_documented_json(self, spool):
        message = add(spool)
        with open(message.path, encoding="utf-8") as handle:
            entry = json.load(handle)
        assert entry.pop("spooled_at") == message.spooled_at
        assert entry == {
            "format": 1, "account": ACCOUNT, "server": "127.0.0.1:465", "sender": "user@example.com",
            "recipients": ["a@example.com", "bcc@example.com"], "message_id": "<1@example.com>",
            "reason": "smtp_connect: Connection refused", "data": base64.b64encode(MESSAGE).decode(),
        }
        assert time.strptime(message.spooled_at, "%Y-%m-%dT%H:%M:%SZ")

    def test_the_message_comes_back_byte_for_byte(self, spool):
        data = MESSAGE + bytes(range(256))
        added = add(spool, data=data)
        (read,) = spool.pending()
        assert read == added and read.data == data and read.recipients == ("a@example.com", "bcc@example.com")

    def test_names_sort_oldest_first(self, spool):
        added = [add(spool, message_id=f"<{number}@example.com>") for number in range(5)]
        names = [os.path.basename(message.path) for message in added]
        assert names == sorted(names) and len(set(names)) == 5
        assert [message.message_id for message in spool.pending()] == [f"<{number}@example.com>" for number in range(5)]

    def test_a_loose_directory_is_tightened(self, spool, tmp_path):
        (tmp_path / "spool").mkdir()
        (tmp_path / "spool").chmod(0o755)
        add(spool)
        assert mode_of(tmp_path / "spool") == 0o700

    def test_an_unwritable_spool_is_spool_write_naming_the_directory(self, tmp_path):
        (tmp_path / "file").write_bytes(b"")
        spool = _spool.Spool(str(tmp_path / "file" / "spool"))
        with pytest.raises(SmailError) as info:
            add(spool)
        assert info.value.code == "spool_write" and str(tmp_path / "file" / "spool") in info.value.msg
        assert info.value.hint

    def test_a_failed_write_leaves_nothing(self, spool, tmp_path, monkeypatch):
        add(spool)

        def refuse(*_args):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(_spool.os, "replace", refuse)
        with pytest.raises(SmailError) as info:
            add(spool, message_id="<2@example.com>")
        assert info.value.code == "spool_write" and "No space left" in info.value.msg
        assert len(os.listdir(tmp_path / "spool")) == 1


class TestSummaryAndRepr:
    def test_summary_has_no_content(self, spool):
        message = add(spool)
        assert message.summary() == {"path": message.path, "message_id": "<1@example.com>",
                                     "recipients": ["a@example.com", "bcc@example.com"],
                                     "spooled_at": message.spooled_at, "reason": "smtp_connect: Connection refused"}
        assert "body" not in repr(message) and "data" not in repr(message)


class TestPrivacy:
    def test_another_users_directory_is_refused_and_left_alone(self, spool, tmp_path, monkeypatch):
        directory = tmp_path / "spool"
        directory.mkdir()
        directory.chmod(0o755)
        owner = directory.stat().st_uid
        monkeypatch.setattr(_spool.os, "geteuid", lambda: owner + 1)
        for operation in (lambda: add(spool), spool.pending, spool.held, spool.unreadable,
                          lambda: spool.claim(ACCOUNT).__enter__()):
            with pytest.raises(SmailError) as info:
                operation()
            assert info.value.code == "spool_insecure" and str(directory) in info.value.msg
        assert mode_of(directory) == 0o755 and os.listdir(directory) == []

    @pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777], ids=oct)
    def test_a_directory_others_may_write_to_is_refused_and_left_alone(self, spool, tmp_path, mode):
        directory = tmp_path / "spool"
        directory.mkdir()
        directory.chmod(mode)
        for operation in (lambda: add(spool), spool.pending, lambda: spool.claim(ACCOUNT).__enter__()):
            with pytest.raises(SmailError) as info:
                operation()
            assert info.value.code == "spool_insecure" and "other users" in info.value.msg
        assert mode_of(directory) == mode and os.listdir(directory) == []

    def test_another_users_symlink_is_not_followed(self, tmp_path):
        if os.geteuid() != 0:
            pytest.skip("only root can give a symlink to another user")
        victim = tmp_path / "victims_dir"
        victim.mkdir()
        victim.chmod(0o755)
        link = tmp_path / "spool"
        link.symlink_to(victim)
        os.lchown(link, 65534, 65534)  # planted by another local user
        spool = _spool.Spool(str(link))
        for operation in (lambda: add(spool), spool.pending, lambda: spool.claim(ACCOUNT).__enter__()):
            with pytest.raises(SmailError) as info:
                operation()
            assert info.value.code == "spool_insecure" and "symbolic link" in info.value.msg
        assert mode_of(victim) == 0o755 and os.listdir(victim) == []

    def test_an_own_symlink_to_an_own_directory_is_used(self, tmp_path):
        target = tmp_path / "real_spool"
        target.mkdir(mode=0o700)
        (tmp_path / "spool").symlink_to(target)
        spool = _spool.Spool(str(tmp_path / "spool"))
        added = add(spool)
        assert spool.pending() == [added] and os.listdir(target) == [os.path.basename(added.path)]

    def test_another_users_file_is_never_delivered(self, spool):
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user")
        planted = add(spool, message_id="<planted@example.com>")
        os.chown(planted.path, 65534, 65534)
        own = add(spool, message_id="<own@example.com>")
        assert spool.pending() == [own]
        with claimed(spool, ACCOUNT) as messages:
            assert messages == [own]
        assert spool.unreadable() == [planted.path] and os.path.exists(planted.path)


class TestListings:
    def test_a_missing_spool_is_empty(self, spool, tmp_path):
        assert spool.pending() == [] and spool.held() == [] and spool.unreadable() == []
        with claimed(spool, ACCOUNT) as messages:
            assert messages == []
        assert not (tmp_path / "spool").exists()

    def test_pending_per_account_ignores_case(self, spool):
        mine = add(spool)
        other = add(spool, account="other@example.com")
        assert spool.pending() == [mine, other]
        assert spool.pending("user@EXAMPLE.com") == [mine]
        assert spool.pending("nobody@example.com") == []

    @pytest.mark.parametrize("content", [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"format": 2}',
        json.dumps({"format": 1, "account": ACCOUNT}).encode(),
    ])
    def test_a_corrupt_file_is_skipped_reported_and_kept(self, spool, tmp_path, content):
        good = add(spool)
        bad = tmp_path / "spool" / "00000000000000000001-bad.json"
        bad.write_bytes(content)
        assert spool.pending() == [good]
        with claimed(spool, ACCOUNT) as messages:
            assert messages == [good]
        assert spool.unreadable() == [str(bad)] and bad.read_bytes() == content

    def test_bad_base64_or_field_types_are_unreadable(self, spool):
        good = add(spool)
        with open(good.path, encoding="utf-8") as handle:
            entry = json.load(handle)
        for broken in ({"data": "not base64!"}, {"recipients": "a@example.com"}, {"message_id": 5}, {"reason": None}):
            with open(good.path, "w", encoding="utf-8") as handle:
                json.dump({**entry, **broken}, handle)
            assert spool.pending() == [] and spool.unreadable() == [good.path], broken

    def test_temp_files_and_strangers_are_ignored(self, spool, tmp_path):
        good = add(spool)
        (tmp_path / "spool" / f".{os.path.basename(good.path)}.0123456789ab.tmp").write_bytes(b"half written")
        (tmp_path / "spool" / "notes.txt").write_bytes(b"x")
        assert spool.pending() == [good] and spool.unreadable() == []


class TestRemoveAndSetAside:
    def test_remove_and_remove_again(self, spool):
        message = add(spool)
        spool.remove(message)
        assert spool.pending() == [] and not os.path.exists(message.path)
        spool.remove(message)

    def test_a_failed_remove_is_spool_write(self, spool, monkeypatch):
        message = add(spool)

        def refuse(*_args):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(_spool.os, "unlink", refuse)
        with pytest.raises(SmailError) as info:
            spool.remove(message)
        assert info.value.code == "spool_write" and message.path in info.value.msg

    def test_set_aside_holds_it_with_the_reason(self, spool, tmp_path):
        message = add(spool)
        later = add(spool, message_id="<2@example.com>")
        held_path = spool.set_aside(message, "delivery_unknown: the connection broke after DATA").path
        assert held_path.endswith(".held.json") and not os.path.exists(message.path)
        assert sorted(os.listdir(tmp_path / "spool")) == sorted([os.path.basename(held_path), os.path.basename(later.path)])
        assert mode_of(held_path) == 0o600
        assert spool.pending() == [later]
        (held,) = spool.held()
        assert held.path == held_path and held.data == MESSAGE and held.message_id == "<1@example.com>"
        assert held.held_reason == "delivery_unknown: the connection broke after DATA" and held.held_at
        assert held.summary()["held_reason"] == held.held_reason
        with claimed(spool, ACCOUNT) as messages:
            assert messages == [later]

    def test_set_aside_of_a_message_gone_meanwhile_is_spool_write(self, spool):
        message = add(spool)
        spool.remove(message)
        with pytest.raises(SmailError) as info:
            spool.set_aside(message, "refused")
        assert info.value.code == "spool_write"
        assert spool.held() == []


class TestClaim:
    def test_the_accounts_messages_oldest_first(self, spool):
        first = add(spool, message_id="<1@example.com>")
        add(spool, account="other@example.com")
        second = add(spool, message_id="<2@example.com>")
        with claimed(spool, "user@example.com") as messages:
            assert messages == [first, second]
            spool.remove(first)
        assert [message.message_id for message in spool.pending(ACCOUNT)] == ["<2@example.com>"]

    def test_claimed_messages_are_locked_until_exit(self, spool):
        add(spool)
        with claimed(spool, ACCOUNT) as messages:
            assert len(messages) == 1
            # flock locks belong to open files, so a second claim in this very process is refused too.
            with claimed(spool, ACCOUNT) as again:
                assert again == []
            assert spool.pending(ACCOUNT) == messages  # listing does not lock
        with claimed(spool, ACCOUNT) as messages:
            assert len(messages) == 1

    def test_a_message_locked_by_another_process_is_skipped(self, spool):
        locked = add(spool, message_id="<locked@example.com>")
        free = add(spool, message_id="<free@example.com>")
        holder_script = textwrap.dedent("""
            import fcntl, sys
            with open(sys.argv[1], "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                print("locked", flush=True)
                sys.stdin.readline()
        """)
        with subprocess.Popen([sys.executable, "-c", holder_script, locked.path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) as holder:
            try:
                assert holder.stdout.readline() == "locked\n"
                with claimed(spool, ACCOUNT) as messages:
                    assert messages == [free]
            finally:
                holder.communicate("done\n", timeout=30)
        with claimed(spool, ACCOUNT) as messages:
            assert messages == [locked, free]

    def test_a_file_removed_before_it_is_opened_is_skipped(self, spool, monkeypatch):
        gone = add(spool, message_id="<gone@example.com>")
        kept = add(spool, message_id="<kept@example.com>")
        real_listdir = os.listdir

        def listdir_then_deliver_elsewhere(path):
            names = real_listdir(path)
            os.unlink(gone.path)
            return names

        monkeypatch.setattr(_spool.os, "listdir", listdir_then_deliver_elsewhere)
        with claimed(spool, ACCOUNT) as messages:
            assert messages == [kept]

    @pytest.mark.parametrize("elsewhere", ["remove", "set_aside"])
    def test_a_file_gone_between_open_and_lock_is_skipped(self, spool, monkeypatch, elsewhere):
        first = add(spool, message_id="<1@example.com>")
        second = add(spool, message_id="<2@example.com>")
        real_flock = _spool.fcntl.flock
        calls = []

        def flock_after_another_process_finished(fd, operation):
            # The other process held the lock, delivered the message and released it just before this lock.
            if not calls:
                other = _spool.Spool(spool.directory)
                if elsewhere == "remove":
                    other.remove(first)
                else:
                    other.set_aside(first, "refused")
            calls.append(fd)
            return real_flock(fd, operation)

        monkeypatch.setattr(_spool.fcntl, "flock", flock_after_another_process_finished)
        with claimed(spool, ACCOUNT) as messages:
            assert messages == [second]
        assert len(calls) == 2

    def test_concurrent_processes_never_deliver_one_message_twice(self, spool, tmp_path):
        ids = [f"<{number}@example.com>" for number in range(120)]
        for message_id in ids:
            add(spool, message_id=message_id)
        other = add(spool, account="other@example.com", message_id="<other@example.com>")
        worker = textwrap.dedent("""
            import os, sys, time
            from ansible_collections.smail.xoauth2.plugins.module_utils._spool import Spool
            directory, account, out, go = sys.argv[1:5]
            spool = Spool(directory)
            while not os.path.exists(go):
                time.sleep(0.001)
            delivered = []
            while True:
                with spool.claim(account) as claim:
                    for message in claim.messages:
                        delivered.append(message.message_id)
                        spool.remove(message)
                if not claim.messages:
                    if not spool.pending(account):
                        break
                    time.sleep(0.001)
            with open(out, "w", encoding="utf-8") as handle:
                handle.write("\\n".join(delivered))
        """)
        go = tmp_path / "go"
        outputs = [tmp_path / f"delivered-{number}" for number in range(4)]
        with contextlib.ExitStack() as running:
            workers = [running.enter_context(subprocess.Popen(
                [sys.executable, "-c", worker, spool.directory, "user@example.com", str(out), str(go)], env=child_env()))
                for out in outputs]
            time.sleep(0.5)  # let every worker import and wait for the start
            go.write_bytes(b"")
            assert [process.wait(timeout=120) for process in workers] == [0] * len(workers)
        delivered = [line for out in outputs for line in out.read_text(encoding="utf-8").splitlines()]
        assert sorted(delivered) == sorted(ids)  # each exactly once
        assert spool.pending() == [other]


def outcome_of(message: _spool.SpooledMessage, *, accepted=(), refused=None, pending=(), error=None) -> _smtp.Outcome:
    outcome = _smtp.Outcome(_smtp.Envelope(message.sender, message.recipients, message.data, message.message_id),
                            pending=list(pending))
    outcome.accepted, outcome.refused, outcome.error = list(accepted), dict(refused or {}), error
    return outcome


def locked_elsewhere(path: str) -> bool:
    """Whether another process fails to lock the file now at ``path``."""
    probe = "import fcntl, sys\nwith open(sys.argv[1], 'rb') as f:\n    try:\n        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n" \
            "    except OSError:\n        sys.exit(1)\n"
    return subprocess.run([sys.executable, "-c", probe, path], check=False).returncode == 1


class TestRecord:
    def test_a_served_recipient_is_written_down_and_the_new_file_stays_locked(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            (claimed_message,) = claim.messages
            state = claim.record(claimed_message, outcome_of(message, accepted=["a@example.com"],
                                                             pending=["bcc@example.com"]))
            assert state == "pending"
            (narrowed,) = spool.pending()
            assert narrowed.recipients == ("bcc@example.com",) and narrowed.delivered == ("a@example.com",)
            assert narrowed.data == MESSAGE and mode_of(narrowed.path) == 0o600
            assert locked_elsewhere(message.path)  # the lock went over to the new file with no gap
        assert not locked_elsewhere(message.path)

    def test_every_recipient_served_removes_the_file(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            outcome = outcome_of(message, accepted=list(message.recipients))
            assert claim.record(claim.messages[0], outcome) == "delivered"
            assert claim.record(claim.messages[0], outcome) == "delivered"  # idempotent
        assert os.listdir(spool.directory) == []

    def test_a_refused_recipient_holds_the_file_once_nobody_is_left(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            state = claim.record(claim.messages[0], outcome_of(message, accepted=["a@example.com"],
                                                               refused={"bcc@example.com": "550 5.1.1 no such user"}))
            assert state == "refused"
        (held,) = spool.held()
        assert held.refused == {"bcc@example.com": "550 5.1.1 no such user"} and held.delivered == ("a@example.com",)
        assert "bcc@example.com: 550 5.1.1 no such user" in held.held_reason and spool.pending() == []

    def test_an_unknown_fate_holds_it_with_what_to_check(self, spool):
        message = add(spool)
        unknown = _smtp.SMTPError("delivery_unknown", "The connection was lost after the final dot.", stage="data",
                                  may_have_been_delivered=True)
        with spool.claim(ACCOUNT) as claim:
            assert claim.record(claim.messages[0], outcome_of(message, pending=message.recipients, error=unknown)) == "held"
        (held,) = spool.held()
        assert held.recipients == message.recipients and "check the recipients' mailboxes" in held.held_reason

    def test_a_session_failure_leaves_it_pending(self, spool):
        message = add(spool)
        refused_login = _smtp.SMTPError("smtp_auth", "535 5.7.8 bad token", stage="auth", transient=False)
        with spool.claim(ACCOUNT) as claim:
            assert claim.record(claim.messages[0], outcome_of(message, pending=message.recipients,
                                                              error=refused_login)) == "pending"
        assert spool.pending() == [message] and spool.held() == []


class TestRelease:
    def test_release_queues_held_mail_again_for_the_recipients_left(self, spool):
        message = add(spool, message_id="<unknown@example.com>")
        held = spool.set_aside(message, "delivery_unknown: lost after the dot")
        (found,) = spool.held_by_id(["unknown@example.com"], option="release")  # angle brackets optional
        assert found == held
        released = spool.release(found)
        assert spool.held() == [] and spool.pending() == [released]
        assert released.recipients == message.recipients and released.held_reason is None

    def test_an_unknown_message_id_names_the_option_and_changes_nothing(self, spool):
        spool.set_aside(add(spool), "refused")
        with pytest.raises(SmailError) as info:
            spool.held_by_id(["<1@example.com>", "<nope@example.com>"], option="discard")
        assert info.value.code == "invalid_option" and info.value.details["option"] == "discard"
        assert "<nope@example.com>" in info.value.msg and len(spool.held()) == 1

    def test_held_mail_with_nobody_left_cannot_be_released(self, spool):
        message = add(spool)
        with spool.claim(ACCOUNT) as claim:
            claim.record(claim.messages[0], outcome_of(message, refused={a: "550 no" for a in message.recipients}))
        (held,) = spool.held()
        with pytest.raises(SmailError) as info:
            spool.release(held, check_only=True)
        assert info.value.code == "invalid_option" and "discard it instead" in info.value.msg
        assert spool.held() == [held]


class TestWindow:
    def test_a_claim_holds_at_most_a_window_and_skips_what_it_is_told(self, spool):
        messages = [add(spool, message_id=f"<{number}@example.com>") for number in range(5)]
        with spool.claim(ACCOUNT, limit=2) as first:
            assert first.messages == messages[:2]
        with spool.claim(ACCOUNT, limit=2, skip={message.path for message in messages[:3]}) as later:
            assert later.messages == messages[3:]

    def test_the_open_file_limit_ends_a_window_early(self, spool, monkeypatch):
        messages = [add(spool, message_id=f"<{number}@example.com>") for number in range(4)]
        real_open = os.open
        opened = []

        def open_until_the_limit(path, flags, *args):
            if path.endswith(".json") and len(opened) == 2:
                raise OSError(errno.EMFILE, "Too many open files")
            opened.append(path)
            return real_open(path, flags, *args)

        monkeypatch.setattr(_spool.os, "open", open_until_the_limit)
        with spool.claim(ACCOUNT) as claim:
            assert claim.messages == messages[:2] and claim.passed == []
