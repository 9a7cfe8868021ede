"""Which files of a phase directory run, in which order, and why the others do not."""

import os

import pytest

from orchestrator import constants as c
from orchestrator.errors import ConfigError
from orchestrator.plan.discovery import (
    IgnoreRules,
    PhaseDir,
    discover,
    phase_dir_named,
    phase_dirs,
    silent_skip_reason,
)

PRE = PhaseDir(c.PHASE_PRE, "pre-backup.d")


def make(directory, name, mode=0o755, content=b"#!/bin/sh\n"):
    path = directory / name
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.fixture
def hooks(tmp_path):
    (tmp_path / "pre-backup.d").mkdir()
    return tmp_path


def names(entries, runs=True):
    return [e.name for e in entries if e.runs == runs]


def test_order_is_byte_wise_like_lc_all_c(hooks):
    d = hooks / "pre-backup.d"
    for name in ["20-b", "100-a", "Z-upper", "a-lower", "10-a", "_x", "é-accent"]:
        make(d, name)
    found = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert names(found) == sorted(names(found), key=os.fsencode)
    assert names(found) == ["10-a", "100-a", "20-b", "Z-upper", "_x", "a-lower", "é-accent"]


@pytest.mark.parametrize("name", [".hidden", "x~", "#x#", "x.dpkg-old", "x.dpkg-new",
                                  "x.dpkg-dist", "x.dpkg-tmp", "x.ucf-old", "x.ucf-new",
                                  "x.ucf-dist", "x.rpmnew", "x.rpmsave", "x.rpmorig", "x.swp",
                                  "x.bak", "x.orig", "x.disabled"])
def test_leftovers_are_skipped_without_a_warning(hooks, name):
    make(hooks / "pre-backup.d", name)
    [entry] = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert not entry.runs and not entry.warn and entry.reason
    assert silent_skip_reason(name)


def test_what_is_not_a_hook_is_skipped_with_a_warning(hooks):
    d = hooks / "pre-backup.d"
    (d / "20-dir").mkdir()
    os.mkfifo(d / "40-fifo")
    found = {e.name: e for e in discover(str(hooks), PRE, IgnoreRules(str(hooks)))}
    assert all(not e.runs and e.warn and not e.fails for e in found.values())
    assert "directory" in found["20-dir"].reason
    assert "fifo" in found["40-fifo"].reason


def test_hooks_that_cannot_start_are_tasks_that_fail_not_skips(hooks):
    d = hooks / "pre-backup.d"
    make(d, "10-not-exec", mode=0o644)
    os.symlink(d / "missing", d / "30-broken")
    found = {e.name: e for e in discover(str(hooks), PRE, IgnoreRules(str(hooks)))}
    assert all(e.runs and not e.warn for e in found.values())
    assert found["10-not-exec"].fails == "not executable"
    assert found["30-broken"].fails == "broken symlink"


@pytest.mark.parametrize("name, meant", [
    ("on_error.d", "on-error.d"), ("pre_backup.d", "pre-backup.d"),
    ("prebackup.d", "pre-backup.d"), ("pre-backup", "pre-backup.d"),
    ("Post-Backup.d", "post-backup.d"), ("FINALLY", "finally.d"), ("onsuccess.d", "on-success.d"),
    ("pre-backup.d", None), ("postgres", None), ("migrations", None), ("pre-prune.d", None),
])
def test_near_miss_directories_name_what_they_were_meant_to_be(name, meant):
    from orchestrator.plan.discovery import meant_phase_dir

    assert meant_phase_dir(name, ("backup",)) == meant


def test_a_hookignore_that_hides_a_whole_phase_is_named(hooks):
    from orchestrator.plan.discovery import hidden_by_ignore

    d = hooks / "pre-backup.d"
    make(d, "10-dump.sh")
    make(d, "20-stop.sh")
    (hooks / ".hookignore").write_text("*.*\n")
    found = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert "pre-backup.d" in hidden_by_ignore(PRE, found)
    (hooks / ".hookignore").write_text("*.sh.old\n")
    found = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert hidden_by_ignore(PRE, found) is None


def test_symlink_to_an_executable_runs_and_no_recursion_into_directories(hooks):
    d = hooks / "pre-backup.d"
    target = make(hooks, "real-script")
    os.symlink(target, d / "10-link")
    (d / "20-sub").mkdir()
    make(d / "20-sub", "30-inside")
    found = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert names(found) == ["10-link"]
    assert "30-inside" not in [e.name for e in found]


def test_a_byte_order_mark_does_not_spoil_the_first_hookignore_line(hooks):
    """An editor's BOM made the first pattern match nothing: a hook switched off ran."""
    make(hooks / "pre-backup.d", "10-off")
    make(hooks / "pre-backup.d", "20-on")
    (hooks / c.IGNORE_NAME).write_bytes(b"\xef\xbb\xbfpre-backup.d/10-off\n")
    found = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert [e.name for e in found if e.runs] == ["20-on"]


def test_hookignore_uses_gitignore_patterns_relative_to_the_hooks_dir(hooks):
    d = hooks / "pre-backup.d"
    for name in ["10-a.sample", "20-b", "30-c", "40-keep.sample"]:
        make(d, name)
    (hooks / c.IGNORE_NAME).write_text("*.sample\n!40-keep.sample\npre-backup.d/30-*\n")
    found = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert names(found) == ["20-b", "40-keep.sample"]
    skipped = [e for e in found if not e.runs]
    assert all(not e.warn and ".hookignore" in e.reason for e in skipped)


@pytest.mark.parametrize("line", ["!", "a\\", "[z-a]bad", "**/[b-a]"])
def test_a_hookignore_line_no_pattern_can_be_made_of_is_78_naming_file_and_line(hooks, line):
    """pathspec's own refusals, and a range ``re`` refuses: re.error is no ValueError, and
    was an internal error (exit 70)."""
    (hooks / c.IGNORE_NAME).write_text(f"*.sample\n{line}\n")
    with pytest.raises(ConfigError) as raised:
        IgnoreRules(str(hooks))
    assert str(raised.value) == \
        f"{hooks / c.IGNORE_NAME}:2: bad pattern {line!r} (gitignore syntax)"


def test_what_re_warns_of_in_a_hookignore_pattern_is_no_line_on_stderr(hooks, recwarn):
    (hooks / c.IGNORE_NAME).write_text("[[:nope:]]\n")
    IgnoreRules(str(hooks))
    assert [str(w.message) for w in recwarn] == []


def test_missing_phase_directory_is_an_empty_phase(tmp_path):
    assert discover(str(tmp_path), PRE, IgnoreRules(str(tmp_path))) == []


def test_names_that_are_not_utf8_are_found_and_ordered(hooks):
    d = os.fsencode(hooks / "pre-backup.d")
    for raw in (b"10-\xff", b"05-ok"):
        path = os.path.join(d, raw)
        with open(path, "wb") as handle:
            handle.write(b"#!/bin/sh\n")
        os.chmod(path, 0o755)
    found = discover(str(hooks), PRE, IgnoreRules(str(hooks)))
    assert [os.fsencode(e.name) for e in found] == [b"05-ok", b"10-\xff"]


def test_phase_dirs_of_an_event_and_names_given_by_users():
    assert [p.dirname for p in phase_dirs("prune")] == [
        "pre-prune.d", "post-prune.d", "on-error.d", "on-success.d", "finally.d"]
    assert phase_dir_named("pre-backup") == (PhaseDir("pre", "pre-backup.d"), "backup")
    assert phase_dir_named("post-db-dump.d") == (PhaseDir("post", "post-db-dump.d"), "db-dump")
    assert phase_dir_named("finally") == (PhaseDir("finally", "finally.d"), None)
    assert phase_dir_named("on-error.d") == (PhaseDir("on-error", "on-error.d"), None)
    assert phase_dir_named("pre-Bad") is None
    assert phase_dir_named("elsewhere") is None
