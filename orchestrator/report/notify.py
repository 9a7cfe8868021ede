"""Notifications, which are not hooks and so still work with --no-hooks (design.md section 4):
healthchecks.io-style pings and a command fed the run's JSON record."""

from __future__ import annotations

from orchestrator import constants as c
from orchestrator.outcome import RunStatus, TaskStatus
from orchestrator.text import masked, whole_characters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # A run's record as JSON carries it (state.history.run_record): values of many types.
    Record = dict[str, Any]

TIMEOUT = c.NOTIFY_TIMEOUT  # seconds per ping, all told; a plain attribute, so tests can shorten it
END_SUFFIX = {RunStatus.SUCCESS: "", RunStatus.WARNING: "", RunStatus.FAILURE: "/fail",
              RunStatus.INTERRUPTED: "/fail", RunStatus.SKIPPED: "/log"}


def ping(url: str, suffix: str, body: bytes = b"", run_id: str | None = None) -> str | None:
    """POST ``body`` to ``url + suffix`` (with ``?rid=``, the same for a run's start and
    end, when ``run_id`` is given), tried up to channels.TRIES times within TIMEOUT in all;
    returns None, or a one-line error that shows the URL with its password masked (never
    raises)."""
    from orchestrator.report import channels

    target = url.rstrip("/") + suffix
    try:
        sent = channels.with_query(target, rid=channels.rid(run_id)) if run_id else target
    except ValueError as error:  # the config refuses such a URL (values.parse_url)
        return f"notification to {masked(target)} failed: bad URL ({error})"
    request = channels.Request("POST", sent, channels.TEXT_TYPE,
                               whole_characters(body, c.NOTIFY_MAX_BODY))
    problem = channels.deliver(request, (), timeout=TIMEOUT)
    if problem:
        return f"notification to {masked(target)} failed: {problem}"
    return None


def published(run: Record) -> Record:
    """The run's record as notifications carry it: a cleanup named by its command word, not
    by its whole line (which may hold a password)."""
    from orchestrator.text import published_name

    tasks = [dict(task, name=published_name(task["phase"], task["name"]))
             for task in run["tasks"]]
    return dict(run, tasks=tasks)


def summary(run: Record, failed_output: bytes, error: str | None = None) -> bytes:
    """The body of the end ping: status, error, task counts, last lines of the failed step.
    ``run`` is a published() record; every line is escaped, so none can be forged.
    ``error``: the error line to show, when not the record's own (one without output)."""
    from orchestrator.text import display, display_name

    tasks = run["tasks"]
    counts = {
        "completed": sum(t["status"] in (TaskStatus.OK, TaskStatus.WARNING, TaskStatus.ABORTED)
                         for t in tasks),
        "failed": sum(t["status"] in TaskStatus.FAILURES for t in tasks),
        "skipped": sum(t["status"] == TaskStatus.SKIPPED for t in tasks),
    }
    lines = [f"hookrun run {run['id']} event={run['event']} status={run['status']} "
             f"exit={run['exit_code']} duration={run['duration']}s",
             f"error: {display_name((run['error'] if error is None else error) or '-')}",
             f"tasks: {counts['completed']} completed, {counts['failed']} failed, "
             f"{counts['skipped']} skipped, {len(tasks)} total"]
    from orchestrator.report.stats import summary_line

    if run.get("stats"):
        lines.insert(2, summary_line(run["stats"]))
    if run.get("trigger"):
        lines[0] += f" trigger={run['trigger']}"
    for task in tasks:
        lines.append(f"  {task['phase']}/{display_name(task['name'])}: {task['status']}"
                     + (f" (exit {task['exit_code']})" if task["exit_code"] is not None else ""))
    if failed_output:
        lines.append("last output of the failed step:")
        lines.append(display(failed_output).rstrip("\n"))
    return whole_characters("\n".join(lines).encode("utf-8", "replace"), c.NOTIFY_MAX_BODY)
