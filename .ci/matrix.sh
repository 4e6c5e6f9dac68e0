#!/usr/bin/env bash
# The ansible-core matrix of README.md, each line through .ci/core_root.sh:
#   2.22  make demo sanity units docs-tests integration, Python 3.13 in the Debian 13 root (Dovecot 2.4): the newest
#         line, where the getting-started guide runs too (ansible-core's own secret masking is new in it)
#   2.19  make demo test (lint sanity units docs-tests sandbox-tests integration), natively (this machine's Python
#         3.11, Dovecot 2.3): the oldest line, and the one that runs lint and the sandbox's own tests (the linters
#         check the files, and the sandbox runs beside the controller without ansible-core: neither depends on the
#         line), and the getting-started guide as written (its ansible runs against a sandbox)
#   2.21, 2.20  make demo units sanity, and the integration targets whose result depends on the line: the
#         in-process parity, the no-secrets targets and the notify callback
# The two newest and oldest lines run one after the other; then 2.21 and 2.20 side by side (each with its own copy of
# the checkout, venv, sandbox and Dovecot in the root), their output kept in .build/matrix/CORE.log and printed when
# both are done. Every line runs even when one fails; the times of each line and of the whole run end the output.
set -uo pipefail
cd "$(dirname "$0")/.."

line_targets="mail_in_process_parity mail_no_secrets no_secrets_anywhere callback_notify"
logs=.build/matrix
mkdir -p "$logs"
summary=()
failed=0
start=$SECONDS

# run_leg CORE TARGETS SUITE...: one line; TARGETS empty for every integration target.
run_leg() {
  local core=$1 targets=$2 leg_start=$SECONDS result
  shift 2
  if TARGETS=$targets .ci/core_root.sh "$core" "$@"; then result=ok; else result=FAILED; fi
  echo "ansible-core $core ($*${targets:+; integration: $targets}): $result in $((SECONDS - leg_start))s" > "$logs/$core.result"
  [ $result = ok ]
}

for leg in "2.22 demo sanity units docs-tests integration" "2.19 demo test"; do
  read -r -a args <<<"$leg"
  run_leg "${args[0]}" "" "${args[@]:1}" || failed=1
  summary+=("$(cat "$logs/${args[0]}.result")")
done

pids=()
for core in 2.21 2.20; do
  run_leg "$core" "$line_targets" demo units sanity integration > "$logs/$core.log" 2>&1 &
  pids+=($!)
done
for index in "${!pids[@]}"; do
  wait "${pids[index]}" || failed=1
done
for core in 2.21 2.20; do
  echo "== ansible-core $core (ran side by side; its output from $logs/$core.log)"
  cat "$logs/$core.log"
  summary+=("$(cat "$logs/$core.result")")
done

echo "== matrix"
printf '   %s\n' "${summary[@]}"
echo "   total: $((SECONDS - start))s"
exit $failed
