#!/usr/bin/env bash
# The ansible-core matrix of README.md, one line after the other, each through .ci/core_root.sh:
#   2.22  make demo sanity units integration, Python 3.13 in the Debian 13 root (Dovecot 2.4): the newest line
#   2.19  make demo test (lint sanity units integration), natively (this machine's Python 3.11, Dovecot 2.3): the
#         oldest line, and the one that runs lint (the linters check the files, not the line)
#   2.21, 2.20  make demo units sanity, and the integration targets whose result depends on the line: the
#         in-process parity, the no-secrets targets and the notify callback
# Every line runs even when one fails; the times of each line and of the whole run end the output.
set -uo pipefail
cd "$(dirname "$0")/.."

line_targets="mail_in_process_parity mail_no_secrets no_secrets_anywhere callback_notify"
# Each leg: the ansible-core line, the integration targets (- for all), the suites.
legs=("2.22 - demo sanity units integration"
      "2.19 - demo test"
      "2.21 line demo units sanity integration"
      "2.20 line demo units sanity integration")
summary=()
failed=0
start=$SECONDS
for leg in "${legs[@]}"; do
  read -r -a args <<<"$leg"
  core=${args[0]}
  targets=${args[1]}
  suites=("${args[@]:2}")
  [ "$targets" = - ] && targets="" || targets=$line_targets
  leg_start=$SECONDS
  if TARGETS=$targets .ci/core_root.sh "$core" "${suites[@]}"; then result=ok; else result=FAILED; failed=1; fi
  summary+=("ansible-core $core (${suites[*]}${targets:+; integration: $targets}): $result in $((SECONDS - leg_start))s")
done
echo "== matrix"
printf '   %s\n' "${summary[@]}"
echo "   total: $((SECONDS - start))s"
exit $failed
