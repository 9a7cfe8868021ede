"""What a hook's exit status means, and hookrun's own exit status."""

import pytest

from orchestrator import constants as c
from orchestrator.outcome import RunStatus, TaskStatus, Verdict, exit_status, judge
from orchestrator.process import Outcome


def exited(code, **kw):
    return Outcome(exit_code=code, **kw)


@pytest.mark.parametrize("kind, code, on_failure, status, retry, verdict", [
    ("pre", 0, "stop", TaskStatus.OK, False, Verdict.OK),
    ("pre", 62, "stop", TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("post", 62, "stop", TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("pre", 63, "warn", TaskStatus.FAILED, False, Verdict.STOP),
    ("post", 63, "stop", TaskStatus.FAILED, False, Verdict.CONTINUE),
    ("pre", 75, "stop", TaskStatus.ABORTED, False, Verdict.SOFT_SKIP),
    ("post", 75, "warn", TaskStatus.FAILED, True, Verdict.CONTINUE),
    ("post", 75, "stop", TaskStatus.FAILED, True, Verdict.STOP),
    ("pre", 1, "stop", TaskStatus.FAILED, True, Verdict.STOP),
    ("pre", 1, "warn", TaskStatus.FAILED, True, Verdict.CONTINUE),
    ("finally", 2, "warn", TaskStatus.FAILED, True, Verdict.CONTINUE),
    # Backrest's IGNORE and Barman's standard scripts: a failure is recorded, nothing more,
    # and 62, 63, 75 are failures like any other.
    ("pre", 1, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    ("pre", 63, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    ("pre", 75, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    ("post", 62, "ignore", TaskStatus.FAILED, True, Verdict.IGNORE),
    # Backrest's CANCEL: a failure skips the run as 75 does.
    ("pre", 1, "skip-run", TaskStatus.FAILED, True, Verdict.SOFT_SKIP),
    ("pre", 75, "skip-run", TaskStatus.ABORTED, False, Verdict.SOFT_SKIP),
    ("pre", 63, "skip-run", TaskStatus.FAILED, False, Verdict.STOP),
])
def test_exit_code_protocol(kind, code, on_failure, status, retry, verdict):
    judged = judge(kind, exited(code), on_failure)
    assert (judged.status, judged.retry, judged.verdict) == (status, retry, verdict)


def test_63_is_failed_with_reason_abort_stop():
    assert judge("pre", exited(63), "warn").reason == "ABORT_STOP"
    assert "ABORT_STOP" in judge("post", exited(63), "warn").reason


def test_timeout_signal_and_spawn_errors_are_failures_that_may_be_retried():
    timeout = judge("pre", exited(143, timed_out=True), "stop")
    assert (timeout.status, timeout.retry, timeout.verdict) == \
        (TaskStatus.TIMEOUT, True, Verdict.STOP)
    killed = judge("post", exited(137, killed_by=9), "warn")
    assert (killed.status, killed.retry, killed.verdict) == \
        (TaskStatus.FAILED, True, Verdict.CONTINUE)
    assert "SIGKILL" in killed.reason
    missing = judge("pre", exited(127, spawn_error="not found"), "stop")
    assert missing.status == TaskStatus.FAILED and missing.verdict == Verdict.STOP


def test_an_interrupted_hook_is_not_retried():
    judged = judge("pre", exited(130, killed_by=2, interrupted_by=2), "warn")
    assert judged.status == TaskStatus.FAILED and not judged.retry


@pytest.mark.parametrize("status, interrupted, command, stopped, expected", [
    (RunStatus.SUCCESS, None, None, False, 0),
    (RunStatus.WARNING, None, None, False, 0),
    (RunStatus.SKIPPED, None, None, False, 0),
    (RunStatus.FAILURE, None, 3, False, 3),
    (RunStatus.FAILURE, None, 124, False, 124),
    (RunStatus.FAILURE, None, 126, False, 126),
    (RunStatus.FAILURE, None, 127, False, 127),
    (RunStatus.FAILURE, None, 137, True, 137),
    (RunStatus.FAILURE, None, None, True, c.EXIT_HOOK_STOPPED),
    (RunStatus.INTERRUPTED, 2, None, False, 130),
    (RunStatus.INTERRUPTED, 15, 1, True, 143),
    (RunStatus.INTERRUPTED, 1, None, False, 129),
])
def test_exit_status_table(status, interrupted, command, stopped, expected):
    assert exit_status(status, interrupted, command, stopped) == expected


def test_63_has_the_same_reason_in_every_phase():
    assert {judge(kind, exited(63), "stop").reason for kind in ("pre", "post", "finally")} == \
        {"ABORT_STOP"}
