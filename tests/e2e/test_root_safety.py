"""No path that another user controls can make root's hookrun run code or write files
(design.md section 8). Each attack is planted by a real unprivileged account; root's hookrun
must refuse it (exit 77, naming the path) with nothing executed or written on the way."""

import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import run_hookrun
from tests.e2e.conftest import as_user, plant, user_env

EXIT_UNSAFE = 77


def lines_naming(stderr, path):
    return [line for line in stderr.splitlines() if str(path) in line]


def root_tree(base, marks):
    """A hooks tree of root's at ``base`` whose pre- hook leaves a mark when it runs."""
    hook = base / "pre-backup.d" / "10-mark"
    hook.parent.mkdir(parents=True, mode=0o755)
    hook.write_text(f'#!/bin/sh\necho ran >> "{marks}/ran"\n')
    hook.chmod(0o755)
    return base


@pytest.fixture
def safe_base(tmp_path):
    """A root-owned directory for what must be safe, and one for marks."""
    marks = tmp_path / "marks"
    marks.mkdir()
    return tmp_path, marks


def test_a_journal_planted_under_tmp_is_never_replayed_as_root(attacker, sticky_dir, safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    state = sticky_dir / "st"
    plant(attacker, 'd="$1/runs/20200101T000000-aaaaaa"; mkdir -p "$d"; : > "$d/owner.lock"; '
                    'echo "id > $2/pwned" > "$d/cleanup"', state, sticky_dir)
    for argv in (["run", "-d", str(hooks), "--state-dir", str(state), "--", "true"],
                 ["recover", "-d", str(hooks), "--state-dir", str(state)]):
        result = run_hookrun(*argv)
        assert result.returncode == EXIT_UNSAFE, result.stderr
        assert lines_naming(result.stderr, state) and "Traceback" not in result.stderr
    assert not (sticky_dir / "pwned").exists()
    assert not (marks / "ran").exists()
    assert (state / "runs" / "20200101T000000-aaaaaa" / "cleanup").exists()
    assert not (state / "locks").exists()  # nothing created in the attacker's directory


def test_a_state_dir_below_a_directory_the_attacker_owns_is_refused(attacker, sticky_dir,
                                                                     safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    plant(attacker, 'mkdir -m 0755 "$1"', sticky_dir / "mallory")
    state = sticky_dir / "mallory" / "hookrun"
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(state), "--", "true")
    assert result.returncode == EXIT_UNSAFE
    assert lines_naming(result.stderr, sticky_dir / "mallory")
    assert not state.exists() and not (marks / "ran").exists()


def test_a_sticky_parent_is_fine_for_a_state_dir_of_ones_own(sticky_dir, safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(sticky_dir / "st"),
                         "--", "true")
    assert result.returncode == 0, result.stderr
    assert (marks / "ran").read_text() == "ran\n"
    assert stat.S_IMODE((sticky_dir / "st").stat().st_mode) == 0o700


def test_a_group_writable_parent_of_the_state_dir_is_refused(safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    shared = base / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(shared / "st"),
                         "--", "true")
    assert result.returncode == EXIT_UNSAFE
    assert f"chmod go-w {shared}" in result.stderr
    assert not (shared / "st").exists() and not (marks / "ran").exists()


@pytest.mark.parametrize("name", ["locks/backup.lock", "hookrun.log", "history.sqlite3"])
def test_links_planted_in_a_state_dir_are_never_written_through(attacker, sticky_dir,
                                                                 safe_base, name):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    victim = base / "victim"
    victim.write_text("precious\n")
    missing = base / "created-by-root"
    state = sticky_dir / "st"
    (hooks / "pre-prune.d").mkdir(mode=0o755)
    plant(attacker, 'mkdir -p "$1/locks" "$1/runs"; ln -s "$2" "$1/$3"; '
                    'ln -s "$4" "$1/locks/prune.lock"', state, victim, name, missing)
    for event in ("backup", "prune"):
        result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(state), "-e", event,
                             "--", "true")
        assert result.returncode == EXIT_UNSAFE, result.stderr
    assert victim.read_text() == "precious\n" and not missing.exists()


def test_a_log_file_another_user_made_or_linked_is_never_appended_to(attacker, sticky_dir,
                                                                    safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    (hooks / "pre-backup.d" / "20-secret").write_text("#!/bin/sh\necho TOKEN=hunter2\n")
    (hooks / "pre-backup.d" / "20-secret").chmod(0o755)
    readable = sticky_dir / "readable.log"
    linked = sticky_dir / "linked.log"
    victim = base / "victim.log"
    victim.write_text("")
    plant(attacker, ': > "$1"; chmod 644 "$1"; ln -s "$2" "$3"', readable, victim, linked)
    for log in (readable, linked):
        result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(base / "st"),
                             "--log-file", str(log), "--", "true")
        assert result.returncode == EXIT_UNSAFE and lines_naming(result.stderr, log)
    assert readable.read_text() == "" and victim.read_text() == ""
    assert not (marks / "ran").exists()
    own = sticky_dir / "own.log"
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(base / "st"),
                         "--log-file", str(own), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "hunter2" in own.read_text() and stat.S_IMODE(own.stat().st_mode) == 0o600


def test_a_metrics_file_linked_by_another_user_is_refused(attacker, sticky_dir, safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    victim = base / "victim"
    victim.write_text("precious\n")
    plant(attacker, 'ln -s "$1" "$2"', victim, sticky_dir / "hookrun.prom")
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(base / "st"),
                         "--metrics-file", str(sticky_dir / "hookrun.prom"), "--", "true")
    assert result.returncode == EXIT_UNSAFE
    assert lines_naming(result.stderr, sticky_dir / "hookrun.prom")
    assert victim.read_text() == "precious\n" and not (marks / "ran").exists()


def test_a_metrics_file_linked_by_another_user_while_the_run_goes_on_is_not_written_through(
        attacker, sticky_dir, safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    victim = base / "victim"
    victim.write_text("precious\n")
    metrics = sticky_dir / "hookrun.prom"
    # The checks at the start find no link; the attacker plants one while a hook runs.
    hook = hooks / "pre-backup.d" / "20-attacker-acts"
    hook.write_text(f"#!/bin/sh\nsetpriv --reuid={attacker.pw_uid} --regid={attacker.pw_gid} "
                    f'--clear-groups -- ln -s "{victim}" "{metrics}"\n')
    hook.chmod(0o755)
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(base / "st"),
                         "--metrics-file", str(metrics), "--", "true")
    assert (marks / "ran").exists() and metrics.is_symlink(), result.stderr
    assert victim.read_text() == "precious\n"
    assert result.returncode == 0
    assert lines_naming(result.stderr, metrics) and "Traceback" not in result.stderr


def test_a_hooks_tree_below_a_directory_the_attacker_owns_is_refused(attacker, sticky_dir,
                                                                    safe_base):
    base, marks = safe_base
    plant(attacker, 'mkdir -m 0755 "$1"', sticky_dir / "mallory")
    hooks = root_tree(sticky_dir / "mallory" / "hooks", marks)
    for command in ("check", "run", "list"):
        result = run_hookrun(command, "-d", str(hooks), "--state-dir", str(base / "st"),
                             *(("--", "true") if command == "run" else ()))
        if command == "list":
            assert result.returncode == 0  # list shows the plan; it runs nothing
            continue
        assert result.returncode == EXIT_UNSAFE, (command, result.stderr)
        assert lines_naming(result.stderr, sticky_dir / "mallory")
    # What the attacker would do while a hook sleeps: swap the tree for one of their own.
    plant(attacker, 'mv "$1/hooks" "$1/old"; mkdir -p "$1/hooks/pre-backup.d"; '
                    'printf "#!/bin/sh\\necho MALLORY > %s/mallory\\n" "$2" '
                    '> "$1/hooks/pre-backup.d/10-mark"; chmod 755 "$1/hooks/pre-backup.d/10-mark"',
          sticky_dir / "mallory", marks)
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(base / "st"), "--", "true")
    assert result.returncode == EXIT_UNSAFE
    assert not (marks / "ran").exists() and not (marks / "mallory").exists()


def test_a_hook_linked_into_a_directory_the_attacker_owns_is_refused(attacker, sticky_dir,
                                                                    safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    plant(attacker, 'mkdir -m 0755 "$1"', sticky_dir / "mallory")
    script = sticky_dir / "mallory" / "script"
    script.write_text(f'#!/bin/sh\necho ran >> "{marks}/linked"\n')
    script.chmod(0o755)
    os.symlink(script, hooks / "pre-backup.d" / "20-linked")
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(base / "st"), "--", "true")
    assert result.returncode == EXIT_UNSAFE
    assert lines_naming(result.stderr, sticky_dir / "mallory")
    assert not (marks / "ran").exists() and not (marks / "linked").exists()


@pytest.mark.parametrize("shebang", ["#!{interp}", "#!/usr/bin/env evil-sh"])
def test_an_interpreter_another_user_owns_is_refused(attacker, sticky_dir, safe_base,
                                                     shebang):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    bindir = sticky_dir / "bin"
    plant(attacker, 'mkdir -m 0755 "$1"; printf "#!/bin/sh\\nid -u > %s/uid\\n" "$2" '
                    '> "$1/evil-sh"; chmod 755 "$1/evil-sh"', bindir, sticky_dir)
    hook = hooks / "pre-backup.d" / "20-interp"
    hook.write_text(shebang.format(interp=bindir / "evil-sh") + "\necho hello\n")
    hook.chmod(0o755)
    config = hooks / "hookrun.conf"
    config.write_text(f"[hookrun]\npath = {bindir}:/usr/bin:/bin\n")
    for command in ("check", "run"):
        result = run_hookrun(command, "-d", str(hooks), "--state-dir", str(base / "st"),
                             *(("--", "true") if command == "run" else ()))
        assert result.returncode == EXIT_UNSAFE, result.stderr
        assert lines_naming(result.stderr, bindir)
    assert not (sticky_dir / "uid").exists() and not (marks / "ran").exists()


def test_every_unsafe_path_is_named_not_only_the_first(attacker, safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    second = hooks / "pre-backup.d" / "20-other"
    second.write_text("#!/bin/sh\ntrue\n")
    second.chmod(0o757)
    os.chown(hooks / "pre-backup.d" / "10-mark", attacker.pw_uid, -1)
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(base / "st"), "--", "true")
    assert result.returncode == EXIT_UNSAFE
    assert lines_naming(result.stderr, second) and lines_naming(result.stderr, "10-mark")
    assert len(result.stderr.splitlines()) == 2


def test_a_root_only_hook_fails_alike_in_list_check_phase_and_run(attacker, user_hookrun,
                                                                  sticky_dir):
    home = sticky_dir / "mallory-home"
    plant(attacker, 'mkdir -m 0700 "$1"; mkdir -m 0755 "$1/hooks" "$1/hooks/pre-backup.d" '
                    '"$1/marks"; printf "#!/bin/sh\\necho ran >> %s/marks/order\\n" "$1" '
                    '> "$1/hooks/pre-backup.d/20-mine"; chmod 755 "$1/hooks/pre-backup.d/20-mine"',
          home)
    roots = home / "hooks" / "pre-backup.d" / "10-roots"
    roots.write_text(f'#!/bin/sh\necho root >> "{home}/marks/order"\n')
    roots.chmod(0o700)  # root's, mode 0700: it has an x bit, but not for the user
    args = ["-d", str(home / "hooks"), "--state-dir", str(home / "state")]
    env = user_env(attacker)
    listing = as_user(attacker, [user_hookrun, "list", "--json", *args], env=env)
    assert listing.returncode == 0, listing.stderr
    item = next(i for i in json.loads(listing.stdout) if i["name"] == "10-roots")
    assert item["runs"] is True and item["reason"] == "not executable"
    check = as_user(attacker, [user_hookrun, "check", *args], env=env)
    assert check.returncode == 1 and "10-roots: not executable" in check.stderr
    phase = as_user(attacker, [user_hookrun, "phase", "pre-backup", *args], env=env)
    assert phase.returncode == 69, phase.stderr
    run = as_user(attacker, [user_hookrun, "run", *args, "--", "true"], env=env)
    assert run.returncode == 69, run.stderr
    # A critical pre- hook that cannot start stops the run: neither runs after it.
    assert not (home / "marks" / "order").exists()
    shown = as_user(attacker, [user_hookrun, "show", "last", "--json", *args], env=env)
    record = json.loads(shown.stdout)
    task = next(t for t in record["tasks"] if t["name"] == "10-roots")
    assert (record["status"], task["status"], task["reason"]) == \
        ("failure", "failed", "not executable")


def test_the_attacker_cannot_read_what_root_keeps(attacker, sticky_dir, safe_base):
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    state = sticky_dir / "st"
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(state), "--", "true")
    assert result.returncode == 0, result.stderr
    peek = as_user(attacker, ["/bin/cat", str(state / "hookrun.log")])
    assert peek.returncode != 0 and peek.stdout == ""
    assert Path(state).stat().st_uid == 0


def test_a_refused_run_never_writes_or_pings_where_another_users_config_says(
        attacker, sticky_dir, safe_base, checker):
    """A config file of another user is refused (77), and is not read for the refusal's own
    report (design.md section 10): its metrics_file would make root replace any file."""
    base, marks = safe_base
    hooks = root_tree(base / "hooks", marks)
    victim = base / "victim"
    victim.write_text("precious\n")
    config = sticky_dir / "mallory.conf"
    plant(attacker, 'printf "[hookrun]\\nmetrics_file = %s\\nnotify_url = %s\\n" "$2" "$3" '
                    '> "$1"', config, victim, checker.url)
    result = run_hookrun("run", "-d", str(hooks), "-c", str(config), "--state-dir",
                         str(base / "st"), "--", "true")
    assert result.returncode == EXIT_UNSAFE, result.stderr
    assert lines_naming(result.stderr, config) and "Traceback" not in result.stderr
    assert victim.read_text() == "precious\n" and not (marks / "ran").exists()
    assert checker.requests == []


def test_a_phase_directory_the_user_cannot_read_is_a_warning_never_a_silent_empty_phase(
        attacker, user_hookrun, sticky_dir):
    """Root's post-backup.d, mode 0700, in the user's tree: no hook in it can run for the
    user. The run says so and is not green; check fails it."""
    home = sticky_dir / "mallory-home"
    plant(attacker, 'mkdir -m 0700 "$1"; mkdir -m 0755 "$1/hooks"', home)
    closed = home / "hooks" / "post-backup.d"
    closed.mkdir(mode=0o700)  # root's
    (closed / "10-verify").write_text("#!/bin/sh\n")
    (closed / "10-verify").chmod(0o755)
    args = ["-d", str(home / "hooks"), "--state-dir", str(home / "state")]
    env = user_env(attacker)
    run = as_user(attacker, [user_hookrun, "run", *args, "--", "true"], env=env)
    assert run.returncode == 0, run.stderr
    assert f"{closed} is a directory that cannot be read (Permission denied)" in run.stderr
    assert "let the user running hookrun read it" in run.stderr
    shown = as_user(attacker, [user_hookrun, "show", "last", "--json", *args], env=env)
    assert json.loads(shown.stdout)["status"] == "warning"
    check = as_user(attacker, [user_hookrun, "check", *args], env=env)
    assert check.returncode == 1 and "cannot be read" in check.stderr, check.stderr
    # phase of that directory alone has nothing it can run: a usage error, never exit 0.
    phase = as_user(attacker, [user_hookrun, "phase", "post-backup", *args], env=env)
    assert phase.returncode == 2 and "cannot be read" in phase.stderr, phase.stderr
