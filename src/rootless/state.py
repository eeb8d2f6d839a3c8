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
from rootless.procs import start_time as proc_start_time
from rootless.timefmt import ZERO_TIME, now  # noqa: F401  (callers of state.*)

ID_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

Record = Dict[str, Any]


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


def is_alive(state: Dict[str, Any], proc: str = "/proc", container: bool = True) -> bool:
    """Whether the record's ``Pid`` is still that process (pid + start time). With ``container``
    (a container's init), also that it lives in a user namespace other than ours: every container
    has one, so a record naming one of our own processes (a reused or forged pid) is not
    believed, and the process is never signalled as the container's (issue 11)."""
    pid = _int(state.get("Pid"))
    if pid <= 1:
        return False
    st = proc_start_time(pid, proc, zombie_is_gone=True)
    if st is None or st != _int(state.get("PidStartTime")):
        return False
    return not container or not _in_our_userns(pid, proc)


def _int(v: Any) -> int:
    """An int field of a record (0 when it is missing or of another type)."""
    if isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return 0


def _in_our_userns(pid: int, proc: str) -> bool:
    try:
        a = os.stat(f"{proc}/{pid}/ns/user")
        b = os.stat(f"{proc}/self/ns/user")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


ALIVE_FILE = "alive"


class BadRecord(RootlessError):
    """A container record that cannot be read, or whose fields have the wrong types."""

    def __init__(self, message: str, hint: Optional[str] = None, cid: str = ""):
        super().__init__(message, hint)
        self.cid = cid


_warned: set = set()


def _warn(text: str) -> None:
    """Once per process per text (a command may list the records more than once)."""
    import sys

    if text in _warned:
        return
    _warned.add(text)
    try:
        sys.stderr.write(f"warning: {text}\n")
    except (OSError, ValueError):
        pass


# field -> the types it may have (a record is docker's inspect shape; these are the fields the
# engine reads without checking). None is allowed where docker writes null.
_TOP = {"Id": (str,), "Name": (str,), "Created": (str,), "Image": (str,), "Driver": (str, type(None)),
        "Config": (dict,), "HostConfig": (dict,), "State": (dict,), "Mounts": (list, type(None)),
        "NetworkSettings": (dict, type(None)), "Rootless": (dict, type(None))}
_STATE = {"Status": (str,), "Running": (bool,), "Paused": (bool,), "Restarting": (bool,), "Pid": (int,),
          "PidStartTime": (int, type(None)), "ExitCode": (int,), "Error": (str, type(None)),
          "StartedAt": (str,), "FinishedAt": (str,), "MonitorPid": (int, type(None)),
          "MonitorStartTime": (int, type(None))}
_CONFIG = {"Image": (str,), "Cmd": (list, type(None)), "Entrypoint": (list, str, type(None)),
           "Env": (list, type(None)), "Labels": (dict, type(None)), "Tty": (bool,), "OpenStdin": (bool,)}


def check_record(rec: Any, cid: str) -> str:
    """'' for a record of the right shape, else what is wrong with it."""
    if not isinstance(rec, dict):
        return f"it is a JSON {type(rec).__name__}, not an object"
    for table, obj, where in ((_TOP, rec, ""), (_STATE, rec.get("State"), "State."),
                              (_CONFIG, rec.get("Config"), "Config.")):
        if not isinstance(obj, dict):
            continue  # reported at the top level
        for key, types in table.items():
            if key not in obj:
                if table is _TOP and key in ("Id", "Name", "Config", "HostConfig", "State"):
                    return f"field `{key}` is missing"
                continue
            v = obj[key]
            if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
                return f"field `{where}{key}` is a {type(v).__name__}, not a {types[0].__name__}"
    if rec["Id"] != cid:
        return f"its Id `{rec['Id'][:12]}` is not its folder's"
    for m in rec.get("Mounts") or []:
        if not isinstance(m, dict):
            return "field `Mounts` holds a non-object"
    return ""


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
        rec = self._read(cid)
        problem = check_record(rec, cid)
        if problem:
            raise BadRecord(f"read container record `{cid[:12]}`: {problem}",
                            f"remove it with `rootless rm -f {cid[:12]}`", cid=cid)
        return self.refresh(rec)

    def _read(self, cid: str) -> Any:
        path = self.path(cid, "config.json")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"No such container: {cid}", "see `rootless ps -a` for the containers")
        except OSError as e:
            raise BadRecord(f"read container record `{cid[:12]}`: {e.strerror}", "check the permissions of "
                            f"`{path}`", cid=cid)
        try:
            from rootless import trust

            return trust.loads(data, path)
        except (ValueError, RecursionError) as e:
            what = "it is empty" if not data.strip() else f"not valid JSON ({e})"
            raise BadRecord(f"read container record `{cid[:12]}`: {what}",
                            f"remove it with `rootless rm -f {cid[:12]}`", cid=cid)

    def alive_marker(self, cid: str) -> Optional[Dict[str, Any]]:
        """The ``alive`` marker of a started container, kept beside its record so that a running
        container whose record is damaged still counts as running (and its volumes as in use):
        {"Pid", "PidStartTime", "Volumes"}, or None when missing, not ours, or its process is gone.

        A symbolic link whose target is the text ``PID:START:VOL,VOL``: one syscall to write
        (no temp file, rename and ext4's flush-on-rename on the hot path of `run`)."""
        path = self.path(cid, ALIVE_FILE)
        try:
            if os.lstat(path).st_uid != os.getuid():
                return None
            pid, start, vols = os.readlink(path).split(":", 2)
            m = {"Pid": int(pid), "PidStartTime": int(start), "Volumes": [v for v in vols.split(",") if v]}
        except (OSError, ValueError):
            return None
        return m if is_alive(m, self.proc) else None

    def save_alive_marker(self, rec: Record) -> None:
        s = rec.get("State") or {}
        vols = [m.get("Name") for m in rec.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")]
        path = self.path(rec["Id"], ALIVE_FILE)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.symlink(f"{_int(s.get('Pid'))}:{_int(s.get('PidStartTime'))}:{','.join(vols)}", path)

    def refresh(self, rec: Record) -> Record:
        """A record that says running but whose process is gone is shown as exited (not saved here)."""
        st = rec.get("State") or {}
        if st.get("Restarting") and not st.get("Running") and st.get("MonitorPid"):
            # waiting to restart: only its monitor (rootless.engine.monitor) will start it again
            mon = {"Pid": st.get("MonitorPid"), "PidStartTime": st.get("MonitorStartTime")}
            if not is_alive(mon, self.proc, container=False):
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

    def items(self, warn: bool = True) -> List[Tuple[str, Record]]:
        """(id, record) of each readable record, by id (an unreadable one is skipped, with a
        warning on stderr: one damaged record must not stop `ps -a`, `run` or `system df`)."""
        out = []
        for cid in self.ids():
            try:
                out.append((cid, self.load(cid)))
            except NotFound:
                continue  # removed meanwhile
            except RootlessError as e:
                if warn:
                    alive = " (its process is still running)" if self.alive_marker(cid) else ""
                    _warn(f"skipping damaged container {cid[:12]}{alive}: {e.message}; {e.hint or ''}")
        return out

    def damaged(self) -> List[str]:
        """Ids of the records that cannot be read or have fields of the wrong types."""
        out = []
        for cid in self.ids():
            try:
                rec = self._read(cid)
            except NotFound:
                continue
            except RootlessError:
                out.append(cid)
                continue
            if check_record(rec, cid):
                out.append(cid)
        return out

    def list(self) -> List[Record]:
        return [rec for _, rec in self.items()]

    def _find_by_name(self, name: str) -> Optional[Record]:
        for cid in self.ids():
            try:
                rec = self._read(cid)
            except RootlessError:
                continue
            if check_record(rec, cid):
                continue
            if rec["Name"].lstrip("/") == name:
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
