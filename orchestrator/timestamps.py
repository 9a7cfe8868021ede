"""Times as hookrun writes them: ISO 8601 with milliseconds and the UTC offset, in local time
(``2026-11-21T23:23:27.123+01:00``), from the time module alone (``datetime`` costs start-up
time every run), and back to Unix time for the metrics."""

import time


def now_iso():
    """The current local time, ISO 8601 with milliseconds and the UTC offset."""
    now = time.time()
    local = time.localtime(now)
    offset = local.tm_gmtoff
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return (f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{int(now % 1 * 1000):03d}"
            f"{sign}{hours:02d}:{minutes:02d}")


def unix_time(iso):
    """Unix time (seconds, 3 decimals) of a time as now_iso() writes it; None if it is not
    one."""
    import datetime

    try:
        return round(datetime.datetime.fromisoformat(iso).timestamp(), 3)
    except (TypeError, ValueError):
        return None
