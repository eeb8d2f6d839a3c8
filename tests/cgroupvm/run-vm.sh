#!/usr/bin/env bash
# run-vm.sh -- boot ONE cgroup v2 VM and run every test of tests/cgroupvm inside it, as the
# delegated unprivileged test user. Called by tests/run; usable alone (as root):
#
#   tests/cgroupvm/run-vm.sh [--src DIR] [--results DIR] [--only PYTEST_SELECTION]
#
# --src      the tree to test (default: this checkout); shared read-only with the guest
# --results  a host directory shared read-write: the guest writes cgroupvm.xml (junit) and
#            cgroupvm.log there (default: /var/tmp/rootless-cgroupvm-results)
# --only     what the guest's pytest runs instead of all of tests/cgroupvm, e.g.
#            tests/cgroupvm/test_cli_vm.py (one word: a path or node id under the tree)
#
# The guest: virtme-ng (vng) boots the Debian kernel with `cgroup_no_v1=all` under QEMU (TCG where
# KVM is unusable), the host's / shared read-only (with tmpfs overlays on /etc /var /tmp /home
# ..., so /var/tmp is EMPTY in the guest: the tree and the results dir are passed with
# --rodir/--rwdir). tests/cgroupvm/guest.sh sets up delegation and runs pytest.
#
# Exit status: 0 = passed, or skipped with a stated reason (no qemu, no kernel, no virtme-ng;
# a junit file with one skipped test says why); else the guest's pytest status (124/137 timeout).
# Environment: ROOTLESS_CGROUPVM_SKIP=1 skips; CGROUPVM_ACCEL=kvm|tcg; ROOTLESS_CGROUPVM_CACHE
# (default /var/tmp/cgroupvm, the same cache as ../shared/tools/cgroupvm/run-vng.sh).
# Approach and figures: ../shared/tools/cgroupvm/README.md (recipe this script follows).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$here/../.." && pwd)
RESULTS=/var/tmp/rootless-cgroupvm-results
ONLY=tests/cgroupvm
while [ $# -gt 0 ]; do
  case $1 in
    --src) SRC=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "run-vm.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
CACHE=${ROOTLESS_CGROUPVM_CACHE:-/var/tmp/cgroupvm}
VNG_VERSION=1.42
MEM=${CGROUPVM_MEM:-1G}
CPUS=${CGROUPVM_CPUS:-2}
mkdir -p "$RESULTS"
chmod 1777 "$RESULTS" 2>/dev/null || true
rm -f "$RESULTS/cgroupvm.xml" "$RESULTS/cgroupvm.log"

log() { echo "[cgroupvm] $*" >&2; }

skip() {  # reason: say it, and leave a junit file with one skipped test that carries it
  log "SKIPPED: $*"
  python3 - "$RESULTS/cgroupvm.xml" "$*" <<'PY'
import sys
from xml.sax.saxutils import quoteattr
reason = quoteattr(sys.argv[2])
with open(sys.argv[1], "w") as f:
    f.write('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="cgroupvm" tests="1" '
            'failures="0" errors="0" skipped="1"><testcase classname="tests.cgroupvm" name="vm_boot">'
            f'<skipped type="pytest.skip" message={reason}/></testcase></testsuite></testsuites>\n')
PY
  exit 0
}

[ -n "${ROOTLESS_CGROUPVM_SKIP:-}" ] && skip "ROOTLESS_CGROUPVM_SKIP is set"
[ "$(id -u)" = 0 ] || skip "needs root (runs from tests/run) to boot the VM"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found (apt-get install qemu-system-x86; tests/setup-host.sh does)"
for t in depmod dpkg-deb apt-get; do command -v $t >/dev/null || skip "$t not found (apt-get install kmod dpkg apt)"; done
[ -x /usr/lib/systemd/systemd-udevd ] || [ -x /lib/systemd/systemd-udevd ] \
  || skip "systemd-udevd not found: without it virtme-ng loses the guest's exit status (apt-get install udev)"
id "${ROOTLESS_TEST_USER:-rltuser}" >/dev/null 2>&1 || skip "test user ${ROOTLESS_TEST_USER:-rltuser} missing (tests/setup-host.sh creates it)"

# The Debian kernel, once: resolve the exact ABI package (a glob would fetch every flavour).
mkdir -p "$CACHE/debs"
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}' || true)
[ -n "$pkg" ] || pkg=$(cd "$CACHE/kroot/boot" 2>/dev/null && ls vmlinuz-* 2>/dev/null | head -1 | sed 's/^vmlinuz-/linux-image-/' || true)
[ -n "$pkg" ] || skip "cannot resolve the Debian kernel package (apt-cache depends linux-image-amd64 gave nothing; run apt-get update)"
KVER=${pkg#linux-image-}
VMLINUZ=$CACHE/kroot/boot/vmlinuz-$KVER
if [ ! -f "$VMLINUZ" ]; then
  deb=$(ls "$CACHE"/debs/"${pkg}"_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    log "apt-get download $pkg (about 70 MB, once)"
    (cd "$CACHE/debs" && apt-get download -q "$pkg" >&2) || skip "apt-get download $pkg failed (no package mirror?)"
    deb=$(ls "$CACHE"/debs/"${pkg}"_*.deb | head -1)
  fi
  mkdir -p "$CACHE/kroot" && dpkg-deb -x "$deb" "$CACHE/kroot"
fi
[ -f "$CACHE/kroot/lib/modules/$KVER/modules.dep" ] || depmod -b "$CACHE/kroot" "$KVER"

if [ ! -x "$CACHE/venv/bin/vng" ]; then
  log "pip install virtme-ng==$VNG_VERSION into $CACHE/venv (once)"
  { python3 -m venv "$CACHE/venv" && "$CACHE/venv/bin/pip" install -q "virtme-ng==$VNG_VERSION" >&2; } \
    || skip "cannot install virtme-ng==$VNG_VERSION from PyPI into $CACHE/venv"
fi

# This host's /dev/kvm may be kvm_pvm, under which a stock kernel crawls (see the recipe): TCG then.
accel=${CGROUPVM_ACCEL:-auto}
if [ "$accel" = auto ]; then
  if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=kvm; else accel=tcg; fi
fi
args=(-r "$VMLINUZ" -m "$MEM" -p "$CPUS" -a cgroup_no_v1=all -a loglevel=3
      --rodir "$SRC" --rwdir "$RESULTS" --cwd / -e "sh $SRC/tests/cgroupvm/guest.sh $SRC $RESULTS $ONLY")
[ "$accel" = tcg ] && args=(--disable-kvm "${args[@]}")
[ -n "${CGROUPVM_VERBOSE:-}" ] && args=(-v "${args[@]}")

log "booting kernel $KVER (accel=$accel, mem=$MEM, cpus=$CPUS); tests run inside as ${ROOTLESS_TEST_USER:-rltuser}"
start=$(date +%s.%N)
set +e
PATH=$CACHE/venv/bin:$PATH timeout -s KILL "${ROOTLESS_CGROUPVM_HOST_TIMEOUT:-480}" vng "${args[@]}" </dev/null
rc=$?
set -e
end=$(date +%s.%N)
log "guest exit status $rc, wall time $(python3 -c "print(round($end - $start, 1))") s"
if [ ! -s "$RESULTS/cgroupvm.xml" ]; then
  log "FAILED: no junit results came back from the guest (status $rc)"
  [ "$rc" = 0 ] && rc=1
fi
exit $rc
