"""Deferred cleanups: the journal a run's hooks append to, and its replay, last first.

The journal (``$HOOKRUN_CLEANUP``) holds one /bin/sh command line per line; ``hookrun defer``
appends ``shlex.join(argv)``, so the quoting of its arguments is kept. A second file records,
durably, the index of each cleanup once it has run to its end: a cleanup cut off by a crash is
not marked and runs again at recovery.
"""

import fcntl
import os
import shlex

from orchestrator.errors import UsageError

JOURNAL = "cleanup"
DONE = "cleanup.done"


def defer(argv, journal_path):
    """Append ``argv`` to the journal of the running hook's run (``hookrun defer``)."""
    if not journal_path:
        raise UsageError("defer: not inside a hookrun run ($HOOKRUN_CLEANUP is not set)")
    if not argv:
        raise UsageError("defer: no command given (hookrun defer [--] COMMAND [ARG...])")
    line = shlex.join(argv)
    if "\n" in line or "\0" in line:
        raise UsageError("defer: a cleanup command cannot contain a newline or NUL")
    try:
        fd = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError as error:
        raise UsageError(f"defer: not inside a live hookrun run ({journal_path}: "
                         f"{error.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (line + "\n").encode("utf-8", "surrogateescape"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return line


class Journal:
    """The cleanup journal of one run directory."""

    def __init__(self, run_dir_path):
        self.path = os.path.join(run_dir_path, JOURNAL)
        self.done_path = os.path.join(run_dir_path, DONE)

    def create(self):
        for path in (self.path, self.done_path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))

    def entries(self):
        """Every registered cleanup line, in registration order (blank and # lines dropped)."""
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return []
        lines = raw.decode("utf-8", "surrogateescape").split("\n")
        return [(n, line) for n, line in enumerate(lines)
                if line.strip() and not line.lstrip().startswith("#")]

    def done(self):
        try:
            with open(self.done_path, encoding="ascii") as handle:
                return {int(n) for n in handle.read().split() if n.isdigit()}
        except (FileNotFoundError, ValueError):
            return set()

    def pending(self):
        """(index, line) of the cleanups not yet run to their end, last registered first."""
        done = self.done()
        return [entry for entry in reversed(self.entries()) if entry[0] not in done]

    def mark_done(self, index):
        fd = os.open(self.done_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, f"{index}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
