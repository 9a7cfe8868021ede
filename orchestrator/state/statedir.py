"""The state directory (mode 0700) and the directory each live run keeps in it.

STATE_DIR/runs/RUN_ID/ holds the run's cleanup journal, its HOOKRUN_ENV files and error log,
``meta.json`` (run id, event, pid) and ``owner.lock``, flocked by the run for its whole life.
The kernel drops the flock when the run dies, so a run directory whose lock can be taken
belongs to a dead run whose pending cleanups must be recovered.

The state directory, ``runs/`` and ``locks/`` must be the running user's and writable by no
one else, and so must every directory above them (design.md section 8): otherwise another user
could plant a journal for root to replay, or a link for root to write through.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

from orchestrator import constants as c
from orchestrator.errors import StateError, UnsafeError
from orchestrator.files import (
    NEW,
    PRIVATE,
    READ,
    WRITABLE_BY_OTHERS,
    NotRegularFile,
    open_own,
    read_sized,
    remove_tree,
    write_all,
)
from orchestrator.plan import safety
from orchestrator.speed import flat_json
from orchestrator.text import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    # meta.json as read: a JSON object, whose values are whatever the file holds.
    Meta = dict[str, object]

RUNS = "runs"
LOCKS = "locks"
NEW_PREFIX = ".new-"
KEPT_PREFIX = ".damaged-"
GONE_PREFIX = ".removing-"
MAX_META = 65536
# A run directory still under its hidden name this long after it was made belongs to a run
# that died while making it (making one takes milliseconds).
STALE_NEW_SECONDS = 3600


def ensure_state_dir(path: str) -> None:
    """Create the state directory with ``runs/`` and ``locks/`` (mode 0700, and so every
    directory it has to create above them) and check that they can be trusted: UnsafeError
    (77) naming each untrusted path and its fix, StateError (73) when they cannot be made."""
    path = os.path.abspath(path)
    checker = safety.Checker()
    # Nothing is created in a directory another user controls.
    checker.check(os.path.dirname(path), safety.passage_problem)
    refuse_if(checker.problems)
    create(make_dirs, path)
    if not os.path.isdir(path):
        raise StateError(f"cannot create state directory {path}: something else is there")
    checker.check(path, safety.state_rule)
    refuse_if(checker.problems)
    for sub in (RUNS, LOCKS):
        create(make_dir, os.path.join(path, sub))
        # Inside the state directory nothing is followed: runs/ and locks/ must be real.
        checker.check_here(os.path.join(path, sub), safety.state_rule)
    refuse_if(checker.problems)


def refuse_if(problems: list[str]) -> None:
    if problems:
        raise UnsafeError([f"unsafe state directory: {line}" for line in problems])


def create(make: Callable[[str], None], path: str) -> None:
    try:
        make(path)
    except OSError as error:
        raise StateError(f"cannot create state directory {path}: "
                         f"{error.strerror or error}") from None


def make_dir(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def make_dirs(path: str) -> None:
    """Like os.makedirs, but every directory it creates gets mode 0700."""
    missing: list[str] = []
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        make_dir(directory)


def try_lock(path: str) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None if someone holds it or its
    directory is gone (its run closed it meanwhile). A run directory that lost its lock file
    is made one: it belongs to no live run, since a live run never lets go of its own.
    NotOwnFile when the lock file is not a regular file of our own: no live run can hold
    it, and its run directory is damaged. Any other OSError (an I/O error, no descriptors
    left) proves nothing about who holds it."""
    try:
        fd = open_own(path, os.O_RDWR)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_RDWR | NEW, PRIVATE)
        except FileNotFoundError:
            return None
    except OSError as error:
        if error.errno == errno.ELOOP:  # a symbolic link, which O_NOFOLLOW refused
            raise NotRegularFile(path) from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def read_meta(path: str) -> Meta:
    """The meta.json of the run directory ``path``; {} if it is missing or holds no JSON
    object. OSError when it cannot be read (an I/O error) or is not a regular file of our
    own: that run directory is damaged."""
    try:
        fd = open_own(os.path.join(path, c.RUN_META), READ)
    except FileNotFoundError:
        return {}
    import json

    try:
        meta = json.loads(read_sized(fd, MAX_META).decode("utf-8", "replace"))
    except RecursionError:
        # Nested deeper than json can read: no meta hookrun writes (a flat object).
        raise OSError(errno.EINVAL, "nested too deeply to be a run's meta.json") from None
    except ValueError:
        return {}
    finally:
        os.close(fd)
    return meta if isinstance(meta, dict) else {}


class RunDir:
    """The directory of one run, created under a hidden name and renamed once locked, so no
    recovery ever sees it unlocked."""

    def __init__(self, path: str, lock_fd: int | None, meta: Mapping[str, object]) -> None:
        self.path = path
        self.lock_fd = lock_fd
        self.meta = meta

    @classmethod
    def create(cls, state_dir: str, run_id: str, meta: Mapping[str, str | int]) -> RunDir:
        runs = os.path.join(state_dir, RUNS)
        hidden = os.path.join(runs, NEW_PREFIX + run_id)
        final = os.path.join(runs, run_id)
        lock_fd = None
        try:
            os.mkdir(hidden, 0o700)
            lock_fd = os.open(os.path.join(hidden, c.RUN_OWNER_LOCK), os.O_RDWR | NEW, PRIVATE)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            write_new(os.path.join(hidden, c.RUN_META), flat_json(meta).encode())
            os.rename(hidden, final)
        except OSError as error:
            remove_tree(hidden)
            if lock_fd is not None:
                os.close(lock_fd)
            raise StateError(f"cannot create run directory in {runs}: "
                             f"{error.strerror or error}") from None
        return cls(final, lock_fd, meta)

    @property
    def run_id(self) -> str:
        """Its meta's run id; its directory's name (the same) if meta.json has none, or one
        that is not a string (a hand-edited file), which no message could show."""
        run_id = self.meta.get("run_id")
        return run_id if isinstance(run_id, str) and run_id else os.path.basename(self.path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def remove(self) -> None:
        """Remove the directory of a run whose cleanups have all run. It is first renamed
        out of recovery's sight, so that a crash half-way through removing it cannot leave
        a journal without its marks, or a directory without its lock, for recovery to see."""
        gone = os.path.join(os.path.dirname(self.path), GONE_PREFIX + os.path.basename(self.path))
        try:
            os.rename(self.path, gone)
        except OSError:
            gone = self.path
        remove_tree(gone)
        self.release()

    def keep(self) -> str:
        """Move the directory aside, out of recovery's way, for a person to inspect (its
        journal had lines that were not run); returns where it is now."""
        kept = os.path.join(os.path.dirname(self.path), KEPT_PREFIX + os.path.basename(self.path))
        try:
            os.rename(self.path, kept)
        except OSError:
            kept = self.path
        self.release()
        return kept

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def write_new(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | NEW, PRIVATE)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def run_dir_problem(path: str, euid: int) -> str | None:
    """Why the run directory ``path`` must not be replayed, or None: it and its journal must
    be hookrun's own and writable by no one else. (A journal that is not a regular file is
    damage, found by ``damage``.)"""
    for entry, want_dir in ((path, True), (os.path.join(path, c.JOURNAL_NAME), False)):
        try:
            info = os.lstat(entry)
        except FileNotFoundError:
            continue
        except OSError as error:
            return f"{shown(entry)}: {error.strerror}"
        if want_dir and not stat.S_ISDIR(info.st_mode):
            return f"{shown(entry)} is not a directory"
        if info.st_uid != euid:
            return f"{shown(entry)} is owned by uid {info.st_uid}"
        if info.st_mode & WRITABLE_BY_OTHERS:
            return f"{shown(entry)} is writable by group or others"
    return None


def scan(state_dir: str) -> list[tuple[str, str]]:
    """The run directories in ``runs/``, except those still being made: [(name, path)]. A
    hidden one long past making is a run that died making it: removed, if its lock is free."""
    runs = os.path.join(state_dir, RUNS)
    try:
        names = sorted(os.listdir(runs))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found: list[tuple[str, str]] = []
    for name in names:
        path = os.path.join(runs, name)
        if name.startswith(NEW_PREFIX):
            remove_if_stale(path)
        elif name.startswith(GONE_PREFIX):
            remove_tree(path)  # a run that died removing its own
        elif not name.startswith("."):
            found.append((name, path))
    return found


def remove_if_stale(path: str) -> None:
    try:
        if time.time() - os.lstat(path).st_mtime < STALE_NEW_SECONDS:
            return
    except OSError:
        return
    try:
        fd = try_lock(os.path.join(path, c.RUN_OWNER_LOCK))
    except OSError:
        return  # a damaged lock: left for a person to look at
    if fd is not None:
        remove_tree(path)
        os.close(fd)


def damage(path: str) -> tuple[str, None] | tuple[None, Meta]:
    """(why, None) when the run directory ``path`` of a dead run is damaged: its journal is
    not a regular file, or its meta.json is not one or cannot be read (an I/O error); else
    (None, its meta)."""
    journal = os.path.join(path, c.JOURNAL_NAME)
    try:
        if not stat.S_ISREG(os.lstat(journal).st_mode):
            return f"{shown(journal)} is not a regular file", None
    except FileNotFoundError:
        pass
    except OSError as error:
        return f"{shown(journal)}: {error.strerror or error}", None
    try:
        return None, read_meta(path)
    except OSError as error:
        return f"{shown(os.path.join(path, c.RUN_META))}: {error.strerror or error}", None


def live_rivals(state_dir: str, own: RunDir) -> tuple[list[Meta], list[Meta]]:
    """The meta of every other run directory that holds the event lock of the same event as
    the RunDir ``own`` and is locked: a second guard behind the event lock, which a deleted
    lock file would otherwise defeat. Returns (rivals, recovering): live runs, and dead runs
    whose lock another process holds (a recovery, or a cleanup the dead run left running),
    which must be waited for, never taken for the dead run itself."""
    rivals: list[Meta] = []
    recovering: list[Meta] = []
    for _name, path in scan(state_dir):
        if path == own.path:
            continue
        try:
            meta = read_meta(path)
        except OSError:
            continue  # damaged: whose it is cannot be told; recovery sets it aside if dead
        if not meta.get("exclusive") or meta.get("event") != own.meta.get("event"):
            continue
        try:
            fd = try_lock(os.path.join(path, c.RUN_OWNER_LOCK))
        except OSError:
            continue  # a lock no run can hold: damaged, recovery sets it aside
        if fd is not None:
            os.close(fd)  # dead: recovery's business, not a rival
            continue
        if not os.path.isdir(path):
            continue  # its cleanups have run and it is gone
        (rivals if run_alive(meta) else recovering).append(meta)
    return rivals, recovering


def process_start(pid: int) -> int | None:
    """When the process ``pid`` started (clock ticks since boot, /proc/PID/stat), so that a
    recycled pid is not taken for it; None if there is no such live process (or no /proc)."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None  # ended, not yet reaped
    return int(fields[19])


def run_alive(meta: Mapping[str, object]) -> bool:
    """Whether the run of ``meta`` (its pid, and when that process started) still lives.
    Without a pid it is taken for alive: a guard must not be let down by a guess."""
    pid = meta.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return True
    started = process_start(pid)
    if started is None:
        if os.path.isdir("/proc/self"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass
        return True
    return meta.get("pid_start") in (None, started)
