#!/usr/bin/env python3
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The spool cases of `make bench`: smail.xoauth2's send core called in one Python process, no Ansible.

Each invocation is one measurement: it does its untimed preparation, times only the call into the collection's core
(`_mailer.deliver_batch`, `_mailer.deliver` or `_mailer.flush_spool`) and prints `{"seconds": [...]}` as its last
line. The harness (benchmarks/bench.py) checks that the sandbox stored exactly the mails each run sent. Reads the
sandbox settings and the messages from the harness's vars file (JSON: sandbox, bench_messages, bench_cache_dir).

Commands:

- `batch VARS [--spool-dir DIR]`: every message of the vars file as one `messages` batch (one connection).
- `send VARS --spool-dir DIR --repeat N`: one warm-up send, then N single sends of the first message, each timed.
- `flush VARS --spool-dir DIR`: spool every message for the sandbox account (untimed), then time one flush.
- `populate VARS --spool-dir DIR --count N`: spool N mails of ANOTHER account (untimed preparation of `send`).

The spool is filled through the collection's own spool API in one function, :func:`spool_one`, the one place to
adapt when the spool's format or API changes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing as t
from pathlib import Path

#: The account whose mail fills the spool of the `send` case: never the sandbox account the sends log in as.
OTHER_ACCOUNT = "other-account@example.com"


def import_core() -> tuple[t.Any, t.Any, t.Any]:
    """Import the collection's send pipeline, message and spool modules from ANSIBLE_COLLECTIONS_PATH (the working tree's build)."""
    for entry in reversed(os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)):
        if entry:
            sys.path.insert(0, entry)
    from ansible_collections.smail.xoauth2.plugins.module_utils._send import pipeline as _mailer  # pylint: disable=import-outside-toplevel
    from ansible_collections.smail.xoauth2.plugins.module_utils._smtp import message as _smtp_message  # pylint: disable=import-outside-toplevel
    from ansible_collections.smail.xoauth2.plugins.module_utils._spool import queue as _spool  # pylint: disable=import-outside-toplevel

    return _mailer, _smtp_message, _spool


_mailer, _smtp_message, _spool = import_core()


def send_options(bench_vars: dict, spool_dir: str | None) -> dict[str, t.Any]:
    """Return the options of a send to the sandbox, as the mail module passes its parameters to the core."""
    sandbox = bench_vars["sandbox"]
    options = {
        "provider": "custom", "token_uri": sandbox["token_uri"], "client_id": sandbox["client_id"],
        "client_secret": sandbox["client_secret"], "refresh_token": sandbox["refresh_token"],
        "token_cache_dir": bench_vars["bench_cache_dir"], "username": sandbox["account"], "host": sandbox["host"],
        "port": sandbox["smtp_ssl_port"], "secure": "ssl", "ca_path": sandbox["ca_path"], "timeout": 30,
    }
    if spool_dir is not None:
        options["spool_dir"] = spool_dir
    return options


def message_specs(bench_vars: dict, sender: str) -> list[t.Any]:
    """Return the MessageSpec of every message of the vars file, sent by `sender`."""
    return [_smtp_message.MessageSpec(sender=sender, to=tuple(entry["to"]), subject=entry["subject"], body=entry["body"])
            for entry in bench_vars["bench_messages"]]


def spool_one(spool_dir: str, *, account: str, spec: t.Any) -> None:
    """Spool one mail of `account`, pending, as a send that could not deliver it would have left it.

    The message is built as a send builds it (`_mailer.prepare_envelope`), then kept with the spool's public API of
    format 1, `_spool.Spool(spool_dir).add(account=, server=, sender=, recipients=, message_id=, data=, reason=)`:
    adapt this call, and only it, when the spool's API changes.
    """
    envelope = _mailer.prepare_envelope(spec)
    _spool.Spool(spool_dir).add(account=account, server="bench.invalid:465", sender=envelope.sender,
                                recipients=list(envelope.recipients), message_id=envelope.message_id,
                                data=envelope.data, reason="smtp_connect: the benchmark spooled it")


def spool_files(spool_dir: str) -> int:
    """Return how many files (temp files not included) the spool directory holds, its subdirectories included."""
    return sum(1 for _root, _dirs, names in os.walk(spool_dir) for name in names if not name.startswith("."))


def check_delivered(result: dict, count: int) -> None:
    """Stop with a message unless every one of `count` messages went to all its recipients, none spooled."""
    results = result.get("results", [result])
    undelivered = [entry for entry in results if entry.get("spooled") or not entry.get("recipients")]
    if len(results) != count or undelivered:
        raise SystemExit(f"{len(undelivered)} of {count} messages were not delivered")


def run_batch(bench_vars: dict, spool_dir: str | None) -> list[float]:
    specs = message_specs(bench_vars, bench_vars["sandbox"]["account"])
    options = send_options(bench_vars, spool_dir)
    started = time.perf_counter()
    batch = _mailer.deliver_batch(options, specs)
    elapsed = time.perf_counter() - started
    check_delivered(batch.delivery.result, len(specs))
    return [elapsed]


def run_send(bench_vars: dict, spool_dir: str, repeat: int) -> list[float]:
    spec = message_specs(bench_vars, bench_vars["sandbox"]["account"])[0]
    options = send_options(bench_vars, spool_dir)
    others = spool_files(spool_dir) if os.path.isdir(spool_dir) else 0
    seconds = []
    for number in range(repeat + 1):
        started = time.perf_counter()
        delivery = _mailer.deliver(options, spec)
        elapsed = time.perf_counter() - started
        check_delivered(delivery.result, 1)
        if number:  # the first send is the warm-up: imports, token cache, the spool directory
            seconds.append(elapsed)
    if spool_files(spool_dir) != others:
        raise SystemExit(f"the spool held {others} files before the sends and {spool_files(spool_dir)} after")
    return seconds


def run_flush(bench_vars: dict, spool_dir: str) -> list[float]:
    account = bench_vars["sandbox"]["account"]
    specs = message_specs(bench_vars, account)
    for spec in specs:
        spool_one(spool_dir, account=account, spec=spec)
    started = time.perf_counter()
    delivery = _mailer.flush_spool(send_options(bench_vars, spool_dir))
    elapsed = time.perf_counter() - started
    if delivery.result["spool_pending"] or len(delivery.result["spool_delivered"]) != len(specs):
        raise SystemExit(f"the flush delivered {len(delivery.result['spool_delivered'])} of {len(specs)} mails and "
                         f"left {len(delivery.result['spool_pending'])} pending")
    return [elapsed]


def run_populate(bench_vars: dict, spool_dir: str, count: int) -> list[float]:
    spec = message_specs(bench_vars, OTHER_ACCOUNT)[0]
    started = time.perf_counter()
    for _number in range(count):
        spool_one(spool_dir, account=OTHER_ACCOUNT, spec=spec)
    return [time.perf_counter() - started]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("batch", "send", "flush", "populate"))
    parser.add_argument("vars_file", type=Path, help="the harness's JSON vars file")
    parser.add_argument("--spool-dir")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.command != "batch" and not args.spool_dir:
        parser.error(f"{args.command} needs --spool-dir")
    bench_vars = json.loads(args.vars_file.read_text(encoding="utf-8"))
    if args.command == "batch":
        seconds = run_batch(bench_vars, args.spool_dir)
    elif args.command == "send":
        seconds = run_send(bench_vars, args.spool_dir, args.repeat)
    elif args.command == "flush":
        seconds = run_flush(bench_vars, args.spool_dir)
    else:
        seconds = run_populate(bench_vars, args.spool_dir, args.count)
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
