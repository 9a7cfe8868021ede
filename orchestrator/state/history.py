"""The run history: SQLite at STATE_DIR/history.sqlite3, one row per run and per task.

A run's row is written when it starts (``running``) and completed, with all its tasks, in one
transaction when it ends, so a run never leaves a half-written record and no hook pays for a
commit.
"""

from __future__ import annotations

import errno
import os
import time

from orchestrator.errors import HookrunError, StateError
from orchestrator.outcome import RunStatus, TaskStatus
from orchestrator.speed import sqlite3
from orchestrator.text import as_text as text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, TypeVar

    from orchestrator.outcome import TaskRecord
    from orchestrator.report.output import Reporter

    T = TypeVar("T")
    # A run or task in the JSON shape of design.md section 4.
    Record = dict[str, Any]
    Statements = list[tuple[str, Sequence[object]]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, event TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER,
    command TEXT, started TEXT NOT NULL, finished TEXT, duration REAL,
    no_hooks INTEGER NOT NULL DEFAULT 0, error TEXT, pid INTEGER, trigger TEXT, stats TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, phase TEXT NOT NULL,
    name TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER, attempts INTEGER,
    started TEXT, duration REAL, cpu_seconds REAL, max_rss_bytes INTEGER, reason TEXT,
    output TEXT, PRIMARY KEY (run_id, seq));
CREATE INDEX IF NOT EXISTS runs_event ON runs(event);
CREATE TABLE IF NOT EXISTS running (
    run_id TEXT PRIMARY KEY, phase TEXT NOT NULL, name TEXT NOT NULL, started TEXT);
"""
RUN_FIELDS = ("id", "event", "status", "exit_code", "command", "started", "finished",
              "duration", "no_hooks", "error", "trigger", "stats")
TASK_FIELDS = ("phase", "name", "status", "exit_code", "attempts", "started", "duration",
               "cpu_seconds", "max_rss_bytes", "reason", "output")
SCHEMA_VERSION = 2  # PRAGMA user_version once SCHEMA has been applied
# What a history of an earlier version lacks, by the version it has.
UPGRADES = {1: "ALTER TABLE runs ADD COLUMN trigger TEXT; ALTER TABLE runs ADD COLUMN stats TEXT;"}
BUSY_TIMEOUT = 30.0
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
COMPANIONS = ("-wal", "-shm", "-journal")
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
UNIX_EPOCH_JULIAN_DAY = 2440587.5
# The reason of the task a dead run was running: hookrun died before it ended.
CUT_SHORT = "interrupted (hookrun died while it ran)"


class DamagedHistory(StateError):
    """A history SQLite finds damaged, where nothing moves it aside (reading it for
    ``history`` or ``show``): the next run does."""


def back_from_last(run_id: str) -> int | None:
    """How many runs before the last ``run_id`` names: 0 for ``last``, N for ``last~N``
    (ASCII digits); None for a run id."""
    if run_id == "last":
        return 0
    head, tilde, number = run_id.partition("~")
    if head == "last" and tilde and number.isascii() and number.isdigit() and len(number) < 10:
        return int(number)
    return None


def task_dict(task: TaskRecord) -> Record:
    """A TaskRecord in the JSON shape of design.md section 4 (keys in TASK_FIELDS order, which
    is also the order of the tasks table's columns)."""
    return {"phase": task.phase, "name": text(task.name), "status": task.status,
            "exit_code": task.exit_code, "attempts": task.attempts, "started": task.started,
            "duration": task.duration, "cpu_seconds": task.cpu_seconds,
            "max_rss_bytes": task.max_rss_bytes, "reason": text(task.reason),
            "output": text(task.output)}


class RunRecord:
    """A finished run, built once when it ends, from which everything that tells of it
    derives: the history row and ``--json`` (as_json, the shape of design.md section 4), the
    summary, the metrics and the Pushgateway (samples_input), the notifications (as_json
    and ``failed_output``, the last output of the failure that decided the run)."""

    __slots__ = ("id", "event", "status", "exit_code", "command", "started", "finished",
                 "duration", "no_hooks", "error", "trigger", "stats", "tasks",
                 "finished_unix", "failed_output")

    def __init__(self, *, id: str, event: str, status: str, exit_code: int, command: str,
                 started: str, finished: str, duration: float, no_hooks: bool,
                 error: str | None, trigger: str | None, stats: dict[str, int | str],
                 tasks: list[TaskRecord], finished_unix: float,
                 failed_output: bytes = b"") -> None:
        self.id, self.event, self.status, self.exit_code = id, event, status, exit_code
        self.command, self.started, self.finished = command, started, finished
        self.duration, self.no_hooks, self.error = duration, no_hooks, error
        self.trigger, self.stats, self.tasks = trigger, stats, tasks
        self.finished_unix, self.failed_output = finished_unix, failed_output

    def as_json(self) -> Record:
        """The run in the JSON shape of design.md section 4: RUN_FIELDS, then its tasks. The
        same shape ``hookrun show --json`` reads back."""
        record = {key: text(getattr(self, key)) for key in RUN_FIELDS if key != "stats"}
        record["stats"] = dict(self.stats)
        record["tasks"] = [task_dict(task) for task in self.tasks]
        return record

    def samples_input(self, last_success: float | None,
                      earlier: list[dict[tuple[str, str], str]]) -> dict[str, Any]:
        """The keyword arguments of metrics.run_samples for this run, given the time of the
        event's last success and the task statuses of its earlier runs (from the history)."""
        return dict(status=self.status, exit_code=self.exit_code,
                    finished=round(self.finished_unix, 3), duration=self.duration,
                    last_success=last_success, tasks=self.tasks, earlier=earlier,
                    stats=self.stats)


# One row of the tasks table: run id, seq, then TASK_FIELDS.
TASK_INSERT = f"INSERT INTO tasks VALUES ({', '.join('?' * (2 + len(TASK_FIELDS)))})"


def task_rows(run_id: str, first: int, tasks: Iterable[Record]) -> Statements:
    """The inserts of ``tasks`` (dicts in the JSON shape, task_dict), numbered from
    ``first``."""
    return [(TASK_INSERT, (run_id, first + n, *(task[key] for key in TASK_FIELDS)))
            for n, task in enumerate(tasks)]


def cut_short(phase: str, name: str, started: str | None) -> Record:
    """The task a run was running when hookrun died (its row of the ``running`` table), as a
    task of its record: ``failed``, as a task that a signal cut short is, with the reason
    saying so; its exit status, attempts, duration and use are unknown (null)."""
    task: Record = dict.fromkeys(TASK_FIELDS)
    task.update(phase=phase, name=name, status=TaskStatus.FAILED, started=started,
                reason=CUT_SHORT, output="")
    return task


def stats_text(stats: dict[str, object] | None) -> str | None:
    """The stats column: JSON, or NULL for none."""
    if not stats:
        return None
    import json

    return json.dumps(stats, sort_keys=True)


def stats_of(column: str | None) -> dict[str, Any]:
    """The stats dict of a stats column ({} for none or a damaged one)."""
    if not column:
        return {}
    import json

    try:
        found = json.loads(column)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


class NoHistory:
    """Stands in for a history that cannot be opened: the run goes on, unrecorded."""

    def start_run(self, *args: object) -> None:
        pass

    def finish_run(self, *args: object) -> None:
        pass

    def add_recovered(self, *args: object, **kwargs: object) -> bool:
        return False

    def add_progress(self, *args: object) -> None:
        pass

    def running_ids(self) -> list[str]:
        return []

    def previous(self, *args: object) -> tuple[None, None]:
        return None, None

    def last_success(self, *args: object) -> None:
        return None

    def recent_task_statuses(self, *args: object) -> list[dict[tuple[str, str], str]]:
        return []

    def close(self) -> None:
        pass


class Progress:
    """What ``show last`` sees of a run going on: its finished tasks and the one running. They
    are written when a task has run a second (flush, on the output sink's tick), again when
    that task ends (its running row must not outlive it), and what is left at the run's end:
    a run of quick hooks writes none of them one by one."""

    def __init__(self, history: History | NoHistory, run_id: str, reporter: Reporter) -> None:
        self.history = history
        self.run_id = run_id
        self.reporter = reporter
        self.pending: list[TaskRecord] = []
        self.current: tuple[str, str, str | None] | None = None
        self.written: tuple[str, str, str | None] | None = None
        self.failed = False

    def started(self, phase: str, name: str, started: str | None) -> None:
        self.current = (phase, name, started)

    def finished(self, record: TaskRecord) -> None:
        """``record`` ended; written now if its running row was (it ran a second): left
        there until the next flush, a crash would leave it as the task cut short."""
        self.pending.append(record)
        self.current = None
        if self.written is not None:
            self.flush()

    def flush(self) -> None:
        if not self.pending and self.current == self.written:
            return
        try:
            self.history.add_progress(self.run_id, self.pending, self.current)
        except StateError as error:
            if not self.failed:
                self.reporter.run_goes_on(error)
            self.failed = True
            return
        self.pending = []
        self.written = self.current


def open_history(path: str, reporter: Reporter) -> History | NoHistory:
    """History at ``path``; if it cannot be opened, ``reporter`` says so and NoHistory stands
    in. A damaged one is moved aside (``reporter`` says where) and a new one started."""
    try:
        return History(path, reporter)
    except StateError as error:
        reporter.history_unusable(error)
        return NoHistory()


def damaged(error: sqlite3.Error) -> bool:
    """Whether an sqlite3 error says the file is damaged or is no database at all (rather
    than busy, read-only or full)."""
    code: int | None = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(error)
    return "malformed" in text or "not a database" in text


def check_companions(path: str) -> None:
    """SQLite opens ``path``-wal, -shm and -journal by name: refuse (StateError) to use a
    history one of whose companions is a link or not hookrun's own."""
    from orchestrator.files import own_file_problem

    for suffix in COMPANIONS:
        try:
            info = os.lstat(path + suffix)
        except FileNotFoundError:
            continue
        problem = own_file_problem(path + suffix, info)
        if problem:
            raise StateError(f"cannot open history {path}: {problem}")


class History:
    """The history database at ``path``, created (mode 0600) if needed. One that SQLite finds
    damaged, now or at any later statement, is moved aside as ``history.sqlite3.corrupt-TIME``
    and a new one started, with ``reporter`` told; a history that cannot be used otherwise is a
    StateError."""

    @classmethod
    def existing(cls, path: str, reporter: Reporter | None = None) -> History | None:
        """The history at ``path`` if there is one, else None (nothing is created). Without
        ``reporter``, a damaged one is an error rather than moved aside."""
        return cls(path, reporter) if os.path.lexists(path) else None

    def __init__(self, path: str, reporter: Reporter | None = None) -> None:
        self.path = path
        self.reporter = reporter
        self.db: sqlite3.Connection | None = None
        self.identity: tuple[int, int] | None = None
        self.header_fd: int | None = None
        self.attempt(self.open)

    def open(self) -> None:
        from orchestrator.files import open_own

        self.close()  # a descriptor kept by an open that failed half-way
        check_companions(self.path)
        try:
            fd = open_own(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as error:
            if error.errno == errno.ELOOP:  # O_NOFOLLOW met a link
                raise StateError(f"cannot open history {self.path}: it is a symbolic link (fix: "
                                 "move it away; hookrun follows no link in its state "
                                 "directory)") from None
            raise StateError(f"cannot open history {self.path}: "
                             f"{error.strerror or error}") from None
        info = os.fstat(fd)
        self.identity = (info.st_dev, info.st_ino)
        # Kept open while the connection is (header_intact reads through it): closing any
        # descriptor of the file would drop the POSIX locks SQLite holds on it, and another
        # run closing its connection would then take itself for the last and delete the
        # write-ahead log this one still writes to.
        self.header_fd = fd
        self.db = db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            # WAL (kept in the file): readers never block a run, and a commit needs no fsync
            # of its own; a power loss may lose the last transaction, never half of one.
            db.execute("PRAGMA journal_mode=WAL")
            self.upgrade(db)

    @staticmethod
    def upgrade(db: sqlite3.Connection) -> None:
        """Bring the schema of ``db`` to SCHEMA_VERSION in one transaction, reading the version
        again inside it: a concurrent run may have done it meanwhile."""
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                for statement in (UPGRADES.get(version, "") + SCHEMA).split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def attempt(self, action: Callable[[], T]) -> T:
        """``action()``; if SQLite finds the history damaged, move it aside, start a new one
        and try once more (without a reporter, DamagedHistory). Other SQLite errors become
        StateError."""
        try:
            try:
                return action()
            except sqlite3.DatabaseError as error:
                reporter = self.reporter
                if not (damaged(error) and reporter):
                    raise
                self.move_aside(error, reporter)
                self.open()
                return action()
        except sqlite3.Error as error:
            kind = DamagedHistory if damaged(error) else StateError
            raise kind(f"cannot use history {self.path}: {error}") from None

    def move_aside(self, error: sqlite3.Error, reporter: Reporter) -> None:
        self.close()
        try:
            now = os.stat(self.path)
        except OSError:
            now = None
        # Another run may have moved it aside and started a new one meanwhile: keep that.
        if now is not None and (now.st_dev, now.st_ino) == self.identity:
            aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
            for suffix in ("",) + COMPANIONS:
                try:
                    os.rename(self.path + suffix, aside + suffix)
                except FileNotFoundError:
                    pass
            reporter.history_damaged(self.path, error, aside)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.header_fd is not None:
            # Only once the connection is closed: it holds no lock to lose now.
            os.close(self.header_fd)
            self.header_fd = None

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        self.require_open()
        # The connection is looked up at each try: a retry uses the history opened anew.
        return self.attempt(lambda: self.require_open().execute(sql, params).fetchall())

    def require_open(self) -> sqlite3.Connection:
        """The open connection; StateError if the history could not be opened again after it
        was moved aside."""
        if self.db is None:
            raise StateError(f"cannot use history {self.path}: it could not be opened again")
        return self.db

    def write(self, statements: Callable[[], Statements]) -> None:
        """Run the statements that ``statements()`` returns, ``[(sql, params), ...]``, in one
        transaction (built inside it, so that a retry in a new history builds them anew),
        in the history that is at ``path`` now."""
        def transaction() -> None:
            db = self.require_open()
            with db:
                db.execute("BEGIN IMMEDIATE")
                for sql, params in statements():
                    db.execute(sql, params)
        self.follow()
        self.require_open()
        self.attempt(transaction)

    def follow(self) -> None:
        """If the history was moved aside or replaced since it was opened (another run found
        it damaged), open the one at ``path`` now (created if none), so that what is written
        next is not lost in the old file; ``reporter`` says so."""
        if self.reporter is None or self.db is None:
            return
        try:
            now = os.stat(self.path)
            if (now.st_dev, now.st_ino) == self.identity:
                if self.header_intact():
                    return
                # Overwritten where it is: SQLite, reading through its own cache and a
                # write-ahead log it still holds open, may never look at the file again.
                self.move_aside(sqlite3.DatabaseError("file is not a database (its header was "
                                                      "overwritten)"), self.reporter)
                self.attempt(self.open)
                return
        except OSError:
            pass
        self.reporter.history_replaced(self.path)
        self.close()
        self.attempt(self.open)

    def header_intact(self) -> bool:
        """Whether the history's file still starts as an SQLite database does (or is still
        empty, as a new one in WAL mode may be); one that cannot be read proves nothing.
        Read through the descriptor open() kept, never one opened and closed here (see
        open())."""
        if self.header_fd is None:
            return True
        try:
            head = os.pread(self.header_fd, len(SQLITE_HEADER), 0)
        except OSError:
            return True
        return head in (b"", SQLITE_HEADER)

    def start_run(self, run_id: str, event: str, command: str | None, started: str,
                  no_hooks: bool, trigger: str | None = None) -> None:
        self.write(lambda: [(
            "INSERT INTO runs (id, event, status, command, started, no_hooks, pid, trigger) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, event, RunStatus.RUNNING, text(command), started, int(no_hooks),
             os.getpid(), trigger))])

    def add_progress(self, run_id: str, tasks: Sequence[TaskRecord],
                     current: tuple[str, str, str | None] | None) -> None:
        """Add the finished ``tasks`` of a run going on, and say which task runs now
        (``current``: (phase, name, started), or None), in one transaction."""
        def statements() -> Statements:
            found = self.task_inserts(run_id, tasks)
            found.append(("DELETE FROM running WHERE run_id = ?", (run_id,)))
            if current:
                found.append(("INSERT INTO running VALUES (?, ?, ?, ?)",
                              (run_id, current[0], text(current[1]), current[2])))
            return found
        self.write(statements)

    def finish_run(self, record: Record, tasks: Sequence[TaskRecord]) -> None:
        """Complete the row of ``record`` (RunRecord.as_json) and add ``tasks`` (those not yet
        added), in one transaction. In a history started afresh meanwhile (the run's tasks
        added so far are not all in it) the row and every task of ``record`` are written
        anew."""
        values = [record[key] for key in RUN_FIELDS]
        values[RUN_FIELDS.index("no_hooks")] = int(record["no_hooks"])
        values[RUN_FIELDS.index("stats")] = stats_text(record["stats"])
        run_id = record["id"]

        def statements() -> Statements:
            found: Statements = [(
                f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES "
                f"({', '.join('?' * len(values))}) ON CONFLICT(id) DO UPDATE SET "
                "status = excluded.status, exit_code = excluded.exit_code, "
                "finished = excluded.finished, duration = excluded.duration, "
                "error = excluded.error, stats = excluded.stats", values),
                ("DELETE FROM running WHERE run_id = ?", (run_id,))]
            if self.next_seq(run_id) - 1 + len(tasks) == len(record["tasks"]):
                return found + self.task_inserts(run_id, tasks)
            return found + [("DELETE FROM tasks WHERE run_id = ?", (run_id,))] + task_rows(
                run_id, 1, record["tasks"])
        self.write(statements)

    def task_inserts(self, run_id: str, tasks: Iterable[TaskRecord],
                     first: int | None = None) -> Statements:
        """The inserts of ``tasks``, numbered from ``first`` (default: after the run's last)."""
        first = self.next_seq(run_id) if first is None else first
        return task_rows(run_id, first, map(task_dict, tasks))

    def next_seq(self, run_id: str) -> int:
        row = self.require_open().execute(
            "SELECT COALESCE(MAX(seq), 0) FROM tasks WHERE run_id = ?", (run_id,)).fetchone()
        last: int = row[0]
        return last + 1

    def add_recovered(self, run_id: str, event: str | None, tasks: Iterable[TaskRecord],
                      create: bool = True) -> bool:
        """Mark a dead run ``interrupted`` (if it was still ``running``; with ``create``, a row
        is made if the history has none), keep the task it was running when it died as a
        ``failed`` task cut short (cut_short), and add its replayed cleanups as ``recover``
        tasks, in one transaction. Returns whether its row still said ``running`` then (a
        run that wrote its end meanwhile is left as it is)."""
        interrupted = RunStatus.INTERRUPTED
        was_running = False

        def statements() -> Statements:
            nonlocal was_running
            row = self.require_open().execute("SELECT status FROM runs WHERE id = ?",
                                              (run_id,)).fetchone()
            was_running = row is not None and row[0] == RunStatus.RUNNING
            found: Statements = []
            if create:
                found.append(("INSERT OR IGNORE INTO runs (id, event, status, started) "
                              "VALUES (?, ?, ?, ?)", (run_id, event or "", interrupted, "")))
            found.append(("UPDATE runs SET status = ? WHERE id = ? AND status = ?",
                          (interrupted, run_id, RunStatus.RUNNING)))
            seq = self.next_seq(run_id)
            cut = [cut_short(*row) for row in self.require_open().execute(
                "SELECT phase, name, started FROM running WHERE run_id = ?", (run_id,))]
            found += task_rows(run_id, seq, cut)
            found.append(("DELETE FROM running WHERE run_id = ?", (run_id,)))
            return found + self.task_inserts(run_id, tasks, seq + len(cut))
        self.write(statements)
        return was_running

    def running_ids(self) -> list[str]:
        """The ids of the runs whose row says ``running``."""
        return [row[0] for row in self.query("SELECT id FROM runs WHERE status = ?",
                                             (RunStatus.RUNNING,))]

    def previous(self, event: str, before_id: str) -> tuple[str, str] | tuple[None, None]:
        """(id, status) of the last run of ``event`` before ``before_id``, or (None, None)."""
        rows = self.query("SELECT id, status FROM runs WHERE event = ? AND id != ? "
                          "ORDER BY rowid DESC LIMIT 1", (event, before_id))
        return (rows[0]["id"], rows[0]["status"]) if rows else (None, None)

    def last_success(self, event: str) -> float | None:
        """Unix time at which the last ``success`` or ``warning`` run of ``event`` ended; None
        if none did, or the history cannot be read."""
        from orchestrator.timestamps import unix_time

        try:
            rows = self.query("SELECT finished FROM runs WHERE event = ? AND status IN (?, ?) "
                              "AND finished IS NOT NULL ORDER BY rowid DESC LIMIT 1",
                              (event, *RunStatus.SUCCESSES))
        except StateError:
            return None  # the metrics go on without it
        return unix_time(rows[0][0]) if rows else None

    def recent_task_statuses(self, event: str, before_id: str,
                             limit: int) -> list[dict[tuple[str, str], str]]:
        """The task statuses of the last ``limit`` finished runs of ``event`` other than
        ``before_id``, newest first: one ``{(phase, name): status}`` per run that has tasks
        (a name's first task in the run). [] when the history cannot be read."""
        try:
            rows = self.query(
                "SELECT t.run_id, t.phase, t.name, t.status FROM tasks t JOIN "
                "(SELECT id, rowid AS position FROM runs WHERE event = ? AND id != ? "
                "AND status != ? ORDER BY rowid DESC LIMIT ?) recent ON t.run_id = recent.id "
                "ORDER BY recent.position DESC, t.seq",
                (event, before_id, RunStatus.RUNNING, limit))
        except StateError:
            return []
        runs: dict[str, dict[tuple[str, str], str]] = {}
        for run_id, phase, name, status in rows:
            runs.setdefault(run_id, {}).setdefault((phase, name), status)
        return list(runs.values())

    def runs(self, event: str | None = None, limit: int = 20, status: str | None = None,
             since: float | None = None, offset: int = 0) -> list[Record]:
        """The last ``limit`` runs (newest first) as JSON-ready dicts, with their tasks; only
        those of ``event``, with ``status``, started at Unix time ``since`` or later (each
        when given), past the newest ``offset``."""
        where, params = self.filters(event, status, since)
        rows = self.query(f"SELECT * FROM runs {where} ORDER BY rowid DESC LIMIT ? OFFSET ?",
                          params + [limit, offset])
        return [self.as_dict(row) for row in rows]

    @staticmethod
    def filters(event: str | None = None, status: str | None = None,
                since: float | None = None, table: str = "") -> tuple[str, list[object]]:
        """(a WHERE clause, its parameters) for runs of ``event``, with ``status``, started
        since the Unix time ``since``; ``table`` prefixes the columns (``r.``). SQLite's
        julianday() reads the times' UTC offsets, so runs under other offsets compare
        right."""
        clauses: list[str] = []
        params: list[object] = []
        if event:
            clauses.append(f"{table}event = ?")
            params.append(event)
        if status:
            clauses.append(f"{table}status = ?")
            params.append(status)
        if since is not None:
            clauses.append(f"julianday({table}started) >= ?")
            params.append(since / 86400.0 + UNIX_EPOCH_JULIAN_DAY)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def ended_runs(self, event: str | None = None,
                   since: float | None = None) -> list[sqlite3.Row]:
        """[(event, status, started, duration)] of the runs that ended, oldest first."""
        where, params = self.filters(event, None, since)
        where = (where + " AND" if where else "WHERE") + " status != ?"
        return self.query(f"SELECT event, status, started, duration FROM runs {where} "
                          "ORDER BY rowid", params + [RunStatus.RUNNING])

    def ended_tasks(self, event: str | None = None,
                    since: float | None = None) -> list[sqlite3.Row]:
        """[(event, phase, name, status, started, duration)] of the tasks of ended runs,
        oldest first."""
        where, params = self.filters(event, None, since, table="r.")
        where = (where + " AND" if where else "WHERE") + " r.status != ?"
        return self.query(
            "SELECT r.event, t.phase, t.name, t.status, t.started, t.duration FROM tasks t "
            f"JOIN runs r ON r.id = t.run_id {where} ORDER BY r.rowid, t.seq",
            params + [RunStatus.RUNNING])

    def get(self, run_id: str, event: str | None = None) -> Record:
        """The run ``run_id`` (or the newest for ``last``, the one before it for ``last~1``)
        as a dict; HookrunError if none."""
        back = back_from_last(run_id)
        if back is not None:
            found = self.runs(event, 1, offset=back)
            if not found:
                if back and self.runs(event, 1):
                    raise HookrunError(f"no run {run_id}: fewer than {back + 1} runs"
                                       + (f" of event '{event}'" if event else "")
                                       + " recorded", 1)
                raise HookrunError(self.nothing_of(event), 1)
            return found[0]
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise HookrunError(f"no run with id {run_id!r}", 1)
        return self.as_dict(rows[0])

    def nothing_of(self, event: str | None) -> str:
        """Why there is no last run: none at all, or none of ``event`` (naming the others)."""
        events = [row[0] for row in self.query("SELECT DISTINCT event FROM runs ORDER BY event")]
        if not events:
            return "no runs recorded yet"
        return (f"no runs of event '{event}' recorded (events with runs: "
                f"{', '.join(e for e in events if e)})")

    def as_dict(self, row: sqlite3.Row) -> Record:
        """The JSON shape of design.md section 4."""
        run: Record = {key: row[key] for key in RUN_FIELDS}
        run["no_hooks"] = bool(run["no_hooks"])
        run["stats"] = stats_of(run["stats"])
        tasks = self.query("SELECT * FROM tasks WHERE run_id = ? ORDER BY seq", (row["id"],))
        run["tasks"] = [{key: task[key] for key in TASK_FIELDS} for task in tasks]
        if run["status"] == RunStatus.RUNNING:
            for phase, name, started in self.query(
                    "SELECT phase, name, started FROM running WHERE run_id = ?", (row["id"],)):
                task = dict.fromkeys(TASK_FIELDS)
                task.update(phase=phase, name=name, status=RunStatus.RUNNING,
                            started=started)
                run["tasks"].append(task)
        return run
