#!/usr/bin/env bash
# The ansible-core matrix of README.md, one line after the other, each through .ci/core_root.sh:
#   2.21  make test (lint sanity units integration) and make demo, Python 3.13 in the Debian 13 root (Dovecot 2.4)
#   2.19  the same, natively (this machine's Python 3.11, Dovecot 2.3)
#   2.20  make demo units sanity, in the Debian 13 root
# Every line runs even when one fails; the times of each line and of the whole run end the output.
set -uo pipefail
cd "$(dirname "$0")/.."

legs=("2.21 demo test" "2.19 demo test" "2.20 demo units sanity")
summary=()
failed=0
start=$SECONDS
for leg in "${legs[@]}"; do
  read -r -a args <<<"$leg"
  leg_start=$SECONDS
  if .ci/core_root.sh "${args[@]}"; then result=ok; else result=FAILED; failed=1; fi
  summary+=("ansible-core ${args[0]} (${args[*]:1}): $result in $((SECONDS - leg_start))s")
done
echo "== matrix"
printf '   %s\n' "${summary[@]}"
echo "   total: $((SECONDS - start))s"
exit $failed
