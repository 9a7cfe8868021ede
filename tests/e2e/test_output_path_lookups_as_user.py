"""An output path that a user's own hookrun cannot look up (a directory of its own it may not
search, EACCES) is not a trust problem (design.md sections 2, 4 and 8): the log file refuses
the run with 73, the metrics file is a warning and the backup runs. A link of another user on
the way stays unsafe (77), even when the way then fails (a loop of the attacker's links)."""

import json

import pytest

from tests.conftest import run_hookrun
from tests.e2e.conftest import as_user, plant, user_env

EXIT_CANT_CREATE = 73
EXIT_UNSAFE = 77


@pytest.fixture
def user_home(attacker, sticky_dir):
    """The second user's hooks tree (a pre- hook marking 'ran'), marks and a directory of its
    own that it may not search (mode 000), in a home of its own."""
    home = sticky_dir / "user-home"
    plant(attacker, 'mkdir -m 0700 "$1"; mkdir -m 0755 "$1/hooks" "$1/hooks/pre-backup.d" '
                    '"$1/marks"; mkdir -m 0 "$1/closed"; '
                    'printf "#!/bin/sh\\necho ran > %s/marks/ran\\n" "$1" '
                    '> "$1/hooks/pre-backup.d/10-mark"; chmod 755 "$1/hooks/pre-backup.d/10-mark"',
          home)
    return home


def user_run(attacker, user_hookrun, home, *options):
    """The second user's backup run (its command marks 'backup'), with ``options``."""
    return as_user(attacker, [user_hookrun, "run", "-d", str(home / "hooks"), "--state-dir",
                              str(home / "state"), *options, "--", "sh", "-c",
                              f"echo done > {home / 'marks' / 'backup'}"],
                   env=user_env(attacker))


def test_a_metrics_directory_the_user_cannot_search_is_a_warning_and_its_backup_runs(
        attacker, user_hookrun, user_home):
    metrics = user_home / "closed" / "textfile" / "hookrun.prom"
    result = user_run(attacker, user_hookrun, user_home, "--metrics-file", str(metrics))
    assert result.returncode == 0, result.stderr
    assert (user_home / "marks" / "ran").read_text() == "ran\n"
    assert (user_home / "marks" / "backup").read_text() == "done\n"
    warnings = [line for line in result.stderr.splitlines()
                if "cannot write metrics file" in line and "Permission denied" in line]
    assert len(warnings) == 1 and "unsafe" not in result.stderr, result.stderr
    shown = as_user(attacker, [user_hookrun, "show", "last", "--json", "-d",
                               str(user_home / "hooks"), "--state-dir",
                               str(user_home / "state")], env=user_env(attacker))
    record = json.loads(shown.stdout)
    assert (record["status"], record["exit_code"]) == ("success", 0)


@pytest.mark.parametrize("below", ["hookrun.log", "logs/hookrun.log"])
def test_a_log_directory_the_user_cannot_search_refuses_the_run_as_not_creatable(
        attacker, user_hookrun, user_home, below):
    log = user_home / "closed" / below
    metrics = user_home / "hookrun.prom"
    result = user_run(attacker, user_hookrun, user_home, "--log-file", str(log),
                      "--metrics-file", str(metrics))
    assert result.returncode == EXIT_CANT_CREATE, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "cannot open log file" in lines[0], result.stderr
    assert "Permission denied" in lines[0] and "unsafe" not in lines[0]
    assert not (user_home / "marks" / "ran").exists()
    assert not (user_home / "marks" / "backup").exists()
    refused = [line for line in metrics.read_text().splitlines()
               if line.startswith("hookrun_last_refused_timestamp_seconds{")]
    assert len(refused) == 1 and 'reason="state"' in refused[0], refused


@pytest.mark.parametrize("option", ["--log-file", "--metrics-file"])
def test_a_loop_of_another_users_links_on_the_way_is_still_unsafe(attacker, sticky_dir,
                                                                  tmp_path, option):
    """The way fails (ELOOP), but only after passing links another user owns: refused."""
    plant(attacker, 'ln -s "$2" "$1/loop-a"; ln -s "$1/loop-a" "$2"', sticky_dir,
          sticky_dir / "loop-b")
    hooks = tmp_path / "hooks"
    (hooks / "pre-backup.d").mkdir(parents=True)
    mark = tmp_path / "ran"
    result = run_hookrun("run", "-d", str(hooks), "--state-dir", str(tmp_path / "state"),
                         option, str(sticky_dir / "loop-a" / "out"), "--", "sh", "-c",
                         f"echo done > {mark}")
    assert result.returncode == EXIT_UNSAFE, result.stderr
    assert "unsafe output file" in result.stderr and str(sticky_dir / "loop-a") in \
        result.stderr
    assert not mark.exists()


def test_recover_of_a_state_directory_the_user_cannot_look_at_is_73_not_nothing_to_do(
        attacker, user_hookrun, user_home):
    """Only a state directory that does not exist has nothing to recover; one behind a
    directory the user may not search (EACCES) is refused, not reported as all done."""
    state = user_home / "closed" / "state"
    result = as_user(attacker, [user_hookrun, "recover", "--state-dir", str(state),
                                "--log-file", ""], env=user_env(attacker))
    assert result.returncode == EXIT_CANT_CREATE, (result.stdout, result.stderr)
    assert "nothing to recover" not in result.stdout
    assert "Permission denied" in result.stderr
