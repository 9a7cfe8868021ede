"""Exit-status classes (design.md 11): restic's 3 (a file could not be read), borg's 1 (a
warning), rsync's 24 are warnings when the config says so, and restic's 11 (repository
locked) is retried. With the real tools: an unprivileged account backs up a directory
holding a file it may not read, which is what makes restic exit 3 and borg exit 1."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import marker_hook, order, require, run_hookrun, show_last


def as_account(account, *argv):
    """argv run as ``account`` (what the command of a run does here)."""
    return [require(shutil.which("setpriv"), "setpriv"), f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}", "--clear-groups", "--", *argv]


@pytest.fixture
def base():
    """A directory of the test's own that the account can enter (pytest's are root's
    0700 ones)."""
    path = Path(tempfile.mkdtemp(prefix="hookrun-exit-classes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unreadable_data(base):
    """A directory with one readable file and one only root may read."""
    data = base / "data"
    data.mkdir(mode=0o755)
    (data / "readable").write_text("backed up\n")
    (data / "locked").write_text("root only\n")
    (data / "locked").chmod(0o600)
    return data


@pytest.fixture
def account_restic(base, attacker, restic_template):
    """A copy of the test repository, its password and a cache the account owns."""
    repo, password = base / "repo", base / "password"
    shutil.copytree(restic_template["RESTIC_REPOSITORY"], repo)
    shutil.copy2(restic_template["RESTIC_PASSWORD_FILE"], password)
    (base / "cache").mkdir()
    for path in (repo, password, base / "cache"):
        subprocess.run(["chown", "-R", f"{attacker.pw_uid}:{attacker.pw_gid}", str(path)],
                       check=True, timeout=60)
    return {"RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": str(password),
            "RESTIC_CACHE_DIR": str(base / "cache")}


def env_config(tree, env, extra=""):
    lines = "".join(f"{name} = {value}\n" for name, value in env.items())
    tree.config(f"[hookrun]\n{extra}[env]\n{lines}")


def when_hooks(tree):
    for when in ("success", "failure"):
        marker_hook(tree, f"post-backup.d/10-{when}", header=f"when={when}", extra=f'''
            echo "$HOOKRUN_STATUS $HOOKRUN_EXIT_CODE" > "{tree.marks}/seen-{when}"
            printf '%s' "$HOOKRUN_WARNINGS" > "{tree.marks}/warnings"''')
    marker_hook(tree, "on-error.d/10-alert")
    marker_hook(tree, "on-success.d/10-fine")


def test_restics_exit_3_is_a_warning_when_the_config_says_so(tree, attacker, unreadable_data,
                                                             account_restic):
    when_hooks(tree)
    env_config(tree, account_restic, "command_warning_codes = 3\n")
    command = as_account(attacker, "restic", "backup", str(unreadable_data))
    result = run_hookrun("run", *tree.args(), "--", *command)
    assert result.returncode == 0, result.stderr
    record = show_last(tree)
    task = next(t for t in record["tasks"] if t["phase"] == "command")
    assert (record["status"], task["status"], task["exit_code"]) == ("warning", "warning", 3)
    assert order(tree) == ["post/10-success", "on-success/10-fine"]
    assert tree.read("seen-success").strip() == "success 3"
    assert tree.read("warnings").startswith("command/setpriv warning (exit 3: a warning code)")
    assert "could not be read" in tree.read("warnings")


def test_without_warning_codes_restics_exit_3_fails_the_run(tree, attacker, unreadable_data,
                                                            account_restic):
    when_hooks(tree)
    env_config(tree, account_restic)
    result = run_hookrun("run", *tree.args(), "--",
                         *as_account(attacker, "restic", "backup", str(unreadable_data)))
    assert result.returncode == 3
    assert show_last(tree)["status"] == "failure"
    assert order(tree) == ["post/10-failure", "on-error/10-alert"]


def test_borgs_warning_exit_1_is_a_warning_with_a_range_of_codes(tree, base, attacker,
                                                                  unreadable_data):
    require(shutil.which("borg"), "borg (Debian package borgbackup)")
    home = base / "home"
    home.mkdir()
    subprocess.run(["chown", f"{attacker.pw_uid}:{attacker.pw_gid}", str(home)], check=True,
                   timeout=60)
    env = {"HOME": str(home), "BORG_REPO": str(home / "repo")}
    initialised = subprocess.run(as_account(attacker, "env", f"HOME={home}", "borg", "init",
                                            "-e", "none", str(home / "repo")),
                                 capture_output=True, text=True, timeout=120)
    assert initialised.returncode == 0, initialised.stderr
    when_hooks(tree)
    env_config(tree, env, "command_warning_codes = 1, 100-127\n")
    result = run_hookrun("run", *tree.args(), "--",
                         *as_account(attacker, "env", f"HOME={home}", "borg", "create",
                                     "::night", str(unreadable_data)))
    assert result.returncode == 0, result.stderr
    record = show_last(tree)
    assert record["status"] == "warning"
    assert next(t for t in record["tasks"] if t["phase"] == "command")["exit_code"] == 1
    assert "Permission denied" in tree.read("warnings")


def test_a_hooks_warning_codes_make_its_exit_a_warning(tree):
    tree.hook("pre-backup.d/10-rsync", "echo 'file has vanished: x'; exit 24",
              header="warning-codes=23,24")
    tree.hook("pre-backup.d/20-rsync", "exit 23")
    tree.config("[hook pre-backup.d/20-rsync]\nwarning-codes = 23\n")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    record = show_last(tree)
    assert record["status"] == "warning"
    assert [t["status"] for t in record["tasks"] if t["phase"] == "pre"] == ["warning"] * 2
    listing = run_hookrun("list", "--json", *tree.args())
    assert [item["warning_codes"] for item in __import__("json").loads(listing.stdout)] == \
        [[23, 24], [23]]


def test_a_command_that_exits_11_twice_is_retried_until_it_succeeds(tree):
    counter = tree.marks / "attempts"
    script = (f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n + 1)); '
              f'echo "$n" > "{counter}"; [ "$n" -ge 3 ] || {{ echo locked >&2; exit 11; }}')
    tree.config("[hookrun]\ncommand_retries = 3\ncommand_retry_delay = 0\n"
                "command_retry_codes = 11\n")
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    task = next(t for t in show_last(tree)["tasks"] if t["phase"] == "command")
    assert (task["status"], task["attempts"]) == ("ok", 3)
    # An exit that is not a retry code is not retried.
    counter.write_text("0")
    result = run_hookrun("run", *tree.args(), "--", "sh", "-c", "exit 1")
    assert result.returncode == 1
    assert next(t for t in show_last(tree)["tasks"] if t["phase"] == "command")["attempts"] == 1


@pytest.mark.parametrize("value", ["0", "256", "3-1", "x", "1,,2", "²"])
def test_bad_exit_codes_are_a_configuration_error(tree, value):
    tree.config(f"[hookrun]\ncommand_warning_codes = {value}\n")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78 and len(result.stderr.splitlines()) == 1
    assert "hookrun.conf:2" in result.stderr
