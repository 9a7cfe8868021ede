"""The first hour of a new user, through the installed ``hookrun`` command: every slip gets a
clear word (design.md section 9). One test per item of the first-hour issue that the command
line decides; the README's own examples are run by test_readme.py."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import (
    hookrun_cmd,
    installed_hookrun,
    marker_hook,
    order,
    run_hookrun,
    show_last,
)
from tests.integration.test_process_control import wait_for

TIMEOUT = 120


def one_line(text):
    return len(text.splitlines()) == 1 and "Traceback" not in text


def hold_the_lock(tree):
    """A run of the backup event that holds its lock until marks/go exists."""
    tree.hook("pre-backup.d/10-hold", f"""
        echo up > "{tree.marks}/up"
        while [ ! -e "{tree.marks}/go" ]; do sleep 0.05; done
        """)
    proc = subprocess.Popen(hookrun_cmd() + ["run", "-q", *tree.args(), "--", "true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(tree.marks / "up")
    return proc


# Item 3: hookrun defer works inside a hook whatever the PATH.

def test_hookrun_defer_works_when_hookrun_was_started_by_absolute_path(tree):
    tree.hook("pre-backup.d/40-stop-webapp", f"""
        set -e
        hookrun defer touch "{tree.marks}/started-again"
        touch "{tree.marks}/stopped"
        """)
    env = {"PATH": "/usr/bin:/bin"}
    absolute = installed_hookrun() or sys.executable
    argv = [absolute] if absolute.endswith("hookrun") else [absolute, "-m", "orchestrator"]
    result = subprocess.run(argv + ["run", *tree.args(), "--", "false"], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1, result.stderr
    assert tree.read("stopped") == "" and tree.read("started-again") == ""


# Item 8: --wait as --help shows it, and options before the subcommand.

@pytest.mark.parametrize("before", [False, True], ids=["after-run", "before-run"])
@pytest.mark.parametrize("spelling", [["--wait", "1s"], ["--wait=1s"]])
def test_wait_with_a_duration_waits_that_long_and_never_runs_it(tree, spelling, before):
    proc = hold_the_lock(tree)
    argv = [*spelling, "run", *tree.args()] if before else ["run", *tree.args(*spelling)]
    try:
        began = time.monotonic()
        result = run_hookrun(*argv, "--", "touch", str(tree.marks / "second"))
        waited = time.monotonic() - began
    finally:
        (tree.marks / "go").touch()
        proc.wait(timeout=60)
    assert result.returncode == 75 and one_line(result.stderr)
    assert "gave up waiting" in result.stderr and "use --wait" not in result.stderr
    assert 0.9 <= waited < 30 and tree.read("second") is None
    assert show_last(tree)["command"] == "true"


def test_a_bare_wait_waits_for_the_lock_and_then_runs(tree):
    proc = hold_the_lock(tree)
    second = subprocess.Popen(hookrun_cmd() + ["run", "-q", "--wait", *tree.args(), "--",
                                               "touch", str(tree.marks / "second")])
    time.sleep(0.5)
    assert second.poll() is None and tree.read("second") is None
    (tree.marks / "go").touch()
    assert second.wait(timeout=60) == 0 and proc.wait(timeout=60) == 0
    assert tree.read("second") == ""


def test_options_may_come_before_the_subcommand(tree):
    marker_hook(tree, "pre-backup.d/10-a")
    result = run_hookrun("-d", str(tree.hooks), "--state-dir", str(tree.state), "-q", "run",
                         "--", "true")
    assert result.returncode == 0, result.stderr
    assert order(tree) == ["pre/10-a"]
    listing = run_hookrun(*tree.args(), "list", "--json")
    assert listing.returncode == 0 and json.loads(listing.stdout)[0]["name"] == "10-a"


# Item 9: run --json is the last line of stdout.

def test_run_json_is_the_last_line_even_with_a_notify_command(tree):
    tree.hook("pre-backup.d/10-a", "echo from the hook")
    tree.config("[hookrun]\nnotify_command = sh -c 'cat >/dev/null; echo notified'\n")
    result = run_hookrun("run", "--json", *tree.args(), "--", "echo", "from the command")
    assert result.returncode == 0, result.stderr
    assert "notified" in result.stdout
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["status"] == "success" and record["id"] == show_last(tree)["id"]


# Item 10: what is printed reads right.

def test_status_lines_show_and_list_say_each_thing_once(tree):
    tree.hook("pre-backup.d/10-flaky", "exit 1", header="retries=2 retry-delay=0 critical=no")
    tree.hook("pre-backup.d/20-plain", "true", mode=0o644, header="critical=no")
    result = run_hookrun("run", *tree.args(), "--", "/bin/true")
    line = next(x for x in result.stdout.splitlines() if x.startswith("==> pre/10-flaky"))
    assert line.count("exit 1") == 1 and "3 attempts" in line
    assert "==> command/true ok" in result.stdout and "command//" not in result.stdout
    shown = run_hookrun("show", "last", *tree.args()).stdout
    flaky = next(x for x in shown.splitlines() if x.split()[:2] == ["pre", "10-flaky"])
    assert flaky.split()[2:5] == ["failed", "1", "3"] and "exit" not in flaky
    assert "no hooks:  no" in shown and "//" not in shown
    assert re.search(r"^duration: +\d+\.\d\ds$", shown, re.M)
    listing = run_hookrun("list", *tree.args()).stdout
    assert "((" not in listing and "))" not in listing
    assert "notify//" not in result.stdout


def columns(lines, word):
    """Where ``word`` starts in each line that holds it."""
    return {line.index(word) for line in lines if word in line}


def test_columns_line_up_in_list_the_summary_and_history(tree):
    long_name = "10-" + "a-rather-long-hook-name-" * 3
    tree.hook(f"pre-backup.d/{long_name}", "true")
    tree.hook("pre-backup.d/20-b", "true", header="timeout=7m")
    run_hookrun("run", *tree.args(), "--", "true")
    tree.hook("pre-backup.d/30-slow", "sleep 30", header="timeout=1s")
    run_hookrun("run", *tree.args("--kill-grace", "1s"), "--", "true")
    listing = run_hookrun("list", *tree.args()).stdout.splitlines()
    assert len({line.index("on-failure=") for line in listing if "on-failure=" in line}) == 1
    summary = run_hookrun("run", *tree.args("--kill-grace", "1s"), "--", "true").stdout
    rows = [x for x in summary.splitlines() if x.startswith(("pre ", "command ", "PHASE"))]
    starts = {re.search(r"\s(ok|timeout|failed|skipped|STATUS)\s", row).start() for row in rows}
    assert len(starts) == 1, rows
    history = run_hookrun("history", *tree.args()).stdout.splitlines()
    assert len({re.search(r"\s(success|failure|interrupted|warning|STATUS)\s", row).start()
                for row in history}) == 1, history


# Item 11: slips that passed in silence.

def test_no_hooks_without_a_command_is_a_usage_error(tree):
    result = run_hookrun("run", "--no-hooks", *tree.args())
    assert result.returncode == 2 and one_line(result.stderr)
    assert not tree.state.exists()


def test_an_event_without_directories_is_named_with_the_events_there(tree):
    marker_hook(tree, "pre-backup.d/10-a")
    marker_hook(tree, "pre-prune.d/10-a")
    result = run_hookrun("run", *tree.args("-e", "bakup"), "--", "true")
    assert "bakup" in result.stderr and "backup, prune" in result.stderr
    missing = run_hookrun("phase", "pre-bakup", *tree.args())
    assert missing.returncode == 2 and one_line(missing.stderr)
    assert "backup, prune" in missing.stderr


@pytest.mark.parametrize("comment", ["# hookrun timeout=1s", "# HookRun: timeout=1s"])
def test_a_comment_that_looks_like_a_directive_is_a_warning_in_run_list_and_check(tree,
                                                                                  comment):
    path = tree.hook("pre-backup.d/10-a", "true")
    path.write_text(f"#!/bin/sh\n{comment}\ntrue\n")
    for argv in (["run", "--", "true"], ["list"], ["check"]):
        result = run_hookrun(argv[0], *tree.args(), *argv[1:])
        assert result.returncode == 0, result.stderr
        assert "10-a:2:" in result.stderr and "looks like a header directive" in result.stderr


def test_when_in_a_pre_hook_is_a_configuration_error(tree):
    tree.hook("pre-backup.d/10-a", "true", header="when=always")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78 and one_line(result.stderr)
    assert "10-a:2:" in result.stderr


# Item 12: messages that say the right thing.

def test_show_last_of_an_event_without_runs_names_the_events_that_have_some(tree):
    run_hookrun("run", *tree.args(), "--", "true")
    result = run_hookrun("show", "last", *tree.args("-e", "nosuch"))
    assert result.returncode == 1 and "nosuch" in result.stderr and "backup" in result.stderr


def test_a_hooks_dir_that_is_a_file_is_called_what_it_is(tree):
    (tree.marks / "file").write_text("x")
    result = run_hookrun("run", "-d", str(tree.marks / "file"), "--", "true")
    assert result.returncode == 78 and "is not a directory" in result.stderr


def test_debug_among_the_commands_own_arguments_is_the_commands(tree):
    tree.config("[hookrun]\nbogus = 1\n")
    result = run_hookrun("run", *tree.args(), "--", "tool", "--debug")
    assert result.returncode == 78 and "Traceback" not in result.stderr


def test_an_empty_metrics_file_option_switches_off_the_configs(tree):
    metrics = tree.base / "hookrun.prom"
    tree.config(f"[hookrun]\nmetrics_file = {metrics}\n")
    assert run_hookrun("run", *tree.args("--metrics-file", ""), "--", "true").returncode == 0
    assert not metrics.exists()
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert metrics.exists()


def test_list_json_is_utf8_under_a_latin1_locale(tree):
    tree.hook("pre-backup.d/10-sauvegarde-été", "true")
    result = subprocess.run(hookrun_cmd() + ["list", "--json", *tree.args()],
                            capture_output=True, timeout=TIMEOUT,
                            env=dict(os.environ, LC_ALL="C", PYTHONIOENCODING="latin-1"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.decode("utf-8"))[0]["name"] == "10-sauvegarde-été"


def test_uneven_prefix_warning_counts_only_ascii_digits(tree):
    tree.hook("pre-backup.d/10-a", "true")
    tree.hook("pre-backup.d/٢٠-b", "true")
    tree.hook("pre-backup.d/２０-c", "true")
    assert "numeric prefixes" not in run_hookrun("check", *tree.args()).stderr
    tree.hook("pre-backup.d/100-d", "true")
    assert "numeric prefixes" in run_hookrun("check", *tree.args()).stderr
