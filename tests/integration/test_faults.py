"""Never bricked, never twice (design.md section 8): a damaged, hostile or oversized file, a
full disk, a deleted lock or a concurrent run is a warning or a documented exit status, the
next backup still runs, and no cleanup runs twice. Asserts on marker files: what ran, how
often, which processes survived."""

import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from orchestrator import constants as c
from orchestrator.state.cleanup import Journal
from tests.conftest import (
    hookrun_cmd,
    marker_hook,
    needs_root,
    order,
    require,
    run_hookrun,
    show_last,
)
from tests.integration.test_process_control import alive, start, wait_for

DEAD_RUN = "20200101T000000-0a0b0c"


def dead_run(tree, journal, event="backup"):
    """A run directory as a run killed at an unlucky moment leaves it: its journal holds the
    bytes ``journal``."""
    if not tree.state.exists():
        assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    run_dir = tree.state / "runs" / DEAD_RUN
    run_dir.mkdir(mode=0o700)
    (run_dir / "owner.lock").write_bytes(b"")
    (run_dir / "meta.json").write_text(f'{{"run_id": "{DEAD_RUN}", "event": "{event}"}}')
    (run_dir / "cleanup").write_bytes(journal)
    for path in run_dir.iterdir():
        path.chmod(0o600)
    return run_dir


def cleanup_line(tree, name):
    return f'echo {name} >> "{tree.marks}/cleaned"'.encode()


@pytest.mark.parametrize("damage", [b"\0\0\0\0", b"touch-nothing \0 more\n", b"\xff\xfe\0\n"])
@pytest.mark.parametrize("command", ["run", "recover"])
def test_nul_bytes_in_a_journal_are_reported_and_kept_and_the_rest_runs_once(tree, damage,
                                                                             command):
    dead_run(tree, cleanup_line(tree, "first") + b"\n" + damage + b"\n"
             + cleanup_line(tree, "last") + b"\n")
    marker_hook(tree, "pre-backup.d/10-a")
    result = run_hookrun(command, *tree.args(), *(["--", "true"] if command == "run" else []))
    assert result.returncode == 0, result.stderr
    assert "line 2" in result.stderr and "NUL" in result.stderr
    assert tree.read("cleaned") == "last\nfirst\n"
    kept = tree.state / "runs" / f".damaged-{DEAD_RUN}"
    assert (kept / "cleanup").exists()
    assert run_hookrun(command, *tree.args(), *(["--", "true"] if command == "run" else [])
                       ).returncode == 0
    assert tree.read("cleaned") == "last\nfirst\n"
    if command == "run":
        assert order(tree) == ["pre/10-a", "pre/10-a"]


def test_a_torn_last_journal_line_is_never_executed(tree):
    dead_run(tree, cleanup_line(tree, "whole") + b"\n" + cleanup_line(tree, "torn"))
    result = run_hookrun("recover", *tree.args())
    assert result.returncode == 0
    assert "line 2 is not complete" in result.stderr
    assert tree.read("cleaned") == "whole\n"


def test_a_nul_a_hook_writes_to_its_own_journal_is_reported_not_run(tree):
    tree.hook("pre-backup.d/10-bad", f"""
        printf 'echo bad >> "{tree.marks}/cleaned"\\0\\n' >> "$HOOKRUN_CLEANUP"
        hookrun defer sh -c 'echo good >> "{tree.marks}/cleaned"'
        """)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0
    assert "NUL" in result.stderr and "kept for inspection" in result.stderr
    assert tree.read("cleaned") == "good\n"


def damaged_copy_of_a_real_history(tree, runs=60):
    """A real history with page 1 intact and the pages after it overwritten."""
    tree.hook("pre-backup.d/10-a", "echo output line")
    for _ in range(3):
        assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    path = tree.state / "history.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.executemany("INSERT INTO runs (id, event, status, started, command) VALUES "
                   "(?, 'old', 'success', '', ?)", [(f"old-{n}", "x" * 500) for n in range(runs)])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > 3 * page
    data[page:] = bytes((n * 7 + 13) % 251 for n in range(len(data) - page))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("command", ["run", "recover"])
def test_a_damaged_history_is_moved_aside_for_run_and_recover(tree, command):
    path = damaged_copy_of_a_real_history(tree)
    dead_run(tree, cleanup_line(tree, "pending") + b"\n") if command == "recover" else None
    argv = ["--", "true"] if command == "run" else []
    result = run_hookrun(command, *tree.args(), *argv)
    assert result.returncode == 0, result.stderr
    assert "moved aside" in result.stderr
    assert [p.name for p in tree.state.glob("history.sqlite3.corrupt-*")]
    if command == "recover":
        assert tree.read("cleaned") == "pending\n"
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert show_last(tree)["status"] == "success" and path.exists()


def test_random_bytes_as_history_with_a_crashed_run_pending(tree):
    dead_run(tree, cleanup_line(tree, "pending") + b"\n")
    (tree.state / "history.sqlite3").write_bytes(os.urandom(20000))
    result = run_hookrun("recover", *tree.args())
    assert result.returncode == 0, result.stderr
    assert tree.read("cleaned") == "pending\n"
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") == "pending\n"


def test_a_bad_hookignore_line_is_78_naming_file_and_line_but_not_for_no_hooks(tree):
    marker_hook(tree, "pre-backup.d/10-a")
    ignore = tree.hooks / ".hookignore"
    ignore.write_text("*.sample\nbackup\\\n")
    for argv in (["run"], ["check"], ["list"]):
        result = run_hookrun(*argv, *tree.args(), *(["--", "true"] if argv == ["run"] else []))
        assert result.returncode == 78, result.stderr
        assert f"{ignore}:2:" in result.stderr and len(result.stderr.splitlines()) == 1
    result = run_hookrun("run", "--no-hooks", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert order(tree) == []


def test_long_durations_up_to_100_days_work_and_longer_ones_are_refused(tree):
    tree.hook("pre-backup.d/10-long", "true", header="timeout=720h retry-delay=2400h")
    result = run_hookrun("run", *tree.args("--command-timeout", "1000h", "--kill-grace",
                                           "1000h"), "--", "true")
    assert result.returncode == 0, result.stderr
    assert show_last(tree)["status"] == "success"
    tree.hook("pre-backup.d/10-long", "true", header="timeout=2401h")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 78
    result = run_hookrun("run", *tree.args("--timeout", "2401h"), "--", "true")
    assert result.returncode == 2 and "100 days" in result.stderr


@pytest.mark.parametrize("argv, config, status", [
    (["run", "-e", "e" * 250, "--", "true"], "", 78),
    (["run", "--", "true"], "[env]\nX = a\0b\n", 78),
    (["history", "-n", "1e20"], "", 2),
    (["history", "-n", "100000000000000000000"], "", 2),
    (["history", "-n", "-1"], "", 2),
])
def test_bad_input_is_one_line_and_a_documented_status(tree, argv, config, status):
    if config:
        tree.config(config)
    result = run_hookrun(argv[0], *tree.args(*argv[1:]))
    assert result.returncode == status, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_commands_that_need_no_hooks_directory_work_without_one(tree):
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    missing = ["-d", str(tree.base / "missing"), "--state-dir", str(tree.state)]
    for argv in (["show", "last"], ["history"], ["recover"], ["run", "--no-hooks", "--", "true"]):
        result = run_hookrun(*argv[:1], *missing, *argv[1:])
        assert result.returncode == 0, (argv, result.stderr)
    assert run_hookrun("run", *missing, "--", "true").returncode == 78


# Every filler stops at 8 MiB: past the 4 MiB test disk, and harmless on any other.
FILL_THE_DISK = 'dd if=/dev/zero of="$HOOKRUN_STATE_DIR/filler" bs=64k count=128 2>/dev/null'


@pytest.fixture
def small_disk():
    """A 4 MiB tmpfs mounted for the test (root only), unmounted after it."""
    needs_root("mount -t tmpfs (a small disk that fills up)")
    base = Path(tempfile.mkdtemp(prefix="hookrun-small-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                              str(base)], capture_output=True, text=True)
    require(mounted.returncode == 0, "mount -t tmpfs",
            f"does not work here ({mounted.stderr.strip()})")
    yield base
    subprocess.run(["umount", "-l", str(base)], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def disk_args(tree, disk):
    return ["-d", str(tree.hooks), "--state-dir", str(disk / "state")]


def test_a_disk_that_fills_while_a_hook_prints_loses_no_cleanup_and_no_finally(tree,
                                                                            small_disk):
    tree.hook("pre-backup.d/10-loud", f"""
        hookrun defer sh -c 'echo once >> "{tree.marks}/cleaned"'
        yes 0123456789012345678901234567890123456789012345678901234567890123 | head -c 8000000
        """)
    tree.hook("finally.d/10-last", f'touch "{tree.marks}/finally"')
    result = run_hookrun("run", "-q", *disk_args(tree, small_disk), "--", "true")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "logging stopped" in result.stderr and "Traceback" not in result.stderr
    assert tree.read("cleaned") == "once\n" and tree.read("finally") == ""
    assert run_hookrun("recover", *disk_args(tree, small_disk)).returncode == 0
    assert tree.read("cleaned") == "once\n"


def test_a_full_disk_before_the_wind_down_still_marks_each_cleanup_once(tree, small_disk):
    tree.hook("pre-backup.d/10-fill", f"""
        hookrun defer sh -c 'echo start >> "{tree.marks}/cleaned"; sleep 2; \
echo end >> "{tree.marks}/cleaned"'
        {FILL_THE_DISK} || true
        """)
    proc = subprocess.Popen(hookrun_cmd() + ["run", "-q", *disk_args(tree, small_disk), "--",
                                             "true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(tree.marks / "cleaned")
    proc.kill()  # hookrun dies while the cleanup runs, on a full disk
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while "end" not in (tree.read("cleaned") or "") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the wrapper writes its mark just after the cleanup's last line
    assert tree.read("cleaned") == "start\nend\n"
    probe = subprocess.run(["sh", "-c", f'echo x > "{small_disk}/state/probe"'],
                           capture_output=True, text=True)
    assert probe.returncode != 0, "the disk is still full"
    (small_disk / "state" / "filler").unlink()
    result = run_hookrun("recover", *disk_args(tree, small_disk))
    assert result.returncode == 0, result.stderr
    assert tree.read("cleaned") == "start\nend\n", "marked done in reserved space"


def test_hookrun_defer_on_a_full_disk_is_73_and_one_line(tree, small_disk):
    tree.hook("pre-backup.d/10-fill", f"""
        {FILL_THE_DISK} || true
        hookrun defer true 2> "{tree.marks}/stderr"
        echo $? > "{tree.marks}/status"
        """)
    result = run_hookrun("run", *disk_args(tree, small_disk), "--", "true")
    assert result.returncode == 0, result.stderr
    assert tree.read("status") == "73\n"
    assert len(tree.read("stderr").splitlines()) == 1 and "Traceback" not in tree.read("stderr")


@pytest.mark.slow
def test_twenty_events_at_once_in_one_state_dir_all_run_and_keep_their_metrics(tree):
    metrics = tree.base / "hookrun.prom"
    events = [f"event{n:02d}" for n in range(20)]
    for event in events:
        tree.hook(f"pre-{event}.d/10-x", f"""
            hookrun defer sh -c 'echo {event} >> "{tree.marks}/cleaned"'
            sleep 0.2
            """)
    procs = [subprocess.Popen(hookrun_cmd() + ["run", "-q", *tree.args("-e", event,
                              "--metrics-file", str(metrics)), "--", "true"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for event in events]
    results = [proc.communicate(timeout=120) + (proc.returncode,) for proc in procs]
    assert [status for _out, _err, status in results] == [0] * 20, results
    assert sorted(tree.read("cleaned").split()) == events
    text = metrics.read_text()
    assert all(f'hookrun_last_run_exit_code{{event="{event}"}} 0' in text for event in events)


def test_a_deleted_lock_file_does_not_let_a_second_run_of_the_event_start(tree):
    tree.hook("pre-backup.d/10-hold", f"""
        echo $$ > "{tree.marks}/up"
        while [ ! -e "{tree.marks}/go" ]; do sleep 0.05; done
        echo first >> "{tree.marks}/runs"
        """)
    first = start(tree, command=["--", "true"])
    wait_for(tree.marks / "up")
    for _attempt in range(5):  # run ids are random: a tie-break by id would let one through
        (tree.state / "locks" / "backup.lock").unlink()
        second = run_hookrun("run", *tree.args(), "--", "true", timeout=30)
        assert second.returncode == 75, second.stderr
        assert str(first.pid) in second.stderr
    (tree.marks / "go").touch()
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert tree.read("runs") == "first\n"
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0


def test_a_later_timeout_spares_a_daemon_an_earlier_hook_left_on_purpose(tree):
    tree.hook("pre-backup.d/10-tunnel", f"""
        setsid sh -c 'echo $$ > "{tree.marks}/tunnel"; exec sleep 60' \
            </dev/null >/dev/null 2>&1 &
        """)
    tree.hook("pre-backup.d/20-hang", f"""
        setsid sh -c 'echo $$ > "{tree.marks}/own"; exec sleep 60' </dev/null >/dev/null 2>&1 &
        sleep 60
        """, header="timeout=1s critical=no")
    try:
        result = run_hookrun("run", *tree.args("--kill-grace", "1s"), "--", "true")
        assert result.returncode == 0, result.stderr
        tunnel, own = int(tree.read("tunnel")), int(tree.read("own"))
        assert alive(tunnel), "the earlier hook's daemon survives"
        assert not alive(own), "the timed-out hook's own escapee is killed"
    finally:
        for name in ("tunnel", "own"):
            if tree.read(name):
                try:
                    os.kill(int(tree.read(name)), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_recovery_ends_a_dead_runs_hook_before_its_undo_runs(tree):
    app = tree.marks / "app"
    tree.hook("pre-backup.d/10-stop-app", f"""
        hookrun defer sh -c 'echo started > "{app}"'
        echo $$ > "{tree.marks}/up"
        sleep 2
        echo stopped > "{app}"
        """)
    proc = start(tree, command=["--", "true"])
    hook = int(wait_for(tree.marks / "up"))
    proc.kill()
    proc.communicate(timeout=30)
    assert alive(hook), "the hook outlives hookrun (a session of its own)"
    result = run_hookrun("recover", *tree.args("--kill-grace", "1s"))
    assert result.returncode == 0, result.stderr
    assert not alive(hook)
    time.sleep(2.5)
    assert app.read_text() == "started\n"


def test_a_huge_handoff_file_is_ignored_and_hookrun_stays_small(tree):
    tree.hook("pre-backup.d/10-huge",
              '{ printf BIG=; head -c 100000000 /dev/zero | tr "\\0" a; } > "$HOOKRUN_ENV"')
    tree.hook("pre-backup.d/20-next", f'touch "{tree.marks}/next"')
    measure = ("import resource, subprocess, sys; "
               "status = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", measure] + hookrun_cmd()
                            + ["run", "-q", *tree.args(), "--", "true"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "over 1 MiB" in result.stderr and tree.read("next") == ""
    peak_kib = int(result.stdout.split()[-1])
    assert peak_kib < 200_000, f"peak {peak_kib} KiB"



# Found by the soak script's fault modes (tests/soak/cleanup_soak.py).

def test_a_registration_after_a_torn_last_line_is_not_glued_to_it(tree):
    tree.hook("pre-backup.d/10-torn", f"""
        printf 'echo torn >> "{tree.marks}/cleaned"' >> "$HOOKRUN_CLEANUP"
        hookrun defer sh -c 'echo whole >> "$0"' "{tree.marks}/cleaned"
        """)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert tree.read("cleaned") == "whole\n"
    assert "NUL" in result.stderr and "kept for inspection" in result.stderr


def test_a_registration_the_full_disk_refused_leaves_nothing_behind(tree, small_disk):
    pad = "x" * 3900
    tree.hook("pre-backup.d/10-torn", f"""
        hookrun defer sh -c 'echo "$0" >> "{tree.marks}/cleaned"' A {pad}
        {FILL_THE_DISK}
        hookrun defer sh -c 'echo "$0" >> "{tree.marks}/cleaned"' B {"y" * 300} 2>/dev/null
        echo "$?" > "{tree.marks}/refused"
        rm -f "$HOOKRUN_STATE_DIR/filler"
        hookrun defer sh -c 'echo "$0" >> "{tree.marks}/cleaned"' C
        """)
    result = run_hookrun("run", *disk_args(tree, small_disk), "--", "true")
    assert result.returncode == 0, result.stderr
    assert tree.read("refused") == "73\n"
    assert tree.read("cleaned") == "C\nA\n"


def test_a_finished_run_that_died_removing_its_directory_runs_nothing_again(tree):
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    half_removed = tree.state / "runs" / f".removing-{DEAD_RUN}"
    half_removed.mkdir(mode=0o700)
    (half_removed / "cleanup").write_text(f'touch "{tree.marks}/again"\n')
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("again") is None and not half_removed.exists()


def test_a_run_directory_that_lost_its_lock_file_is_still_recovered(tree):
    run_dir = dead_run(tree, cleanup_line(tree, "pending") + b"\n")
    (run_dir / "owner.lock").unlink()
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") == "pending\n" and not run_dir.exists()


def test_marks_that_cannot_be_read_leave_the_cleanups_pending_not_run_twice(tree):
    tree.hook("pre-backup.d/10-break-marks", f"""
        hookrun defer sh -c 'echo once >> "{tree.marks}/cleaned"'
        marks="$(dirname "$HOOKRUN_CLEANUP")/cleanup.marks"
        rm "$marks" && mkdir "$marks"
        """)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0
    assert "left pending" in result.stderr and tree.read("cleaned") is None
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") is None
    (run_dir,) = [p for p in (tree.state / "runs").iterdir() if not p.name.startswith(".")]
    (run_dir / "cleanup.marks").rmdir()
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") == "once\n"
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") == "once\n"


def test_defer_whose_fsync_fails_still_registers_and_says_so(tree):
    fiu_run = require(shutil.which("fiu-run"), "fiu-run (Debian package fiu-utils)")
    # -f "": no control fifos, which fiu-run would leave behind in /tmp.
    tree.hook("pre-backup.d/10-defer", f"""
        {fiu_run} -x -f "" -c "enable name=posix/io/sync/fsync,failinfo=5" \\
            hookrun defer touch "{tree.marks}/cleaned" 2> "{tree.marks}/stderr"
        echo "$?" > "{tree.marks}/status"
        """)
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert tree.read("status") == "0\n" and "not synced" in tree.read("stderr")
    assert tree.read("cleaned") == ""


def test_defer_that_cannot_open_its_journal_is_73_not_a_usage_error(tree):
    result = run_hookrun("defer", "true", env={"HOOKRUN_CLEANUP": str(tree.marks)})
    assert result.returncode == 73 and len(result.stderr.splitlines()) == 1


def test_an_stderr_that_cannot_be_written_keeps_the_documented_status(tree):
    with open("/dev/full", "w") as full:
        result = subprocess.run(hookrun_cmd() + ["run", "-d", str(tree.base / "missing"), "--",
                                                 "true"], stderr=full, timeout=60)
        assert result.returncode == 78
        result = subprocess.run(hookrun_cmd() + ["defer", "true"], stderr=full, timeout=60,
                                env={k: v for k, v in os.environ.items()
                                     if k != "HOOKRUN_CLEANUP"})
        assert result.returncode == 2


def failing_reads(monkeypatch, times):
    """Make the wind-down's reading of a cleanup journal fail ``times`` times (EIO), as a
    failing disk would; returns the list of failures made."""
    real = Journal.pending
    failures = []

    def pending(journal):
        if len(failures) < times:
            failures.append(journal.path)
            raise OSError(errno.EIO, "Input/output error")
        return real(journal)

    monkeypatch.setattr(Journal, "pending", pending)
    return failures


def test_a_journal_that_cannot_be_read_at_first_is_read_again(tree, hookrun_main, monkeypatch):
    tree.hook("pre-backup.d/10-defer", f'hookrun defer touch "{tree.marks}/cleaned"')
    failures = failing_reads(monkeypatch, c.JOURNAL_READ_ATTEMPTS - 1)
    status, _out, err = hookrun_main("run", *tree.args(), "--", "true")
    assert status == 0 and "cannot read the cleanups" not in err
    assert len(failures) == c.JOURNAL_READ_ATTEMPTS - 1
    assert tree.read("cleaned") == ""
    assert show_last(tree)["status"] == "success"


def test_a_journal_that_stays_unreadable_is_a_warning_and_left_for_recovery(
        tree, hookrun_main, monkeypatch):
    tree.hook("pre-backup.d/10-defer", f"""
        hookrun defer sh -c 'echo ran >> "{tree.marks}/cleaned"'
        """)
    failing_reads(monkeypatch, 10 * c.JOURNAL_READ_ATTEMPTS)
    status, _out, err = hookrun_main("run", *tree.args(), "--", "true")
    assert status == 0
    assert "cannot read the cleanups" in err and "left pending" in err
    assert tree.read("cleaned") is None
    assert show_last(tree)["status"] == "warning"
    monkeypatch.undo()
    assert run_hookrun("recover", "--state-dir", str(tree.state)).returncode == 0
    assert tree.read("cleaned") == "ran\n"
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert tree.read("cleaned") == "ran\nran\n", "the next run's own cleanup, once"
