"""Runs the tasks of a run: the hooks, the command, the deferred cleanups, the notify command.

Every task goes through one skeleton, ``run_task``: its output sink, its cookie, each attempt
spawned by the Supervisor and judged by ``outcome.judge``, retries, the hand-off, the strays,
its record. What differs between tasks is data: a Task. The lifecycle in run.py decides what
runs and what follows.
"""

from __future__ import annotations

import os
import sys
import time
from collections import namedtuple

from orchestrator import constants as c
from orchestrator import shell
from orchestrator.accounts import Identity, as_identity_argv, identity_of, identity_of_uid
from orchestrator.environment import TaskEnvironment
from orchestrator.errors import StateError
from orchestrator.files import write_private
from orchestrator.outcome import (
    OnFailure,
    TaskRecord,
    TaskStatus,
    cannot_start,
    judge,
)
from orchestrator.plan.settings import resolve, retry_delays
from orchestrator.process import (
    CAPTURE_ALL,
    CAPTURE_STDERR,
    DEVNULL,
    Spec,
)
from orchestrator.state.cleanup import CLEANUP_WRAPPER, Journal, Replay
from orchestrator.text import display_name
from orchestrator.timestamps import now_iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from typing import IO, Any, NamedTuple

    from orchestrator.environment import EnvFunction
    from orchestrator.plan.context import Context, PlannedHook
    from orchestrator.process import ProcessResult, Supervisor
    from orchestrator.report.output import Reporter, TaskOutput
    from orchestrator.state.history import Progress
    from orchestrator.state.statedir import RunDir

WIND_DOWN = (c.PHASE_ON_ERROR, c.PHASE_ON_SUCCESS, c.PHASE_FINALLY)

# Task is a collections.namedtuple at run time (typing costs start-up); the checker sees a
# typed twin: the same fields, in the same order, with the same defaults.
if TYPE_CHECKING:
    class TaskFields(NamedTuple):
        phase: str
        name: str
        where: str
        argv: tuple[str, ...]
        env: EnvFunction
        timeout: float | None
        on_failure: str = OnFailure.WARN
        retries: int = 0
        retry_delay: float = 0.0
        shielded: bool = False
        capture: tuple[str, ...] = CAPTURE_ALL
        stdin: str | IO[bytes] | None = DEVNULL
        hold_fd: int | None = None
        handoff: bool = False
        recorded: bool = True
        warning_codes: Collection[int] = frozenset()
        retry_codes: Collection[int] = frozenset()
        keep_stdout: bool = False
        stall: float = 0.0
        identity: Identity | None = None
        pass_fds: Sequence[int] = ()
else:
    TaskFields = namedtuple("Task", "phase name where argv env timeout on_failure retries "
                                    "retry_delay shielded capture stdin hold_fd handoff recorded "
                                    "warning_codes retry_codes keep_stdout stall identity pass_fds",
                            defaults=(OnFailure.WARN, 0, 0.0, False, CAPTURE_ALL, DEVNULL, None,
                                      False, True, frozenset(), frozenset(), False, 0.0, None,
                                      ()))

class Task(TaskFields):
    """What is particular to one task: its phase and name (``where`` as the terminal and
    the log name it), what to run, its environment (a function of the attempt number), its
    timeout and retries, what its failure does, whether it is shielded from a first signal,
    which of its output streams are captured (Spec.capture), its stdin, a descriptor it
    holds as fd 3, whether a success hands its HOOKRUN_ENV values on, whether it is a task
    of the run's record, the exit statuses that are only a warning, the exit statuses that
    alone are retried (empty: any failure that allows a retry), whether its stdout is kept
    apart (the command's, for its statistics), how long it may print nothing before that is
    a timeout (0: for ever), whom it runs as (an accounts.Identity, or None) and the
    descriptors it inherits then."""

    __slots__ = ()


class Engine:
    """Executes tasks for one run directory. ``later_env`` holds the variables the lifecycle
    adds from post- on (HOOKRUN_STATUS, HOOKRUN_ERROR, ...), set with set_later_env().
    ``clock`` is a seam for tests."""

    def __init__(self, ctx: Context, reporter: Reporter, supervisor: Supervisor, run_id: str,
                 run_dir: RunDir, command: Sequence[str] = (),
                 clock: Callable[[], float] = time.monotonic,
                 progress: Progress | None = None) -> None:
        self.ctx = ctx
        self.reporter = reporter
        self.supervisor = supervisor
        self.signals = supervisor.signals
        self.clock = clock
        self.run_id = run_id
        self.run_dir = run_dir
        self.journal = Journal(run_dir.path)
        # the HOOKRUN_STATS files of user= hooks, read after the run's
        self.stats_files: list[str] = []
        self.tasks_started = 0
        self.replay = Replay(self)
        # Told of each task's start and end (the history of a run going on), if given.
        self.progress = progress
        self.journal.create()
        self.own_bin = write_own_command(run_dir)
        self.env = TaskEnvironment(ctx, reporter, run_id, run_dir, self.journal.path, command,
                                   self.own_bin)

    # The environment

    def set_previous(self, run_id: str | None, status: str | None) -> None:
        self.env.set_previous(run_id, status)

    def set_dry_run(self) -> None:
        self.env.set_dry_run()

    def set_later_env(self, values: dict[str, str]) -> None:
        self.env.set_later_env(values)

    # The skeleton

    def run_task(self, task: Task, handoff_file: str | None = None) -> TaskRecord:
        """Run ``task`` with its retries; returns its TaskRecord (reported, and told to the
        progress, if it is ``recorded``). ``handoff_file``: its HOOKRUN_ENV file, when it
        is not the run's (a hook run as another user)."""
        output = self.reporter.sink(task.where)
        if "stdout" not in task.capture:
            # A process that writes to the terminal itself must not have a live line garble
            # it; what it writes to a stream hookrun reads goes on to the terminal unchanged.
            output.live = False
            output.passed = task.capture
        if task.keep_stdout:
            output.keep_stdout()
        started, began = now_iso(), self.clock()
        cookie = f"{self.run_id}/{self.tasks_started + 1}"
        self.tasks_started += 1
        if task.recorded:
            self.task_started(task.phase, task.name, started)
        cpu, attempt = 0.0, 0
        rss: int | None = None
        while True:
            attempt += 1
            self.reporter.started(task.where, attempt)
            outcome = self.supervisor.run(Spec(
                argv=task.argv, env=task.env(attempt, cookie), timeout=task.timeout or None,
                kill_grace=self.ctx.kill_grace, capture=task.capture, stdin=task.stdin,
                umask=self.ctx.umask, shielded=task.shielded, hold_fd=task.hold_fd,
                stall=task.stall, identity=task.identity, pass_fds=task.pass_fds), output)
            output.finish()
            cpu += outcome.cpu_seconds
            if outcome.max_rss_bytes is not None:
                rss = max(rss or 0, outcome.max_rss_bytes)
            judgement = judge(task.phase, outcome, task.on_failure, task.warning_codes,
                              task.timeout)
            self.report_strays(task.where, outcome)
            if judgement.notice:
                self.reporter.hook_notice(task.where, judgement.notice)
            succeeded = judgement.status in TaskStatus.SUCCEEDED
            if handoff_file:
                self.env.collect_user_handoff(task.where, handoff_file, succeeded)
            else:
                self.env.collect_handoff(task.where, task.handoff and succeeded)
            if not judgement.retry or attempt > task.retries or self.signals.first or \
                    task.retry_codes and outcome.exit_code not in task.retry_codes:
                break
            delay = retry_delays(task.retry_delay, task.retries)[attempt - 1]
            self.reporter.retrying(task.where, judgement.reason, attempt, task.retries, delay)
            self.signals.sleep(delay)
            if self.signals.first:
                break
        record = TaskRecord(task.phase, task.name, judgement.status, judgement.exit_code,
                            attempt, started, round(self.clock() - began, 6), round(cpu, 6), rss,
                            judgement.reason, output.tail_text(), judgement.verdict,
                            *said_of(judgement.status, output))
        if task.recorded:
            self.reporter.finished(task.where, record)
            self.task_finished(record)
        return record

    def report_strays(self, where: str, outcome: ProcessResult) -> None:
        if outcome.stragglers:
            self.reporter.strays(where, outcome.stragglers)

    def task_started(self, phase: str, name: str, started: str | None) -> None:
        if self.progress:
            self.progress.started(phase, name, started)

    def task_finished(self, record: TaskRecord) -> None:
        if self.progress:
            self.progress.finished(record)

    # The tasks

    def run_hook(self, hook: PlannedHook, index: int, count: int) -> TaskRecord:
        """Run a PlannedHook with its retries; returns its TaskRecord."""
        entry, settings = hook.entry, hook.settings
        phase = entry.phase_dir.phase
        where = f"{phase}/{display_name(entry.name)}"
        self.reporter.hook_settings(where, settings)
        task = Task(
            phase=phase, name=entry.name, where=where, argv=(entry.path,),
            env=self.env.hook_env(phase, entry.name, entry.path, index, count),
            timeout=settings.timeout, on_failure=settings.on_failure, retries=settings.retries,
            retry_delay=settings.retry_delay, warning_codes=settings.warning_codes,
            shielded=phase in WIND_DOWN, handoff=True, stall=settings.stall)
        identity = None
        if settings.user is not None or settings.group is not None:
            identity = identity_of(settings.user, settings.group)
        if identity is None:
            return self.run_task(task)
        return self.run_as(task, identity)

    def run_as(self, task: Task, identity: Identity) -> TaskRecord:
        """Run a hook ``task`` as ``identity``: its cleanup journal (with marks), its
        HOOKRUN_ENV and HOOKRUN_STATS files and hookrun's own command reach it as inherited
        descriptors (/dev/fd/N), files hookrun made for that user in the run directory, which
        stays root's: no path it could open, and none another user could redirect."""
        number = self.tasks_started + 1
        sub = Journal(self.run_dir.path, f"{c.SUB_JOURNAL_PREFIX}{number}")
        env_path = self.run_dir.file(f"{c.RUN_ENV_FILE}.task-{number}")
        stats_path = self.run_dir.file(f"{c.RUN_STATS_FILE}.task-{number}")
        fds: list[int] = []
        try:
            fds += sub.create_for(identity.uid, identity.gid)
            self.journal.add_sub(os.path.basename(sub.path))
            for path in (env_path, stats_path):
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
                fds.append(fd)
                os.fchown(fd, identity.uid, identity.gid)
            self.stats_files.append(stats_path)
            fds.append(os.open(self.own_bin, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as error:
            for fd in fds:
                os.close(fd)
            raise StateError(f"{task.where}: cannot prepare its files for user "
                              f"{identity.name}: {error.strerror or error}") from None
        journal_fd, marks_fd, env_fd, stats_fd, bin_fd = fds
        hook_env = task.env

        def env(attempt: int, cookie: str) -> dict[str, str]:
            found = dict(hook_env(attempt, cookie))
            found.update({"HOME": identity.home, "USER": identity.name,
                          "LOGNAME": identity.name,
                          "HOOKRUN_CLEANUP": f"/dev/fd/{journal_fd}",
                          "HOOKRUN_CLEANUP_MARKS": f"/dev/fd/{marks_fd}",
                          "HOOKRUN_ENV": f"/dev/fd/{env_fd}",
                          "HOOKRUN_STATS": f"/dev/fd/{stats_fd}"})
            found["PATH"] = found["PATH"].replace(self.own_bin, f"/dev/fd/{bin_fd}")
            return found

        try:
            return self.run_task(task._replace(env=env, identity=identity, pass_fds=fds,
                                               handoff=False),
                                 handoff_file=env_path)
        finally:
            for fd in fds:
                os.close(fd)

    def cannot_start(self, hook: PlannedHook) -> TaskRecord:
        """The TaskRecord of a PlannedHook that cannot start (``hook.entry.fails``): a failure
        with that reason, never retried, judged by the hook's settings (outcome.cannot_start)."""
        entry = hook.entry
        where = f"{entry.phase_dir.phase}/{display_name(entry.name)}"
        judgement = cannot_start(entry.fails, hook.settings.on_failure)
        record = TaskRecord(entry.phase_dir.phase, entry.name, judgement.status, None, 1, now_iso(),
                            0.0, reason=judgement.reason, verdict=judgement.verdict)
        self.task_started(record.phase, record.name, record.started)
        self.reporter.finished(where, record)
        self.task_finished(record)
        return record

    def run_command(self, argv: Sequence[str]) -> TaskRecord:
        """Run the command: stdin inherited; output captured, except that on a terminal it
        keeps stdout (progress bars, prompts) and its stderr passes through hookrun, which
        keeps it for HOOKRUN_ERROR, the error log, the log file and the history."""
        name = argv[0]
        # A command asked for JSON (restic backup --json, borg create --json) prints no
        # progress bar: its stdout is read for the backup's statistics, on a terminal too.
        capture = CAPTURE_STDERR if sys.stdout.isatty() and "--json" not in argv \
            else CAPTURE_ALL
        where = f"command/{display_name(os.path.basename(name) or name)}"
        self.reporter.command_argv(where, argv)
        config = self.ctx.config
        return self.run_task(Task(
            phase=c.PHASE_COMMAND, name=name, where=where, argv=tuple(argv),
            env=self.env.command_env, timeout=self.ctx.command_timeout,
            on_failure=OnFailure.STOP, capture=capture, stdin=None,
            retries=config.get("command_retries", 0),
            retry_delay=config.get("command_retry_delay", c.DEFAULT_RETRY_DELAY),
            warning_codes=config.get("command_warning_codes", frozenset()),
            retry_codes=config.get("command_retry_codes", frozenset()), keep_stdout=True,
            stall=self.ctx.stall_timeout or 0.0))

    def run_cleanups(self, journal: Journal | None = None, phase: str = c.PHASE_CLEANUP,
                     lock_fd: int | None = None) -> list[TaskRecord]:
        """Run the pending cleanups of ``journal`` (this run's by default; ``lock_fd`` is the
        owner lock of its run directory), last registered first (cleanup.Replay). Returns
        their TaskRecords."""
        if journal is None:
            journal, lock_fd = self.journal, self.run_dir.lock_fd
        return self.replay.run(journal, phase, lock_fd)

    def run_cleanup(self, line: str, phase: str, index: int, count: int,
                    entry: tuple[int, Journal, int | None]) -> TaskRecord:
        """One cleanup line, in a wrapper shell that marks it done itself when it ends and
        holds its run directory's owner lock meanwhile: if hookrun dies while it runs, the
        cleanup (in a session of its own) finishes, is marked, and no recovery starts it a
        second time while it still runs. A replayed cleanup is a "recover" task, but to
        itself it is still a cleanup (HOOKRUN_PHASE)."""
        journal_index, journal, lock_fd = entry
        timeout = resolve("timeout", ({"timeout": self.ctx.timeout}, self.ctx.config.values),
                          c.DEFAULT_TIMEOUT)
        env = self.env.hook_env(c.PHASE_CLEANUP, line, "", index, count)
        as_user: tuple[str, ...] = ()
        if journal.owner is not None and journal.owner != os.geteuid():
            identity = identity_of_uid(journal.owner)
            as_user = as_identity_argv(identity)
            hook_env = env

            def owner_env(attempt: int, cookie: str) -> dict[str, str]:
                found = dict(hook_env(attempt, cookie))
                found.update({"HOME": identity.home, "USER": identity.name,
                              "LOGNAME": identity.name})
                return found
            env = owner_env
        return self.run_task(Task(
            phase=phase, name=line, where=f"{phase}/{display_name(line)}",
            argv=("/bin/sh", "-c", CLEANUP_WRAPPER, "hookrun-cleanup", line,
                  str(journal_index), journal.marks_path, *as_user),
            env=env, timeout=timeout, shielded=True, hold_fd=lock_fd))

    def run_notify_command(self, argv: Sequence[str], record: dict[str, Any]) -> str | None:
        """Run ``notify_command`` with the run's JSON record on stdin; returns a one-line
        problem or None. It is not a task of the run: its output is shown, not recorded."""
        import json

        path = self.run_dir.file(c.RUN_RECORD)
        try:
            write_private(path, json.dumps(record, ensure_ascii=False).encode())
        except OSError as error:
            return f"notify_command not run: cannot write {path}: {error.strerror or error}"
        with open(path, "rb") as stdin:
            notified = self.run_task(Task(
                phase=c.PHASE_COMMAND, name=argv[0],
                where=f"notify/{display_name(os.path.basename(argv[0]) or argv[0])}",
                argv=tuple(argv), env=self.env.command_env, timeout=c.NOTIFY_COMMAND_TIMEOUT,
                stdin=stdin, recorded=False))
        if notified.status != TaskStatus.OK:
            return f"notify_command {argv[0]} failed: {notified.reason}"
        return None

    def skipped(self, phase: str, name: str, reason: str) -> TaskRecord:
        """The record of a task that did not run."""
        record = TaskRecord(phase, name, TaskStatus.SKIPPED, reason=reason)
        self.reporter.finished(f"{phase}/{display_name(name)}", record)
        self.task_finished(record)
        return record


def said_of(status: str, output: TaskOutput) -> tuple[str, bytes, bytes]:
    """What a finished task's record keeps of its output besides its ``output`` text: the
    last line it said, if it failed or warned; its last lines, if it failed; its kept
    stdout (the command's). Nothing is read from the tail for a task that succeeded."""
    said, tail = "", b""
    if status in TaskStatus.FAILURES or status == TaskStatus.WARNING:
        said = output.last_line()
        if status in TaskStatus.FAILURES:
            tail = output.tail_bytes()
    return said, tail, output.stdout_bytes() if output.stdout_kept is not None else b""


def write_own_command(run_dir: RunDir) -> str:
    """A directory in ``run_dir`` holding ``hookrun``: this very hookrun (its interpreter
    and its package), for hooks to call; returns its path.

    Its Python runs isolated (``-I``): no current directory on ``sys.path``, no PYTHON*
    variables, no user site. A hook calls it from whatever directory it is in, which may be
    one another user can write: a ``types.py`` there must never be imported, as root. The
    package is found by the one directory named here, explicitly."""
    import orchestrator

    directory = run_dir.file(c.RUN_BIN)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(orchestrator.__file__)))
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from orchestrator.cli import main; sys.exit(main())")
    script = (f"#!/bin/sh\nexec {shell.quote(sys.executable)} -I -c {shell.quote(code)} "
              '"$@"\n')
    # 0755 inside the run directory (0700, root's): no other user reaches it by a path, but a
    # hook run as another user does through the descriptor it inherits (Engine.run_as).
    os.mkdir(directory, 0o755)
    os.chmod(directory, 0o755)
    write_private(os.path.join(directory, "hookrun"), script.encode())
    os.chmod(os.path.join(directory, "hookrun"), 0o755)
    return directory
