#!/usr/bin/env python3
"""Soak test of hookrun's promise that registered cleanups run exactly once (design.md 3), and
that no fault bricks it or runs a cleanup twice (design.md 8, "Never bricked, never twice").

Nine scenarios, each iteration in a fresh temporary hooks tree with its own state directory
(the rounds of the events scenario share one):

* SIGKILL: kill ``hookrun run`` at a random moment, let the orphaned hook finish (or kill it),
  run ``hookrun recover``; a registered cleanup must have run exactly once.
* SIGTERM: send SIGTERM at a random moment and wait (bounded) for hookrun to wind down; the
  cleanup must have run exactly once, the exit status must be 143 (or 0 if the run had already
  ended), and no process of the run may survive.
* concurrent: N runs of the same event and state directory started at once; exactly one runs
  its command, the others exit 75.
* events: N runs of N different events in one state directory started at once, all writing one
  metrics file, each registering a cleanup, for R rounds: all exit 0 (none 73), each cleanup
  runs once, and the metrics file keeps every event's series.
* disk-full (root): the state directory is on a tmpfs of a few MiB that a hook or this script
  fills at a random moment, sometimes from the start; sometimes hookrun is SIGKILLed after it,
  the space freed and ``hookrun recover`` run. Every registered cleanup runs exactly once,
  finally.d runs unless hookrun was killed, the exit status is the run's own (0), 137 when
  killed, or 73 when the disk was full before the first hook; no traceback, and a later
  ``hookrun run`` exits 0.
* I/O faults (fiu-run): libfiu fails hookrun's own writes, opens, syncs, truncations and
  renames with ENOSPC or EIO at random (each iteration its own failure points, probabilities
  and seed; hooks and cleanups see no faults). No traceback, a documented exit status, no
  cleanup run twice, each run exactly once when the run got to its wind-down, and once the
  faults stop, ``hookrun recover`` and a later run exit 0.
* read faults (fiu-run): a run is SIGKILLed once its pre- hooks registered their cleanups;
  then ``hookrun run``, ``run --no-hooks``, ``recover`` or ``phase`` runs while libfiu fails
  its reads of meta.json, of cleanup journals or of the history (SQLite's preads) with EIO, at
  random. It must exit 0 with no traceback (finally.d run, for ``run``), no cleanup may run
  twice, and once the faults stop, ``hookrun recover`` and a later run exit 0 and every
  registered cleanup has run exactly once, but for those of a run directory set aside as
  damaged.

Every iteration's history is also read for a false green (design.md 10): no run may record
``success`` while one of its tasks failed or timed out.

* slow endpoints: a local server on 127.0.0.1 trickles its answers to the notification
  pings and the Pushgateway push one byte every 0.5-3 s (all of them, or one at random):
  each run still ends within the total deadline of its requests plus slack, with its own
  exit status and a warning per trickled request, and its cleanup runs exactly once.
* FIFOs at output paths: a FIFO at the metrics file, the log file or both, with or without
  a reader at its other end: the run ends within WAIT_LIMIT with its own exit status and a
  warning, the FIFO stays a FIFO and gets nothing, and the cleanup runs exactly once.

Cleanups are counted by id in marker files outside the state directory; the hooks note each
registration with the exit status of its ``hookrun defer``. Not collected by pytest. Run
``python tests/soak/cleanup_soak.py --help`` for the options, ``--quick`` for a short run of
every mode. Exit status 0 when every target is met, 1 otherwise.
"""

import argparse
import collections
import contextlib
import ctypes
import errno
import glob
import math
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil

PR_SET_CHILD_SUBREAPER = 36
TAG_VAR = "HOOKRUN_SOAK_TAG"
EXIT_LOCKED = 75
EXIT_SIGTERM = 128 + signal.SIGTERM
WAIT_LIMIT = 60.0
ORPHAN_GRACE = 3.0
COMMAND_SECONDS = 0.3
RUN_ENDED_OK = " end status=success exit=0"  # the log line of a run that recorded its end
DOCUMENTED_EXITS = (0, 69, 73, 75, 77, 78)  # of hookrun run, besides the command's and 128+N
EXIT_CANT_CREATE = 73
EXIT_SIGKILL = 128 + signal.SIGKILL
CLEANED = "cleaned"  # in the iteration's root, hookrun's working directory
# A deferred cleanup's line holds no slash and runs in the iteration's root: a torn journal
# line glued to the next one can only write there.
CLEANUP_SCRIPT = 'sleep {sleep:.2f}; echo "$0" >> ' + CLEANED
MAX_PAD = 1500  # bytes of padding per cleanup line, so that journals cross page boundaries
FILL_BLOCK = 65536
MiB = 1 << 20
DISK_SIZES = (2 * MiB, 4 * MiB)
# Where a disk-full iteration's fill comes from: a hook of a phase, a cleanup, pre- filling
# and freeing the disk again (a dump moved away), or only the soak ("outside").
FILL_PLACES = ("pre", "post", "on-success", "cleanup", "finally", "pre-then-freed", "outside")
OUTSIDE_FILLER = "filler-outside"
HOOK_FILLER = "filler-hook"
FIU_PRELOAD = "/usr/lib/fiu/fiu_posix_preload.so"
# libfiu's failure points for hookrun's own file operations (posix_fallocate has none); each
# injects the errno it is given. write/reduce makes write() short instead.
FAULT_POINTS = ("posix/io/rw/write", "posix/io/rw/pwrite", "posix/io/rw/writev",
                "posix/io/oc/open", "posix/io/sync/fsync", "posix/io/sync/fdatasync",
                "posix/io/rw/ftruncate", "posix/io/dir/rename")
SHORT_WRITES = "posix/io/rw/write/reduce"
FAULT_ERRNOS = (errno.ENOSPC, errno.EIO)
MIN_FAULT_PROBABILITY = 0.002


def default_hookrun():
    """The installed ``hookrun`` next to this interpreter (not a pyenv shim, whose bash
    start-up would blur the timings), else the one on PATH, else ``python -m orchestrator``."""
    beside = os.path.join(os.path.dirname(sys.executable), "hookrun")
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which("hookrun")
    return [found] if found else [sys.executable, "-m", "orchestrator"]


def become_subreaper():
    """Adopt the hooks a killed hookrun leaves behind, so they can be reaped here instead of
    piling up as zombies under a PID 1 that may not reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class Reaper:
    """Reaps adopted orphans without ever stealing the status of a hookrun we started."""

    def __init__(self):
        self.lock = threading.Lock()
        self.managed = set()

    def popen(self, *args, **kwargs):
        with self.lock:
            proc = subprocess.Popen(*args, **kwargs)
            self.managed.add(proc.pid)
        return proc

    def done(self, proc):
        with self.lock:
            self.managed.discard(proc.pid)

    def reap(self):
        with self.lock:
            try:
                children = psutil.Process().children()
            except psutil.Error:
                return
            for child in children:
                if child.pid in self.managed:
                    continue
                try:
                    if child.status() != psutil.STATUS_ZOMBIE:
                        continue
                    os.waitpid(child.pid, os.WNOHANG)
                except (psutil.Error, ChildProcessError):
                    pass


REAPER = Reaper()


def write_file(path, text, mode=0o755):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def make_dir(path):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)


def sleep_hook(seconds):
    return f"#!/bin/sh\nsleep {seconds:.3f}\n"


@dataclass
class Tree:
    """One iteration's files: hooks tree, state dir, log, and the markers hooks write."""

    root: str
    hooks: str = ""
    state: str = ""
    log: str = ""
    marker: str = ""
    registered: str = ""
    defer_stderr: str = ""
    started: str = ""
    finally_ran: str = ""
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.hooks = os.path.join(self.root, "hooks")
        self.state = os.path.join(self.root, "state")
        self.log = os.path.join(self.root, "hookrun.log")
        self.marker = os.path.join(self.root, "cleanup-ran")
        self.registered = os.path.join(self.root, "cleanup-registered")
        self.defer_stderr = os.path.join(self.root, "defer.stderr")
        self.started = os.path.join(self.root, "started")
        self.finally_ran = os.path.join(self.root, "finally-ran")
        self.env = dict(os.environ, **{TAG_VAR: self.root})
        self.env.pop("HOOKRUN_CLEANUP", None)

    def options(self):
        return ["-d", self.hooks, "--state-dir", self.state, "--log-file", self.log]


def build_cleanup_tree(root, hookrun, rng, cleanup_seconds=0.0):
    """pre-backup.d/10-register defers ``echo ran >> MARKER`` (after ``cleanup_seconds`` of
    sleep, to widen the window in which a signal lands during the cleanup) and notes it right
    after; the other hooks sleep random short times."""
    tree = Tree(root)
    make_dir(root)
    make_dir(tree.hooks)
    pre = os.path.join(tree.hooks, "pre-backup.d")
    post = os.path.join(tree.hooks, "post-backup.d")
    make_dir(pre)
    make_dir(post)
    cleanup = f"echo ran >> {shlex.quote(tree.marker)}"
    if cleanup_seconds:
        cleanup = f"sleep {cleanup_seconds:g}; {cleanup}"
    write_file(os.path.join(pre, "10-register"),
               "#!/bin/sh\n"
               f"{shlex.join(hookrun)} defer sh -c {shlex.quote(cleanup)} || exit 1\n"
               f"echo registered >> {shlex.quote(tree.registered)}\n"
               f"sleep {rng.uniform(0.0, 0.2):.3f}\n")
    write_file(os.path.join(pre, "20-sleep"), sleep_hook(rng.uniform(0.0, 0.15)))
    write_file(os.path.join(post, "10-sleep"), sleep_hook(rng.uniform(0.0, 0.15)))
    write_file(os.path.join(post, "20-sleep"), sleep_hook(rng.uniform(0.0, 0.15)))
    return tree


def count_lines(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except FileNotFoundError:
        return 0


def tagged_processes(root):
    """Live processes whose environment carries this iteration's tag (hooks, the command,
    cleanups, a ``hookrun defer``): all of them inherit hookrun's environment."""
    found = []
    wanted = f"{root}"
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid():
                continue
            if process.environ().get(TAG_VAR) == wanted and \
                    process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def settle_orphans(root, grace):
    """Let the processes the killed hookrun left behind end by themselves for up to ``grace``
    seconds, then SIGKILL the rest. Returns (left after grace, killed)."""
    deadline = time.monotonic() + grace
    left = tagged_processes(root)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        REAPER.reap()
        left = tagged_processes(root)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)
    REAPER.reap()
    return len(left)


def journal_has_cleanup(tree):
    for path in glob.glob(os.path.join(tree.state, "runs", "*", "cleanup")):
        if count_lines(path):
            return True
    return False


def pending_run_dirs(tree):
    return glob.glob(os.path.join(tree.state, "runs", "*"))


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def looks_broken(stderr_text):
    return "Traceback" in stderr_text or "internal error" in stderr_text


def wait_bounded(proc, limit):
    """The exit status of ``proc`` (shell-style), or None if it did not end within ``limit``."""
    try:
        code = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        return None
    return 128 - code if code < 0 else code


@dataclass
class Result:
    """One iteration: the cleanup's line count, whether it was registered, and any problem."""

    index: int
    delay: float
    lines: int
    registered: bool
    exit_code: object = None
    finished_first: bool = False
    killed_by_default_action: bool = False
    recorded_end_first: bool = False
    orphans: int = 0
    survivors: int = 0
    problems: list = field(default_factory=list)

    def where(self):
        return f"(signal at {self.delay * 1000:.0f} ms)"


def start_run(tree, hookrun, extra=(), command=("sleep", str(COMMAND_SECONDS)), env=None,
              cwd=None):
    """``hookrun run`` of ``tree`` in a session of its own, stderr kept in run.stderr."""
    with open(os.path.join(tree.root, "run.stderr"), "wb") as stderr:
        return REAPER.popen(hookrun + ["run"] + tree.options() + list(extra) + ["--"]
                            + list(command), env=env or tree.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                            cwd=cwd)


def kill_iteration(index, args, hookrun, seed):
    """SIGKILL hookrun at a random moment, let its orphans end, recover, count."""
    rng = random.Random(f"{seed}-kill-{index}")
    root = tempfile.mkdtemp(prefix=f"kill{index:03d}-", dir=args.workdir)
    tree = build_cleanup_tree(root, hookrun, rng, args.cleanup_seconds)
    delay = rng.uniform(0.0, args.max_delay)
    proc = start_run(tree, hookrun)
    time.sleep(delay)
    finished_first = proc.poll() is not None
    if not finished_first:
        proc.send_signal(signal.SIGKILL)
    code = wait_bounded(proc, WAIT_LIMIT)
    REAPER.done(proc)
    orphans = settle_orphans(root, args.orphan_grace)
    registered = os.path.exists(tree.registered) or journal_has_cleanup(tree)
    recover = subprocess.run(hookrun + ["recover"] + tree.options(), check=False, env=tree.env,
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT_LIMIT)
    REAPER.reap()
    lines = count_lines(tree.marker)
    result = Result(index, delay, lines, registered or lines > 0, code, finished_first,
                    orphans=orphans)
    if recover.returncode != 0:
        result.problems.append(f"recover exited {recover.returncode}: "
                               f"{recover.stderr.decode(errors='replace').strip()[:300]}")
    stderr = read_text(os.path.join(root, "run.stderr")) + recover.stderr.decode(errors="replace")
    if looks_broken(stderr):
        result.problems.append(f"traceback or internal error: {stderr.strip()[-300:]}")
    if pending_run_dirs(tree):
        result.problems.append(f"run directories left after recover: {pending_run_dirs(tree)}")
    survivors = settle_orphans(root, 0.5)
    if survivors:
        result.survivors = survivors
        result.problems.append(f"{survivors} process(es) of the run left after recover")
    finish_iteration(args, root, result)
    return result


def term_iteration(index, args, hookrun, seed):
    """SIGTERM hookrun at a random moment; it must wind down, run the cleanup once, exit 143
    (0 if it had finished) and leave no process behind."""
    rng = random.Random(f"{seed}-term-{index}")
    root = tempfile.mkdtemp(prefix=f"term{index:03d}-", dir=args.workdir)
    tree = build_cleanup_tree(root, hookrun, rng, args.cleanup_seconds)
    delay = rng.uniform(0.0, args.max_delay)
    proc = start_run(tree, hookrun, extra=["--kill-grace", args.kill_grace])
    time.sleep(delay)
    finished_first = proc.poll() is not None
    if not finished_first:
        proc.send_signal(signal.SIGTERM)
    code = wait_bounded(proc, WAIT_LIMIT)
    raw = proc.returncode
    result = Result(index, delay, 0, False, code, finished_first,
                    killed_by_default_action=raw is not None and raw < 0)
    if code is None:
        result.problems.append(f"hookrun still running {WAIT_LIMIT:.0f}s after SIGTERM (hang)")
        proc.kill()
        proc.wait()
    REAPER.done(proc)
    survivors = settle_orphans(root, 0.0)
    result.survivors = survivors
    if survivors:
        result.problems.append(f"{survivors} process(es) of the run survived hookrun's exit")
    lines = count_lines(tree.marker)
    log = read_text(tree.log)
    result.lines = lines
    result.registered = os.path.exists(tree.registered) or lines > 0 or "cleanup/" in log
    # A signal that comes after the run has recorded its end (log, history) cannot change
    # how it ended: exit 0 then agrees with the record.
    result.recorded_end_first = not finished_first and code == 0 and RUN_ENDED_OK in log
    expected = 0 if finished_first or result.recorded_end_first else EXIT_SIGTERM
    if code is not None and code != expected:
        result.problems.append(f"exit status {code}, expected {expected}")
    if pending_run_dirs(tree):
        result.problems.append("run directory left pending after a single SIGTERM")
    if looks_broken(read_text(os.path.join(root, "run.stderr"))):
        result.problems.append("traceback or internal error on stderr")
    finish_iteration(args, root, result)
    return result


def false_greens(state):
    """Lines naming each run in ``state``'s history that records ``success`` although one of
    its tasks failed or timed out (design.md 10: no false green). The soak's trees have no
    on-failure=ignore hook, the one setting that may leave a failed task in a success."""
    import sqlite3

    path = os.path.join(state, "history.sqlite3")
    if not os.path.exists(path):
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=10)) as db:
            rows = db.execute("SELECT runs.id, tasks.phase, tasks.name, tasks.status FROM runs "
                              "JOIN tasks ON tasks.run_id = runs.id WHERE runs.status = "
                              "'success' AND tasks.status IN ('failed', 'timeout')").fetchall()
    except sqlite3.Error:
        return []  # a damaged history is the faults' business, checked where they are
    return [f"false green: run {run} is 'success' but {phase}/{name} {status}"
            for run, phase, name, status in rows]


def finish_iteration(args, root, result):
    if result.registered and result.lines != 1:
        result.problems.append(f"cleanup ran {result.lines} times")
    result.problems += false_greens(os.path.join(root, "state"))
    if result.problems and args.keep:
        print(f"  kept {root} for inspection", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)


def concurrent_runs(args, hookrun):
    """``args.concurrent`` runs of one event and state dir at once: exactly one may run."""
    root = tempfile.mkdtemp(prefix="concurrent-", dir=args.workdir)
    tree = Tree(root)
    make_dir(tree.hooks)
    make_dir(os.path.join(tree.hooks, "pre-backup.d"))
    write_file(os.path.join(tree.hooks, "pre-backup.d", "10-noop"), "#!/bin/sh\nexit 0\n")
    command = ["sh", "-c", f"echo ran >> {shlex.quote(tree.marker)}; sleep {args.hold}"]
    procs = []
    for n in range(args.concurrent):
        with open(os.path.join(root, f"run{n}.stderr"), "wb") as stderr:
            procs.append(REAPER.popen(hookrun + ["run"] + tree.options() + ["--"] + command,
                                      env=tree.env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=stderr))
    codes = collections.Counter()
    for proc in procs:
        codes[wait_bounded(proc, WAIT_LIMIT + args.hold)] += 1
        REAPER.done(proc)
    ran = count_lines(tree.marker)
    refusals = [read_text(os.path.join(root, f"run{n}.stderr")) for n in range(len(procs))]
    named = sum("locked by another hookrun run (pid" in text for text in refusals)
    survivors = settle_orphans(root, 0.0)
    if not args.keep or (ran == 1 and codes[EXIT_LOCKED] == len(procs) - 1):
        shutil.rmtree(root, ignore_errors=True)
    return ran, codes, named, survivors


# Faults: the modes below count cleanups by id. Each hook that registers cleanups notes
# "ID STATUS" (the exit status of its ``hookrun defer``) in tree.registered; each cleanup
# appends its ID to CLEANED in the iteration's root.

def register_lines(tree, hookrun, label, count, rng, script=None):
    """Shell lines that defer ``count`` cleanups with ids ``RUN_ID-label-N``, each line padded
    to a random length, and note each registration with its ``hookrun defer`` status."""
    lines = []
    for n in range(1, count + 1):
        body = script or CLEANUP_SCRIPT.format(sleep=rng.uniform(0.0, 0.1))
        pad = "x" * rng.randrange(MAX_PAD)
        defer = (f'{shlex.join(hookrun)} defer sh -c {shlex.quote(body)} "$id" {pad} '
                 f'2>> {shlex.quote(tree.defer_stderr)}')
        lines += [f'id="$HOOKRUN_RUN_ID-{label}-{n}"', defer,
                  f'echo "$id $?" >> {shlex.quote(tree.registered)}']
    return lines


def hook(path, *lines, seconds=0.0):
    """An executable /bin/sh hook of ``lines`` that sleeps ``seconds`` and exits 0."""
    body = list(lines) + ([f"sleep {seconds:.3f}"] if seconds else []) + ["exit 0"]
    make_dir(os.path.dirname(path))
    write_file(path, "#!/bin/sh\n" + "\n".join(body) + "\n")


def fault_tree(root, state):
    """A Tree whose state directory is ``state`` (log and history in it, where they are by
    default) and whose cleanups append their ids to CLEANED."""
    tree = Tree(root)
    make_dir(root)
    make_dir(tree.hooks)
    tree.state = state
    tree.log = os.path.join(state, "hookrun.log")
    tree.marker = os.path.join(root, CLEANED)
    return tree


@dataclass
class Ledger:
    """The cleanups an iteration registered (id -> exit status of its ``hookrun defer``) and
    how often each ran."""

    statuses: dict
    ran: collections.Counter

    @classmethod
    def read(cls, tree):
        statuses = {}
        for line in read_text(tree.registered).splitlines():
            name, _, status = line.rpartition(" ")
            statuses[name] = int(status) if status.isdigit() else status
        return cls(statuses, collections.Counter(read_text(tree.marker).split()))

    def registered(self):
        return [name for name, status in self.statuses.items() if status == 0]

    def refused(self):
        return [name for name, status in self.statuses.items() if status != 0]

    def problems(self, exactly, excused=()):
        """What breaks "at most once" (or "exactly once" when ``exactly``, but for the
        ``excused``: cleanups of a run directory set aside as damaged)."""
        found = []
        for name in self.registered():
            if self.ran[name] > 1 or (exactly and not self.ran[name] and name not in excused):
                found.append(f"cleanup {name} ran {self.ran[name]} times")
        for name in self.refused():
            if self.ran[name]:
                found.append(f"cleanup {name} ran {self.ran[name]} time(s) although its "
                             f"hookrun defer exited {self.statuses[name]}")
        for name in set(self.ran) - set(self.statuses):
            found.append(f"an unknown cleanup {name!r} ran {self.ran[name]} time(s) "
                         "(a torn journal line glued to the next?)")
        return found

    def refusals(self):
        """The exit statuses of the ``hookrun defer`` calls that failed."""
        return [self.statuses[name] for name in self.refused()]

    def counts(self):
        """(exactly once, registered, ran 0 times, more than once, refused, refused but ran)."""
        registered = self.registered()
        refused = self.refused()
        return (sum(self.ran[name] == 1 for name in registered), len(registered),
                sum(self.ran[name] == 0 for name in registered),
                sum(self.ran[name] > 1 for name in registered), len(refused),
                sum(self.ran[name] > 0 for name in refused))


# Concurrent events: one state directory, one metrics file, N events at once.

def events_tree(root, hookrun, events, rng):
    tree = fault_tree(root, os.path.join(root, "state"))
    for event in events:
        hook(os.path.join(tree.hooks, f"pre-{event}.d", "10-register"),
             *register_lines(tree, hookrun, event, 1, rng), seconds=0.2)
    return tree


def metric_values(path, name):
    """{event: value} of the series ``name`` in the textfile at ``path``."""
    values = {}
    prefix = name + '{event="'
    for line in read_text(path).splitlines():
        if line.startswith(prefix):
            event, _, rest = line[len(prefix):].partition('"}')
            try:
                values[event] = float(rest.strip())
            except ValueError:
                pass
    return values


@dataclass
class EventsRound:
    """One round of the concurrent-events mode."""

    index: int
    codes: collections.Counter
    once: int = 0
    registered: int = 0
    lost_series: list = field(default_factory=list)
    broken: int = 0
    problems: list = field(default_factory=list)


def events_round(index, tree, metrics, events, hookrun):
    """All events at once; then each must have exited 0, run its cleanup once and left its
    series, written in this round, in the metrics file."""
    before = set(Ledger.read(tree).statuses)
    began = time.time()
    procs = []
    for event in events:
        with open(os.path.join(tree.root, f"{event}.stderr"), "wb") as stderr:
            procs.append(REAPER.popen(
                hookrun + ["run", "-q"] + tree.options() + ["-e", event, "--metrics-file",
                                                            metrics, "--", "true"],
                env=tree.env, cwd=tree.root, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr))
    result = EventsRound(index, collections.Counter())
    for event, proc in zip(events, procs):
        code = wait_bounded(proc, WAIT_LIMIT)
        REAPER.done(proc)
        result.codes[code] += 1
        text = read_text(os.path.join(tree.root, f"{event}.stderr"))
        if code != 0:
            result.problems.append(f"event {event} exited {code}: {text.strip()[-300:]}")
        if looks_broken(text):
            result.broken += 1
            result.problems.append(f"event {event}: traceback or internal error: {text[-500:]}")
    settle_orphans(tree.root, 0.0)
    ledger = Ledger.read(tree)
    new = [name for name in ledger.statuses if name not in before]
    result.registered = sum(ledger.statuses[name] == 0 for name in new)
    result.once = sum(ledger.statuses[name] == 0 and ledger.ran[name] == 1 for name in new)
    if len(new) != len(events) or result.once != len(events):
        result.problems.append(f"{result.once}/{len(events)} cleanups ran exactly once "
                               f"({len(new)} registrations noted)")
    result.problems += ledger.problems(exactly=True)
    stamps = metric_values(metrics, "hookrun_last_run_timestamp_seconds")
    exits = metric_values(metrics, "hookrun_last_run_exit_code")
    result.lost_series = [event for event in events
                          if stamps.get(event, 0) < began - 1 or exits.get(event) != 0]
    if result.lost_series:
        result.problems.append(f"metrics file lacks this round's series of "
                               f"{', '.join(result.lost_series)}")
    return result


def concurrent_events(args, hookrun):
    """``args.event_rounds`` rounds of ``args.events`` events at once in one state dir."""
    root = tempfile.mkdtemp(prefix="events-", dir=args.workdir)
    rng = random.Random(f"{args.seed}-events")
    events = [f"event{n:02d}" for n in range(args.events)]
    tree = events_tree(root, hookrun, events, rng)
    metrics = os.path.join(root, "hookrun.prom")
    rounds = []
    for index in range(args.event_rounds):
        result = events_round(index, tree, metrics, events, hookrun)
        for problem in result.problems:
            print(f"  events round {index}: {problem}", file=sys.stderr)
        rounds.append(result)
    if any(r.problems for r in rounds) and args.keep:
        print(f"  kept {root} for inspection", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return rounds


# Runs under faults (disk-full and I/O-fault modes): the common hooks, the outcome of an
# iteration, and the checks once the faults are gone.

def add_common_hooks(tree, hookrun, rng):
    """pre-backup.d/10-register notes the start and registers 1-3 cleanups; post- and
    on-success.d register 0-2 more; finally.d/90-mark notes that finally.d ran."""
    hooks = tree.hooks
    hook(os.path.join(hooks, "pre-backup.d", "10-register"),
         f"echo started >> {shlex.quote(tree.started)}",
         *register_lines(tree, hookrun, "pre", rng.randint(1, 3), rng),
         seconds=rng.uniform(0.0, 0.1))
    hook(os.path.join(hooks, "post-backup.d", "10-register"),
         *register_lines(tree, hookrun, "post", rng.randint(0, 2), rng),
         seconds=rng.uniform(0.0, 0.1))
    hook(os.path.join(hooks, "on-success.d", "10-register"),
         *register_lines(tree, hookrun, "success", rng.randint(0, 2), rng))
    hook(os.path.join(hooks, "finally.d", "90-mark"),
         f"echo ran >> {shlex.quote(tree.finally_ran)}")


def after_tree(tree, hookrun, rng):
    """A second hooks tree for the run after the faults: one cleanup, nothing else."""
    hooks = os.path.join(tree.root, "hooks-after")
    hook(os.path.join(hooks, "pre-backup.d", "10-register"),
         *register_lines(tree, hookrun, "after", 1, rng))
    return ["-d", hooks, "--state-dir", tree.state, "--log-file", tree.log]


@dataclass
class FaultResult:
    """One iteration of the disk-full or I/O-fault mode."""

    index: int
    plan: str
    fill: str = ""
    exit_code: object = None
    killed: bool = False
    refused_at_start: bool = False
    disk_was_full: bool = False
    finally_ran: bool = False
    wound_down: bool = False
    broken: bool = False
    internal_error: bool = False
    wakeup_reports: int = 0
    recover_code: object = None
    later_code: object = None
    damaged: int = 0
    ledger: object = None
    keep: bool = False
    problems: list = field(default_factory=list)

    def where(self):
        return f"({self.plan})"


def run_quietly(argv, env, cwd, limit=WAIT_LIMIT):
    """Run a hookrun command to its end: (exit status or None if it hung, stderr text)."""
    try:
        done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=limit, check=False)
    except subprocess.TimeoutExpired as expired:
        return None, (expired.stderr or b"").decode(errors="replace")
    REAPER.reap()
    code = done.returncode
    return (128 - code if code < 0 else code), done.stderr.decode(errors="replace")


# Python's own report (not an exception of hookrun's) when the write of its C signal handler
# to the signal wakeup pipe fails. A pipe never fails with EIO or ENOSPC: only an injected
# fault does that, so the I/O-fault mode counts these apart.
WAKEUP_FD_REPORT = re.compile(r"^Exception ignored when trying to write to the signal wakeup "
                              r"fd:\n.*?^\w+Error: [^\n]*\n?", re.DOTALL | re.MULTILINE)


def check_stderr(result, what, text):
    text, artifacts = WAKEUP_FD_REPORT.subn("", text)
    result.wakeup_reports += artifacts
    if looks_broken(text):
        result.broken = True
        result.internal_error |= "internal error" in text
        result.problems.append(f"traceback or internal error in {what}: {text.strip()[-1500:]}")


def recover_and_run_again(result, tree, hookrun, rng):
    """With the faults gone: ``hookrun recover`` and a further run must exit 0, and leave no
    run directory behind (one kept aside as damaged is counted)."""
    code, stderr = run_quietly(hookrun + ["recover"] + tree.options(), tree.env, tree.root)
    result.recover_code = code
    check_stderr(result, "hookrun recover", stderr)
    if code != 0:
        result.problems.append(f"hookrun recover exited {code}: {stderr.strip()[-500:]}")
    options = after_tree(tree, hookrun, rng)
    code, stderr = run_quietly(hookrun + ["run"] + options + ["--", "true"], tree.env,
                               tree.root)
    result.later_code = code
    check_stderr(result, "the later hookrun run", stderr)
    if code != 0:
        result.problems.append(f"the later hookrun run exited {code}: {stderr.strip()[-500:]}")
    if pending_run_dirs(tree):
        result.problems.append(f"run directories left: {pending_run_dirs(tree)}")
    result.damaged = len(glob.glob(os.path.join(tree.state, "runs", ".damaged-*")))


def finish_fault_iteration(args, root, result, tree, excused=()):
    """The last checks of an iteration: every registered cleanup ran exactly once by now
    (but for the ``excused``, which must not have run more than once)."""
    result.ledger = Ledger.read(tree)
    result.problems += [problem for problem in result.ledger.problems(exactly=True,
                                                                      excused=excused)
                        if problem not in result.problems]
    check_stderr(result, "a hook's hookrun defer", read_text(tree.defer_stderr))
    result.problems += false_greens(tree.state)
    if (result.problems or result.keep) and args.keep:
        print(f"  kept {root} for inspection", file=sys.stderr)
    elif not result.keep:
        shutil.rmtree(root, ignore_errors=True)


# Disk-full mode. Every filler is bounded and writes only into a tmpfs mounted here, on a
# directory created here; it is unmounted whatever happens.

class DiskError(Exception):
    """A tmpfs that could not be mounted."""


def mount_small_disk(parent, size):
    """A tmpfs of ``size`` bytes mounted on a new directory under ``parent``: its path."""
    mount = tempfile.mkdtemp(prefix="disk-", dir=parent)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           mount], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        os.rmdir(mount)
        raise DiskError(f"cannot mount a tmpfs (root only): {done.stderr.strip()}")
    return mount


def unmount(mount):
    """Unmount the tmpfs at ``mount`` (lazily if it stays busy) and remove its directory;
    False if it is still mounted."""
    for _attempt in range(10):
        if subprocess.run(["umount", mount], capture_output=True, check=False).returncode == 0:
            break
        time.sleep(0.2)
    else:
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    if os.path.ismount(mount):
        return False
    os.rmdir(mount)
    return True


def fill_from_outside(mount, limit):
    """Write zeros into MOUNT/filler-outside until the tmpfs is full or ``limit`` bytes are
    written; the number of bytes written."""
    if not os.path.ismount(mount):
        raise DiskError(f"{mount} is not mounted: not filling it")
    chunk = bytes(FILL_BLOCK)
    written = 0
    fd = os.open(os.path.join(mount, OUTSIDE_FILLER),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        while written < limit:
            try:
                count = os.write(fd, chunk[:limit - written])
            except OSError as error:
                if error.errno == errno.ENOSPC:
                    break
                raise
            if not count:
                break
            written += count
    finally:
        os.close(fd)
    return written


def filler_paths(mount, tree):
    return os.path.join(mount, OUTSIDE_FILLER), os.path.join(tree.state, HOOK_FILLER)


def filled_up(mount, tree, limit):
    """Whether a filler (the soak's, or the hooks' as root/filled noted it) stopped short of
    ``limit``: the disk was full then."""
    sizes = [read_text(os.path.join(tree.root, "filled")).strip()]
    outside = filler_paths(mount, tree)[0]
    if os.path.exists(outside):
        sizes.append(str(os.path.getsize(outside)))
    return any(size.isdigit() and int(size) < limit for size in sizes)


def free_space(mount, tree, hooks_filler=True):
    """Remove the soak's filler and (``hooks_filler``) the hooks' filler: only these two
    names, only on the tmpfs."""
    outside, hooks = filler_paths(mount, tree)
    for path in (outside, hooks) if hooks_filler else (outside,):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def fill_script(tree, mount, limit):
    """root/fill.sh: fills the tmpfs through $HOOKRUN_STATE_DIR, once per iteration, at most
    ``limit`` bytes, and only when the state directory is on that mounted tmpfs; notes the
    filler's size in root/filled. ``fill.sh free`` removes the filler again."""
    path = os.path.join(tree.root, "fill.sh")
    flag = shlex.quote(os.path.join(tree.root, "filled"))
    filler = f'"$HOOKRUN_STATE_DIR/{HOOK_FILLER}"'
    write_file(path, "#!/bin/sh\n"
               f"mountpoint -q {shlex.quote(mount)} || exit 0\n"
               f'case "$HOOKRUN_STATE_DIR" in {shlex.quote(mount)}/*) ;; *) exit 0 ;; esac\n'
               f'[ "$1" = free ] && {{ rm -f {filler}; exit 0; }}\n'
               f"[ -e {flag} ] && exit 0\n"
               f"dd if=/dev/zero of={filler} bs={FILL_BLOCK} count={limit // FILL_BLOCK} "
               "2>/dev/null\n"
               f"wc -c < {filler} > {flag}\n"
               "exit 0\n")
    return path


def build_disk_tree(root, mount, hookrun, rng, plan):
    """The common hooks, a hook printing up to 40% of the disk into the log, and the fill
    that ``plan`` places: a hook of that phase, or a cleanup (registered among pre-'s) that
    fills ("outside": none, only the soak fills)."""
    tree = fault_tree(root, os.path.join(mount, "state"))
    add_common_hooks(tree, hookrun, rng)
    fill = fill_script(tree, mount, plan.limit)
    hooks = tree.hooks
    line = "0123456789abcdef" * 6
    hook(os.path.join(hooks, "pre-backup.d", "30-print"),
         f"yes {line} | head -c {rng.randrange(int(plan.size * 0.4))}")
    fill_hook = {"pre": "pre-backup.d/20-fill", "post": "post-backup.d/20-fill",
                 "on-success": "on-success.d/20-fill", "finally": "finally.d/05-fill"}
    if plan.place in fill_hook:
        hook(os.path.join(hooks, fill_hook[plan.place]), f"sh {shlex.quote(fill)}",
             seconds=rng.uniform(0.0, 0.1))
    elif plan.place == "cleanup":
        body = f'sh fill.sh; {CLEANUP_SCRIPT.format(sleep=0.0)}'
        hook(os.path.join(hooks, "pre-backup.d", "15-register-filler"),
             *register_lines(tree, hookrun, "fill", 1, rng, script=body))
    elif plan.place == "pre-then-freed":
        hook(os.path.join(hooks, "pre-backup.d", "20-fill"), f"sh {shlex.quote(fill)}")
        hook(os.path.join(hooks, "pre-backup.d", "25-register-on-full"),
             *register_lines(tree, hookrun, "full", rng.randint(1, 3), rng))
        hook(os.path.join(hooks, "pre-backup.d", "28-free"), f"sh {shlex.quote(fill)} free")
    return tree


@dataclass
class DiskPlan:
    """What one disk-full iteration does: the tmpfs size, where the fill comes from (one of
    FILL_PLACES), whether the disk is full from the start, and when the soak fills it, frees
    its filler again (a full disk that someone else relieves) and SIGKILLs hookrun, in
    seconds after the start (None: not at all)."""

    size: int
    place: str
    from_start: bool
    fill_at: object
    free_at: object
    kill_at: object

    @classmethod
    def draw(cls, rng, args):
        from_start = rng.random() < 0.1
        place = rng.choice(FILL_PLACES)
        fill_at = free_at = kill_at = None
        if not from_start and (place == "outside" or rng.random() < 0.3):
            fill_at = rng.uniform(0.0, args.max_delay)
            if rng.random() < 0.3:
                free_at = fill_at + rng.uniform(0.05, 0.5)
        if rng.random() < args.disk_kill_share:
            kill_at = (fill_at or 0.0) + rng.uniform(0.05, args.max_delay)
        return cls(rng.choice(DISK_SIZES), place, from_start, fill_at, free_at, kill_at)

    @property
    def limit(self):
        """The most a filler writes: past the disk's size, and harmless anywhere else."""
        return self.size + MiB

    def describe(self):
        words = [f"{self.size // MiB} MiB",
                 "full from the start" if self.from_start else f"fill: {self.place}"]
        for what, moment in (("soak fills", self.fill_at), ("frees", self.free_at),
                             ("SIGKILL", self.kill_at)):
            if moment is not None:
                words.append(f"{what} at {moment:.2f}s")
        return ", ".join(words)


def sleep_until(moment):
    time.sleep(max(0.0, moment - time.monotonic()))


def disk_full_iteration(index, args, hookrun, seed):
    """One run whose state directory is on a small tmpfs that fills at a random moment."""
    rng = random.Random(f"{seed}-disk-{index}")
    plan = DiskPlan.draw(rng, args)
    root = tempfile.mkdtemp(prefix=f"disk{index:03d}-", dir=args.workdir)
    result = FaultResult(index, plan.describe(),
                         fill="from the start" if plan.from_start else plan.place)
    try:
        mount = mount_small_disk(root, plan.size)
    except DiskError as error:
        result.problems.append(str(error))
        shutil.rmtree(root, ignore_errors=True)
        return result
    try:
        tree = build_disk_tree(root, mount, hookrun, rng, plan)
        run_on_small_disk(result, tree, mount, hookrun, plan, args)
        result.disk_was_full |= filled_up(mount, tree, plan.limit)
        free_space(mount, tree)
        recover_and_run_again(result, tree, hookrun, rng)
    finally:
        settle_orphans(root, 0.0)
        if not unmount(mount):
            result.problems.append(f"{mount} could not be unmounted: left as it is")
            result.keep = True
    finish_fault_iteration(args, root, result, tree)
    return result


def run_on_small_disk(result, tree, mount, hookrun, plan, args):
    """Start the run, fill, free and kill as planned, and check what the run did."""
    if plan.from_start:
        result.disk_was_full |= fill_from_outside(mount, plan.limit) < plan.limit
    start = time.monotonic()
    proc = start_run(tree, hookrun, command=("true",), cwd=tree.root)
    steps = [(plan.fill_at, "fill"), (plan.free_at, "free"), (plan.kill_at, "kill")]
    for moment, step in sorted((moment, step) for moment, step in steps if moment is not None):
        sleep_until(start + moment)
        if step == "fill":
            result.disk_was_full |= fill_from_outside(mount, plan.limit) < plan.limit
        elif step == "free":
            free_space(mount, tree, hooks_filler=False)
        elif proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            result.killed = True
    code = wait_bounded(proc, WAIT_LIMIT)
    REAPER.done(proc)
    if code is None:
        result.problems.append(f"hookrun still running after {WAIT_LIMIT:.0f}s (hang)")
        proc.kill()
        proc.wait()
    result.exit_code = code
    if result.killed:
        settle_orphans(tree.root, args.orphan_grace)
    check_stderr(result, "hookrun run", read_text(os.path.join(tree.root, "run.stderr")))
    result.finally_ran = os.path.exists(tree.finally_ran)
    # A run that could not even make its run directory on the full disk refuses with 73
    # before any hook; once the first hook ran, only the run's own status will do.
    result.refused_at_start = code == EXIT_CANT_CREATE and not os.path.exists(tree.started)
    if result.killed:
        expected = EXIT_SIGKILL
    else:
        expected = EXIT_CANT_CREATE if result.refused_at_start else 0
    if code is not None and code != expected:
        result.problems.append(f"exit status {code}, expected {expected}")
    if not result.killed and not result.refused_at_start:
        if not result.finally_ran:
            result.problems.append("finally.d did not run")
        result.problems += Ledger.read(tree).problems(exactly=True)


# I/O-fault mode: libfiu's POSIX preload (fiu-run -x) in hookrun's processes, its failure
# points turned on by a sitecustomize module once Python has started.

SITECUSTOMIZE = '''\
"""Written by hookrun's tests/soak/cleanup_soak.py for its I/O-fault mode; found through
PYTHONPATH by the Python processes of hookrun (run, defer) started under ``fiu-run -x``.
Turns on the libfiu failure points of $HOOKRUN_SOAK_FAULTS ("NAME:PROBABILITY:ERRNO ...")
once the interpreter has started, and off while a module is imported: the faults are meant
for hookrun's own file operations, not for Python's start-up or its imports. libfiu's random
numbers start from $HOOKRUN_SOAK_FIU_SEED plus the process id, so that each ``hookrun defer``
of a run meets other faults."""

import builtins
import ctypes
import os
import threading


def install(spec):
    fiu = ctypes.CDLL(None)
    fiu.fiu_enable_random.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                                      ctypes.c_uint, ctypes.c_float)
    fiu.fiu_disable.argtypes = (ctypes.c_char_p,)
    fiu.fiu_set_prng_seed.argtypes = (ctypes.c_uint,)
    seed = int(os.environ.get("HOOKRUN_SOAK_FIU_SEED", "0"))
    fiu.fiu_set_prng_seed((seed + os.getpid()) & 0xFFFFFFFF)
    points = []
    for item in spec.split():
        name, probability, errno = item.split(":")
        points.append((name.encode(), float(probability), int(errno)))
    importing = [0]
    lock = threading.Lock()
    real_import = builtins.__import__

    def enable():
        for name, probability, errno in points:
            fiu.fiu_enable_random(name, 1, errno or None, 0, probability)

    def disable():
        for name, _probability, _errno in points:
            fiu.fiu_disable(name)

    def guarded_import(*args, **kwargs):
        with lock:
            importing[0] += 1
            if importing[0] == 1:
                disable()
        try:
            return real_import(*args, **kwargs)
        finally:
            with lock:
                importing[0] -= 1
                if importing[0] == 0:
                    enable()

    builtins.__import__ = guarded_import
    enable()


if os.environ.get("HOOKRUN_SOAK_FAULTS") and "fiu" in os.environ.get("LD_PRELOAD", ""):
    install(os.environ["HOOKRUN_SOAK_FAULTS"])
'''


def fiu_missing():
    """Why the I/O-fault mode cannot run here, or None."""
    if not shutil.which("fiu-run"):
        return "fiu-run not found (Debian: apt-get install fiu-utils)"
    if not os.path.exists(FIU_PRELOAD):
        return f"{FIU_PRELOAD} not found (Debian: apt-get install libfiu0)"
    return None


def make_fiu_site(workdir, site=None):
    """A directory (``site``, else a new one in ``workdir``) holding the sitecustomize module
    above."""
    site = site or tempfile.mkdtemp(prefix="fiu-site-", dir=workdir)
    os.makedirs(site, exist_ok=True)
    write_file(os.path.join(site, "sitecustomize.py"), SITECUSTOMIZE, mode=0o644)
    return site


def choose_faults(rng, max_probability):
    """Failure points for one iteration: each point with a chance of one half (one at least),
    a log-uniform probability up to ``max_probability``, ENOSPC or EIO; sometimes short
    writes too. As HOOKRUN_SOAK_FAULTS wants them."""
    names = [name for name in FAULT_POINTS if rng.random() < 0.5] or [rng.choice(FAULT_POINTS)]
    low, high = math.log(MIN_FAULT_PROBABILITY), math.log(max_probability)
    items = [f"{name}:{math.exp(rng.uniform(low, high)):.4f}:{rng.choice(FAULT_ERRNOS)}"
             for name in names]
    if rng.random() < 0.25:
        items.append(f"{SHORT_WRITES}:{math.exp(rng.uniform(low, high)):.4f}:0")
    return " ".join(items)


def io_fault_iteration(index, args, hookrun, seed):
    """One run under injected I/O faults, then recover and a further run without them."""
    rng = random.Random(f"{seed}-io-{index}")
    faults = choose_faults(rng, args.max_fault_probability)
    fiu_seed = rng.randrange(1, 1 << 31)
    command_status = rng.choice((0, 0, 0, 3))
    result = FaultResult(index, f"HOOKRUN_SOAK_FIU_SEED={fiu_seed} "
                                f"HOOKRUN_SOAK_FAULTS='{faults}', command exit {command_status}")
    root = tempfile.mkdtemp(prefix=f"io{index:03d}-", dir=args.workdir)
    tree = fault_tree(root, os.path.join(root, "state"))
    add_common_hooks(tree, hookrun, rng)
    hook(os.path.join(tree.hooks, "pre-backup.d", "20-hand-on"),
         'echo SOAK_HANDED=on >> "$HOOKRUN_ENV"', 'yes output line | head -n 200')
    pythonpath = os.pathsep.join(filter(None, [args.fiu_site, os.environ.get("PYTHONPATH")]))
    env = dict(tree.env, PYTHONPATH=pythonpath, HOOKRUN_SOAK_FAULTS=faults,
               HOOKRUN_SOAK_FIU_SEED=str(fiu_seed))
    metrics = ["--metrics-file", os.path.join(tree.state, "hookrun.prom")]
    argv = ["fiu-run", "-x", "-f", ""] + hookrun + ["run"] + tree.options() + metrics + [
        "--", "sh", "-c", f"exit {command_status}"]
    code, stderr = run_quietly(argv, env, root)
    write_file(os.path.join(root, "run.stderr"), stderr, mode=0o644)
    settle_orphans(root, 0.0)
    result.exit_code = code
    check_stderr(result, "hookrun run", stderr)
    allowed = DOCUMENTED_EXITS + (command_status,)
    if code is None:
        result.problems.append(f"hookrun still running after {WAIT_LIMIT:.0f}s (hang)")
    elif code not in allowed and not 128 < code < 128 + 65:
        result.problems.append(f"undocumented exit status {code}: {stderr.strip()[-1500:]}")
    result.finally_ran = os.path.exists(tree.finally_ran)
    result.wound_down = code == 0 or result.finally_ran
    result.problems += Ledger.read(tree).problems(exactly=result.wound_down)
    recover_and_run_again(result, tree, hookrun, rng)
    finish_fault_iteration(args, root, result, tree)
    return result


# Read-fault mode: EIO on hookrun's reads of the files it keeps its state in, injected by
# libfiu into the read itself (fiu-run -x; the failure point is turned on for one read of a
# file of that name, by a sitecustomize module of the hookrun process alone).

READ_SITECUSTOMIZE = '''\
"""Written by hookrun's tests/soak/cleanup_soak.py for its read-fault mode (and by
tests/integration/test_state_faults.py, which reads it from there); found through
PYTHONPATH by the hookrun started under ``fiu-run -x``. Its reads (os.read) of a file
named in $HOOKRUN_TEST_READ_FAULTS fail with EIO, each with the probability
$HOOKRUN_TEST_READ_PROBABILITY; "sqlite" fails SQLite's preads of the history likewise. The
variables are taken out of the environment: hooks and ``hookrun defer`` see no faults."""

import ctypes
import errno
import os
import random

names = os.environ.pop("HOOKRUN_TEST_READ_FAULTS", "").split()
probability = float(os.environ.pop("HOOKRUN_TEST_READ_PROBABILITY", "1"))
seed = int(os.environ.pop("HOOKRUN_TEST_READ_SEED", "0"))
if names and "fiu" in os.environ.get("LD_PRELOAD", ""):
    fiu = ctypes.CDLL(None)
    fiu.fiu_enable.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint)
    fiu.fiu_enable_random.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
                                      ctypes.c_uint, ctypes.c_float)
    fiu.fiu_disable.argtypes = (ctypes.c_char_p,)
    fiu.fiu_set_prng_seed.argtypes = (ctypes.c_uint,)
    fiu.fiu_set_prng_seed(seed & 0xFFFFFFFF)
    draw = random.Random(seed)
    if "sqlite" in names:
        # Only SQLite uses pread in a run's own process (the read of a busy lock's pid aside).
        fiu.fiu_enable_random(b"posix/io/rw/pread", 1, errno.EIO, 0, probability)

    real_read = os.read

    def read(fd, size):
        try:
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            name = ""
        if name not in names or draw.random() >= probability:
            return real_read(fd, size)
        fiu.fiu_enable(b"posix/io/rw/read", 1, errno.EIO, 0)
        try:
            return real_read(fd, size)
        finally:
            fiu.fiu_disable(b"posix/io/rw/read")

    os.read = read
'''
READ_FAULT_TARGETS = ("meta.json", "cleanup", "sqlite")
READ_FAULT_COMMANDS = {"run": ["run"], "no-hooks": ["run", "--no-hooks"], "recover": ["recover"],
                       "phase": ["phase", "pre-backup"]}


def crash_a_run(tree, hookrun):
    """A run SIGKILLed once its pre- hooks have registered their cleanups (pre-backup.d/90-up
    says so), its leftover processes ended: a dead run directory with cleanups pending."""
    up = os.path.join(tree.root, "up")
    hook(os.path.join(tree.hooks, "pre-backup.d", "90-up"),
         f"[ -e {shlex.quote(up)} ] || echo up > {shlex.quote(up)}")
    proc = start_run(tree, hookrun, command=("sleep", "30"))
    deadline = time.monotonic() + WAIT_LIMIT
    while not os.path.exists(up) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    REAPER.done(proc)
    settle_orphans(tree.root, 0.0)


def set_aside_ids(tree):
    """The ids of the cleanups in the journals of run directories set aside as damaged."""
    found = set()
    for path in glob.glob(os.path.join(tree.state, "runs", ".damaged-*", "cleanup")):
        found.update(re.findall(r"\S+-(?:pre|post|success)-\d+", read_text(path)))
    return found


def read_fault_iteration(index, args, hookrun, seed):
    """A crashed run, then one command under read faults, then recover and a further run
    without them."""
    rng = random.Random(f"{seed}-read-{index}")
    targets = [name for name in READ_FAULT_TARGETS if rng.random() < 0.5] or \
        [rng.choice(READ_FAULT_TARGETS)]
    probability = rng.choice((1.0, round(rng.uniform(0.2, 0.9), 2)))
    command = rng.choice(sorted(READ_FAULT_COMMANDS))
    read_seed = rng.randrange(1, 1 << 31)
    result = FaultResult(index, f"hookrun {command}, HOOKRUN_TEST_READ_FAULTS="
                                f"'{' '.join(targets)}' HOOKRUN_TEST_READ_PROBABILITY="
                                f"{probability} HOOKRUN_TEST_READ_SEED={read_seed}")
    root = tempfile.mkdtemp(prefix=f"read{index:03d}-", dir=args.workdir)
    tree = fault_tree(root, os.path.join(root, "state"))
    add_common_hooks(tree, hookrun, rng)
    crash_a_run(tree, hookrun)
    pythonpath = os.pathsep.join(filter(None, [args.read_site, os.environ.get("PYTHONPATH")]))
    env = dict(tree.env, PYTHONPATH=pythonpath, HOOKRUN_TEST_READ_FAULTS=" ".join(targets),
               HOOKRUN_TEST_READ_PROBABILITY=str(probability),
               HOOKRUN_TEST_READ_SEED=str(read_seed))
    argv = ["fiu-run", "-x", "-f", ""] + hookrun + READ_FAULT_COMMANDS[command] + \
        tree.options() + (["--", "true"] if command in ("run", "no-hooks") else [])
    if os.path.exists(tree.finally_ran):
        os.unlink(tree.finally_ran)
    code, stderr = run_quietly(argv, env, root)
    write_file(os.path.join(root, "run.stderr"), stderr, mode=0o644)
    settle_orphans(root, 0.0)
    result.exit_code = code
    check_stderr(result, f"hookrun {command}", stderr)
    if code is None:
        result.problems.append(f"hookrun {command} still running after {WAIT_LIMIT:.0f}s")
    elif code != 0:
        result.problems.append(f"exit status {code}, expected 0: {stderr.strip()[-1500:]}")
    result.finally_ran = os.path.exists(tree.finally_ran)
    result.wound_down = command == "run"
    if command == "run" and not result.finally_ran:
        result.problems.append("finally.d did not run")
    result.problems += Ledger.read(tree).problems(exactly=False)
    recover_and_run_again(result, tree, hookrun, rng)
    finish_fault_iteration(args, root, result, tree, excused=set_aside_ids(tree))
    return result


def summarise_reads(results, took):
    commands = counted(r.plan.split(",")[0] for r in results)
    details = (f"  read-faults: {len(results)} iterations ({commands}); finally.d ran in "
               f"{sum(r.finally_ran for r in results if r.wound_down)}/"
               f"{sum(r.wound_down for r in results)} runs; {common_fault_figures(results)}; "
               f"iterations with a problem: {sum(bool(r.problems) for r in results)}; "
               f"{took:.0f}s")
    ok = bool(results) and not any(r.problems for r in results)
    return ok, [ledger_line("read-faults", results)
                + " (cleanups of a run directory set aside as damaged may run 0 times)",
                details]
NOTIFY_TIMEOUT = 10.0  # hookrun's deadline for one whole request (constants.NOTIFY_TIMEOUT)
SLOW_REQUESTS = 3  # a run's requests: the /start ping, the Pushgateway push, the end ping
SLOW_SLACK = 20.0  # the run itself, and a loaded machine
TRICKLE_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"


class TrickleServer:
    """An HTTP server on 127.0.0.1 that answers each request whose path ends with one of
    ``slow`` one byte every ``every`` seconds (for at most ``limit`` s), the others at once."""

    def __init__(self, slow, every, limit=120.0):
        import socket

        self.slow, self.every, self.limit = tuple(slow), every, limit
        self.stopping = threading.Event()
        self.paths = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _address = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        with conn:
            try:
                conn.settimeout(30)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                # The path without its query: pings carry ?rid= (healthchecks' run id).
                path = data.split(b" ", 2)[1].decode("latin-1").partition("?")[0]
                self.paths.append(path)
                if not path.endswith(self.slow):
                    conn.sendall(TRICKLE_ANSWER)
                    return
                ends = time.monotonic() + self.limit
                for byte in TRICKLE_ANSWER:
                    if self.stopping.wait(self.every) or time.monotonic() > ends:
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                pass  # hookrun gave up on the request, as it should

    def stop(self):
        self.stopping.set()
        self.listener.close()


@dataclass
class DoorResult:
    """One iteration of a side-door mode: what was done, how the run ended, any problem."""

    index: int
    what: str
    exit_code: object = None
    expected_code: int = 0
    seconds: float = 0.0
    bound: float = 0.0
    warnings: int = 0
    expected_warnings: int = 0
    lines: int = 0
    problems: list = field(default_factory=list)

    def where(self):
        return f"({self.what})"


def door_run(result, tree, hookrun, extra, limit):
    """Run ``tree`` with ``extra`` options and a command exiting ``result.expected_code``;
    check the exit status, the time taken, tracebacks and the cleanup."""
    command = ["sh", "-c", f"exit {result.expected_code}"]
    began = time.monotonic()
    code, stderr = run_quietly(hookrun + ["run"] + tree.options() + list(extra) + ["--"]
                               + command, tree.env, tree.root, limit=limit)
    result.seconds = time.monotonic() - began
    result.exit_code = code
    result.lines = count_lines(tree.marker)
    if code is None:
        result.problems.append(f"hung: still running after {limit:g}s")
    elif code != result.expected_code:
        result.problems.append(f"exit status {code}, not the command's {result.expected_code}")
    if result.seconds > result.bound:
        result.problems.append(f"took {result.seconds:.1f}s, more than {result.bound:g}s")
    if looks_broken(stderr):
        result.problems.append(f"traceback or internal error: {stderr.strip()[-1500:]}")
    if result.lines != 1:
        result.problems.append(f"cleanup ran {result.lines} times")
    return stderr


def slow_endpoint_iteration(index, args, hookrun, seed):
    """A run whose notification pings and Pushgateway push are answered a byte at a time."""
    rng = random.Random(f"{seed}-slow-{index}")
    root = tempfile.mkdtemp(prefix=f"slow{index:03d}-", dir=args.workdir)
    tree = build_cleanup_tree(root, hookrun, rng)
    # Path endings answered slowly, and how many of the run's requests that makes: the end
    # ping is /ping/abc/fail or /ping/abc, as the run ends.
    slow, trickled = rng.choice([(("/start",), 1), (("/fail", "/abc"), 1),
                                 (("/event/backup",), 1),
                                 (("/start", "/fail", "/abc", "/event/backup"), SLOW_REQUESTS)])
    every = rng.uniform(0.5, 3.0)
    code = rng.choice([0, 3])
    result = DoorResult(index, f"trickled {'+'.join(slow)} every {every:.1f}s, exit {code}",
                        expected_code=code, expected_warnings=trickled)
    result.bound = result.expected_warnings * NOTIFY_TIMEOUT + SLOW_SLACK
    server = TrickleServer(slow, every)
    try:
        stderr = door_run(result, tree, hookrun, ["--notify-url", server.url + "/ping/abc",
                                                  "--metrics-push-url", server.url],
                          limit=SLOW_REQUESTS * NOTIFY_TIMEOUT + WAIT_LIMIT)
    finally:
        server.stop()
    result.warnings = sum("timed out" in line for line in stderr.splitlines())
    if result.exit_code is not None and result.warnings != result.expected_warnings:
        result.problems.append(f"{result.warnings} time-out warnings, not "
                               f"{result.expected_warnings}")
    finish_door(args, root, result)
    return result


def fifo_output_iteration(index, args, hookrun, seed):
    """A run with a FIFO at its metrics file, log file or both, read or not at the other end."""
    rng = random.Random(f"{seed}-fifo-{index}")
    root = tempfile.mkdtemp(prefix=f"fifo{index:03d}-", dir=args.workdir)
    tree = build_cleanup_tree(root, hookrun, rng)
    where = rng.choice(["metrics", "log", "both"])
    reader = rng.random() < 0.5
    code = rng.choice([0, 3])
    result = DoorResult(index, f"FIFO at {where}, {'a' if reader else 'no'} reader, exit {code}",
                        expected_code=code, bound=WAIT_LIMIT,
                        expected_warnings=2 if where == "both" else 1)
    metrics = os.path.join(root, "hookrun.prom")
    tree.log = os.path.join(root, "fifo.log") if where != "metrics" else tree.log
    fifos = [metrics] * (where != "log") + [tree.log] * (where != "metrics")
    for path in fifos:
        os.mkfifo(path)
    # A reader holds each FIFO open (O_RDWR never blocks) and counts what reaches it.
    readers = [os.open(path, os.O_RDWR | os.O_NONBLOCK) for path in fifos] if reader else []
    try:
        stderr = door_run(result, tree, hookrun, ["--metrics-file", metrics],
                          limit=WAIT_LIMIT)
        for fd in readers:
            try:
                if os.read(fd, 65536):
                    result.problems.append("hookrun wrote into a FIFO")
            except BlockingIOError:
                pass
    finally:
        for fd in readers:
            os.close(fd)
    result.warnings = sum("not a regular file" in line for line in stderr.splitlines())
    if result.exit_code is not None and result.warnings != result.expected_warnings:
        result.problems.append(f"{result.warnings} FIFO warnings, not "
                               f"{result.expected_warnings}")
    if not all(stat_is_fifo(path) for path in fifos):
        result.problems.append("a FIFO was replaced")
    finish_door(args, root, result)
    return result


def stat_is_fifo(path):
    import stat

    return stat.S_ISFIFO(os.lstat(path).st_mode)


def finish_door(args, root, result):
    if result.problems and args.keep:
        print(f"  kept {root} for inspection", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)


def summarise_doors(name, results, took):
    ok = bool(results) and not any(r.problems for r in results)
    slowest = max((r.seconds for r in results), default=0.0)
    line = (f"{name}: {sum(not r.problems for r in results)}/{len(results)} runs ended in "
            f"time with their own exit status, the expected warnings and the cleanup run "
            f"once; exit statuses {counted(r.exit_code for r in results)}; hangs "
            f"{sum(r.exit_code is None for r in results)}; slowest {slowest:.1f}s; "
            f"{took:.0f}s")
    return ok, [line]


def run_door_modes(args, hookrun):
    """The slow-endpoint and FIFO modes: (targets met, summary lines)."""
    ok = True
    lines = []
    for name, count, worker in (("slow-endpoints", args.slow_endpoints,
                                 slow_endpoint_iteration),
                                ("fifo-outputs", args.fifo_outputs, fifo_output_iteration)):
        if count:
            results, took = run_many(name, count, worker, args, hookrun)
            good, more = summarise_doors(name, results, took)
            ok &= good
            lines += more
    return ok, lines


def run_many(name, count, worker, args, hookrun):
    results = []
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(worker, n, args, hookrun, args.seed) for n in range(count)]
        for done, future in enumerate(futures, 1):
            result = future.result()
            results.append(result)
            for problem in result.problems:
                print(f"  {name} #{result.index} {result.where()}: {problem}", file=sys.stderr)
            if not args.quiet and done % 10 == 0:
                print(f"  {name}: {done}/{count} ({time.monotonic() - started:.0f}s)",
                      file=sys.stderr)
    return results, time.monotonic() - started


def summarise_cleanups(name, results):
    registered = [r for r in results if r.registered]
    once = sum(r.lines == 1 for r in registered)
    zero = sum(r.lines == 0 for r in registered)
    many = sum(r.lines > 1 for r in registered)
    not_registered = len(results) - len(registered)
    ok = once == len(registered) and not any(r.problems for r in results)
    line = (f"{name}: {once}/{len(registered)} cleanups ran exactly once "
            f"({not_registered} not registered; registered but ran 0 times: {zero}, "
            f"more than once: {many})")
    return ok, line


def summarise_terms(results):
    ok, line = summarise_cleanups("SIGTERM", results)
    codes = collections.Counter(r.exit_code for r in results)
    signalled = [r for r in results if not r.finished_first]
    right = sum(r.exit_code == EXIT_SIGTERM for r in signalled)
    recorded = sum(r.recorded_end_first for r in signalled)
    finished = [r for r in results if r.finished_first]
    default_action = sum(r.killed_by_default_action for r in results)
    hangs = sum(r.exit_code is None for r in results)
    survivors = sum(r.survivors for r in results)
    details = (f"  SIGTERM exit statuses: {right}/{len(signalled)} signalled runs exited 143 "
               f"({default_action} of them killed by SIGTERM's default action before hookrun "
               f"set its handlers, {recorded} exited 0 as the run had recorded its end "
               f"before the signal came); {sum(r.exit_code == 0 for r in finished)}/"
               f"{len(finished)} runs that had ended exited 0; statuses seen "
               f"{dict(sorted(codes.items(), key=str))}"
               f"; hangs {hangs}; surviving processes {survivors}")
    return ok and not hangs and not survivors, line, details


def counted(values):
    """A Counter as ``{key: count}`` sorted by key, None last."""
    return dict(sorted(collections.Counter(values).items(), key=lambda item: str(item[0])))


def summarise_events(rounds, events, took):
    runs = sum(sum(r.codes.values()) for r in rounds)
    codes = collections.Counter()
    for r in rounds:
        codes.update(r.codes)
    lost = sum(len(r.lost_series) for r in rounds)
    line = (f"events: cleanups run exactly once: {sum(r.once for r in rounds)}/{runs}; runs "
            f"exited 0: {codes[0]}/{runs} (73: {codes[EXIT_CANT_CREATE]}); exit statuses "
            f"{counted(codes.elements())}")
    details = (f"  events: {len(rounds)} rounds of {events} events in one state directory; "
               f"metrics file kept every event's series in "
               f"{sum(not r.lost_series for r in rounds)}/{len(rounds)} rounds (series "
               f"missing: {lost}); runs with a traceback or internal error: "
               f"{sum(r.broken for r in rounds)}; {took:.0f}s")
    ok = bool(rounds) and not any(r.problems for r in rounds)
    return ok, [line, details]


def ledger_line(name, results):
    """``NAME: cleanups run exactly once: X/Y (...)`` over the iterations' ledgers."""
    totals = [sum(column) for column in zip(*(r.ledger.counts() for r in results if r.ledger))]
    once, registered, zero, many, refused, refused_ran = totals or (0,) * 6
    statuses = counted(status for r in results if r.ledger for status in r.ledger.refusals())
    return (f"{name}: cleanups run exactly once: {once}/{registered} (ran 0 times: {zero}, "
            f"more than once: {many}; hookrun defer refused: {refused} {statuses}, of which "
            f"ran anyway: {refused_ran})")


def common_fault_figures(results):
    return (f"exit statuses {counted(r.exit_code for r in results)}; iterations with a "
            f"traceback or internal error: {sum(r.broken for r in results)} (internal error: "
            f"{sum(r.internal_error for r in results)}); Python's reports of a failed write "
            f"to its signal wakeup pipe (an injection artifact, not counted): "
            f"{sum(r.wakeup_reports for r in results)}; hookrun recover exited 0: "
            f"{sum(r.recover_code == 0 for r in results)}/{len(results)}; a later run exited "
            f"0: {sum(r.later_code == 0 for r in results)}/{len(results)}; run directories "
            f"kept as damaged: {sum(r.damaged for r in results)}")


def summarise_disk(results, took):
    killed = sum(r.killed for r in results)
    ran_to_end = [r for r in results if not r.killed and not r.refused_at_start]
    fills = counted(r.fill for r in results)
    details = (f"  disk-full: {len(results)} iterations, {killed} SIGKILLed, "
               f"{sum(r.refused_at_start for r in results)} refused at the start (73); fills "
               f"{fills}; the disk filled up in {sum(r.disk_was_full for r in results)}; "
               f"finally.d ran in {sum(r.finally_ran for r in ran_to_end)}/{len(ran_to_end)} "
               f"runs not killed; {common_fault_figures(results)}; iterations with a problem: "
               f"{sum(bool(r.problems) for r in results)}; {took:.0f}s")
    ok = bool(results) and not any(r.problems for r in results)
    return ok, [ledger_line("disk-full", results), details]


def summarise_io(results, took):
    wound_down = sum(r.wound_down for r in results)
    details = (f"  io-faults: {len(results)} iterations, {wound_down} reached the wind-down "
               f"(exit 0 or finally.d ran); {common_fault_figures(results)}; iterations with "
               f"a problem: {sum(bool(r.problems) for r in results)}; {took:.0f}s")
    ok = bool(results) and not any(r.problems for r in results)
    return ok, [ledger_line("io-faults", results), details]


MODES = ("kills", "terms", "concurrent", "events", "event_rounds", "disk_full", "io_faults",
         "read_faults", "slow_endpoints", "fifo_outputs")
DEFAULTS = {"kills": 100, "terms": 100, "concurrent": 20, "events": 20, "event_rounds": 3,
            "disk_full": 0, "io_faults": 0, "read_faults": 0, "slow_endpoints": 6,
            "fifo_outputs": 20}
QUICK = {"kills": 10, "terms": 10, "concurrent": 5, "events": 5, "event_rounds": 2,
         "disk_full": 5, "io_faults": 10, "read_faults": 10, "slow_endpoints": 2,
         "fifo_outputs": 5}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Modes run in the order of their options; 0 turns one off. --disk-full needs "
               "root (mount -t tmpfs); --io-faults needs fiu-run (Debian fiu-utils).")
    parser.add_argument("--kills", type=int, help="SIGKILL iterations (100)")
    parser.add_argument("--terms", type=int, help="SIGTERM iterations (100)")
    parser.add_argument("--concurrent", type=int,
                        help="simultaneous runs of one event (20)")
    parser.add_argument("--events", type=int,
                        help="simultaneous runs of as many events in one state directory, "
                             "sharing one metrics file (20)")
    parser.add_argument("--event-rounds", type=int, help="rounds of --events (3)")
    parser.add_argument("--disk-full", type=int,
                        help="iterations with the state directory on a small tmpfs that fills "
                             "up (0; root only)")
    parser.add_argument("--disk-kill-share", type=float, default=0.3,
                        help="share of disk-full runs SIGKILLed after the fill (0.3)")
    parser.add_argument("--io-faults", type=int,
                        help="iterations under fiu-run with ENOSPC/EIO injected into hookrun's "
                             "own file operations (0)")
    parser.add_argument("--read-faults", type=int,
                        help="iterations under fiu-run with EIO injected into hookrun's reads "
                             "of meta.json, cleanup journals and the history, after a crashed "
                             "run (0)")
    parser.add_argument("--max-fault-probability", type=float, default=0.1,
                        help="highest probability of an injected fault per call (0.1); each "
                             "iteration draws its own, log-uniform from 0.002")
    parser.add_argument("--fiu-site", metavar="DIR",
                        help="write the sitecustomize module of the I/O-fault mode into DIR "
                             "and exit; an iteration then reproduces by hand as PYTHONPATH=DIR "
                             "HOOKRUN_SOAK_FAULTS=... HOOKRUN_SOAK_FIU_SEED=... fiu-run -x -f "
                             "'' hookrun run ...")
    parser.add_argument("--slow-endpoints", type=int,
                        help="runs whose notification and Pushgateway server trickles its "
                             "answers a byte at a time (6; each takes up to 30-50 s)")
    parser.add_argument("--fifo-outputs", type=int,
                        help="runs with a FIFO at the metrics file, the log file or both (20)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run of every mode: 10 SIGKILL, 10 SIGTERM, 5 concurrent, "
                             "5 events x 2 rounds, 5 disk-full, 10 I/O-fault, 10 read-fault, "
                             "2 slow-endpoint, 5 FIFO iterations (options given explicitly "
                             "still win)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="iterations run side by side (2; each has its own temp dir)")
    parser.add_argument("--max-delay", type=float, default=1.0,
                        help="latest moment of the signal (or of the soak's fill) after "
                             "start, seconds (1.0)")
    parser.add_argument("--kill-grace", default="1s", help="--kill-grace for SIGTERM runs")
    parser.add_argument("--hold", type=float, default=2.0,
                        help="seconds the concurrent runs' command holds the lock (2)")
    parser.add_argument("--cleanup-seconds", type=float, default=0.0,
                        help="make the deferred cleanup sleep this long first (0), so more "
                             "signals land while it runs")
    parser.add_argument("--orphan-grace", type=float, default=ORPHAN_GRACE,
                        help="seconds a killed run's hooks may go on before they are killed")
    parser.add_argument("--hookrun", default=None,
                        help="hookrun command line (default: the installed hookrun)")
    parser.add_argument("--workdir", default=None, help="where temp trees go (default $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the trees of failed iterations")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for mode in MODES:
        if getattr(args, mode) is None:
            setattr(args, mode, preset[mode])
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 30)
    return args


def run_signal_modes(args, hookrun):
    """The SIGKILL, SIGTERM and concurrent modes: (targets met, summary lines)."""
    ok = True
    lines = []
    if args.kills:
        results, took = run_many("SIGKILL", args.kills, kill_iteration, args, hookrun)
        good, line = summarise_cleanups("SIGKILL", results)
        orphans = sum(r.orphans for r in results)
        lines += [line, (f"  SIGKILL: {sum(r.finished_first for r in results)} runs had ended "
                         f"before the signal; {orphans} orphan(s) still running after "
                         f"{args.orphan_grace:g}s were killed; {took:.0f}s")]
        ok &= good
    if args.terms:
        results, took = run_many("SIGTERM", args.terms, term_iteration, args, hookrun)
        good, line, details = summarise_terms(results)
        lines += [line, details + f"; {took:.0f}s"]
        ok &= good
    if args.concurrent:
        started = time.monotonic()
        ran, codes, named, survivors = concurrent_runs(args, hookrun)
        refused = codes[EXIT_LOCKED]
        good = ran == 1 and refused == args.concurrent - 1 and not survivors
        lines.append(f"concurrent: {ran}/{args.concurrent} ran, {refused} refused with 75 "
                     f"({named} named the holder's pid); exit statuses {dict(codes)}; "
                     f"{time.monotonic() - started:.0f}s")
        ok &= good
    return ok, lines


def run_fault_modes(args, hookrun):
    """The events, disk-full and I/O-fault modes: (targets met, summary lines)."""
    ok = True
    lines = []
    if args.events and args.event_rounds:
        started = time.monotonic()
        rounds = concurrent_events(args, hookrun)
        good, more = summarise_events(rounds, args.events, time.monotonic() - started)
        ok &= good
        lines += more
    if args.disk_full:
        if os.geteuid() != 0:
            ok = False
            lines.append("disk-full: cannot run: mounting a tmpfs needs root")
        else:
            results, took = run_many("disk-full", args.disk_full, disk_full_iteration, args,
                                     hookrun)
            good, more = summarise_disk(results, took)
            ok &= good
            lines += more
    if args.io_faults:
        missing = fiu_missing()
        if missing:
            ok = False
            lines.append(f"io-faults: cannot run: {missing}")
        else:
            args.fiu_site = make_fiu_site(args.workdir)
            try:
                results, took = run_many("io-faults", args.io_faults, io_fault_iteration,
                                         args, hookrun)
            finally:
                shutil.rmtree(args.fiu_site, ignore_errors=True)
            good, more = summarise_io(results, took)
            ok &= good
            lines += more
    if args.read_faults:
        missing = fiu_missing()
        if missing:
            ok = False
            lines.append(f"read-faults: cannot run: {missing}")
        else:
            args.read_site = tempfile.mkdtemp(prefix="fiu-read-site-", dir=args.workdir)
            write_file(os.path.join(args.read_site, "sitecustomize.py"), READ_SITECUSTOMIZE,
                       mode=0o644)
            try:
                results, took = run_many("read-faults", args.read_faults,
                                         read_fault_iteration, args, hookrun)
            finally:
                shutil.rmtree(args.read_site, ignore_errors=True)
            good, more = summarise_reads(results, took)
            ok &= good
            lines += more
    return ok, lines


def main(argv=None):
    args = parse_args(argv)
    if args.fiu_site:
        print(f"wrote {os.path.join(make_fiu_site(None, args.fiu_site), 'sitecustomize.py')}")
        return 0
    hookrun = shlex.split(args.hookrun) if args.hookrun else default_hookrun()
    if args.workdir:
        os.makedirs(args.workdir, mode=0o755, exist_ok=True)
    subreaper = become_subreaper()
    print(f"hookrun soak: {shlex.join(hookrun)}, seed {args.seed}, jobs {args.jobs}, "
          f"subreaper {'yes' if subreaper else 'no'}")
    ok, lines = run_signal_modes(args, hookrun)
    good, more = run_fault_modes(args, hookrun)
    doors_good, doors = run_door_modes(args, hookrun)
    REAPER.reap()
    print("\n".join(lines + more + doors))
    ok = ok and good and doors_good
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
