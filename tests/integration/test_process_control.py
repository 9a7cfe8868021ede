"""Timeouts, stray processes, signals, the event lock and crash recovery, with real
processes (design.md section 3). Time bounds are generous upper bounds."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from orchestrator import process
from tests.conftest import hookrun_cmd, order, run_hookrun, show_last


def wait_for(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start(tree, *argv, **kwargs):
    env = dict(os.environ)
    env.pop("HOOKRUN_CLEANUP", None)
    command = list(kwargs.pop("command", ["--", "true"]))
    return subprocess.Popen(hookrun_cmd() + ["run", *tree.args(*argv)] + command,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            **kwargs)


def gated_hold(tree):
    """A pre-backup hook that, the first time it runs, says it is up (marks/up), then waits
    for open_gate() and leaves marks/released; returns the gate, a fifo."""
    gate = tree.marks / "gate"
    os.mkfifo(gate)
    tree.hook("pre-backup.d/10-hold", f"""
        [ -e "{tree.marks}/released" ] && exit 0
        echo up > "{tree.marks}/up"
        read -r _ < "{gate}"
        touch "{tree.marks}/released"
        """)
    return gate


def open_gate(gate, timeout=20.0):
    """Let a gated_hold() hook go on: write a line to the fifo once it reads from it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:  # ENXIO: nobody reads yet
            if error.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)


def crash_when_up(tree, reaper):
    """Start a run, SIGKILL hookrun once its hook wrote its pid to marks/up; the hook (in a
    session of its own) lives on and is left to ``reaper``."""
    proc = start(tree, command=["--", "true"])
    reaper.append(int(wait_for(tree.marks / "up")))
    proc.kill()
    proc.communicate(timeout=30)


def test_a_hung_hook_times_out_and_the_run_goes_on(tree):
    tree.hook("pre-backup.d/10-hang", "sleep 60", header="timeout=1s critical=no")
    tree.hook("pre-backup.d/20-next", f"touch '{tree.marks}/next'")
    began = time.monotonic()
    result = run_hookrun("run", *tree.args("--kill-grace", "1s"), "--", "true")
    assert time.monotonic() - began < 20
    assert result.returncode == 0, result.stderr
    assert tree.read("next") == ""
    task = show_last(tree)["tasks"][0]
    assert (task["status"], task["reason"]) == ("timeout", "timed out after 1s")


def test_a_setsid_escapee_that_ignores_sigterm_is_killed_after_the_grace(tree, reaper):
    tree.hook("pre-backup.d/10-escape", f"""
        setsid sh -c 'trap "" TERM; echo $$ > "{tree.marks}/escapee"; \
            while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
        trap "" TERM
        echo $$ > "{tree.marks}/hook"
        while :; do sleep 1; done
        """, header="timeout=1s")
    began = time.monotonic()
    result = run_hookrun("run", *tree.args("--kill-grace", "1s"), "--", "true")
    elapsed = time.monotonic() - began
    escapee, hook = int(tree.read("escapee")), int(tree.read("hook"))
    reaper.extend([escapee, hook])
    assert result.returncode == 69
    assert elapsed < 20
    assert not alive(escapee) and not alive(hook)


def test_a_background_process_holding_stdout_does_not_hang_the_run(tree, reaper):
    tree.hook("pre-backup.d/10-daemon", f"""
        sh -c 'echo $$ > "{tree.marks}/daemon"; exec sleep 120' &
        echo started
        """)
    began = time.monotonic()
    result = run_hookrun("run", *tree.args(), "--", "true")
    elapsed = time.monotonic() - began
    daemon = int(tree.read("daemon"))
    reaper.append(daemon)
    assert result.returncode == 0, result.stderr
    assert elapsed < 15
    assert str(daemon) in result.stderr
    assert alive(daemon), "stray processes are reported, not killed"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_is_forwarded_and_the_wind_down_runs(tree, signum):
    tree.hook("pre-backup.d/10-wait", f"""
        hookrun defer touch "{tree.marks}/cleanup"
        trap 'echo "$1" > "{tree.marks}/hook-got"; exit 1' {signal.Signals(signum).name[3:]}
        echo up > "{tree.marks}/up"
        while :; do sleep 0.1; done
        """)
    tree.hook("pre-backup.d/20-never", f"touch '{tree.marks}/never'")
    tree.hook("post-backup.d/10-ran", f"touch '{tree.marks}/post-ran'")
    tree.hook("post-backup.d/20-always", f"touch '{tree.marks}/post-always'",
              header="when=always")
    tree.hook("on-error.d/10-error", f'echo "$HOOKRUN_STATUS" > "{tree.marks}/on-error"')
    tree.hook("finally.d/10-finally", f"touch '{tree.marks}/finally'")
    proc = start(tree, "--kill-grace", "5s", command=["--", "touch", str(tree.marks / "cmd")])
    wait_for(tree.marks / "up")
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum
    assert tree.read("hook-got") is not None
    assert tree.read("on-error").strip() == "interrupted"
    assert tree.read("cleanup") == "" and tree.read("finally") == ""
    assert tree.read("post-always") == ""
    for never in ("never", "cmd", "post-ran"):
        assert tree.read(never) is None
    record = show_last(tree)
    assert record["status"] == "interrupted" and record["exit_code"] == 128 + signum
    statuses = {t["name"]: t["status"] for t in record["tasks"]}
    assert statuses["20-never"] == "skipped" and statuses["touch"] == "skipped"


def test_sigint_reaches_the_command(tree):
    script = tree.marks / "cmd.sh"
    script.write_text(f"""#!/bin/sh
trap 'echo got-int > "{tree.marks}/cmd-got"; exit 130' INT
echo up > "{tree.marks}/up"
while :; do sleep 0.1; done
""")
    script.chmod(0o755)
    proc = start(tree, command=["--", str(script)])
    wait_for(tree.marks / "up")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert tree.read("cmd-got").strip() == "got-int"


def test_a_second_signal_cuts_the_wind_down_and_leaves_cleanups_for_recover(tree):
    tree.hook("pre-backup.d/10-stubborn", f"""
        hookrun defer sh -c 'echo ran >> "{tree.marks}/cleanup"'
        trap '' TERM
        echo up > "{tree.marks}/up"
        while :; do sleep 0.1; done
        """)
    proc = start(tree, "--kill-grace", "60s", command=["--", "true"])
    wait_for(tree.marks / "up")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert time.monotonic() - began < 10, "a second signal must not wait for the grace"
    assert proc.returncode == 143
    assert tree.read("cleanup") is None
    result = run_hookrun("recover", *tree.args())
    assert result.returncode == 0, result.stderr
    assert tree.read("cleanup") == "ran\n"
    record = show_last(tree)
    assert [t["phase"] for t in record["tasks"]][-1] == "recover"


def test_sigkill_of_hookrun_then_recover_runs_each_cleanup_once(tree, reaper):
    tree.hook("pre-backup.d/10-register", f"""
        hookrun defer sh -c 'echo first >> "{tree.marks}/cleanup"'
        hookrun defer sh -c 'echo second >> "{tree.marks}/cleanup"'
        echo $$ > "{tree.marks}/up"
        sleep 60
        """)
    crash_when_up(tree, reaper)
    assert tree.read("cleanup") is None
    record = show_last(tree)
    assert record["status"] == "running"
    result = run_hookrun("recover", *tree.args())
    assert result.returncode == 0, result.stderr
    assert tree.read("cleanup") == "second\nfirst\n"
    record = show_last(tree)
    assert record["status"] == "interrupted"
    # The task that was running, if it had been written (after a second), is kept too.
    assert [(t["phase"], t["status"]) for t in record["tasks"]
            if t["phase"] == "recover"] == [("recover", "ok")] * 2
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleanup") == "second\nfirst\n", "each cleanup completes once"


def crash_while_running(tree, reaper, name):
    """Start a run whose hook ``name`` writes its pid to marks/up and sleeps; SIGKILL hookrun
    once ``show last`` lists that hook as running (the progress is written after a second);
    returns the dead run's id."""
    proc = start(tree, command=["--", "true"])
    reaper.append(int(wait_for(tree.marks / "up")))
    deadline = time.monotonic() + 30
    while True:
        record = show_last(tree)
        if ("pre", name, "running") in [(t["phase"], t["name"], t["status"])
                                        for t in record["tasks"]]:
            break
        assert time.monotonic() < deadline, record
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=30)
    return record["id"]


@pytest.mark.parametrize("command", ["recover", "run"])
def test_the_task_a_dead_run_was_running_stays_in_its_record_as_failed(tree, reaper, command):
    tree.hook("pre-backup.d/10-a", "exit 0")
    tree.hook("pre-backup.d/20-b", f"""
        [ -e "{tree.marks}/up" ] && exit 0
        hookrun defer touch "{tree.marks}/undone"
        echo $$ > "{tree.marks}/up"
        sleep 60
        """)
    dead_id = crash_while_running(tree, reaper, "20-b")
    argv = ["recover", *tree.args("--kill-grace", "1s")] if command == "recover" else \
        ["run", *tree.args("--kill-grace", "1s"), "--", "true"]
    for _twice in range(2):  # a second recovery changes nothing
        result = run_hookrun(*argv)
        assert result.returncode == 0, result.stderr
        shown = run_hookrun("show", dead_id, "--json", *tree.args())
        assert shown.returncode == 0, shown.stderr
        record = json.loads(shown.stdout)
        assert record["status"] == "interrupted"
        assert [(t["phase"], t["name"].split()[0], t["status"]) for t in record["tasks"]] == [
            ("pre", "10-a", "ok"), ("pre", "20-b", "failed"), ("recover", "touch", "ok")]
        cut = record["tasks"][1]
        assert cut["exit_code"] is None and cut["duration"] is None and cut["started"]
        assert "interrupted" in cut["reason"]
    assert tree.read("undone") == ""


def test_a_task_that_ended_after_its_running_row_was_written_is_not_the_one_cut_short(tree):
    """A hook that ran over a second has a running row; once it ends, its record replaces
    that row at once: a crash in the next hook (under a second, no row of its own) must not
    leave the finished hook recorded as the task cut short."""
    tree.hook("pre-backup.d/10-slow", "sleep 2")
    tree.hook("pre-backup.d/20-crash", "kill -9 $PPID")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == -9, result.stderr  # SIGKILL
    assert run_hookrun("recover", *tree.args()).returncode == 0
    record = show_last(tree)
    assert record["status"] == "interrupted"
    assert [(t["phase"], t["name"], t["status"]) for t in record["tasks"]] == [
        ("pre", "10-slow", "ok")]


def test_the_next_run_recovers_before_its_pre_hooks(tree, reaper):
    tree.hook("pre-backup.d/10-register", f"""
        if [ ! -e "{tree.marks}/crashed-once" ]; then
            touch "{tree.marks}/crashed-once"
            hookrun defer sh -c 'echo recovered >> "{tree.marks}/order"; \
                echo "$HOOKRUN_PHASE" > "{tree.marks}/phase"'
            echo $$ > "{tree.marks}/up"
            sleep 60
        fi
        echo "$HOOKRUN_PREVIOUS_STATUS" > "{tree.marks}/previous"
        echo "pre" >> "{tree.marks}/order"
        """)
    crash_when_up(tree, reaper)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert order(tree) == ["recovered", "pre"]
    phases = [t["phase"] for t in show_last(tree)["tasks"]]
    assert phases[0] == "recover"
    assert tree.read("phase").strip() == "cleanup"
    assert tree.read("previous").strip() == "interrupted"


def test_no_hooks_only_reports_pending_cleanups(tree, reaper):
    tree.hook("pre-backup.d/10-register", f"""
        hookrun defer touch "{tree.marks}/cleanup"
        echo $$ > "{tree.marks}/up"
        sleep 60
        """)
    crash_when_up(tree, reaper)
    result = run_hookrun("run", *tree.args("--no-hooks"), "--", "true")
    assert result.returncode == 0
    assert "recover" in result.stderr
    assert tree.read("cleanup") is None


def test_a_second_run_of_the_same_event_is_refused_with_75(tree):
    tree.events("prune")
    gate = gated_hold(tree)
    first = start(tree, command=["--", "true"])
    wait_for(tree.marks / "up")
    second = run_hookrun("run", *tree.args(), "--", "touch", str(tree.marks / "second"))
    assert second.returncode == 75
    assert str(first.pid) in second.stderr
    assert tree.read("second") is None
    other_event = run_hookrun("run", *tree.args("-e", "prune"), "--", "true")
    assert other_event.returncode == 0, "different events do not block each other"
    # Its command leaves a mark only if the first run's hook had gone on by then.
    waited = start(tree, "--wait=30s", command=[
        "--", "sh", "-c", f'test -e "{tree.marks}/released" && touch "{tree.marks}/waited"'])
    open_gate(gate)
    waited.communicate(timeout=60)
    assert waited.returncode == 0
    assert tree.read("waited") == ""
    first.communicate(timeout=30)
    assert first.returncode == 0


def test_wait_with_a_duration_gives_up_with_75(tree):
    gate = gated_hold(tree)
    first = start(tree, command=["--", "true"])
    wait_for(tree.marks / "up")
    began = time.monotonic()
    second = run_hookrun("run", *tree.args("--wait=0.5s"), "--", "true")
    assert second.returncode == 75
    assert 0.5 <= time.monotonic() - began < 4
    open_gate(gate)
    first.communicate(timeout=30)
    assert first.returncode == 0


def test_a_lock_left_by_a_dead_run_is_taken_over(tree, reaper):
    tree.hook("pre-backup.d/10-hold", f"""
        if [ ! -e "{tree.marks}/once" ]; then
            touch "{tree.marks}/once"; echo $$ > "{tree.marks}/up"; sleep 60
        fi
        """)
    crash_when_up(tree, reaper)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr


def test_binary_and_endless_lines_are_handled(tree):
    tree.hook("pre-backup.d/10-binary", """
        head -c 300000 /dev/urandom
        printf 'no newline at the end \\377\\033[31m'
        """)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0
    log = (tree.state / "hookrun.log").read_bytes()
    assert b"no newline at the end \xff\x1b[31m" in log
    assert "\x1b[31m" not in result.stdout and "\\x1b[31m" in result.stdout
    json.dumps(show_last(tree))


def peak_rss_of(argv, timeout=120):
    """Run argv; returns (exit status, the largest RSS seen, sampled every 10 ms). Not the
    kernel's ru_maxrss: after exec it still counts the forking parent (pytest, hundreds of
    MB late in a run)."""
    env = dict(os.environ)
    env.pop("HOOKRUN_CLEANUP", None)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    watched = psutil.Process(proc.pid)
    peak, deadline = 0, time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "hookrun did not finish"
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.01)
    return proc.returncode, peak


def test_an_endless_unterminated_line_keeps_memory_flat_and_times_out(tree):
    tree.hook("pre-backup.d/10-endless", "tr '\\0' x < /dev/zero",
              header="timeout=3s critical=no")
    status, rss = peak_rss_of(hookrun_cmd() + ["run", "-q", *tree.args("--kill-grace", "1s"),
                                                        "--", "true"])
    assert status == 0
    assert rss < 80 * 1024 * 1024
    task = show_last(tree)["tasks"][0]
    assert task["status"] == "timeout"


def slow_cleanup_tree(tree):
    tree.hook("pre-backup.d/10-register", f"""
        hookrun defer sh -c 'echo started >> "{tree.marks}/began"; sleep 1.5; \
            echo ran >> "{tree.marks}/cleanup"'
        """)


def test_a_first_signal_does_not_cut_a_running_cleanup(tree):
    slow_cleanup_tree(tree)
    proc = start(tree, "--kill-grace", "1s", command=["--", "true"])
    wait_for(tree.marks / "began")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert tree.read("cleanup") == "ran\n"
    run_hookrun("recover", *tree.args())
    assert tree.read("cleanup") == "ran\n"


def test_a_cleanup_running_when_hookrun_is_killed_completes_once(tree):
    slow_cleanup_tree(tree)
    proc = start(tree, command=["--", "true"])
    wait_for(tree.marks / "began")
    proc.kill()
    proc.communicate(timeout=30)
    early = run_hookrun("recover", *tree.args())
    assert early.returncode == 0
    wait_for(tree.marks / "cleanup")
    time.sleep(0.2)
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleanup") == "ran\n"
    assert tree.read("began") == "started\n"
    assert show_last(tree)["status"] == "interrupted"


def test_a_closed_stdout_does_not_stop_the_cleanups_or_finally(tree):
    tree.hook("pre-backup.d/10-chatty", f"""
        hookrun defer touch "{tree.marks}/cleaned"
        seq 1 50000
        """)
    tree.hook("finally.d/10-last", f'touch "{tree.marks}/finally"')
    reader, writer = os.pipe()
    os.close(reader)
    env = dict(os.environ)
    env.pop("HOOKRUN_CLEANUP", None)
    try:
        result = subprocess.run(hookrun_cmd() + ["run", *tree.args(), "--", "true"],
                                stdout=writer, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(writer)
    assert result.returncode == 0, result.stderr
    assert tree.read("cleaned") == "" and tree.read("finally") == ""
    assert show_last(tree)["status"] == "success"


def test_a_hung_up_terminal_still_gets_a_full_wind_down(tree):
    import pty

    tree.hook("pre-backup.d/10-talk", f"""
        hookrun defer touch "{tree.marks}/cleaned"
        echo up > "{tree.marks}/up"
        while :; do echo tick; sleep 0.1; done
        """)
    tree.hook("finally.d/10-last", f'echo final words; touch "{tree.marks}/finally"')
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.pop("HOOKRUN_CLEANUP", None)
    proc = subprocess.Popen(hookrun_cmd() + ["run", *tree.args("--kill-grace", "2s"), "--",
                                             "true"], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, env=env)
    os.close(slave)
    wait_for(tree.marks / "up")
    time.sleep(0.3)
    os.close(master)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 129
    assert tree.read("cleaned") == "" and tree.read("finally") == ""


def test_a_signal_that_comes_while_the_process_starts_is_forwarded_to_it(monkeypatch):
    """hookrun's signal can land after the process started but before it is watched (the
    command already runs, as a loaded machine showed): the process must still get it."""
    signals = process.Signals()
    signals.install()
    real_start = process.start

    def start_then_signal(spec):
        child = real_start(spec)
        os.kill(os.getpid(), signal.SIGTERM)  # handled here, before the Watch exists
        return child

    monkeypatch.setattr(process, "start", start_then_signal)
    try:
        spec = process.Spec(argv=["sleep", "30"], timeout=None, kill_grace=5.0,
                            env={"PATH": os.environ["PATH"], process.COOKIE: "test/1"})
        began = time.monotonic()
        outcome = process.Supervisor(signals).run(spec, lambda _stream, _data: None)
    finally:
        signals.restore()
    assert outcome.interrupted_by == signal.SIGTERM
    assert outcome.killed_by == signal.SIGTERM
    assert time.monotonic() - began < 10


def test_the_wakeup_pipe_is_drained_whatever_it_holds():
    """Signals.drain stops at a short read; a full pipe is read to its end all the same."""
    signals = process.Signals()
    try:
        for size in (0, 1, 511, 512, 513, 4096):
            if size:
                os.write(signals.write_fd, b"\x11" * size)
            signals.drain()
            with pytest.raises(BlockingIOError):
                os.read(signals.read_fd, 1)
    finally:
        os.close(signals.read_fd)
        os.close(signals.write_fd)


def test_a_chatty_process_is_read_whole_through_its_pipes():
    """Megabytes on stdout and a line on stderr: all of it arrives, stream by stream."""
    chunks = []
    spec = process.Spec(argv=["sh", "-c", "head -c 3000000 /dev/zero; echo err >&2"],
                        env={"PATH": os.environ["PATH"], process.COOKIE: "test/1"})
    signals = process.Signals()
    try:
        outcome = process.Supervisor(signals).run(spec, lambda stream, data: chunks.append(
            (stream, len(data))))
    finally:
        os.close(signals.read_fd)
        os.close(signals.write_fd)
    assert outcome.exit_code == 0
    assert sum(n for stream, n in chunks if stream == "stdout") == 3000000
    assert sum(n for stream, n in chunks if stream == "stderr") == 4


def test_hookrun_adopts_the_orphans_of_its_children_without_importing_ctypes():
    """prctl(PR_SET_CHILD_SUBREAPER) goes through _ctypes alone: a grandchild whose parent
    ended is hookrun's child then, and the ctypes package (a tenth of start-up) stays out."""
    probe = (
        "import os, subprocess, sys, time\n"
        "from orchestrator.process import become_subreaper\n"
        "assert become_subreaper()\n"
        "assert 'ctypes' not in sys.modules, 'ctypes was imported'\n"
        "out = subprocess.run(['sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $!'],\n"
        "                     capture_output=True, text=True, check=True).stdout\n"
        "orphan = int(out)\n"
        "with open(f'/proc/{orphan}/stat') as handle:\n"
        "    parent = int(handle.read().rsplit(')', 1)[1].split()[1])\n"
        "os.kill(orphan, 9)\n"
        "os.waitpid(orphan, 0)\n"
        "print(parent == os.getpid())\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, cwd=os.path.dirname(os.path.dirname(process.__file__)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
