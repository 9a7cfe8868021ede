"""One hook at a time, and dry runs that reach the hooks that can take part (design.md 11),
through the installed hookrun: ``hookrun phase DIR --only NAME`` runs those hooks exactly as
a run would and records nothing; a hook with ``dry-run=yes`` runs under ``--dry-run`` with
HOOKRUN_DRY_RUN=1, the others and the command never do, and nothing is recorded, measured
or sent."""

import json
import os
import subprocess
import time

from tests.conftest import hookrun_cmd, marker_hook, order, run_hookrun

EXIT_USAGE = 2
EXIT_HOOK_STOPPED = 69
EXIT_LOCKED = 75
EXIT_CONFIG = 78


def history_ids(tree):
    """The ids of the runs in the history; [] when there is none."""
    result = run_hookrun("history", "--json", *tree.args())
    if result.returncode == 1 and "no history yet" in result.stderr:
        return []
    assert result.returncode == 0, result.stderr
    return [run["id"] for run in json.loads(result.stdout)]


def holding_the_lock(tree, *argv):
    """Start ``hookrun ARGV`` whose hook pre-backup.d/00-hold waits for marks/go; returns the
    process once the hook runs (the event's lock is held)."""
    tree.hook("pre-backup.d/00-hold", f"""
        touch "{tree.mark('holding')}"
        while [ ! -e "{tree.mark('go')}" ]; do sleep 0.05; done
        """, header="dry-run=yes")
    holder = subprocess.Popen(hookrun_cmd() + list(argv), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while tree.read("holding") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tree.read("holding") is not None, "the holder never took the lock"
    return holder


def release(tree, holder):
    tree.mark("go").touch()
    assert holder.wait(timeout=60) == 0


# hookrun phase --only

def only_tree(tree):
    """pre-backup.d: 10-a hands FOO on and defers a cleanup, 20-b must not run, 30-c writes
    what it was given."""
    tree.config("[env]\nFROM_CONFIG = yes\n")
    marker_hook(tree, "pre-backup.d/10-a", extra=f"""
        echo FOO=handed-on >> "$HOOKRUN_ENV"
        hookrun defer touch '{tree.marks}/cleaned'
        """)
    marker_hook(tree, "pre-backup.d/20-b")
    marker_hook(tree, "pre-backup.d/30-c", extra=f"""
        echo "$FOO $FROM_CONFIG $HOOKRUN_INDEX/$HOOKRUN_COUNT $HOOKRUN_DRY_RUN." \
            > "{tree.marks}/given"
        """)


def test_phase_only_runs_the_named_hooks_as_a_run_would_and_records_nothing(tree):
    only_tree(tree)
    result = run_hookrun("phase", "pre-backup", "--only", "30-c", "--only", "10-a",
                         *tree.args())
    assert result.returncode == 0, result.stderr
    # In the directory's order, whatever the command line's; 20-b neither ran nor is listed.
    assert order(tree) == ["pre/10-a", "pre/30-c"]
    assert "20-b" not in result.stdout
    # The hand-off, [env], the places in the whole directory, not a dry run.
    assert tree.read("given") == "handed-on yes 3/3 .\n"
    assert tree.read("cleaned") == ""
    assert history_ids(tree) == []


def test_phase_only_is_read_before_and_after_the_subcommand_and_with_an_equals_sign(tree):
    only_tree(tree)
    result = run_hookrun("-d", str(tree.hooks), "--only", "10-a", "phase", "pre-backup",
                         "--state-dir", str(tree.state), "--only=30-c")
    assert result.returncode == 0, result.stderr
    assert order(tree) == ["pre/10-a", "pre/30-c"]


def test_phase_only_keeps_the_hooks_retries_critical_stop_and_exit_status(tree):
    tree.hook("pre-backup.d/10-flaky", f"""
        echo try >> "{tree.marks}/tries"
        [ "$HOOKRUN_ATTEMPT" -ge 2 ]
        """, header="retries=2 retry-delay=0")
    marker_hook(tree, "pre-backup.d/20-fails", code=1)
    marker_hook(tree, "pre-backup.d/30-after")
    result = run_hookrun("phase", "pre-backup", "--only", "10-flaky", *tree.args())
    assert result.returncode == 0, result.stderr
    assert tree.read("tries") == "try\ntry\n"
    # A critical failure stops the rest of the chosen hooks, as it stops a run's.
    result = run_hookrun("phase", "pre-backup", "--only", "20-fails", "--only", "30-after",
                         *tree.args())
    assert result.returncode == EXIT_HOOK_STOPPED, result.stderr
    assert order(tree) == ["pre/20-fails"]


def test_phase_only_takes_the_event_lock(tree):
    marker_hook(tree, "pre-backup.d/10-a")
    holder = holding_the_lock(tree, "run", *tree.args(), "--", "true")
    try:
        result = run_hookrun("phase", "pre-backup", "--only", "10-a", *tree.args())
    finally:
        release(tree, holder)
    assert result.returncode == EXIT_LOCKED, result.stderr
    assert order(tree) == ["pre/10-a"]  # the holder's run, after the lock was released


def test_phase_only_names_the_hooks_there_for_a_name_that_is_none(tree):
    only_tree(tree)
    result = run_hookrun("phase", "pre-backup", "--only", "10-a", "--only", "40-missing",
                         *tree.args())
    assert result.returncode == EXIT_USAGE
    assert "40-missing" in result.stderr and "10-a, 20-b, 30-c" in result.stderr
    assert result.stderr.count("\n") == 1
    assert order(tree) == [] and not tree.state.exists()


def test_phase_only_refuses_a_disabled_ignored_or_masked_hook_saying_why(tree):
    marker_hook(tree, "pre-backup.d/10-off.disabled")
    marker_hook(tree, "pre-backup.d/20-ignored")
    (tree.hooks / ".hookignore").write_text("pre-backup.d/20-ignored\n")
    lower = tree.base / "lower"
    (lower / "pre-backup.d").mkdir(parents=True)
    lower.chmod(0o755)
    (lower / "pre-backup.d").chmod(0o755)
    (lower / "pre-backup.d" / "30-masked").write_text("#!/bin/sh\ntouch /nonexistent\n")
    (lower / "pre-backup.d" / "30-masked").chmod(0o755)
    os.symlink(os.devnull, tree.hooks / "pre-backup.d" / "30-masked")
    layered = ["-d", str(lower), *tree.args()]
    for name, why in (("10-off.disabled", ".disabled"), ("20-ignored", ".hookignore"),
                      ("30-masked", "masked")):
        result = run_hookrun("phase", "pre-backup", "--only", name, *layered)
        assert result.returncode == EXIT_USAGE, (name, result.stderr)
        assert name in result.stderr and why in result.stderr, result.stderr
    assert order(tree) == []


def test_phase_only_takes_a_hook_of_an_earlier_hooks_directory(tree):
    lower = tree.base / "lower"
    (lower / "pre-backup.d").mkdir(parents=True)
    lower.chmod(0o755)
    (lower / "pre-backup.d").chmod(0o755)
    shipped = lower / "pre-backup.d" / "10-shipped"
    shipped.write_text(f'#!/bin/sh\necho "$HOOKRUN_PHASE/$HOOKRUN_HOOK" >> "{tree.marks}/order"\n')
    shipped.chmod(0o755)
    marker_hook(tree, "pre-backup.d/20-admin")
    result = run_hookrun("phase", "pre-backup", "--only", "10-shipped", "-d", str(lower),
                         *tree.args())
    assert result.returncode == 0, result.stderr
    assert order(tree) == ["pre/10-shipped"]


def test_phase_only_with_an_empty_name_is_a_usage_error(tree):
    marker_hook(tree, "pre-backup.d/10-a")
    result = run_hookrun("phase", "pre-backup", "--only=", *tree.args())
    assert result.returncode == EXIT_USAGE and "empty" in result.stderr
    assert order(tree) == []


# dry-run=yes

def dry_tree(tree):
    """A hook of each phase that takes part in a dry run, and one that does not; the command
    is tree's marks/command."""
    for relative, header in (("pre-backup.d/10-dry", "dry-run=yes"),
                             ("pre-backup.d/20-wet", None),
                             ("post-backup.d/10-dry", "dry-run=yes when=success"),
                             ("post-backup.d/20-wet", None),
                             ("on-success.d/10-dry", "dry-run=yes"),
                             ("on-error.d/10-dry", "dry-run=yes"),
                             ("finally.d/10-dry", "dry-run=yes"),
                             ("finally.d/20-wet", None)):
        marker_hook(tree, relative, header=header, extra=f"""
            echo "$HOOKRUN_PHASE/$HOOKRUN_HOOK ${{HOOKRUN_DRY_RUN:-unset}} \
${{HOOKRUN_STATUS:--}} [${{HOOKRUN_EXIT_CODE-}}]" >> "{tree.marks}/seen"
            """)
    return ["sh", "-c", f'touch "{tree.marks}/command"']


def test_a_dry_run_runs_only_the_dry_run_hooks_never_the_command_and_records_nothing(tree,
                                                                                     checker):
    command = dry_tree(tree)
    metrics = tree.base / "hookrun.prom"
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    recorded = history_ids(tree)
    (tree.marks / "seen").unlink()
    (tree.marks / "order").unlink()
    result = run_hookrun("run", "--dry-run", "--metrics-file", str(metrics), "--notify-url",
                         checker.url, *tree.args(), "--", *command)
    assert result.returncode == 0, result.stderr
    # The command is taken as succeeded: post- sees success, and did not run: no exit code.
    assert tree.read("seen").splitlines() == [
        "pre/10-dry 1 - []", "post/10-dry 1 success []", "on-success/10-dry 1 success []",
        "finally/10-dry 1 success []"]
    assert tree.read("command") is None
    assert "20-wet" in result.stdout and "dry run: no dry-run=yes" in result.stdout
    assert history_ids(tree) == recorded
    assert not metrics.exists() and checker.requests == []


def test_a_dry_run_hook_that_stops_the_run_exits_69_and_leads_to_on_error(tree):
    command = dry_tree(tree)
    marker_hook(tree, "pre-backup.d/15-dry-fails", code=1, header="dry-run=yes")
    result = run_hookrun("run", "--dry-run", *tree.args(), "--", *command)
    assert result.returncode == EXIT_HOOK_STOPPED, result.stderr
    # post/10-dry is when=success: the command, stopped before, counts as not run.
    assert order(tree) == ["pre/10-dry", "pre/15-dry-fails", "on-error/10-dry",
                           "finally/10-dry"]
    assert tree.read("command") is None
    assert history_ids(tree) == []


def test_a_dry_run_hook_defers_a_cleanup_that_runs_as_a_dry_run_too(tree):
    tree.hook("pre-backup.d/10-dry", f"""
        hookrun defer sh -c 'echo "$HOOKRUN_DRY_RUN" > "{tree.marks}/cleanup"'
        """, header="dry-run=yes")
    result = run_hookrun("run", "--dry-run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert tree.read("cleanup") == "1\n"


def test_a_dry_run_with_dry_run_hooks_takes_the_event_lock(tree):
    marker_hook(tree, "pre-backup.d/10-dry", header="dry-run=yes")
    holder = holding_the_lock(tree, "run", *tree.args(), "--", "true")
    try:
        result = run_hookrun("run", "--dry-run", *tree.args(), "--", "true")
    finally:
        release(tree, holder)
    assert result.returncode == EXIT_LOCKED, result.stderr
    assert order(tree) == ["pre/10-dry"]  # the holder's, once released


def dead_run(tree):
    """The run directory of a dead exclusive run of event backup, a cleanup pending in its
    journal; returns its path."""
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0  # the state dir
    dead = tree.state / "runs" / "20000101T000000-dead01"
    dead.mkdir(mode=0o700)
    (dead / "meta.json").write_text(json.dumps({
        "run_id": dead.name, "event": "backup", "exclusive": True, "recorded": False,
        "pid": 2 ** 22 + 1}))  # above any pid_max: no such process
    (dead / "cleanup").write_text(f"touch {tree.marks}/undone\n")
    return dead


def test_a_dry_run_warns_of_crashed_runs_only_when_there_are_some(tree):
    marker_hook(tree, "pre-backup.d/10-dry", header="dry-run=yes")
    result = run_hookrun("run", "--dry-run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "crashed run" not in result.stderr
    dead_run(tree)
    result = run_hookrun("run", "--dry-run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "1 crashed run(s) left cleanups pending" in result.stderr
    assert tree.read("undone") is None


def test_a_dry_run_interrupted_while_it_waits_for_a_recovery_exits_130(tree):
    import fcntl

    marker_hook(tree, "pre-backup.d/10-dry", header="dry-run=yes")
    dead = dead_run(tree)
    with open(dead / "owner.lock", "w") as lock:  # as a recovery going on would
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.Popen(hookrun_cmd() + ["run", "--dry-run", "--wait=60", *tree.args(),
                                                 "--", "true"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Its own run directory, once made, is what waits for the recovery to end.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [
                run for run in dead.parent.iterdir()
                if run != dead and not run.name.startswith(".")]:
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(2)
        _out, err = proc.communicate(timeout=60)
    assert "internal error" not in err, err
    assert proc.returncode == 130, err
    assert order(tree) == ["pre/10-dry"]  # the real run's, before: the dry run ran none


def test_a_dry_run_without_dry_run_hooks_only_prints_the_plan(tree):
    marker_hook(tree, "pre-backup.d/10-wet")
    result = run_hookrun("run", "--dry-run", *tree.args(), "--", "touch",
                         str(tree.mark("command")))
    assert result.returncode == 0, result.stderr
    assert "10-wet" in result.stdout
    assert order(tree) == [] and tree.read("command") is None
    assert not tree.state.exists()


def test_hooks_of_a_real_run_are_never_told_it_is_a_dry_run(tree):
    tree.hook("pre-backup.d/10-hook", f'echo "[$HOOKRUN_DRY_RUN]" > "{tree.marks}/dry"')
    result = run_hookrun("run", *tree.args(), "--", "true", env={"HOOKRUN_DRY_RUN": "1"})
    assert result.returncode == 0, result.stderr
    assert tree.read("dry") == "[]\n"


def test_phase_dry_run_runs_only_the_dry_run_hooks_of_the_directory(tree):
    dry_tree(tree)
    result = run_hookrun("phase", "finally", "--dry-run", *tree.args())
    assert result.returncode == 0, result.stderr
    assert tree.read("seen") == "finally/10-dry 1 success []\n"
    result = run_hookrun("phase", "finally", "--dry-run", "--only", "20-wet", *tree.args())
    assert result.returncode == EXIT_USAGE and "dry-run=yes" in result.stderr
    result = run_hookrun("phase", "finally", "--dry-run", "--only", "10-dry", *tree.args())
    assert result.returncode == 0, result.stderr
    assert order(tree) == ["finally/10-dry", "finally/10-dry"]
    assert history_ids(tree) == []


def test_dry_run_is_a_header_directive_and_a_hook_key_shown_by_list(tree):
    marker_hook(tree, "pre-backup.d/10-header", header="dry-run=yes")
    marker_hook(tree, "pre-backup.d/20-section")
    marker_hook(tree, "pre-backup.d/30-plain")
    tree.config("[hook pre-backup.d/20-section]\ndry-run = yes\n")
    result = run_hookrun("list", "--json", *tree.args())
    assert result.returncode == 0, result.stderr
    assert {item["name"]: item["dry_run"] for item in json.loads(result.stdout)} == \
        {"10-header": True, "20-section": True, "30-plain": False}
    marker_hook(tree, "pre-backup.d/40-bad", header="dry-run=perhaps")
    result = run_hookrun("run", "--dry-run", *tree.args(), "--", "true")
    assert result.returncode == EXIT_CONFIG and "40-bad:2:" in result.stderr
    assert order(tree) == []
