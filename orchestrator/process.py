"""The only module that starts, watches and kills processes (design.md section 3).

Every hook and the command run in a session of their own. One loop per process waits, with a
deadline on every wait, for output, for the process's exit (a pidfd), for hookrun's own signals
(a wakeup pipe) and for the next deadline of its WatchState, the explicit state machine of a
watched process: running -> terminating -> killing -> draining -> done. A timeout or a signal
sends SIGTERM (or the received signal) to the process group, then after ``kill_grace`` SIGKILL
to every process left in the tree, including those that left the group. The group is
signalled by its id only while its leader is hookrun's unreaped child; afterwards that id may
be a stranger's, and the group's members are found as hookrun's adopted children in the
task's session or group, cookie or not, with their trees. hookrun is a child
subreaper on Linux, so orphans of a hook are adopted by hookrun and can still be found, killed
and reaped. Which task an adopted orphan belongs to is told by the cookie every task's
processes inherit (``HOOKRUN_TASK``), read from /proc only when something must be killed: a
daemon an earlier hook left running on purpose is not the business of a later hook's timeout.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import sys
import time
from collections import namedtuple

from orchestrator import constants as c
from orchestrator.files import find_in_path
from orchestrator.speed import libc_function, signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from resource import struct_rusage
    from types import FrameType
    from typing import Any, Final, NamedTuple

    import psutil
    from _typeshed import HasFileno

    from orchestrator.accounts import Identity

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20  # a chatty hook's output is read in large blocks (Linux's default cap)
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ from Python 3.10 on
PR_SET_CHILD_SUBREAPER = 36
NO_PIDFD_TICK = 0.05
KILLED_TICK = 0.005
KILLED_POLL = 0.05
HELD_FD = 3  # where Spec.hold_fd appears in the child
AFTER_KILL_WAIT = 5.0
POLL_IN = select.POLLIN | select.POLLHUP | select.POLLERR
MAX_WAIT = 60.0  # poll() takes a C int: a long timeout is waited for in steps
COOKIE = c.TASK_COOKIE
DEVNULL: Final = "/dev/null"  # Spec.stdin: read nothing (None inherits hookrun's stdin)
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Spec.capture: which of the process's streams hookrun reads through a pipe (the others it
# inherits from hookrun). The command on a terminal keeps stdout and hands stderr through.
CAPTURE_ALL = ("stdout", "stderr")
CAPTURE_STDERR = ("stderr",)
CAPTURE_NONE = ()
STREAM_FDS = (("stdout", 1), ("stderr", 2))


if TYPE_CHECKING:
    class SpecFields(NamedTuple):
        argv: Sequence[str]
        env: dict[str, str]
        timeout: float | None = None
        kill_grace: float = c.DEFAULT_KILL_GRACE
        capture: tuple[str, ...] = CAPTURE_ALL
        stdin: HasFileno | str | None = DEVNULL
        umask: int = -1
        shielded: bool = False
        hold_fd: int | None = None
        stall: float | None = None
        identity: Identity | None = None
        pass_fds: Sequence[int] = ()

    class ProcessResultFields(NamedTuple):
        exit_code: int | None
        killed_by: int | None = None
        timed_out: bool = False
        interrupted_by: int | None = None
        spawn_error: str | None = None
        cpu_seconds: float = 0.0
        max_rss_bytes: int | None = None
        stragglers: tuple[str, ...] = ()
        stalled: float | None = None

else:
    # The same fields as the classes above, which only the checker reads.
    SpecFields = namedtuple("Spec", "argv env timeout kill_grace capture stdin umask shielded "
                                    "hold_fd stall identity pass_fds",
                            defaults=(None, c.DEFAULT_KILL_GRACE, CAPTURE_ALL, DEVNULL, -1,
                                      False, None, None, None, ()))
    ProcessResultFields = namedtuple("ProcessResult",
                                     "exit_code killed_by timed_out interrupted_by spawn_error "
                                     "cpu_seconds max_rss_bytes stragglers stalled",
                                     defaults=(None, False, None, None, 0.0, None, (), None))


class Spec(SpecFields):
    """What to run. ``timeout`` 0 or None means none; ``stall`` (0 or None: none) is how long
    it may print nothing on the streams hookrun reads before that counts as a timeout too
    (what it writes to a stream it inherits, the terminal, is not seen); ``capture`` names
    the streams read through pipes (CAPTURE_ALL, CAPTURE_STDERR, CAPTURE_NONE): the others
    are hookrun's own stdout and stderr, written to directly; ``stdin`` None inherits
    hookrun's stdin. A ``shielded`` process (the wind-down: handlers, cleanups, finally.d)
    is not sent hookrun's first signal, only killed by a second one. ``hold_fd`` is handed
    to the child as fd 3. ``env`` carries the task's cookie (HOOKRUN_TASK). ``identity``
    (an Identity, hookrun being root) is whom it runs as; ``pass_fds`` are descriptors it
    inherits under their own numbers (only with an identity)."""

    __slots__ = ()

    @property
    def cookie(self) -> str | None:
        return self.env.get(COOKIE)


class ProcessResult(ProcessResultFields):
    """How a process ended. ``exit_code`` is shell-style (128+N for signal N); when it could
    not start, ``spawn_error`` says why and ``exit_code`` is 126 or 127. ``max_rss_bytes``
    is None when the process stayed below hookrun's own peak: Linux counts the memory of the
    parent a child was spawned from in the child's ru_maxrss, so smaller peaks are unknown.
    ``stalled``: the stall timeout (seconds) that ended it, when its timeout was one of
    printing nothing for that long."""

    __slots__ = ()


class Signals:
    """SIGINT, SIGTERM and SIGHUP, recorded for the main loop to act on; and SIGCHLD, noted
    so that orphans which end while a process is watched are reaped then, not when it ends.

    The handlers only append the number or set the flag; the wakeup pipe wakes any poll()
    that is waiting.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.child_ended = False
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.previous: dict[int, signal._HANDLER] = {}
        self.previous_wakeup: int | None = None

    def install(self) -> None:
        for signum in FORWARDED_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)
        self.previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, self._child_ended)
        self.previous_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.previous_wakeup is not None:
            signal.set_wakeup_fd(self.previous_wakeup)
        os.close(self.read_fd)
        os.close(self.write_fd)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def _child_ended(self, _signum: int, _frame: FrameType | None) -> None:
        self.child_ended = True

    @property
    def first(self) -> int | None:
        """The signal that interrupted the run, or None."""
        return self.received[0] if self.received else None

    @property
    def hard_stop(self) -> bool:
        """True once a second signal has come: the wind-down ends at once."""
        return len(self.received) >= 2

    def drain(self) -> None:
        """Empty the wakeup pipe: a read that returns less than it asked for took all
        there was (no read more to learn that it is empty)."""
        try:
            while len(os.read(self.read_fd, 512)) == 512:
                pass
        except BlockingIOError:
            pass

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until a signal arrives, whichever is first."""
        seen = len(self.received)
        deadline = time.monotonic() + seconds
        while len(self.received) == seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            select.select([self.read_fd], [], [], min(left, MAX_WAIT))
            self.drain()


# The states of a watched process.
RUNNING = "running"          # it runs; its timeout or its stall, if any, is the deadline
TERMINATING = "terminating"  # its group got SIGTERM (or hookrun's signal); kill_grace runs
KILLING = "killing"          # SIGKILL went to its tree; waiting a while for the tree to end
DRAINING = "draining"        # it ended, but something still holds its output open
DONE = "done"

# What the watching loop must do (WatchState tells it, the loop does it).
TERMINATE = "terminate"  # signal the group with WatchState.signum, note the tree
KILL = "kill"            # SIGKILL to the group and every process of the tree
STOP_READING = "stop reading and name the strays"
GIVE_UP = "give up"      # stop reading; a process SIGKILL did not end counts as killed


class WatchState:
    """The state machine of one watched process, without any I/O: events in (it exited, its
    output closed, a signal came, the clock moved), actions out, and one next deadline.

    ``tree_gone`` is how the loop reports that no process of a stopped tree is left; while
    ``watching_tree`` is true nothing else would tell, so the loop looks often.
    """

    __slots__ = ("state", "deadline", "grace", "shielded", "exited", "reading", "timed_out",
                 "interrupted_by", "signum", "timeout_at", "stall", "last_output", "stalled")

    def __init__(self, now: float, timeout: float | None, grace: float, shielded: bool = False,
                 stall: float | None = None) -> None:
        self.state = RUNNING
        self.timeout_at: float | None = now + timeout if timeout else None
        self.stall = stall or None
        self.last_output = now
        self.stalled = False
        self.deadline: float | None = self.running_deadline()
        self.grace = grace
        self.shielded = shielded
        self.exited = False
        self.reading = True
        self.timed_out = False
        self.interrupted_by: int | None = None
        self.signum: int | None = None

    @property
    def done(self) -> bool:
        return self.state == DONE

    @property
    def watching_tree(self) -> bool:
        return self.state in (TERMINATING, KILLING) and self.exited and not self.reading

    def go(self, state: str, deadline: float | None) -> None:
        self.state, self.deadline = state, deadline

    def running_deadline(self) -> float | None:
        """The deadline while it runs: its timeout, or ``stall`` after its last output."""
        moments: list[float | None] = [self.timeout_at]
        if self.stall:
            moments.append(self.last_output + self.stall)
        known = [moment for moment in moments if moment is not None]
        return min(known) if known else None

    def output_seen(self, now: float) -> None:
        """It printed something: its stall deadline moves on."""
        if self.stall and self.state == RUNNING:
            self.last_output = now
            self.deadline = self.running_deadline()

    def process_exited(self, now: float) -> None:
        """The watched process was reaped."""
        self.exited = True
        if self.state != RUNNING:
            return
        if self.reading:
            self.go(DRAINING, now + c.STRAY_DRAIN_SECONDS)
        else:
            self.go(DONE, None)

    def output_closed(self, now: float) -> None:
        """Its stdout and stderr reached end of file."""
        self.reading = False
        if self.state in (RUNNING, DRAINING) and self.exited:
            self.go(DONE, None)

    def tree_gone(self, now: float) -> None:
        """No process of the stopped tree is left."""
        if self.watching_tree:
            self.go(DONE, None)

    def signalled(self, signum: int, hard_stop: bool, now: float) -> str | None:
        """hookrun received ``signum`` (``hard_stop``: it is not the first); an action or
        None."""
        if self.state == DONE or (self.shielded and not hard_stop):
            return None
        if self.state == DRAINING:
            self.go(DONE, None)
            return GIVE_UP
        if self.interrupted_by is None:
            self.interrupted_by = signum
        if hard_stop and self.state != KILLING:
            self.go(KILLING, now + AFTER_KILL_WAIT)
            return KILL
        if self.state == RUNNING:
            self.signum = signum
            self.go(TERMINATING, now + self.grace)
            return TERMINATE
        return None

    def due(self, now: float) -> str | None:
        """The action the clock calls for at ``now``, or None."""
        if self.deadline is None or now < self.deadline:
            return None
        if self.state == RUNNING:
            self.timed_out = True
            self.stalled = bool(self.stall) and not (self.timeout_at is not None
                                                     and now >= self.timeout_at)
            self.signum = signal.SIGTERM
            self.go(TERMINATING, now + self.grace)
            return TERMINATE
        if self.state == TERMINATING:
            self.go(KILLING, now + AFTER_KILL_WAIT)
            return KILL
        if self.state == KILLING:
            self.go(DONE, None)
            return GIVE_UP
        if self.state == DRAINING:
            self.go(DONE, None)
            return STOP_READING
        return None

    def wait(self, now: float) -> float | None:
        """Seconds until the next deadline (None: none), no more than MAX_WAIT."""
        if self.deadline is None:
            return None
        return min(max(0.0, self.deadline - now), MAX_WAIT)


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux only); returns whether it worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return libc_function("prctl")(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError, ImportError):
        return False


def spawn_error_outcome(error: OSError) -> ProcessResult:
    """The ProcessResult of a process that could not be started: 127 not found, 126 otherwise."""
    if error.errno == errno.ENOENT:
        return ProcessResult(exit_code=c.EXIT_NOT_FOUND,
                       spawn_error="not found (or its interpreter is missing)")
    return ProcessResult(exit_code=c.EXIT_NOT_EXECUTABLE,
                   spawn_error=f"cannot execute: {error.strerror or error}")


class Child:
    """A started process: its pid, the read ends of its output pipes (None when not
    captured) and, once reaped, its return code (negative: killed by that signal)."""

    def __init__(self, pid: int, stdout: int | None = None, stderr: int | None = None) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None


def resolve(argv0: str, env: dict[str, str]) -> str:
    """The path to execute for ``argv0``, looked up in the PATH the child will get (not
    hookrun's own); raises FileNotFoundError when there is none."""
    if "/" in argv0:
        return argv0
    found = find_in_path(argv0, env.get("PATH"))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "not found", argv0)
    return found


def stdin_action(stdin: HasFileno | str | None) -> list[tuple[int | str, ...]]:
    if isinstance(stdin, str):  # DEVNULL, the only text a Spec takes
        return [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    if stdin is None:
        return []
    return [(os.POSIX_SPAWN_DUP2, stdin.fileno(), 0)]


def spawn(path: str, argv: list[str], env: dict[str, str], actions: list[tuple[int | str, ...]],
          umask: int) -> int:
    """posix_spawn in a new session with default signal handling; the child gets ``umask``."""
    old = os.umask(umask) if umask >= 0 else None
    try:
        return os.posix_spawn(path, argv, env, file_actions=actions, setsid=True,
                              setsigdef=RESET_SIGNALS, setsigmask=())
    finally:
        if old is not None:
            os.umask(old)


def spawn_as(path: str, argv: list[str], spec: Spec, stdin: int | None, stdout: int | None,
             stderr: int | None) -> int:
    """Start ``argv`` (the file ``path``) as ``spec.identity``, in a new session: the C
    fork-exec of subprocess sets the groups, gid and uid between fork and exec, which
    posix_spawn cannot. Returns the pid; OSError when it cannot start."""
    import subprocess

    identity = spec.identity
    assert identity is not None  # start() calls start_as only for a Spec with an identity
    popen = subprocess.Popen(
        argv, executable=path, env=spec.env, stdin=stdin, stdout=stdout, stderr=stderr,
        pass_fds=tuple(spec.pass_fds), start_new_session=True, restore_signals=True,
        user=identity.uid, group=identity.gid, extra_groups=list(identity.groups),
        umask=spec.umask)
    # The Watch reaps it (wait4); Popen must never wait for it, nor its __del__.
    popen.returncode = 0
    return popen.pid


def start(spec: Spec) -> Child:
    """Start ``spec`` in a new session (posix_spawn: no Python between fork and exec; as
    another identity, subprocess's fork-exec); a file with no shebang runs under /bin/sh, as
    a shell would run it. Returns a Child; raises OSError when it cannot start."""
    if spec.identity is not None:
        return start_as(spec)
    actions = stdin_action(spec.stdin)
    if spec.hold_fd is not None:
        actions.append((os.POSIX_SPAWN_DUP2, spec.hold_fd, HELD_FD))
    pipes = {}
    for name, target in STREAM_FDS:
        if name in spec.capture:
            # Python makes pipes close-on-exec; only the dup2 copy reaches the child.
            read_end, write_end = pipes[name] = os.pipe()
            enlarge_pipe(read_end)
            actions.append((os.POSIX_SPAWN_DUP2, write_end, target))
    return launched(spec, pipes,
                    lambda path, argv: spawn(path, argv, spec.env, actions, spec.umask))


def launched(spec: Spec, pipes: dict[str, tuple[int, int]],
             spawn_one: Callable[[str, list[str]], int]) -> Child:
    """The Child of ``spec`` started by ``spawn_one(path, argv)`` (a pid), with ``pipes``
    ({stream: (read end, write end)}): a file with no shebang runs under /bin/sh, as a shell
    would run it; the write ends are closed here once the child has them. OSError when it
    cannot start, every pipe closed."""
    argv = list(spec.argv)
    try:
        path = resolve(argv[0], spec.env)
        try:
            pid = spawn_one(path, argv)
        except OSError as error:
            if error.errno != errno.ENOEXEC:
                raise
            pid = spawn_one("/bin/sh", ["/bin/sh", path] + argv[1:])
    except BaseException:
        for read_end, write_end in pipes.values():
            os.close(read_end)
            os.close(write_end)
        raise
    for _read_end, write_end in pipes.values():
        os.close(write_end)
    return Child(pid, **{name: ends[0] for name, ends in pipes.items()})


def start_as(spec: Spec) -> Child:
    """start() for a Spec with an identity."""
    import subprocess

    pipes: dict[str, tuple[int, int]] = {}
    for name, _target in STREAM_FDS:
        if name in spec.capture:
            read_end, _write_end = pipes[name] = os.pipe()
            enlarge_pipe(read_end)
    stdin: int | None
    if isinstance(spec.stdin, str):  # DEVNULL, the only text a Spec takes
        stdin = subprocess.DEVNULL
    else:
        stdin = None if spec.stdin is None else spec.stdin.fileno()
    streams = {name: ends[1] for name, ends in pipes.items()}
    return launched(spec, pipes, lambda path, argv: spawn_as(
        path, argv, spec, stdin, streams.get("stdout"), streams.get("stderr")))


def enlarge_pipe(fd: int) -> None:
    """Let the pipe hold PIPE_SIZE bytes, so a hook that prints a lot is read in a few large
    blocks rather than many 64 KiB ones; where it may not (a lower pipe-max-size), it stays.
    Done at creation: the hook sees the size (F_GETPIPE_SZ) from its start."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


def protect_inherited_fds() -> None:
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
    the signals received and hookrun's own peak memory. ``clock`` is a seam for tests."""

    def __init__(self, signals: Signals, clock: Callable[[], float] = time.monotonic) -> None:
        self.signals = signals
        self.clock = clock
        self.own_peak = 0
        become_subreaper()
        protect_inherited_fds()

    def run(self, spec: Spec, sink: Callable[[str, bytes], object]) -> ProcessResult:
        """Run ``spec`` to its end, handing output chunks to ``sink(stream, data)`` (and,
        about once a second once it has run a second, ``sink.tick(elapsed)``).

        Returns an ProcessResult. Signals that arrive while it runs are forwarded (see module doc).
        """
        started = self.clock()
        # Signals from now on are this process's: one that comes while it starts, before the
        # Watch exists, must still reach it.
        seen = len(self.signals.received)
        try:
            proc = start(spec)
        except OSError as error:
            return spawn_error_outcome(error)
        watch = Watch(self, proc, spec, sink, started, seen)
        try:
            return watch.loop()
        finally:
            watch.close()
            self.reap_orphans()

    def above_own_peak(self, kib: int) -> bool:
        """Whether a child's ru_maxrss (KiB) exceeds hookrun's own peak (VmHWM), which Linux
        folds into every child's figure at exec. VmHWM only grows, so /proc is read only
        when a child's figure is above the last value read."""
        if kib <= self.own_peak:
            return False
        self.own_peak = vm_hwm()
        return kib > self.own_peak

    def reap_orphans(self, watched: int | None = None) -> None:
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

    def descendants(self, pid: int, cookie: str | None, also: Iterable[psutil.Process] = (),
                    leader: bool = True) -> set[psutil.Process]:
        """psutil Processes of the task whose first process is ``pid``, found in one pass over
        /proc: ``pid`` and its tree while ``leader`` says it is hookrun's own unreaped child
        (only then is that pid surely the task's); the orphans hookrun adopted that are in the
        task's session or process group, or carry ``cookie``, and their trees; and the trees of
        those of ``also`` that still run. A process that merely got a recycled pid is none of
        these."""
        import psutil

        me = os.getpid()
        children: dict[int, list[psutil.Process]] = {}
        for process, ppid in every_process("ppid"):
            children.setdefault(ppid, []).append(process)
        found, todo = set(), []
        if leader:
            try:
                found.add(psutil.Process(pid))
            except (psutil.Error, OSError):
                pass
            todo.append(pid)
        roots = [p for p in children.get(me, [])
                 if p.pid != pid and (in_session_of(p.pid, pid) or carries(p, cookie))]
        # Looked at after /proc was read: a known process that ended since, and whose pid
        # went to a stranger, is not alive() (psutil compares start times).
        roots += alive(also)
        found.update(roots)
        todo += [p.pid for p in roots]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child.pid)
        return {p for p in found if p.pid != me}

    def end_leftovers(self, run_id: str, kill_grace: float) -> list[str]:
        """End the processes a dead run left behind (found by their cookie, among those whose
        real user is hookrun's): SIGTERM, then
        SIGKILL to those still there after ``kill_grace``; returns their descriptions. A
        second signal to hookrun cuts the grace short."""

        prefix, uid = f"{run_id}/", os.getuid()
        leftovers = []
        # Only the user's own: anyone can put a dead run's id into a process's environment.
        for process, uids in every_process("uids"):
            if uids.real != uid or process.pid == os.getpid():
                continue
            value = cookie_of(process)
            if value and value.startswith(prefix):
                leftovers.append(process)
        if not leftovers:
            return []
        names = [describe(p) for p in leftovers]
        signal_all(leftovers, signal.SIGTERM)
        deadline = self.clock() + kill_grace
        while alive(leftovers) and self.clock() < deadline and not self.signals.hard_stop:
            self.signals.sleep(min(KILLED_POLL, max(0.0, deadline - self.clock())))
            self.reap_orphans()
        kill_all(alive(leftovers))
        deadline = self.clock() + AFTER_KILL_WAIT
        while alive(leftovers) and self.clock() < deadline:
            time.sleep(KILLED_TICK)
            self.reap_orphans()
        return names


class Watch:
    """The waiting loop of one process: it does the I/O, its WatchState decides. See
    Supervisor.run."""

    def __init__(self, supervisor: Supervisor, proc: Child, spec: Spec,
                 sink: Callable[[str, bytes], object], started: float,
                 seen_signals: int) -> None:
        self.supervisor = supervisor
        self.clock = supervisor.clock
        self.signals = supervisor.signals
        self.proc = proc
        self.spec = spec
        self.sink = sink
        self.started = started
        self.seen_signals = seen_signals  # how many of signals.received came before it
        self.stop = WatchState(started, spec.timeout, spec.kill_grace, spec.shielded, spec.stall)
        self.poller = select.poll()
        self.streams = {}
        for name, fd in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if fd is not None:
                self.streams[fd] = name
                self.poller.register(fd, POLL_IN)
        if not self.streams:
            self.stop.output_closed(started)
        self.pidfd = self.open_pidfd()
        self.poller.register(self.signals.read_fd, POLL_IN)
        self.tree: set[psutil.Process] = set()
        # The sink's tick(): the terminal's live line, the history's view of a run going on.
        self.tick = getattr(sink, "tick", None)
        self.next_tick = started + c.LIVE_AFTER
        self.status: int | None = None
        self.rusage: struct_rusage | None = None
        self.stragglers: tuple[str, ...] = ()

    def open_pidfd(self) -> int | None:
        try:
            fd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            return None
        self.poller.register(fd, POLL_IN)
        return fd

    def loop(self) -> ProcessResult:
        stop = self.stop
        signals = self.signals
        # The wakeup byte of the last process's SIGCHLD, written as or after the poll that saw
        # it end returned, is read now: left there, it would wake this first poll for nothing.
        # A signal whose byte this takes is still acted on at once: see wait_ms.
        signals.drain()
        poll, clock, handle = self.poller.poll, self.clock, self.handle
        while not stop.done:
            for fd, _event in poll(self.wait_ms(clock())):
                handle(fd)
            now = clock()
            if self.pidfd is None and self.status is None:
                self.reap(os.WNOHANG)
            if signals.child_ended:
                signals.child_ended = False
                # Once it is done, Supervisor.run reaps the ended orphans right after.
                if not stop.done:
                    self.supervisor.reap_orphans(watched=self.proc.pid)
            if self.seen_signals < len(signals.received):
                self.check_signals(now)
            if stop.deadline is not None:
                self.act(stop.due(now))
            if stop.watching_tree and not self.tree_alive():
                stop.tree_gone(now)
            if self.tick and now >= self.next_tick:
                self.tick(now - self.started)
                self.next_tick = now + c.LIVE_AFTER
        return self.outcome()

    def wait_ms(self, now: float) -> int:
        """How long poll() may wait: until the next deadline or tick, and not long at all
        while a killed tree dies or there is no pidfd (nothing signals those); not at all
        while a signal received is not acted on yet (loop() may have drained its wakeup
        byte)."""
        if self.seen_signals < len(self.signals.received):
            return 0
        stop = self.stop
        if stop.deadline is None and stop.state == RUNNING and self.pidfd is not None:
            # The common case, a process with no timeout that runs: only the tick counts.
            if self.tick:
                return int(min(max(0.0, self.next_tick - now), MAX_WAIT) * 1000) + 1
            return int(MAX_WAIT * 1000)
        moments: list[float | None] = [self.stop.wait(now)]
        if self.tick:
            moments.append(max(0.0, self.next_tick - now))
        if self.stop.watching_tree:
            moments.append(KILLED_TICK if self.stop.state == KILLING else NO_PIDFD_TICK)
        elif self.pidfd is None and self.status is None:
            moments.append(NO_PIDFD_TICK)
        known = [m for m in moments if m is not None]
        return int(min(min(known), MAX_WAIT) * 1000) + 1 if known else int(MAX_WAIT * 1000)

    def handle(self, fd: int) -> None:
        if fd in self.streams:
            data = os.read(fd, READ_SIZE)
            if data:
                self.stop.output_seen(self.clock())
                self.sink(self.streams[fd], data)
            else:
                self.close_stream(fd)
        elif fd == self.pidfd:
            self.reap(0)
        elif fd == self.signals.read_fd:
            self.signals.drain()

    def close_stream(self, fd: int) -> None:
        self.poller.unregister(fd)
        del self.streams[fd]
        if not self.streams:
            self.stop.output_closed(self.clock())

    def reap(self, flags: int) -> None:
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
        self.stop.process_exited(self.clock())

    def check_signals(self, now: float) -> None:
        received = self.signals.received
        while self.seen_signals < len(received):
            signum = received[self.seen_signals]
            self.seen_signals += 1
            self.act(self.stop.signalled(signum, self.seen_signals >= 2, now))

    def act(self, action: str | None) -> None:
        """Do what the WatchState decided."""
        if action == TERMINATE:
            assert self.stop.signum is not None  # the WatchState sets it with TERMINATE
            self.signal_group(self.stop.signum)
            self.tree = self.task_processes()
        elif action == KILL:
            self.kill_tree()
        elif action in (STOP_READING, GIVE_UP):
            self.stop_reading(report=action == STOP_READING)

    def kill_tree(self) -> None:
        """SIGKILL to every process left: the group, the tree seen at SIGTERM, their children
        and the adopted orphans that carry the task's cookie."""
        self.signal_group(signal.SIGKILL)
        # The tree already known first, then whatever a fresh look at /proc finds.
        kill_all(self.tree)
        tree = self.tree | self.task_processes(also=self.tree)
        kill_all(tree - self.tree)
        self.tree = tree

    def signal_group(self, signum: int) -> None:
        """Signal the process group, but only while its leader is hookrun's unreaped child:
        once reaped, its pid (the group's id) may be any other process's, a stranger's that
        setsid made a group leader too. Its group is then found by task_processes()."""
        if self.status is None:
            signal_group(self.proc.pid, signum)

    def task_processes(self, also: Iterable[psutil.Process] = ()) -> set[psutil.Process]:
        return self.supervisor.descendants(self.proc.pid, self.spec.cookie, also,
                                           leader=self.status is None)

    def tree_alive(self) -> bool:
        """Whether a process of the stopped task is left. Once none of those known is, /proc
        is read again before saying no: the first look can miss an orphan whose parent died
        while /proc was read and whose cookie could not be read then (it was being exec'd).
        One found now is sent SIGKILL if the tree already was."""
        self.tree = set(alive(self.tree))
        if not self.tree:
            self.tree = set(alive(self.task_processes()))
            if self.stop.state == KILLING:
                kill_all(self.tree)
        return bool(self.tree)

    def stop_reading(self, report: bool = False) -> None:
        """Stop reading pipes a stray background process holds open (naming it if asked);
        a process that not even SIGKILL ended (stuck in the kernel) is given up as killed."""
        if report:
            strays = self.task_processes()
            self.stragglers = tuple(sorted(describe(p) for p in strays))
        for fd in list(self.streams):
            self.poller.unregister(fd)
            del self.streams[fd]
        if self.status is None:
            self.reap(os.WNOHANG)
        if self.status is None:
            self.status = -1
            self.proc.returncode = -signal.SIGKILL

    def outcome(self) -> ProcessResult:
        code = self.proc.returncode
        killed_by = -code if code is not None and code < 0 else None
        exit_code = c.SIGNAL_EXIT_BASE + killed_by if killed_by else code
        cpu, rss = 0.0, None
        if self.rusage is not None:
            cpu = self.rusage.ru_utime + self.rusage.ru_stime
            if self.supervisor.above_own_peak(self.rusage.ru_maxrss):
                rss = self.rusage.ru_maxrss * 1024
        stop = self.stop
        return ProcessResult(exit_code, killed_by, stop.timed_out, stop.interrupted_by, None,
                             round(cpu, 6), rss, self.stragglers,
                             stop.stall if stop.stalled else None)

    def close(self) -> None:
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


def vm_hwm(pid: int | str = "self") -> int:
    """The peak resident set size of ``pid`` (hookrun's own by default) in KiB so far, from
    VmHWM in /proc; 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def every_process(attribute: str) -> list[tuple[psutil.Process, Any]]:
    """(psutil Process, its ``attribute``) of every process that can be looked at. One that
    ends while /proc is read is passed over, also when psutil lets /proc's own error through
    (FileNotFoundError when its pid went to another process meanwhile), which
    psutil.process_iter would raise in the middle of the walk."""
    import psutil

    found = []
    for pid in psutil.pids():
        try:
            process = psutil.Process(pid)
            found.append((process, getattr(process, attribute)()))
        except (psutil.Error, OSError):
            continue
    return found


def kill_all(processes: Iterable[psutil.Process]) -> None:
    signal_all(processes, signal.SIGKILL)


def signal_all(processes: Iterable[psutil.Process], signum: int) -> None:
    import psutil

    for process in processes:
        try:
            process.send_signal(signum)
        except (psutil.Error, OSError):
            pass


def alive(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` that still run (neither gone nor zombies)."""
    import psutil

    found = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.Error, OSError):  # psutil lets /proc's error through in a pid race
            pass
    return found


def cookie_of(process: psutil.Process) -> str | None:
    """The HOOKRUN_TASK value in a psutil Process's environment, or None (also when it
    cannot be read: another user's, or gone)."""
    import psutil

    try:
        return process.environ().get(COOKIE)
    except (psutil.Error, OSError):
        return None


def carries(process: psutil.Process, cookie: str | None) -> bool:
    return cookie is not None and cookie_of(process) == cookie


def in_session_of(pid: int, leader: int) -> bool:
    """Whether the process ``pid``, a child of hookrun, is in the session or the process group
    that the process ``leader`` made (setsid). Safe from recycled pids: a child's pid is not
    reused before hookrun reaps it, and Linux does not hand out a pid while a live process
    still has it as its session or group id; so a process found here is the task's, whether
    or not it kept the task's cookie."""
    try:
        return leader in (os.getsid(pid), os.getpgid(pid))
    except OSError:
        return False


def signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def describe(process: psutil.Process) -> str:
    """``pid NAME`` of a psutil Process, for reports."""
    try:
        return f"{process.pid} {process.name()}"
    except Exception:  # noqa: BLE001 - it may vanish while we look; the pid is enough
        return str(process.pid)
