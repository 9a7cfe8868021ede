"""The run history: SQLite at STATE_DIR/history.sqlite3, one row per run and per task.

A run's row is written when it starts (``running``) and completed, with all its tasks, in one
transaction when it ends, so a run never leaves a half-written record and no hook pays for a
commit.
"""

import os
import sqlite3

from orchestrator.errors import HookrunError, StateError
from orchestrator.outcome import RunStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, event TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER,
    command TEXT, started TEXT NOT NULL, finished TEXT, duration REAL,
    no_hooks INTEGER NOT NULL DEFAULT 0, error TEXT, pid INTEGER);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, phase TEXT NOT NULL,
    name TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER, attempts INTEGER,
    started TEXT, duration REAL, cpu_seconds REAL, max_rss_bytes INTEGER, reason TEXT,
    output TEXT, PRIMARY KEY (run_id, seq));
CREATE INDEX IF NOT EXISTS runs_event ON runs(event);
"""
RUN_FIELDS = ("id", "event", "status", "exit_code", "command", "started", "finished",
              "duration", "no_hooks", "error")
TASK_FIELDS = ("phase", "name", "status", "exit_code", "attempts", "started", "duration",
               "cpu_seconds", "max_rss_bytes", "reason")
BUSY_TIMEOUT = 30.0


def text(value):
    """Text safe for SQLite and JSON: surrogate escapes (undecodable bytes) replaced."""
    if value is None or not isinstance(value, str):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def task_dict(task):
    """A TaskRecord in the JSON shape of design.md section 4 (keys in TASK_FIELDS order, which
    is also the order of the tasks table's columns)."""
    return {"phase": task.phase, "name": text(task.name), "status": task.status.value,
            "exit_code": task.exit_code, "attempts": task.attempts, "started": task.started,
            "duration": task.duration, "cpu_seconds": task.cpu_seconds,
            "max_rss_bytes": task.max_rss_bytes, "reason": text(task.reason)}


def run_record(tasks, **run):
    """A finished run in the JSON shape of design.md section 4: ``run`` holds RUN_FIELDS,
    ``tasks`` the TaskRecords. The same shape ``hookrun show --json`` reads back."""
    record = {key: text(run[key]) for key in RUN_FIELDS}
    record["tasks"] = [task_dict(task) for task in tasks]
    return record


class NoHistory:
    """Stands in for a history that cannot be opened: the run goes on, unrecorded."""

    def start_run(self, *args):
        pass

    def finish_run(self, *args):
        pass

    def add_recovered(self, *args):
        pass

    def previous(self, *args):
        return None, None

    def last_success(self, *args):
        return None

    def recent_task_statuses(self, *args):
        return []

    def close(self):
        pass


def open_history(path, warn):
    """History at ``path``; if it cannot be opened, ``warn`` says so and NoHistory stands in."""
    try:
        return History(path)
    except StateError as error:
        warn(f"{error}; this run will not be recorded")
        return NoHistory()


class History:
    """Open (creating if needed, mode 0600) the history database at ``path``."""

    @classmethod
    def existing(cls, path):
        """The history at ``path`` if there is one, else None (nothing is created)."""
        return cls(path) if os.path.exists(path) else None

    def __init__(self, path):
        self.path = path
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
            # WAL: readers never block a run, and a commit needs no fsync of its own; a power
            # loss may lose the last transaction, never leave half of one.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise StateError(f"cannot open history {path}: {error}") from None
        self.db.row_factory = sqlite3.Row

    def close(self):
        self.db.close()

    def write(self, statements):
        """Run ``[(sql, params), ...]`` in one transaction; SQLite errors become StateError."""
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    self.db.execute(sql, params)
        except sqlite3.Error as error:
            raise StateError(f"cannot write history {self.path}: {error}") from None

    def start_run(self, run_id, event, command, started, no_hooks):
        self.write([("INSERT INTO runs (id, event, status, command, started, no_hooks, pid) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (run_id, event, RunStatus.RUNNING.value, text(command), started,
                      int(no_hooks), os.getpid()))])

    def finish_run(self, record, tasks):
        """Complete the row of ``record`` (see run_record) and add ``tasks``, in one
        transaction."""
        statements = [("UPDATE runs SET status = ?, exit_code = ?, finished = ?, duration = ?, "
                       "error = ? WHERE id = ?",
                       (record["status"], record["exit_code"], record["finished"],
                        record["duration"], record["error"], record["id"]))]
        self.write(statements + self.task_inserts(record["id"], tasks))

    def task_inserts(self, run_id, tasks):
        first = self.next_seq(run_id)
        return [("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (run_id, first + n, *task_dict(task).values(), text(task.output)))
                for n, task in enumerate(tasks)]

    def next_seq(self, run_id):
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks WHERE run_id = ?",
                              (run_id,)).fetchone()
        return row[0] + 1

    def add_recovered(self, run_id, tasks):
        """Mark a dead run ``interrupted`` (if it was still ``running``) and add its replayed
        cleanups as ``recover`` tasks."""
        statements = [("UPDATE runs SET status = ? WHERE id = ? AND status = ?",
                       (RunStatus.INTERRUPTED.value, run_id, RunStatus.RUNNING.value))]
        self.write(statements + self.task_inserts(run_id, tasks))

    def previous(self, event, before_id):
        """(id, status) of the last run of ``event`` before ``before_id``, or (None, None)."""
        row = self.db.execute("SELECT id, status FROM runs WHERE event = ? AND id != ? "
                              "ORDER BY rowid DESC LIMIT 1", (event, before_id)).fetchone()
        return (row["id"], row["status"]) if row else (None, None)

    def last_success(self, event):
        """Unix time at which the last ``success`` or ``warning`` run of ``event`` ended."""
        import datetime

        row = self.db.execute("SELECT finished FROM runs WHERE event = ? AND status IN "
                              "('success', 'warning') AND finished IS NOT NULL "
                              "ORDER BY rowid DESC LIMIT 1", (event,)).fetchone()
        if row is None:
            return None
        return round(datetime.datetime.fromisoformat(row[0]).timestamp(), 3)

    def recent_task_statuses(self, event, before_id, limit):
        """The task statuses of the last ``limit`` finished runs of ``event`` other than
        ``before_id``, newest first: one ``{(phase, name): status}`` per run that has tasks
        (a name's first task in the run). [] when the history cannot be read."""
        try:
            rows = self.db.execute(
                "SELECT t.run_id, t.phase, t.name, t.status FROM tasks t JOIN "
                "(SELECT id, rowid AS position FROM runs WHERE event = ? AND id != ? "
                "AND status != ? ORDER BY rowid DESC LIMIT ?) recent ON t.run_id = recent.id "
                "ORDER BY recent.position DESC, t.seq",
                (event, before_id, RunStatus.RUNNING.value, limit)).fetchall()
        except sqlite3.Error:
            return []
        runs = {}
        for run_id, phase, name, status in rows:
            runs.setdefault(run_id, {}).setdefault((phase, name), status)
        return list(runs.values())

    def runs(self, event=None, limit=20):
        """The last ``limit`` runs (newest first) as JSON-ready dicts, with their tasks."""
        where, params = ("WHERE event = ?", [event]) if event else ("", [])
        rows = self.db.execute(f"SELECT * FROM runs {where} ORDER BY rowid DESC LIMIT ?",
                               params + [limit]).fetchall()
        return [self.as_dict(row) for row in rows]

    def get(self, run_id, event=None):
        """The run ``run_id`` (or the newest for ``last``) as a dict; HookrunError if none."""
        if run_id == "last":
            found = self.runs(event, 1)
            if not found:
                raise HookrunError("no runs recorded yet", 1)
            return found[0]
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise HookrunError(f"no run with id {run_id!r}", 1)
        return self.as_dict(row)

    def as_dict(self, row):
        """The JSON shape of design.md section 4; the tasks' last output lines are kept apart
        in ``run["outputs"]`` (same order), which callers drop from JSON."""
        run = {key: row[key] for key in RUN_FIELDS}
        run["no_hooks"] = bool(run["no_hooks"])
        tasks = self.db.execute("SELECT * FROM tasks WHERE run_id = ? ORDER BY seq",
                                (row["id"],)).fetchall()
        run["tasks"] = [{key: task[key] for key in TASK_FIELDS} for task in tasks]
        run["outputs"] = [task["output"] for task in tasks]
        return run
