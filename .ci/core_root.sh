#!/usr/bin/env bash
# Run make suites on one ansible-core line: .ci/core_root.sh CORE [SUITE...]   (CORE: 2.19, 2.20, 2.21 or 2.22)
#
# SUITE is a make target (demo, units, docs-tests, sandbox-tests, sanity, integration, lint; `test` means lint sanity
# units docs-tests sandbox-tests integration); each runs on its own, so one failure does not hide the others, and a
# table of results and times ends the run.
# When this machine's python3 is new enough for CORE, the suites run here, with a venv and build directory of
# their own under .build/cores/CORE. Otherwise they run in a Debian 13 (trixie, Python 3.13, Dovecot 2.4) root made
# with mmdebstrap under .build/roots/trixie (CORE_ROOT overrides it), on a fresh copy of this checkout's files; the
# root's venvs (/venvs/CORE) are kept between runs. The root's mounts live in a mount namespace of their own, so
# they end with this script even if it is killed, and are unmounted on every exit.
set -euo pipefail

checkout=$(cd "$(dirname "$0")/.." && pwd)
core=${1:?usage: .ci/core_root.sh CORE [SUITE...]}
shift
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(demo units sanity integration lint)
expanded=()
for suite in "${suites[@]}"; do
  if [ "$suite" = test ]; then expanded+=(lint sanity units docs-tests sandbox-tests integration); else expanded+=("$suite"); fi
done
root=${CORE_ROOT:-$checkout/.build/roots/trixie}
# mount: the full-disk case of the mail_spool_queue target mounts a small tmpfs of its own.
packages=python3,python3-venv,python3-pip,ca-certificates,git,make,dovecot-core,dovecot-submissiond,procps,openssl,openssh-client,mount

# The oldest controller Python of each line (ansible-core's python_requires).
case $core in
  2.19) min_python=3.11 ;;
  2.20 | 2.21) min_python=3.12 ;;
  2.22) min_python=3.13 ;;
  *) echo "core_root.sh: unknown ansible-core line $core (2.19, 2.20, 2.21 or 2.22)" >&2; exit 2 ;;
esac

python_at_least() {
  "$1" -c 'import sys; sys.exit(sys.version_info[:2] < tuple(map(int, sys.argv[1].split("."))))' "$2" 2>/dev/null
}

# Runs each suite with `make -C DIR VARS... SUITE`, prints the table; returns 1 when a suite failed.
run_suites() {
  local dir=$1 label=$2
  shift 2
  local results=() failed=0 suite start rc
  for suite in "${expanded[@]}"; do
    start=$SECONDS
    rc=0
    make --no-print-directory -C "$dir" "$@" "$suite" || rc=$?
    if [ $rc -eq 0 ]; then results+=("$suite ok $((SECONDS - start))s"); else results+=("$suite FAILED(rc=$rc) $((SECONDS - start))s"); failed=1; fi
  done
  echo "== test-core $label"
  printf '   %s\n' "${results[@]}"
  return $failed
}

if python_at_least python3 "$min_python"; then
  work=$checkout/.build/cores/$core
  version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  run_suites "$checkout" "ansible-core $core, Python $version (native)" \
    VENV="$work/venv" BUILD="$work/build" CORE="$core"
  exit
fi

if [ -z "${_CORE_ROOT_NAMESPACE:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "core_root.sh: python3 is older than $min_python and a root needs root" >&2; exit 1; }
  # A root made with another package list is made again.
  if [ -x "$root/usr/bin/python3" ] && [ "$(cat "$root/.smail-packages" 2>/dev/null)" != "$packages" ]; then
    echo "== test-core: the root $root has other packages; making it again"
    rm -rf "$root"
  fi
  if [ ! -x "$root/usr/bin/python3" ]; then
    command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; }
    echo "== test-core: making the Debian 13 root $root"
    rm -rf "$root.tmp"
    mkdir -p "$(dirname "$root")"
    mmdebstrap --quiet --variant=apt --include="$packages" trixie "$root.tmp"
    echo "$packages" > "$root.tmp/.smail-packages"
    mv "$root.tmp" "$root"
  fi
  exec unshare --mount --propagation private env _CORE_ROOT_NAMESPACE=1 "$0" "$core" "${suites[@]}"
fi

# In the private mount namespace from here on.
mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -R "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true; done
}
trap cleanup EXIT

mount_into_root() { # mount_into_root SOURCE [ro]: bind SOURCE at the same path in the root
  mkdir -p "$root$1"
  mount --rbind "$1" "$root$1"
  mounts+=("$root$1")
  if [ "${2:-}" = ro ]; then mount -o remount,bind,ro "$root$1"; fi
}

mount -t proc proc "$root/proc"
mounts+=("$root/proc")
[ -e "$root/etc/mtab" ] || ln -sf ../proc/self/mounts "$root/etc/mtab"  # doveconf reads it (-f: lines run side by side)
mount_into_root /dev
# The package index and wheel folders that the pip configuration names (large: bound read-only, never copied).
pip_folders=$(cat /etc/pip.conf "$HOME/.config/pip/pip.conf" 2>/dev/null | grep -oE 'file://[^ ]+' | sed -E 's|^file://||; s|/simple/?$||' || true)
for folder in ${PIP_FIND_LINKS:-} $pip_folders; do
  [ -d "$folder" ] && mount_into_root "$folder" ro
done
# Name resolution and the pip configuration, with the CA bundle pip is told to trust.
cp /etc/resolv.conf "$root/etc/resolv.conf"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
if [ -f "$HOME/.config/pip/pip.conf" ]; then
  mkdir -p "$root/root/.config/pip"
  cp "$HOME/.config/pip/pip.conf" "$root/root/.config/pip/pip.conf"
fi
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  mkdir -p "$root$(dirname "$PIP_CERT")"
  cp "$PIP_CERT" "$root$PIP_CERT"
fi

# A fresh copy of the checkout's files (what `make build` would take), with an index of its own for git ls-files.
src=/work/core-$core  # one per line, so that lines can run side by side
rm -rf "${root:?}$src"
mkdir -p "$root$src"
git -C "$checkout" ls-files -z --cached --others --exclude-standard \
  | tar -C "$checkout" --null --files-from=- --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$root$src"
git -C "$root$src" init -q
git -C "$root$src" add -A

env_vars=(HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb)
for name in PIP_CERT PIP_FIND_LINKS PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK PIP_INDEX_URL PIP_EXTRA_INDEX_URL TARGETS; do
  [ -n "${!name:-}" ] && env_vars+=("$name=${!name}")
done
version=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
dovecot=$(chroot "$root" /usr/sbin/dovecot --version | cut -d' ' -f1)

# run_suites calls make in the root through this wrapper.
make() { chroot "$root" env -i "${env_vars[@]}" make "$@"; }
run_suites "$src" "ansible-core $core, Python $version, Dovecot $dovecot (Debian 13 root)" VENV="/venvs/$core" CORE="$core"
