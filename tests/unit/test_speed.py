"""The speed kit (orchestrator/speed.py) does what the standard modules it stands in for do."""

import json
import os
import signal as standard_signal
import sqlite3 as standard_sqlite3

import pytest

from orchestrator import speed


def test_the_c_modules_are_the_standard_modules_own():
    for name in ("SIGTERM", "SIGINT", "SIGKILL", "SIGHUP", "SIGCHLD", "SIG_DFL", "SIG_IGN"):
        assert getattr(speed.signal, name) == getattr(standard_signal, name), name
    assert speed.signal.getsignal(speed.signal.SIGTERM) == \
        standard_signal.getsignal(standard_signal.SIGTERM)
    assert speed.sqlite3.connect is standard_sqlite3.connect
    assert speed.sqlite3.sqlite_version == standard_sqlite3.sqlite_version
    db = speed.sqlite3.connect(":memory:")
    try:
        assert db.execute("SELECT 6 * 7").fetchone() == (42,)
    finally:
        db.close()


def test_a_libc_function_called_without_ctypes_gives_libcs_answer():
    assert speed.libc_function("getpid")() == os.getpid()
    assert speed.libc_function("abs")(-7) == 7


@pytest.mark.parametrize("record", [
    {}, {"run_id": "20261207T010203-ab12", "pid": 4242, "recorded": True, "dry": False},
    {"text": 'quote " backslash \\ tab \t nul \0 é \U0001f600'}, {"lone": "\udcff"},
])
def test_flat_json_writes_what_json_reads_back(record):
    written = speed.flat_json(record)
    assert json.loads(written) == record
    # What json.dumps writes, but for control characters (and lone surrogates), which it
    # spells \uXXXX.
    if not any(ch < " " or "\ud800" <= ch <= "\udfff" for value in record.values()
               if isinstance(value, str) for ch in value):
        assert written == json.dumps(record, ensure_ascii=False)
