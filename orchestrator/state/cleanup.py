"""Deferred cleanups, the whole feature: the journal a run's hooks append to (Journal,
defer), its replay, last registered first (Replay, with the wrapper shell that marks each
cleanup done), the runs that died with cleanups pending (dead_runs) and their recovery
(recover), and what becomes of a run directory once its cleanups ran (close_run_dir).

The journal (``$HOOKRUN_CLEANUP``) holds one /bin/sh command line per line; ``hookrun defer``
appends ``shell.join(argv)``, so the quoting of its arguments is kept. Only complete lines
(ended by a newline, with no NUL byte) are ever executed: a torn last line or a zeroed tail
after a power loss is reported and kept for inspection.

A second file, the marks, holds one byte per journal line, set once that cleanup has run to
its end; a cleanup cut off by a crash is not marked and runs again at recovery. Its space is
reserved (fallocate) before a cleanup is registered, so marking one done never needs a block
that a full disk could refuse: a cleanup never runs twice because its mark could not be
written.

A hook that runs as another user (``user=``) gets a journal of its own, ``cleanup.task-N``
with its marks, created by hookrun and given to that user, and reached only through
descriptors it inherits (``$HOOKRUN_CLEANUP`` is ``/dev/fd/N``): the run directory stays
root's. hookrun writes ``#hookrun-journal cleanup.task-N`` into the run's journal where that
hook's turn came, so the order of all cleanups is kept, and runs that journal's lines as the
user who owns it: a line cannot say whom it runs as.
"""

from __future__ import annotations

import errno
import fcntl
import os

from orchestrator import constants as c
from orchestrator import shell
from orchestrator.errors import StateError, UsageError
from orchestrator.files import READ, NotOwnFile, open_own, read_sized
from orchestrator.state.statedir import (
    RUNS,
    RunDir,
    damage,
    run_dir_problem,
    scan,
    try_lock,
)
from orchestrator.text import display_name, shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from orchestrator.engine import Engine
    from orchestrator.outcome import TaskRecord
    from orchestrator.process import Signals
    from orchestrator.report.output import Reporter
    from orchestrator.state.history import History, NoHistory

    # A cleanup not yet run: its journal, its line's index there, the line.
    Pending = tuple["Journal", int, str]
    # A dead run's directory that is not replayed: its path, what is wrong with it, whether
    # it is damaged (else not hookrun's own), and where it was set aside (or None).
    Refused = tuple[str, "str | None", bool, "str | None"]

DONE = b"\x01"
RESERVED = 65536  # bytes of marks reserved when a run starts: journals up to 64 KiB
MAX_JOURNAL = 4 << 20  # what is read of a journal; lines past it are reported, not run
SUB_LINE = b"#hookrun-journal "
FD_PREFIX = "/dev/fd/"
# $1 the cleanup line, $2 its index, $3 the marks file, and the words after them (if any) run
# the cleanup as the user who deferred it (accounts.as_identity_argv); fd 3 holds the run's
# owner lock and is closed for the cleanup itself, so a daemon it starts cannot keep the lock.
# The mark is one byte written in place, into space reserved when the cleanup was registered.
CLEANUP_WRAPPER = ('line=$1 index=$2 marks=$3; shift 3; "$@" /bin/sh -c "$line" 3>&-; '
                   'status=$?; printf "\\001" | dd of="$marks" bs=1 seek="$index" count=1 '
                   'conv=notrunc 2>/dev/null; exit $status')


def marks_path(journal_path: str) -> str:
    return os.path.join(os.path.dirname(journal_path), c.JOURNAL_MARKS)


def inherited_fd(path: str) -> int | None:
    """The descriptor number of a ``/dev/fd/N`` path, else None."""
    number = path[len(FD_PREFIX):] if path and path.startswith(FD_PREFIX) else ""
    return int(number) if number.isascii() and number.isdigit() else None


def open_journal_file(path: str, flags: int) -> int:
    """open_own(), or for ``/dev/fd/N`` (a hook run as another user) a new descriptor of
    that inherited file, checked as open_own checks."""
    number = inherited_fd(path)
    if number is None:
        return open_own(path, flags)
    fd = os.open(path, (flags & ~os.O_CREAT) | os.O_CLOEXEC)
    import stat as _stat

    from orchestrator.files import own_file_problem

    problem = own_file_problem(path, os.fstat(fd))
    if problem or not _stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotOwnFile(problem or f"{path} is not a regular file")
    return fd


def reserve(journal_path: str, size: int, marks: str | None = None) -> None:
    """Reserve ``size`` bytes of marks (one per possible line of a journal that long);
    OSError (ENOSPC) if the disk cannot hold them."""
    fd = open_journal_file(marks or marks_path(journal_path), os.O_WRONLY | os.O_CREAT)
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def defer(argv: Sequence[str], journal_path: str | None,
          marks: str | None = None) -> tuple[str, str | None]:
    """Append ``argv`` to the journal of the running hook's run (``hookrun defer``), once the
    space its done-mark needs is reserved; StateError (73) if the disk cannot hold either. A
    registration either lands whole or not at all: a write cut short is taken back. Returns
    the line registered, and a warning for its caller to show, or None."""
    if not journal_path:
        raise UsageError("defer: not inside a hookrun run ($HOOKRUN_CLEANUP is not set)")
    if not argv:
        raise UsageError("defer: no command given (hookrun defer [--] COMMAND [ARG...])")
    if not argv[0]:
        # It would only fail at the wind-down, when nothing can be done about it any more.
        raise UsageError("defer: the command's name is empty")
    line = shell.join(argv)
    if "\n" in line or "\0" in line:
        raise UsageError("defer: a cleanup command cannot contain a newline or NUL")
    data = (line + "\n").encode("utf-8", "surrogateescape")
    try:
        fd = open_journal_file(journal_path, os.O_RDWR | os.O_APPEND)
    except (FileNotFoundError, NotADirectoryError) as error:
        raise UsageError(f"defer: not inside a live hookrun run ({journal_path}: "
                         f"{error.strerror})") from None
    except OSError as error:
        raise StateError(f"defer: cannot open the cleanup journal {journal_path}: "
                         f"{error.strerror or error}") from None
    warning = None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        append_whole(fd, journal_path, data, line, marks)
        try:
            os.fsync(fd)
        except OSError as error:
            # The line is in the journal and runs; only a power loss now could lose it.
            warning = f"defer: registered, but not synced to disk: {error.strerror or error}"
    finally:
        os.close(fd)
    return line, warning


def append_whole(fd: int, journal_path: str, data: bytes, line: str,
                 marks: str | None = None) -> None:
    """Append ``data`` to the journal open at ``fd``, whole or not at all (StateError)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        # An unfinished last line (a write cut off by a crash or a full disk): a NUL ends it,
        # so it is reported and never run, and is not glued to this registration.
        data = b"\0\n" + data
    try:
        reserve(journal_path, size + len(data), marks)
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as error:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass  # the next registration ends what is left with a NUL
        raise StateError(f"defer: cannot register the cleanup {line!r}: "
                         f"{error.strerror or error}") from None


class Journal:
    """The cleanup journal of one run directory."""

    def __init__(self, run_dir_path: str, name: str = c.JOURNAL_NAME,
                 owner: int | None = None) -> None:
        self.run_dir_path = run_dir_path
        self.path = os.path.join(run_dir_path, name)
        self.marks_path = os.path.join(run_dir_path, c.JOURNAL_MARKS if name == c.JOURNAL_NAME
                                       else f"{name}.marks")
        # None: hookrun's own journal; else the uid its lines run as (a user= hook's).
        self.owner = owner
        # (line number or None, why) of what the last read() did not run
        self.damaged: list[tuple[int | None, str]] = []
        # Set when its cleanups could not be read or run to the end (an I/O error, a fault):
        # they wait for recovery.
        self.unreadable = False
        self.read_failed = False  # set when the journal itself could not be read
        # (line index, sub-journal name) of the user= hooks' journals
        self.subs: list[tuple[int, str]] = []

    def open(self, path: str, flags: int) -> int:
        """A file of this journal: hookrun's own (open_own), or, for a user's journal, a
        regular file that only its owner can write, never through a link (nor a FIFO:
        open_regular)."""
        if self.owner is None:
            return open_own(path, flags)
        from orchestrator.files import open_regular, own_file_problem

        fd = open_regular(path, flags)
        info = os.fstat(fd)
        problem = own_file_problem(path, info, euid=info.st_uid)
        if problem:
            os.close(fd)
            raise NotOwnFile(problem)
        self.owner = info.st_uid
        return fd

    def create_for(self, uid: int, gid: int) -> tuple[int, ...]:
        """Create this (user's) journal and its marks for ``uid``: new files (O_EXCL, never
        through a link) given to that user; returns (journal fd, marks fd), open for the
        user's hook to inherit."""
        fds: list[int] = []
        try:
            for path in (self.path, self.marks_path):
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC | os.O_APPEND * (path == self.path), 0o600)
                fds.append(fd)
                os.fchown(fd, uid, gid)
            os.posix_fallocate(fds[1], 0, RESERVED)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        self.owner = uid
        return tuple(fds)

    def create(self) -> None:
        """Create the empty journal and the marks, with their first reservation."""
        os.close(open_own(self.path, os.O_WRONLY | os.O_CREAT))
        reserve(self.path, RESERVED)

    def reserve_all(self) -> None:
        """Reserve marks for every line the journal can hold now (lines a hook appended by
        hand, past the first reservation); OSError if the disk cannot hold them."""
        if self.owner is None:
            reserve(self.path, os.lstat(self.path).st_size)
            return
        fd = self.open(self.marks_path, os.O_WRONLY)
        try:
            size = os.lstat(self.path).st_size
            if os.fstat(fd).st_size < size:
                os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)

    def read(self) -> list[tuple[int, str]]:
        """The complete lines as (index, line) in registration order (blank and # lines
        dropped). What is never run is left in ``self.damaged``: (line number, why). OSError
        when the journal cannot be read now."""
        self.damaged = []
        try:
            fd = self.open(self.path, READ)
        except FileNotFoundError:
            return []
        except NotOwnFile as error:
            self.damaged.append((None, error.strerror or str(error)))
            return []
        except OSError:
            self.read_failed = True
            raise
        try:
            raw = read_sized(fd, MAX_JOURNAL + 1)
        except OSError:
            self.read_failed = True
            raise
        finally:
            os.close(fd)
        lines = raw.split(b"\n")
        rest = lines.pop()
        entries: list[tuple[int, str]] = []
        self.subs = []
        for index, line in enumerate(lines):
            if self.owner is None and line.startswith(SUB_LINE):
                name = line[len(SUB_LINE):].decode("ascii", "replace")
                number = name[len(c.SUB_JOURNAL_PREFIX):]
                if name.startswith(c.SUB_JOURNAL_PREFIX) and number.isdigit():
                    self.subs.append((index, name))
            if b"\0" in line:
                self.damaged.append((index + 1, "holds a NUL byte"))
            elif line.strip() and not line.lstrip().startswith(b"#"):
                entries.append((index, line.decode("utf-8", "surrogateescape")))
        if len(raw) > MAX_JOURNAL:
            self.damaged.append((len(lines) + 1, f"and the rest are past {MAX_JOURNAL >> 20} MiB"))
        elif rest:
            self.damaged.append((len(lines) + 1, "is not complete (no newline at its end)"))
        return entries

    def done(self) -> set[int]:
        """The indexes of the cleanups marked done. OSError when the marks cannot be read
        now (they are not taken for "none done": that would run every cleanup again)."""
        try:
            fd = self.open(self.marks_path, READ)
        except FileNotFoundError:
            return set()
        try:
            marks = read_sized(fd, MAX_JOURNAL + 1)
        finally:
            os.close(fd)
        # Only the marked part is looked at, not the whole reservation.
        return {index for index, mark in enumerate(marks.rstrip(b"\0")) if mark}

    def pending(self) -> list[Pending]:
        """(journal, index, line) of the cleanups not yet run to their end, last registered
        first: this journal's, and where a user= hook's turn came, that hook's journal's."""
        entries = self.read()
        done = self.done()
        found: list[Pending] = []
        turns = sorted([(index, None, line) for index, line in entries]
                       + [(index, name, "") for index, name in self.subs])
        for index, name, line in turns:
            if name is None:
                if index not in done:
                    found.append((self, index, line))
                continue
            sub = Journal(self.run_dir_path, name, owner=-1)
            found += reversed(sub.pending())
            self.damaged += [(number, f"({name}) {why}") for number, why in sub.damaged]
        return list(reversed(found))

    def add_sub(self, name: str) -> None:
        """Note in this journal that the cleanups of the user's journal ``name`` come here."""
        fd = self.open(self.path, os.O_RDWR | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            append_whole(fd, self.path, SUB_LINE + name.encode() + b"\n", name)
        finally:
            os.close(fd)

    def mark_done(self, index: int) -> None:
        """Set the mark of line ``index``, in space reserved for it."""
        fd = self.open(self.marks_path, os.O_WRONLY)
        try:
            os.pwrite(fd, DONE, index)
            os.fsync(fd)
        finally:
            os.close(fd)


def dead_runs(state_dir: str, set_aside: bool = True) -> tuple[list[RunDir], list[Refused]]:
    """RunDirs of runs that died with their directory still there, each now locked by us,
    and a Refused for each dead run that is not replayed: not hookrun's own, or damaged (a
    meta.json or journal that is not a regular file or cannot be read), which is set aside
    as ``.damaged-NAME`` (if ``set_aside``) so that it stops no later run."""
    euid = os.geteuid()
    found: list[RunDir] = []
    refused: list[Refused] = []
    for name, path in scan(state_dir):
        problem = run_dir_problem(path, euid)
        if problem:
            refused.append((path, problem, False, None))
            continue
        try:
            fd = try_lock(os.path.join(path, c.RUN_OWNER_LOCK))
        except NotOwnFile as error:
            # No live run can hold a lock that is not a regular file: the directory is
            # damaged.
            lock = os.path.join(path, c.RUN_OWNER_LOCK)
            fd, problem, meta = None, f"{shown(lock)}: {error.strerror or error}", None
        except OSError:
            # An I/O error or no descriptor left says nothing of whether its run lives: it
            # is neither replayed nor set aside now, and is looked at again next time.
            continue
        else:
            if fd is None:
                continue
            problem, meta = damage(path)
        if meta is not None:  # undamaged
            meta.setdefault("run_id", name)
            found.append(RunDir(path, fd, meta))
        elif set_aside:
            refused.append((path, problem, True, RunDir(path, fd, {}).keep()))
        else:
            if fd is not None:
                os.close(fd)
            refused.append((path, problem, True, None))
    return found, refused


def count_dead_runs(state_dir: str) -> tuple[int, list[Refused]]:
    """How many dead runs wait for recovery, and a Refused for each that is not replayed,
    without taking their locks for long or changing anything."""
    dead, refused = dead_runs(state_dir, set_aside=False)
    for run_dir in dead:
        run_dir.release()
    return len(dead), refused


class Replay:
    """Runs the pending cleanups of journals, last registered first, through a ``runner``
    (the Engine: its run_cleanup runs one line as a task, with its reporter and signals)."""

    def __init__(self, runner: Engine) -> None:
        self.runner = runner
        self.reporter: Reporter = runner.reporter
        self.signals: Signals = runner.signals
        # (journal path, line number, why) of damage already warned about: a journal is
        # read again at each pass of the wind-down, and each damage is told once.
        self.damage_reported: set[tuple[str, int | None, str]] = set()

    def run(self, journal: Journal, phase: str, lock_fd: int | None) -> list[TaskRecord]:
        """Run the pending cleanups of ``journal`` (``lock_fd`` is the owner lock of its run
        directory), last registered first, each marked done once it has run to its end;
        cleanups registered meanwhile run too. A second signal stops here
        and leaves the rest pending. Lines that are never run are reported, and left in
        ``journal.damaged``. Returns their TaskRecords."""
        try:
            journal.reserve_all()
        except OSError as error:
            self.reporter.cannot_reserve_marks(journal.marks_path, error)
        runs: list[TaskRecord] = []
        while not self.signals.hard_stop:
            try:
                pending = self.read_pending(journal)
            except (OSError, MemoryError) as error:
                journal.unreadable = True
                self.reporter.cannot_read_cleanups(journal.path, error)
                break
            self.report_damage(journal)
            if not pending:
                break
            for number, (owner, index, line) in enumerate(pending, 1):
                if self.signals.hard_stop:
                    break
                runs.append(self.runner.run_cleanup(line, phase, number, len(pending),
                                                    (index, owner, lock_fd)))
                if not self.signals.hard_stop:
                    self.mark_done(owner, index)
        return runs

    def read_pending(self, journal: Journal) -> list[Pending]:
        """journal.pending(), tried JOURNAL_READ_ATTEMPTS times: an I/O error may pass, and
        until the journal is read its cleanups cannot run. OSError from the last attempt."""
        attempt = 1
        while True:
            try:
                return journal.pending()
            except (OSError, MemoryError):
                if attempt >= c.JOURNAL_READ_ATTEMPTS or self.signals.hard_stop:
                    raise
                attempt += 1
                self.signals.sleep(c.JOURNAL_RETRY_DELAY)

    def report_damage(self, journal: Journal) -> None:
        """Warn about each line of ``journal`` that is never run, once per Replay."""
        for number, why in journal.damaged:
            if (journal.path, number, why) not in self.damage_reported:
                self.damage_reported.add((journal.path, number, why))
                self.reporter.journal_line_not_run(journal.path, number, why)

    def mark_done(self, journal: Journal, index: int) -> None:
        try:
            journal.mark_done(index)
        except OSError as error:
            # The wrapper shell marked it already, unless it was killed.
            self.reporter.cannot_mark_done(index + 1, journal.marks_path, error)


def close_run_dir(reporter: Reporter, run_dir: RunDir, journal: Journal, hard_stop: bool,
                  recovered: bool = False) -> None:
    """Remove a run directory whose cleanups have run. Keep it, for ``hookrun recover``,
    when its cleanups could not be read or a second signal (``hard_stop``) left cleanups
    pending; keep it aside, for a person to look at, when its journal was damaged, or when
    recovery (``recovered``) too found the journal unreadable: a read error must not stop
    every later run."""
    if journal.unreadable:
        if recovered and journal.read_failed:
            reporter.journal_set_aside(journal.path, run_dir.keep())
        else:
            run_dir.release()
        return
    if hard_stop:
        try:
            pending = bool(journal.pending())
        except OSError:
            pending = True
        if pending:
            reporter.interrupted_twice()
            run_dir.release()
            return
    if journal.damaged:
        reporter.journal_kept(run_dir.keep())
    else:
        run_dir.remove()


class Recovered:
    """What recovery did: the records of the cleanups it replayed, and a line for each undo
    of a replayed journal that did not happen (lines too damaged to run, a journal that
    could not be read), which leaves the run that recovered no success."""

    __slots__ = ("records", "problems")

    def __init__(self) -> None:
        self.records: list[TaskRecord] = []
        self.problems: list[str] = []


def mark_unrecorded_ends(engine: Engine, history: History | NoHistory, state_dir: str) -> None:
    """Mark ``interrupted`` each run whose row says ``running`` but whose directory is gone:
    a run makes its directory before its row, and removes it only after writing its end, so
    such a run ended without its end written (the disk full at that moment), and nothing
    else would ever end its row. A history that cannot be read or written is a warning."""
    try:
        for run_id in history.running_ids():
            if os.path.lexists(os.path.join(state_dir, RUNS, run_id)):
                continue  # a live or dead run's, recovered on its own
            # A run that wrote its end since running_ids() read it is left alone, unwarned.
            if history.add_recovered(run_id, None, (), create=False):
                engine.reporter.end_not_recorded(run_id)
    except StateError as error:
        engine.reporter.warn(str(error))


def end_leftovers(engine: Engine, dead_id: str) -> None:
    """End the processes the dead run ``dead_id`` left running (Supervisor.end_leftovers),
    saying which."""
    ended = engine.supervisor.end_leftovers(dead_id, engine.ctx.kill_grace)
    if ended:
        engine.reporter.ended_leftovers(dead_id, ended)


def recover(engine: Engine, history: History | NoHistory, state_dir: str) -> Recovered:
    """Replay the pending cleanups of every dead run, last registered first, recording them
    in the dead run's history (phase ``recover``). The processes a dead run left running
    are ended first, so that no undo races the hook it undoes."""
    recovered = Recovered()
    found_dead, refused = dead_runs(state_dir)
    # A dead run not replayed (not hookrun's own, or damaged and set aside) is warned of
    # here, with its fix, by the run that finds it; its journal was never read.
    for refusal in refused:
        engine.reporter.run_dir_refused(*refusal)
        path, _problem, is_damaged, aside = refusal
        if is_damaged and aside is not None:
            # Its cleanups could not be read, but it died: the processes it left are ended
            # as any dead run's are, and its row, if it has one, must not say "running" for
            # ever. Set aside, it is never found again: done once.
            end_leftovers(engine, os.path.basename(path))
            try:
                history.add_recovered(os.path.basename(path), None, (), create=False)
            except StateError as error:
                engine.reporter.warn(str(error))
    mark_unrecorded_ends(engine, history, state_dir)
    for dead in found_dead:
        if engine.signals.hard_stop:
            dead.release()
            continue
        dead_id = dead.run_id
        engine.reporter.recovering(dead_id)
        end_leftovers(engine, dead_id)
        journal = Journal(dead.path)
        found = engine.run_cleanups(journal, c.PHASE_RECOVER, dead.lock_fd)
        if dead.meta.get("recorded", True):
            try:
                event = dead.meta.get("event")
                history.add_recovered(dead_id, event if isinstance(event, str) else None, found)
            except StateError as error:
                engine.reporter.warn(str(error))
        recovered.records += found
        shown_journal = display_name(journal.path)
        if journal.unreadable:
            recovered.problems.append(f"cleanup journal {shown_journal} could not be read: "
                                      "its cleanups were not run")
        if journal.damaged:
            recovered.problems.append(f"cleanup journal {shown_journal}: "
                                      f"{len(journal.damaged)} damaged line(s) not run")
        close_run_dir(engine.reporter, dead, journal, engine.signals.hard_stop, recovered=True)
    return recovered
