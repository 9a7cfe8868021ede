"""The speed kit: where hookrun uses something cheaper than a standard module, and why.

A run is short and cron starts one often, so start-up counts (README, Performance: within
2.5x of ``python -c pass``). Each replacement below stands in for a standard module whose
import alone would cost a run a share of its start-up. Each does what it replaces, and the
named test proves that they agree.

Here:
- ``signal`` is ``_signal``, the C module under ``signal``: the same functions and numbers,
  without the IntEnum classes ``signal`` builds when imported (a tenth of start-up). Test:
  tests/unit/test_speed.py::test_the_c_modules_are_the_standard_modules_own.
- ``sqlite3`` is ``_sqlite3``: the sqlite3 package is this C module plus adapters for
  datetime values, which hookrun never stores (a twentieth of a short run's start-up). Test:
  the same.
- ``libc_function`` calls one C library function through ``_ctypes``, the C half of ctypes;
  ``import ctypes`` builds some eighty classes (a tenth of start-up) for the one call
  hookrun makes, prctl(PR_SET_CHILD_SUBREAPER). Tests:
  tests/unit/test_speed.py::test_a_libc_function_called_without_ctypes_gives_libcs_answer,
  tests/integration/test_process_control.py::
  test_hookrun_adopts_the_orphans_of_its_children_without_importing_ctypes.
- ``flat_json`` writes JSON for a flat record of str, bool and int (a run directory's
  meta.json): what json.dumps writes, but for control characters, spelled \\uXXXX; json
  reads back the same record. It spares json's import, whose decoder imports ``re``. Tests:
  tests/unit/test_properties.py::test_a_run_directorys_meta_is_json_that_json_reads_back,
  tests/unit/test_speed.py::test_flat_json_writes_what_json_reads_back.

Elsewhere, with the job they belong to:
- cli.prepare and cli.parse read an ordinary command line without argparse, whose import and
  parsers would cost more than the rest of start-up; argparse reads everything else. Test:
  tests/unit/test_cli_parsing.py::test_whatever_the_fast_parser_reads_argparse_reads_the_same.
- shell.quote and shell.join write what shlex's do, without importing ``re``. Test:
  tests/unit/test_properties.py::test_shell_quoting_is_shlexs.
- timestamps.now_iso writes what datetime's isoformat does, from the time module. Test:
  tests/unit/test_timestamps.py::
  test_now_iso_is_iso_8601_with_milliseconds_and_the_offset.
- The parsers of plan.settings (durations, codes, headers, the config file) and
  constants.valid_event use string methods and sets, not ``re``; the config file is
  hookrun's own small INI dialect, read line by line, not configparser's (whose rules it
  does not follow). Tests: tests/unit/test_settings.py and the properties of
  tests/unit/test_properties.py (each parser raises only its own error, and round-trips).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    # The checker knows the modules these C modules are the heart of.
    import signal as signal
    import sqlite3 as sqlite3
    from collections.abc import Callable, Mapping
else:
    # The C modules under signal and sqlite3 (see the module's docstring).
    import _signal as signal  # noqa: F401 - re-exported
    import _sqlite3 as sqlite3  # noqa: F401 - re-exported


def libc_function(name: str) -> Callable[..., int]:
    """The C library's function ``name``, taking ints and returning an int, called through
    ``_ctypes`` (see the module's docstring)."""
    import _ctypes

    if TYPE_CHECKING:
        IntBase = _ctypes._SimpleCData[int]
    else:
        IntBase = _ctypes._SimpleCData  # not subscriptable at run time

    class Int(IntBase):
        _type_ = "i"

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = Int

    # None: the program itself, as dlopen(3) takes NULL; typeshed allows only a path.
    libc = _ctypes.dlopen(None)  # type: ignore[arg-type]
    return Function(_ctypes.dlsym(libc, name))


def flat_json(record: Mapping[str, str | bool | int]) -> str:
    """A JSON object of ``record``'s str, bool and int values (see the module's
    docstring)."""
    return "{" + ", ".join(f"{json_value(name)}: {json_value(value)}"
                           for name, value in record.items()) + "}"


def json_value(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(f"\\u{ord(ch):04x}" if ch < " " or "\ud800" <= ch <= "\udfff" else ch
                         for ch in escaped) + '"'
