#!/usr/bin/env python3
# Copyright (c) 2026, smail.xoauth2 contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make bench`: smail.xoauth2 side by side with community.general.mail and plain Python, against the sandbox.

Starts its own sandbox (loopback only), runs every case with warm-ups and timed runs interleaved, and writes
docs/performance.md (medians, ratios, targets) and docs/performance-scaling.png. Times are whole-process wall
times of ansible-playbook (or of the floor script); case 8 (the spool) times the send core's calls inside one process
(spool_driver.py). BENCH_RUNS=N sets the timed runs of each case (default 3, after
one warm-up), BENCH_HEAVY_RUNS=N those of the long steps without a warm-up of their own: 100 mails and smail_ini over
50 hosts (default 2, or BENCH_RUNS if smaller). Every mail run also counts the SMTP
connections it made, from the sandbox's smtp_sessions.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
SCALING_SIZES = (5, 20, 100)
FLEET_SIZE = 50
FLEET_FORKS = 20
BIG_BATCH = 1000
INI_SETTINGS = {
    "SMTP": {"Server": "smtp.gmail.com", "Port": "465", "Auth": "OAUTH-XOAUTH2", "From": "alerts@example.com"},
    "OAUTH": {"Provider": "google", "TokenFile": r"C:\SMAIL\smail_refresh_token.ini"},
}
#: Case 8, the spool: the 1000-message batch with and without spool_dir, the files of another account in the spool
#: of one send (each run: SPOOL_SEND_REPEAT timed sends after a warm-up send), and the mails of the flush and of the
#: batch it is compared with.
SPOOL_OTHER_FILES = 10_000
SPOOL_SEND_REPEAT = 5
SPOOL_FLUSH = 10_000
#: The controller environment that sends smail.xoauth2.mail to the module process (plugin_utils/_in_process.py).
MODULE_PROCESS_ENV = {"SMAIL_XOAUTH2_IN_PROCESS": "0"}
#: How long the sandbox's connection log must stay unchanged after a run before its connections are counted: a
#: worker ends its kept SMTP session as it exits, and the sandbox logs the connection a moment later.
SESSION_LOG_SETTLE_SECONDS = 0.3


class BenchError(Exception):
    """A benchmark step failed: the message says which and where its log is."""


@dataclass
class Series:
    """The timed runs of one variant of a case (warm-ups not included)."""

    label: str
    seconds: list[float] = field(default_factory=list)
    warmups: int = 0
    #: The SMTP connections of every run, warm-ups included: (connections, of which ended with QUIT).
    connections: list[tuple[int, int]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Target:
    """A goal from the performance issue, with what was measured against it (None: not measured)."""

    text: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {None: "not measured", True: "met", False: "NOT met"}[self.met]


def ratio_target(text: str, value: float | None, limit: float, *, aim: float | None = None) -> Target:
    """Return a target that a ratio meets when it is at most `limit`; the measured text says whether it reached `aim`."""
    measured = fmt(value, 2, "x")
    if aim is not None and value is not None:
        measured += f" (aim {aim:.1f}x {'reached' if value <= aim else 'not reached'})"
    return Target(text, measured, None if value is None else value <= limit)


def extra_ms_target(text: str, extra_seconds: float | None, limit_ms: float) -> Target:
    """Return a target that an added time meets when it is at most `limit_ms` milliseconds."""
    if extra_seconds is None:
        return Target(text, "n/a", None)
    return Target(text, f"{extra_seconds * 1000:+.0f} ms", extra_seconds * 1000 <= limit_ms)


def count_target(text: str, counts: list[int], expected: int) -> Target:
    """Return a target that every run meets with exactly `expected` (not measured without runs)."""
    return Target(text, ", ".join(map(str, counts)) or "n/a",
                  all(count == expected for count in counts) if counts else None)


@dataclass
class Bench:
    """Paths, interpreters and the sandbox settings shared by every case."""

    repo: Path
    work: Path
    python: Path
    sandbox_python: Path
    collections: Path
    runs: int
    heavy_runs: int
    sandbox: dict = field(default_factory=dict)
    load_start: str = ""
    batch_unavailable: str | None = None
    logs: int = 0
    #: The SMTP connections of each mail run by its name (smail-loop-20, ...), in the order of the runs.
    connections: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def sandbox_state(self) -> Path:
        return self.work.parent / "bench-sandbox"

    @property
    def playbook_cmd(self) -> Path:
        return self.python.parent / "ansible-playbook"

    def env(self, **extra: str) -> dict[str, str]:
        """Return the environment of a benchmark process: the bench venv first, the working tree's collection first."""
        env = dict(os.environ)
        env.update(
            PATH=f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}",
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCAL_TEMP=str(self.work / "tmp"),
            ANSIBLE_REMOTE_TEMP=str(self.work / "tmp"),
            ANSIBLE_RETRY_FILES_ENABLED="0",
        )
        env.pop("ANSIBLE_CONFIG", None)
        env.update(extra)
        return env


# --- processes ------------------------------------------------------------------------------------------------


def last_log(bench: Bench, name: str) -> Path:
    """Return the log of the latest process run_timed started, named `name`."""
    return bench.work / "logs" / f"{bench.logs:04d}-{name}.log"


def run_timed(bench: Bench, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> float:
    """Run argv to completion and return its wall time; raise BenchError (with the log path) when it fails."""
    bench.logs += 1
    log = last_log(bench, name)
    with log.open("wb") as out:
        start = time.perf_counter()
        completed = subprocess.run(argv, cwd=bench.work, env=env or bench.env(), stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise BenchError(f"{name} exited {completed.returncode}; see {log}")
    return elapsed


def playbook_argv(bench: Bench, playbook: str, vars_file: Path, inventory: str = "inventory.ini") -> list[str]:
    """Return the ansible-playbook command line of one benchmark playbook."""
    return [str(bench.playbook_cmd), "-i", str(bench.work / inventory), "-e", f"@{vars_file}", str(PLAYBOOKS / playbook)]


def write_vars(bench: Bench, name: str, **bench_vars: object) -> Path:
    """Write the extra vars of a run (they hold the sandbox's secrets: mode 0600) and return the file."""
    path = bench.work / "vars" / f"{name}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"sandbox": bench.sandbox, **bench_vars}, out)
    return path


def bench_messages(tag: str, count: int) -> list[dict]:
    """Return `count` distinct small mails, the same for every variant of a case."""
    return [
        {"to": [f"bench-{tag}-{number}@example.com"], "subject": f"bench {tag} {number}",
         "body": f"Benchmark mail {number} of {count} ({tag}).\n"}
        for number in range(1, count + 1)
    ]


def stored_mails(bench: Bench) -> int:
    """Return how many messages the sandbox has stored so far."""
    return sum(1 for entry in os.scandir(bench.sandbox["mail_dir"]) if entry.name.endswith(".eml"))


def token_requests(bench: Bench) -> int:
    """Return how many lines the sandbox's token request log has."""
    log = Path(bench.sandbox["token_log"])
    return len(log.read_text(encoding="utf-8").splitlines()) if log.exists() else 0


def smtp_sessions(bench: Bench) -> list[dict]:
    """Return the sandbox's lines of ended SMTP connections so far (smtp_sessions.jsonl, one per connection)."""
    log = Path(bench.sandbox["state_dir"]) / "smtp_sessions.jsonl"
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def settled_smtp_sessions(bench: Bench) -> list[dict]:
    """Return smtp_sessions() once it has stayed the same for SESSION_LOG_SETTLE_SECONDS (at most 10 s)."""
    sessions, deadline = smtp_sessions(bench), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(SESSION_LOG_SETTLE_SECONDS)
        again = smtp_sessions(bench)
        if len(again) == len(sessions):
            break
        sessions = again
    return sessions


Measured = t.TypeVar("Measured")


def checked_mails(bench: Bench, name: str, expected: int, run: Callable[[], Measured]) -> Measured:
    """Return what `run` measured, once it has delivered `expected` mails: check that the sandbox stored exactly that
    many, and record the SMTP connections the run made in bench.connections[name]."""
    before, sessions_before = stored_mails(bench), len(settled_smtp_sessions(bench))
    measured = run()
    delivered = stored_mails(bench) - before
    if delivered != expected:
        raise BenchError(f"{name}: the sandbox stored {delivered} mails, {expected} expected")
    new = settled_smtp_sessions(bench)[sessions_before:]
    bench.connections.setdefault(name, []).append((len(new), sum(1 for line in new if line["quit"])))
    return measured


def timed_mails(bench: Bench, name: str, argv: list[str], expected: int, *, env: dict[str, str] | None = None) -> float:
    """Time a run that must deliver `expected` mails (checked_mails); return its wall time."""
    return checked_mails(bench, name, expected, lambda: run_timed(bench, name, argv, env=env))


def driver_argv(bench: Bench, command: str, vars_file: Path, *extra: str) -> list[str]:
    """Return the command line of one measurement of benchmarks/spool_driver.py."""
    return [str(bench.python), str(HERE / "spool_driver.py"), command, str(vars_file), *extra]


def driver_seconds(bench: Bench, name: str, argv: list[str]) -> list[float]:
    """Run spool_driver.py and return the times it measured inside its process (its last line of output)."""
    run_timed(bench, name, argv)
    return json.loads(last_log(bench, name).read_text(encoding="utf-8").splitlines()[-1])["seconds"]


def driver_mails(bench: Bench, name: str, argv: list[str], expected: int) -> list[float]:
    """driver_seconds of a run that must deliver `expected` mails (checked_mails)."""
    return checked_mails(bench, name, expected, lambda: driver_seconds(bench, name, argv))


# --- the sandbox ------------------------------------------------------------------------------------------------


def sandbox_cmd(bench: Bench, command: str, *extra: str) -> list[str]:
    """Return the command line of the sandbox's run/wait/stop with the benchmark's own state directory."""
    script = bench.repo / "sandbox" / "xoauth2_sandbox"  # a package: Python runs its __main__.py
    return [str(bench.sandbox_python), str(script), command, "--state-dir", str(bench.sandbox_state), *extra]


def start_sandbox(bench: Bench) -> subprocess.Popen:
    """Start a fresh sandbox, wait until it listens, and load its settings into bench.sandbox."""
    subprocess.run(sandbox_cmd(bench, "stop"), capture_output=True, check=False)
    shutil.rmtree(bench.sandbox_state, ignore_errors=True)
    bench.sandbox_state.mkdir(parents=True)
    log = (bench.work / "logs" / "sandbox.log").open("wb")
    process = subprocess.Popen(sandbox_cmd(bench, "run"), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    waited = subprocess.run(sandbox_cmd(bench, "wait", "--timeout", "60"), check=False)
    if waited.returncode != 0:
        process.terminate()
        raise BenchError(f"the sandbox did not start; see {log.name}")
    bench.sandbox = json.loads((bench.sandbox_state / "sandbox.json").read_text(encoding="utf-8"))
    return process


def stop_sandbox(bench: Bench, process: subprocess.Popen) -> None:
    """Stop the benchmark's sandbox (the one this harness started)."""
    subprocess.run(sandbox_cmd(bench, "stop"), capture_output=True, check=False)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


# --- setup ----------------------------------------------------------------------------------------------------


def prepare_work_dir(bench: Bench) -> None:
    """Create the work directory with the inventories: localhost, 50 local hosts, localhost behind the RSS wrapper."""
    shutil.rmtree(bench.work, ignore_errors=True)
    for sub in ("logs", "vars", "tmp", "out"):
        (bench.work / sub).mkdir(parents=True)
    bench.work.chmod(0o700)
    interpreter = f"ansible_connection=local ansible_python_interpreter={bench.python}"
    fleet = "\n".join(f"host{number:02d} {interpreter}" for number in range(1, FLEET_SIZE + 1))
    (bench.work / "inventory.ini").write_text(f"[single]\nlocalhost {interpreter}\n\n[fleet]\n{fleet}\n",
                                              encoding="utf-8")
    wrapper = bench.work / "rss-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{bench.python}" "{HERE / "rss_interpreter.py"}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    (bench.work / "inventory-rss.ini").write_text(
        f"[single]\nlocalhost ansible_connection=local ansible_python_interpreter={wrapper}\n", encoding="utf-8")


def probe_batch(bench: Bench) -> None:
    """Find out whether smail.xoauth2.mail takes `messages`; set bench.batch_unavailable to the reason if not."""
    vars_file = write_vars(bench, "probe", bench_mode="batch", bench_messages=bench_messages("probe", 1),
                           bench_cache_dir=str(bench.work / "cache"))
    completed = subprocess.run(playbook_argv(bench, "mail_smail.yml", vars_file), cwd=bench.work, env=bench.env(),
                               capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    (bench.work / "logs" / "probe-batch.log").write_text(completed.stdout + completed.stderr, encoding="utf-8")
    if completed.returncode == 0:
        return
    failure = re.search(r'"msg": "([^"]*)"', completed.stdout)
    answer = failure.group(1) if failure else "no message, see logs/probe-batch.log"
    # Today's module refuses the option, or wants the one-mail `subject` before it even looks at `messages`.
    if re.search(r"Unsupported parameters .*\bmessages\b|missing required arguments", answer):
        bench.batch_unavailable = f"not available yet (smail.xoauth2.mail answered: {answer})"
    else:
        bench.batch_unavailable = f"failed: a one-message `messages` task answered: {answer}"


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages."""
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def facts(bench: Bench) -> dict[str, str]:
    """Return the machine and software facts the report states."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    versions = subprocess.run(
        [str(bench.python), "-c", ("import ansible.release, sys; print(ansible.release.__version__); "
         "print(sys.version.split()[0])")], capture_output=True, text=True, check=True).stdout.split()
    general = next(Path(sys.prefix).glob("lib/python*/site-packages/ansible_collections/community/general/MANIFEST.json"))
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": versions[1],
        "ansible_core": versions[0],
        "community_general": json.loads(general.read_text())["collection_info"]["version"],
        "load_start": bench.load_start,
        "load_end": load_average(),
    }


# --- the cases --------------------------------------------------------------------------------------------------


def interleave(bench: Bench, variants: t.Mapping[str, Callable[[], float | list[float]]], *, warmups: int = 1,
               runs: int | None = None) -> dict[str, Series]:
    """Run each variant once per round, warm-up rounds first; return the timed Series by variant name (a run that
    measured several times adds each)."""
    series = {name: Series(name, warmups=warmups) for name in variants}
    for round_number in range(warmups + (bench.runs if runs is None else runs)):
        for name, run in variants.items():
            elapsed = run()
            if round_number >= warmups:
                series[name].seconds.extend(elapsed if isinstance(elapsed, list) else [elapsed])
    return series


#: The variants of the mail cases: the run name's stem, the playbook, its mode and the extra environment.
MAIL_VARIANTS = {
    "smail loop": ("smail-loop", "mail_smail.yml", "loop", {}),
    "smail loop (module process)": ("smail-loop-module", "mail_smail.yml", "loop", MODULE_PROCESS_ENV),
    "community loop": ("community-loop", "mail_community.yml", "loop", {}),
    "smail batch": ("smail-batch", "mail_smail.yml", "batch", {}),
}


def mail_variants(bench: Bench, count: int) -> dict[str, Callable[[], float]]:
    """Return the runs that send `count` mails: the smail loop in the worker process and in the module process, the
    community loop, and the smail batch when available."""
    cache = str(bench.work / "cache")
    messages = bench_messages(f"n{count}", count)
    vars_files = {mode: write_vars(bench, f"{mode}-{count}", bench_mode=mode, bench_messages=messages,
                                   bench_cache_dir=cache) for mode in ("loop", "batch")}

    def variant(stem: str, playbook: str, mode: str, extra_env: dict[str, str]) -> Callable[[], float]:
        argv, env = playbook_argv(bench, playbook, vars_files[mode]), bench.env(**extra_env)
        return lambda: timed_mails(bench, f"{stem}-{count}", argv, count, env=env)

    return {name: variant(*spec) for name, spec in MAIL_VARIANTS.items()
            if name != "smail batch" or bench.batch_unavailable is None}


def case_scaling(bench: Bench) -> dict[int, dict[str, Series]]:
    """Cases 1, 2 and 7: every mail variant at 5, 20 and 100 mails (the token cache warm after the first run).

    The 100-mail rounds follow the warm 5- and 20-mail ones: heavy_runs rounds, no warm-up of their own.
    """
    scaling = {count: interleave(bench, mail_variants(bench, count), warmups=0, runs=bench.heavy_runs)
               if count >= 100 else interleave(bench, mail_variants(bench, count))
               for count in SCALING_SIZES}
    for count, series in scaling.items():
        for name, one in series.items():
            one.connections = bench.connections.get(f"{MAIL_VARIANTS[name][0]}-{count}", [])
    return scaling


def case_floor(bench: Bench) -> dict[str, Series]:
    """Case 3: 1000 messages as one batch vs the smtplib + google-auth script, interleaved like every other case
    (a batch takes a few seconds: it gets the warm-up and runs of a short case); the batch also with `spool_dir`."""
    messages = bench_messages("big", BIG_BATCH)
    floor = write_vars(bench, "floor", bench_messages=messages)
    batch = write_vars(bench, "big-batch", bench_mode="batch", bench_messages=messages,
                       bench_cache_dir=str(bench.work / "cache"))
    spooled = write_vars(bench, "big-batch-spool", bench_mode="batch", bench_messages=messages,
                         bench_cache_dir=str(bench.work / "cache"), bench_spool_dir=str(bench.work / "spool-playbook"))
    run_names = {"floor script": "floor", "smail batch": "big-batch", "smail batch (spool_dir)": "big-batch-spool"}
    variants = {"floor script": lambda: timed_mails(
        bench, "floor", [str(bench.python), str(HERE / "floor_smtplib.py"), str(floor)], BIG_BATCH)}
    if bench.batch_unavailable is None:
        for name, vars_file in (("smail batch", batch), ("smail batch (spool_dir)", spooled)):
            variants[name] = functools.partial(timed_mails, bench, run_names[name],
                                               playbook_argv(bench, "mail_smail.yml", vars_file), BIG_BATCH)
    series = interleave(bench, variants)
    for name, one in series.items():
        one.connections = bench.connections.get(run_names[name], [])
    return series


@dataclass
class SpoolCases:
    """Case 8: the spool's costs, each side by side with the same work without it (times inside one process)."""

    #: 1000 messages as one deliver_batch, without and with spool_dir.
    batch: dict[str, Series]
    #: One send each (SPOOL_SEND_REPEAT a run), with an empty spool and with SPOOL_OTHER_FILES of another account.
    send: dict[str, Series]
    #: The untimed preparation of `send`: how long spooling SPOOL_OTHER_FILES mails took.
    populate_seconds: float
    #: Flushing SPOOL_FLUSH spooled mails, and deliver_batch of the same SPOOL_FLUSH messages.
    flush: dict[str, Series]


def case_spool(bench: Bench) -> SpoolCases:
    """Case 8: the spool (spool_dir) vs the same work without it, by benchmarks/spool_driver.py in one process each.

    The batch gets the warm-up and runs of a short case; the sends run their own warm-up send in each process; the
    10 000-mail flush and batch get heavy_runs rounds without a warm-up (each flush round spools its mails first,
    untimed).
    """
    cache = str(bench.work / "cache")
    big = write_vars(bench, "spool-batch", bench_messages=bench_messages("spool", BIG_BATCH), bench_cache_dir=cache)
    empty = bench.work / "spool-batch"
    batch = interleave(bench, {
        "deliver_batch": lambda: driver_mails(bench, "core-batch", driver_argv(bench, "batch", big), BIG_BATCH),
        "deliver_batch (spool_dir)": lambda: driver_mails(
            bench, "core-batch-spool", driver_argv(bench, "batch", big, "--spool-dir", str(empty)), BIG_BATCH),
    })

    one = write_vars(bench, "spool-send", bench_messages=bench_messages("send", 1), bench_cache_dir=cache)
    crowded = bench.work / "spool-crowded"
    (populate_seconds,) = driver_seconds(bench, "spool-populate", driver_argv(
        bench, "populate", one, "--spool-dir", str(crowded), "--count", str(SPOOL_OTHER_FILES)))
    sends = {"send, empty spool": ("core-send-empty", bench.work / "spool-empty"),
             f"send, {SPOOL_OTHER_FILES} files of another account": ("core-send-crowded", crowded)}
    send = interleave(bench, {name: functools.partial(
        driver_mails, bench, run_name,
        driver_argv(bench, "send", one, "--spool-dir", str(path), "--repeat", str(SPOOL_SEND_REPEAT)), SPOOL_SEND_REPEAT + 1)
        for name, (run_name, path) in sends.items()}, warmups=0)

    many = write_vars(bench, "spool-flush", bench_messages=bench_messages("flush", SPOOL_FLUSH), bench_cache_dir=cache)
    flush = interleave(bench, {
        f"flush_spool, {SPOOL_FLUSH} spooled": lambda: driver_mails(
            bench, "core-flush", driver_argv(bench, "flush", many, "--spool-dir", str(bench.work / "spool-flush")),
            SPOOL_FLUSH),
        f"deliver_batch, {SPOOL_FLUSH} messages": lambda: driver_mails(
            bench, "core-batch-many", driver_argv(bench, "batch", many), SPOOL_FLUSH),
    }, warmups=0, runs=bench.heavy_runs)
    for series, run_names in ((batch, ("core-batch", "core-batch-spool")), (flush, ("core-flush", "core-batch-many"))):
        for one_series, run_name in zip(series.values(), run_names):
            one_series.connections = bench.connections.get(run_name, [])
    return SpoolCases(batch=batch, send=send, populate_seconds=populate_seconds, flush=flush)


def case_token_requests(bench: Bench) -> tuple[Series, list[int]]:
    """Case 4: 50 hosts send a mail each (forks 20) with a cold token cache; count the token endpoint requests."""
    series, counts = Series("smail, 50 hosts"), []
    env = bench.env(ANSIBLE_FORKS=str(FLEET_FORKS))
    for run_number in range(bench.runs):
        cache = bench.work / f"cache-fleet-{run_number}"
        vars_file = write_vars(bench, f"fleet-{run_number}", bench_mode="loop", bench_hosts="fleet",
                               bench_messages=bench_messages(f"fleet{run_number}", 1), bench_cache_dir=str(cache))
        before = token_requests(bench)
        series.seconds.append(timed_mails(bench, f"fleet-{run_number}",
                                          playbook_argv(bench, "mail_smail.yml", vars_file), FLEET_SIZE, env=env))
        counts.append(token_requests(bench) - before)
        series.connections += bench.connections[f"fleet-{run_number}"]
    return series, counts


def case_ini(bench: Bench) -> tuple[dict[str, Series], dict[str, Series], bool]:
    """Case 5: smail_ini vs template over 50 hosts (forks 20).

    First each run writes a new file per host (and the bytes of both must match), then each reruns on the files it
    wrote, which must change nothing.
    """
    env = bench.env(ANSIBLE_FORKS=str(FLEET_FORKS))

    def variant(mode: str, *, rerun: bool) -> Callable[[], float]:
        out = bench.work / "out" / mode
        vars_file = write_vars(bench, f"ini-{mode}", bench_mode=mode, bench_out_dir=str(out),
                               bench_ini_settings=INI_SETTINGS)
        name = f"ini-{mode}-rerun" if rerun else f"ini-{mode}"

        def run() -> float:
            if not rerun:
                shutil.rmtree(out, ignore_errors=True)
                for number in range(1, FLEET_SIZE + 1):
                    (out / f"host{number:02d}").mkdir(parents=True)
            elapsed = run_timed(bench, name, playbook_argv(bench, "ini.yml", vars_file), env=env)
            log = bench.work / "logs" / f"{bench.logs:04d}-{name}.log"
            if rerun and len(re.findall(r"\bchanged=0\b", log.read_text(encoding="utf-8"))) != FLEET_SIZE:
                raise BenchError(f"{name}: a rerun changed a file; see {log}")
            return elapsed
        return run

    # After case 4 has run the 50 local hosts three times: no warm-up of its own, to keep `make bench` short.
    first = interleave(bench, {"smail_ini": variant("smail_ini", rerun=False),
                               "template": variant("template", rerun=False)}, warmups=0, runs=bench.heavy_runs)
    outputs = {mode: {p.read_bytes() for p in (bench.work / "out" / mode).glob("*/smail.ini")}
               for mode in ("smail_ini", "template")}
    same = len(outputs["smail_ini"]) == 1 and outputs["smail_ini"] == outputs["template"]
    rerun = interleave(bench, {"smail_ini rerun": variant("smail_ini", rerun=True),
                               "template rerun": variant("template", rerun=True)}, warmups=0, runs=bench.heavy_runs)
    return first, rerun, same


RSS_MAILS = 5


def case_rss(bench: Bench) -> tuple[dict[str, list[int]], dict[str, list[float]]]:
    """Case 6: the peak RSS (KiB) and the wall time (s) of each module process sending one mail, both modules.

    Every run is a loop of RSS_MAILS mails, so each run gives one peak (the largest of its processes) and RSS_MAILS
    process times.
    """
    vars_file = write_vars(bench, "rss", bench_mode="loop", bench_messages=bench_messages("rss", RSS_MAILS),
                           bench_cache_dir=str(bench.work / "cache"))
    peaks: dict[str, list[int]] = {"smail.xoauth2.mail": [], "community.general.mail": []}
    walls: dict[str, list[float]] = {name: [] for name in peaks}
    playbooks = {"smail.xoauth2.mail": "mail_smail.yml", "community.general.mail": "mail_community.yml"}
    for run_number in range(bench.runs):
        for name, playbook in playbooks.items():
            log = bench.work / "logs" / f"rss-{run_number}-{playbook}.jsonl"
            env = bench.env(BENCH_REAL_PYTHON=str(bench.python), BENCH_RSS_LOG=str(log))
            timed_mails(bench, f"rss-{playbook}", playbook_argv(bench, playbook, vars_file, "inventory-rss.ini"),
                        RSS_MAILS, env=env)
            records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
            peaks[name].append(max(record["maxrss_kib"] for record in records))
            walls[name].extend(record["wall_s"] for record in records)
    return peaks, walls


# --- the report -------------------------------------------------------------------------------------------------


def ratio(numerator: Series | None, denominator: Series | None) -> float | None:
    """Return the ratio of two medians, or None when either was not measured."""
    if numerator is None or denominator is None:
        return None
    return numerator.median / denominator.median


def fit_line(points: dict[int, float]) -> tuple[float, float]:
    """Return (fixed seconds, seconds per mail) of the least-squares line through (mails, seconds)."""
    slope, intercept = statistics.linear_regression(list(points), list(points.values()))
    return intercept, slope


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """Return value with `digits` decimals and a suffix, or n/a when it was not measured."""
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def more_or_less(milliseconds: float) -> str:
    """Return a time difference as '12 ms more' or '12 ms less'."""
    return f"{abs(milliseconds):.0f} ms {'more' if milliseconds >= 0 else 'less'}"


def series_table(series: dict[str, Series], *, base: str | None = None) -> list[str]:
    """Return markdown rows: variant, median, the runs, and the ratio to `base`."""
    rows = ["| variant | median s | timed runs (s) | warm-ups | ratio |", "| --- | ---: | --- | ---: | ---: |"]
    for name, one in series.items():
        shown = fmt(ratio(one, series.get(base)), 2, "x") if base else "-"
        runs = ", ".join(f"{seconds:.2f}" for seconds in one.seconds)
        rows.append(f"| {name} | {one.median:.2f} | {runs} | {one.warmups} | {shown} |")
    return rows


def connection_rows(series: dict[str, Series]) -> list[str]:
    """Return markdown rows: variant, the SMTP connections of each run (warm-ups first) and how many ended with QUIT."""
    rows = ["| variant | SMTP connections per run | of which ended with QUIT |", "| --- | --- | --- |"]
    for name, one in series.items():
        if one.connections:
            rows.append(f"| {name} | {', '.join(str(count) for count, _ in one.connections)} | "
                        f"{', '.join(str(quits) for _, quits in one.connections)} |")
    return rows


def target_rows(targets: list[Target]) -> list[str]:
    """Return the markdown rows of the targets table."""
    rows = ["| target | measured | met? |", "| --- | ---: | --- |"]
    rows += [f"| {t.text} | {t.measured} | {t.verdict} |" for t in targets]
    return rows


@dataclass
class Results:
    """Everything measured in one `make bench` run."""

    facts: dict[str, str]
    scaling: dict[int, dict[str, Series]]
    floor: dict[str, Series]
    fleet: Series
    fleet_requests: list[int]
    ini: dict[str, Series]
    ini_rerun: dict[str, Series]
    ini_same: bool
    rss: dict[str, list[int]]
    module_wall: dict[str, list[float]]
    spool: SpoolCases
    batch_unavailable: str | None
    runs: int
    heavy_runs: int
    minutes: float


def render_report(results: Results) -> str:
    """Return docs/performance.md for these results."""
    batch_line = f"\n> `messages` batch cases: {results.batch_unavailable}.\n" if results.batch_unavailable else ""
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (benchmarks/bench.py); do not edit by hand. Reproduce with:",
        "",
        "```sh",
        "make bench            # BENCH_RUNS=5 make bench for more timed runs",
        "```",
        "",
        (f"Ran on {results.facts['date']}: {results.facts['nproc']} CPUs ({results.facts['cpu']}), "
        f"Python {results.facts['python']}, ansible-core {results.facts['ansible_core']}, "
        f"community.general {results.facts['community_general']}."),
        "",
        (f"Load average (1, 5, 15 min) at the start: {results.facts['load_start']}, at the end: "
        f"{results.facts['load_end']}; on a shared machine the absolute times move with it, the ratios of "
        "interleaved runs much less."),
        "",
        (f"Each case: {results.runs} timed runs after its warm-ups (the tables say how many), the variants of a case "
        f"interleaved round by round; the long steps (100 mails, 50 hosts' smail.ini) "
        f"{results.heavy_runs}. The whole run took {results.minutes:.0f} minutes. Times are whole-process wall "
        "times of "
        "`ansible-playbook` (or of the floor script; case 8 times the send core's calls inside one process), "
        "medians in seconds, every task on localhost against the "
        "sandbox (`sandbox/xoauth2_sandbox/`, loopback only), so smail.xoauth2.mail runs in the controller's "
        "worker process unless a variant says otherwise (case 1 says where it runs and why). Every timed run is "
        "checked: the sandbox must have stored exactly the mails sent; its SMTP connections are counted from the "
        "sandbox's `smtp_sessions.jsonl` (one line per ended connection). Targets are reported, not asserted."),
        batch_line,
        "## Targets",
        "",
        *target_rows(targets(results)),
        "",
        *case_sections(results),
    ]
    return "\n".join(lines).rstrip() + "\n"


def targets(results: Results) -> list[Target]:
    """Return the issue's targets with what was measured."""
    at20 = results.scaling[20]
    community = at20["community loop"]
    spool = results.spool
    return [
        ratio_target("1. 20-mail loop on the controller (worker process) / community loop: at most 0.5x",
                     ratio(at20["smail loop"], community), 0.5, aim=0.3),
        ratio_target("2. the same loop forced onto the module process / community loop: at most 1.2x (no regression)",
                     ratio(at20["smail loop (module process)"], community), 1.2),
        ratio_target("3. 20-message `messages` batch / community loop: at most 0.2x",
                     ratio(at20.get("smail batch"), community), 0.2),
        ratio_target("4. 1000-message batch / floor script: at most 1.3x",
                     ratio(results.floor.get("smail batch"), results.floor["floor script"]), 1.3),
        count_target("5. SMTP connections of a 20-item loop on the controller, in every run: exactly 1",
                     [count for count, _ in at20["smail loop"].connections], 1),
        count_target("6. token requests for 50 hosts (forks 20), in every run: exactly 1", results.fleet_requests, 1),
        ratio_target("7. smail_ini / template, a new file on 50 hosts: at most 1.0x",
                     ratio(results.ini["smail_ini"], results.ini["template"]), 1.0),
        ratio_target("8. smail_ini / template, an unchanged rerun on 50 hosts: at most 0.6x",
                     ratio(results.ini_rerun["smail_ini rerun"], results.ini_rerun["template rerun"]), 0.6),
        ratio_target(f"9. {BIG_BATCH}-message batch with `spool_dir` / without (deliver_batch in one process): at most 1.5x",
                     ratio(spool.batch["deliver_batch (spool_dir)"], spool.batch["deliver_batch"]), 1.5),
        extra_ms_target(f"10. one send with {SPOOL_OTHER_FILES} spool files of another account - with an empty spool: "
                        "at most +50 ms", spool_send_extra(spool), 50),
        ratio_target(f"11. flushing {SPOOL_FLUSH} spooled mails / a {SPOOL_FLUSH}-message batch (one process): at most 1.5x",
                     ratio(*spool.flush.values()), 1.5),
    ]


def spool_send_extra(spool: SpoolCases) -> float:
    """Return how much longer (s, medians) a send takes beside the other account's files than with an empty spool."""
    empty, crowded = spool.send.values()
    return crowded.median - empty.median


def case_sections(results: Results) -> list[str]:
    """Return the markdown sections of the eight cases."""
    at20 = results.scaling[20]
    unavailable = f"*smail batch: {results.batch_unavailable}.*" if results.batch_unavailable else ""
    fixed_rows = ["| variant | fixed s | s per mail |", "| --- | ---: | ---: |"]
    lines = {name: fit_line({count: results.scaling[count][name].median for count in results.scaling})
             for name in at20}
    fixed_rows += [f"| {name} | {fixed:.2f} | {per_mail:.3f} |" for name, (fixed, per_mail) in lines.items()]
    growth = ", ".join(f"{name} {per_mail / lines['community loop'][1]:.2f}x" for name, (_, per_mail) in lines.items()
                       if name != "community loop")
    residual = max(abs(results.scaling[count][name].median - (fixed + per_mail * count))
                   for name, (fixed, per_mail) in lines.items() for count in results.scaling)
    fixed_rows += ["", (f"Cost per mail relative to the community loop: {growth}. The largest distance of a median from "
                   f"its line is {residual:.2f} s.")]
    scaling_rows = ["| mails | " + " | ".join(f"{name} s" for name in at20) + " |",
                    "| ---: |" + " ---: |" * len(at20)]
    for count, series in results.scaling.items():
        scaling_rows.append(f"| {count} | " + " | ".join(f"{one.median:.2f}" for one in series.values()) + " |")
    rss = {name: statistics.median(kib) / 1024 for name, kib in results.rss.items()}
    rss_ratio = rss["smail.xoauth2.mail"] / rss["community.general.mail"]
    wall_ms = {name: statistics.median(seconds) * 1000 for name, seconds in results.module_wall.items()}
    module_gap_ms = wall_ms["smail.xoauth2.mail"] - wall_ms["community.general.mail"]
    per_task_ms = {name: at20[name].median / 20 * 1000 for name in at20}
    module_task_gap_ms = per_task_ms["smail loop (module process)"] - per_task_ms["community loop"]
    loops = ("smail loop", "smail loop (module process)", "community loop")
    per_mail_ms = {name: fit_line({count: results.scaling[count][name].median for count in results.scaling})[1] * 1000
                   for name in loops}
    module_spread = max(at20["smail loop (module process)"].seconds) - min(at20["smail loop (module process)"].seconds)
    if module_task_gap_ms <= 0:
        module_share = "and the module path is no slower per task than community.general.mail"
    elif module_gap_ms >= module_task_gap_ms / 2:
        module_share = "so most of that difference is the module process, not the controller"
    else:
        module_share = ("so the module process accounts for little of it: the rest is spent outside it, on the "
                        "controller's side of a module task, or is the noise of a shared machine (the timed runs of "
                        f"that variant spread over {module_spread:.1f} s; per further mail, case 7's line puts the "
                        f"module path at {per_mail_ms['smail loop (module process)']:.0f} ms and "
                        f"community.general.mail at {per_mail_ms['community loop']:.0f} ms)")
    return [
        "## 1. A 20-item loop: smail.xoauth2.mail (XOAUTH2, token cached) vs community.general.mail (PLAIN)",
        "",
        "Both send the same 20 mails over implicit TLS to the sandbox, one task item per mail. community.general.mail",
        "logs in with the account's app password (AUTH PLAIN); note that it does not verify the server certificate",
        "(smtplib.SMTP_SSL without a context) and, with `secure: always`, connects twice per mail (the SMTP_SSL",
        "constructor connects, then its code calls `connect()` again).",
        "",
        ("Where smail.xoauth2.mail runs: every task here runs on the controller (`ansible_connection=local`, the "
         "controller's Python as `ansible_python_interpreter`), and there the `mail` action runs the module's entry "
         "function in the controller's worker process (`plugins/plugin_utils/_in_process.py`): no module process per "
         "item, and the items of a loop share one authenticated SMTP connection (`_smtp_sessions.py`: `RSET` before "
         "each further mail, `QUIT` when the worker ends). That is the `smail loop`. It changes where the module's "
         "code runs, not who connects: on the controller the SMTP connection and the token request originate from "
         "the controller either way, as they already do with `delegate_to: localhost`. On any other host, and with "
         "`become`, `async` or another interpreter, the module still runs as a module process on that host. "
         "`smail loop (module process)` is the same loop forced onto the module process by the controller "
         "environment `SMAIL_XOAUTH2_IN_PROCESS=0` (the variable `smail_xoauth2_in_process: false` on a task, play "
         "or host does the same): the path of a remote host, timed here on the controller."),
        "",
        *series_table({name: at20[name] for name in loops}, base="community loop"),
        "",
        "SMTP connections of each run (warm-up first), from the sandbox's `smtp_sessions.jsonl`:",
        "",
        *connection_rows({name: at20[name] for name in loops}),
        "",
        (f"In the worker process the 20-mail run takes {per_task_ms['smail loop']:.0f} ms a mail, start-up included, "
         f"against community.general.mail's {per_task_ms['community loop']:.0f} ms; each further mail (case 7's line) "
         f"{per_mail_ms['smail loop']:.0f} ms against {per_mail_ms['community loop']:.0f} ms: no AnsiballZ process "
         "to start, and no TLS handshake and login after the first mail. "
         f"On the module path each task takes {more_or_less(module_task_gap_ms)} than community.general.mail's; the "
         f"module process alone takes {more_or_less(module_gap_ms)} (case 6), {module_share}. Under AnsiballZ a "
         "module's "
         "module_utils are imported from a zip that holds no bytecode: Python compiles every file on every task, and "
         "Python's zipimport compiles each one twice (CPython issue 141276, open as of 3.14). smail.xoauth2.mail's "
         "send path (the SMTP session with its retries, the token cache, the message builder, the option specs) is "
         "several times the code of community.general.mail's single file, and compiling it is most of that "
         "difference. Code only some sends need is imported only by them, one package each: the INI files and rotated "
         "tokens (`_ini`), HTML bodies, Japanese mail and the 7bit downgrade (`_mime`), the spool (`_spool`), and "
         "the token endpoint's client with google-auth and requests. On a remote host, for many mails, the `messages` batch of case 2 pays the process "
         "once."),
        "",
        "## 2. The same 20 mails as one `messages` task vs the loop",
        "",
        *(series_table(at20, base="community loop") if "smail batch" in at20 else [unavailable]),
        "",
        "## 3. 1000 messages as one batch vs plain Python (the floor)",
        "",
        "The floor is `benchmarks/floor_smtplib.py`: one google-auth refresh, one connection, AUTH XOAUTH2, smtplib.",
        "`smail batch (spool_dir)` is the same task with `spool_dir` set (case 8 measures the spool more closely).",
        "",
        *series_table(results.floor, base="floor script"),
        *([] if "smail batch" in results.floor else ["", unavailable]),
        "",
        *connection_rows(results.floor),
        "",
        "## 4. Token endpoint requests: 50 hosts each sending a mail (forks 20)",
        "",
        "A cold token cache per run (so no warm-up); requests counted as new lines of the sandbox's",
        "`token_requests.jsonl`.",
        "",
        "| runs | token requests per run | median s |",
        "| ---: | --- | ---: |",
        f"| {len(results.fleet_requests)} | {', '.join(map(str, results.fleet_requests))} | {results.fleet.median:.2f} |",
        "",
        "Each host's task runs in a worker process of its own, so each host makes its own SMTP connection:",
        "",
        *connection_rows({results.fleet.label: results.fleet}),
        "",
        "## 5. smail.xoauth2.smail_ini vs ansible.builtin.template over 50 hosts (forks 20)",
        "",
        ("Each run writes a new smail.ini (cp932, CRLF) per host; "
        f"the two produce the same bytes: {'yes' if results.ini_same else 'NO'}."),
        "",
        *series_table(results.ini, base="template"),
        "",
        "Then each reruns on the files it wrote, changing nothing (checked: every host reports `changed=0`):",
        "",
        *series_table(results.ini_rerun, base="template rerun"),
        "",
        "## 6. Peak memory (RSS) and wall time of the module process, one mail",
        "",
        "Measured by an `ansible_python_interpreter` wrapper (`benchmarks/rss_interpreter.py`) that runs the real",
        "interpreter as its child and records `ru_maxrss` of `resource.getrusage(RUSAGE_CHILDREN)` and the child's",
        "wall time: the AnsiballZ process, module included, without the wrapper itself. Each run is a loop of",
        f"{RSS_MAILS} mails (its peak is the largest of its processes). No warm-up; the token cache is warm. The",
        "wrapper is not the controller's Python, so smail.xoauth2.mail runs as a module process here, as on a remote",
        "host: this case measures that process.",
        "",
        "| module | median peak RSS MiB | runs (MiB) |",
        "| --- | ---: | --- |",
        *(f"| {name} | {rss[name]:.1f} | {', '.join(f'{k / 1024:.1f}' for k in kib)} |"
          for name, kib in results.rss.items()),
        "",
        f"smail.xoauth2.mail / community.general.mail: {rss_ratio:.2f}x.",
        "",
        "| module | median module process ms | processes |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {wall_ms[name]:.0f} | {len(seconds)} |" for name, seconds in results.module_wall.items()),
        "",
        f"smail.xoauth2.mail / community.general.mail: {wall_ms['smail.xoauth2.mail'] / wall_ms['community.general.mail']:.2f}x.",
        "",
        "## 7. Scaling: 5, 20 and 100 mails",
        "",
        "![median seconds by number of mails](performance-scaling.png)",
        "",
        *scaling_rows,
        "",
        "A least-squares line through the three medians splits each variant's cost into a fixed part (start-up,",
        "play, connection) and a part per mail:",
        "",
        *fixed_rows,
        *([] if "smail batch" in at20 else ["", unavailable]),
        "",
        *spool_section(results),
    ]


def spool_section(results: Results) -> list[str]:
    """Return the markdown section of case 8, the spool."""
    spool = results.spool
    playbook = ratio(results.floor.get("smail batch (spool_dir)"), results.floor.get("smail batch"))
    empty, crowded = spool.send.values()
    send_rows = ["| variant | median ms | sends (ms) |", "| --- | ---: | --- |"]
    send_rows += [f"| {one.label} | {one.median * 1000:.1f} | {', '.join(f'{s * 1000:.0f}' for s in one.seconds)} |"
                  for one in (empty, crowded)]
    return [
        "## 8. The spool: `spool_dir` vs the same work without it",
        "",
        ("Measured inside one Python process by `benchmarks/spool_driver.py`, which calls the collection's send core "
         "(`_mailer.deliver_batch`, `_mailer.deliver`, `_mailer.flush_spool`) as the `mail` and `spool` modules do, "
         "without Ansible: the times are of those calls alone (a new connection each, the token cache warm), so the "
         "spool's share is not hidden by the start-up of `ansible-playbook`. Every run is checked as the others are: "
         "the sandbox must have stored exactly the mails it sent. The spool is filled through the spool's own API "
         "(`_spool.Spool(dir).add(...)`, in `spool_one()` of the driver), untimed."),
        "",
        f"### {BIG_BATCH} messages as one batch, without and with `spool_dir` (an empty spool)",
        "",
        *series_table(spool.batch, base=next(iter(spool.batch))),
        "",
        *connection_rows(spool.batch),
        "",
        (f"As whole `ansible-playbook` runs (case 3) the batch with `spool_dir` takes {fmt(playbook, 2, 'x')} the "
         "batch without it."),
        "",
        f"### One send beside {SPOOL_OTHER_FILES} spooled mails of another account",
        "",
        (f"The spool holds {SPOOL_OTHER_FILES} pending mails of another account, spooled once before the runs "
         f"(untimed: {spool.populate_seconds:.1f} s). Each run is one process: a warm-up send, then "
         f"{SPOOL_SEND_REPEAT} timed sends of one mail for the sandbox account; {results.runs} runs of each variant, "
         "interleaved."),
        "",
        *send_rows,
        "",
        (f"Beside the other account's mail a send takes {more_or_less(spool_send_extra(spool) * 1000)} than with an "
         "empty spool (medians)."),
        "",
        f"### Flushing {SPOOL_FLUSH} spooled mails vs a batch of the same {SPOOL_FLUSH} messages",
        "",
        (f"Each flush run first spools the {SPOOL_FLUSH} messages for the sandbox account (untimed), then times one "
         f"`flush_spool`; the batch sends the same messages with `deliver_batch` and no `spool_dir`. "
         f"{results.heavy_runs} rounds, no warm-up."),
        "",
        *series_table(spool.flush, base=list(spool.flush)[1]),
        "",
        *connection_rows(spool.flush),
    ]


def plot_scaling(results: Results, path: Path) -> None:
    """Draw case 7 (median seconds by number of mails, one line per variant) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=110)
    names = list(results.scaling[SCALING_SIZES[0]])
    for name in names:
        counts = list(results.scaling)
        axes.plot(counts, [results.scaling[c][name].median for c in counts], marker="o", label=name)
    axes.set_xlabel("mails")
    axes.set_ylabel("median wall time, s")
    axes.set_title("smail.xoauth2 vs community.general.mail (make bench)")
    axes.grid(True, alpha=0.3)
    axes.legend()
    if results.batch_unavailable:
        axes.text(0.02, 0.96, f"smail batch: {results.batch_unavailable.split(' (')[0]}", transform=axes.transAxes,
                  va="top", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


# --- main -----------------------------------------------------------------------------------------------------


def progress(name: str) -> None:
    print(f"bench: {name}", flush=True)


def run_cases(bench: Bench) -> Results:
    """Run every case against a sandbox of its own and return the results."""
    bench.load_start = load_average()
    started = time.perf_counter()
    process = start_sandbox(bench)
    try:
        probe_batch(bench)
        progress(f"messages batch {bench.batch_unavailable or 'available'}")
        progress("cases 1, 2 and 7 (mail loops and batches at 5, 20, 100 mails)")
        scaling = case_scaling(bench)
        progress("case 3 (1000 messages vs the floor)")
        floor = case_floor(bench)
        progress("case 4 (token requests over 50 hosts)")
        fleet, fleet_requests = case_token_requests(bench)
        progress("case 5 (smail_ini vs template over 50 hosts)")
        ini, ini_rerun, ini_same = case_ini(bench)
        progress("case 6 (peak RSS)")
        rss, module_wall = case_rss(bench)
        progress(f"case 8 (the spool: batches, a send beside {SPOOL_OTHER_FILES} files, a flush of {SPOOL_FLUSH})")
        spool = case_spool(bench)
        info = facts(bench)
    finally:
        stop_sandbox(bench, process)
    return Results(facts=info, scaling=scaling, floor=floor, fleet=fleet, fleet_requests=fleet_requests, ini=ini,
                   ini_rerun=ini_rerun, ini_same=ini_same, rss=rss, module_wall=module_wall,
                   spool=spool,
                   batch_unavailable=bench.batch_unavailable, runs=bench.runs,
                   heavy_runs=bench.heavy_runs, minutes=(time.perf_counter() - started) / 60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-python", type=Path, required=True, help="a Python with aiosmtpd and trustme")
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--collections", type=Path, required=True, help="holds ansible_collections/smail/xoauth2")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True)
    args = parser.parse_args()
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    bench = Bench(repo=HERE.parent, work=args.work_dir.resolve(), python=Path(sys.executable),
                  sandbox_python=args.sandbox_python, collections=args.collections.resolve(),
                  runs=runs, heavy_runs=int(os.environ.get("BENCH_HEAVY_RUNS", min(runs, 2))))
    prepare_work_dir(bench)
    started = time.perf_counter()
    try:
        results = run_cases(bench)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    args.report.write_text(render_report(results), encoding="utf-8")
    plot_scaling(results, args.plot)
    print(f"bench: wrote {args.report} and {args.plot} in {time.perf_counter() - started:.0f} s")
    for target in targets(results):
        print(f"bench: {target.text}: {target.measured} {target.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
