"""rootless system: df (disk usage), prune (unused data), info and events (aliases of `rootless info`/`events`), warm (the warm server)."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="system_command", metavar="COMMAND")
    df = sub.add_parser("df", help="Show docker-like disk usage", description="Show disk usage")
    df.add_argument("-v", "--verbose", action="store_true", help="Show detailed information on space usage")
    df.add_argument("--format", help="Format output using a Go template ('json' for JSON)")
    pr = sub.add_parser("prune", help="Remove unused data", description="Remove unused data")
    pr.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    pr.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    pr.add_argument("--volumes", action="store_true", help="Prune anonymous volumes (not handled here)")
    pr.add_argument("--filter", action="append", default=[], help="Provide filter values (until=)")
    warm = sub.add_parser("warm", help="Show or stop the warm server that runs commands for you",
                          description="Show (status) or stop the per-user warm server (see rootless-system(1))")
    warm.add_argument("action", nargs="?", default="status", choices=("status", "stop"), help="status (default) or stop")
    from rootless.commands import events as events_cmd

    events_cmd.add_arguments(sub.add_parser("events", help="Get real time events", description="Get real time events"))
    info = sub.add_parser("info", help="Display system-wide information", description="Display system-wide information")
    from rootless.commands import info as info_cmd

    info_cmd.add_arguments(info)


def _du(path: str) -> int:
    """Bytes used below ``path`` (each inode once; unreadable parts are skipped)."""
    total = 0
    seen = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for n in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total


def _running(rec: Dict[str, Any]) -> bool:
    return bool((rec.get("State") or {}).get("Running"))


def df_data(config: Any) -> List[Dict[str, Any]]:
    from rootless import state
    from rootless.image.progress import human_size
    from rootless.image.store import ImageStore

    store = ImageStore(config.data_root)
    images = store.list()
    cstore = state.Store(config.data_root)
    items = cstore.items()  # running only while its process lives (Store.refresh)
    containers = [rec for _, rec in items]
    used_ids = {c.get("Image") for c in containers}
    img_size = sum(i.size for i in images)
    img_active = [i for i in images if i.id in used_ids]
    img_reclaim = sum(i.size for i in images if i.id not in used_ids)
    c_sizes = [(c, _du(cstore.dir(cid))) for cid, c in items]
    c_size = sum(s for _, s in c_sizes)
    c_active = [c for c in containers if _running(c)]
    c_reclaim = sum(s for c, s in c_sizes if not _running(c))
    vol_root = os.path.join(config.data_root, "volumes")
    try:
        vols = [v for v in sorted(os.listdir(vol_root)) if os.path.isdir(os.path.join(vol_root, v))]
    except OSError:
        vols = []
    v_sizes = [_du(os.path.join(vol_root, v)) for v in vols]
    v_size = sum(v_sizes)

    def pct(part: int, whole: int) -> str:
        if whole <= 0:
            return human_size(part)
        return f"{human_size(part)} ({int(part * 100 / whole)}%)"

    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(len(img_active)),
         "Size": human_size(img_size), "Reclaimable": pct(img_reclaim, img_size)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(c_active)),
         "Size": human_size(c_size), "Reclaimable": pct(c_reclaim, c_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(vols)), "Active": "0",
         "Size": human_size(v_size), "Reclaimable": pct(v_size, v_size)},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]


def df_main(args, ctx) -> int:
    from rootless.cli.tabwriter import table as tabwrite
    from rootless.commands.images import format_rows, image_rows

    rows = df_data(ctx.config)
    if args.format:
        sys.stdout.write(format_rows(args.format, rows, {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
                                                          "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}))
        return 0
    cols = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
    table = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]] + [[r[c] for c in cols] for r in rows]
    sys.stdout.write(tabwrite(table))
    if args.verbose:
        from rootless.image.store import ImageStore

        store = ImageStore(ctx.config.data_root)
        sys.stdout.write("\nImages space usage:\n\n")
        irows = image_rows(store.list())
        t = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
        t += [[r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"]] for r in irows]
        sys.stdout.write(tabwrite(t))
    return 0


def prune_main(args, ctx) -> int:
    from rootless.commands.image import _until, confirm, prune_images
    from rootless.image.progress import human_size

    text = "WARNING! This will remove:\n" + (
        "  - all images without at least one container associated to them\n" if args.all
        else "  - all dangling images\n")
    if not confirm(text.rstrip("\n"), args.force):
        return 0
    lines, reclaimed = prune_images(ctx.config, args.all, _until(args.filter))
    if lines:
        sys.stdout.write("Deleted Images:\n" + "".join(line + "\n" for line in lines) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


def main(args, ctx) -> int:
    from rootless.errors import UsageError

    name = args.system_command
    if name == "df":
        return df_main(args, ctx)
    if name == "prune":
        return prune_main(args, ctx)
    if name == "warm":
        return warm_main(args)
    if name == "events":
        from rootless.commands import events as events_cmd

        return events_cmd.main(args, ctx)
    if name == "info":
        from rootless.commands import info as info_cmd

        return int(info_cmd.main(args, ctx) or 0)
    raise UsageError("system: a subcommand is needed", "see 'rootless system --help' (df, prune, info, warm)")


def warm_main(args) -> int:
    """`system warm [status|stop]`: the per-user server of rootless/warm.py."""
    import signal
    import time

    from rootless import warm

    root = warm.exec_root()
    servers = warm.running_servers(root) if root else []
    if args.action == "status":
        if not warm.enabled():
            sys.stdout.write("Warm server: off (ROOTLESS_WARM=0)\n")
        if not servers:
            sys.stdout.write("Warm server: not running (the next container command starts it)\n")
        for pid, sock in servers:
            sys.stdout.write(f"Warm server: running, pid {pid}, socket {sock}\n")
        return 0
    for pid, _ in servers:
        try:
            os.kill(pid, signal.SIGTERM)  # it stops taking commands; the running ones finish
        except OSError:
            pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(warm.server_alive(pid) for pid, _ in servers):
        time.sleep(0.05)
    sys.stdout.write(f"stopped {len(servers)} warm server{'s' if len(servers) != 1 else ''}\n")
    return 0
