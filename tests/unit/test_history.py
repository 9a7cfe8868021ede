"""The history when it cannot be used again: SQLite finds it damaged, it is moved aside, and a
new one cannot be created. Every later use is then a StateError (or the documented stand-in
answer), never an error about a connection that is not there."""

import io
import sqlite3

import pytest

from orchestrator import files
from orchestrator.errors import StateError
from orchestrator.outcome import TaskRecord
from orchestrator.report.output import Reporter
from orchestrator.report.printer import Console
from orchestrator.state.history import History, RunRecord

STARTED = "2026-12-07T01:02:03+00:00"


def test_a_history_that_cannot_be_opened_again_is_a_state_error_at_every_use(tmp_path,
                                                                             monkeypatch):
    path = str(tmp_path / "history.sqlite3")
    err = io.StringIO()
    history = History(path, Reporter(Console("never", out=io.StringIO(), err=err)))
    history.start_run("r1", "backup", None, STARTED, False)
    # SQLite finds the history damaged at its next statement...
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a database " * 512)
    history.db.close()
    history.db = sqlite3.connect(str(garbage), isolation_level=None)

    # ...and the new one cannot be created.
    def refused(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files, "open_own", refused)
    with pytest.raises(StateError, match="cannot open history"):
        history.previous("backup", "r2")
    said = err.getvalue().splitlines()
    assert len(said) == 1 and "moved aside" in said[0]
    assert list(tmp_path.glob("history.sqlite3.corrupt-*"))
    assert history.db is None

    with pytest.raises(StateError, match="could not be opened again"):
        history.previous("backup", "r2")
    with pytest.raises(StateError, match="could not be opened again"):
        history.runs()
    assert history.last_success("backup") is None
    assert history.recent_task_statuses("backup", "r2", 5) == []
    task = TaskRecord("pre", "10-x", "ok", 0, 1, STARTED, 0.1)
    with pytest.raises(StateError, match="could not be opened again"):
        history.add_progress("r1", [task], ("pre", "20-y", STARTED))
    record = RunRecord(tasks=[task], id="r1", event="backup", status="success", exit_code=0,
                       command="", started=STARTED, finished=STARTED, duration=0.2,
                       no_hooks=False, error=None, trigger=None, stats={}, finished_unix=1.0)
    with pytest.raises(StateError, match="could not be opened again"):
        history.finish_run(record.as_json(), [task])
    history.close()
    assert len(err.getvalue().splitlines()) == 1


def test_a_run_record_is_the_one_source_of_the_json_and_the_metrics_input():
    task = TaskRecord("command", "restic", "failed", 3, 1, STARTED, 1.5, reason="exit 3")
    record = RunRecord(tasks=[task], id="r2", event="backup", status="failure", exit_code=3,
                       command="restic backup", started=STARTED, finished=STARTED,
                       duration=2.0, no_hooks=False, error="command restic failed (exit 3)",
                       trigger="timer", stats={"files_new": 4}, finished_unix=1700000000.12345,
                       failed_output=b"Fatal: wrong password\n")
    shown = record.as_json()
    assert (shown["id"], shown["status"], shown["exit_code"], shown["trigger"],
            shown["stats"], shown["tasks"][0]["reason"]) == \
        ("r2", "failure", 3, "timer", {"files_new": 4}, "exit 3")
    assert "failed_output" not in shown and "finished_unix" not in shown
    samples = record.samples_input(1600000000.0, [])
    assert (samples["status"], samples["exit_code"], samples["finished"],
            samples["last_success"], samples["stats"]) == \
        ("failure", 3, 1700000000.123, 1600000000.0, {"files_new": 4})


def test_a_write_keeps_sqlites_locks_so_another_run_closing_leaves_the_log_alone(tmp_path):
    """Every write first looks at the file's header (History.follow). Done through a
    descriptor opened and closed there, it dropped the POSIX locks SQLite holds on the file:
    another run closing its connection then took itself for the last, checkpointed and
    deleted the write-ahead log this run still wrote to, and what it wrote next was lost to
    every other reader."""
    import subprocess
    import sys

    path = tmp_path / "history.sqlite3"
    history = History(str(path), Reporter(Console("never", out=io.StringIO(),
                                                  err=io.StringIO())))
    history.start_run("r1", "backup", None, STARTED, False)
    history.add_progress("r1", [], None)  # a write: the header is looked at
    # Another run (another process) reads the history and closes its connection.
    other = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); " \
            "db.execute('SELECT count(*) FROM runs').fetchone(); db.close()"
    subprocess.run([sys.executable, "-c", other, str(path)], check=True, timeout=60)
    assert (tmp_path / "history.sqlite3-wal").exists()
    history.start_run("r2", "prune", None, STARTED, False)
    seen = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); " \
           "print(db.execute('SELECT count(*) FROM runs').fetchone()[0])"
    counted = subprocess.run([sys.executable, "-c", seen, str(path)], check=True, timeout=60,
                             capture_output=True, text=True)
    assert counted.stdout.strip() == "2"
    history.close()
