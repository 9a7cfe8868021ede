"""Durations, header directives, the config file and the precedence of settings."""

import pytest

from orchestrator import constants as c
from orchestrator.errors import ConfigError
from orchestrator.plan.settings import (
    Config,
    effective_settings,
    load_config,
    parse_config,
    parse_header,
    read_head,
    retry_delays,
)
from orchestrator.plan.values import parse_duration
from orchestrator.timestamps import format_duration


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600),
                                           ("0", 0), ("2.5s", 2.5), (" 10m ", 600)])
def test_durations_in_every_documented_spelling_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5 minutes", "-1", "1d", "1h30m", "abc", "5mm"])
def test_bad_durations_are_rejected(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0, 1, 59, 60, 90, 300, 3600, 5400, 2.5])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_header_directives_are_read_and_several_lines_add_up():
    lines = [b"#!/bin/sh", b"# hookrun: critical=no timeout=10m",
             b"# hookrun: retries=3 retry-delay=5s when=always"]
    found, warnings = parse_header(b"\n".join(lines), "x", "post")
    assert {k: v for k, (v, _line) in found.items()} == {
        "on_failure": "warn", "timeout": 600, "retries": 3, "retry_delay": 5, "when": "always"}
    assert found["retries"][1] == 3 and warnings == []


@pytest.mark.parametrize("line, where", [
    (b"# hookrun: colour=red", "unknown hook key"),
    (b"# hookrun: on-failure=later", "bad on-failure"),
    (b"# hookrun: when=always", "when is for post-EVENT.d only"),
    (b"# hookrun: events=backup", "events is for on-error.d, on-success.d and finally.d"),
    (b"# hookrun: timeout=forever", "bad duration"),
    (b"# hookrun: retries=101", "bad retries"),
    (b"# hookrun: critical=maybe", "bad yes/no"),
    (b"# hookrun: when=sometimes", "bad when"),
    (b"# hookrun: critical", "expected key=value"),
])
def test_bad_header_directive_is_a_config_error_naming_file_and_line(line, where):
    with pytest.raises(ConfigError) as raised:
        parse_header(b"\n".join([b"#!/bin/sh", b"echo", line]), "/h/pre-backup.d/10-x", "pre")
    assert str(raised.value).startswith("/h/pre-backup.d/10-x:3: ")
    assert where in str(raised.value)
    assert raised.value.exit_status == c.EXIT_CONFIG


def test_header_is_only_read_in_the_first_30_lines(tmp_path):
    script = tmp_path / "hook"
    script.write_bytes(b"#!/bin/sh\n" + b"echo\n" * 30 + b"# hookrun: colour=red\n")
    assert parse_header(read_head(str(script)), str(script)) == ({}, [])


def test_binary_executables_have_no_header(tmp_path):
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\0# hookrun: colour=red\n")
    assert parse_header(read_head(str(binary)), str(binary)) == ({}, [])


def test_a_script_with_a_payload_after_its_text_keeps_its_header(tmp_path):
    """A makeself-style installer: a NUL further on made the whole header go unread."""
    script = tmp_path / "installer"
    script.write_bytes(b"#!/bin/sh\n# hookrun: timeout=9s colour=red\nexit 0\n\0payload")
    with pytest.raises(ConfigError, match="installer:2: .*colour"):
        parse_header(read_head(str(script)), str(script))
    script.write_bytes(b"#!/bin/sh\n# hookrun: timeout=9s\nexit 0\n\0# hookrun: retries=2\n")
    assert parse_header(read_head(str(script)), str(script)) == ({"timeout": (9.0, 2)}, [])


def test_a_byte_order_mark_before_the_first_section_is_no_setting(tmp_path):
    conf = tmp_path / "hookrun.conf"
    conf.write_bytes(b"\xef\xbb\xbf[hookrun]\numask = 027\n")
    assert load_config(str(conf), True).get("umask") == 0o27
    conf.write_bytes(b"\xef\xbb\xbf# a comment\n[hookrun]\numask = 027\n")
    assert load_config(str(conf), True).get("umask") == 0o27


def test_reading_a_hooks_first_bytes_never_waits_on_a_fifo(tmp_path):
    """A hook swapped for a FIFO after discovery looked at it: its head reads as nothing at
    once, instead of an open that waits for a writer for ever."""
    import os
    import threading

    fifo = tmp_path / "10-swapped"
    os.mkfifo(fifo)
    found = []
    reader = threading.Thread(target=lambda: found.append(read_head(str(fifo))), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert found == [b""]


CONFIG = """
# a comment
[hookrun]
timeout = 30s
kill_grace = 2s
strict_permissions = no
notify_command = /usr/bin/mail -s 'backup report' root
umask = 077
retry-delay = 1s

[env]
PGHOST = localhost
Mixed_Case = keeps case

[hook pre-backup.d/10-dump]
timeout = 30m
critical = no
"""


def test_config_sections_and_values_are_parsed():
    config = parse_config(CONFIG, "hookrun.conf")
    assert config.get("timeout") == 30
    assert config.get("kill_grace") == 2
    assert config.get("strict_permissions") is False
    assert config.get("notify_command") == ["/usr/bin/mail", "-s", "backup report", "root"]
    assert config.get("umask") == 0o77
    assert config.get("retry_delay") == 1
    assert config.env == {"PGHOST": "localhost", "Mixed_Case": "keeps case"}
    assert config.hooks == {"pre-backup.d/10-dump": {"timeout": 1800, "on_failure": "warn"}}


@pytest.mark.parametrize("text, line, words", [
    ("[hookrun]\ncolour = red\n", 2, "unknown key 'colour'"),
    ("[hookrun]\ntimeout = soon\n", 2, "bad duration"),
    ("[hookrun]\n\nstrict_permissions = perhaps\n", 3, "bad yes/no"),
    ("[hookrun]\numask = 999\n", 2, "bad umask"),
    # Four digits set bits a umask has not: hooks ran with 0777 and no word.
    ("[hookrun]\numask = 1777\n", 2, "bad umask"),
    ("[hookrun]\nnotify_command = 'unclosed\n", 2, "bad command line"),
    ("[other]\n", 1, "unknown section"),
    ("[hook backup]\n", 1, "unknown section"),
    ("timeout = 1s\n", 1, "before any [section]"),
    ("[hookrun]\njust words\n", 2, "expected 'key = value'"),
    ("[hookrun]\ntimeout = 1s\ntimeout = 2s\n", 3, "duplicate key"),
    ("[env]\n1BAD = x\n", 2, "bad environment variable name"),
    ("[hook post-backup.d/x]\nwhen = never\n", 2, "bad when"),
    ("[hook pre-backup.d/x]\nwhen = always\n", 2, "when is for post-EVENT.d only"),
    ("[hook post-backup.d/x]\non-failure = skip-run\n", 2, "for pre-EVENT.d only"),
    ("[hook on-error.d/x]\nevents = Backup\n", 2, "bad events"),
    ("[env]\nX = a\0b\n", 2, "NUL byte"),
    ("[hookrun\n", 1, "unterminated section"),
    ("[hookrun]\n[env]\n[hookrun]\n", 3, "duplicate section"),
    ("[env]\nA = 1\n[env]\n", 3, "duplicate section"),
    ("[hook pre-backup.d/x]\n[hook pre-backup.d/x]\n", 2, "duplicate section"),
    # What a request would take apart and fail on, every run, after the run's row is written.
    ("[hookrun]\nnotify_url = http://[::1\n", 2, "bad URL 'http://[::1' (Invalid IPv6 URL)"),
    ("[hookrun]\nnotify_url = http://u:pw@h]/x\n", 2, "bad URL 'http://u:***@h]/x'"),
    ("[hookrun]\nmetrics_push_url = http://h:99999/\n", 2, "bad URL 'http://h:99999/' (Port"),
    ("[hookrun]\nnotify_url = http://h:x/\n", 2, "bad URL 'http://h:x/' (Port"),
])
def test_config_errors_name_file_and_line(text, line, words):
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "/etc/hookrun/hookrun.conf")
    assert str(raised.value).startswith(f"/etc/hookrun/hookrun.conf:{line}: ")
    assert words in str(raised.value)


def header(**values):
    return {key: (value, 2) for key, value in values.items()}


def test_built_in_defaults_depend_on_the_phase():
    pre = effective_settings("pre", {}, {}, Config(), {})
    post = effective_settings("post", {}, {}, Config(), {})
    assert (pre.critical, pre.timeout, pre.retries, pre.retry_delay, pre.when) == \
        (True, 300, 0, 5, None)
    assert (post.critical, post.when) == (False, "ran")
    assert effective_settings("finally", {}, {}, Config(), {}).critical is False


def test_precedence_is_command_line_then_hook_section_then_header_then_defaults():
    config = parse_config("[hookrun]\ntimeout = 1m\nretries = 1\n", "c")
    assert effective_settings("pre", {}, {}, config, {}).timeout == 60
    assert effective_settings("pre", header(timeout=120), {}, config, {}).timeout == 120
    assert effective_settings("pre", header(timeout=120), {"timeout": 180}, config,
                              {}).timeout == 180
    assert effective_settings("pre", header(timeout=120), {"timeout": 180}, config,
                              {"timeout": 240}).timeout == 240
    assert effective_settings("pre", header(retries=5), {}, config, {}).retries == 5
    assert effective_settings("pre", {}, {}, config, {"timeout": None}).timeout == 60


def test_critical_is_the_older_spelling_of_on_failure_stop_and_warn():
    for text, expected in ((b"critical=yes", "stop"), (b"critical=no", "warn"),
                           (b"on-failure=ignore", "ignore"), (b"critical=yes on-failure=warn",
                                                               "warn")):
        found, _warnings = parse_header(b"#!/bin/sh\n# hookrun: " + text, "h", "pre")
        settings = effective_settings("pre", found, {}, Config(), {})
        assert settings.on_failure == expected
        assert settings.critical is (expected == "stop")


def test_events_is_a_comma_list_for_the_shared_phases():
    found, _warnings = parse_header(b"# hookrun: events=backup,prune", "h", "on-error")
    assert effective_settings("on-error", found, {}, Config(), {}).events == ("backup", "prune")
    assert effective_settings("finally", {}, {}, Config(), {}).events is None


@pytest.mark.parametrize("line, warned", [
    (b"# hookrun timeout=1s", True),
    (b"# HookRun: timeout=1s", True),
    (b"## hook-run: retries=2", True),
    (b"# hookrun runs this script after the dump", False),
    (b"# hookrun: timeout=1s", False),
    (b"echo hookrun timeout=1s", False),
])
def test_a_comment_that_looks_like_a_directive_is_a_warning(line, warned):
    found, warnings = parse_header(b"#!/bin/sh\n" + line + b"\n", "/h/10-x", "pre")
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].startswith("/h/10-x:2: ")


def test_retry_delay_doubles_and_is_capped_at_five_minutes():
    assert retry_delays(5, 4) == [5, 10, 20, 40]
    assert retry_delays(100, 4) == [100, 200, 300, 300]
    assert retry_delays(5, 0) == []


def test_only_newline_ends_a_config_line():
    assert parse_config("[env]\nA = 0\x1e0\n", "c").env == {"A": "0\x1e0"}


def test_default_directories_for_root_and_for_other_users(monkeypatch, tmp_path):
    from orchestrator.plan import context

    monkeypatch.delenv("HOOKRUN_DIR", raising=False)
    monkeypatch.setattr(context.os, "geteuid", lambda: 0)
    assert context.default_hooks_dir() == "/etc/hookrun"
    assert context.default_state_dir() == "/var/lib/hookrun"
    monkeypatch.setattr(context.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert context.default_hooks_dir() == str(tmp_path / "config" / "hookrun")
    assert context.default_state_dir() == str(tmp_path / "state" / "hookrun")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert context.default_state_dir() == str(tmp_path / ".local" / "state" / "hookrun")
    monkeypatch.setenv("HOOKRUN_DIR", "/srv/hooks")
    assert context.default_hooks_dir() == "/srv/hooks"
    monkeypatch.setenv("HOOKRUN_DIR", ":/srv/vendor::/srv/hooks:")
    assert context.default_hooks_dirs() == (["/srv/vendor", "/srv/hooks"], True)
    # $A:$B with both empty names nothing: the defaults, as when it is empty or unset.
    for empty in (":", "::", ""):
        monkeypatch.setenv("HOOKRUN_DIR", empty)
        assert context.default_hooks_dirs() == ([str(tmp_path / "config" / "hookrun")], True)


def test_dry_run_is_a_yes_no_directive_and_a_section_key_off_by_default():
    assert effective_settings("pre", {}, {}, Config(), {}).dry_run is False
    found, _warnings = parse_header(b"# hookrun: dry-run=yes", "h", "post")
    assert effective_settings("post", found, {}, Config(), {}).dry_run is True
    # The [hook] section overrides the header, also to switch it off.
    config = parse_config("[hook post-backup.d/h]\ndry-run = no\n", "c")
    section = config.hooks["post-backup.d/h"]
    assert effective_settings("post", found, section, config, {}).dry_run is False
    with pytest.raises(ConfigError, match="h:1:"):
        parse_header(b"# hookrun: dry-run=maybe", "h", "pre")


@pytest.mark.parametrize("text, days, seconds", [
    ("90", False, 90.0), ("2.5m", False, 150.0), ("1h", False, 3600.0), ("100d", True, 8640000.0),
    ("7d", True, 604800.0), ("999999d", True, 999999 * 86400.0), ("1d", False, None),
    ("101d", True, 8726400.0), ("2500h", False, None), ("1000000d", True, None),
    ("1.d", True, None), ("-1d", True, None), ("\u00b2d", True, None), ("d", True, None)])
def test_one_parser_reads_durations_for_settings_and_for_since(text, days, seconds):
    """Settings (at most 100 days, no d) and --since (d too) share plan.values.parse_duration."""
    if seconds is None:
        with pytest.raises(ValueError):
            parse_duration(text, days=days)
    else:
        assert parse_duration(text, days=days) == seconds
