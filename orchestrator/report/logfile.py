"""The log file: every line of every task's output, as the bytes came, each behind its own
prefix (time, run, task, stream), and every task's start and end; rotated at LOG_MAX_BYTES with
LOG_BACKUPS kept. Also reads a task's whole output back (``hookrun show --output``)."""

from __future__ import annotations

import os
import sys

from orchestrator import constants as c
from orchestrator.files import open_regular, unlink_quietly
from orchestrator.text import display, display_name
from orchestrator.timestamps import now_iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from typing import TextIO

    from orchestrator.outcome import TaskRecord


def print_task_output(log_path: str | None, run_id: str, where: str,
                      out: TextIO | None = None) -> bool:
    """Print every output line of the task ``where`` (``PHASE/NAME`` as the log and
    ``show`` name it) of run ``run_id``, from the log file and its rotations, oldest first,
    escaped as the terminal shows output; returns whether there was any."""
    if not log_path:
        return False
    out = out or sys.stdout
    run = b" " + run_id.encode() + b" " + display_name(where).encode() + b" "
    found = False
    for path in [f"{log_path}.{n}" for n in range(c.LOG_BACKUPS, 0, -1)] + [log_path]:
        try:
            # Never a FIFO planted at the log's path: reading it would wait for a writer.
            handle = os.fdopen(open_regular(path, os.O_RDONLY), "rb")
        except OSError:
            continue
        try:
            with handle:
                for line in handle:
                    start = line.find(b" ")
                    if line.startswith(run, start) and \
                            line[start + len(run):].startswith((b"stdout: ", b"stderr: ")):
                        text = line[start + len(run) + 8:].rstrip(b"\n")
                        out.write(display(text) + "\n")
                        found = True
        except OSError:
            continue
    return found


class LogFile:
    """The log file: bytes as they came, one prefixed line each, rotated at LOG_MAX_BYTES with
    LOG_BACKUPS kept (``hookrun.log.1`` is the newest old one, as logging.handlers names them).
    Written with one write() per chunk and no buffering, so a killed run leaves a useful log."""

    def __init__(self, path: str, run_id: str, task_max_bytes: int | None = None) -> None:
        # files.log_target's: a link of root's or the user's (/var/log/hookrun.log pointing
        # to a larger disk) is resolved, so the file it names is written and rotated there.
        self.path = path
        self.run_id = run_id.encode()
        # Each task's output logged so far, and what was left out past task_max_bytes.
        self.task_max_bytes = task_max_bytes or 0
        self.logged: dict[bytes, int] = {}
        self.left_out: dict[bytes, int] = {}
        self.fd: int | None = None
        self.size = 0
        self.error: str | None = None
        self.removers: list[threading.Thread] = []
        self.open()

    def open(self) -> None:
        from orchestrator.files import open_own

        self.fd = open_own(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self.size = os.fstat(self.fd).st_size

    def rotate(self) -> None:
        # No descriptor is kept while the files move: if a move or the new open fails, the
        # write's error path must not close the closed (or by then reused) descriptor again.
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        self.discard(f"{self.path}.{c.LOG_BACKUPS}")
        for n in range(c.LOG_BACKUPS - 1, 0, -1):
            older = f"{self.path}.{n}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")
        self.open()

    def discard(self, path: str) -> None:
        """Remove the oldest log out of the way at once, and free its blocks in a thread:
        unlinking 10 MiB costs a hook streaming output as much as writing it."""
        import threading

        doomed = f"{path}.removing"
        try:
            os.replace(path, doomed)
        except FileNotFoundError:
            return
        remover = threading.Thread(target=unlink_quietly, args=(doomed,), daemon=True)
        remover.start()
        self.removers.append(remover)

    def write(self, *parts: bytes) -> None:
        if self.fd is None:
            return
        size = sum(map(len, parts))
        try:
            if self.size and self.size + size > c.LOG_MAX_BYTES:
                self.rotate()
            os.writev(self.fd, parts)
            self.size += size
        except OSError as error:
            # A full disk must not stop the backup: say so once, then go on without a log.
            self.error = f"log file {self.path}: {error.strerror}; logging stopped"
            self.close()

    def lines(self, where: bytes, stream: str, block: bytes) -> None:
        """A block of lines of ``where`` (e.g. ``pre/10-x``) on ``stream``, each prefixed;
        past ``task_max_bytes`` of the task's output, a note once and then nothing."""
        capped = False
        if self.task_max_bytes:
            block, capped = self.within_cap(where, block)
        if block:
            prefix = b"%s %s %s %s: " % (now_iso().encode(), self.run_id, where, stream.encode())
            self.write(prefix, block.replace(b"\n", b"\n" + prefix), b"\n")
        if capped:
            name = where.decode("utf-8", "surrogateescape")
            self.event(f"{name} output truncated after {self.task_max_bytes} bytes "
                       "(log_task_max_bytes): the rest is not logged, its last lines are in "
                       "the history")

    def within_cap(self, where: bytes, block: bytes) -> tuple[bytes, bool]:
        """(what of ``block`` the task ``where`` may still log, cut after a whole line where
        it can be, or b""; whether this block reached the cap)."""
        logged = self.logged.get(where, 0)
        room = self.task_max_bytes - logged
        if room <= 0:
            self.left_out[where] = self.left_out.get(where, 0) + len(block) + 1
            return b"", False
        if len(block) + 1 <= room:
            self.logged[where] = logged + len(block) + 1
            return block, False
        cut = block.rfind(b"\n", 0, room)
        # A line is cut only when the task's very first one is longer than the cap.
        kept = block[:cut] if cut > 0 else block[:room - 1] if not logged else b""
        self.left_out[where] = len(block) + 1 - len(kept) - (1 if kept else 0)
        self.logged[where] = self.task_max_bytes
        return kept, True

    def finished(self, where: str, record: TaskRecord) -> None:
        """The end of a task, as a record of its own."""
        key = where.encode("utf-8", "surrogateescape") if isinstance(where, str) else where
        if self.left_out.get(key):
            self.event(f"{where} output truncated, {self.left_out.pop(key)} bytes more")
        self.event(f"{where} end status={record.status} exit={record.exit_code} "
                   f"attempts={record.attempts} duration={record.duration:.3f}"
                   + (f" reason={record.reason}" if record.reason else ""))

    def event(self, text: str) -> None:
        self.write(b"%s %s %s\n" % (now_iso().encode(), self.run_id,
                                    display_name(text).encode()))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        for remover in self.removers:
            remover.join(timeout=5)
        self.removers = []


