"""The per-event lock: one run of an event at a time (design.md section 2, step 2).

flock(2) on STATE_DIR/locks/EVENT.lock: the kernel drops it when its holder dies, however it
dies, so a lock left by a dead process is simply taken over. A lock is only held once the file
locked is still the one at the path: a lock file deleted or replaced while someone waited for
it is opened again. A lock file deleted while held is caught by the run directory scan of
``statedir.live_rivals``.
"""

from __future__ import annotations

import fcntl
import os
import time

from orchestrator.errors import LockBusy, StateError
from orchestrator.files import open_own
from orchestrator.state.statedir import LOCKS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orchestrator.process import Signals

WAIT_STEP = 0.1


class EventLock:
    """Holds the lock of ``event`` once acquire() returned True."""

    def __init__(self, state_dir: str, event: str) -> None:
        self.path = os.path.join(state_dir, LOCKS, f"{event}.lock")
        self.event = event
        self.fd: int | None = None
        self.holder = "unknown"

    def open(self) -> int:
        try:
            fd: int = open_own(self.path, os.O_RDWR | os.O_CREAT)
            return fd
        except OSError as error:
            raise StateError(f"cannot create lock file {self.path}: "
                             f"{error.strerror or error}") from None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another process holds it."""
        while True:
            fd = self.open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.holder = read_pid(fd)
                os.close(fd)
                return False
            if still_at(fd, self.path):
                break
            # Deleted or replaced while we waited for it: the lock that counts is the new one.
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same; its holder reads as unknown
        self.fd = fd
        return True

    def acquire(self, wait: float | None = None, signals: Signals | None = None) -> bool:
        """Take the lock; wait up to ``wait`` seconds (inf: for ever) if it is held.

        Raises LockBusy naming the holder's pid. Returns False if a signal came while waiting.
        """
        deadline = None if wait is None else time.monotonic() + wait
        while not self.try_acquire():
            if deadline is None or time.monotonic() >= deadline:
                raise self.busy(waited=wait is not None)
            step = min(WAIT_STEP, max(0.0, deadline - time.monotonic()))
            if signals is not None:
                signals.sleep(step)
                if signals.first:
                    return False
            else:
                time.sleep(step)
        return True

    def busy(self, waited: bool = False, holder: object = None) -> LockBusy:
        """The LockBusy error for this event, naming the holder's pid."""
        advice = "gave up waiting" if waited else "try again later or use --wait"
        return LockBusy(f"event '{self.event}' is locked by another hookrun run "
                        f"(pid {holder or self.holder}); {advice}")

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def still_at(fd: int, path: str) -> bool:
    try:
        now = os.lstat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"
