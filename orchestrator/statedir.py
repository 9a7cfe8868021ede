"""The state directory (mode 0700) and the directory each live run keeps in it.

STATE_DIR/runs/RUN_ID/ holds the run's cleanup journal, its HOOKRUN_ENV files and error log,
and ``owner.lock``, flocked by the run for its whole life. The kernel drops the flock when the
run dies, so a run directory whose lock can be taken belongs to a dead run whose pending
cleanups must be recovered.
"""

import fcntl
import json
import os
import shutil

from orchestrator.errors import StateError

RUNS = "runs"
OWNER_LOCK = "owner.lock"
META = "meta.json"


def ensure_state_dir(path):
    """Create ``path`` (mode 0700) if needed; StateError (73) when it cannot be."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as error:
        raise StateError(f"cannot create state directory {path}: "
                         f"{error.strerror or error}") from None


def write_private(path, data):
    """Write ``data`` (bytes) to ``path``, mode 0600. Not synced: what is written this way
    (meta.json, error.log, record.json) only serves the live run, and a run directory whose
    meta.json was lost is still recovered, under its directory's name."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def try_lock(path):
    """An fd holding an exclusive flock on ``path``, or None if someone holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class RunDir:
    """The directory of one run, created under a hidden name and renamed once locked, so no
    recovery ever sees it unlocked."""

    def __init__(self, path, lock_fd, meta):
        self.path = path
        self.lock_fd = lock_fd
        self.meta = meta

    @classmethod
    def create(cls, state_dir, run_id, meta):
        runs = os.path.join(state_dir, RUNS)
        hidden = os.path.join(runs, f".new-{run_id}")
        final = os.path.join(runs, run_id)
        try:
            os.makedirs(runs, mode=0o700, exist_ok=True)
            os.mkdir(hidden, mode=0o700)
            lock_fd = os.open(os.path.join(hidden, OWNER_LOCK),
                              os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            write_private(os.path.join(hidden, META), json.dumps(meta).encode())
            os.rename(hidden, final)
        except OSError as error:
            raise StateError(f"cannot create run directory in {runs}: "
                             f"{error.strerror or error}") from None
        return cls(final, lock_fd, meta)

    def file(self, name):
        return os.path.join(self.path, name)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def dead_runs(state_dir):
    """RunDirs of runs that died with their directory still there, each now locked by us."""
    runs = os.path.join(state_dir, RUNS)
    try:
        names = sorted(os.listdir(runs))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(runs, name)
        fd = try_lock(os.path.join(path, OWNER_LOCK))
        if fd is None:
            continue
        if name.startswith("."):
            # Died before it was renamed: it cannot have registered anything.
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)
            continue
        try:
            with open(os.path.join(path, META), encoding="utf-8") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            meta = {"run_id": name, "event": None}
        found.append(RunDir(path, fd, meta))
    return found


def count_dead_runs(state_dir):
    """How many dead runs wait for recovery, without taking their locks for long."""
    dead = dead_runs(state_dir)
    for run_dir in dead:
        run_dir.release()
    return len(dead)
