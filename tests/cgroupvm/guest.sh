#!/bin/sh
# guest.sh SRC RESULTS [SELECTION] -- runs INSIDE the cgroup v2 VM as root (started by run-vm.sh).
#
# 1. Delegates a cgroup subtree to the test user the way systemd's `Delegate=` does for
#    user@UID.service: controllers enabled down to user-UID.slice, user@UID.service created and
#    the directory plus cgroup.procs, cgroup.subtree_control and cgroup.threads chowned to UID.
#    Delegated: cpu io memory pids (not cpuset, like systemd's default for user@.service, so the
#    "controller not delegated" error is tested too).
# 2. Starts pytest as that user inside the delegated cgroup, on tests/cgroupvm only, and copies
#    its junit XML and output to RESULTS (a host directory shared read-write).
# Exit status: pytest's.
# POSIX sh. Based on ../shared/tools/cgroupvm/guest-cgroup-test.sh.

SRC=$1
RESULTS=$2
SELECTION=${3:-tests/cgroupvm}
TEST_USER=${ROOTLESS_TEST_USER:-rltuser}
VENV=${ROOTLESS_TEST_VENV:-/opt/rootless-test-venv}
CG=/sys/fs/cgroup
U=$(id -u "$TEST_USER") || { echo "[guest] no user $TEST_USER"; exit 90; }
G=$(id -g "$TEST_USER")
HOMEDIR=$(getent passwd "$TEST_USER" | cut -d: -f6)
DELEG=$CG/user.slice/user-$U.slice/user@$U.service
CTRL="+cpu +io +memory +pids"

read up _ < /proc/uptime
echo "[guest] boot-to-command: ${up}s, kernel $(uname -r)"
if [ "$(stat -f -c %T $CG 2>/dev/null)" != cgroup2fs ]; then
    mkdir -p $CG && mount -t cgroup2 -o nsdelegate cgroup2 $CG || { echo "[guest] cannot mount cgroup2"; exit 91; }
fi
echo "[guest] cgroup2 controllers: $(cat $CG/cgroup.controllers)"
mkdir -p $CG/user.slice/user-$U.slice $DELEG
for d in $CG $CG/user.slice $CG/user.slice/user-$U.slice; do
    echo "$CTRL" > $d/cgroup.subtree_control || { echo "[guest] cannot enable $CTRL in $d"; exit 92; }
done
chown "$U:$G" $DELEG $DELEG/cgroup.procs $DELEG/cgroup.subtree_control $DELEG/cgroup.threads
echo "[guest] delegated $DELEG to $TEST_USER ($U): $(cat $DELEG/cgroup.controllers)"
# For the test that runs a user systemd beside the engine: `systemd --user` refuses to start
# unless the system "was booted with systemd" (sd_booted(): /run/systemd/system exists), and it
# wants its runtime directory.
mkdir -p /run/systemd/system /run/user/$U && chown "$U:$G" /run/user/$U && chmod 700 /run/user/$U

# The user process starts in the delegated cgroup itself (an "internal process"): the module under
# test must move it into a leaf before it enables controllers there.
cd "$SRC" || exit 93
{
    sh -c "echo \$\$ > $DELEG/cgroup.procs; exec setpriv --reuid=$U --regid=$G --clear-groups \
        env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=$HOMEDIR USER=$TEST_USER LANG=C.UTF-8 \
            PYTHONDONTWRITEBYTECODE=1 ROOTLESS_CGROUPVM=1 XDG_RUNTIME_DIR=/run/user/$U \
            timeout -s KILL ${ROOTLESS_CGROUPVM_TIMEOUT:-360} \
            $VENV/bin/python -m pytest -p no:cacheprovider -v -rs --durations=8 -m cgroupvm \
                --junitxml=/tmp/cgroupvm.xml --basetemp=/tmp/rootless-pytest-cgroupvm $SELECTION" 2>&1
    echo $? > /tmp/cgroupvm.rc
} | tee /tmp/cgroupvm.log
rc=$(cat /tmp/cgroupvm.rc)
read up _ < /proc/uptime
echo "[guest] pytest exit status $rc, guest uptime ${up}s"
if [ -d "$RESULTS" ]; then
    cp /tmp/cgroupvm.log "$RESULTS/cgroupvm.log" 2>/dev/null
    if [ -f /tmp/cgroupvm.xml ]; then
        cp /tmp/cgroupvm.xml "$RESULTS/cgroupvm.xml" || echo "[guest] cannot copy the junit xml to $RESULTS"
    fi
fi
exit "$rc"
