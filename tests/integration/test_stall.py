"""Stall detection (design.md section 11): a hook or the command that prints nothing for its
stall timeout is handled as a timeout, through the installed hookrun."""

import json

from tests.conftest import run_hookrun, show_last


def task(record, phase, name):
    return next(t for t in record["tasks"] if t["phase"] == phase and t["name"] == name)


def test_a_hook_that_prints_once_and_sleeps_past_its_stall_is_timed_out_and_stops_the_run(
        tree):
    tree.hook("pre-backup.d/10-quiet", f"""
        echo started
        sleep 30
        echo "not killed" > "{tree.mark('after')}"
        """, header="stall=1s")
    result = run_hookrun("run", *tree.args("--kill-grace", "1s"), "--",
                         "/bin/sh", "-c", f"touch {tree.mark('command')}")
    assert result.returncode == 69, result.stderr
    record = show_last(tree)
    hook = task(record, "pre", "10-quiet")
    assert hook["status"] == "timeout"
    assert hook["reason"] == "no output for 1s"
    assert hook["duration"] < 20
    assert record["status"] == "failure"
    assert not tree.mark("command").exists()
    assert not tree.mark("after").exists()


def test_a_hook_that_keeps_printing_more_often_than_its_stall_runs_to_its_end(tree):
    tree.hook("pre-backup.d/10-chatty", f"""
        i=0
        while [ "$i" -lt 7 ]; do echo "tick $i"; sleep 0.3; i=$((i + 1)); done
        echo done > "{tree.mark('chatty')}"
        """, header="stall=1s")
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    record = show_last(tree)
    assert task(record, "pre", "10-chatty")["status"] == "ok"
    assert record["status"] == "success"
    assert tree.read("chatty") == "done\n"


def test_the_config_stall_timeout_applies_to_hooks_and_the_hook_key_overrides_it(tree):
    tree.config("""
        [hookrun]
        stall_timeout = 1s

        [hook pre-backup.d/20-slow-but-allowed]
        stall = 1m
        """)
    tree.hook("pre-backup.d/10-quiet", "sleep 30", header="critical=no")
    tree.hook("pre-backup.d/20-slow-but-allowed", "sleep 2")
    result = run_hookrun("run", *tree.args("--kill-grace", "1s"), "--", "/bin/true")
    assert result.returncode == 0, result.stderr
    record = show_last(tree)
    assert task(record, "pre", "10-quiet")["status"] == "timeout"
    assert task(record, "pre", "10-quiet")["reason"] == "no output for 1s"
    assert task(record, "pre", "20-slow-but-allowed")["status"] == "ok"
    assert record["status"] == "warning"


def test_the_command_that_prints_nothing_past_stall_timeout_exits_124(tree):
    result = run_hookrun("run", *tree.args("--stall-timeout", "1s", "--kill-grace", "1s"),
                         "--", "/bin/sh", "-c", "echo one; sleep 30")
    assert result.returncode == 124, result.stderr
    record = show_last(tree)
    command = task(record, "command", "/bin/sh")
    assert command["status"] == "timeout"
    assert command["reason"] == "no output for 1s"
    assert record["status"] == "failure"
    assert record["exit_code"] == 124


def test_list_json_shows_the_stall_in_seconds_or_null(tree):
    tree.hook("pre-backup.d/10-a", "true", header="stall=30m")
    tree.hook("pre-backup.d/20-b", "true")
    result = run_hookrun("list", "--json", *tree.args())
    assert result.returncode == 0, result.stderr
    stalls = {item["name"]: item["stall"] for item in json.loads(result.stdout)}
    assert stalls == {"10-a": 1800.0, "20-b": None}
    result = run_hookrun("list", "--json", *tree.args("--stall-timeout", "5m"))
    stalls = {item["name"]: item["stall"] for item in json.loads(result.stdout)}
    assert stalls == {"10-a": 300.0, "20-b": 300.0}


def test_a_bad_stall_value_is_a_configuration_error_naming_file_and_line(tree):
    path = tree.hook("pre-backup.d/10-a", "true", header="stall=soon")
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    assert result.returncode == 78
    assert f"{path}:2" in result.stderr
    assert "Traceback" not in result.stderr
