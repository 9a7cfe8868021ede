#!/usr/bin/env python3
"""Soak test of hookrun's promise that registered cleanups run exactly once (design.md 3).

Three scenarios, each iteration in a fresh temporary hooks tree with its own state directory
and log file:

* SIGKILL: kill ``hookrun run`` at a random moment, let the orphaned hook finish (or kill it),
  run ``hookrun recover``; a registered cleanup must have run exactly once.
* SIGTERM: send SIGTERM at a random moment and wait (bounded) for hookrun to wind down; the
  cleanup must have run exactly once, the exit status must be 143 (or 0 if the run had already
  ended), and no process of the run may survive.
* concurrent: N runs of the same event and state directory started at once; exactly one runs
  its command, the others exit 75.

Not collected by pytest. Run: ``python tests/soak/cleanup_soak.py [--kills N] [--terms N]
[--concurrent N] [--seed S] [--jobs J] [--hookrun CMD]``. Exit status 0 when every target is
met, 1 otherwise.
"""

import argparse
import collections
import ctypes
import glob
import os
import random
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
    env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.hooks = os.path.join(self.root, "hooks")
        self.state = os.path.join(self.root, "state")
        self.log = os.path.join(self.root, "hookrun.log")
        self.marker = os.path.join(self.root, "cleanup-ran")
        self.registered = os.path.join(self.root, "cleanup-registered")
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
    orphans: int = 0
    survivors: int = 0
    problems: list = field(default_factory=list)


def start_run(tree, hookrun, extra=(), command=("sleep", str(COMMAND_SECONDS))):
    """``hookrun run`` of ``tree`` in a session of its own, stderr kept in run.stderr."""
    with open(os.path.join(tree.root, "run.stderr"), "wb") as stderr:
        return REAPER.popen(hookrun + ["run"] + tree.options() + list(extra) + ["--"]
                            + list(command), env=tree.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


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
    expected = 0 if finished_first else EXIT_SIGTERM
    if code is not None and code != expected:
        result.problems.append(f"exit status {code}, expected {expected}")
    if pending_run_dirs(tree):
        result.problems.append("run directory left pending after a single SIGTERM")
    if looks_broken(read_text(os.path.join(root, "run.stderr"))):
        result.problems.append("traceback or internal error on stderr")
    finish_iteration(args, root, result)
    return result


def finish_iteration(args, root, result):
    if result.registered and result.lines != 1:
        result.problems.append(f"cleanup ran {result.lines} times")
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


def run_many(name, count, worker, args, hookrun):
    results = []
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(worker, n, args, hookrun, args.seed) for n in range(count)]
        for done, future in enumerate(futures, 1):
            result = future.result()
            results.append(result)
            for problem in result.problems:
                print(f"  {name} #{result.index} (signal at {result.delay * 1000:.0f} ms): "
                      f"{problem}", file=sys.stderr)
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
    finished = [r for r in results if r.finished_first]
    default_action = sum(r.killed_by_default_action for r in results)
    hangs = sum(r.exit_code is None for r in results)
    survivors = sum(r.survivors for r in results)
    details = (f"  SIGTERM exit statuses: {right}/{len(signalled)} signalled runs exited 143 "
               f"({default_action} of them killed by SIGTERM's default action before hookrun "
               f"set its handlers); {sum(r.exit_code == 0 for r in finished)}/{len(finished)} "
               f"runs that had ended exited 0; statuses seen {dict(sorted(codes.items(), key=str))}"
               f"; hangs {hangs}; surviving processes {survivors}")
    return ok and not hangs and not survivors, line, details


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="SIGKILL iterations (100)")
    parser.add_argument("--terms", type=int, default=100, help="SIGTERM iterations (100)")
    parser.add_argument("--concurrent", type=int, default=20,
                        help="simultaneous runs of one event (20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="iterations run side by side (2; each has its own temp dir)")
    parser.add_argument("--max-delay", type=float, default=1.0,
                        help="latest moment of the signal after start, seconds (1.0)")
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
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 30)
    return args


def main(argv=None):
    args = parse_args(argv)
    hookrun = shlex.split(args.hookrun) if args.hookrun else default_hookrun()
    if args.workdir:
        os.makedirs(args.workdir, mode=0o755, exist_ok=True)
    subreaper = become_subreaper()
    print(f"hookrun soak: {shlex.join(hookrun)}, seed {args.seed}, jobs {args.jobs}, "
          f"subreaper {'yes' if subreaper else 'no'}")
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
        ran, codes, named, survivors = concurrent_runs(args, hookrun)
        refused = codes[EXIT_LOCKED]
        good = ran == 1 and refused == args.concurrent - 1 and not survivors
        lines.append(f"concurrent: {ran}/{args.concurrent} ran, {refused} refused with 75 "
                     f"({named} named the holder's pid); exit statuses {dict(codes)}")
        ok &= good
    REAPER.reap()
    print("\n".join(lines))
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
