"""What a hook's exit status means, and hookrun's own exit status."""

import pytest

from orchestrator import constants as c
from orchestrator.outcome import RunStatus, TaskStatus, Verdict, exit_status, judge
from orchestrator.process import Outcome


def exited(code, **kw):
    return Outcome(exit_code=code, **kw)


@pytest.mark.parametrize("kind, code, critical, status, retry, verdict", [
    ("pre", 0, True, TaskStatus.OK, False, Verdict.OK),
    ("pre", 62, True, TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("post", 62, True, TaskStatus.ABORTED, False, Verdict.CONTINUE),
    ("pre", 63, False, TaskStatus.FAILED, False, Verdict.STOP),
    ("post", 63, True, TaskStatus.FAILED, False, Verdict.CONTINUE),
    ("pre", 75, True, TaskStatus.ABORTED, False, Verdict.SOFT_SKIP),
    ("post", 75, False, TaskStatus.FAILED, True, Verdict.CONTINUE),
    ("post", 75, True, TaskStatus.FAILED, True, Verdict.STOP),
    ("pre", 1, True, TaskStatus.FAILED, True, Verdict.STOP),
    ("pre", 1, False, TaskStatus.FAILED, True, Verdict.CONTINUE),
    ("finally", 2, False, TaskStatus.FAILED, True, Verdict.CONTINUE),
])
def test_exit_code_protocol(kind, code, critical, status, retry, verdict):
    judged = judge(kind, exited(code), critical)
    assert (judged.status, judged.retry, judged.verdict) == (status, retry, verdict)


def test_63_is_failed_with_reason_abort_stop():
    assert judge("pre", exited(63), False).reason == "ABORT_STOP"
    assert "ABORT_STOP" in judge("post", exited(63), False).reason


def test_timeout_signal_and_spawn_errors_are_failures_that_may_be_retried():
    timeout = judge("pre", exited(143, timed_out=True), True)
    assert (timeout.status, timeout.retry, timeout.verdict) == \
        (TaskStatus.TIMEOUT, True, Verdict.STOP)
    killed = judge("post", exited(137, killed_by=9), False)
    assert (killed.status, killed.retry, killed.verdict) == \
        (TaskStatus.FAILED, True, Verdict.CONTINUE)
    assert "SIGKILL" in killed.reason
    missing = judge("pre", exited(127, spawn_error="not found"), True)
    assert missing.status == TaskStatus.FAILED and missing.verdict == Verdict.STOP


def test_an_interrupted_hook_is_not_retried():
    judged = judge("pre", exited(130, killed_by=2, interrupted_by=2), False)
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
    assert {judge(kind, exited(63), True).reason for kind in ("pre", "post", "finally")} == \
        {"ABORT_STOP"}
