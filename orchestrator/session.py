"""What every command that runs things holds (a Session: the state directory, the log, the
terminal, the signal watch, the process supervisor, the event lock, the run's directory)."""

from __future__ import annotations

import os
import time

from orchestrator.engine import Engine
from orchestrator.errors import LockBusy, StateError, UnsafeError
from orchestrator.files import NotOwnFile, NotRegularFile, output_file_problems
from orchestrator.process import Signals, Supervisor
from orchestrator.report.output import Reporter
from orchestrator.report.printer import Console
from orchestrator.state.cleanup import close_run_dir
from orchestrator.state.lock import WAIT_STEP, EventLock
from orchestrator.state.statedir import (
    RunDir,
    ensure_state_dir,
    live_rivals,
    process_start,
)
from orchestrator.text import display_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from orchestrator.plan.context import Context
    from orchestrator.report.logfile import LogFile
    from orchestrator.state.history import Progress


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


def check_output_files(paths: Mapping[str | None, bool]) -> None:
    """Refuse (UnsafeError, 77) to write a log or metrics file through another user's
    symbolic link, or to append to a log file another user owns or can write to.
    ``paths`` maps each path (None: not written) to whether it is appended to."""
    problems: list[str] = []
    for path, appended in paths.items():
        if path:
            problems += output_file_problems(path, appended)
    if problems:
        raise UnsafeError([f"unsafe output file: {line}" for line in problems])


def open_log(path: str | None, run_id: str, task_max_bytes: int | None = None,
             state_dir: str | None = None) -> tuple[LogFile | None, str | None]:
    """(the LogFile at ``path`` (parents created 0700), None) or (None, None) if logging is
    off; StateError. A FIFO or device there is no log file: (None, why), to warn of. A link
    at ``path`` of root's or the user's is followed, but not in ``state_dir``, where no link
    ever is (design.md section 8)."""
    if not path:
        return None, None
    from orchestrator.files import log_target
    from orchestrator.report.logfile import LogFile

    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        return LogFile(log_target(path, state_dir), run_id, task_max_bytes), None
    except NotRegularFile as error:
        return None, error.strerror
    except FileExistsError:
        raise StateError(f"cannot open log file {path}: {parent} is not a directory") from None
    except NotOwnFile as error:
        raise UnsafeError([f"unsafe output file: {error.strerror}"]) from None
    except OSError as error:
        raise StateError(f"cannot open log file {path}: {error.strerror or error}") from None


class Session:
    """The state directory (checked and created), the log, the terminal, the signal watch
    and the process supervisor of one command. Use as a context manager."""

    def __init__(self, ctx: Context, run_id: str, warnings: Iterable[str] = (),
                 metrics_file: str | None = None) -> None:
        self.ctx = ctx
        self.run_id = run_id
        ensure_state_dir(ctx.state_dir)
        check_output_files({ctx.log_file: True, metrics_file: False})
        console = Console(ctx.color, ctx.quiet, ctx.verbose)
        log, not_written = open_log(ctx.log_file, run_id, ctx.log_task_max_bytes,
                                    ctx.state_dir)
        self.reporter = Reporter(console, log)
        for warning in warnings:
            self.reporter.warn(warning)
        if not_written is not None:
            self.reporter.log_not_written(not_written)
        self.signals = Signals()
        self.supervisor: Supervisor | None = None  # made on entering: it becomes the subreaper
        self.lock: EventLock | None = None
        # of --wait: for the event lock, then for a recovery going on
        self.deadline: float | None = None

    def __enter__(self) -> Session:
        self.signals.install()
        self.supervisor = Supervisor(self.signals)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lock:
            self.lock.release()
        self.signals.restore()
        if self.reporter.log:
            self.reporter.log.close()

    def take_lock(self, wait: float | None) -> bool:
        """The event lock (LockBusy, 75); False if a signal came while waiting for it."""
        self.deadline = None if wait is None else time.monotonic() + wait
        self.lock = EventLock(self.ctx.state_dir, self.ctx.event)
        return self.lock.acquire(wait, self.signals)

    def open_run(self, command: Sequence[str] = (), recorded: bool = True,
                 progress: Progress | None = None) -> Engine | None:
        """Create the run's directory (locked for its life) and the Engine that runs its
        tasks, telling ``progress`` (the history of a run going on) of each; None if a signal
        came while it waited for a recovery. ``recorded`` False: no history row belongs to it
        (phase, recover). A run that holds the event lock gives
        way (LockBusy, 75) to any other live run of its event: that one took the lock too,
        so the lock file was deleted under it. (Two that start in the same instant of such
        a deletion may both give way: never both run.)"""
        exclusive = self.lock is not None
        meta: dict[str, str | int] = {"run_id": self.run_id, "event": self.ctx.event,
                                      "recorded": recorded, "exclusive": exclusive,
                                      "pid": os.getpid()}
        started = process_start(os.getpid()) if exclusive else None
        if started is not None:
            meta["pid_start"] = started
        run_dir = RunDir.create(self.ctx.state_dir, self.run_id, meta)
        if exclusive and not self.give_way(run_dir):
            run_dir.remove()
            return None
        # __enter__ made it: every command holds its Session in a with statement.
        assert self.supervisor is not None
        try:
            return Engine(self.ctx, self.reporter, self.supervisor, self.run_id, run_dir,
                          command, progress=progress)
        except OSError as error:
            run_dir.remove()
            raise StateError(f"cannot create the cleanup journal in {run_dir.path}: "
                             f"{error.strerror or error}") from None

    def give_way(self, run_dir: RunDir) -> bool:
        """Wait, up to the --wait deadline, until no other run of the event holds its run
        directory: a live one is a rival (LockBusy naming its pid); a dead one whose
        cleanups another process is running (a recovery) is waited for, and without --wait
        (or past it) is LockBusy saying so, never naming the dead run's pid. False if a
        signal came while waiting."""
        # Only open_run gives way, and only when this Session holds the event lock.
        assert self.lock is not None
        while True:
            rivals, recovering = live_rivals(self.ctx.state_dir, run_dir)
            if rivals:
                run_dir.remove()
                raise self.lock.busy(holder=rivals[0].get("pid"))
            if not recovering:
                return True
            if self.deadline is None or time.monotonic() >= self.deadline:
                run_dir.remove()
                advice = "gave up waiting" if self.deadline is not None else \
                    "try again later or use --wait"
                raise LockBusy(f"event '{self.ctx.event}': the cleanups of its crashed run "
                               f"{display_name(str(recovering[0].get('run_id')))} are being run "
                               f"by another process (a recovery); {advice}")
            self.signals.sleep(min(WAIT_STEP, max(0.0, self.deadline - time.monotonic())))
            if self.signals.first:
                return False

    def wait_for_recoveries(self, run_dir: RunDir) -> None:
        """After the run's own recovery: wait, up to the --wait deadline, for the recoveries
        of its event's crashed runs that another process took up meanwhile, so that no undo
        races the hooks of this run; past it, or without --wait, say so and go on."""
        while True:
            _rivals, recovering = live_rivals(self.ctx.state_dir, run_dir)
            if not recovering or self.signals.first:
                return
            if self.deadline is None or time.monotonic() >= self.deadline:
                self.reporter.recovery_goes_on(recovering[0].get("run_id"))
                return
            self.signals.sleep(min(WAIT_STEP, max(0.0, self.deadline - time.monotonic())))

    def close_run(self, engine: Engine) -> None:
        """Remove the run's directory, unless a second signal left cleanups pending in it
        for ``hookrun recover``, or its journal had lines that were not run."""
        close_run_dir(self.reporter, engine.run_dir, engine.journal, self.signals.hard_stop)
