"""The engine: the one way in to containers, for both faces (the CLI and the Engine API).

Every function here takes the loaded ``config`` (rootless.config.Config) and a container reference
(a name, a full id or a unique id prefix, as docker resolves them), returns values and raises
``RootlessError`` (``NotFound`` for a missing container, ``UsageError`` for bad input); it never
prints, reads argv or looks at a terminal. Warnings go to the ``reporter`` given. Each function
imports its submodule when called: ``import rootless.engine`` stays cheap, and the hot path of
``run`` loads only what it uses.

Submodules (not to be imported by the faces): lifecycle (create/start/remove, the OCI spec),
containers (stop/kill/pause/wait/exec, ps rows, inspect), containerfs + copyhelper
(cp/export/diff/commit in a sandboxed helper), stats, monitor + attach (the per-container monitor
process and its client channel), volumes, hostflags. The object facades beside this one
(engine.images, engine.volumes, engine.networks, engine.system) and the spec types (engine.spec)
may be imported by the faces as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover - types only
    from rootless.config import Config
    from rootless.report import Reporter

# Names of the create/run path, re-exported from lifecycle until the typed ContainerSpec lands.
_LIFECYCLE = frozenset((
    "CreateOptions", "CreateRequest", "ContainerSpec", "container_spec", "choose_runtime", "create", "effective_command", "finish", "start_record",
    "teardown_attachments", "_limit_fields", "get_image", "layer_paths", "run",
    "gc_auto_removed", "keep_updates", "Started", "RuntimeChoice", "build_spec",
))


def __getattr__(name: str) -> Any:  # lazy: importing the facade must not load the lifecycle
    if name in _LIFECYCLE:
        from rootless.engine import lifecycle

        return getattr(lifecycle, name)
    if name == "ExecOptions":
        from rootless.engine.containers import ExecOptions

        return ExecOptions
    if name == "Stdio":
        from rootless.runtime import Stdio

        return Stdio
    raise AttributeError(f"module 'rootless.engine' has no attribute {name!r}")


# --- find ---------------------------------------------------------------------------------------------


def resolve(config: Config, ref: str) -> Dict[str, Any]:
    """The container's record (docker's shape plus our own ``Rootless`` key), its liveness refreshed.
    Raises NotFound."""
    from rootless import state

    return state.Store(config.data_root).resolve(ref)


def inspect(config: Config, ref: str) -> Dict[str, Any]:
    """docker's ContainerJSON (``docker inspect``, ``GET /containers/{id}/json``) of ``ref``."""
    from rootless.engine import containers

    return containers.inspect_data(resolve(config, ref))


def ps(config: Config, all: bool = False, filters: Optional[Dict[str, List[str]]] = None, last: int = -1,  # noqa: A002
       latest: bool = False) -> List[Dict[str, Any]]:
    """docker ps: the containers' ContainerJSON (as ``inspect``), newest first.

    Running containers only unless ``all``, ``last`` > 0, ``latest`` or a status/exited filter;
    ``filters`` maps docker's keys (status, name, label, ancestor, id, exited) to values (a key
    passes when one of its values matches); at most ``last`` (1 with ``latest``). Raises
    UsageError for an unknown filter key."""
    from rootless.engine import containers

    return [containers.inspect_data(r) for r in containers.select(config, all, filters, last, latest)]


def ps_rows(config: Config, all: bool = False, filters: Optional[Dict[str, List[str]]] = None, last: int = -1,  # noqa: A002
            latest: bool = False, no_trunc: bool = False, size: bool = False) -> List[Dict[str, Any]]:
    """``ps``'s containers as the docker CLI's --format fields (ID, Image, Command, CreatedAt,
    RunningFor, Ports, State, Status, Size, Names, Labels, Mounts, Networks, LocalVolumes), ids and
    commands truncated unless ``no_trunc``; ``size`` computes Size (it walks each writable layer)."""
    from rootless.engine import containers

    return [containers.ps_row(config, d, no_trunc, size) for d in ps(config, all, filters, last, latest)]


# --- run state ----------------------------------------------------------------------------------------


def start(config: Config, ref: str, config_file: Optional[str] = None) -> str:
    """Start ``ref`` in the background under its monitor (a no-op when it runs); returns its id
    once it runs, or raises why it did not start. ``config_file`` is what the monitor loads."""
    from rootless import state
    from rootless.engine import containers

    store = state.Store(config.data_root)
    return containers.start_detached(config, config_file, store, store.resolve(ref))


def restart_candidates(config: Config) -> List[str]:
    """Ids of the stopped containers that restart policy always (or unless-stopped, not stopped by
    hand) says should run: what `start --all-restart` starts after a reboot."""
    from rootless.engine import containers

    return containers.restart_candidates(config)


def wait(config: Config, ref: str, condition: str = "not-running", timeout: Optional[float] = None) -> int:
    """Block until ``condition`` holds for ``ref``; return its exit code.

    - ``not-running``: until it is not running (at once for a created or exited container).
    - ``next-exit``: until its next exit, even when it has not started yet (docker's run: create,
      wait next-exit, start); a restart policy's restart does not end the wait, the exit does.
    - ``removed``: until its record is gone (at once when it goes meanwhile).

    The code is the recorded ExitCode; a container removed by --rm before its exit was recorded
    gives the last code seen. Raises NotFound for an unknown ``ref``, UsageError for another
    condition, RootlessError when ``timeout`` seconds pass first."""
    from rootless.engine import containers

    return containers.wait(config, ref, condition, timeout)


def check_signal(name: str) -> int:
    """The number of signal ``name`` (``KILL``, ``SIGTERM``, ``9``, ``RTMIN+1``); UsageError if none."""
    from rootless.procs import parse_signal

    return parse_signal(name)


def stop(config: Config, ref: str, timeout: Optional[int] = None, signal: Optional[str] = None) -> str:
    """docker stop: ``signal`` (default: the container's StopSignal, else SIGTERM), then SIGKILL after
    ``timeout`` seconds (default its StopTimeout, else 10; -1: wait forever). No restart policy
    restarts it afterwards. A stopped container is left as it is. Returns its id."""
    from rootless.engine import containers

    return containers.stop(config, ref, timeout, signal)


def kill(config: Config, ref: str, signal: str = "KILL") -> str:
    """Send ``signal`` to the running container's main process. Returns its id; raises when it is
    not running."""
    from rootless.engine import containers

    return containers.kill(config, ref, signal)


def restart(config: Config, ref: str, timeout: Optional[int] = None, signal: Optional[str] = None,
            config_file: Optional[str] = None) -> str:
    """docker restart: ``stop`` (as above), then ``start`` in the background. Returns its id."""
    from rootless.engine import events

    stop(config, ref, timeout, signal)
    cid = start(config, ref, config_file)
    events.container(config, cid, "restart")
    return cid


def pause(config: Config, ref: str) -> str:
    """Freeze every process of running ``ref`` (cgroup v2 freezer). Returns its id."""
    from rootless.engine import containers

    return containers.pause(config, ref, True)


def unpause(config: Config, ref: str) -> str:
    """Thaw paused ``ref``. Returns its id."""
    from rootless.engine import containers

    return containers.pause(config, ref, False)


def rename(config: Config, ref: str, new_name: str) -> None:
    """Give ``ref`` the name ``new_name``; raises when the name is invalid or taken."""
    from rootless.engine import containers

    containers.rename(config, ref, new_name)


def update(config: Config, ref: str, limits: Any = None, restart: Optional[Dict[str, Any]] = None) -> str:
    """Change ``ref``'s resource ``limits`` (a rootless.limits.Limits holding the fields to change:
    a running container's cgroup at once, the record always) and/or its ``restart`` policy
    (``restart_policy()``'s dict). Raises when this host cannot enforce a limit. Returns its id."""
    from rootless.engine import containers

    return containers.update(config, ref, limits, restart)


def restart_policy(text: str) -> Dict[str, Any]:
    """docker's RestartPolicy (``{"Name": ..., "MaximumRetryCount": n}``) of ``no``, ``always``,
    ``unless-stopped`` or ``on-failure[:N]``; UsageError otherwise."""
    from rootless.engine.hostflags import parse_restart

    return parse_restart(text)


def rm(config: Config, ref: str, force: bool = False, volumes: bool = False, *, reporter: Reporter) -> str:
    """Remove ``ref`` (its writable layer, record, logs and files); a running one only with
    ``force`` (SIGKILL). With ``volumes`` its anonymous volumes too. Returns its id."""
    from rootless.engine import containers

    return containers.remove(config, ref, force, volumes, reporter=reporter)


def remove(config: Config, ref: str, *, reporter: Reporter, force: bool = False, **kw: Any) -> str:
    """lifecycle.remove (the monitor's and the run path's spelling); the faces call ``rm``."""
    from rootless.engine import lifecycle

    return lifecycle.remove(config, ref, reporter=reporter, force=force, **kw)


def prune(config: Config, until: Optional[float] = None, *, reporter: Reporter) -> Tuple[List[str], int]:
    """Remove every stopped container (created before ``until``, unix seconds, when given); returns
    (the ids removed, the bytes their writable layers held). One that starts meanwhile stays."""
    from rootless.engine import containers

    return containers.prune(config, until, reporter=reporter)


# --- inside a container -------------------------------------------------------------------------------


def exec(config: Config, ref: str, opts: Any, stdio: Any = None, on_pid: Optional[Callable[[int], None]] = None,  # noqa: A001
         attach: Optional[Callable[[Any], None]] = None) -> int:
    """Run ``opts`` (an ``ExecOptions``: cmd, env, workdir, user, tty, interactive, detach,
    privileged) in running ``ref``; return the command's exit code (0 at once with detach; 126
    when it cannot be run, 127 when it is not found). ``stdio`` (a ``Stdio``) are its streams;
    ``on_pid`` gets its pid when known (to forward signals); ``attach`` is called with the started
    process (``pty_master``, ``poll()``) before the wait, for the face to relay its streams."""
    from rootless.engine import containers

    return containers.exec_in(config, ref, opts, stdio, on_pid=on_pid, attach=attach)


def top(config: Config, ref: str) -> List[List[str]]:
    """The processes of running ``ref`` as ``ps -ef`` shows them: a header row (UID PID PPID C STIME
    TTY TIME CMD), then one row each. Raises when it is not running."""
    from rootless.engine import containers

    return containers.top(config, ref)


def port(config: Config, ref: str, private: Optional[str] = None) -> List[Tuple[str, str]]:
    """(container port ``80/tcp``, host address ``0.0.0.0:8080``) for each published port of ``ref``;
    only ``private`` (``80`` is ``80/tcp``) when given; raises when that one is not published."""
    from rootless.engine import containers

    return containers.ports(config, ref, private)


def logs(config: Config, ref: str, since_ns: int = 0, until_ns: int = 0, tail: int = -1,
         follow: bool = False) -> Iterator[Any]:
    """``ref``'s log entries (``stream``: "stdout"/"stderr", ``text``, ``time_ns``), oldest first,
    across rotated files: those in [since_ns, until_ns) (0: no bound), the last ``tail`` (-1: all).
    With ``follow`` (and no ``until_ns``) new entries too, until the container stops. Raises when
    its logging driver is ``none``."""
    from rootless.engine import containers

    return containers.logs(config, ref, since_ns, until_ns, tail, follow)


def sample_stats(config: Config, refs: List[str], all: bool = False, missing_ok: bool = False) -> List[Tuple[Any, Optional[str]]]:  # noqa: A002
    """One reading (an engine.stats.Sample) of each of ``refs`` (paired with the ref as given), or
    of every running container (every one with ``all``; paired with None), newest first. With
    ``missing_ok`` a ref that is gone is left out, else NotFound. ``stats_row`` turns two readings
    into docker's fields."""
    from rootless.engine import containers

    return containers.stats(config, refs, all, missing_ok)


def stats_row(prev: Any, cur: Any, no_trunc: bool = False, ref: Optional[str] = None) -> Dict[str, str]:
    """docker stats' fields (ID, Name, Container, CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs,
    MemLimit, CPULimit, PIDsLimit) from reading ``cur`` (CPU % from ``prev``, when given)."""
    from rootless.engine import stats as cstats

    return cstats.row(prev, cur, no_trunc, ref)


# --- files --------------------------------------------------------------------------------------------


def split_copy_arg(arg: str) -> Tuple[Optional[str], str]:
    """``CONTAINER:PATH`` -> (container, path); a host path (or ``-``) -> (None, path)."""
    from rootless.engine import containerfs

    return containerfs.split_arg(arg)


def copy_from(config: Config, ref: str, src: str, dest: str, follow: bool = False, out: Optional[BinaryIO] = None) -> None:
    """Copy ``src`` (a path in ``ref``) to host path ``dest`` (``-``: a tar to ``out``, stdout when
    None); ``follow`` follows a symbolic link at ``src``. Confined to the container's root."""
    from rootless.engine import containerfs

    containerfs.copy_from(config, ref, src, dest, follow=follow, out=out)


def copy_to(config: Config, ref: str, src: str, dest: str, inp: Optional[BinaryIO] = None) -> None:
    """Copy host path ``src`` (``-``: a tar read from ``inp``, stdin when None) to ``dest`` in ``ref``."""
    from rootless.engine import containerfs

    containerfs.copy_to(config, ref, src, dest, inp=inp)


def export(config: Config, ref: str, out: BinaryIO) -> None:
    """Write ``ref``'s filesystem to ``out`` as a tar archive (numeric owners)."""
    from rootless.engine import containerfs

    containerfs.export(config, ref, out)


def diff(config: Config, ref: str) -> List[Tuple[str, str]]:
    """(kind, path) for each file ``ref`` added (``A``), changed (``C``) or deleted (``D``)."""
    from rootless.engine import containerfs

    return containerfs.diff(config, ref)


def commit(config: Config, ref: str, repository: str = "", changes: Optional[List[str]] = None, message: str = "",
           author: str = "", pause: bool = True) -> str:
    """A new image from ``ref``'s changes (its writable layer as a new layer; Dockerfile
    ``changes`` applied to its config), tagged ``repository`` when given; the container is frozen
    while it is read unless ``pause`` is False. Returns the image id."""
    from rootless.engine import containerfs

    return containerfs.commit(config, ref, repository, list(changes or []), message, author, pause=pause)
