"""list, check, phase, history, show and defer through the library."""

import json
import os

from tests.conftest import marker_hook, order, run_hookrun

LIST_FIELDS = {"phase", "dir", "name", "path", "runs", "reason", "critical", "on_failure",
               "timeout", "retries", "retry_delay", "when", "events", "origin", "overrides",
               "warning_codes", "dry_run", "stall", "user"}
RUN_FIELDS = {"id", "event", "status", "exit_code", "command", "started", "finished",
              "duration", "no_hooks", "error", "trigger", "stats", "tasks"}
TASK_FIELDS = {"phase", "name", "status", "exit_code", "attempts", "started", "duration",
               "cpu_seconds", "max_rss_bytes", "reason", "output"}


def test_list_json_has_the_documented_fields_and_effective_settings(tree, hookrun_main):
    tree.hook("pre-backup.d/10-dump", "true", header="timeout=30m retries=2")
    tree.hook("post-backup.d/10-verify", "true", header="when=success critical=yes")
    tree.hook("pre-backup.d/20-off.disabled", "true")
    tree.hook("pre-backup.d/30-plain", "true", mode=0o644)
    tree.config("[hook pre-backup.d/10-dump]\nretry-delay = 1m\n")
    status, out, _err = hookrun_main("list", "--json", *tree.args())
    assert status == 0
    items = json.loads(out)
    assert all(set(item) == LIST_FIELDS for item in items)
    by_name = {item["name"]: item for item in items}
    assert "20-off.disabled" not in by_name
    dump = by_name["10-dump"]
    assert (dump["phase"], dump["dir"], dump["runs"], dump["critical"], dump["timeout"],
            dump["retries"], dump["retry_delay"], dump["when"]) == \
        ("pre", "pre-backup.d", True, True, 1800, 2, 60, None)
    assert by_name["10-verify"]["when"] == "success" and by_name["10-verify"]["critical"]
    assert (dump["on_failure"], by_name["10-verify"]["on_failure"]) == ("stop", "stop")
    assert dump["events"] is None
    # A hook that cannot start is a task that fails, not a skip (design.md 10).
    assert (by_name["30-plain"]["runs"], by_name["30-plain"]["reason"]) == \
        (True, "not executable")
    status, out, _err = hookrun_main("list", "--json", "--all", *tree.args())
    assert "20-off.disabled" in {item["name"] for item in json.loads(out)}


def test_check_reports_warnings_and_exits_0(tree, hookrun_main):
    tree.hook("pre-backup.d/9-short", "true")
    tree.hook("pre-backup.d/10-long", "true")
    tree.hook("pre-backup.d/20-noshebang", "true", shebang=None)
    tree.hook("pre-backup.d/30-off.disabled", "true", mode=0o644)
    status, _out, err = hookrun_main("check", *tree.args())
    assert status == 0
    assert "different widths" in err and "shebang" in err and "30-off" not in err


def test_check_exits_78_listing_every_bad_header(tree, hookrun_main):
    tree.hook("pre-backup.d/10-a", "true", header="colour=red")
    tree.hook("finally.d/10-b", "true", header="timeout=later")
    status, _out, err = hookrun_main("check", *tree.args())
    assert status == 78
    assert "10-a:2:" in err and "10-b:2:" in err


def refusal_cases(tree):
    """(arguments, the path the problem is about) of every refusal check --json reports."""
    (tree.hooks / "pre-backup.d").mkdir()
    yield ["--json", *tree.args("-e", "nosuch")], tree.hooks
    yield ["--json", "-d", str(tree.base / "nowhere")], tree.base / "nowhere"
    ignore = tree.hooks / ".hookignore"
    ignore.write_text("!\n")
    yield ["--json", *tree.args()], ignore
    ignore.unlink()
    tree.config("[bogus]\n")
    yield ["--json", *tree.args()], tree.hooks / "hookrun.conf"
    # -c relative to the working directory: the problem's path is the file's, absolute.
    yield ["--json", "-c", "hookrun.conf", *tree.args()], tree.hooks / "hookrun.conf"
    # The same for an error found while planning (a [hook] section naming no account).
    tree.config("[hook pre-backup.d/10-x]\nuser = no-such-account\n")
    tree.hook("pre-backup.d/10-x", "true")
    yield ["--json", "-c", "hookrun.conf", *tree.args()], tree.hooks / "hookrun.conf"


def test_check_json_reports_a_refusal_as_its_one_problem_with_its_status(tree):
    for argv, path in refusal_cases(tree):
        result = run_hookrun("check", *argv, cwd=tree.hooks)
        assert result.returncode == 78, (argv, result.stderr)
        found = json.loads(result.stdout)
        assert (found["ok"], found["warnings"]) == (False, [])
        [problem] = found["problems"]
        assert set(problem) == {"path", "what", "fix"} and problem["path"] == str(path)
        assert problem["what"] and "Traceback" not in result.stderr


def test_check_exits_77_for_a_group_writable_hook(tree, hookrun_main):
    path = tree.hook("pre-backup.d/10-a", "true")
    path.chmod(0o775)
    status, _out, err = hookrun_main("check", *tree.args())
    assert status == 77 and "chmod go-w" in err


def test_phase_runs_one_directory_with_status_and_cleanups(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-a",
                extra=f"hookrun defer touch '{tree.marks}/cleaned'")
    for when in ("success", "failure", "always"):
        marker_hook(tree, f"post-backup.d/{when}", header=f"when={when}",
                    extra=f'echo "$BACKUP_STATUS" > "{tree.marks}/status"')
    assert hookrun_main("phase", "pre-backup", *tree.args())[0] == 0
    assert tree.read("cleaned") == ""
    assert hookrun_main("phase", "post-backup.d", "--status", "failure", *tree.args())[0] == 0
    assert order(tree) == ["pre/10-a", "post/always", "post/failure"]
    assert tree.read("status").strip() == "failure"
    assert not (tree.state / "history.sqlite3").exists()


def test_phase_exit_codes(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-skip", code=75)
    marker_hook(tree, "pre-backup.d/20-never")
    assert hookrun_main("phase", "pre-backup", *tree.args())[0] == 0
    assert order(tree) == ["pre/10-skip"]
    marker_hook(tree, "pre-prune.d/10-stop", code=63, header="critical=no")
    assert hookrun_main("phase", "pre-prune", *tree.args())[0] == 69
    marker_hook(tree, "finally.d/10-fail", code=1, header="critical=yes")
    assert hookrun_main("phase", "finally", *tree.args())[0] == 69


def test_phase_rejects_what_is_not_a_phase_directory(tree, hookrun_main):
    assert hookrun_main("phase", "backup", *tree.args())[0] == 2
    # A conflicting -e: a usage error when the event is known, 78 when it is not.
    assert hookrun_main("phase", "pre-backup", "-e", "prune", *tree.args())[0] == 78
    tree.events("prune")
    assert hookrun_main("phase", "pre-backup", "-e", "prune", *tree.args())[0] == 2


def test_history_and_show_json_shapes(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-a")
    tree.events("prune")
    hookrun_main("run", *tree.args(), "--", "true")
    hookrun_main("run", *tree.args("-e", "prune"), "--", "sh", "-c", "exit 4")
    status, out, _err = hookrun_main("history", "--json", *tree.args())
    runs = json.loads(out)
    assert status == 0 and len(runs) == 2
    assert all(set(run) == RUN_FIELDS for run in runs)
    assert all(set(task) == TASK_FIELDS for run in runs for task in run["tasks"])
    newest, oldest = runs
    assert (newest["event"], newest["status"], newest["exit_code"]) == ("prune", "failure", 4)
    assert (oldest["event"], oldest["status"], oldest["exit_code"]) == ("backup", "success", 0)
    assert oldest["command"] == "true" and oldest["no_hooks"] is False
    assert oldest["started"].endswith(("+00:00", "Z")) or "+" in oldest["started"][-6:] or \
        "-" in oldest["started"][-6:]
    assert [(t["phase"], t["name"]) for t in oldest["tasks"]] == [("pre", "10-a"),
                                                                  ("command", "true")]
    task = oldest["tasks"][0]
    assert task["status"] == "ok" and task["attempts"] == 1
    _status, out, _err = hookrun_main("history", "--json", "-e", "backup", *tree.args())
    assert [run["event"] for run in json.loads(out)] == ["backup"]
    _status, out, _err = hookrun_main("show", oldest["id"], "--json", *tree.args())
    assert json.loads(out) == oldest
    _status, out, _err = hookrun_main("history", "-n", "1", *tree.args())
    assert "prune" in out and oldest["id"] not in out


def test_show_of_an_unknown_run_is_one_line_and_exit_1(tree, hookrun_main):
    hookrun_main("run", *tree.args(), "--", "true")
    status, _out, err = hookrun_main("show", "nope", *tree.args())
    assert status == 1 and err.count("\n") == 1


def test_defer_outside_a_run_exits_2():
    result = run_hookrun("defer", "--", "echo", "hi")
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_state_dir_and_files_are_private(tree, hookrun_main):
    hookrun_main("run", *tree.args(), "--", "true")
    assert (tree.state.stat().st_mode & 0o777) == 0o700
    for name in ("history.sqlite3", "hookrun.log"):
        assert (os.stat(tree.state / name).st_mode & 0o777) == 0o600


def test_unwritable_state_dir_exits_73(tree, hookrun_main):
    blocker = tree.marks / "file"
    blocker.write_text("")
    status, _out, err = hookrun_main("run", "-d", str(tree.hooks), "--state-dir",
                                     str(blocker / "state"), "--", "true")
    assert status == 73 and err.count("\n") == 1


def test_unopenable_log_file_exits_73(tree, hookrun_main):
    blocker = tree.marks / "file"
    blocker.write_text("")
    status, _out, err = hookrun_main("run", *tree.args("--log-file", str(blocker / "log")),
                                     "--", "true")
    assert status == 73 and "log" in err


def test_missing_hooks_dir_and_missing_config_are_config_errors(tree, hookrun_main):
    status, _out, err = hookrun_main("run", "-d", str(tree.base / "nope"), "--state-dir",
                                     str(tree.state), "--", "true")
    assert status == 78 and "does not exist" in err
    status, _out, err = hookrun_main("run", *tree.args("-c", str(tree.base / "none.conf")),
                                     "--", "true")
    assert status == 78


def test_the_log_file_records_output_and_task_ends(tree, hookrun_main):
    tree.hook("pre-backup.d/10-talk", "echo to-stdout; echo to-stderr >&2")
    hookrun_main("run", *tree.args(), "--", "true")
    log = (tree.state / "hookrun.log").read_text()
    assert "pre/10-talk stdout: to-stdout" in log
    assert "pre/10-talk stderr: to-stderr" in log
    assert "pre/10-talk end status=ok exit=0" in log


def test_phase_hooks_get_the_previous_run_of_the_event(tree, hookrun_main):
    hookrun_main("run", *tree.args(), "--", "false")
    tree.hook("pre-backup.d/10-a", f'echo "$HOOKRUN_PREVIOUS_STATUS" > "{tree.marks}/prev"')
    assert hookrun_main("phase", "pre-backup", *tree.args())[0] == 0
    assert tree.read("prev").strip() == "failure"


def test_run_json_ends_with_the_runs_record(tree, hookrun_main):
    tree.hook("pre-backup.d/10-a", "true")
    status, out, _err = hookrun_main("run", "--json", *tree.args(), "--", "true")
    assert status == 0
    record = json.loads(out.strip().splitlines()[-1])
    assert set(record) == RUN_FIELDS and record["status"] == "success"
    _status, shown, _err = hookrun_main("show", "last", "--json", *tree.args())
    assert json.loads(shown) == record


def test_check_warns_of_a_notify_command_that_is_not_there_by_path_or_by_name(tree):
    (tree.hooks / "pre-backup.d").mkdir()
    missing = tree.base / "bin" / "mail-report"
    missing.parent.mkdir(mode=0o755)
    for argv0 in (str(missing), "no-such-mail-report"):
        tree.config(f"[hookrun]\nnotify_command = {argv0} admin@example.org\n")
        result = run_hookrun("check", *tree.args())
        assert result.returncode == 0, result.stderr
        assert f"notify_command {argv0}: not found" in result.stderr
    # Not there yet is no reason to stop judging where it would come from.
    missing.parent.chmod(0o777)
    tree.config(f"[hookrun]\nnotify_command = {missing}\n")
    result = run_hookrun("check", *tree.args())
    assert result.returncode == 77 and f"chmod go-w {missing.parent}" in result.stderr


def test_recover_of_a_state_dir_that_does_not_exist_creates_nothing(tmp_path):
    """A mistyped --state-dir has nothing to recover: recover says so, exits as with nothing
    to recover, and creates neither the directory nor its parents."""
    missing = tmp_path / "typo" / "state"
    result = run_hookrun("recover", "--state-dir", str(missing))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "Traceback" not in result.stderr
    assert not (tmp_path / "typo").exists()
    # As history, show and stats on it: nothing there, nothing made.
    assert run_hookrun("history", "--state-dir", str(missing)).returncode == 1
    assert not (tmp_path / "typo").exists()
    # A state directory that exists is recovered as ever: its runs/ and locks/ are made.
    existing = tmp_path / "state"
    existing.mkdir(mode=0o700)
    assert run_hookrun("recover", "--state-dir", str(existing)).returncode == 0
    assert (existing / "runs").is_dir()
