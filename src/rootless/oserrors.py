"""Errors of the machine, not of rootless: a full disk, a quota, a read-only or forbidden path,
a file size limit, JSON nested too deep. The CLI turns them into ``error:`` + ``hint:`` instead of
"internal error ... a bug in rootless" (issue 11, Low items); library code that knows the path
calls ``from_os_error`` itself.
"""

from __future__ import annotations

import errno

from rootless.errors import RootlessError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

# errno -> (reason, hint); {where} is the place (a path, or "the disk")
_KNOWN = {
    errno.ENOSPC: ("no space left on device",
                   "free space on the filesystem of {where} (`rootless system prune`, `rootless image prune`), "
                   "or move data-root to a larger one in daemon.toml"),
    errno.EDQUOT: ("disk quota exceeded",
                   "free space within your quota (`rootless system prune`), or move data-root in daemon.toml"),
    errno.EFBIG: ("file too large",
                  "a file size limit stopped the write: raise it (`ulimit -f unlimited`) or check the filesystem's "
                  "largest file size"),
    errno.EROFS: ("read-only file system",
                  "{where} is on a read-only filesystem: remount it read-write, or set data-root/exec-root in "
                  "daemon.toml to a writable place"),
    errno.EACCES: ("permission denied",
                   "check the owner and permissions of {where} and its parent folders (`ls -ld`)"),
    errno.EPERM: ("operation not permitted",
                  "check the owner and permissions of {where} (`ls -ld`); rootless runs as your user"),
    errno.EMFILE: ("too many open files", "raise the limit (`ulimit -n`)"),
    errno.ENFILE: ("too many open files in the system", "close some programs, or raise fs.file-max"),
}


def from_os_error(e: OSError, action: str = "", path: Optional[str] = None) -> Optional[RootlessError]:
    """A RootlessError for an OSError a user can act on; None for others (a bug, then)."""
    known = _KNOWN.get(e.errno or 0)
    if known is None:
        return None
    reason, hint = known
    where_path = path or e.filename
    if where_path is not None and not isinstance(where_path, str):
        where_path = str(where_path)
    verb = action or "write"
    obj = f" `{where_path}`" if where_path else ""
    if e.filename2:
        obj += f" to `{e.filename2}`"
    msg = f"{verb}{obj}: {reason}"
    return RootlessError(msg, hint.format(where=f"`{where_path}`" if where_path else "the disk"))


def explain(e: BaseException) -> Optional[RootlessError]:
    """For the CLI's last line of defence: what a user can act on, else None."""
    if isinstance(e, OSError):
        return from_os_error(e, _action_of(e))
    if isinstance(e, RecursionError):
        return RootlessError("read data nested too deeply: " + (str(e) or "maximum recursion depth exceeded"),
                             "a file rootless read (a record, a config, an image manifest) is nested too deeply "
                             "to be real: find it with --debug and remove or fix it")
    return None


def _action_of(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
        return "write"
    return "access"
