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
