"""rootless runtime: the OCI runtime command line (runc's and crun's create/start/state/kill/delete/run).

    rootless runtime [--root DIR] create [--bundle DIR] [--pid-file F] [--console-socket S] ID
    rootless runtime start ID
    rootless runtime state ID
    rootless runtime kill ID [SIGNAL]
    rootless runtime delete [--force] ID
    rootless runtime run [--bundle DIR] [--pid-file F] [--detach] ID
    rootless runtime list

The state store and the operations are in rootless/runtime/ocistate.py; this module parses,
relays the terminal of a foreground run, and prints.
"""

from __future__ import annotations

import json
import os
import stat
import sys

from rootless.errors import UsageError
from rootless.procs import parse_signal


def add_arguments(p) -> None:
    p.add_argument("--root", help="Directory for the containers' state (default: EXEC_ROOT/runtime)")
    p.add_argument("--log", help="Ignored (accepted for compatibility with runc's command line)")
    p.add_argument("--log-format", help="Ignored (accepted for compatibility)")
    p.add_argument("--systemd-cgroup", action="store_true", help="Ignored (accepted for compatibility)")
    sub = p.add_subparsers(dest="action", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser("create", help="Create a container from a bundle; it waits for `start`")
    _bundle_args(c)
    c.add_argument("--console-socket", help="Unix socket that receives the pty master (process.terminal)")
    c.add_argument("id")
    s = sub.add_parser("start", help="Start a created container")
    s.add_argument("id")
    st = sub.add_parser("state", help="Print the state of a container as JSON")
    st.add_argument("id")
    k = sub.add_parser("kill", help="Send a signal (default SIGTERM) to a container's init")
    k.add_argument("--all", "-a", action="store_true", help="Ignored: the container's pid namespace ends with its init")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete", help="Delete a stopped container (--force: kill it first)")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    r = sub.add_parser("run", help="Create and start a container, wait for it, delete it")
    _bundle_args(r)
    r.add_argument("--detach", "-d", action="store_true", help="Do not wait: leave it running")
    r.add_argument("--keep", action="store_true", help="Do not delete the container when it exits")
    r.add_argument("id")
    sub.add_parser("list", help="List the containers")


def _bundle_args(p) -> None:
    p.add_argument("--bundle", "-b", default=".", help="Path to the bundle (config.json and the rootfs)")
    p.add_argument("--pid-file", help="Write the container init's pid to this file")


def main(args, ctx) -> int:
    from rootless.runtime import ocistate

    root = os.path.abspath(args.root) if args.root else os.path.join(ctx.config.exec_root, "runtime")
    store = ocistate.Store(root)
    action = args.action
    if action == "list":
        return _list(store)
    cid = ocistate.validate_id(args.id)
    if action == "create":
        ocistate.create(store, cid, args.bundle, pid_file=args.pid_file, console_socket=args.console_socket)
        return 0
    if action == "start":
        ocistate.start(store, cid)
        return 0
    if action == "state":
        sys.stdout.write(json.dumps(store.load(cid).state_json(), indent=2) + "\n")
        return 0
    if action == "kill":
        sig = parse_signal(args.signal)
        ocistate.kill(store, cid, sig)
        return 0
    if action == "delete":
        ocistate.delete(store, cid, force=args.force)
        return 0
    if action == "run":
        return run(store, cid, args.bundle, pid_file=args.pid_file, detach=args.detach, keep=args.keep)
    raise UsageError(f"unknown runtime command `{action}`", "see 'rootless runtime --help'")


def run(store, cid: str, bundle: str, *, pid_file=None, detach: bool = False, keep: bool = False) -> int:
    from rootless.cli import terminal as terminal_
    from rootless.runtime import ocistate

    if detach:
        spec = ocistate.load_bundle(bundle)
        if (spec.get("process") or {}).get("terminal"):
            raise UsageError("run --detach with process.terminal: nobody would hold the pty",
                             "set process.terminal to false")
        ocistate.create(store, cid, bundle, pid_file=pid_file)
        ocistate.start(store, cid)
        return 0
    bundle = os.path.abspath(bundle)
    spec = ocistate.load_bundle(bundle)
    terminal = bool((spec.get("process") or {}).get("terminal"))
    store.reserve(cid)
    try:
        proc = ocistate.spawn(spec, bundle, cid)
        with terminal_.SignalForwarder() as fwd:
            fwd.set_target(proc)
            ocistate.record(store, cid, spec, bundle, proc.pid, pid_file)
            if terminal and proc.pty_master is not None:
                terminal_.pump_tty(proc.pty_master, _readable(0), poll=proc.poll)
            code = proc.wait()
    finally:
        if not keep:
            store.remove(cid)
    return code


def _readable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return not stat.S_ISDIR(mode)


def _list(store) -> int:
    from rootless.runtime import ocistate

    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED")]
    for c in ocistate.containers(store):
        rows.append((c.id, str(c.pid), c.status(), c.data.get("bundle", ""), c.data.get("created", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        sys.stdout.write("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip() + "\n")
    return 0
