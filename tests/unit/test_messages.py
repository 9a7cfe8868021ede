"""The words of what a run tells a person: each named Reporter method, given data, gives the
exact line a user's log grep looks for, on stderr (a warning), stdout with -v (a note) or the
log file (an event); and a note or log line that is not shown is not composed."""

import io

import pytest

from orchestrator.plan.settings import HookSettings
from orchestrator.report.output import Reporter
from orchestrator.report.printer import Console


class Log:
    """A stand-in for the LogFile: the events it was given."""

    error = None

    def __init__(self):
        self.events = []

    def event(self, text):
        self.events.append(text)


def reporter(verbose=True, log=True):
    out, err = io.StringIO(), io.StringIO()
    found = Reporter(Console("never", verbose=verbose, out=out, err=err), Log() if log else None)
    return found, out, err


DENIED = PermissionError(13, "Permission denied")
DENIED_PATH = PermissionError(13, "Permission denied", "/x")

WARNINGS = [
    ("hook_notice", ("pre/10-x", "gave up (exit 62, ABORT_CONTINUE)"),
     "pre/10-x gave up (exit 62, ABORT_CONTINUE)"),
    ("retrying", ("pre/10-x", "exit 1", 1, 3, 5.0), "pre/10-x: exit 1; retry 1 of 3 in 5s"),
    ("retrying", ("command/restic", "timed out after 1h", 2, 2, 90.0),
     "command/restic: timed out after 1h; retry 2 of 2 in 90s"),
    ("strays", ("pre/10-x", ["sleep (pid 7)", "cat (pid 8)"]),
     "pre/10-x left processes running that hold its output open (not killed): "
     "sleep (pid 7), cat (pid 8)"),
    ("skipped_file", ("pre-backup.d/a\nb", "a directory"),
     "pre-backup.d/a\\x0ab: skipped: a directory"),
    ("cannot_empty", ("/run/env", "Permission denied"), "cannot empty /run/env: Permission denied"),
    ("handoff_refused", ("pre/10-x", "line 2: not NAME=value, ignored"),
     "pre/10-x: HOOKRUN_ENV line 2: not NAME=value, ignored"),
    ("handoff_too_large", ("pre/10-x", 1 << 20), "pre/10-x: HOOKRUN_ENV is larger than 1 MiB: "
                                                 "ignored"),
    ("cannot_read_handoff", ("pre/10-x", DENIED),
     "pre/10-x: cannot read its HOOKRUN_ENV: Permission denied"),
    ("cannot_read_handoff", ("pre/10-x", OSError("odd")), "pre/10-x: cannot read its "
                                                          "HOOKRUN_ENV: odd"),
    ("run_stops", ("internal fault: KeyError: 'x'",),
     "internal fault: KeyError: 'x'; the run stops, its wind-down goes on"),
    ("wind_down_goes_on", ("internal fault while running finally: OSError: x",),
     "internal fault while running finally: OSError: x; the wind-down goes on"),
    ("run_goes_on", (OSError("cannot use history /h: disk I/O error"),),
     "cannot use history /h: disk I/O error; the run goes on"),
    ("not_recorded", (OSError("cannot use history /h: locked"),),
     "cannot use history /h: locked; this run is not recorded"),
    ("crashed_runs_pending", (2,), "2 crashed run(s) left cleanups pending; --no-hooks does not "
                                   "run them: run 'hookrun recover'"),
    ("crashed_runs_pending", (1, True), "1 crashed run(s) left cleanups pending; a dry run does "
                                        "not run them: run 'hookrun recover'"),
    ("recovery_goes_on", ("R\n1",), "the cleanups of crashed run R\\x0a1 are still being run by "
                                    "another process; the run goes on"),
    ("recovery_goes_on", (None,), "the cleanups of crashed run None are still being run by "
                                  "another process; the run goes on"),
    ("cannot_write", ("/run/error.log", "No space left on device"),
     "cannot write /run/error.log: No space left on device"),
    ("cannot_write_metrics", ("/m.prom", DENIED), "cannot write metrics file /m.prom: "
                                                  "Permission denied"),
    ("stats_refused", ("line 1: not NAME=value, ignored",),
     "HOOKRUN_STATS line 1: not NAME=value, ignored"),
    ("log_not_written", ("/l is not a regular file (fix: move it away)",),
     "log file not written: /l is not a regular file (fix: move it away)"),
    ("history_unusable", (OSError("cannot open history /h: Permission denied"),),
     "cannot open history /h: Permission denied; this run will not be recorded"),
    ("history_damaged", ("/h", OSError("file is not a database"), "/h.corrupt-1"),
     "history /h is damaged (file is not a database): moved aside to /h.corrupt-1, a new one "
     "started"),
    ("history_replaced", ("/h",), "history /h was moved aside or replaced during this run: this "
                                  "run's record goes into the one there now"),
    ("cannot_reserve_marks", ("/r/marks", DENIED),
     "cannot reserve space to mark cleanups done in /r/marks: Permission denied; a cleanup cut "
     "off by a crash now may run again at recovery"),
    ("cannot_read_cleanups", ("/r/journal", DENIED_PATH),
     "cannot read the cleanups of /r/journal: Permission denied; they are left pending for "
     "'hookrun recover' and the next run"),
    ("journal_line_not_run", ("/r/j\n", 3, "is not valid UTF-8"),
     "cleanup journal /r/j\\x0a: line 3 is not valid UTF-8: not run, kept for inspection"),
    ("journal_line_not_run", ("/r/j", None, "is past 4 MiB"),
     "cleanup journal /r/j: it is past 4 MiB: not run, kept for inspection"),
    ("cannot_mark_done", (2, "/r/marks", DENIED),
     "cannot mark cleanup 2 done in /r/marks: Permission denied"),
    ("journal_set_aside", ("/r/j", "/s/.damaged-r"),
     "cleanup journal /r/j cannot be read: its run directory is set aside as damaged in "
     "/s/.damaged-r, its cleanups not run (fix: inspect it, run what is still needed, then "
     "remove it)"),
    ("interrupted_twice", (), "interrupted twice: cleanups left pending for 'hookrun recover'"),
    ("journal_kept", ("/s/.damaged-r",), "cleanup journal kept for inspection in /s/.damaged-r"),
    ("run_dir_refused", ("/s/r", "owned by uid 1000", False, None),
     "run directory /s/r is not replayed: owned by uid 1000 (fix: inspect it, then remove it)"),
    ("run_dir_refused", ("/s/r", "meta.json: not a regular file", True, "/s/.damaged-r"),
     "run directory /s/r is damaged (meta.json: not a regular file): set aside as "
     "/s/.damaged-r, its cleanups not run (fix: inspect it, run what is still needed, then "
     "remove it)"),
    ("run_dir_refused", ("/s/r\n", "meta.json: not a regular file", True, None),
     "run directory /s/r\\x0a is damaged (meta.json: not a regular file); 'hookrun recover' "
     "sets it aside"),
    ("recovering", ("R1",), "recovering run R1: it ended without running its cleanups"),
    ("ended_leftovers", ("R1", ["sleep (pid 7)"]), "ended what run R1 left running: "
                                                   "sleep (pid 7)"),
    ("end_not_recorded", ("R1",), "run R1 ended without its end written to the history (a "
                                  "full disk?): its row, still running, is now interrupted"),
]


@pytest.mark.parametrize("method, args, line", WARNINGS)
def test_each_warning_is_one_exact_line_on_stderr_and_in_the_log(method, args, line):
    told, out, err = reporter()
    getattr(told, method)(*args)
    assert err.getvalue() == f"hookrun: warning: {line}\n"
    assert told.log.events == [f"warning: {line}"]
    assert out.getvalue() == ""


NOTES = [
    ("hook_settings", ("pre/10-x", HookSettings("stop", 60.0, 2, 5.0, None, None)),
     "pre/10-x: on-failure=stop timeout=1m retries=2 retry-delay=5s"),
    ("passed_over", ("pre-backup.d/README", "not executable"),
     "pre-backup.d/README: skipped: not executable"),
    ("not_selected", ("pre-backup.d/20-y",), "pre-backup.d/20-y: not selected by --only"),
    ("hands_on", ("pre/10-x", "RESTIC_REPOSITORY"), "pre/10-x hands on RESTIC_REPOSITORY"),
]


@pytest.mark.parametrize("method, args, line", NOTES)
def test_each_note_is_one_exact_line_with_v_and_nothing_without(method, args, line):
    told, out, err = reporter(verbose=True)
    getattr(told, method)(*args)
    assert out.getvalue() == f"    {line}\n"
    assert err.getvalue() == "" and told.log.events == []

    quiet, out, _err = reporter(verbose=False)
    getattr(quiet, method)(*args)
    assert out.getvalue() == ""


def test_a_note_that_is_not_shown_is_not_composed():
    told, out, _err = reporter(verbose=False)
    # Settings that cannot be described: composing the note would raise.
    told.hook_settings("pre/10-x", object())
    assert out.getvalue() == ""


EVENTS = [
    ("started", ("pre/10-x",), "pre/10-x start"),
    ("started", ("pre/10-x", 1), "pre/10-x start"),
    ("started", ("pre/10-x", 3), "pre/10-x start attempt=3"),
    ("command_argv", ("command/restic", ["restic", "backup", "/my files"]),
     "command/restic argv=restic backup '/my files'"),
    ("run_started", ("R1", "backup", "restic backup /", False),
     "run R1 event=backup start command=restic backup / no_hooks=False"),
    ("run_started", ("R1", "backup", "", True), "run R1 event=backup start command=- "
                                                "no_hooks=True"),
    ("run_ended", ("R1", "warning", 0), "run R1 end status=warning exit=0"),
    ("dry_run_started", ("R1", "backup", "restic backup /"),
     "run R1 event=backup start dry-run command=restic backup /"),
    ("dry_run_started", ("R1", "backup", ""), "run R1 event=backup start dry-run command=-"),
    ("dry_run_ended", ("R1", "success", 0), "run R1 end dry-run status=success exit=0"),
]


@pytest.mark.parametrize("method, args, line", EVENTS)
def test_each_log_line_is_exact_and_nothing_without_a_log(method, args, line):
    told, out, err = reporter()
    getattr(told, method)(*args)
    assert told.log.events == [line]
    assert out.getvalue() == err.getvalue() == ""

    unlogged, out, err = reporter(log=False)
    getattr(unlogged, method)(*args)
    assert out.getvalue() == err.getvalue() == ""


def test_recover_with_nothing_to_do_says_so_on_stdout():
    told, out, err = reporter(verbose=False)
    told.nothing_to_recover()
    assert out.getvalue() == "nothing to recover\n" and err.getvalue() == ""
