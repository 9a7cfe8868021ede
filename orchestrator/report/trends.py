"""Trends over the history (design.md section 11, "Trends"): per event and per hook, how many
runs, how many failed, the median and 95th percentile duration, the last failure, and the
last durations for a sparkline. Pure functions over rows the history returns."""

from __future__ import annotations

from orchestrator import constants as c
from orchestrator.outcome import RunStatus, TaskStatus

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Container, Iterable, Sequence
    from typing import Any

    # (status, started, duration) of one run or task
    Row = tuple[str, str, float | None]

SPARK_RUNS = 20
BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_BLOCKS = "_.-=#"
PHASE_ORDER = (c.PHASE_RECOVER, c.PHASE_PRE, c.PHASE_COMMAND, c.PHASE_POST, c.PHASE_ON_ERROR,
               c.PHASE_ON_SUCCESS, c.PHASE_CLEANUP, c.PHASE_FINALLY)


def median(values: Iterable[float]) -> float | None:
    """The middle value of ``values`` (the mean of the two middle ones for an even count);
    None for none."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Iterable[float], percent: int) -> float | None:
    """The nearest-rank ``percent``-th percentile (a whole number) of ``values``: the
    smallest value that at least that share of them is not above; None for none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = -(-percent * len(ordered) // 100)  # the ceiling, in whole numbers
    return ordered[max(rank, 1) - 1]


def summarise(rows: Sequence[Row], failed: Container[str]) -> dict[str, Any]:
    """The fields of one event or hook from its ``rows`` [(status, started, duration)],
    oldest first; ``failed`` the statuses that count as failures."""
    durations = [duration for _status, _started, duration in rows if duration is not None]
    failures = [started for status, started, _duration in rows if status in failed]
    runs = len(rows)
    return {"runs": runs, "failures": len(failures),
            "success_rate": round((runs - len(failures)) / runs, 4) if runs else None,
            "median_duration": rounded(median(durations)),
            "p95_duration": rounded(percentile(durations, 95)),
            "last_failure": failures[-1] if failures else None,
            "durations": [rounded(d) for d in durations[-SPARK_RUNS:]]}


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def trends(run_rows: Iterable[sqlite3.Row],
           task_rows: Iterable[sqlite3.Row]) -> dict[str, list[dict[str, Any]]]:
    """``stats --json``: {"events": [...], "hooks": [...]} from the history's ended_runs()
    and ended_tasks() rows. A task that did not run (skipped) is not counted."""
    events: dict[str, list[Row]] = {}
    for event, status, started, duration in run_rows:
        events.setdefault(event, []).append((status, started, duration))
    hooks: dict[tuple[str, str, str], list[Row]] = {}
    for event, phase, name, status, started, duration in task_rows:
        if status == TaskStatus.SKIPPED:
            continue
        hooks.setdefault((event, phase, name), []).append((status, started, duration))
    order = {phase: n for n, phase in enumerate(PHASE_ORDER)}
    return {
        "events": [dict(event=event, **summarise(rows, RunStatus.FAILURES))
                   for event, rows in sorted(events.items())],
        "hooks": [dict(event=event, phase=phase, name=name,
                       **summarise(rows, TaskStatus.FAILURES))
                  for (event, phase, name), rows in sorted(
                      hooks.items(), key=lambda item: (item[0][0], order.get(item[0][1], 99),
                                                       item[0][2]))],
    }


def sparkline(values: Sequence[float | None], unicode: bool = True) -> str:
    """One character per value, from the lowest block (the smallest) to the highest (the
    largest); ASCII ``_.-=#`` when ``unicode`` is false."""
    blocks = BLOCKS if unicode else ASCII_BLOCKS
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    line: list[str] = []
    for value in values:
        if value is None:
            line.append(" ")
            continue
        level = 0 if span == 0 else round((value - low) / span * (len(blocks) - 1))
        line.append(blocks[level])
    return "".join(line)
