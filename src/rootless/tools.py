"""The one door to host binaries (DESIGN.md, house style 3).

``run()`` takes argv as a list (never a shell), gives the tool /dev/null as stdin unless told
otherwise, captures stderr, always checks the exit status, and raises a ToolError that names the
argv, the status, the tail of stderr and a hint. Typed wrappers for each tool live next to the code
that uses them and call ``run()`` or ``spawn()``; nothing else calls subprocess on a host tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Dict, List, Mapping, Optional, Sequence

from rootless.errors import ToolError
from rootless.value import Value

# Which Debian package ships each tool: the hint for a missing one.
PACKAGES: Dict[str, str] = {
    "newuidmap": "uidmap",
    "newgidmap": "uidmap",
    "slirp4netns": "slirp4netns",
    "fuse-overlayfs": "fuse-overlayfs",
    "ip": "iproute2",
    "nft": "nftables",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "zstd": "zstd",
    "crun": "crun",
    "runc": "runc",
}

# Extra directories searched after $PATH: setuid helpers live in /usr/bin, but ip and nft live in
# /usr/sbin, which is not on an unprivileged user's PATH on Debian.
_EXTRA_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")


def which(name: str, path: Optional[str] = None) -> Optional[str]:
    """The absolute path of tool ``name`` (an absolute name is checked as it is)."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    found = shutil.which(name, path=path)
    if found:
        return found
    for d in _EXTRA_DIRS:
        candidate = os.path.join(d, name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def require(name: str) -> str:
    """Like ``which`` but raises a ToolError with the package to install."""
    found = which(name)
    if found is None:
        pkg = PACKAGES.get(name)
        hint = f"install it (Debian/Ubuntu: `apt-get install {pkg}`)" if pkg else "install it or put it on PATH"
        raise ToolError(f"find host tool `{name}`: not found on PATH", hint)
    return found


class Result(Value):
    __slots__ = ("argv", "returncode", "stdout", "stderr")
    argv: Sequence[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    def __init__(self, argv: Sequence[str], returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def _tail(data: bytes, lines: int = 5) -> str:
    text = data.decode("utf-8", "replace").strip()
    return "\n".join(text.splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    hint: Optional[str] = None,
    input: Optional[bytes] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = 60,
    check: bool = True,
    what: Optional[str] = None,
    through: Sequence[str] = (),
) -> Result:
    """Run a host tool to completion and check how it ended.

    ``through`` is a launcher that runs the tool (``nsenter -t PID -n``, ``ip netns exec NS``):
    the tool is found here, by ``which`` (so /usr/sbin counts when it is not on PATH), and the
    launcher gets its absolute path, since the launcher's own PATH search would miss it.
    """
    argv = list(argv)
    exe = require(argv[0])
    argv_run = [exe] + argv[1:]
    if through:
        argv_run = [require(through[0])] + list(through[1:]) + argv_run
    label = what or f"run `{' '.join(list(through) + argv)}`"
    try:
        proc = subprocess.run(
            argv_run,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"{label}: no answer after {timeout:g} s", hint)
    except OSError as e:
        raise ToolError(f"{label}: {e.strerror}", hint)
    if check and proc.returncode != 0:
        tail = _tail(proc.stderr) or _tail(proc.stdout)
        status = f"exit status {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
        msg = f"{label}: {status}" + (f": {tail}" if tail else "")
        raise ToolError(msg, hint)
    return Result(argv_run, proc.returncode, proc.stdout, proc.stderr)


def spawn(
    argv: Sequence[str],
    *,
    stdin: int = subprocess.DEVNULL,
    stdout: Optional[int] = subprocess.DEVNULL,
    stderr: Optional[int] = subprocess.PIPE,
    pass_fds: Sequence[int] = (),
    env: Optional[Mapping[str, str]] = None,
    hint: Optional[str] = None,
    start_new_session: bool = False,
) -> subprocess.Popen:
    """Start a long-running host tool (slirp4netns, fuse-overlayfs) and return its Popen.

    The caller must later call ``check_exited()`` or ``wait_checked()`` so the status is checked.
    """
    argv = list(argv)
    exe = require(argv[0])
    try:
        return subprocess.Popen(
            [exe] + argv[1:],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=tuple(pass_fds),
            env=dict(env) if env is not None else None,
            close_fds=True,
            start_new_session=start_new_session,
        )
    except OSError as e:
        raise ToolError(f"start `{' '.join(argv)}`: {e.strerror}", hint)


def wait_checked(proc: subprocess.Popen, *, what: str, hint: Optional[str] = None, timeout: Optional[float] = None) -> None:
    """Wait for a spawned tool and raise if it failed."""
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{what}: no answer after {timeout:g} s", hint)
    if rc != 0:
        err = b""
        if proc.stderr is not None:
            try:
                err = proc.stderr.read() or b""
            except (OSError, ValueError):
                err = b""
        tail = _tail(err)
        raise ToolError(f"{what}: exit status {rc}" + (f": {tail}" if tail else ""), hint)


def version(name: str) -> Optional[str]:
    """The first line a tool prints for --version, or None when missing or silent."""
    exe = which(name)
    if exe is None:
        return None
    try:
        res = run([exe, "--version"], check=False, timeout=5)
    except ToolError:
        return None
    lines = (res.stdout or res.stderr).decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return "unknown version"
    # fuse-overlayfs prints fusermount's version first: prefer the line that names the tool
    base = os.path.basename(exe)
    return next((ln.strip() for ln in lines if ln.startswith(base)), lines[0].strip())


def tool_versions(names: List[str]) -> Dict[str, Optional[str]]:
    return {n: version(n) for n in names}
