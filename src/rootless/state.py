"""Container records: ``data-root/containers/<id>/config.json``, in the shape of `docker inspect`.

A record is a dict (it *is* the inspect output, with the same keys), written atomically (temp +
fsync + rename). The container's pid is saved with its start time (/proc/PID/stat field 22), so a
record whose process has died, or whose pid was reused, is seen as exited, not running (crun's
status.c does the same). Ids are checked against ``^[0-9a-f]{64}$`` before they become paths;
each container has a lock file (flock) that serialises start/stop/rm of that container.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from rootless import paths
from rootless.errors import NotFound, RootlessError

ID_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ZERO_TIME = "0001-01-01T00:00:00Z"

Record = Dict[str, Any]


def now() -> str:
    """RFC 3339 UTC with microseconds, as docker shows times (without importing datetime)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def new_id() -> str:
    return os.urandom(32).hex()


def valid_id(cid: str) -> bool:
    return bool(ID_RE.match(cid))


def check_name(name: str) -> str:
    n = name[1:] if name.startswith("/") else name
    if not NAME_RE.match(n):
        raise RootlessError(
            f"use container name `{name}`: invalid name",
            "a name is [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at least two characters)",
        )
    return n


_ADJ = ("admiring", "bold", "brave", "clever", "eager", "focused", "gallant", "happy", "jolly", "keen",
        "loving", "modest", "nifty", "quirky", "serene", "stoic", "tender", "vibrant", "wizardly", "zealous")
_NOUN = ("archimedes", "babbage", "curie", "darwin", "euler", "fermat", "galois", "hopper", "hypatia",
         "kepler", "lovelace", "noether", "pascal", "ritchie", "shannon", "tesla", "turing", "wiles")


def random_name() -> str:
    b = os.urandom(3)
    return f"{_ADJ[b[0] % len(_ADJ)]}_{_NOUN[b[1] % len(_NOUN)]}{b[2] % 100}"


def new_state() -> Dict[str, Any]:
    return {
        "Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
        "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
        "PidStartTime": 0,
    }


def proc_start_time(pid: int, proc: str = "/proc", zombie_is_gone: bool = False) -> Optional[int]:
    """Field 22 of /proc/PID/stat, None when the process is gone (with ``zombie_is_gone``, also when
    it has exited and waits to be reaped: an orphan's reaper, pid 1, may take its time)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    if zombie_is_gone and rest[:1] in ([b"Z"], [b"X"]):
        return None
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def is_alive(state: Dict[str, Any], proc: str = "/proc") -> bool:
    pid = int(state.get("Pid") or 0)
    if pid <= 0:
        return False
    st = proc_start_time(pid, proc, zombie_is_gone=True)
    return st is not None and st == int(state.get("PidStartTime") or 0)


UNKNOWN_EXIT = 255  # the exit code of a container whose monitor was killed before it exited


class Store:
    """The container records under ``data_root/containers``."""

    def __init__(self, data_root: str, proc: str = "/proc"):
        self.data_root = data_root
        self.root = os.path.join(data_root, "containers")
        self.proc = proc

    # --- paths ------------------------------------------------------------------------------------
    def dir(self, cid: str) -> str:
        if not valid_id(cid):
            raise RootlessError(f"use container id `{cid}`: not a valid id", "ids are 64 lowercase hex digits")
        return os.path.join(self.root, cid)

    def path(self, cid: str, name: str) -> str:
        return os.path.join(self.dir(cid), name)

    def log_path(self, cid: str) -> str:
        return self.path(cid, f"{cid}-json.log")

    # --- locking ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, path: str) -> Iterator[None]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def lock(self, cid: str):
        """Exclusive lock on one container (start, stop, rm of it are serialised)."""
        return self._flock(self.path(cid, "lock"))

    def global_lock(self):
        """Held while names are checked and taken, so two creates cannot take the same name."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        return self._flock(os.path.join(self.root, ".lock"))

    # --- records ----------------------------------------------------------------------------------
    def create(self, record: Record, durable: bool = True) -> None:
        """Make the container's directory and first record; the name must be free."""
        cid = record["Id"]
        d = self.dir(cid)
        with self.global_lock():
            name = record["Name"].lstrip("/")
            other = self._find_by_name(name)
            if other is not None:
                raise RootlessError(
                    f"create container `{name}`: the name is already in use by container `{other['Id'][:12]}`",
                    f"remove that container (`rootless rm {name}`) or choose another --name",
                    exit_code=125,
                )
            os.mkdir(d, 0o700)
            self.save(record, durable=durable)

    def save(self, record: Record, durable: bool = True) -> None:
        data = json.dumps(record, indent=None, separators=(",", ":")).encode()
        path = self.path(record["Id"], "config.json")
        # without the fsyncs for short-lived --rm containers (still atomic: a rename)
        paths.atomic_write(path, data, mode=0o600, durable=durable)

    def load(self, cid: str) -> Record:
        try:
            with open(self.path(cid, "config.json"), "rb") as f:
                rec = json.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"No such container: {cid}", "see `rootless ps -a` for the containers")
        except (OSError, ValueError) as e:
            raise RootlessError(f"read container record `{cid[:12]}`: {e}", "remove it with `rootless rm -f`")
        return self.refresh(rec)

    def refresh(self, rec: Record) -> Record:
        """A record that says running but whose process is gone is shown as exited (not saved here)."""
        st = rec.get("State") or {}
        if st.get("Restarting") and not st.get("Running") and st.get("MonitorPid"):
            # waiting to restart: only its monitor (rootless.monitor) will start it again
            mon = {"Pid": st.get("MonitorPid"), "PidStartTime": st.get("MonitorStartTime")}
            if not is_alive(mon, self.proc):
                st.update(Status="exited", Restarting=False,
                          Error=st.get("Error") or "its monitor is gone: it will not be restarted")
                if st.get("FinishedAt", ZERO_TIME) == ZERO_TIME:
                    st["FinishedAt"] = now()
        if st.get("Running") and not is_alive(st, self.proc):
            # Its exit status went to whoever reaped it, not to its (killed) monitor: say so, with
            # docker's code for an exit it could not learn, rather than make one up (137).
            st.update(Status="exited", Running=False, Pid=0, ExitCode=UNKNOWN_EXIT,
                      Error=st.get("Error") or "its monitor was killed: the exit code is unknown")
            if st.get("FinishedAt", ZERO_TIME) == ZERO_TIME:
                st["FinishedAt"] = now()
        return rec

    def ids(self) -> List[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if valid_id(n))

    def items(self) -> List[Tuple[str, Record]]:
        """(id, record) of each readable record, by id (an unreadable one is skipped)."""
        out = []
        for cid in self.ids():
            try:
                out.append((cid, self.load(cid)))
            except RootlessError:
                continue
        return out

    def list(self) -> List[Record]:
        return [rec for _, rec in self.items()]

    def _find_by_name(self, name: str) -> Optional[Record]:
        for cid in self.ids():
            try:
                with open(self.path(cid, "config.json"), "rb") as f:
                    rec = json.loads(f.read())
            except (OSError, ValueError):
                continue
            if rec.get("Name", "").lstrip("/") == name:
                return rec
        return None

    def resolve(self, ref: str) -> Record:
        """By full id, by name, then by unique id prefix (docker's order)."""
        if not ref:
            raise NotFound("No such container: ", "give a container name or id")
        if valid_id(ref) and os.path.isdir(os.path.join(self.root, ref)):
            return self.load(ref)
        rec = self._find_by_name(ref.lstrip("/"))
        if rec is not None:
            return self.refresh(rec)
        if re.fullmatch(r"[0-9a-f]{1,63}", ref):
            hits = [c for c in self.ids() if c.startswith(ref)]
            if len(hits) == 1:
                return self.load(hits[0])
            if len(hits) > 1:
                raise RootlessError(
                    f"find container `{ref}`: the prefix matches {len(hits)} containers",
                    "give more of the id, or the name",
                )
        raise NotFound(f"No such container: {ref}", "see `rootless ps -a` for the containers")

    def remove(self, cid: str) -> None:
        import shutil

        d = self.dir(cid)
        for attempt in range(5):
            try:
                shutil.rmtree(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                # ENOTEMPTY: its monitor wrote a file meanwhile (the lock, its last record): again
                if e.errno == errno.ENOTEMPTY and attempt < 4:
                    time.sleep(0.05)
                    continue
                if e.errno != errno.ENOENT:
                    raise RootlessError(f"remove container directory `{d}`: {e.strerror}", "check its permissions")
            return
