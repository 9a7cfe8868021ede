"""Outcomes as data: task and run statuses, task records and what a hook's exit status means."""

import enum
from dataclasses import dataclass

from orchestrator import constants as c


class TaskStatus(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ABORTED = "aborted"
    SKIPPED = "skipped"


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


class Verdict(enum.Enum):
    """What the run does after a hook's last attempt."""

    OK = "ok"                # success
    CONTINUE = "continue"    # a failure that is only a warning (62, 63 outside pre-, warn)
    STOP = "stop"            # stop the phase (on-failure=stop) and, in pre-, the run
    SOFT_SKIP = "soft-skip"  # 75 in pre-, or on-failure=skip-run: skip the run, not an error
    IGNORE = "ignore"        # on-failure=ignore: recorded as failed, and nothing more


@dataclass(frozen=True)
class TaskRecord:
    """One row of a run's tasks, as history and ``--json`` show it."""

    phase: str
    name: str
    status: TaskStatus
    exit_code: object = None
    attempts: int = 0
    started: object = None
    duration: float = 0.0
    cpu_seconds: float = 0.0
    max_rss_bytes: object = None
    reason: object = None
    output: str = ""

    @property
    def failed(self):
        """A failure, which makes the run at least a ``warning``. A hook that gave up (62)
        is not one: it stepped aside, with a warning on the terminal only."""
        return self.status in (TaskStatus.FAILED, TaskStatus.TIMEOUT)


@dataclass(frozen=True)
class Judgement:
    """The meaning of one attempt: the task status, the reason shown, whether a retry is
    allowed, and the verdict if no retry follows."""

    status: TaskStatus
    reason: object
    retry: bool
    verdict: Verdict


FAILURE_VERDICTS = {"stop": Verdict.STOP, "warn": Verdict.CONTINUE, "ignore": Verdict.IGNORE,
                    "skip-run": Verdict.SOFT_SKIP}


def judge(kind, outcome, on_failure):
    """Judge one attempt of a hook of phase ``kind`` that ended with ``outcome``, given what
    its failures do (``on_failure``: stop, warn, ignore or skip-run). With ``ignore``, exit
    statuses 62, 63 and 75 mean nothing special."""
    code = outcome.exit_code
    failure = FAILURE_VERDICTS[on_failure]
    if outcome.timed_out:
        return Judgement(TaskStatus.TIMEOUT, "timed out", True, failure)
    if outcome.interrupted_by:
        return Judgement(TaskStatus.FAILED, f"interrupted ({signal_name(outcome.interrupted_by)})",
                         False, failure)
    if outcome.spawn_error:
        return Judgement(TaskStatus.FAILED, outcome.spawn_error, True, failure)
    if outcome.killed_by:
        return Judgement(TaskStatus.FAILED, f"killed by {signal_name(outcome.killed_by)}", True,
                         failure)
    if code == 0:
        return Judgement(TaskStatus.OK, None, False, Verdict.OK)
    if failure != Verdict.IGNORE:
        if code == c.HOOK_ABORT_CONTINUE:
            return Judgement(TaskStatus.ABORTED, "ABORT_CONTINUE", False, Verdict.CONTINUE)
        if code == c.HOOK_ABORT_STOP:
            stop = Verdict.STOP if kind == c.PHASE_PRE else Verdict.CONTINUE
            return Judgement(TaskStatus.FAILED, "ABORT_STOP", False, stop)
        if code == c.HOOK_SOFT_SKIP and kind == c.PHASE_PRE:
            return Judgement(TaskStatus.ABORTED, "soft skip (exit 75)", False, Verdict.SOFT_SKIP)
    return Judgement(TaskStatus.FAILED, f"exit {code}", True, failure)


def signal_name(signum):
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(run_status, interrupted_by, command_code, hook_stopped):
    """hookrun's exit status (design.md section 2) from what happened in the run."""
    if interrupted_by:
        return c.SIGNAL_EXIT_BASE + interrupted_by
    if run_status == RunStatus.SKIPPED:
        return c.EXIT_OK
    if command_code:
        return command_code
    if hook_stopped:
        return c.EXIT_HOOK_STOPPED
    return c.EXIT_OK
