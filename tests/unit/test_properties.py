"""Property tests: no input makes the parsers raise anything but their documented error, and
what parses round-trips."""

import json
import os
import shlex
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import shell
from orchestrator.environment import parse_handoff
from orchestrator.errors import ConfigError
from orchestrator.plan.discovery import IgnoreRules, PhaseDir, discover
from orchestrator.plan.settings import (
    parse_config,
    parse_header,
)
from orchestrator.plan.values import parse_duration
from orchestrator.speed import flat_json
from orchestrator.state.cleanup import Journal, defer
from orchestrator.timestamps import format_duration

ENV_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(
    lambda name: not name.startswith("HOOKRUN_"))
VALUES = st.text(st.characters(blacklist_characters="\n\r\0", blacklist_categories=("Cs",)),
                 max_size=50)


@given(st.text(max_size=30))
def test_duration_parser_raises_only_value_error(text):
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert seconds >= 0


@given(st.one_of(st.integers(0, 8_640_000), st.floats(0, 10**6, allow_nan=False).map(
    lambda f: round(f, 3))))
def test_durations_round_trip(seconds):
    assert abs(parse_duration(format_duration(seconds)) - seconds) < 1e-6


@given(st.lists(st.binary(max_size=80), max_size=35))
def test_header_parser_raises_only_config_error(lines):
    try:
        parse_header(b"\n".join(lines), "hook", "post")
    except ConfigError as error:
        assert str(error).startswith("hook:")


@given(st.dictionaries(st.sampled_from(["critical", "timeout", "retries", "retry-delay",
                                        "when"]), st.integers(0, 100), min_size=1))
def test_valid_headers_round_trip(numbers):
    values = {"critical": "yes", "when": "always"}
    tokens = []
    expected = {}
    for key, n in numbers.items():
        if key in values:
            tokens.append(f"{key}={values[key]}")
        else:
            tokens.append(f"{key}={n}s" if key != "retries" else f"{key}={n}")
            expected[key.replace("-", "_")] = n
    found, _warnings = parse_header(b"#!/bin/sh\n" + ("# hookrun: " + " ".join(tokens)).encode(),
                                    "h", "post")
    for key, n in expected.items():
        assert found[key][0] == n


@given(st.text(max_size=300))
def test_config_parser_raises_only_config_error(text):
    try:
        parse_config(text, "conf")
    except ConfigError as error:
        assert str(error).startswith("conf:")


@given(st.dictionaries(ENV_NAMES, VALUES.map(str.strip), max_size=8))
def test_config_env_round_trips(env):
    text = "[env]\n" + "".join(f"{name} = {value}\n" for name, value in env.items())
    assert parse_config(text, "conf").env == env


@given(st.binary(max_size=300))
def test_handoff_parser_never_raises(data):
    values, warnings = parse_handoff(data)
    assert all(not name.startswith("HOOKRUN_") for name in values)
    assert isinstance(warnings, list)


@given(st.dictionaries(ENV_NAMES, VALUES.filter(lambda v: "\n" not in v), max_size=8))
def test_handoff_round_trips(env):
    data = "".join(f"{name}={value}\n" for name, value in env.items()).encode()
    values, warnings = parse_handoff(data)
    assert values == env and warnings == []


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.lists(st.text(st.characters(blacklist_characters="\n\0", blacklist_categories=("Cs",)),
                        max_size=12), min_size=1, max_size=5).filter(lambda argv: argv[0]))
def test_defer_keeps_the_quoting_of_every_argument(tmp_path, argv):
    journal = Journal(str(tmp_path))
    journal.create()
    try:
        line, _warning = defer(argv, journal.path)
        (_index, stored), = journal.read()[-1:]
        assert stored == line
        assert shlex.split(stored) == argv
        assert journal.damaged == []
    finally:
        os.unlink(journal.path)


NAME_BYTES = st.binary(min_size=1, max_size=20).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.lists(NAME_BYTES, max_size=8, unique=True))
def test_discovery_of_arbitrary_names_is_byte_ordered_and_never_raises(tmp_path, names):
    directory = tmp_path / "pre-backup.d"
    directory.mkdir(exist_ok=True)
    for old in os.listdir(directory):
        os.unlink(os.path.join(directory, old))
    for raw in names:
        path = os.path.join(os.fsencode(directory), raw)
        with open(path, "wb") as handle:
            handle.write(b"#!/bin/sh\n")
        os.chmod(path, 0o755)
    found = discover(str(tmp_path), PhaseDir("pre", "pre-backup.d"), IgnoreRules(str(tmp_path)))
    assert [os.fsencode(e.name) for e in found] == sorted(names)
    for entry in found:
        assert entry.runs or entry.reason


def test_printable_ascii_is_a_valid_config_value():
    value = string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "") \
        .replace("\x0c", "").strip()
    assert parse_config(f"[env]\nX = {value}\n", "c").env["X"] == value


@given(st.text())
def test_shell_quoting_is_shlexs(word):
    assert shell.quote(word) == shlex.quote(word)
    assert shlex.split(shell.join([word, "x"])) == [word, "x"]


@given(st.dictionaries(st.text(), st.one_of(st.text(), st.booleans(), st.integers())))
def test_a_run_directorys_meta_is_json_that_json_reads_back(record):
    written = flat_json(record)
    assert json.loads(written.encode("utf-8")) == record
    assert json.loads(written) == json.loads(json.dumps(record))


@given(st.text() | st.text(alphabet=string.printable) | st.text(alphabet="\x85\x9b\udcff\x7f"))
def test_display_names_fast_path_gives_what_the_escaping_gives(name):
    """display_name returns printable ASCII as it is, unescaped: exactly what escaping it
    would have given (the fast path must never let a control character through)."""
    from orchestrator.text import LINE_CONTROL, display_name

    escaped = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace") \
        .translate(LINE_CONTROL)
    assert display_name(name) == escaped
    assert display_name(name + "\n\x1b[2J") == escaped + "\\x0a\\x1b[2J"
