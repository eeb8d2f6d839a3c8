"""`exec` (rootless/containers.py exec_in): the process that joins a running container must give
the container nothing of the host CLI (DESIGN's security rules; issue 11 item 8, runc CVE-2016-9962).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from enginehelp import stop_warm_servers, wait_for, warm_wanted

pytestmark = [pytest.mark.usefixtures("clean_containers"), pytest.mark.nosubuid]

SECRET = "s3cr3tt0ken4711"

# A hostile container: its /etc/passwd becomes a FIFO, so the exec helper (which reads it to
# resolve the user) waits inside the container's pid namespace for as long as the container
# wants; meanwhile the container reads /proc/PID/environ of every process it sees, then lets it go.
SPY = r"""
rm -f /etc/passwd && mkfifo /etc/passwd && echo ready
exec 3>/etc/passwd
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = 1 ] || [ "$p" = "$$" ] && continue
  c=$(cat "$d/comm" 2>/dev/null)
  if cat "$d/environ" > /tmp/env 2>/dev/null; then r=read; else r=denied; fi
  echo "pid $p comm $c environ $r $(tr '\0' '\n' < /tmp/env | grep -c SECRET_TOKEN)"
  tr '\0' '\n' < /tmp/env | grep SECRET_TOKEN
done
echo 'root:x:0:0:root:/root:/bin/sh' >&3
exec 3>&-
rm -f /etc/passwd
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
echo spied
exec sleep 120
"""


@pytest.mark.parametrize("mode", ["cold", "warm"])
def test_exec_helper_is_not_readable_from_the_container(rl, bb, tmp_path, mode):
    """The container sees the exec helper (same uid, its pid namespace) while it waits on the
    container's FIFO; it must not read its environment (a secret of the CLI's) nor its fds."""
    env = {"SECRET_TOKEN": SECRET}
    if mode == "cold":
        env["ROOTLESS_WARM"] = "0"
    else:
        if not os.environ.get("ROOTLESS_TEST_PYZ") or not warm_wanted():
            pytest.skip("the warm server serves the built .pyz only")
        d = tmp_path / "warm"
        d.mkdir(mode=0o700)
        rl.env["ROOTLESS_WARM_DIR"] = str(d)
        rl.ok("ps", env=env)  # starts a server with the secret in its environment (it is its client's)
        wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(d)), what="the warm server")
    try:
        # CAP_SYS_PTRACE (in the container's user namespace): without it the helper's full set of
        # capabilities there alone keeps the container out (commoncap), dumpable or not
        rl.ok("run", "-d", "--cap-add", "SYS_PTRACE", "--name", "spy", bb, "sh", "-c", SPY)
        wait_for(lambda: "ready" in rl.ok("logs", "spy").stdout, what="the spy to be ready")
        p = subprocess.Popen(rl.argv("exec", "spy", "true"), env=dict(rl.env, **env), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise AssertionError(f"exec hangs; spy's log: {rl('logs', 'spy')}; ps: {rl('top', 'spy')}")
        assert p.returncode == 0, (out, err)
        logs = wait_for(lambda: (lambda o: "spied" in o and o)(rl.ok("logs", "spy").stdout), what="the spy's report")
    finally:
        if mode == "warm":
            stop_warm_servers(str(tmp_path / "warm"))
    helper = [ln for ln in logs.splitlines() if " comm rootless:exec " in ln]
    assert helper, logs  # the attack ran: the container saw the helper
    assert SECRET not in logs, logs
    assert all(" environ denied " in ln for ln in helper), logs
