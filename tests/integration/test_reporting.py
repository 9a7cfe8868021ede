"""What the operator sees: terminal, log, accounting, metrics and notifications
(design.md section 4)."""

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from orchestrator.report import notify
from tests.conftest import hookrun_cmd, run_hookrun, show_last

parser = pytest.importorskip("prometheus_client.parser")


def metric_values(path):
    values = {}
    with open(path, encoding="utf-8") as handle:
        for family in parser.text_string_to_metric_families(handle.read()):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values, name, **labels):
    return values[(name, tuple(sorted(labels.items())))]


def test_metrics_file_has_run_and_hook_series_and_keeps_other_events(tree):
    metrics = tree.base / "hookrun.prom"
    tree.hook("pre-backup.d/10-dump", "true")
    tree.hook("pre-prune.d/10-prep", "true")
    assert run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--",
                       "true").returncode == 0
    assert run_hookrun("run", *tree.args("-e", "prune", "--metrics-file", str(metrics)), "--",
                       "sh", "-c", "exit 3").returncode == 3
    values = metric_values(metrics)
    assert value(values, "hookrun_last_run_exit_code", event="backup") == 0
    assert value(values, "hookrun_last_run_exit_code", event="prune") == 3
    assert value(values, "hookrun_last_run_status", event="backup", status="success") == 1
    assert value(values, "hookrun_last_run_status", event="backup", status="failure") == 0
    assert value(values, "hookrun_last_run_status", event="prune", status="failure") == 1
    assert value(values, "hookrun_last_run_timestamp_seconds", event="backup") > 1e9
    assert value(values, "hookrun_last_run_duration_seconds", event="backup") >= 0
    assert value(values, "hookrun_last_success_timestamp_seconds", event="prune") == 0
    assert value(values, "hookrun_hook_status", event="backup", phase="pre", hook="10-dump",
                 status="ok") == 1
    assert ("hookrun_hook_duration_seconds",
            tuple(sorted({"event": "prune", "phase": "pre", "hook": "10-prep"}.items()))) \
        in values
    assert all(name.startswith("hookrun_") for name, _labels in values)
    assert [p.name for p in tree.base.iterdir() if p.name.startswith(".hookrun-")] == []


def test_last_success_survives_a_failed_run(tree):
    metrics = tree.base / "hookrun.prom"
    run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--", "true")
    first = value(metric_values(metrics), "hookrun_last_success_timestamp_seconds",
                  event="backup")
    run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--", "false")
    values = metric_values(metrics)
    assert value(values, "hookrun_last_success_timestamp_seconds", event="backup") == first
    assert value(values, "hookrun_last_run_status", event="backup", status="failure") == 1


def test_consecutive_failures_count_the_runs_in_a_row_in_which_a_hook_failed(tree):
    metrics = tree.base / "hookrun.prom"
    switch = tree.mark("fail")
    tree.hook("post-backup.d/10-check", f'test ! -e "{switch}"')

    def run():
        run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--", "true")
        return value(metric_values(metrics), "hookrun_hook_consecutive_failures",
                     event="backup", phase="post", hook="10-check")

    assert run() == 0
    switch.touch()
    assert [run(), run()] == [1, 2]
    assert run_hookrun("run", *tree.args("--no-hooks"), "--", "true").returncode == 0
    assert run() == 3
    switch.unlink()
    assert run() == 0


def test_unwritable_metrics_file_is_a_warning(tree):
    result = run_hookrun("run", *tree.args("--metrics-file", "/nonexistent/dir/x.prom"), "--",
                         "true")
    assert result.returncode == 0 and "metrics" in result.stderr


@pytest.mark.parametrize("argv, hook_code, end_path", [
    (["true"], 0, "/ping/abc"),
    (["false"], 0, "/ping/abc/fail"),
    (["true"], 75, "/ping/abc/log"),
])
def test_pings_follow_the_healthchecks_protocol(tree, checker, argv, hook_code, end_path):
    tree.hook("pre-backup.d/10-x", f"echo some output; exit {hook_code}")
    result = run_hookrun("run", *tree.args("--notify-url", checker.url), "--", *argv)
    assert result.returncode == (1 if argv == ["false"] else 0)
    paths = [path for path, _body in checker.requests]
    assert paths == ["/ping/abc/start", end_path]
    body = checker.requests[1][1]
    assert "status=" in body and "tasks:" in body and "total" in body


def test_failure_ping_carries_the_failed_steps_output(tree, checker):
    tree.hook("pre-backup.d/10-dump", "echo 'pg_dump: error: connection refused' >&2; exit 1")
    run_hookrun("run", *tree.args("--notify-url", checker.url), "--", "true")
    assert checker.requests[-1][0] == "/ping/abc/fail"
    assert "connection refused" in checker.requests[-1][1]


def test_no_hooks_still_notifies_and_a_refused_run_only_fails(tree, checker):
    tree.config(f"[hookrun]\nnotify_url = {checker.url}\n")
    assert run_hookrun("run", *tree.args("--no-hooks"), "--", "true").returncode == 0
    assert [p for p, _b in checker.requests] == ["/ping/abc/start", "/ping/abc"]
    tree.hook("pre-backup.d/10-bad", "true", header="colour=red")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 78
    assert run_hookrun("run", *tree.args("--dry-run"), "--", "true").returncode == 78
    # The refused run never started: no /start, only /fail (tests/integration/
    # test_refused_runs.py); the dry run sends nothing.
    assert [p for p, _b in checker.requests][2:] == ["/ping/abc/fail"]


def test_a_ping_to_a_url_that_cannot_be_taken_apart_is_an_error_line_not_a_raise():
    """The config refuses such a URL (78); were one to get through, the run would still
    end with its own status and a warning, not an internal error after its row was written."""
    problem = notify.ping("http://u:pw@[::1", "/start", run_id="20261207T000000-abcdef")
    assert problem == ("notification to http://u:***@[::1/start failed: bad URL "
                       "(Invalid IPv6 URL)")


def test_an_unreachable_url_only_warns(tree):
    result = run_hookrun("run", *tree.args("--notify-url", "http://127.0.0.1:9/x"), "--",
                         "true")
    assert result.returncode == 0
    assert "notification" in result.stderr


def test_a_slow_checker_costs_at_most_its_timeout(tree, checker, hookrun_main, monkeypatch):
    """Each ping waits at most notify.TIMEOUT (10 s in service, half a second here): the
    run ends in success, warned that the checker did not answer."""
    monkeypatch.setattr(notify, "TIMEOUT", 0.5)
    checker.handler.delay = 30
    began = time.monotonic()
    status, _out, err = hookrun_main("run", *tree.args("--notify-url", checker.url), "--", "true")
    elapsed = time.monotonic() - began
    assert status == 0
    assert err.count("notification to ") == 2 and "timed out" in err
    assert 2 * 0.5 <= elapsed < 2 * 0.5 + 8


def test_notify_command_gets_the_runs_json_on_stdin(tree):
    tree.hook("pre-backup.d/10-x", "true")
    tree.config(f"[hookrun]\nnotify_command = sh -c 'cat > \"{tree.marks}/record\"'\n")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    record = json.loads(tree.read("record"))
    assert record == show_last(tree)
    assert record["status"] == "success"


def test_accounting_of_cpu_and_peak_memory(tree):
    tree.hook("pre-backup.d/10-busy", f"""
        {sys.executable} -c 'x = bytearray(80_000_000); import time; t = time.process_time()
        while time.process_time() - t < 0.3: pass'
        """)
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    task = show_last(tree)["tasks"][0]
    assert task["cpu_seconds"] >= 0.25
    assert task["max_rss_bytes"] >= 80_000_000


def test_a_small_hooks_peak_memory_is_not_confused_with_hookruns_own(tree):
    tree.hook("pre-backup.d/10-small", "true")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    task = show_last(tree)["tasks"][0]
    assert task["max_rss_bytes"] is None or task["max_rss_bytes"] < 8_000_000


def test_show_text_includes_the_last_output_lines(tree):
    tree.hook("pre-backup.d/10-talk", "echo remembered-line")
    run_hookrun("run", *tree.args(), "--", "true")
    result = run_hookrun("show", "last", *tree.args())
    assert "remembered-line" in result.stdout


def test_quiet_prints_only_failures_and_the_summary(tree):
    tree.hook("pre-backup.d/10-fine", "echo chatter-ok")
    tree.hook("pre-backup.d/20-bad", "echo chatter-bad; exit 1", header="critical=no")
    result = run_hookrun("run", *tree.args("-q"), "--", "true")
    assert "chatter-ok" not in result.stdout + result.stderr
    assert "20-bad" in result.stdout and "==> pre/10-fine" not in result.stdout
    assert "PHASE" in result.stdout
    # Under -q (cron's mail), a failed task's last output lines follow its status line.
    lines = result.stdout.splitlines()
    failed = next(n for n, line in enumerate(lines) if line.startswith("==> pre/20-bad failed"))
    assert lines[failed + 1] == "    | chatter-bad"


def test_verbose_prints_settings_and_skip_reasons(tree):
    tree.hook("pre-backup.d/10-x", "true", header="timeout=7m")
    tree.hook("pre-backup.d/20-y.disabled", "true")
    result = run_hookrun("run", *tree.args("-v"), "--", "true")
    assert "timeout=7m" in result.stdout
    assert ".disabled" in result.stdout


def test_no_colour_and_no_live_line_when_not_a_terminal(tree):
    tree.hook("pre-backup.d/10-slow", "sleep 1.5; echo done")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert "\x1b[" not in result.stdout and "\r" not in result.stdout
    forced = run_hookrun("run", *tree.args("--color", "always"), "--", "true")
    assert "\x1b[" in forced.stdout


def run_in_pty(argv, env=None, timeout=30):
    """Run argv with a pseudo-terminal as stdout; returns (status, everything it printed)."""
    master, slave = pty.openpty()
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("NO_COLOR", None) if "NO_COLOR" not in (env or {}) else None
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                            env=full_env)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_gets_colour_and_a_live_elapsed_line(tree):
    tree.hook("pre-backup.d/10-slow", "sleep 2.5")
    status, text = run_in_pty(hookrun_cmd() + ["run", *tree.args(), "--", "true"])
    assert status == 0
    assert "\x1b[32m" in text
    assert "\r\x1b[K... pre/10-slow running 1s" in text
    assert "running 2s" in text


def test_no_color_is_honoured_on_a_terminal(tree):
    tree.hook("pre-backup.d/10-x", "true")
    status, text = run_in_pty(hookrun_cmd() + ["run", *tree.args(), "--", "true"],
                              env={"NO_COLOR": "1"})
    assert status == 0 and "\x1b[3" not in text


def test_a_chatty_hook_writes_into_a_large_pipe_and_every_line_reaches_the_log(tree):
    """A hook's stdout is a pipe of 1 MiB (read in large blocks, not 64 KiB ones); with
    hookrun's own stdout on /dev/null nothing is shown, and the log still has every line."""
    tree.hook("pre-backup.d/10-chatty", """
        import fcntl, sys
        print("pipe", fcntl.fcntl(1, 1032))  # F_GETPIPE_SZ
        for number in range(40000):
            print(f"line {number:06d} " + "x" * 80)
        """, shebang="#!/usr/bin/python3")
    with open(os.devnull, "w") as null:
        result = subprocess.run(hookrun_cmd() + ["run", *tree.args(), "--", "true"], stdout=null,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    logged = [line.split(": ", 1)[1] for line in
              (tree.state / "hookrun.log").read_text().splitlines() if " stdout: " in line]
    assert logged[0] == "pipe 1048576"
    assert logged[1:] == [f"line {number:06d} " + "x" * 80 for number in range(40000)]
