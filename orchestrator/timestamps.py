"""Times as hookrun writes them: ISO 8601 with milliseconds and the UTC offset, in local time
(``2026-11-21T23:23:27.123+01:00``), from the time module alone (``datetime`` costs start-up
time every run), and back to Unix time for the metrics; durations as hookrun spells them."""

from __future__ import annotations

import time


def now_iso() -> str:
    """The current local time, ISO 8601 with milliseconds and the UTC offset."""
    now = time.time()
    date_time, offset = local_second(int(now))
    return f"{date_time}.{int(now % 1 * 1000):03d}{offset}"


# The last second local_second() spelled: the log asks for the time many times a second.
LAST_SECOND: dict[int, tuple[str, str]] = {}


def local_second(second: int) -> tuple[str, str]:
    """(``YYYY-MM-DDTHH:MM:SS``, ``+HH:MM``) of the Unix time ``second``, in local time."""
    if second not in LAST_SECOND:
        local = time.localtime(second)
        offset = local.tm_gmtoff
        hours, minutes = divmod(abs(offset) // 60, 60)
        LAST_SECOND.clear()
        LAST_SECOND[second] = (time.strftime("%Y-%m-%dT%H:%M:%S", local),
                               f"{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}")
    return LAST_SECOND[second]


def format_duration(seconds: float) -> str:
    """The shortest spelling of a duration that plan.values.parse_duration reads back."""
    if seconds == int(seconds):
        seconds = int(seconds)
        for unit, size in (("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                return f"{seconds // size}{unit}"
    return f"{seconds}s"


def unix_time(iso: str) -> float | None:
    """Unix time (seconds, 3 decimals) of a time as now_iso() writes it; None if it is not
    one."""
    import datetime

    try:
        return round(datetime.datetime.fromisoformat(iso).timestamp(), 3)
    except (TypeError, ValueError):
        return None
