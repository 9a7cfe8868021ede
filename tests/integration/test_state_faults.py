"""Read errors are faults, not bricks; recovery is not a rival; a run's record survives a
damaged history; a fault in the wind-down still runs finally.d and the cleanups (design.md
section 8, "Side doors"). The faults are real: I/O errors injected into hookrun's own reads by
libfiu (fiu-run), non-regular files, address-space limits, concurrent processes."""

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import hookrun_cmd, marker_hook, order, require, run_hookrun, show_last
from tests.integration.test_faults import DEAD_RUN, cleanup_line, dead_run
from tests.soak.cleanup_soak import READ_SITECUSTOMIZE

READ_FAULTS = "HOOKRUN_TEST_READ_FAULTS"
# The soak's sitecustomize module, found through PYTHONPATH by the hookrun started under
# ``fiu-run -x``: its reads (os.read) of a file whose name is in $HOOKRUN_TEST_READ_FAULTS
# fail with EIO, injected by libfiu into the libc call itself (with no probability set:
# every one); "sqlite" fails the preads of the process, which only SQLite uses there. Popped
# from the environment, so hooks and ``hookrun defer`` see none.
SITECUSTOMIZE = READ_SITECUSTOMIZE


@pytest.fixture
def faulty_hookrun(tmp_path):
    """Run hookrun under fiu-run with reads of the named files failing (EIO); returns a
    function (names, *argv) -> CompletedProcess."""
    fiu_run = require(shutil.which("fiu-run"), "fiu-run (Debian package fiu-utils)")
    site = tmp_path / "fiu-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def run(names, *argv, timeout=60):
        env = dict(os.environ, PYTHONPATH=str(site), **{READ_FAULTS: " ".join(names)})
        env.pop("HOOKRUN_CLEANUP", None)
        # -f "": no control fifos, which fiu-run would leave behind in /tmp.
        return subprocess.run([fiu_run, "-x", "-f", ""] + hookrun_cmd() + list(argv),
                              capture_output=True, text=True, env=env, timeout=timeout)

    return run


COMMANDS = ("run", "no-hooks", "recover", "phase")


def command_argv(tree, command):
    return {"run": ["run", *tree.args("--json"), "--", "true"],
            "no-hooks": ["run", "--no-hooks", *tree.args("--json"), "--", "true"],
            "recover": ["recover", *tree.args()],
            "phase": ["phase", "pre-backup", *tree.args()]}[command]


def recorded(tree, result):
    """The history's record of the run that printed ``result`` (run --json)."""
    run_id = json.loads(result.stdout.splitlines()[-1])["id"]
    shown = run_hookrun("show", run_id, "--json", *tree.args())
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def assert_went_on(tree, command, result):
    """The command did its own work and ended with its own status."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    if command in ("run", "no-hooks"):
        record = recorded(tree, result)
        assert record["status"] == "success" and record["exit_code"] == 0
        assert record["no_hooks"] == (command == "no-hooks")
    if command in ("run", "phase"):
        assert order(tree)[-1] == "pre/10-a"


def assert_set_aside(tree, command, result):
    """Recovery (run, recover) set the damaged run directory aside, its cleanup not run;
    the others leave it be."""
    kept = tree.state / "runs" / f".damaged-{DEAD_RUN}"
    if command in ("run", "recover"):
        assert "damaged" in result.stderr and kept.is_dir()
        assert not (tree.state / "runs" / DEAD_RUN).exists()
    assert tree.read("cleaned") is None


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreadable_meta_json_sets_its_run_aside_and_every_command_goes_on(
        tree, faulty_hookrun, command):
    dead_run(tree, cleanup_line(tree, "dead") + b"\n")
    marker_hook(tree, "pre-backup.d/10-a")
    result = faulty_hookrun(["meta.json"], *command_argv(tree, command))
    assert_went_on(tree, command, result)
    assert_set_aside(tree, command, result)
    # Once the disk reads again nothing is stuck: a run set aside stays aside, one that only
    # went unread (--no-hooks and phase recover nothing) is recovered, once.
    assert run_hookrun(*command_argv(tree, "run")).returncode == 0
    assert run_hookrun(*command_argv(tree, "recover")).returncode == 0
    assert tree.read("cleaned") == (None if command in ("run", "recover") else "dead\n")


def make_fifo(path):
    path.unlink()
    os.mkfifo(path, 0o600)


def make_dir(path):
    path.unlink()
    path.mkdir(mode=0o700)


def make_nested(path):
    path.write_text("[" * 60000)  # deeper than json can read: RecursionError, not ValueError


@pytest.mark.parametrize("damage", ["meta.json fifo", "meta.json directory", "cleanup fifo",
                                    "cleanup directory", "owner.lock fifo",
                                    "owner.lock directory", "meta.json nested"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_non_regular_meta_json_or_journal_sets_its_run_aside_and_nothing_hangs(
        tree, command, damage):
    run_dir = dead_run(tree, cleanup_line(tree, "dead") + b"\n")
    marker_hook(tree, "pre-backup.d/10-a")
    name, kind = damage.split()
    {"fifo": make_fifo, "directory": make_dir, "nested": make_nested}[kind](run_dir / name)
    result = run_hookrun(*command_argv(tree, command), timeout=30)
    assert_went_on(tree, command, result)
    assert_set_aside(tree, command, result)
    assert run_hookrun(*command_argv(tree, "run"), timeout=30).returncode == 0


def test_a_journal_that_recovery_cannot_read_sets_its_run_aside(tree, faulty_hookrun):
    dead_run(tree, cleanup_line(tree, "dead") + b"\n")
    marker_hook(tree, "pre-backup.d/10-a")
    result = faulty_hookrun(["cleanup"], *command_argv(tree, "run"))
    assert result.returncode == 0, result.stderr
    assert "cannot be read" in result.stderr
    assert (tree.state / "runs" / f".damaged-{DEAD_RUN}" / "cleanup").exists()
    # The run's own journal could not be read either: its status says so.
    assert recorded(tree, result)["status"] == "warning"
    result = run_hookrun(*command_argv(tree, "run"))
    assert result.returncode == 0 and "damaged" not in result.stderr
    assert recorded(tree, result)["status"] == "success"
    assert tree.read("cleaned") is None


@pytest.mark.parametrize("command", COMMANDS)
def test_a_history_that_cannot_be_read_is_a_warning_and_every_command_goes_on(
        tree, faulty_hookrun, command):
    dead_run(tree, cleanup_line(tree, "dead") + b"\n")
    marker_hook(tree, "pre-backup.d/10-a")
    result = faulty_hookrun(["sqlite", "history.sqlite3"], *command_argv(tree, command))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    if command in ("run", "phase"):
        assert order(tree) == ["pre/10-a"]
    if command in ("run", "recover"):
        assert tree.read("cleaned") == "dead\n"
    result = run_hookrun(*command_argv(tree, "run"))
    assert result.returncode == 0, result.stderr
    assert recorded(tree, result)["status"] == "success"


# A fault in the wind-down: an address-space limit that hookrun itself sets on hookrun.

def limited_run(tree, journal_padding=0):
    """A run whose pre- hook registers a cleanup, pads the journal with a comment line of
    ``journal_padding`` bytes, and then limits hookrun's address space (prlimit --as) to
    what it uses now plus 3 MiB: enough for the rest of the run, not for a 4 MiB buffer.
    One malloc arena and small thread stacks, so that no reserve left from earlier blurs
    the limit."""
    prlimit = require(shutil.which("prlimit"), "prlimit (util-linux)")
    tree.hook("pre-backup.d/10-limit", f"""
        hookrun defer touch "{tree.marks}/cleaned"
        if [ {journal_padding} -gt 0 ]; then
            {{ printf '#'; head -c {journal_padding} /dev/zero | tr '\\0' x; echo; }} \\
                >> "$HOOKRUN_CLEANUP"
        fi
        size=$(awk '/^VmSize/ {{print $2}}' "/proc/$PPID/status")
        {prlimit} --pid "$PPID" --as=$(( (size + 3072) * 1024 ))
        """)
    tree.hook("finally.d/10-last", f'touch "{tree.marks}/finally"')
    return subprocess.run([prlimit, "--stack=262144"] + hookrun_cmd()
                          + ["run", *tree.args("--json"), "--", "true"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MALLOC_ARENA_MAX="1"))


def test_a_small_journal_is_read_in_a_small_buffer_under_an_address_space_limit(tree):
    result = limited_run(tree)
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr
    assert tree.read("cleaned") == "" and tree.read("finally") == ""
    assert recorded(tree, result)["status"] == "success"


def test_memory_running_out_in_the_wind_down_still_runs_finally_and_keeps_the_cleanups(tree):
    result = limited_run(tree, journal_padding=3_900_000)
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr and "out of memory" in result.stderr
    assert tree.read("finally") == ""
    assert recorded(tree, result)["status"] == "warning"
    # The cleanup that could not be read is not lost: recovery runs it, once.
    assert tree.read("cleaned") is None
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") == ""
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") == "" and not list((tree.state / "runs").iterdir())


def test_a_fault_in_the_first_cleanups_still_runs_finally_and_then_the_cleanups(
        tree, hookrun_main, monkeypatch):
    from orchestrator.engine import Engine

    real = Engine.run_cleanups
    faults = []

    def run_cleanups(engine, *args, **kwargs):
        if not faults:
            faults.append("raised")
            raise MemoryError
        return real(engine, *args, **kwargs)

    monkeypatch.setattr(Engine, "run_cleanups", run_cleanups)
    tree.hook("pre-backup.d/10-defer", f'hookrun defer touch "{tree.marks}/cleaned"')
    tree.hook("finally.d/10-last", f'touch "{tree.marks}/finally"')
    status, out, err = hookrun_main("run", *tree.args("--json"), "--", "true")
    assert status == 0, err
    assert faults and "MemoryError" in err
    assert tree.read("finally") == "" and tree.read("cleaned") == ""
    record = json.loads(out.splitlines()[-1])
    assert record["status"] == "warning"
    assert [task["phase"] for task in record["tasks"]] == ["pre", "command", "finally",
                                                           "cleanup"]
    monkeypatch.undo()
    assert run_hookrun("recover", *tree.args()).returncode == 0
    assert tree.read("cleaned") == "", "marked done: not run again"


# A run's record survives a history moved aside or replaced while it runs.

HISTORY_REPLACED = {
    # What a concurrent run does that finds the history damaged.
    "moved aside": 'for f in history.sqlite3 history.sqlite3-wal history.sqlite3-shm; do '
                   '[ -e "$f" ] && mv "$f" "$f.corrupt-20200101T000000"; done; true',
    # A hook that writes garbage in its place (a new file).
    "replaced by garbage": 'head -c 20000 /dev/urandom > garbage && chmod 600 garbage && '
                           'mv garbage history.sqlite3 && rm -f history.sqlite3-wal '
                           'history.sqlite3-shm',
    # A hook that overwrites it where it is (the same file): SQLite finds it damaged.
    "overwritten in place": 'dd if=/dev/urandom of=history.sqlite3 bs=4096 count=8 '
                            'conv=notrunc 2>/dev/null && rm -f history.sqlite3-wal '
                            'history.sqlite3-shm',
}


@pytest.mark.parametrize("how", list(HISTORY_REPLACED))
def test_a_history_moved_aside_during_a_run_gets_the_runs_whole_record(tree, how):
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    # A second long enough for the run's progress to be written into the old history.
    tree.hook("pre-backup.d/10-slow", "sleep 1.5")
    tree.hook("pre-backup.d/20-replace", f'cd "$HOOKRUN_STATE_DIR" && {HISTORY_REPLACED[how]}')
    tree.hook("post-backup.d/10-after", "true")
    result = run_hookrun("run", *tree.args("--json"), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "history" in result.stderr
    printed = json.loads(result.stdout.splitlines()[-1])
    last = show_last(tree)
    assert last["id"] == printed["id"] and last["status"] == "success"
    assert [(t["phase"], t["name"], t["status"]) for t in last["tasks"]] == [
        ("pre", "10-slow", "ok"), ("pre", "20-replace", "ok"), ("command", "true", "ok"),
        ("post", "10-after", "ok")]
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    assert show_last(tree)["status"] == "success"


def test_a_concurrent_run_that_moves_the_history_aside_loses_no_record(tree):
    tree.events("other")
    tree.hook("pre-backup.d/10-hold", f"""
        [ "$HOOKRUN_EVENT" = backup ] || exit 0
        echo up > "{tree.marks}/up"
        while [ ! -e "{tree.marks}/go" ]; do sleep 0.05; done
        """)
    first = subprocess.Popen(hookrun_cmd() + ["run", *tree.args("--json"), "--", "true"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from tests.integration.test_process_control import wait_for

        wait_for(tree.marks / "up")
        # The other run finds the history damaged, moves it aside, starts a new one.
        history = tree.state / "history.sqlite3"
        history.write_bytes(os.urandom(20000))
        for suffix in ("-wal", "-shm"):
            (tree.state / f"history.sqlite3{suffix}").unlink(missing_ok=True)
        other = run_hookrun("run", *tree.args("-e", "other", "--json"), "--", "true")
        assert other.returncode == 0 and "moved aside" in other.stderr, other.stderr
    finally:
        (tree.marks / "go").touch()
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    printed = json.loads(out.splitlines()[-1])
    runs = json.loads(run_hookrun("history", "--json", *tree.args()).stdout)
    assert {run["id"]: run["status"] for run in runs} == {
        printed["id"]: "success", json.loads(other.stdout.splitlines()[-1])["id"]: "success"}


# Recovery is not a rival.

def crashed_run(tree):
    """A run of event backup SIGKILLed in its pre- hook, with a cleanup pending that takes
    half a second; returns the dead hookrun's pid."""
    (tree.marks / "crash").touch()
    proc = subprocess.Popen(hookrun_cmd() + ["run", *tree.args(), "--", "true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from tests.integration.test_process_control import wait_for

    wait_for(tree.marks / "up")
    proc.kill()
    proc.communicate(timeout=30)
    (tree.marks / "up").unlink()
    return proc.pid


@pytest.mark.slow
def test_a_run_during_another_process_recovery_waits_for_it_and_never_names_the_dead_pid(
        tree):
    order_file = tree.marks / "order"
    tree.hook("pre-backup.d/10-crash", f"""
        if [ -e "{tree.marks}/crash" ]; then
            rm "{tree.marks}/crash"
            hookrun defer sh -c 'echo cleanup-start >> "{order_file}"; sleep 0.5; \
echo cleanup-end >> "{order_file}"'
            echo up > "{tree.marks}/up"
            exec sleep 30
        fi
        echo "pre $HOOKRUN_RUN_ID" >> "{order_file}"
        """)
    bad, outcomes = [], []
    for attempt in range(20):
        dead_pid = crashed_run(tree)
        order_file.write_text("")
        recoverer = subprocess.Popen(hookrun_cmd() + ["recover", *tree.args("--kill-grace",
                                                                             "1s")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        if attempt % 2:  # else at once: a race with the recovery's start
            deadline = time.monotonic() + 20
            while "cleanup-start" not in order_file.read_text() and \
                    time.monotonic() < deadline:
                time.sleep(0.005)
        waiting = attempt % 4 != 3  # one in four without --wait
        result = run_hookrun("run", *tree.args(*(["--wait=60"] if waiting else []), "--json"),
                             "--", "true", timeout=90)
        recoverer.communicate(timeout=60)
        lines = order_file.read_text().split("\n")
        outcomes.append(result.returncode)
        if f"pid {dead_pid}" in result.stderr or str(dead_pid) in result.stderr:
            bad.append((attempt, "named the dead pid", result.stderr))
        elif waiting and result.returncode != 0:
            bad.append((attempt, f"exit {result.returncode} with --wait", result.stderr))
        elif result.returncode not in (0, 75):
            bad.append((attempt, f"exit {result.returncode}", result.stderr))
        elif lines.count("cleanup-end") != 1:
            bad.append((attempt, "the cleanup did not run exactly once", lines))
        elif result.returncode == 0 and lines.index("cleanup-end") > [
                n for n, line in enumerate(lines) if line.startswith("pre ")][0]:
            bad.append((attempt, "a pre- hook ran before the undo had ended", lines))
    assert bad == [], bad
    assert outcomes.count(0) >= 15, outcomes


def test_a_history_replaced_by_a_directory_during_a_run_is_a_warning_not_an_error(tree):
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    tree.hook("pre-backup.d/10-replace", 'cd "$HOOKRUN_STATE_DIR" && '
                                         'rm -f history.sqlite3* && mkdir history.sqlite3')
    metrics = tree.base / "hookrun.prom"
    result = run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr and "not recorded" in result.stderr
    assert 'hookrun_last_run_status{event="backup",status="success"} 1' in metrics.read_text()


def dead_run_dir(tree, run_id=None, journal=""):
    """The run directory of a dead exclusive run of event backup (its meta's run id
    ``run_id``, its journal ``journal``); returns its path."""
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0  # the state dir
    dead = tree.state / "runs" / "20000101T000000-dead01"
    dead.mkdir(mode=0o700)
    (dead / "meta.json").write_text(json.dumps({
        "run_id": dead.name if run_id is None else run_id, "event": "backup",
        "exclusive": True, "recorded": False,
        "pid": 2 ** 22 + 1}))  # above any pid_max: no such process
    (dead / "cleanup").write_text(journal)
    return dead


def held_dead_run(tree):
    """A dead run's directory whose owner lock another process holds (as a recovery
    would); returns the open file that holds it."""
    import fcntl

    lock = open(dead_run_dir(tree) / "owner.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def test_a_dead_runs_meta_whose_run_id_is_not_a_string_is_recovered_by_its_directory_name(
        tree):
    done = tree.marks / "undone"
    dead = dead_run_dir(tree, run_id=5, journal=f"touch {done}\n")
    result = run_hookrun("recover", *tree.args())
    assert result.returncode == 0, result.stderr
    assert done.exists() and f"recovering run {dead.name}" in result.stderr, result.stderr


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_dead_exclusive_runs_unusable_owner_lock_refuses_no_later_run(tree, kind):
    """A lock file no run can hold (a FIFO, a directory) is not a recovery going on: the
    next run does not give way to it (75) for ever, and sets the directory aside."""
    dead = dead_run_dir(tree, journal=f"touch {tree.marks / 'undone'}\n")
    {"fifo": lambda path: os.mkfifo(path, 0o600), "directory": os.mkdir}[kind](
        dead / "owner.lock")
    result = run_hookrun("run", *tree.args(), "--", "true", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stderr and not dead.exists()
    assert (dead.parent / f".damaged-{dead.name}").is_dir()
    assert not (tree.marks / "undone").exists()
    assert run_hookrun("run", *tree.args(), "--", "true", timeout=60).returncode == 0


@pytest.mark.parametrize("fault, code", [("state", 73), ("internal", 70)])
def test_a_fault_in_the_middle_of_a_run_fails_it_and_still_records_and_winds_down(
        tree, hookrun_main, monkeypatch, tmp_path, fault, code):
    """A step that raises (a user= hook whose files the state directory refuses, an internal
    fault) fails the run: finally.d is told so, the record, the metrics and the exit status
    say so; nothing is left `running` nor green."""
    from orchestrator.engine import Engine
    from orchestrator.errors import StateError

    real = Engine.run_hook

    def run_hook(engine, hook, index, count):
        if hook.entry.name == "20-fault":
            raise StateError("pre/20-fault: cannot prepare its files") if fault == "state" \
                else TypeError("a bug")
        return real(engine, hook, index, count)

    monkeypatch.setattr(Engine, "run_hook", run_hook)
    metrics = tmp_path / "hookrun.prom"
    tree.hook("pre-backup.d/10-defer", f'hookrun defer touch "{tree.marks}/cleaned"')
    tree.hook("pre-backup.d/20-fault", "true")
    tree.hook("finally.d/10-last", f'echo "$HOOKRUN_STATUS $HOOKRUN_ERROR" > "{tree.marks}/told"')
    status, out, err = hookrun_main("run", *tree.args("--json", "--metrics-file",
                                                      str(metrics)), "--", "true")
    assert status == code, err
    assert tree.read("cleaned") == ""
    told = tree.read("told")
    assert told.startswith("failure ") and ("cannot prepare" in told or "TypeError" in told)
    record = json.loads(out.splitlines()[-1])
    assert (record["status"], record["exit_code"]) == ("failure", code)
    assert 'hookrun_last_run_status{event="backup",status="failure"} 1' in metrics.read_text()
    monkeypatch.undo()
    assert show_last(tree)["status"] == "failure"


def test_what_follows_a_stop_follows_a_fault_too(tree, hookrun_main, monkeypatch):
    """A fault in pre- is a stop: the command is a skipped task, post- hooks run as after a
    stop (when=always ones do), and on-error.d runs: the admin's alert is not lost."""
    from orchestrator.engine import Engine
    from orchestrator.errors import StateError

    real = Engine.run_hook

    def run_hook(engine, hook, index, count):
        if hook.entry.name == "20-fault":
            raise StateError("pre/20-fault: cannot prepare its files")
        return real(engine, hook, index, count)

    monkeypatch.setattr(Engine, "run_hook", run_hook)
    tree.hook("pre-backup.d/20-fault", "true")
    tree.hook("post-backup.d/10-always", "# hookrun: when=always\n"
              f'touch "{tree.marks}/always"')
    tree.hook("on-error.d/10-alert", f'echo "$HOOKRUN_ERROR" > "{tree.marks}/alert"')
    status, out, err = hookrun_main("run", *tree.args("--json"), "--", "true")
    assert status == 73, err
    record = json.loads(out.splitlines()[-1])
    assert (record["status"], record["exit_code"]) == ("failure", 73)
    assert tree.read("always") == "" and "cannot prepare" in tree.read("alert")
    assert [(t["phase"], t["status"]) for t in record["tasks"] if t["phase"] == "command"] == \
        [("command", "skipped")]


def test_a_dead_runs_owner_lock_that_is_a_link_sets_its_directory_aside_with_a_warning(tree):
    """A link where owner.lock belongs is no lock a live run can hold (O_NOFOLLOW refuses
    it, ELOOP): the directory is damaged and set aside with a warning, not passed over in
    silence on every run while its cleanups never run."""
    dead = dead_run_dir(tree, journal=f"touch {tree.marks / 'undone'}\n")
    target = tree.base / "elsewhere.lock"
    target.touch()
    (dead / "owner.lock").symlink_to(target)
    result = run_hookrun("recover", *tree.args())
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stderr, result.stderr
    assert not dead.exists() and (dead.parent / f".damaged-{dead.name}").is_dir()


def test_an_owner_lock_that_fails_to_open_sets_nothing_aside_and_a_gone_one_is_no_damage(
        tree, monkeypatch):
    """Only a lock file that is not a regular file of hookrun's proves no live run holds it:
    an I/O error opening it, or its directory closed by its run meanwhile, proves nothing,
    and no run directory is set aside (nor its run's cleanups left undone) for that."""
    import errno

    from orchestrator.state import cleanup, statedir

    dead = dead_run_dir(tree, journal=f"touch {tree.marks / 'undone'}\n")

    def failing(_path):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cleanup, "try_lock", failing)
    assert cleanup.dead_runs(str(tree.state)) == ([], [])
    assert dead.is_dir() and not list(dead.parent.glob(".damaged-*"))
    monkeypatch.undo()
    assert statedir.try_lock(str(tree.state / "runs" / "gone-meanwhile" / "owner.lock")) is None
    # Once it can be looked at, it is the dead run it is, and recovered.
    result = run_hookrun("run", *tree.args(), "--", "true", timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tree.marks / "undone").exists() and not dead.exists()


def test_a_run_whose_end_was_never_written_is_not_running_for_ever(tree):
    """A run's row says running, but its directory is gone: it ended without its end written
    (the disk was full then). The next run marks it interrupted, once, with a warning; the
    rows of runs that have their directory (the next run's own) are left alone."""
    import sqlite3

    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    with sqlite3.connect(tree.state / "history.sqlite3") as db:
        db.execute("INSERT INTO runs (id, event, status, started) VALUES (?, ?, ?, ?)",
                   ("20261201T000000-abcdef", "backup", "running", "2026-12-01T00:00:00Z"))
    db.close()
    for time_ in range(2):
        result = run_hookrun("run", *tree.args(), "--", "true")
        assert result.returncode == 0, result.stderr
        assert ("ended without its end written" in result.stderr) == (time_ == 0)
        assert show_last(tree)["status"] == "success"
    record = json.loads(run_hookrun("show", "20261201T000000-abcdef", "--json",
                                    *tree.args()).stdout)
    assert record["status"] == "interrupted"
    shown = run_hookrun("history", "--status", "running", "--json", *tree.args())
    assert json.loads(shown.stdout) == []


def test_a_run_set_aside_whose_end_was_never_written_is_not_running_for_ever(tree):
    """A run kept aside as .damaged-ID (its journal damaged) whose end could not be written
    either: nothing recovers a directory set aside, so its row is marked too; a row that
    says its run ended is never touched, nor warned of."""
    import sqlite3

    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    finished = show_last(tree)["id"]
    aside = "20261201T000000-abcdef"
    (tree.state / "runs" / f".damaged-{aside}").mkdir(mode=0o700)
    with sqlite3.connect(tree.state / "history.sqlite3") as db:
        db.execute("INSERT INTO runs (id, event, status, started) VALUES (?, ?, ?, ?)",
                   (aside, "backup", "running", "2026-12-01T00:00:00Z"))
    db.close()
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("ended without its end written") == 1
    shown = json.loads(run_hookrun("show", aside, "--json", *tree.args()).stdout)
    assert shown["status"] == "interrupted"
    from orchestrator.state.history import History

    history = History(str(tree.state / "history.sqlite3"))
    assert history.add_recovered(finished, None, (), create=False) is False
    history.close()
    shown = json.loads(run_hookrun("show", finished, "--json", *tree.args()).stdout)
    assert shown["status"] == "success"


def test_the_processes_a_dead_run_set_aside_as_damaged_left_are_ended(tree, reaper):
    """Its cleanups cannot be read, but it died: what it left running is ended first, as
    for any dead run (design.md 8), not left running while the history says it is over."""
    from tests.integration.test_process_control import alive, crash_while_running

    tree.hook("pre-backup.d/10-a", f'echo $$ > "{tree.marks}/up"; exec sleep 60')
    dead_id = crash_while_running(tree, reaper, "10-a")
    leftover = reaper[-1]
    make_dir(tree.state / "runs" / dead_id / "meta.json")
    result = run_hookrun("recover", *tree.args("--kill-grace", "1s"))
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stderr and "ended" in result.stderr, result.stderr
    deadline = time.monotonic() + 10
    while alive(leftover) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(leftover)


@pytest.mark.parametrize("history", ["sound", "damaged"])
@pytest.mark.parametrize("command", ["run", "recover"])
def test_a_damaged_dead_runs_history_row_becomes_interrupted_once(tree, reaper, command,
                                                                  history):
    """A crashed run whose directory is set aside as damaged is no longer ``running`` in the
    history, and the next run is told it was interrupted; a damaged history stops neither."""
    import signal

    from tests.integration.test_process_control import crash_while_running

    tree.hook("pre-backup.d/10-a", f"""
        if [ ! -e "{tree.marks}/up" ]; then echo $$ > "{tree.marks}/up"; exec sleep 60; fi
        echo "$HOOKRUN_PREVIOUS_STATUS" > "{tree.marks}/previous"
        """)
    dead_id = crash_while_running(tree, reaper, "10-a")
    # Its hook would hold the run directory's lock: it is gone too, as after a power loss.
    os.kill(reaper[-1], signal.SIGKILL)
    make_dir(tree.state / "runs" / dead_id / "meta.json")
    if history == "damaged":  # the dead run's row is lost with it: nothing else is
        (tree.state / "history.sqlite3").write_bytes(os.urandom(20000))
        for companion in ("-wal", "-shm"):
            (tree.state / f"history.sqlite3{companion}").unlink(missing_ok=True)
    for time_ in range(2):  # the second finds nothing to do
        result = run_hookrun(*command_argv(tree, command))
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert ("damaged" in result.stderr) == (time_ == 0)
        if command == "run":  # the run that finds it warns, and keeps its own status
            assert recorded(tree, result)["status"] == "success"
        assert (tree.state / "runs" / f".damaged-{dead_id}").is_dir()
        shown = run_hookrun("history", "--status", "running", "--json", *tree.args())
        assert shown.returncode == 0 and json.loads(shown.stdout) == [], shown.stdout
        if history == "sound":
            record = json.loads(run_hookrun("show", dead_id, "--json", *tree.args()).stdout)
            assert record["status"] == "interrupted"
            assert [(t["phase"], t["name"], t["status"]) for t in record["tasks"]] == [
                ("pre", "10-a", "failed")]
            if command == "run" and time_ == 0:
                assert tree.read("previous") == "interrupted\n"
