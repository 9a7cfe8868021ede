"""No false green (design.md 10): a run says ``success`` only when every step the tree and
the config set up did its job. One test per case that used to end in ``success``, through
the installed ``hookrun``, asserting the run's status and exit code, not only the task's."""

import json
import os

import pytest

from tests.conftest import marker_hook, order, run_hookrun, show_last

EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_HOOK_STOPPED, EXIT_CONFIG = 1, 2, 69, 78


def run_ok(tree, *extra):
    return run_hookrun("run", *tree.args(*extra), "--", "touch", str(tree.mark("backed-up")))


def tasks_of(record):
    return {f"{task['phase']}/{task['name']}": task for task in record["tasks"]}


def test_a_pre_hook_that_lost_its_x_bit_stops_the_run_and_check_fails(tree):
    tree.hook("pre-backup.d/20-dump", "echo dumped", mode=0o644)
    marker_hook(tree, "on-error.d/10-alert")
    result = run_ok(tree)
    assert result.returncode == EXIT_HOOK_STOPPED, result.stderr
    assert tree.read("backed-up") is None
    record = show_last(tree)
    dump = tasks_of(record)["pre/20-dump"]
    assert (record["status"], dump["status"], dump["reason"]) == \
        ("failure", "failed", "not executable")
    assert tasks_of(record)["command/touch"]["status"] == "skipped"
    assert order(tree) == ["on-error/10-alert"]
    check = run_hookrun("check", *tree.args())
    assert check.returncode == EXIT_CHECK_FAILED
    assert "20-dump: not executable" in check.stderr and ".disabled" in check.stderr
    listing = run_hookrun("list", *tree.args())
    assert "  fail  20-dump  not executable: on-failure=stop" in listing.stdout


def test_disabled_and_ignored_hooks_are_switched_off_on_purpose(tree):
    tree.hook("pre-backup.d/20-dump.disabled", "exit 1", mode=0o644)
    tree.hook("pre-backup.d/30-old", "exit 1", mode=0o644)
    marker_hook(tree, "pre-backup.d/40-dump")
    (tree.hooks / ".hookignore").write_text("pre-backup.d/30-old\n")
    (tree.hooks / ".hookignore").chmod(0o644)
    result = run_ok(tree)
    assert result.returncode == 0 and result.stderr == ""
    assert show_last(tree)["status"] == "success" and tree.read("backed-up") == ""
    assert order(tree) == ["pre/40-dump"]
    assert run_hookrun("check", *tree.args()).returncode == 0


def test_a_broken_symlink_in_pre_is_a_failure_not_a_skip(tree):
    (tree.hooks / "pre-backup.d").mkdir()
    os.symlink(tree.base / "gone", tree.hooks / "pre-backup.d" / "10-linked")
    result = run_ok(tree)
    assert result.returncode == EXIT_HOOK_STOPPED
    record = show_last(tree)
    assert record["status"] == "failure"
    assert tasks_of(record)["pre/10-linked"]["reason"] == "broken symlink"
    check = run_hookrun("check", "--json", *tree.args())
    assert check.returncode == EXIT_CHECK_FAILED
    found = json.loads(check.stdout)
    assert [p["what"] for p in found["problems"]] == ["broken symlink"]
    # Nothing runs it, so nothing runs it by /bin/sh either.
    assert not [w for w in found["warnings"] if "10-linked" in w]


def test_a_missing_env_interpreter_fails_check_and_the_run_names_it(tree):
    tree.hook("pre-backup.d/10-python", "print(1)", shebang="#!/usr/bin/env python9")
    check = run_hookrun("check", *tree.args())
    assert check.returncode == EXIT_CHECK_FAILED
    assert "10-python: interpreter python9 not found" in check.stderr
    result = run_ok(tree)
    assert result.returncode == EXIT_HOOK_STOPPED
    task = tasks_of(show_last(tree))["pre/10-python"]
    assert (task["status"], task["reason"]) == ("failed", "interpreter python9 not found")


def test_a_crlf_shebang_fails_check_and_the_run_names_crlf(tree):
    hook = tree.hook("pre-backup.d/20-crlf", "true")
    hook.write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    tree.hook("pre-backup.d/30-abs", "true", shebang="#!/usr/bin/no-such-python3")
    check = run_hookrun("check", "--json", *tree.args())
    assert check.returncode == EXIT_CHECK_FAILED
    found = json.loads(check.stdout)
    assert set(found) == {"ok", "problems", "warnings"} and found["ok"] is False
    problems = {os.path.basename(p["path"]): p for p in found["problems"]}
    assert set(problems["20-crlf"]) == {"path", "what", "fix"}
    assert problems["20-crlf"]["what"] == "CRLF line endings"
    assert "dos2unix" in problems["20-crlf"]["fix"]
    assert problems["30-abs"]["what"] == "interpreter /usr/bin/no-such-python3 not found"
    result = run_ok(tree)
    assert result.returncode == EXIT_HOOK_STOPPED
    assert tasks_of(show_last(tree))["pre/20-crlf"]["reason"] == "CRLF line endings"


def test_crlf_in_a_scripts_payload_is_no_crlf_warning_but_in_its_text_is(tree):
    """Bytes after a NUL are a payload (a self-extracting script), not lines a shell reads:
    dos2unix, as the warning advised, would corrupt it."""
    payload = tree.hook("pre-backup.d/10-installer", "true")
    payload.write_bytes(b"#!/bin/sh\nexit 0\n\0\1payload\r\n")
    text = tree.hook("pre-backup.d/20-text", "true")
    text.write_bytes(b"#!/bin/sh\necho hi\r\nexit 0\n")
    check = run_hookrun("check", "--json", *tree.args())
    crlf = [w for w in json.loads(check.stdout)["warnings"] if "CRLF" in w]
    assert check.returncode == 0 and crlf and all("20-text" in w for w in crlf), check.stdout


@pytest.mark.parametrize("name, meant", [("on_error.d", "on-error.d"),
                                         ("pre_backup.d", "pre-backup.d"),
                                         ("prebackup.d", "pre-backup.d"),
                                         ("pre-backup", "pre-backup.d")])
def test_a_near_miss_directory_is_named_with_what_it_was_meant_to_be(tree, name, meant):
    marker_hook(tree, f"{name}/10-never")
    result = run_ok(tree)
    assert result.returncode == 0 and tree.read("backed-up") == ""
    assert f"{name}/ is not a phase directory" in result.stderr and f"{meant}/" in result.stderr
    listing = run_hookrun("list", *tree.args())
    assert listing.returncode == 0 and f"did you mean {meant}/" in listing.stderr
    check = run_hookrun("check", "--json", *tree.args())
    assert check.returncode == EXIT_CHECK_FAILED
    [problem] = json.loads(check.stdout)["problems"]
    assert problem["path"] == str(tree.hooks / name) and problem["fix"] == f"rename it {meant}/"


def test_an_unknown_event_is_78_naming_the_known_ones_and_nothing_runs(tree):
    marker_hook(tree, "pre-backup.d/10-pre")
    (tree.hooks / "post-prune.d").mkdir()
    (tree.hooks / "finally.d").mkdir()
    for argv in (["run", "-e", "bakup", "--", "true"], ["list", "-e", "bakup"],
                 ["check", "-e", "bakup"], ["phase", "finally", "-e", "bakup"],
                 ["phase", "pre-backup", "-e", "bakup"], ["phase", "on-error", "-e", "bakup"]):
        result = run_hookrun(argv[0], *tree.args(*argv[1:]))
        assert result.returncode == EXIT_CONFIG, (argv, result.stderr)
        assert "unknown event 'bakup'" in result.stderr and "backup, prune" in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert order(tree) == [] and not (tree.state / "history.sqlite3").exists()
    # A known event that is not the phase directory's own contradicts it: a usage error.
    result = run_hookrun("phase", "pre-backup", *tree.args("-e", "prune"))
    assert result.returncode == EXIT_USAGE and "belongs to event 'backup'" in result.stderr
    # --no-hooks reads no tree: any well-formed event name is taken.
    assert run_hookrun("run", "--no-hooks", *tree.args("-e", "bakup"), "--",
                       "true").returncode == 0


def test_events_become_known_by_the_config_and_by_a_hooks_events_directive(tree):
    marker_hook(tree, "finally.d/10-report", header="events=verify")
    tree.config("[hookrun]\nevents = check, prune\n")
    for event in ("verify", "check", "prune"):
        result = run_hookrun("run", *tree.args("-e", event), "--", "true")
        assert result.returncode == 0, (event, result.stderr)
    assert order(tree) == ["finally/10-report"]
    assert run_hookrun("run", *tree.args("-e", "nosuch"), "--", "true").returncode == \
        EXIT_CONFIG


def test_a_hookignore_that_hides_a_whole_phase_is_a_warning(tree):
    marker_hook(tree, "pre-backup.d/10-dump.sh")
    (tree.hooks / ".hookignore").write_text("*.*\n")
    (tree.hooks / ".hookignore").chmod(0o644)
    result = run_ok(tree)
    assert result.returncode == 0
    assert "pre-backup.d: .hookignore hides every file (1)" in result.stderr
    assert "hides every file" in run_hookrun("check", *tree.args()).stderr


def test_exit_63_in_post_acts_as_62(tree):
    tree.hook("post-backup.d/10-gives-up", "echo nope; exit 63")
    tree.hook("post-backup.d/20-gives-up", "echo nope; exit 62")
    marker_hook(tree, "finally.d/90-seen", extra=f'echo "[$HOOKRUN_ERROR]" > "{tree.marks}/err"')
    result = run_ok(tree)
    assert result.returncode == 0
    assert "63 (ABORT_STOP), which only stops the run in pre-" in result.stderr
    record = show_last(tree)
    post = tasks_of(record)
    assert post["post/10-gives-up"]["status"] == post["post/20-gives-up"]["status"] == "aborted"
    assert record["status"] == "success" and tree.read("err").strip() == "[]"


def test_a_warning_leaves_the_error_variables_empty_and_lists_it(tree):
    tree.hook("pre-backup.d/20-optional", "echo quota check failed; exit 1",
              header="critical=no")
    tree.hook("post-backup.d/10-backrest-style", f"""
        if [ -n "$BACKUP_ERROR" ]; then echo fail > "{tree.marks}/pinged"; fi
        printf '%s' "$HOOKRUN_WARNINGS" > "{tree.marks}/warnings"
        printf '%s|%s|%s' "$BACKUP_STATUS" "$ERROR" "$HOOKRUN_ERROR_LOG" > "{tree.marks}/vars"
        """)
    result = run_ok(tree)
    assert result.returncode == 0
    assert show_last(tree)["status"] == "warning"
    assert tree.read("pinged") is None
    assert tree.read("vars") == "success||"
    assert tree.read("warnings") == "pre/20-optional failed (exit 1): quota check failed"


def test_a_failed_run_still_sets_the_error_variables(tree):
    tree.hook("pre-backup.d/20-optional", "exit 1", header="critical=no")
    marker_hook(tree, "on-error.d/10-alert", extra=f'''
        printf '%s' "$HOOKRUN_ERROR" > "{tree.marks}/error"
        printf '%s' "$HOOKRUN_WARNINGS" > "{tree.marks}/warnings"''')
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c", "echo Fatal: no key >&2; exit 1")
    assert result.returncode == 1
    assert tree.read("error") == "command sh failed (exit 1): Fatal: no key"
    assert tree.read("warnings") == "pre/20-optional failed (exit 1)"


def test_a_hook_after_a_failed_post_hook_is_told_the_run_failed_so_far(tree):
    """A when=always post- hook that runs after a critical post- hook failed sees the
    failure in ERROR (a hook that pings /fail on it must not ping success)."""
    tree.hook("post-backup.d/10-verify", "echo snapshot missing; exit 4", header="critical=yes")
    tree.hook("post-backup.d/20-ping", f"""
        printf '%s|%s|%s|%s' "$HOOKRUN_STATUS" "$ERROR" "$HOOKRUN_ERROR_HOOK" \\
            "$HOOKRUN_WARNINGS" > "{tree.marks}/vars"
        cat "$HOOKRUN_ERROR_LOG" > "{tree.marks}/log" """, header="when=always")
    marker_hook(tree, "on-error.d/10-alert", extra=f'''
        printf '%s' "$ERROR" > "{tree.marks}/alert"''')
    result = run_ok(tree)
    assert result.returncode == EXIT_HOOK_STOPPED, result.stderr
    assert show_last(tree)["status"] == "failure"
    line = "post hook 10-verify failed (exit 4): snapshot missing"
    # HOOKRUN_STATUS in post- is the command's, which succeeded.
    assert tree.read("vars") == f"success|{line}|10-verify|"
    assert tree.read("log") == "snapshot missing\n"
    assert tree.read("alert") == line


def test_a_hook_after_a_failed_post_hook_is_told_of_its_warning(tree):
    tree.hook("post-backup.d/10-prune", "echo lock held; exit 1")
    tree.hook("post-backup.d/20-ping", f"""
        printf '%s|%s' "$ERROR" "$HOOKRUN_WARNINGS" > "{tree.marks}/vars" """)
    result = run_ok(tree)
    assert result.returncode == 0, result.stderr
    assert show_last(tree)["status"] == "warning"
    assert tree.read("vars") == "|post/10-prune failed (exit 1): lock held"


def test_a_handler_after_a_failed_handler_is_told_of_its_warning(tree):
    tree.hook("on-success.d/10-mail", "echo relay refused; exit 1")
    tree.hook("on-success.d/20-ping", f"""
        printf '%s|%s|%s' "$HOOKRUN_STATUS" "$ERROR" "$HOOKRUN_WARNINGS" \\
            > "{tree.marks}/vars" """)
    result = run_ok(tree)
    assert result.returncode == 0, result.stderr
    assert show_last(tree)["status"] == "warning"
    assert tree.read("vars") == "warning||on-success/10-mail failed (exit 1): relay refused"


def test_a_skip_run_check_that_hangs_fails_the_run(tree):
    tree.hook("pre-backup.d/10-disk-present", "sleep 30", header="on-failure=skip-run timeout=1s")
    marker_hook(tree, "on-error.d/10-alert")
    result = run_ok(tree, "--kill-grace", "1s")
    assert result.returncode == EXIT_HOOK_STOPPED, result.stderr
    record = show_last(tree)
    assert record["status"] == "failure"
    assert tasks_of(record)["pre/10-disk-present"]["status"] == "timeout"
    assert order(tree) == ["on-error/10-alert"] and tree.read("backed-up") is None


def test_a_skip_after_exit_1_says_exit_1(tree):
    tree.hook("pre-backup.d/10-disk-present", "exit 1", header="on-failure=skip-run")
    result = run_ok(tree)
    assert result.returncode == 0
    record = show_last(tree)
    tasks = tasks_of(record)
    assert record["status"] == "skipped"
    assert tasks["pre/10-disk-present"]["reason"] == "skip-run after exit 1"
    assert "exit 75" not in tasks["command/touch"]["reason"]
    assert "skip-run after exit 1" in tasks["command/touch"]["reason"]


def test_a_hook_section_naming_no_file_is_a_warning_in_run(tree):
    marker_hook(tree, "pre-backup.d/10-ok")
    tree.config("[hook pre-backup.d/10-okk]\ntimeout = 30m\n")
    result = run_ok(tree)
    assert result.returncode == 0
    assert "[hook pre-backup.d/10-okk] names no file" in result.stderr


@pytest.mark.parametrize("setup", ["near-miss", "hookignore", "hook-section"])
def test_what_the_tree_warns_of_makes_the_run_a_warning_not_a_success(tree, setup):
    """design.md 10: each of these ended in success before; a warning on stderr alone let
    the history, the metrics and the pings say success."""
    marker_hook(tree, "pre-backup.d/10-dump.sh")
    tree.hook("finally.d/10-told", f'printf %s "$HOOKRUN_WARNINGS" > "{tree.marks}/told"')
    if setup == "near-miss":
        marker_hook(tree, "pre_backup.d/10-never")
    elif setup == "hookignore":
        (tree.hooks / ".hookignore").write_text("pre-backup.d/*.sh\n")
        (tree.hooks / ".hookignore").chmod(0o644)
    else:
        tree.config("[hook pre-backup.d/10-dumpp]\ntimeout = 30m\n")
    result = run_ok(tree)
    assert result.returncode == 0, result.stderr
    record = show_last(tree)
    assert record["status"] == "warning" and record["error"], record
    assert tree.read("told"), "HOOKRUN_WARNINGS names what was wrong"


def test_a_cleanup_that_exits_62_failed_it_did_not_give_up(tree):
    """62 and 63 are the hooks' protocol: a cleanup line (docker start webapp) that exits
    62 failed, and the run is a warning."""
    tree.hook("pre-backup.d/10-defer", "hookrun defer sh -c 'exit 62'")
    result = run_ok(tree)
    assert result.returncode == 0, result.stderr
    record = show_last(tree)
    cleanup = [task for task in record["tasks"] if task["phase"] == "cleanup"]
    assert [task["status"] for task in cleanup] == ["failed"]
    assert record["status"] == "warning"


def test_recovery_that_leaves_a_dead_runs_undo_undone_makes_the_run_a_warning(tree):
    """A dead run's journal line too damaged to run is an undo that did not happen."""
    assert run_ok(tree).returncode == 0
    dead = tree.state / "runs" / "20000101T000000-dead02"
    dead.mkdir(mode=0o700)
    (dead / "meta.json").write_text('{"run_id": "20000101T000000-dead02", "event": "backup"}')
    (dead / "cleanup").write_bytes(f'touch "{tree.marks}/undone-1"\n'.encode() + b"torn \0\n")
    for path in dead.iterdir():
        path.chmod(0o600)
    result = run_ok(tree, "--json")
    assert result.returncode == 0, result.stderr
    assert tree.read("undone-1") == ""
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["status"] == "warning" and "damaged" in record["error"], record
