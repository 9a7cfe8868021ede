"""Timestamps as the log, the history and the JSON record spell them."""

import datetime
import os
import time

import pytest

from orchestrator import timestamps


@pytest.fixture
def zone(monkeypatch):
    def set_zone(name):
        monkeypatch.setenv("TZ", name)
        time.tzset()
        timestamps.LAST_SECOND.clear()
    yield set_zone
    monkeypatch.delenv("TZ", raising=False)
    time.tzset()
    timestamps.LAST_SECOND.clear()


@pytest.mark.parametrize("name", ["UTC", "America/St_Johns", "Asia/Kolkata", "Europe/Berlin"])
@pytest.mark.parametrize("moment", [1_764_000_000.0, 1_764_000_000.999, 1_751_500_800.5])
def test_now_iso_is_iso_8601_with_milliseconds_and_the_offset(zone, monkeypatch, name, moment):
    if not os.path.exists(f"/usr/share/zoneinfo/{name}"):
        pytest.skip(f"no time zone data for {name}")
    zone(name)
    monkeypatch.setattr(timestamps.time, "time", lambda: moment)
    expected = datetime.datetime.fromtimestamp(moment).astimezone().isoformat(
        timespec="milliseconds")
    assert timestamps.now_iso() == expected
    assert timestamps.unix_time(expected) == round(int(moment * 1000) / 1000, 3)

