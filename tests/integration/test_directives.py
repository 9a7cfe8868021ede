"""What a hook says about its own failures (on-failure, events, when=always), what later
hooks are told of a failure (ERROR), and a history that answers (design.md sections 1, 4, 9)."""

import json
import subprocess
import time

import pytest

from tests.conftest import hookrun_cmd, marker_hook, order, run_hookrun, show_last
from tests.integration.test_process_control import wait_for


def statuses(record):
    return {task["name"]: task["status"] for task in record["tasks"]}


@pytest.mark.parametrize("code", [1, 62, 63, 75])
def test_on_failure_ignore_records_the_failure_and_nothing_else(tree, checker, code):
    tree.hook("pre-backup.d/10-standard", f"exit {code}", header="on-failure=ignore")
    marker_hook(tree, "pre-backup.d/20-next")
    tree.hook("post-backup.d/10-error", f'echo "[$HOOKRUN_ERROR]" > "{tree.marks}/error"')
    marker_hook(tree, "on-success.d/10-ok")
    result = run_hookrun("run", *tree.args("--notify-url", checker.url), "--", "touch",
                         str(tree.marks / "command"))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert order(tree) == ["pre/20-next", "on-success/10-ok"]
    assert tree.read("command") == "" and tree.read("error") == "[]\n"
    record = show_last(tree)
    assert record["status"] == "success" and record["error"] is None
    assert statuses(record)["10-standard"] == "failed"
    assert checker.requests[-1][0] == "/ping/abc"


def test_on_failure_skip_run_skips_the_run_as_exit_75_does(tree, checker):
    tree.hook("pre-backup.d/10-cancel", f"""
        hookrun defer touch "{tree.marks}/cleaned"
        echo "not mounted" >&2; exit 3
        """, header="on-failure=skip-run")
    marker_hook(tree, "pre-backup.d/20-never")
    marker_hook(tree, "on-error.d/10-error")
    marker_hook(tree, "on-success.d/10-success")
    marker_hook(tree, "finally.d/10-finally")
    result = run_hookrun("run", *tree.args("--notify-url", checker.url), "--", "touch",
                         str(tree.marks / "command"))
    assert result.returncode == 0, result.stderr
    assert order(tree) == ["finally/10-finally"]
    assert tree.read("cleaned") == "" and tree.read("command") is None
    record = show_last(tree)
    assert record["status"] == "skipped"
    assert statuses(record)["20-never"] == "skipped"
    assert checker.requests[-1][0] == "/ping/abc/log"


def test_skip_run_outside_pre_is_a_config_error(tree):
    tree.hook("post-backup.d/10-x", "true", header="on-failure=skip-run")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78 and "10-x:2:" in result.stderr


def test_events_limits_a_shared_phase_hook_to_the_events_named(tree):
    tree.hook("pre-backup.d/10-fail", "exit 1")
    tree.hook("pre-prune.d/10-fail", "exit 1")
    marker_hook(tree, "on-error.d/10-prune-only", header="events=prune,check")
    marker_hook(tree, "on-error.d/20-all")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 69
    assert order(tree) == ["on-error/20-all"]
    task = next(t for t in show_last(tree)["tasks"] if t["name"] == "10-prune-only")
    assert (task["status"], task["reason"]) == ("skipped",
                                                "event backup not in events=prune,check")
    assert run_hookrun("run", *tree.args("-e", "prune"), "--", "true").returncode == 69
    assert order(tree)[1:] == ["on-error/10-prune-only", "on-error/20-all"]


def test_when_always_post_hooks_run_after_a_critical_post_failure(tree):
    tree.hook("post-backup.d/10-verify", "echo verify failed >&2; exit 1", header="critical=yes")
    marker_hook(tree, "post-backup.d/20-success", header="when=success")
    marker_hook(tree, "post-backup.d/30-always", header="when=always")
    marker_hook(tree, "on-error.d/10-error")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 69
    assert order(tree) == ["post/30-always", "on-error/10-error"]
    record = show_last(tree)
    assert statuses(record)["20-success"] == "skipped"
    assert record["error"] == "post hook 10-verify failed (exit 1): verify failed"


def test_the_error_variables_end_with_the_failed_steps_last_output_line(tree):
    tree.hook("on-error.d/10-tell", f"""
        printf '%s\\n%s\\n%s\\n' "$ERROR" "$BACKUP_ERROR" "$HOOKRUN_ERROR" > "{tree.marks}/error"
        """)
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c",
                         "echo 'opening repository'; echo 'Fatal: wrong password or no key "
                         "found' >&2; echo; exit 1")
    assert result.returncode == 1
    line = "command sh failed (exit 1): Fatal: wrong password or no key found"
    assert tree.read("error") == f"{line}\n{line}\n{line}\n"
    assert show_last(tree)["error"] == line


def test_show_json_has_each_tasks_last_output_lines(tree):
    tree.hook("pre-backup.d/10-talk", "seq 1 50; echo to-stderr >&2")
    assert run_hookrun("run", *tree.args(), "--", "echo", "from the command").returncode == 0
    tasks = {task["name"]: task for task in show_last(tree)["tasks"]}
    lines = tasks["10-talk"]["output"].split("\n")
    assert len(lines) == 20 and lines[-1] == "to-stderr" and lines[0] == "32"
    assert tasks["echo"]["output"] == "from the command"
    text = run_hookrun("show", "last", *tree.args()).stdout
    assert "| 50" in text and "| from the command" in text


def test_show_output_prints_a_tasks_whole_output_from_the_log(tree):
    tree.hook("pre-backup.d/10-talk", "seq 1 500")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    result = run_hookrun("show", "last", "--output", "pre/10-talk", *tree.args())
    assert result.returncode == 0
    assert result.stdout.split() == [str(n) for n in range(1, 501)]
    missing = run_hookrun("show", "last", "--output", "pre/nothing", *tree.args())
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1


def test_show_last_lists_the_finished_tasks_and_the_running_one(tree):
    tree.hook("pre-backup.d/10-quick", "echo quick")
    tree.hook("pre-backup.d/20-slow", f"""
        echo up > "{tree.marks}/up"
        while [ ! -e "{tree.marks}/go" ]; do sleep 0.05; done
        """)
    proc = subprocess.Popen(hookrun_cmd() + ["run", *tree.args(), "--", "true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(tree.marks / "up")
        deadline, tasks = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            record = show_last(tree)
            tasks = [(t["name"], t["status"]) for t in record["tasks"]]
            if ("20-slow", "running") in tasks:
                break
            time.sleep(0.1)
        assert record["status"] == "running"
        assert tasks == [("10-quick", "ok"), ("20-slow", "running")]
        assert "running" in run_hookrun("show", "last", *tree.args()).stdout
    finally:
        (tree.marks / "go").touch()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    final = show_last(tree)
    assert [(t["name"], t["status"]) for t in final["tasks"]] == \
        [("10-quick", "ok"), ("20-slow", "ok"), ("true", "ok")]


def test_list_shows_on_failure_and_events(tree):
    tree.hook("pre-backup.d/10-x", "true", header="on-failure=skip-run")
    tree.hook("finally.d/10-y", "true", header="events=backup")
    result = run_hookrun("list", "--json", *tree.args())
    items = {item["name"]: item for item in json.loads(result.stdout)}
    assert (items["10-x"]["on_failure"], items["10-x"]["critical"]) == ("skip-run", False)
    assert items["10-y"]["events"] == ["backup"] and items["10-y"]["on_failure"] == "warn"
    text = run_hookrun("list", *tree.args()).stdout
    assert "on-failure=skip-run" in text and "events=backup" in text
