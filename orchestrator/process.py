"""The only module that starts, watches and kills processes (design.md section 3).

Every hook and the command run in a session of their own. One loop per process waits, with a
deadline on every wait, for output, for the process's exit (a pidfd), for hookrun's own signals
(a wakeup pipe) and for its timeout; it looks again on a timer only while a killed tree dies,
which nothing signals. A timeout or a signal sends SIGTERM
(or the received signal) to the process group, then after ``kill_grace`` SIGKILL to every process
left in the tree, including those that left the group. hookrun is a child subreaper on Linux, so
orphans of a hook are adopted by hookrun and can still be found, killed and reaped. Which task
an adopted orphan belongs to is told by the cookie every task's processes inherit
(``HOOKRUN_TASK``), read from /proc only when something must be killed: a daemon an earlier
hook left running on purpose is not the business of a later hook's timeout.
"""

import errno
import os
import select
import signal
import sys
import time
from dataclasses import dataclass

from orchestrator import constants as c

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READ_SIZE = 65536
PR_SET_CHILD_SUBREAPER = 36
NO_PIDFD_TICK = 0.05
KILLED_TICK = 0.005
KILLED_POLL = 0.05
HELD_FD = 3  # where Spec.hold_fd appears in the child
AFTER_KILL_WAIT = 5.0
POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR
MAX_WAIT_MS = 60_000  # poll() takes a C int: a long timeout is waited for in steps
COOKIE = "HOOKRUN_TASK"
DEVNULL = "/dev/null"  # Spec.stdin: read nothing (None inherits hookrun's stdin)
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Spec:
    """What to run. ``timeout`` 0 or None means none; ``capture`` False lets the process write
    to hookrun's own stdout and stderr; ``stdin`` None inherits hookrun's stdin. A
    ``shielded`` process (the wind-down: handlers, cleanups, finally.d) is not sent hookrun's
    first signal, only killed by a second one. ``hold_fd`` is handed to the child as fd 3.
    ``env`` carries the task's cookie (HOOKRUN_TASK)."""

    argv: tuple
    env: dict
    timeout: object = None
    kill_grace: float = c.DEFAULT_KILL_GRACE
    capture: bool = True
    stdin: object = DEVNULL
    umask: int = -1
    shielded: bool = False
    hold_fd: object = None

    @property
    def cookie(self):
        return self.env.get(COOKIE)


@dataclass(frozen=True)
class Outcome:
    """How a process ended. ``exit_code`` is shell-style (128+N for signal N); when it could
    not start, ``spawn_error`` says why and ``exit_code`` is 126 or 127. ``max_rss_bytes``
    is None when the process stayed below hookrun's own peak: Linux counts the memory of the
    parent a child was spawned from in the child's ru_maxrss, so smaller peaks are unknown."""

    exit_code: int
    killed_by: object = None
    timed_out: bool = False
    interrupted_by: object = None
    spawn_error: object = None
    cpu_seconds: float = 0.0
    max_rss_bytes: object = None
    stragglers: tuple = ()

    @property
    def ok(self):
        return self.exit_code == 0 and not self.timed_out and self.spawn_error is None


class Signals:
    """SIGINT, SIGTERM and SIGHUP, recorded for the main loop to act on; and SIGCHLD, noted
    so that orphans which end while a process is watched are reaped then, not when it ends.

    The handlers only append the number or set the flag; the wakeup pipe wakes any poll()
    that is waiting.
    """

    def __init__(self):
        self.received = []
        self.child_ended = False
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.previous = {}
        self.previous_wakeup = None

    def install(self):
        for signum in FORWARDED_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)
        self.previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, self._child_ended)
        self.previous_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.previous_wakeup is not None:
            signal.set_wakeup_fd(self.previous_wakeup)
        os.close(self.read_fd)
        os.close(self.write_fd)

    def _handle(self, signum, _frame):
        self.received.append(signum)

    def _child_ended(self, _signum, _frame):
        self.child_ended = True

    @property
    def first(self):
        """The signal that interrupted the run, or None."""
        return self.received[0] if self.received else None

    @property
    def hard_stop(self):
        """True once a second signal has come: the wind-down ends at once."""
        return len(self.received) >= 2

    def drain(self):
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def sleep(self, seconds):
        """Wait ``seconds`` or until a signal arrives, whichever is first."""
        seen = len(self.received)
        deadline = time.monotonic() + seconds
        while len(self.received) == seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            select.select([self.read_fd], [], [], left)
            self.drain()


def become_subreaper():
    """Adopt orphaned descendants (Linux only); returns whether it worked."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def spawn_error_outcome(error):
    """The Outcome of a process that could not be started: 127 not found, 126 otherwise."""
    if error.errno == errno.ENOENT:
        return Outcome(exit_code=c.EXIT_NOT_FOUND,
                       spawn_error="not found (or its interpreter is missing)")
    return Outcome(exit_code=c.EXIT_NOT_EXECUTABLE,
                   spawn_error=f"cannot execute: {error.strerror or error}")


class Child:
    """A started process: its pid, the read ends of its output pipes (None when not
    captured) and, once reaped, its return code (negative: killed by that signal)."""

    def __init__(self, pid, stdout=None, stderr=None):
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = None


def resolve(argv0, env):
    """The path to execute for ``argv0``, looked up in the PATH the child will get (not
    hookrun's own); raises FileNotFoundError when there is none."""
    if "/" in argv0:
        return argv0
    import shutil

    found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "not found", argv0)
    return found


def stdin_action(stdin):
    if stdin is DEVNULL:
        return [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    if stdin is None:
        return []
    return [(os.POSIX_SPAWN_DUP2, stdin.fileno(), 0)]


def spawn(path, argv, env, actions, umask):
    """posix_spawn in a new session with default signal handling; the child gets ``umask``."""
    old = os.umask(umask) if umask >= 0 else None
    try:
        return os.posix_spawn(path, argv, env, file_actions=actions, setsid=True,
                              setsigdef=RESET_SIGNALS, setsigmask=())
    finally:
        if old is not None:
            os.umask(old)


def start(spec):
    """Start ``spec`` in a new session (posix_spawn: no Python between fork and exec); a file
    with no shebang runs under /bin/sh, as a shell would run it. Returns a Child; raises
    OSError when it cannot start."""
    actions = stdin_action(spec.stdin)
    if spec.hold_fd is not None:
        actions.append((os.POSIX_SPAWN_DUP2, spec.hold_fd, HELD_FD))
    pipes = []
    if spec.capture:
        # Python makes pipes close-on-exec; only the dup2 copies reach the child.
        pipes = [os.pipe(), os.pipe()]
        actions += [(os.POSIX_SPAWN_DUP2, pipes[0][1], 1), (os.POSIX_SPAWN_DUP2, pipes[1][1], 2)]
    argv = list(spec.argv)
    try:
        path = resolve(argv[0], spec.env)
        try:
            pid = spawn(path, argv, spec.env, actions, spec.umask)
        except OSError as error:
            if error.errno != errno.ENOEXEC:
                raise
            pid = spawn("/bin/sh", ["/bin/sh", path] + argv[1:], spec.env, actions, spec.umask)
    except BaseException:
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)
        raise
    for _read_end, write_end in pipes:
        os.close(write_end)
    return Child(pid, *(read_end for read_end, _write_end in pipes))


def protect_inherited_fds():
    """Mark every descriptor above stderr close-on-exec, so hooks get no file hookrun's own
    parent left open (posix_spawn does not close them as Popen's close_fds does)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


class Supervisor:
    """Runs processes one at a time under hookrun's rules; holds what outlives one process:
    the signals received and hookrun's own peak memory."""

    def __init__(self, signals):
        self.signals = signals
        self.own_peak = 0
        become_subreaper()
        protect_inherited_fds()

    def run(self, spec, sink):
        """Run ``spec`` to its end, handing output chunks to ``sink(stream, data)``.

        Returns an Outcome. Signals that arrive while it runs are forwarded (see module doc).
        """
        started = time.monotonic()
        try:
            proc = start(spec)
        except OSError as error:
            return spawn_error_outcome(error)
        watch = Watch(self, proc, spec, sink, started)
        try:
            return watch.loop()
        finally:
            watch.close()
            self.reap_orphans()

    def above_own_peak(self, kib):
        """Whether a child's ru_maxrss (KiB) exceeds hookrun's own peak (VmHWM), which Linux
        folds into every child's figure at exec. VmHWM only grows, so /proc is read only
        when a child's figure is above the last value read."""
        if kib <= self.own_peak:
            return False
        self.own_peak = vm_hwm()
        return kib > self.own_peak

    def reap_orphans(self, watched=None):
        """Collect the exit status of adopted orphans that have ended, so none stays a zombie
        (hookrun may be PID 1 in a container). Never ``watched``'s, the process a Watch
        waits for and reaps itself: an ended child is looked at (WNOWAIT) before its status
        is collected."""
        while True:
            try:
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None or ended.si_pid == watched:
                return
            os.waitpid(ended.si_pid, os.WNOHANG)

    def descendants(self, pid, cookie, also=()):
        """psutil Processes of ``pid``'s tree, of the trees of ``also``, and of the orphans
        hookrun adopted that carry ``cookie``: found by parentage in one pass over /proc."""
        import psutil

        me = os.getpid()
        children = {}
        for process in psutil.process_iter(["ppid"]):
            children.setdefault(process.info["ppid"], []).append(process)
        found = set()
        try:
            found.add(psutil.Process(pid))
        except psutil.Error:
            pass
        adopted = [p for p in children.get(me, []) if p.pid != pid and carries(p, cookie)]
        found.update(adopted)
        todo = [pid] + [p.pid for p in adopted] + [p.pid for p in also]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child.pid)
        return {p for p in found if p.pid != me}

    def end_leftovers(self, run_id, kill_grace):
        """End the processes a dead run left behind (found by their cookie): SIGTERM, then
        SIGKILL to those still there after ``kill_grace``; returns their descriptions. A
        second signal to hookrun cuts the grace short."""
        import psutil

        prefix = f"{run_id}/"
        leftovers = []
        for process in psutil.process_iter():
            value = cookie_of(process)
            if value and value.startswith(prefix) and process.pid != os.getpid():
                leftovers.append(process)
        if not leftovers:
            return []
        names = [describe(p) for p in leftovers]
        signal_all(leftovers, signal.SIGTERM)
        deadline = time.monotonic() + kill_grace
        while alive(leftovers) and time.monotonic() < deadline and not self.signals.hard_stop:
            self.signals.sleep(min(KILLED_POLL, max(0.0, deadline - time.monotonic())))
            self.reap_orphans()
        kill_all(alive(leftovers))
        deadline = time.monotonic() + AFTER_KILL_WAIT
        while alive(leftovers) and time.monotonic() < deadline:
            time.sleep(KILLED_TICK)
            self.reap_orphans()
        return names


class Watch:
    """The wait loop of one process; see Supervisor.run."""

    def __init__(self, supervisor, proc, spec, sink, started):
        self.supervisor = supervisor
        self.signals = supervisor.signals
        self.proc = proc
        self.spec = spec
        self.sink = sink
        self.started = started
        self.seen_signals = len(self.signals.received)
        self.poller = select.poll()
        self.streams = {}
        for name, fd in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if fd is not None:
                self.streams[fd] = name
                self.poller.register(fd, POLL_IN)
        self.pidfd = self.open_pidfd()
        self.poller.register(self.signals.read_fd, POLL_IN)
        self.deadline = started + spec.timeout if spec.timeout else None
        self.kill_at = None
        self.give_up_at = None
        self.drain_until = None
        self.tree = set()
        # A sink with a tick() is ticked about once a second once the process has run a
        # second (the terminal's live line, the history's view of a run going on).
        self.tick = getattr(sink, "tick", None)
        self.next_tick = started + c.LIVE_AFTER
        self.timed_out = False
        self.interrupted_by = None
        self.status = None
        self.rusage = None
        self.stragglers = ()

    def open_pidfd(self):
        try:
            fd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            return None
        self.poller.register(fd, POLL_IN)
        return fd

    def loop(self):
        while not self.finished():
            now = time.monotonic()
            for fd, _event in self.poller.poll(self.wait_ms(now)):
                self.handle(fd)
            if self.tick and time.monotonic() >= self.next_tick:
                self.tick(time.monotonic() - self.started)
                self.next_tick += c.LIVE_AFTER
            if self.pidfd is None and self.status is None:
                self.reap(os.WNOHANG)
            if self.signals.child_ended:
                self.signals.child_ended = False
                self.supervisor.reap_orphans(watched=self.proc.pid)
            self.check_signals()
            self.check_deadlines(time.monotonic())
        return self.outcome()

    def finished(self):
        if self.status is None:
            return False
        if self.kill_at is not None:
            return not self.streams and not self.tree_alive()
        return not self.streams

    def wait_ms(self, now):
        deadline = self.deadline if self.status is None and self.kill_at is None else None
        moments = [m for m in (deadline, self.kill_at,
                               self.give_up_at, self.drain_until,
                               self.next_tick if self.tick else None) if m is not None]
        wait = max(0.0, min(moments) - now) if moments else None
        if self.pidfd is None or (self.kill_at is not None and self.status is not None):
            # Nothing signals the end of a killed tree's other processes: look often.
            tick = KILLED_TICK if self.give_up_at is not None else NO_PIDFD_TICK
            wait = tick if wait is None else min(wait, tick)
        return MAX_WAIT_MS if wait is None else min(int(wait * 1000) + 1, MAX_WAIT_MS)

    def handle(self, fd):
        if fd in self.streams:
            data = os.read(fd, READ_SIZE)
            if data:
                self.sink(self.streams[fd], data)
            else:
                self.poller.unregister(fd)
                del self.streams[fd]
        elif fd == self.pidfd:
            self.reap(0)
        elif fd == self.signals.read_fd:
            self.signals.drain()

    def reap(self, flags):
        if self.status is not None:
            return
        pid, status, rusage = os.wait4(self.proc.pid, flags)
        if pid == 0:
            return
        self.status = status
        self.rusage = rusage
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.pidfd is not None:
            self.poller.unregister(self.pidfd)
        if self.streams:
            # A background process may hold the pipes open for ever: read on for a while only.
            self.drain_until = time.monotonic() + c.STRAY_DRAIN_SECONDS

    def check_signals(self):
        received = self.signals.received
        if len(received) == self.seen_signals:
            return
        self.seen_signals = len(received)
        if self.spec.shielded and not self.signals.hard_stop:
            return
        if self.status is not None and self.kill_at is None:
            self.stop_draining()
            return
        if self.interrupted_by is None:
            self.interrupted_by = received[-1]
        if self.signals.hard_stop:
            self.kill_tree()
        elif self.kill_at is None:
            self.terminate(received[-1])

    def check_deadlines(self, now):
        if self.status is None and self.deadline is not None and now >= self.deadline \
                and self.kill_at is None:
            self.timed_out = True
            self.terminate(signal.SIGTERM)
        if self.kill_at is not None and now >= self.kill_at and self.give_up_at is None:
            self.kill_tree()
        if self.give_up_at is not None and now >= self.give_up_at:
            self.stop_draining()
        if self.drain_until is not None and now >= self.drain_until and self.kill_at is None:
            self.stop_draining(report=True)

    def terminate(self, signum):
        """First step of a stop: ``signum`` to the group, SIGKILL to the tree after the grace."""
        signal_group(self.proc.pid, signum)
        self.kill_at = time.monotonic() + self.spec.kill_grace
        self.tree = self.supervisor.descendants(self.proc.pid, self.spec.cookie)

    def kill_tree(self):
        """SIGKILL to every process left: the group, the tree seen at SIGTERM, their children
        and any orphan hookrun adopted since."""
        signal_group(self.proc.pid, signal.SIGKILL)
        # The tree already known first, then whatever a fresh look at /proc finds.
        kill_all(self.tree)
        tree = self.tree | self.supervisor.descendants(self.proc.pid, self.spec.cookie,
                                                       also=self.tree)
        kill_all(tree - self.tree)
        self.tree = tree
        now = time.monotonic()
        self.kill_at = self.kill_at or now
        self.give_up_at = now + AFTER_KILL_WAIT

    def tree_alive(self):
        self.tree = set(alive(self.tree))
        return bool(self.tree)

    def stop_draining(self, report=False):
        """Stop reading pipes a stray background process holds open; name it if asked."""
        if report:
            strays = self.supervisor.descendants(self.proc.pid, self.spec.cookie)
            self.stragglers = tuple(sorted(describe(p) for p in strays))
        for fd in list(self.streams):
            self.poller.unregister(fd)
            del self.streams[fd]
        self.tree = set()
        self.drain_until = None
        if self.status is None:
            self.reap(os.WNOHANG)
        if self.status is None:
            # Not even SIGKILL ended it (a process stuck in the kernel): give it up as killed.
            self.status = -1
            self.proc.returncode = -signal.SIGKILL

    def outcome(self):
        code = self.proc.returncode
        killed_by = -code if code is not None and code < 0 else None
        exit_code = c.SIGNAL_EXIT_BASE + killed_by if killed_by else code
        cpu, rss = 0.0, None
        if self.rusage is not None:
            cpu = self.rusage.ru_utime + self.rusage.ru_stime
            if self.supervisor.above_own_peak(self.rusage.ru_maxrss):
                rss = self.rusage.ru_maxrss * 1024
        return Outcome(exit_code=exit_code, killed_by=killed_by, timed_out=self.timed_out,
                       interrupted_by=self.interrupted_by, cpu_seconds=round(cpu, 6),
                       max_rss_bytes=rss, stragglers=self.stragglers)

    def close(self):
        if self.status is None:
            # Only after an error in the loop: kill, but never wait without a deadline; a
            # later reap_orphans() collects it.
            self.kill_tree()
            self.reap(os.WNOHANG)
        for fd in (self.proc.stdout, self.proc.stderr):
            if fd is not None:
                os.close(fd)
        if self.pidfd is not None:
            os.close(self.pidfd)


def vm_hwm(pid="self"):
    """The peak resident set size of ``pid`` (hookrun's own by default) in KiB so far, from
    VmHWM in /proc; 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def kill_all(processes):
    signal_all(processes, signal.SIGKILL)


def signal_all(processes, signum):
    import psutil

    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.Error:
            pass


def alive(processes):
    """Those of ``processes`` that still run (neither gone nor zombies)."""
    import psutil

    found = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            pass
    return found


def cookie_of(process):
    """The HOOKRUN_TASK value in a psutil Process's environment, or None (also when it
    cannot be read: another user's, or gone)."""
    import psutil

    try:
        return process.environ().get(COOKIE)
    except psutil.Error:
        return None


def carries(process, cookie):
    return cookie is not None and cookie_of(process) == cookie


def signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def describe(process):
    """``pid NAME`` of a psutil Process, for reports."""
    try:
        return f"{process.pid} {process.name()}"
    except Exception:  # noqa: BLE001 - it may vanish while we look; the pid is enough
        return str(process.pid)
