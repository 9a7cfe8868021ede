"""The per-event lock: one run of an event at a time (design.md section 2, step 2).

flock(2) on STATE_DIR/locks/EVENT.lock: the kernel drops it when its holder dies, however it
dies, so a lock left by a dead process is simply taken over.
"""

import fcntl
import os
import time

from orchestrator.errors import LockBusy, StateError

WAIT_STEP = 0.1


class EventLock:
    """Holds the lock of ``event`` once acquire() returned."""

    def __init__(self, state_dir, event):
        directory = os.path.join(state_dir, "locks")
        self.path = os.path.join(directory, f"{event}.lock")
        self.event = event
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StateError(f"cannot create lock file {self.path}: {error.strerror}") from None

    def try_acquire(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return True

    def acquire(self, wait=None, signals=None):
        """Take the lock; wait up to ``wait`` seconds (inf: for ever) if it is held.

        Raises LockBusy naming the holder's pid. Returns False if a signal came while waiting.
        """
        deadline = None if wait is None else time.monotonic() + wait
        while not self.try_acquire():
            if deadline is None or time.monotonic() >= deadline:
                raise LockBusy(f"event '{self.event}' is locked by another hookrun run "
                               f"(pid {self.holder()}); try again later or use --wait")
            if signals is not None:
                signals.sleep(min(WAIT_STEP, max(0.0, deadline - time.monotonic())))
                if signals.first:
                    return False
            else:
                time.sleep(WAIT_STEP)
        return True

    def holder(self):
        try:
            return os.pread(self.fd, 32, 0).decode().strip() or "unknown"
        except (OSError, UnicodeDecodeError):
            return "unknown"

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
