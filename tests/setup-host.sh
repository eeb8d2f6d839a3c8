#!/usr/bin/env bash
# Prepare a Debian 12 machine for the test suite. Idempotent; needs root.
# - apt packages the tests use (host tools of the product, the registry, skopeo, busybox-static)
# - a world-readable virtual environment with the Python packages of requirements/test.txt
# - two unprivileged users: rltuser (with /etc/subuid and /etc/subgid ranges) and rltnosub (none)
# - /dev/net/tun and /dev/fuse mode 0666, as udev makes them on a normal host
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${ROOTLESS_TEST_VENV:-/opt/rootless-test-venv}
TEST_USER=${ROOTLESS_TEST_USER:-rltuser}
NOSUB_USER=${ROOTLESS_TEST_NOSUB_USER:-rltnosub}

if [ "$(id -u)" != 0 ]; then
  echo "error: tests/setup-host.sh must run as root (it installs packages and creates test users)" >&2
  echo "hint: run it with sudo" >&2
  exit 1
fi

PKGS=(uidmap slirp4netns fuse-overlayfs fuse3 docker-registry skopeo busybox-static iproute2 crun
      nftables python3 python3-venv python3-pip zstd attr openssl apache2-utils ca-certificates
      procps util-linux psmisc
      # a C compiler: the static seccomp probe (tests/fixtures/seccomp_probe.py), the hostile NSS
      # module and the static racer (tests/fixtures/hostile_cfs.py)
      gcc libc6-dev
      # the reference the rootfs is compared with (tests/storage/test_rootfs_podman.py)
      podman
      # the cgroup v2 VM (tests/cgroupvm): qemu, depmod for the guest kernel's modules, and udev,
      # without which virtme-ng loses the guest command's output and exit status
      qemu-system-x86 kmod udev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-registry's package starts a service on :5000 where an init system runs; the tests start
# their own instances on free loopback ports and need none.
if pidof docker-registry >/dev/null 2>&1 && [ -x /etc/init.d/docker-registry ]; then
  /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi

# The virtual environment: world-readable, built from Debian's python3 (root's own python3 may
# live under /root, which the test users cannot read).
stamp="$VENV/.requirements.sha256"
want=$(cat "$here/requirements/test.txt" "$here/requirements/vendor.txt" | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: preparing $VENV"
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$here/requirements/test.txt" 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }
  echo "$want" > "$stamp"
fi
chmod -R a+rX "$VENV"

# Test users.
add_user() {
  id "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$1"
}
add_user "$TEST_USER"
add_user "$NOSUB_USER"
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  grep -q "^$TEST_USER:" "$f" || echo "$TEST_USER:200000:65536" >> "$f"
  sed -i "/^$NOSUB_USER:/d; /^$(id -u "$NOSUB_USER"):/d" "$f"
done

# What udev would do on a normal host.
for dev in /dev/net/tun /dev/fuse; do
  [ -e "$dev" ] && chmod 0666 "$dev"
done
echo "setup: ok (venv $VENV, users $TEST_USER and $NOSUB_USER)"
