"""The run lifecycle of design.md section 2 with real #!/bin/sh hooks, through the library."""

import json

import pytest

from tests.conftest import marker_hook, order, run_hookrun


def full_tree(tree, pre_code=0, command_ok=True):
    marker_hook(tree, "pre-backup.d/10-first")
    marker_hook(tree, "pre-backup.d/20-second", code=pre_code)
    marker_hook(tree, "pre-backup.d/30-third")
    marker_hook(tree, "post-backup.d/10-post")
    marker_hook(tree, "post-backup.d/20-always", header="when=always")
    marker_hook(tree, "on-error.d/10-error")
    marker_hook(tree, "on-success.d/10-success")
    marker_hook(tree, "finally.d/10-finally",
                extra=f'echo "$HOOKRUN_STATUS" > "{tree.marks}/final-status"')
    marker_hook(tree, "pre-prune.d/10-prune")


def command(tree, code=0):
    return ["sh", "-c", f'echo command >> "{tree.marks}/order"; exit {code}']


def test_success_runs_pre_command_post_on_success_finally_in_order(tree, hookrun_main):
    full_tree(tree)
    status, out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 0
    assert order(tree) == ["pre/10-first", "pre/20-second", "pre/30-third", "command",
                           "post/10-post", "post/20-always", "on-success/10-success",
                           "finally/10-finally"]
    assert tree.read("final-status").strip() == "success"


def test_critical_pre_failure_stops_the_run_and_exits_69(tree, hookrun_main):
    full_tree(tree, pre_code=3)
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 69
    assert order(tree) == ["pre/10-first", "pre/20-second", "post/20-always",
                           "on-error/10-error", "finally/10-finally"]
    assert tree.read("final-status").strip() == "failure"


def test_non_critical_pre_failure_is_a_warning_and_the_run_goes_on(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-soft", code=1, header="critical=no")
    marker_hook(tree, "on-success.d/10-success",
                extra=f'echo "$HOOKRUN_STATUS" > "{tree.marks}/status"')
    status, _out, err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 0
    assert order(tree) == ["pre/10-soft", "command", "on-success/10-success"]
    assert tree.read("status").strip() == "warning"


def test_exit_62_in_pre_gives_up_without_retry_and_the_chain_goes_on(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-gives-up", code=62, header="retries=3 retry-delay=0")
    marker_hook(tree, "pre-backup.d/20-next")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 0
    assert order(tree) == ["pre/10-gives-up", "pre/20-next", "command"]


def test_exit_63_in_pre_stops_the_run_even_when_not_critical(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-stop", code=63, header="critical=no retries=2")
    marker_hook(tree, "pre-backup.d/20-never")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 69
    assert order(tree) == ["pre/10-stop"]


def test_exit_63_outside_pre_only_warns(tree, hookrun_main):
    marker_hook(tree, "post-backup.d/10-stop", code=63, header="critical=yes")
    marker_hook(tree, "post-backup.d/20-next")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 0
    assert order(tree) == ["command", "post/10-stop", "post/20-next"]


def test_exit_75_in_pre_skips_the_run_but_cleanups_and_finally_run(tree, hookrun_main):
    tree.hook("pre-backup.d/05-defer", f"""
        echo "echo cleanup >> '{tree.marks}/order'" >> "$HOOKRUN_CLEANUP"
        """)
    full_tree(tree, pre_code=75)
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 0
    assert order(tree) == ["pre/10-first", "pre/20-second", "cleanup", "finally/10-finally"]
    assert tree.read("final-status").strip() == "skipped"


def test_exit_75_outside_pre_is_an_ordinary_failure(tree, hookrun_main):
    marker_hook(tree, "post-backup.d/10-skip", code=75, header="critical=yes")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 69


def test_command_failure_passes_its_status_through_and_runs_on_error(tree, hookrun_main):
    full_tree(tree)
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree, 7))
    assert status == 7
    assert order(tree) == ["pre/10-first", "pre/20-second", "pre/30-third", "command",
                           "post/10-post", "post/20-always", "on-error/10-error",
                           "finally/10-finally"]


def test_critical_post_failure_after_a_successful_command_exits_69(tree, hookrun_main):
    marker_hook(tree, "post-backup.d/10-check", code=1, header="critical=yes")
    marker_hook(tree, "post-backup.d/20-rest")
    marker_hook(tree, "on-error.d/10-error")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 69
    assert order(tree) == ["command", "post/10-check", "on-error/10-error"]


def test_a_post_failure_after_a_failed_command_keeps_the_commands_status(tree, hookrun_main):
    marker_hook(tree, "post-backup.d/10-check", code=1, header="critical=yes")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *command(tree, 5))
    assert status == 5


@pytest.mark.parametrize("code, expected", [(0, ["post/ran", "post/success", "post/always"]),
                                            (1, ["post/ran", "post/failure", "post/always"])])
def test_post_hooks_are_filtered_by_when(tree, hookrun_main, code, expected):
    for when in ("ran", "success", "failure", "always"):
        marker_hook(tree, f"post-backup.d/{when}", header=f"when={when}")
    hookrun_main("run", *tree.args(), "--", "sh", "-c", f"exit {code}")
    assert sorted(order(tree)) == sorted(expected)


def test_only_when_always_post_hooks_run_when_pre_stopped(tree, hookrun_main):
    for when in ("ran", "success", "failure", "always"):
        marker_hook(tree, f"post-backup.d/{when}", header=f"when={when}")
    marker_hook(tree, "pre-backup.d/10-fail", code=1)
    hookrun_main("run", *tree.args(), "--", "true")
    assert order(tree) == ["pre/10-fail", "post/always"]


def test_retries_double_the_delay_and_count_attempts(tree, hookrun_main):
    tree.hook("pre-backup.d/10-flaky", f"""
        date +%s.%N >> "{tree.marks}/times"
        [ "$HOOKRUN_ATTEMPT" -ge 3 ]
        """, header="retries=5 retry-delay=0.2s")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", "true")
    assert status == 0
    times = [float(t) for t in tree.read("times").split()]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4
    record = show_json(tree, hookrun_main)
    assert record["tasks"][0]["attempts"] == 3 and record["tasks"][0]["status"] == "ok"


def test_retries_give_up_after_the_last_attempt(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-broken", code=4, header="retries=2 retry-delay=0")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", "true")
    assert status == 69
    assert order(tree) == ["pre/10-broken"] * 3


@pytest.mark.parametrize("argv, expected", [
    (["/nonexistent/command"], 127),
    (["{not_executable}"], 126),
    (["sh", "-c", "kill -TERM $$"], 143),
])
def test_command_that_cannot_run_or_is_killed(tree, hookrun_main, argv, expected):
    plain = tree.marks / "plain-file"
    plain.write_text("echo hi\n")
    plain.chmod(0o644)
    argv = [arg.format(not_executable=plain) for arg in argv]
    status, _out, _err = hookrun_main("run", *tree.args(), "--", *argv)
    assert status == expected


def test_command_timeout_exits_124(tree, hookrun_main):
    marker_hook(tree, "on-error.d/10-error")
    status, _out, _err = hookrun_main("run", *tree.args("--command-timeout", "0.5s",
                                                       "--kill-grace", "1s"), "--", "sleep", "30")
    assert status == 124
    assert order(tree) == ["on-error/10-error"]


def test_run_without_a_command_is_a_usage_error_and_runs_no_hook(tree):
    marker_hook(tree, "pre-backup.d/10-pre")
    result = run_hookrun("run", *tree.args())
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "needs a command" in result.stderr
    assert "hookrun phase" in result.stderr
    assert order(tree) == []
    assert not (tree.state / "history.sqlite3").exists()


def test_event_selects_its_own_pre_and_post_directories(tree, hookrun_main):
    full_tree(tree)
    status, _out, _err = hookrun_main("run", *tree.args("-e", "prune"), "--", *command(tree))
    assert status == 0
    assert order(tree) == ["pre/10-prune", "command", "on-success/10-success",
                           "finally/10-finally"]


def test_bad_event_name_is_a_config_error(tree, hookrun_main):
    status, _out, err = hookrun_main("run", *tree.args("-e", "Bad/Name"), "--", "true")
    assert status == 78 and "event" in err


def test_no_hooks_runs_only_the_command_and_notes_it(tree, hookrun_main):
    full_tree(tree)
    tree.hook("pre-backup.d/50-broken", "exit 0", header="colour=red")
    status, _out, _err = hookrun_main("run", *tree.args("--no-hooks"), "--", *command(tree, 3))
    assert status == 3
    assert order(tree) == ["command"]
    record = show_json(tree, hookrun_main)
    assert record["no_hooks"] is True and record["exit_code"] == 3
    assert [t["phase"] for t in record["tasks"]] == ["command"]


def test_dry_run_executes_nothing(tree, hookrun_main):
    full_tree(tree)
    status, out, _err = hookrun_main("run", *tree.args("--dry-run"), "--", *command(tree))
    assert status == 0
    assert order(tree) == []
    assert "10-first" in out and "command:" in out


def test_a_bad_header_stops_everything_before_anything_runs(tree, hookrun_main):
    marker_hook(tree, "pre-backup.d/10-first")
    marker_hook(tree, "finally.d/10-bad", header="retries=lots")
    status, _out, err = hookrun_main("run", *tree.args(), "--", *command(tree))
    assert status == 78
    assert order(tree) == []
    assert "10-bad:2:" in err and err.count("\n") == 1


def test_cleanups_run_last_registered_first_with_quoting_kept(tree, hookrun_main):
    tree.hook("pre-backup.d/10-a", f"""
        hookrun defer sh -c 'echo "first $1" >> "$2"' sh "arg with 'quotes' and spaces" \
            "{tree.marks}/cleanups"
        """)
    tree.hook("pre-backup.d/20-b", f"""
        echo "echo second >> '{tree.marks}/cleanups'" >> "$HOOKRUN_CLEANUP"
        """)
    marker_hook(tree, "finally.d/10-finally",
                extra=f'echo finally >> "{tree.marks}/cleanups"')
    status, _out, _err = hookrun_main("run", *tree.args(), "--", "false")
    assert status == 1
    assert tree.read("cleanups").splitlines() == [
        "second", "first arg with 'quotes' and spaces", "finally"]


def test_cleanups_registered_by_finally_hooks_still_run(tree, hookrun_main):
    tree.hook("finally.d/10-late", f"hookrun defer touch '{tree.marks}/late'")
    hookrun_main("run", *tree.args(), "--", "true")
    assert tree.read("late") == ""


def test_cleanup_failures_are_warnings(tree, hookrun_main):
    tree.hook("pre-backup.d/10-a", 'hookrun defer false')
    status, _out, _err = hookrun_main("run", *tree.args(), "--", "true")
    assert status == 0
    assert show_json(tree, hookrun_main)["status"] == "warning"


def test_a_failed_cleanup_is_told_by_what_it_showed_last_like_a_hook(tree, hookrun_main):
    # A progress line redrawn with carriage returns: the warning carries what a terminal
    # showed last, as for a hook, not the raw line with its redraws.
    tree.hook("pre-backup.d/10-a",
              """hookrun defer sh -c 'printf "10%%\\r50%%\\rdisk full\\n"; false'""")
    status, _out, _err = hookrun_main("run", *tree.args(), "--", "true")
    record = show_json(tree, hookrun_main)
    assert (status, record["status"]) == (0, "warning")
    assert record["error"] == "cleanup/sh failed (exit 1): disk full"


def show_json(tree, hookrun_main, run_id="last"):
    status, out, err = hookrun_main("show", run_id, "--json", *tree.args())
    assert status == 0, err
    return json.loads(out)
