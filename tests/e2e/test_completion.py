"""orchestrator/contrib/completion/hookrun, the bash completion: the function run in a real
bash with COMP_WORDS set as bash sets them, against ``hookrun --help``, a hooks tree and a
history."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_hookrun
from tests.e2e.conftest import as_user, plant, user_env
from tests.e2e.test_example_tree import require
from tests.e2e.test_manpages import help_text, options_in_help, subcommands_in_help

ROOT = Path(__file__).resolve().parents[2]
COMPLETION = ROOT / "orchestrator" / "contrib" / "completion" / "hookrun"
# Source the file, set the words (the last is the one being completed), call the function.
CALL = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _hookrun; '
        'printf "%s\\n" "${COMPREPLY[@]}"')


def bash():
    return require(shutil.which("bash"), "bash")


def complete(*words, env=None, path=None, cwd=None):
    """What the completion offers for the command line ``words`` (run in ``cwd``)."""
    full_env = dict(os.environ)
    full_env.pop("HOOKRUN_DIR", None)
    full_env.update(env or {})
    if path is not None:
        full_env["PATH"] = path
    result = subprocess.run([bash(), "-c", CALL, "bash", str(COMPLETION), *words],
                            capture_output=True, text=True, env=full_env, timeout=60,
                            cwd=cwd)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [line for line in result.stdout.splitlines() if line]


def value_options_in_help(text):
    """The options of an argparse help text that take the next word as their value: those
    shown with a metavar or {choices}, not with an optional [VALUE]."""
    found = set()
    for line in text.splitlines():
        if not line.startswith("  -"):
            continue
        for spelling in re.split(r" {2,}", line.strip())[0].split(", "):
            words = spelling.split()
            if len(words) > 1 and not words[1].startswith("["):
                found.add(words[0])
    return found


@pytest.fixture(scope="module")
def subcommands():
    return subcommands_in_help(help_text())


@pytest.fixture
def hooks(tree):
    for name in ("pre-backup.d", "post-backup.d", "post-prune.d", "on-error.d", "finally.d",
                 "pre-Bad.d", "notes.d"):
        (tree.hooks / name).mkdir()
    return tree.hooks


# Against --help: the two cannot drift apart.

def test_every_subcommand_of_the_help_is_offered_and_nothing_else(subcommands):
    assert complete("hookrun", "") == subcommands


def test_the_options_of_each_subcommand_are_those_of_its_help(subcommands):
    # Before the subcommand: hookrun's own, and the common options, which may come first.
    assert set(complete("hookrun", "-")) == \
        options_in_help(help_text()) | options_in_help(help_text("check"))
    for sub in subcommands:
        assert set(complete("hookrun", sub, "-")) == options_in_help(help_text(sub)), sub


def test_the_options_that_take_a_value_are_those_of_the_help(subcommands):
    listed = subprocess.run([bash(), "-c", 'source "$1"; printf "%s\\n" '
                             '"${_hookrun_value_options[@]}"', "bash", str(COMPLETION)],
                            capture_output=True, text=True, timeout=60).stdout.split()
    in_help = set()
    for sub in subcommands:
        in_help |= value_options_in_help(help_text(sub))
    assert set(listed) == in_help


# The hooks directory

def test_events_come_from_the_hooks_directory_named_on_the_line(hooks):
    assert complete("hookrun", "run", "-d", str(hooks), "-e", "") == ["backup", "prune"]
    assert complete("hookrun", "list", "--hooks-dir", "=", str(hooks), "--event", "p") == \
        ["prune"]


def test_without_d_the_hooks_directory_is_hookrun_dir(hooks, tmp_path):
    assert complete("hookrun", "check", "-e", "", env={"HOOKRUN_DIR": str(hooks)}) == \
        ["backup", "prune"]
    other = tmp_path / "other"
    (other / "pre-nightly.d").mkdir(parents=True)
    assert complete("hookrun", "check", "-d", str(other), "-e", "",
                    env={"HOOKRUN_DIR": str(hooks)}) == ["nightly"]
    # Empty parts name no directory, as hookrun reads the list; every part is a layer.
    for listed, events in ((f"{other}:{hooks}:", ["backup", "nightly", "prune"]),
                           (f"{hooks}::", ["backup", "prune"])):
        assert complete("hookrun", "check", "-e", "", env={"HOOKRUN_DIR": listed}) == events


def test_phase_offers_the_phase_directories_of_the_tree(hooks):
    assert complete("hookrun", "phase", "-d", str(hooks), "") == \
        ["finally", "on-error", "post-backup", "post-prune", "pre-backup"]


def only_tree(hooks):
    """pre-backup.d with two hooks, and names a run passes over or that are no literal word."""
    phase = hooks / "pre-backup.d"
    for name in ("10-dump", "20-snapshot", "30-old.disabled", ".hidden", "40-edit~",
                 "$(touch evaluated)"):
        (phase / name).write_text("#!/bin/sh\n")
        (phase / name).chmod(0o755)
    (phase / "50-dir").mkdir()
    return phase


@pytest.mark.parametrize("compat", [None, "51"])
def test_phase_only_offers_the_hooks_of_the_phase_directory_as_literal_words(hooks, tmp_path,
                                                                              compat):
    """Also as bash 5.1 (Debian 11, Ubuntu 22.04), which expands an array subscript again:
    a name used as one was run as a command."""
    only_tree(hooks)
    env = {"BASH_COMPAT": compat} if compat else None
    assert complete("hookrun", "phase", "-d", str(hooks), "pre-backup", "--only", "",
                    env=env, cwd=tmp_path) == ["10-dump", "20-snapshot"]
    assert not (tmp_path / "evaluated").exists()
    assert complete("hookrun", "phase", "pre-backup.d", "-d", str(hooks), "--only", "=",
                    "2", cwd=tmp_path) == ["20-snapshot"]
    assert complete("hookrun", "phase", "-d", str(hooks), "pre-backup", "--only", "10-dump",
                    "--only", "$(") == []
    assert not (tmp_path / "evaluated").exists()
    # No phase directory yet, or a phase directory that is a path: nothing to offer.
    assert complete("hookrun", "phase", "-d", str(hooks), "--only", "") == []
    assert complete("hookrun", "phase", "-d", str(hooks), "../hooks/pre-backup", "--only",
                    "") == []


def test_phase_only_offers_the_hooks_of_every_hooks_directory_on_the_line(hooks, tmp_path):
    only_tree(hooks)
    lower = tmp_path / "lower"
    (lower / "pre-backup.d").mkdir(parents=True)
    (lower / "pre-backup.d" / "05-shipped").write_text("#!/bin/sh\n")
    assert complete("hookrun", "phase", "-d", str(lower), "-d", str(hooks), "pre-backup",
                    "--only", "") == ["05-shipped", "10-dump", "20-snapshot"]


def test_phase_only_offers_nothing_from_a_phase_directory_others_can_write(hooks):
    phase = only_tree(hooks)
    phase.chmod(0o777)
    assert complete("hookrun", "phase", "-d", str(hooks), "pre-backup", "--only", "") == []
    phase.chmod(0o755)


def layered_tree(base):
    """usr (a package's hooks) and etc (the admin's, masking some of them): the two
    directories, and a third, later one that has hooks again."""
    usr, etc, late = base / "usr", base / "etc", base / "late"
    for relative in ("pre-backup.d/10-a", "pre-backup.d/20-b", "post-backup.d/10-p",
                     "pre-prune.d/10-prune", "etc:pre-backup.d/30-c",
                     "late:post-backup.d/20-late", "late:pre-backup.d/20-b"):
        where, _, relative = relative.rpartition(":")
        path = {"": usr, "etc": etc, "late": late}[where] / relative
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    os.symlink(os.devnull, etc / "pre-backup.d" / "20-b")
    os.symlink(os.devnull, etc / "post-backup.d")
    return usr, etc, late


def runs_in(phase, *dirs):
    """The names hookrun itself would run in ``phase`` of the layered ``dirs``."""
    listed = run_hookrun("list", "--json", *[a for d in dirs for a in ("-d", str(d))],
                         "--state-dir", str(dirs[0].parent / "state"))
    assert listed.returncode == 0, listed.stderr
    return sorted(i["name"] for i in json.loads(listed.stdout) if i["dir"] == f"{phase}.d"
                  and i["runs"])


def test_every_layer_is_read_and_a_mask_in_the_last_entry_is_not_offered(tmp_path):
    usr, etc, late = layered_tree(tmp_path)
    on_line = ["-d", str(usr), "-d", str(etc)]
    for given, env in ((on_line, None), ([], {"HOOKRUN_DIR": f"{usr}:{etc}"})):
        assert complete("hookrun", "run", *given, "-e", "", env=env) == ["backup", "prune"]
        # post-backup.d is a mask in etc: no phase of that name is left to run.
        assert complete("hookrun", "phase", *given, "", env=env) == ["pre-backup", "pre-prune"]
        offered = complete("hookrun", "phase", *given, "pre-backup", "--only", "", env=env)
        assert offered == ["10-a", "30-c"] == runs_in("pre-backup", usr, etc)
        assert complete("hookrun", "phase", *given, "post-backup", "--only", "", env=env) == \
            [] == runs_in("post-backup", usr, etc)
        assert complete("hookrun", "phase", *given, "pre-prune", "--only", "", env=env) == \
            ["10-prune"]
    # A later directory than the masks brings names back, as hookrun reads it.
    given = ["-d", str(usr), "-d", str(etc), "-d", str(late)]
    assert complete("hookrun", "phase", *given, "") == ["post-backup", "pre-backup",
                                                       "pre-prune"]
    assert complete("hookrun", "phase", *given, "post-backup", "--only", "") == ["20-late"] \
        == runs_in("post-backup", usr, etc, late)
    assert complete("hookrun", "phase", *given, "pre-backup", "--only", "") == \
        ["10-a", "20-b", "30-c"] == runs_in("pre-backup", usr, etc, late)


DEFAULT_DIRS = 'source "$1"; _hookrun_default_hooks_dirs; printf "%s\\n" "${hooks_dirs[@]}"'


def python_default_dirs(monkeypatch, euid, env):
    """hookrun's own default hooks directories for a user ``euid`` in environment ``env``."""
    from orchestrator.plan import context

    monkeypatch.setattr(os, "geteuid", lambda: euid)
    for name in ("HOOKRUN_DIR", "XDG_CONFIG_HOME", "HOME"):
        if name in env:
            monkeypatch.setenv(name, env[name])
        else:
            monkeypatch.delenv(name, raising=False)
    return context.default_hooks_dirs()[0]


@pytest.mark.parametrize("env", [{}, {"HOOKRUN_DIR": "/a::/b:"}, {"HOOKRUN_DIR": ":"},
                                 {"XDG_CONFIG_HOME": "/xdg"}, {"XDG_CONFIG_HOME": ""}])
def test_the_default_hooks_directories_are_hookruns_for_root_and_for_others(
        env, monkeypatch, attacker):
    """Read from the code, not guessed: root's /usr/lib/hookrun then /etc/hookrun, the colon
    list, another user's ~/.config/hookrun, each as hookrun's default_hooks_dirs()."""
    full = {k: v for k, v in os.environ.items() if k not in ("HOOKRUN_DIR", "XDG_CONFIG_HOME")}
    root = subprocess.run([bash(), "-c", DEFAULT_DIRS, "bash", str(COMPLETION)],
                          env={**full, **env}, capture_output=True, text=True, timeout=60)
    other = as_user(attacker, [bash(), "-c", DEFAULT_DIRS, "bash", str(COMPLETION)],
                    env=user_env(attacker, **env))
    assert root.returncode == 0 and other.returncode == 0, root.stderr + other.stderr
    expected_root = python_default_dirs(monkeypatch, 0, {**env, "HOME": full.get("HOME", "/")})
    expected_other = python_default_dirs(monkeypatch, attacker.pw_uid,
                                         {**env, "HOME": "/nonexistent"})
    assert root.stdout.splitlines() == expected_root
    assert other.stdout.splitlines() == expected_other
    if not env:
        assert expected_root == ["/usr/lib/hookrun", "/etc/hookrun"]


# Values and commands

def test_values_of_color_and_status_also_after_an_equals_sign():
    assert complete("hookrun", "run", "--color", "") == ["auto", "always", "never"]
    assert complete("hookrun", "run", "--color", "=", "al") == ["always"]
    assert complete("hookrun", "phase", "--status", "n") == ["not-run"]
    assert complete("hookrun", "run", "--timeout", "") == []


def test_history_status_offers_run_statuses_and_stats_is_a_subcommand():
    assert complete("hookrun", "history", "--status", "") == [
        "success", "warning", "failure", "skipped", "interrupted", "running"]
    assert complete("hookrun", "history", "--status", "=", "s") == ["success", "skipped"]
    assert complete("hookrun", "phase", "--status", "") == ["success", "failure", "not-run"]
    assert complete("hookrun", "st") == ["stats"]
    assert complete("hookrun", "stats", "--si") == ["--since"]
    assert complete("hookrun", "stats", "--since", "") == []


def test_show_offers_last_tilde_one_and_keeps_a_typed_last_tilde_n(tree):
    history_of(tree)
    assert complete("hookrun", "show", "--state-dir", str(tree.state), "last~") == ["last~1"]
    assert complete("hookrun", "show", "--state-dir", str(tree.state), "last~12") == [
        "last~12"]
    assert complete("hookrun", "show", "--state-dir", str(tree.state), "last~$(x)") == []


def test_the_command_of_run_and_defer_is_completed_as_a_command_then_as_files(tmp_path):
    (tmp_path / "snapshot-list").write_text("")
    assert "true" in complete("hookrun", "run", "--", "tru")
    assert "true" in complete("hookrun", "run", "-e", "backup", "tru")
    assert "true" in complete("hookrun", "defer", "tru")
    assert complete("hookrun", "run", "--wait", "=", "5m", "restic", str(tmp_path / "snap")) \
        == [str(tmp_path / "snapshot-list")]


# Run ids

def history_of(tree):
    """Three runs, newest last: backup, prune, backup; their ids, newest first."""
    tree.events("prune")
    for event in ("backup", "prune", "backup"):
        assert run_hookrun("run", *tree.args("-e", event), "--", "true").returncode == 0
    result = run_hookrun("history", *tree.args())
    return re.findall(r"^(\d{8}T\d{6}-[0-9a-f]{6})\b", result.stdout, re.M)


def test_show_offers_last_and_the_run_ids_newest_first_without_starting_python(tree):
    ids = history_of(tree)
    assert len(ids) == 3
    spy = tree.base / "spy"
    spy.mkdir()
    for name in ("hookrun", "python3", "python"):
        (spy / name).write_text(f'#!/bin/sh\ntouch "{tree.mark("python-ran")}"\n')
        (spy / name).chmod(0o755)
    require(shutil.which("sqlite3"), "sqlite3 (Debian package sqlite3)")
    path = f"{spy}{os.pathsep}{os.environ['PATH']}"
    started = time.monotonic()
    offered = complete("hookrun", "show", "--state-dir", str(tree.state), "", path=path)
    took = time.monotonic() - started
    assert offered == ["last", *ids]
    assert tree.read("python-ran") is None
    assert took < 5, took
    print(f"run ids completed in {took * 1000:.0f} ms (bash start included)")


def test_show_run_ids_follow_the_event_and_the_config_files_state_dir(tree):
    ids = history_of(tree)
    tree.config(f"[hookrun]\nstate_dir = {tree.state}\n")
    assert complete("hookrun", "show", "-d", str(tree.hooks), "-e", "prune", "") == \
        ["last", ids[1]]


def test_show_reads_the_config_files_state_dir_after_an_editors_byte_order_mark(tree):
    """hookrun reads such a file (its first section is no 'setting before any section'), so
    the completion reads it too."""
    ids = history_of(tree)
    tree.config(f"\ufeff[hookrun]\nstate_dir = {tree.state}\n")
    assert complete("hookrun", "show", "-d", str(tree.hooks), "-e", "prune", "") == \
        ["last", ids[1]]


def test_show_reads_the_state_dir_from_the_config_of_the_last_layer_that_has_one(tree):
    ids = history_of(tree)
    tree.config(f"[hookrun]\nstate_dir = {tree.state}\n")
    admin = tree.base / "admin"
    admin.mkdir(mode=0o755)
    assert complete("hookrun", "show", "-d", str(tree.hooks), "-d", str(admin), "") == \
        ["last", *ids]
    assert complete("hookrun", "show", "",
                    env={"HOOKRUN_DIR": f"{tree.hooks}:{admin}"}) == ["last", *ids]


def test_without_sqlite3_run_ids_come_from_hookrun_history(tree):
    ids = history_of(tree)
    tools = tree.base / "bin"
    tools.mkdir()
    for name in ("sed", "sort", "stat", "hookrun"):
        (tools / name).symlink_to(require(shutil.which(name), name))
    assert complete("hookrun", "show", "-d", str(tree.hooks), "--state-dir", str(tree.state),
                    "", path=str(tools)) == ["last", *ids]


# Nothing read is evaluated; nothing foreign is offered

def evil_ids(mark):
    """Run ids that compgen -W would run as commands, each making ``mark``."""
    return [f"$(touch {mark})", f"`touch {mark}`", f"20990101T000000-$(touch {mark})"]


def test_run_ids_that_are_not_literal_words_are_never_run_nor_offered(tree):
    ids = history_of(tree)
    mark = tree.mark("evaluated")
    with sqlite3.connect(tree.state / "history.sqlite3") as db:
        db.executemany("INSERT INTO runs (id, event, status, started) VALUES (?, 'backup', "
                       "'success', '2099-01-01T00:00:00+00:00')",
                       [(run_id,) for run_id in evil_ids(mark)])
    require(shutil.which("sqlite3"), "sqlite3 (Debian package sqlite3)")
    for cur in ("", "$(", "`", "2"):
        offered = complete("hookrun", "show", "--state-dir", str(tree.state), cur)
        assert offered == [word for word in ["last", *ids] if word.startswith(cur)], cur
    assert not mark.exists()


def test_a_history_in_another_users_state_dir_offers_nothing_and_runs_nothing(
        attacker, sticky_dir):
    require(shutil.which("sqlite3"), "sqlite3 (Debian package sqlite3)")
    state, mark = sticky_dir / "mallory-state", sticky_dir / "evaluated"
    values = ", ".join(f"('{run_id}', 'backup')" for run_id in evil_ids(mark))
    plant(attacker, 'mkdir -m 0700 "$1"; sqlite3 "$1/history.sqlite3" "$2"', state,
          f"CREATE TABLE runs (id TEXT, event TEXT); INSERT INTO runs VALUES {values}, "
          "('20990101T000000-abcdef', 'backup');")
    for words in (["show", "--state-dir", str(state), ""],
                  ["show", "--state-dir", str(state), "-e", "backup", "2"]):
        assert complete("hookrun", *words) == (["last"] if words[-1] == "" else [])
    assert not mark.exists()


def test_a_hooks_tree_of_another_user_or_that_others_can_write_offers_nothing(
        attacker, sticky_dir, hooks):
    foreign = sticky_dir / "mallory-hooks"
    plant(attacker, 'mkdir -m 0755 "$1" "$1/pre-nightly.d" "$1/on-error.d"', foreign)
    assert complete("hookrun", "run", "-d", str(foreign), "-e", "") == []
    assert complete("hookrun", "phase", "-d", str(foreign), "") == []
    assert complete("hookrun", "run", "-e", "", env={"HOOKRUN_DIR": str(foreign)}) == []
    hooks.chmod(0o777)
    assert complete("hookrun", "run", "-d", str(hooks), "-e", "") == []
    hooks.chmod(0o755)
    assert complete("hookrun", "run", "-d", str(hooks), "-e", "") == ["backup", "prune"]


def test_a_config_of_another_user_names_no_state_dir_to_complete_from(attacker, sticky_dir,
                                                                      tree):
    ids = history_of(tree)
    require(shutil.which("sqlite3"), "sqlite3 (Debian package sqlite3)")
    config = sticky_dir / "hookrun.conf"
    plant(attacker, 'printf "[hookrun]\\nstate_dir = %s\\n" "$2" > "$1"', config, tree.state)
    # The default state directory is looked at instead: the machine's own runs, if any.
    assert not set(complete("hookrun", "show", "-c", str(config), "")) & set(ids)
    tree.config(f"[hookrun]\nstate_dir = {tree.state}\n")
    assert complete("hookrun", "show", "-d", str(tree.hooks), "") == ["last", *ids]


# The file itself

def test_the_completion_is_shellcheck_clean_and_installed_with_the_package():
    shellcheck = require(shutil.which("shellcheck"), "shellcheck")
    result = subprocess.run([shellcheck, "-s", "bash", str(COMPLETION)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    setup = (ROOT / "setup.cfg").read_text()
    assert re.search(r"^share/bash-completion/completions =\s+"
                     r"orchestrator/contrib/completion/hookrun$", setup, re.M)
