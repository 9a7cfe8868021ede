#!/usr/bin/env python3
"""Benchmarks of hookrun against the tools it replaces, with the targets of the performance
issue printed beside each figure.

* hooks: ``hookrun phase pre-backup`` and ``hookrun run`` (state dir, log and history on) vs
  ``run-parts DIR`` vs a bash loop, over 10, 200 and 2,000 no-op ``#!/bin/sh`` hooks; beside
  them the floor, ``floor.py``: the least a hook runner in Python does (spawn, pipes, poll,
  wait4, a header read, a log line, one SQLite transaction), run by hookrun's interpreter;
* per-hook cost, start-up excluded (``--only perhook``, and in the hooks case when it has
  200 and 2,000 hooks): (T(2000) - T(200)) / 1800 of ``hookrun phase`` against the floor's,
  run-parts' beside them, from medians of ``--perhook-repeat`` interleaved runs;
* start-up: ``hookrun run --no-hooks -- true`` vs ``python -c pass`` (same interpreter);
* output: a hook printing 200 MB of 100-byte lines through ``hookrun phase`` (log on, stdout
  to /dev/null, where hookrun shows no output) vs the same hook piped through ``tee -a LOG``;
  the same with stdout to a regular file (every line shown, not judged); hookrun's peak RSS;
* timeout precision: a hook that ignores SIGTERM and leaves a ``setsid`` child that ignores
  it too, ``timeout=1s``, ``--kill-grace 1s``: how long after timeout + grace everything is gone.

Every figure is the median of ``--repeat`` repetitions in which the tools take turns (their
order rotates), so a slow moment of the machine hits them all alike. Not collected by pytest.
Run: ``python tests/benchmarks/bench.py [--repeat N] [--quick] [--output-mb MB]
[--profile DIR] [--only perhook --perhook-repeat N]``. Exit status 0 when every target is
met, 1 otherwise.
"""

import argparse
import os
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from orchestrator.process import vm_hwm

FLOOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.py")
SIZES = (10, 200, 2000)
LINE = 100
NOOP_HOOK = "#!/bin/sh\nexit 0\n"
TAG_VAR = "HOOKRUN_BENCH_TAG"
TIMEOUT = 1.0
KILL_GRACE = 1.0

HOOKS_MAX_RATIO, HOOKS_AIM_RATIO = 1.3, 1.2
FLAT_MAX_SPREAD = 1.5
PERHOOK_SIZES = (200, 2000)
BASELINE = "baseline phase"  # --baseline: another hookrun (an older checkout), perhook only
PERHOOK_MAX_RATIO, PERHOOK_AIM_RATIO = 1.10, 1.05
STARTUP_MAX_RATIO, STARTUP_AIM_RATIO = 2.5, 2.0
OUTPUT_MAX_RATIO, OUTPUT_AIM_RATIO = 3.0, 2.0
# Set in some shells, never by cron or systemd: unbuffered stdio would slow every tool's
# output and is not what hookrun meets in service.
NOT_IN_SERVICE = ("PYTHONUNBUFFERED",)
RSS_MAX_MIB = 40
OVERSHOOT_MAX_MS = 100


def default_hookrun():
    """The installed ``hookrun`` next to this interpreter (a pyenv shim would add its bash
    start-up to every figure), else the one on PATH, else ``python -m orchestrator``."""
    beside = os.path.join(os.path.dirname(sys.executable), "hookrun")
    if os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which("hookrun")
    return [found] if found else [sys.executable, "-m", "orchestrator"]


def interpreter_of(command):
    """The Python that runs ``command`` (the interpreter on a script's #! line), as that
    Python names itself: the very binary, with the same virtual environment and site (a
    symbolic link resolved by hand would leave the venv; a shim such as pyenv's would add its
    own shell start-up and flatter the ratio)."""
    named = sys.executable
    if command[0] != sys.executable:
        try:
            with open(command[0], "rb") as handle:
                first = handle.readline()
            if first.startswith(b"#!"):
                named = first[2:].split()[0].decode()
        except (OSError, IndexError, UnicodeDecodeError):
            pass
    found = subprocess.run([named, "-c", "import sys; print(sys.executable)"],
                           capture_output=True, text=True, check=True, timeout=60)
    return found.stdout.strip()


def write_file(path, text, mode=0o755):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def make_dir(path):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)


def hooks_tree(root, hooks):
    """A hooks tree whose pre-backup.d holds ``hooks`` ({name: script text})."""
    make_dir(root)
    pre = os.path.join(root, "pre-backup.d")
    make_dir(pre)
    for name, text in hooks.items():
        write_file(os.path.join(pre, name), text)
    return root


def timed(argv, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
    """Run ``argv``; returns (wall seconds, exit status, peak RSS in KiB).

    The peak is the process's own VmHWM, read every 10 ms while it runs (it only grows), not
    wait4's ru_maxrss: after exec Linux still counts the memory of the process that spawned
    it (this script) in ru_maxrss."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr)
    pidfd = os.pidfd_open(proc.pid)
    peak = 0
    try:
        while not select.select([pidfd], [], [], 0.01)[0]:
            peak = max(peak, vm_hwm(proc.pid))
    finally:
        os.close(pidfd)
    _pid, status, _usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, proc.returncode, peak


def bytecode_env(env, cache, keep_as_is):
    """The environment every tool runs in. Unless ``keep_as_is``, Python may write bytecode to
    a private cache (PYTHONPYCACHEPREFIX), as an installed package has its .pyc files: with
    PYTHONDONTWRITEBYTECODE=1 and an editable install, every hookrun would compile its modules
    from source at each start."""
    env = {name: value for name, value in env.items() if name not in NOT_IN_SERVICE}
    if not keep_as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache
    return env


def wait_exact(proc, limit):
    """Wait for ``proc`` to end, seeing its exit at once (Popen.wait with a timeout polls
    with sleeps of up to 50 ms, which would blur the timeout figures); False on time-out."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ready, _w, _x = select.select([fd], [], [], limit)
    finally:
        os.close(fd)
    if not ready:
        return False
    proc.wait()
    return True


def spread(values):
    """``median s (min-max)`` of durations, to show how steady a figure is."""
    return f"{median(values):.2f} s, {min(values):.2f}-{max(values):.2f}"


def median(values):
    return statistics.median(values) if values else float("nan")


def verdict(value, limit, aim=None, lower_is_better=True):
    """``met``/``MISSED`` against ``limit`` (and whether the aim is reached too)."""
    good = value <= limit if lower_is_better else value >= limit
    if not good:
        return "MISSED", False
    if aim is not None and value > aim:
        return "met (aim missed)", True
    return "met", True


class Bench:
    """Holds the temp directory, the hookrun command and the results table."""

    def __init__(self, args):
        self.args = args
        self.hookrun = shlex.split(args.hookrun) if args.hookrun else default_hookrun()
        self.baseline = shlex.split(args.baseline) if args.baseline else None
        self.python = interpreter_of(self.hookrun)
        self.tmp = tempfile.mkdtemp(prefix="hookrun-bench-")
        os.chmod(self.tmp, 0o755)
        self.raw_env = dict(os.environ)
        self.env = bytecode_env(self.raw_env, self.path("pycache"), args.no_pycache)
        self.rows = []
        self.ok = True

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def check(self, code, what, expected=0):
        if code != expected:
            raise SystemExit(f"bench: {what} exited {code}, expected {expected}")

    def target(self, name, figure, state, good):
        self.rows.append((name, figure, state))
        self.ok &= good

    # Hooks: hookrun vs run-parts vs a bash loop.
    def hook_tools(self, size):
        tree = self.path("hooks", str(size))
        directory = os.path.join(tree, "pre-backup.d")
        state = self.path("state-hooks")
        tools = {
            "hookrun phase": self.hookrun + ["phase", "pre-backup", "-d", tree, "--state-dir",
                                             state, "--log-file", self.path("phase.log")],
            "hookrun run": self.hookrun + ["run", "-d", tree, "--state-dir", state,
                                           "--log-file", self.path("run.log"), "--", "true"],
            "run-parts": ["run-parts", directory],
            "bash loop": ["bash", "-c", 'shopt -s nullglob; for f in "$1"/*; do "$f"; done',
                          "bash", directory],
            "python floor": [self.python, FLOOR, directory, self.path("floor.log"),
                             self.path("floor.db")],
        }
        if self.baseline:
            tools[BASELINE] = self.baseline + ["phase", "pre-backup", "-d", tree, "--state-dir",
                                               self.path("state-baseline"), "--log-file",
                                               self.path("baseline.log")]
        return tools

    def hooks(self):
        sizes = (0,) + tuple(self.args.sizes)
        names = [name for name in self.hook_tools(0) if name != BASELINE]
        samples = self.hook_samples(sizes, names, self.args.repeat, "hooks")
        return {key: median(values) for key, values in samples.items()}

    def hook_samples(self, sizes, names, repeat, part):
        """{(tool, size): [seconds]} of the tools ``names`` over ``sizes`` no-op hooks,
        ``repeat`` times, tools and sizes taking turns."""
        width = len(str(max(max(sizes), max(self.args.sizes))))
        for size in sizes:
            if not os.path.isdir(self.path("hooks", str(size))):
                hooks_tree(self.path("hooks", str(size)),
                           {f"{n:0{width}d}-noop": NOOP_HOOK for n in range(1, size + 1)})
        for name, argv in self.hook_tools(min(sizes)).items():
            if name in names:
                self.check(timed(argv, self.env)[1], f"{name} (warm-up)")
        samples = {}
        for rep in range(repeat):
            # The sizes take turns too: whatever a 2,000-hook run leaves the machine doing
            # (writing back its log and history, say) must not always fall on the same size.
            for size in sizes[rep % len(sizes):] + sizes[:rep % len(sizes)]:
                tools = [(name, argv) for name, argv in self.hook_tools(size).items()
                         if name in names]
                shift = rep % len(tools)
                for name, argv in tools[shift:] + tools[:shift]:
                    elapsed, code, _rss = timed(argv, self.env)
                    self.check(code, f"{name} over {size} hooks")
                    samples.setdefault((name, size), []).append(elapsed)
            self.progress(f"{part}: repetition {rep + 1}/{repeat}")
        return samples

    # Per-hook cost over the floor, start-up excluded: (T(2000) - T(200)) / 1800.
    def perhook(self):
        low, high = PERHOOK_SIZES
        names = ["hookrun phase", "python floor", "run-parts"] + ([BASELINE] if self.baseline
                                                                   else [])
        samples = self.hook_samples(PERHOOK_SIZES, names, self.args.perhook_repeat, "perhook")
        print(f"\n## Per-hook cost, start-up excluded: (T({high}) - T({low})) / {high - low}, "
              f"medians of {self.args.perhook_repeat} interleaved runs")
        self.report_perhook({key: median(values) for key, values in samples.items()})

    def report_perhook(self, medians):
        """Print hookrun phase's per-hook cost beside the floor's and run-parts', and judge
        its ratio to the floor's."""
        low, high = PERHOOK_SIZES
        cost = {name: (medians[(name, high)] - medians[(name, low)]) / (high - low)
                for name in ("hookrun phase", "python floor", "run-parts", BASELINE)
                if (name, high) in medians}
        for name, value in cost.items():
            print(f"{name:<14} {value * 1e6:7.0f} us per hook  (T({low}) "
                  f"{medians[(name, low)] * 1000:7.1f} ms, T({high}) "
                  f"{medians[(name, high)] * 1000:7.1f} ms)")
        ratio = cost["hookrun phase"] / cost["python floor"]
        if BASELINE in cost:
            print(f"{BASELINE} per hook is {cost[BASELINE] / cost['python floor']:.2f}x the "
                  f"floor's ({shlex.join(self.baseline)})")
        print(f"hookrun phase per hook is {ratio:.2f}x the floor's, "
              f"{cost['hookrun phase'] / cost['run-parts']:.2f}x run-parts'")
        state, good = verdict(ratio, PERHOOK_MAX_RATIO, PERHOOK_AIM_RATIO)
        self.target(f"hookrun phase per-hook cost vs the floor's, start-up excluded "
                    f"(<= {PERHOOK_MAX_RATIO}x, aim {PERHOOK_AIM_RATIO}x)",
                    f"{ratio:.2f}x ({cost['hookrun phase'] * 1e6:.0f} us vs "
                    f"{cost['python floor'] * 1e6:.0f} us; run-parts "
                    f"{cost['run-parts'] * 1e6:.0f} us)", state, good)

    def report_hooks(self, medians):
        sizes = self.args.sizes
        names = [name for name in self.hook_tools(0) if name != BASELINE]
        print("\n## Hooks: no-op #!/bin/sh hooks; ms per hook (median total / N), "
              "[marginal ms per hook = (T(N) - T(0)) / N], ratio to run-parts")
        header = f"{'tool':<14}{'T(0) ms':>9}" + "".join(f"{f'N={size}':>30}" for size in sizes)
        print(header)
        for name in names:
            cells = [f"{name:<14}{medians[(name, 0)] * 1000:>9.1f}"]
            for size in sizes:
                total = medians[(name, size)]
                marginal = (total - medians[(name, 0)]) / size
                ratio = total / medians[("run-parts", size)]
                cells.append(f"{total / size * 1000:>10.2f} [{marginal * 1000:6.2f}] "
                             f"{ratio:>7.2f}x  ")
            print("".join(cells))
        if set(PERHOOK_SIZES) <= set(sizes):
            self.report_perhook(medians)
        pivot = 200 if 200 in sizes else sizes[len(sizes) // 2]
        floor = medians[("python floor", pivot)]
        print(f"At {pivot} hooks the floor is {floor / medians[('run-parts', pivot)]:.2f}x "
              f"run-parts; hookrun phase is {medians[('hookrun phase', pivot)] / floor:.2f}x "
              f"the floor, hookrun run {medians[('hookrun run', pivot)] / floor:.2f}x.")
        for name in ("hookrun phase", "hookrun run"):
            ratio = medians[(name, pivot)] / medians[("run-parts", pivot)]
            state, good = verdict(ratio, HOOKS_MAX_RATIO, HOOKS_AIM_RATIO)
            self.target(f"{name} vs run-parts at {pivot} hooks (<= {HOOKS_MAX_RATIO}x, aim "
                        f"{HOOKS_AIM_RATIO}x)", f"{ratio:.2f}x", state, good)
            marginals = [(medians[(name, size)] - medians[(name, 0)]) / size for size in sizes]
            spread = max(marginals) / min(marginals)
            state, good = verdict(spread, FLAT_MAX_SPREAD)
            self.target(f"{name} per-hook cost flat {sizes[0]}..{sizes[-1]} (max/min marginal "
                        f"ms per hook <= {FLAT_MAX_SPREAD})",
                        " / ".join(f"{m * 1000:.2f}" for m in marginals) + f" ms: {spread:.2f}",
                        state, good)

    # Start-up: hookrun run --no-hooks -- true vs python -c pass.
    def startup(self):
        tree = self.path("empty-hooks")
        make_dir(tree)
        tools = {
            "hookrun run --no-hooks -- true": self.hookrun + [
                "run", "--no-hooks", "-d", tree, "--state-dir", self.path("state-startup"),
                "--log-file", self.path("startup.log"), "--", "true"],
            "python -c pass": [self.python, "-c", "pass"],
        }
        envs = {"": self.env}
        if self.raw_env.get("PYTHONDONTWRITEBYTECODE") and not self.args.no_pycache:
            envs[" (no bytecode cache)"] = self.raw_env
        for env in envs.values():
            for argv in tools.values():
                self.check(timed(argv, env)[1], f"{argv[0]} (warm-up)")
        samples = {(name, label): [] for name in tools for label in envs}
        for rep in range(self.args.repeat):
            for _ in range(self.args.startup_runs):
                for label, env in envs.items():
                    order = list(tools.items())[::-1] if rep % 2 else list(tools.items())
                    for name, argv in order:
                        elapsed, code, _rss = timed(argv, env)
                        self.check(code, name)
                        samples[(name, label)].append(elapsed)
        print(f"\n## Start-up: median of {self.args.repeat * self.args.startup_runs} runs each "
              f"(python is {tools['python -c pass'][0]}, hookrun's own interpreter)")
        for label in envs:
            hookrun, python = (median(samples[(name, label)]) for name in tools)
            ratio = hookrun / python
            print(f"hookrun run --no-hooks -- true{label:<21} {hookrun * 1000:7.1f} ms")
            print(f"python -c pass{label:<37} {python * 1000:7.1f} ms   ratio {ratio:.2f}x")
            state, good = verdict(ratio, STARTUP_MAX_RATIO, STARTUP_AIM_RATIO)
            if label:
                state, good = f"not judged: {state}", True
            self.target(f"start-up vs bare Python{label} (<= {STARTUP_MAX_RATIO}x, aim "
                        f"{STARTUP_AIM_RATIO}x)", f"{ratio:.2f}x ({hookrun * 1000:.0f} ms vs "
                        f"{python * 1000:.0f} ms)", state, good)

    # Output: 100-byte lines through hookrun vs through tee -a.
    def output_hook(self):
        size = int(self.args.output_mb * 1_000_000)
        return ("#!/bin/sh\n"
                f"yes \"$(printf '%0{LINE - 1}d' 0)\" | head -c {size}\n")

    def output(self):
        tree = hooks_tree(self.path("output-hooks"), {"10-print": self.output_hook()})
        hook = os.path.join(tree, "pre-backup.d", "10-print")
        logs = self.path("output-logs")
        make_dir(logs)
        hookrun_log = os.path.join(logs, "hookrun.log")
        tee_log = os.path.join(logs, "tee.log")
        hookrun = self.hookrun + ["phase", "pre-backup", "-d", tree, "--state-dir",
                                  self.path("state-output"), "--log-file", hookrun_log]
        tee = f"{shlex.quote(hook)} | tee -a {shlex.quote(tee_log)}"
        # Each tool with its stdout: /dev/null (None), where hookrun shows no output, or a
        # regular file, the stand-in for a terminal or a pipe, where every line is shown.
        tools = {
            "hookrun phase": (hookrun, None),
            "tee -a": (["sh", "-c", tee + " >/dev/null"], None),
            "hookrun phase, stdout a file": (hookrun, "shown"),
            "tee -a, stdout a file": (["sh", "-c", tee], "shown"),
        }
        samples = {name: [] for name in tools}
        rss = []
        for rep in range(self.args.repeat):
            for name, (argv, shown) in (list(tools.items())[::-1] if rep % 2
                                        else tools.items()):
                # Start each sample with no dirty pages left by the previous one, whose
                # writeback would otherwise throttle whichever tool comes next.
                os.sync()
                if shown:
                    with open(os.path.join(logs, shown), "wb") as stdout:
                        elapsed, code, maxrss = timed(argv, self.env, stdout=stdout)
                else:
                    elapsed, code, maxrss = timed(argv, self.env)
                self.check(code, f"{name} output")
                samples[name].append(elapsed)
                if name.startswith("hookrun"):
                    rss.append(maxrss)
                shutil.rmtree(logs)
                make_dir(logs)
            self.progress(f"output: repetition {rep + 1}/{self.args.repeat}")
        megabytes = self.args.output_mb
        rate = {name: megabytes / median(values) for name, values in samples.items()}
        ratio = rate["tee -a"] / rate["hookrun phase"]
        shown_ratio = rate["tee -a, stdout a file"] / rate["hookrun phase, stdout a file"]
        peak = max(rss) / 1024
        print(f"\n## Output: {megabytes:g} MB of {LINE}-byte lines from one hook")
        print(f"hookrun phase (log on, stdout /dev/null) {rate['hookrun phase']:8.1f} MB/s  "
              f"({spread(samples['hookrun phase'])})  peak RSS {peak:.1f} MiB")
        print(f"hook | tee -a LOG >/dev/null            {rate['tee -a']:8.1f} MB/s  "
              f"({spread(samples['tee -a'])})  ratio {ratio:.2f}x slower")
        print(f"hookrun phase (log on, stdout a file)    "
              f"{rate['hookrun phase, stdout a file']:8.1f} MB/s  "
              f"({spread(samples['hookrun phase, stdout a file'])})")
        print(f"hook | tee -a LOG >FILE                 "
              f"{rate['tee -a, stdout a file']:8.1f} MB/s  "
              f"({spread(samples['tee -a, stdout a file'])})  ratio {shown_ratio:.2f}x slower")
        state, good = verdict(ratio, OUTPUT_MAX_RATIO, OUTPUT_AIM_RATIO)
        self.target(f"output vs tee -a (<= {OUTPUT_MAX_RATIO}x slower, aim "
                    f"{OUTPUT_AIM_RATIO}x)", f"{ratio:.2f}x ({rate['hookrun phase']:.0f} vs "
                    f"{rate['tee -a']:.0f} MB/s)", state, good)
        state, _good = verdict(shown_ratio, OUTPUT_MAX_RATIO, OUTPUT_AIM_RATIO)
        self.target(f"output shown, stdout a file, vs tee -a (<= {OUTPUT_MAX_RATIO}x slower)",
                    f"{shown_ratio:.2f}x ({rate['hookrun phase, stdout a file']:.0f} vs "
                    f"{rate['tee -a, stdout a file']:.0f} MB/s)", f"not judged: {state}", True)
        state, good = verdict(peak, RSS_MAX_MIB)
        self.target(f"hookrun peak RSS while streaming (< {RSS_MAX_MIB} MiB)",
                    f"{peak:.1f} MiB", state, good)

    # Timeout precision.
    def timeout_hook(self, started_file):
        return ("#!/bin/sh\n"
                f"# hookrun: timeout={TIMEOUT:g}s\n"
                f"date +%s.%N > {shlex.quote(started_file)}\n"
                "trap '' TERM\n"
                "setsid sleep 60 &\n"
                "sleep 60\n")

    def tagged_alive(self, tag):
        import psutil

        alive = []
        for process in psutil.process_iter():
            try:
                if process.environ().get(TAG_VAR) == tag and \
                        process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.Error:
                continue
        return alive

    def timeout_once(self, rep):
        root = self.path(f"timeout-{rep}")
        started_file = os.path.join(root, "hook-started")
        make_dir(root)
        tree = hooks_tree(os.path.join(root, "hooks"), {"10-stubborn":
                                                        self.timeout_hook(started_file)})
        env = dict(self.env, **{TAG_VAR: root})
        argv = self.hookrun + ["phase", "pre-backup", "-d", tree, "--state-dir",
                               os.path.join(root, "state"), "--log-file",
                               os.path.join(root, "log"), "--kill-grace", f"{KILL_GRACE:g}s"]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_exact(proc, TIMEOUT + KILL_GRACE + 30):
            proc.kill()
            proc.wait()
        exited = time.perf_counter()
        survivors = self.tagged_alive(root)
        deadline = exited + 5
        while survivors and time.perf_counter() < deadline:
            time.sleep(0.002)
            survivors = self.tagged_alive(root)
        gone = time.perf_counter()
        for process in survivors:
            process.kill()
        with open(started_file, encoding="ascii") as handle:
            hook_started = float(handle.read())
        gone_wall = time.time() - (time.perf_counter() - gone)
        return {"elapsed": gone - started, "exit": exited - started,
                "from_hook": gone_wall - hook_started, "survivors": len(survivors),
                "code": proc.returncode}

    def timeout(self):
        results = []
        for rep in range(self.args.repeat):
            results.append(self.timeout_once(rep))
        budget = TIMEOUT + KILL_GRACE
        overshoot = median([r["elapsed"] for r in results]) - budget
        from_hook = median([r["from_hook"] for r in results]) - budget
        exit_only = median([r["exit"] for r in results]) - budget
        survivors = sum(r["survivors"] for r in results)
        codes = sorted({r["code"] for r in results})
        print(f"\n## Timeout: timeout={TIMEOUT:g}s, --kill-grace {KILL_GRACE:g}s, hook and its "
              "setsid child ignore SIGTERM")
        print(f"overshoot from hookrun's start      {overshoot * 1000:7.0f} ms  (until hookrun "
              "exited and every process of the hook was gone)")
        print(f"  of which until hookrun exited     {exit_only * 1000:7.0f} ms")
        print(f"overshoot from the hook's own start {from_hook * 1000:7.0f} ms  (start-up "
              "excluded: the timeout machinery itself)")
        print(f"survivors after 5 s: {survivors}; exit statuses {codes}")
        state, good = verdict(overshoot * 1000, OVERSHOOT_MAX_MS)
        if survivors:
            state, good = "MISSED (survivors)", False
        self.target(f"timeout overshoot from hookrun's start (< {OVERSHOOT_MAX_MS} ms)",
                    f"{overshoot * 1000:.0f} ms ({from_hook * 1000:.0f} ms from the hook's "
                    "start)", state, good)

    def progress(self, text):
        if not self.args.quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    def summary(self):
        print("\n## Targets")
        width = max(len(row[0]) for row in self.rows)
        for name, figure, state in self.rows:
            print(f"{name:<{width}}  {figure:<34}  {state}")
        print("all targets met" if self.ok else "SOME TARGETS MISSED")

    # Profiles (optional): pyinstrument of the hook and output cases, -X importtime.
    def profile(self, directory):
        os.makedirs(directory, exist_ok=True)
        if not os.path.isdir(self.path("hooks", "200")):
            hooks_tree(self.path("hooks", "200"),
                       {f"{n:03d}-noop": NOOP_HOOK for n in range(1, 201)})
        if not os.path.isdir(self.path("output-hooks")):
            hooks_tree(self.path("output-hooks"), {"10-print": self.output_hook()})
        make_dir(self.path("empty-hooks"))
        script = self.hookrun[-1] if self.hookrun[0] != sys.executable else None
        base = [sys.executable, "-m", "pyinstrument", "--show-all", "-o"]
        runs = {
            "hooks-200": ["phase", "pre-backup", "-d", self.path("hooks", "200"),
                          "--state-dir", self.path("state-profile"), "--log-file",
                          self.path("profile.log")],
            "output": ["phase", "pre-backup", "-d", self.path("output-hooks"), "--state-dir",
                       self.path("state-profile"), "--log-file", self.path("profile-out.log")],
        }
        target = [script] if script else ["-m", "orchestrator"]
        for name, argv in runs.items():
            report = os.path.join(directory, f"{name}.txt")
            elapsed, code, _rss = timed(base + [report] + target + argv, self.env)
            self.progress(f"profile {name}: {report} ({elapsed:.1f} s, exit {code})")
        with open(os.path.join(directory, "importtime.txt"), "wb") as handle:
            subprocess.run([sys.executable, "-X", "importtime"] + target + [
                "run", "--no-hooks", "-d", self.path("empty-hooks"), "--state-dir",
                self.path("state-startup"), "--", "true"], stdout=subprocess.DEVNULL,
                stderr=handle, check=False, env=self.env)
        self.progress(f"import times: {os.path.join(directory, 'importtime.txt')}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (5)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 repetitions, 10 and 200 hooks, 20 MB of output")
    parser.add_argument("--output-mb", type=float, default=200.0,
                        help="megabytes the output hook prints (200)")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated hook counts (10,200,2000)")
    parser.add_argument("--startup-runs", type=int, default=10,
                        help="start-up runs of each tool per repetition (10)")
    parser.add_argument("--only", default="hooks,startup,output,timeout",
                        help="comma-separated parts to run (also: perhook, hookrun phase's "
                        "per-hook cost over the floor's at 200 and 2,000 hooks)")
    parser.add_argument("--perhook-repeat", type=int, default=5,
                        help="interleaved runs of the perhook part (5)")
    parser.add_argument("--baseline", default=None,
                        help="another hookrun command line (e.g. an older checkout) to time "
                        "beside hookrun in the perhook part")
    parser.add_argument("--hookrun", default=None,
                        help="hookrun command line (default: the installed hookrun)")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="also write pyinstrument and -X importtime reports to DIR")
    parser.add_argument("--no-pycache", action="store_true",
                        help="run Python as the environment says (no private bytecode cache)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = min(args.repeat, 2)
        args.output_mb = min(args.output_mb, 20.0)
        args.startup_runs = min(args.startup_runs, 3)
        args.sizes = args.sizes or "10,200"
    args.sizes = tuple(int(n) for n in (args.sizes or ",".join(map(str, SIZES))).split(","))
    args.only = set(args.only.split(","))
    return args


def source_version():
    """``git describe --always --dirty`` of the checkout this script belongs to, if any."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        found = subprocess.run(["git", "-C", repo, "describe", "--always", "--dirty"],
                               capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return found.stdout.strip() or "unknown"


def main(argv=None):
    args = parse_args(argv)
    bench = Bench(args)
    print(f"hookrun bench: {shlex.join(bench.hookrun)} (checkout {source_version()}); "
          f"{args.repeat} repetitions; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"bytecode cache {'as the environment says' if args.no_pycache else 'private'}")
    try:
        if "hooks" in args.only:
            bench.report_hooks(bench.hooks())
        if "perhook" in args.only:
            bench.perhook()
        if "startup" in args.only:
            bench.startup()
        if "output" in args.only:
            bench.output()
        if "timeout" in args.only:
            bench.timeout()
        bench.summary()
        if args.profile:
            bench.profile(args.profile)
    finally:
        if not args.keep:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    return 0 if bench.ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
