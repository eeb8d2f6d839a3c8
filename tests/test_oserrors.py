"""A full disk, a file size limit, a read-only folder, nesting too deep: `error:` + `hint:` saying
what happened and what to do, never "internal error ... a bug in rootless" (issue 11, Low items)."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess

import pytest

from rootless import oserrors


def _cold(rl, *args, preexec=None, wrap=()):
    """Run the CLI in its own process (not through the warm server, whose limits are its own)."""
    env = dict(rl.env, ROOTLESS_WARM="0")
    p = subprocess.run(list(wrap) + rl.argv(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=120, preexec_fn=preexec)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def _no_bug(err: str) -> None:
    assert "internal error" not in err and "a bug in rootless" not in err and "Traceback" not in err, err


def test_file_size_limit_is_efbig_with_a_hint(rl):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))  # Python ignores SIGXFSZ: write() gets EFBIG

    code, _, err = _cold(rl, "network", "create", "big", preexec=limit)
    _no_bug(err)
    assert code == 125, err
    assert "error: write `" in err and ": file too large" in err, err
    assert "hint: " in err and "ulimit -f" in err, err


def test_read_only_data_root_is_eacces_with_a_hint(rl):
    os.makedirs(rl.data_root, mode=0o700)
    os.chmod(rl.data_root, 0o500)
    try:
        code, _, err = _cold(rl, "network", "create", "ro")
    finally:
        os.chmod(rl.data_root, 0o700)
    _no_bug(err)
    assert code == 125, err
    assert f"`{rl.data_root}/networks`: permission denied" in err, err
    assert "hint: check the owner and permissions" in err, err


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_full_disk_is_enospc_with_a_hint(rl):
    """data-root on a 16 KiB tmpfs, filled: a tmpfs can be mounted in a user + mount namespace."""
    data = rl.env["XDG_DATA_HOME"]
    os.makedirs(data, exist_ok=True)
    probe = subprocess.run(["unshare", "-rm", "true"], stderr=subprocess.PIPE)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are off: {probe.stderr.decode().strip()}")
    script = (f'mount -t tmpfs -o size=16k none "{data}" && (head -c 1000000 /dev/zero > "{data}/fill"; true) '
              '&& exec "$@"')
    code, _, err = _cold(rl, "network", "create", "full", wrap=["unshare", "-rm", "sh", "-c", script, "sh"])
    _no_bug(err)
    assert code == 125, err
    assert ": no space left on device" in err and "error: " in err, err
    assert "hint: free space on the filesystem of" in err and "data-root" in err, err


def test_deeply_nested_toml_config_is_refused_clearly(rl):
    rl.write_config("a = " + "[" * 100000 + "]" * 100000 + "\n")
    code, _, err = _cold(rl, "ps")
    _no_bug(err)
    assert code != 0 and "error: " in err and "hint: " in err, err


def test_explain_maps_known_errors_only():
    e = oserrors.explain(OSError(errno.ENOSPC, "No space left on device", "/d/x"))
    assert e.message == "write `/d/x`: no space left on device" and "/d/x" in e.hint
    e = oserrors.explain(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert e.message == "write: disk quota exceeded" and e.hint
    assert oserrors.explain(RecursionError("maximum recursion depth exceeded")).hint
    assert oserrors.explain(OSError(errno.EBADF, "Bad file descriptor")) is None
    assert oserrors.explain(KeyError("x")) is None
