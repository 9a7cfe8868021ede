"""The Prometheus textfile-collector file (design.md section 4).

Several events share one file: the series of other events are read back and kept, this
event's are replaced, under an flock of the file's directory, so that concurrent runs of
different events keep each other's series. The file is written to a temporary name and
renamed, so the collector never reads half a file.

A run refused before it starts (design.md section 10) writes only the time of its refusal,
``hookrun_last_refused_timestamp_seconds``, and keeps every other series; a later run keeps
it too, so that the alert HookrunRunRefused can see that a run came after the refusal.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time

from orchestrator import constants as c
from orchestrator.outcome import RunStatus, TaskStatus
from orchestrator.text import as_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, Union

    from orchestrator.outcome import TaskRecord

    # One sample line: metric name, label text ({...} or ""), value (a string when read back).
    Sample = tuple[str, str, Union[float, str]]
    # Whether a sample already in the file, by name and label text, is replaced.
    Replaced = Callable[[str, str], bool]

RUN_STATUSES = RunStatus.ALL
TASK_STATUSES = TaskStatus.ALL
HELP = {
    "hookrun_last_run_timestamp_seconds": "End time of the last run (unix seconds).",
    "hookrun_last_run_duration_seconds": "Duration of the last run in seconds.",
    "hookrun_last_run_exit_code": "Exit status of hookrun for the last run.",
    "hookrun_last_run_status": "1 for the status of the last run, 0 for the others.",
    "hookrun_last_success_timestamp_seconds":
        "End time of the last successful run (success or warning); 0 if none.",
    "hookrun_hook_duration_seconds": "Duration of each task of the last run in seconds.",
    "hookrun_hook_status": "1 for the status of each task of the last run, 0 for the others.",
    "hookrun_hook_consecutive_failures":
        "Runs in a row, up to the last, in which each task failed or timed out.",
    "hookrun_last_refused_timestamp_seconds":
        "Time of the last run refused before it started (exit 73, 77, 78), by reason.",
    "hookrun_backup_bytes_added": "Bytes the last run's backup added.",
    "hookrun_backup_files_new": "New files in the last run's backup.",
    "hookrun_backup_files_changed": "Changed files in the last run's backup.",
    "hookrun_backup_bytes_processed": "Bytes the last run's backup read.",
}
# Backup statistics (stats.KEYS) published as metrics, where the last run reported them.
STATS_METRICS = {"hookrun_backup_bytes_added": "bytes_added",
                 "hookrun_backup_files_new": "files_new",
                 "hookrun_backup_files_changed": "files_changed",
                 "hookrun_backup_bytes_processed": "bytes_processed"}
REFUSED = "hookrun_last_refused_timestamp_seconds"
# A task that ran and did not fail ends its run of failures; one that did not run (skipped,
# or absent from a run) neither adds to it nor ends it.
FAILED_STATUSES = TaskStatus.FAILURES
RAN_STATUSES = (TaskStatus.OK, TaskStatus.WARNING, TaskStatus.ABORTED)
# How many earlier runs of an event are read back to count a task's failures in a row.
STREAK_RUNS = 100
SAMPLE_RE = re.compile(r'^(hookrun_[a-z_]+)(\{.*\})? (\S+)$')
LOCK_STEP = 0.01
MAX_READ = 16 << 20  # what is read back of an existing file


def escape(value: str) -> str:
    """A label value escaped as the exposition format wants it."""
    return as_text(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: object) -> str:
    return "{" + ",".join(f'{key}="{escape(str(value))}"' for key, value in pairs.items()) + "}"


def consecutive_failures(statuses: Iterable[str | None]) -> int:
    """How many runs in a row a task failed, given its status in each run, newest first
    (None for a run it was not part of)."""
    count = 0
    for status in statuses:
        if status in FAILED_STATUSES:
            count += 1
        elif status in RAN_STATUSES:
            break
    return count


def run_samples(event: str, status: str, exit_code: int, finished: float, duration: float,
                last_success: float | None, tasks: Iterable[TaskRecord],
                earlier: Iterable[Mapping[tuple[str, str], str]] = (),
                stats: Mapping[str, int | str] | None = None) -> list[Sample]:
    """Sample lines (name, labels, value) for one run of ``event``. ``earlier`` holds the
    task statuses of the event's earlier runs, newest first, one ``{(phase, name): status}``
    per run, for hookrun_hook_consecutive_failures; ``stats`` the run's backup statistics
    (a series each, for those it has: a run without them leaves none, not a 0 that would
    read as "added nothing")."""
    samples: list[Sample] = [
        ("hookrun_last_run_timestamp_seconds", labels(event=event), finished),
        ("hookrun_last_run_duration_seconds", labels(event=event), duration),
        ("hookrun_last_run_exit_code", labels(event=event), exit_code),
        ("hookrun_last_success_timestamp_seconds", labels(event=event), last_success or 0),
    ]
    samples += [("hookrun_last_run_status", labels(event=event, status=s), int(s == status))
                for s in RUN_STATUSES]
    if stats:
        samples += [(name, labels(event=event), stats[key])
                    for name, key in STATS_METRICS.items() if key in stats]
    from orchestrator.text import published_name

    seen: set[tuple[str, str]] = set()
    for task in tasks:
        key = (task.phase, published_name(task.phase, task.name))
        if key in seen:
            continue
        seen.add(key)
        where = {"event": event, "phase": key[0], "hook": key[1]}
        samples.append(("hookrun_hook_duration_seconds", labels(**where), task.duration))
        samples += [("hookrun_hook_status", labels(**where, status=s),
                     int(s == task.status)) for s in TASK_STATUSES]
        statuses = [task.status] + [run.get((task.phase, task.name)) for run in earlier]
        samples.append(("hookrun_hook_consecutive_failures", labels(**where),
                        consecutive_failures(statuses)))
    return samples


def kept_samples(path: str, replaced: Replaced) -> list[Sample]:
    """Samples already in the file but those that ``replaced(name, label_text)`` says the
    new ones replace (never read through a link, nor from a FIFO or device: NotRegularFile;
    see files.real_path)."""
    from orchestrator.files import open_regular, read_sized

    kept: list[Sample] = []
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return kept
    try:
        text = read_sized(fd, MAX_READ).decode("utf-8", "replace")
    finally:
        os.close(fd)
    for line in text.split("\n"):
        match = SAMPLE_RE.match(line)
        if match and not replaced(match.group(1), match.group(2) or ""):
            kept.append((match.group(1), match.group(2) or "", match.group(3)))
    return kept


def render(samples: Iterable[Sample]) -> str:
    by_name: dict[str, list[str]] = {}
    for name, label_text, value in samples:
        by_name.setdefault(name, []).append(f"{name}{label_text} {value}")
    lines = []
    for name in sorted(by_name):
        lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(by_name[name])
    return "\n".join(lines) + "\n"


def own_label(event: str) -> str:
    """The text that the labels of ``event``'s series hold, and no other event's do."""
    return f'event="{escape(event)}"'


def write_metrics(path: str, event: str, **run: Any) -> str | None:
    """Replace ``event``'s series in the textfile at ``path``, but for the time of its last
    refusal; returns None, or a warning (see replace_samples). OSError if it cannot.
    ``run``: the keyword arguments of run_samples (of as many types as it has)."""
    mine = own_label(event)
    return replace_samples(path, lambda name, text: mine in text and name != REFUSED,
                           run_samples(event, **run))


def write_refused(path: str, event: str, reason: str, when: float) -> str | None:
    """Set ``event``'s last refusal (``reason``: state, unsafe or config; ``when``: unix
    seconds) in the textfile at ``path``, keeping every other series, of this event too: a
    refused run did not run, so what the last run left stays true. Returns None or a
    warning; OSError if it cannot."""
    mine = own_label(event)
    return replace_samples(path, lambda name, text: name == REFUSED and mine in text,
                           [(REFUSED, labels(event=event, reason=reason), when)])


def replace_samples(path: str, replaced: Replaced, new: list[Sample]) -> str | None:
    """Write the textfile at ``path``: what it held but the samples ``replaced(name,
    label_text)`` picks, then ``new``. Returns None, or a warning when the lock was held too
    long by another process and the file was written without it. OSError if it cannot be
    written (NotRegularFile for a FIFO or device at ``path``).

    The directory may be one that other users own or can write (node_exporter's textfile
    directory): the temporary file is created O_EXCL|O_NOFOLLOW under a random name
    (mkstemp), its mode set with fchmod on the descriptor, and it is renamed over ``path``;
    nothing is chmod-ed, chown-ed or opened by a name that someone else could swap."""
    from orchestrator.files import real_path

    # Looked at now, at the end of a run that may have lasted hours since its checks.
    path = real_path(path)
    directory = os.path.dirname(path)
    lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # Anyone who may open the directory may flock it: waiting for ever would freeze the
        # file at the last run's status, so after a while it is written all the same.
        warning = None if hold(lock) else (
            f"metrics file {path}: its directory was locked by another process for "
            f"{c.METRICS_LOCK_WAIT:g} s; written without the lock")
        samples = kept_samples(path, replaced) + new
        fd, temporary = tempfile.mkstemp(prefix=".hookrun-", suffix=".prom.tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o644)
                handle.write(render(samples))
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    finally:
        os.close(lock)
    return warning


def hold(fd: int, wait: float | None = None) -> bool:
    """flock ``fd``, waiting at most ``wait`` seconds (c.METRICS_LOCK_WAIT); whether it got
    the lock."""
    deadline = time.monotonic() + (c.METRICS_LOCK_WAIT if wait is None else wait)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(LOCK_STEP)
