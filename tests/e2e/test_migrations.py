"""End-to-end tests of the worked migration trees in examples/migrations/: each test
runs the installed ``hookrun`` on a copy of one tree and ports an example of the system it
replaces (Backrest's error policies, Barman's standard and retry scripts, Borgitory's critical
and run-on-failure hooks, resticm's four hooks, borgmatic's soft failure, resticprofile's
run-* targets), with a real restic or borg repository and a real PostgreSQL server where the
example has them, and a real HTTP checker on 127.0.0.1 for the notifications. Also:
run-parts' exact set of names with a .hookignore line, proved against Debian's run-parts.

The assertions read marker files that the hooks write (``BACKUP_REPORT``), the exit status,
the run's record (``hookrun show --json``, each task with its ``output``) and the pings the
checker received.
"""

import json
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require
from tests.e2e import test_example_tree as example_tree
from tests.e2e.test_example_tree import (
    EXAMPLE,
    Hookrun,
    bin_without,
    execute,
    free_port,
    hermetic_env,
    hookrun_path,
    outcome,
    pg_connection,
    psql,
    remove_group_other_write,
    restic,
    set_env_section,
    set_hookrun_key,
    snapshots,
    task_statuses,
)

# The example tree's fixture, reused: an initialised restic repository per test (the
# PostgreSQL server comes from conftest.py).
restic_repo = example_tree.restic_repo

ROOT = EXAMPLE.parent
# Beside the example tree, not in it: cp -a hooks.d.example/. /etc/hookrun copies a hooks tree
# and nothing else.
MIGRATIONS = ROOT / "examples" / "migrations"
SYSTEMS = ("backrest", "barman", "borgitory", "borgmatic", "resticm", "resticprofile")
EXIT_HOOK_STOPPED = 69
WRONG_PASSWORD = "Fatal: wrong password or no key found"
# run-parts (without --lsbsysinit) runs only names made of these characters; one .hookignore
# line skips every other name in every phase directory (and not the directories themselves,
# whose names have a dot: a bare "*.*" would hide them and so every hook).
RUN_PARTS_IGNORE = "/*/*[!A-Za-z0-9_-]*"


# Helpers

def migration_copy(tmp_path, system, env_values):
    """A copy of migrations/``system`` in ``tmp_path`` (go-w, as a checkout made with umask
    002 needs), with ``env_values`` as the [env] section of its hookrun.conf."""
    tree = tmp_path / "hooks"
    shutil.copytree(MIGRATIONS / system, tree, symlinks=True)
    remove_group_other_write(tree)
    set_env_section(tree / "hookrun.conf", {k: str(v) for k, v in env_values.items()})
    return tree


def tasks_by_key(record):
    return {f"{task['phase']}/{task['name']}": task for task in record["tasks"]}


def kept_with_a_warning(hookrun, result, task):
    """(the run's record, the record of ``task``), once it is sure that the task warned
    (exit 3, its warning code) and so the run ended ``warning``, exit 0: a dump was kept."""
    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "warning"
    found = tasks_by_key(record)[task]
    assert (found["status"], found["exit_code"]) == ("warning", 3)
    return record, found


def ping_paths(checker):
    """The paths the checker received, relative to its URL (``""`` is the URL itself)."""
    base = checker.url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    return [path.split(base, 1)[1] if base in path else path
            for path, _body in checker.requests]


def ping_body(checker, suffix):
    bodies = [body for path, body in checker.requests if path.endswith(suffix)]
    assert len(bodies) == 1, checker.requests
    return bodies[0]


def report_lines(path):
    return path.read_text().splitlines() if path.exists() else []


def closed_port_url():
    """An http URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/hooks/backup"


def srv_directory(tmp_path):
    """A directory to back up that is not the staging directory."""
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "site.txt").write_text("the web site\n")
    return srv


def scripts_of(system):
    top = MIGRATIONS / system
    return sorted(path for phase in top.iterdir() if phase.is_dir()
                  for path in phase.iterdir())


def git_modes(paths):
    """{path: git mode} of ``paths`` as committed in this checkout's index; {} outside git."""
    git = shutil.which("git")
    if not git or not (ROOT / ".git").exists():
        return {}
    result = subprocess.run([git, "-C", str(ROOT), "ls-files", "-s", "--",
                             *[str(p.relative_to(ROOT)) for p in paths]],
                            capture_output=True, text=True, timeout=60, check=False)
    modes = {}
    for line in result.stdout.splitlines():
        meta, name = line.split("\t", 1)
        modes[ROOT / name] = meta.split()[0]
    return modes


# The trees themselves

def test_every_migration_tree_holds_posix_sh_scripts_commented_with_the_setting_they_replace():
    readme = (MIGRATIONS / "README.md").read_text()
    shellcheck = require(shutil.which("shellcheck"), "shellcheck")
    every = []
    for system in SYSTEMS:
        assert f"({system}/)" in readme, f"migrations/README.md does not link {system}/"
        scripts = scripts_of(system)
        assert len(scripts) >= 3, system
        for script in scripts:
            text = script.read_text()
            assert text.startswith("#!/bin/sh\n"), script
            assert "Replaces" in text or "replaces" in text, f"{script}: which setting?"
            mode = stat.S_IMODE(script.stat().st_mode)
            assert mode & 0o111 == 0o111, f"{script}: chmod 0755"
        every += scripts
    result = execute([shellcheck, "-s", "sh", *map(str, every)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_migration_tree_is_committed_with_modes_hookrun_accepts():
    files = [path for system in SYSTEMS for path in (MIGRATIONS / system).rglob("*")
             if path.is_file()]
    modes = git_modes(files)
    if not modes:
        pytest.skip("not a git checkout: the committed modes cannot be read")
    for path in files:
        expected = "100755" if path.parent.name.endswith(".d") else "100644"
        assert modes.get(path) == expected, f"{path}: committed as {modes.get(path)}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_migration_tree_passes_check_and_lists_its_settings(tmp_path, system):
    tree = tmp_path / "hooks"
    shutil.copytree(MIGRATIONS / system, tree, symlinks=True)
    remove_group_other_write(tree)
    env = hermetic_env()

    check = execute([hookrun_path(), "check", "-d", str(tree)], env=env, check=False)
    assert check.returncode == 0, outcome(check)
    assert "warning" not in (check.stdout + check.stderr).lower(), outcome(check)

    listing = execute([hookrun_path(), "list", "--json", "-d", str(tree)], env=env)
    plan = {f"{item['dir']}/{item['name']}": item for item in json.loads(listing.stdout)}
    expected = {f"{path.parent.name}/{path.name}" for path in scripts_of(system)
                if path.parent.name in ("pre-backup.d", "post-backup.d", "on-error.d",
                                        "on-success.d", "finally.d")}
    assert set(plan) == expected
    assert all(item["runs"] for item in plan.values())


EXPECTED_SETTINGS = {
    "backrest": {"pre-backup.d/10-require-disk": {"on_failure": "skip-run"},
                 "pre-backup.d/20-export-config": {"on_failure": "stop", "critical": True},
                 "pre-backup.d/30-announce": {"on_failure": "ignore"},
                 "post-backup.d/10-summary": {"when": "ran"},
                 "on-error.d/10-any-error": {"events": None},
                 "on-error.d/20-prune-check-error": {"events": ["prune", "check"]}},
    "barman": {"pre-backup.d/10-log-start": {"on_failure": "ignore"},
               "pre-backup.d/20-wait-for-server": {"retries": 20, "retry_delay": 3,
                                                   "critical": True},
               "post-backup.d/10-copy-offsite": {"retries": 20, "when": "success"},
               "post-backup.d/90-log-end": {"on_failure": "ignore", "when": "ran"}},
    "borgitory": {"pre-backup.d/10-dump-database": {"critical": True, "timeout": 300},
                  "pre-backup.d/20-stop-web": {"critical": False, "on_failure": "warn"},
                  "post-backup.d/10-start-web": {"when": "always"},
                  "post-backup.d/20-cleanup-staging": {"when": "success",
                                                       "warning_codes": [3]},
                  "on-error.d/20-prune-failed": {"events": ["prune"]}},
    "borgmatic": {"post-backup.d/10-after-backup": {"when": "success"},
                  "post-backup.d/90-after-backup-always": {"when": "always"}},
    "resticm": {"pre-backup.d/10-dump-postgres": {"critical": True},
                "post-backup.d/10-report": {"when": "ran", "critical": False},
                "on-success.d/10-on-success": {"warning_codes": [3]}},
    "resticprofile": {"post-backup.d/10-run-after": {"when": "success", "on_failure": "stop"}},
}


@pytest.mark.parametrize("system", SYSTEMS)
def test_migration_tree_header_directives_say_what_its_readme_row_says(tmp_path, system):
    tree = tmp_path / "hooks"
    shutil.copytree(MIGRATIONS / system, tree, symlinks=True)
    remove_group_other_write(tree)
    listing = execute([hookrun_path(), "list", "--json", "-d", str(tree)], env=hermetic_env())
    plan = {f"{item['dir']}/{item['name']}": item for item in json.loads(listing.stdout)}
    for key, settings in EXPECTED_SETTINGS[system].items():
        for field, value in settings.items():
            assert plan[key][field] == value, (key, field, plan[key][field])


# Backrest: ON_ERROR_CANCEL, ON_ERROR_FATAL, ON_ERROR_IGNORE on one tree

def backrest_tree(tmp_path, restic_repo, **extra):
    staging, config = tmp_path / "staging", tmp_path / "app-config"
    config.mkdir()
    (config / "app.ini").write_text("[app]\nname = shop\n")
    values = {**restic_repo, "APP_CONFIG_DIR": config, "BACKUP_STAGING_DIR": staging,
              "BACKUP_REPORT": tmp_path / "report.log", **extra}
    tree = migration_copy(tmp_path, "backrest", values)
    return Hookrun(tree, tmp_path, hermetic_env()), staging


def test_backrest_cancel_hook_failing_skips_the_run_with_a_log_ping_and_no_error_hook(
        tmp_path, restic_repo, checker):
    missing_disk = dict(restic_repo, RESTIC_REPOSITORY=tmp_path / "unplugged" / "restic")
    hookrun, staging = backrest_tree(tmp_path, missing_disk)

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "skipped"
    tasks = tasks_by_key(record)
    # A failure that skips the run: recorded as what it was (exit 1), not as an exit 75.
    assert (tasks["pre/10-require-disk"]["status"], tasks["pre/10-require-disk"]["reason"]) \
        == ("failed", "skip-run after exit 1")
    assert "backup disk not mounted" in tasks["pre/10-require-disk"]["output"]
    for key in ("pre/20-export-config", "pre/30-announce", "command/restic"):
        assert tasks[key]["status"] == "skipped", key
    assert tasks["post/10-summary"]["status"] == "skipped"
    assert not any(task["phase"] in ("on-error", "on-success")
                   for task in record["tasks"]), task_statuses(record)
    assert report_lines(tmp_path / "report.log") == []
    assert ping_paths(checker) == ["/start", "/log"]
    assert snapshots(restic_repo) == []


def test_backrest_fatal_hook_failing_fails_the_run_with_a_fail_ping_and_runs_error_hooks(
        tmp_path, restic_repo, checker):
    hookrun, staging = backrest_tree(tmp_path, restic_repo)
    config_dir = tmp_path / "app-config"
    shutil.rmtree(config_dir)

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    # ERROR ends with the failed step's last non-empty output line: tar's last word.
    assert record["error"] == ("pre hook 20-export-config failed (exit 2): "
                               "tar: Error is not recoverable: exiting now")
    tasks = tasks_by_key(record)
    assert tasks["pre/10-require-disk"]["status"] == "ok"
    assert tasks["pre/20-export-config"]["status"] == "failed"
    assert str(config_dir) in tasks["pre/20-export-config"]["output"]
    assert tasks["pre/30-announce"]["status"] == "skipped"
    assert tasks["command/restic"]["status"] == "skipped"
    assert tasks["on-error/10-any-error"]["status"] == "ok"
    prune_only = tasks["on-error/20-prune-check-error"]
    assert prune_only["status"] == "skipped"
    assert "event backup not in events=prune,check" in prune_only["reason"]
    lines = report_lines(tmp_path / "report.log")
    assert len(lines) == 1 and " backup error: pre hook 20-export-config failed" in lines[0]
    assert ping_paths(checker) == ["/start", "/fail"]
    assert "20-export-config" in ping_body(checker, "/fail")
    assert snapshots(restic_repo) == []


def test_backrest_ignore_hook_failing_leaves_the_run_a_success_with_the_task_failed(
        tmp_path, restic_repo, checker):
    hookrun, staging = backrest_tree(tmp_path, restic_repo, CHAT_WEBHOOK_URL=closed_port_url())

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    assert record["error"] is None
    tasks = tasks_by_key(record)
    assert tasks["pre/30-announce"]["status"] == "failed"
    assert tasks["pre/30-announce"]["exit_code"] == 7, "curl: failed to connect"
    assert "127.0.0.1" in tasks["pre/30-announce"]["output"]
    assert tasks["command/restic"]["status"] == "ok"
    assert tasks["post/10-summary"]["status"] == "ok"
    assert "on-error/10-any-error" not in tasks
    lines = report_lines(tmp_path / "report.log")
    assert len(lines) == 1 and lines[0].endswith(" backup snapshot end: success "), lines
    assert ping_paths(checker) == ["/start", ""]
    assert len(snapshots(restic_repo)) == 1
    assert (staging / "app-config.tar").is_file()


def test_backrest_prune_error_runs_the_hook_filtered_by_events(tmp_path, restic_repo, checker):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    hookrun, _staging = backrest_tree(tmp_path, dict(restic_repo,
                                                     RESTIC_PASSWORD_FILE=wrong))

    result = hookrun("run", "-e", "prune", "--notify-url", checker.url, "--", "restic",
                     "forget", "--prune", "--keep-last", "3")

    assert result.returncode == 1, outcome(result)
    record = hookrun.last()
    assert record["event"] == "prune" and record["status"] == "failure"
    assert record["error"].endswith(WRONG_PASSWORD), record["error"]
    tasks = tasks_by_key(record)
    assert tasks["pre/10-require-disk"]["status"] == "ok"
    assert tasks["on-error/10-any-error"]["status"] == "ok"
    assert tasks["on-error/20-prune-check-error"]["status"] == "ok"
    lines = report_lines(tmp_path / "report.log")
    assert [line.split(" ", 2)[1] for line in lines] == ["prune", "prune"]
    assert lines[1].endswith(WRONG_PASSWORD)
    assert ping_paths(checker) == ["/start", "/fail"]


def without_repository(restic_repo):
    """The restic variables of ``restic_repo`` but RESTIC_REPOSITORY."""
    return {k: v for k, v in restic_repo.items() if k != "RESTIC_REPOSITORY"}


@pytest.mark.parametrize("way", ["-r REPO", "--repo=REPO", "--repository-file FILE",
                                 "RESTIC_REPOSITORY_FILE"])
def test_backrest_disk_check_finds_the_repository_where_restic_does(tmp_path, restic_repo,
                                                                      checker, way):
    """RESTIC_REPOSITORY unset, the repository given as restic reads it: under set -u the
    check died (exit 2), which on-failure=skip-run made a skipped run every night."""
    repo = restic_repo["RESTIC_REPOSITORY"]
    repository_file = tmp_path / "repository"
    repository_file.write_text(repo + "\n")
    extra, options = {}, []
    if way == "-r REPO":
        options = ["-r", repo]
    elif way == "--repo=REPO":
        options = [f"--repo={repo}"]
    elif way == "--repository-file FILE":
        options = ["--repository-file", str(repository_file)]
    else:
        extra = {"RESTIC_REPOSITORY_FILE": repository_file}
    hookrun, staging = backrest_tree(tmp_path, without_repository(restic_repo), **extra)

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", *options, "backup",
                     str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    disk = tasks_by_key(record)["pre/10-require-disk"]
    assert disk["status"] == "ok" and f"backup disk present: {repo}" in disk["output"]
    assert tasks_by_key(record)["command/restic"]["status"] == "ok"
    assert len(snapshots(restic_repo)) == 1
    assert ping_paths(checker) == ["/start", ""]


@pytest.mark.parametrize("scheme", ["sftp", "s3", "rest", "b2", "azure", "gs", "swift",
                                    "rclone"])
def test_backrest_disk_check_passes_a_remote_repository(tmp_path, restic_repo, scheme):
    remote = f"{scheme}:https://backup:s3cret@nas.invalid/restic"
    hookrun, _staging = backrest_tree(tmp_path, dict(restic_repo, RESTIC_REPOSITORY=remote))

    result = hookrun.run("true")

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    disk = tasks_by_key(record)["pre/10-require-disk"]
    assert disk["status"] == "ok" and f"remote repository ({scheme})" in disk["output"]
    assert "s3cret" not in disk["output"]
    assert tasks_by_key(record)["command/true"]["status"] == "ok"


@pytest.mark.parametrize("event", ["backup", "prune"])
def test_backrest_disk_check_that_finds_no_repository_fails_the_run_instead_of_skipping_it(
        tmp_path, restic_repo, checker, event):
    """No repository anywhere: the check cannot answer, which is a failure (exit 69, a /fail
    ping), not a night skipped without a word: a broken check is not a skip."""
    hookrun, _staging = backrest_tree(tmp_path, without_repository(restic_repo))

    result = hookrun("run", "-e", event, "--notify-url", checker.url, "--", "true")

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    disk = tasks_by_key(record)["pre/10-require-disk"]
    assert (disk["status"], disk["exit_code"], disk["reason"]) == ("failed", 63, "ABORT_STOP")
    assert "no repository found" in disk["output"]
    assert tasks_by_key(record)["command/true"]["status"] == "skipped"
    assert "no repository found" in record["error"]
    assert ping_paths(checker) == ["/start", "/fail"]


# Barman: standard scripts (status not checked) and retry scripts (0, 62, 63, retried)

def barman_run(tmp_path, postgres, checker, **values):
    """Run the Barman tree with pg_basebackup (Barman's backup_method = postgres) as the
    command; returns (hookrun, result)."""
    staging = tmp_path / "staging"
    staging.mkdir(mode=0o700)
    values = {"BACKUP_STAGING_DIR": staging, "BACKUP_REPORT": tmp_path / "report.log",
              "OFFSITE_DIR": tmp_path / "offsite", **values}
    (tmp_path / "offsite").mkdir()
    tree = migration_copy(tmp_path, "barman", values)
    hookrun = Hookrun(tree, tmp_path, hermetic_env())
    require(shutil.which("pg_basebackup"), "pg_basebackup")
    command = ["pg_basebackup", "-h", postgres["PGHOST"],
               "-p", postgres["PGPORT"], "-U", postgres["PGUSER"], "-D", str(staging / "base"),
               "-Ft", "-z", "-X", "fetch", "-c", "fast"]
    result = hookrun("run", "--notify-url", checker.url, "--", *command)
    return hookrun, result


def test_barman_retry_script_waits_for_the_server_and_the_base_backup_is_copied_offsite(
        tmp_path, postgres, checker):
    hookrun, result = barman_run(tmp_path, postgres, checker, **pg_connection(postgres))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    tasks = tasks_by_key(record)
    assert [tasks[k]["status"] for k in ("pre/10-log-start", "pre/20-wait-for-server",
                                         "command/pg_basebackup", "post/10-copy-offsite",
                                         "post/90-log-end")] == ["ok"] * 5
    assert "accepts connections" in tasks["pre/20-wait-for-server"]["output"]
    copies = list((tmp_path / "offsite").iterdir())
    assert [path.name for path in copies] == [f"base.{record['id']}"]
    assert (copies[0] / "base.tar.gz").stat().st_size > 0
    lines = report_lines(tmp_path / "report.log")
    assert len(lines) == 2 and lines[0].endswith(" pre: backup of 127.0.0.1 starts")
    assert lines[1].endswith(" post: success ")
    assert ping_paths(checker) == ["/start", ""]


def test_barman_retry_script_exiting_62_lets_the_chain_go_on_and_a_failed_standard_script_is_ignored(  # noqa: E501
        tmp_path, postgres, checker):
    # No PGHOST: the retry script has no server to wait for and gives up (ABORT_CONTINUE);
    # the report's directory is missing, so both standard scripts fail, unchecked.
    hookrun, result = barman_run(tmp_path, postgres, checker,
                                 BACKUP_REPORT=tmp_path / "no-such-dir" / "report.log")

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    assert record["error"] is None
    tasks = tasks_by_key(record)
    assert tasks["pre/10-log-start"]["status"] == "failed"
    assert tasks["pre/20-wait-for-server"]["status"] == "aborted"
    assert tasks["pre/20-wait-for-server"]["exit_code"] == 62
    assert tasks["pre/20-wait-for-server"]["attempts"] == 1
    assert "no server to wait for" in tasks["pre/20-wait-for-server"]["output"]
    assert tasks["command/pg_basebackup"]["status"] == "ok"
    assert tasks["post/10-copy-offsite"]["status"] == "ok"
    assert tasks["post/90-log-end"]["status"] == "failed"
    assert (tmp_path / "staging" / "base" / "base.tar.gz").stat().st_size > 0
    assert ping_paths(checker) == ["/start", ""]


def test_barman_retry_script_exiting_63_stops_the_backup_as_a_failure(
        tmp_path, postgres, checker):
    flag = tmp_path / "maintenance"
    flag.write_text("disk replacement\n")
    hookrun, result = barman_run(tmp_path, postgres, checker, MAINTENANCE_FLAG=flag,
                                 **pg_connection(postgres))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    tasks = tasks_by_key(record)
    assert tasks["pre/10-log-start"]["status"] == "ok"
    retry = tasks["pre/20-wait-for-server"]
    assert (retry["status"], retry["exit_code"], retry["attempts"]) == ("failed", 63, 1)
    assert retry["reason"] == "ABORT_STOP"
    assert tasks["command/pg_basebackup"]["status"] == "skipped"
    assert tasks["post/10-copy-offsite"]["status"] == "skipped"
    assert tasks["post/90-log-end"]["status"] == "skipped"
    assert not (tmp_path / "staging" / "base").exists()
    assert "no backup tonight" in record["error"]
    assert ping_paths(checker) == ["/start", "/fail"]


def test_barman_retry_script_is_retried_while_the_server_is_down_then_stops_the_run(
        tmp_path, postgres, checker):
    down = dict(pg_connection(postgres), PGPORT=str(free_port()))
    staging = tmp_path / "staging"
    values = {"BACKUP_STAGING_DIR": staging, "BACKUP_REPORT": tmp_path / "report.log", **down}
    tree = migration_copy(tmp_path, "barman", values)
    with open(tree / "hookrun.conf", "a") as conf:
        conf.write("\n[hook pre-backup.d/20-wait-for-server]\nretries = 2\nretry_delay = 1s\n")
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun("run", "--notify-url", checker.url, "--", "true")

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    retry = tasks_by_key(hookrun.last())["pre/20-wait-for-server"]
    assert (retry["status"], retry["exit_code"], retry["attempts"]) == ("failed", 1, 3)
    assert "not ready yet (attempt 3)" in retry["output"]
    assert ping_paths(checker) == ["/start", "/fail"]


def test_barman_retry_script_without_pg_isready_stops_the_backup_when_a_server_is_set(
        tmp_path, checker):
    """PGHOST set, pg_isready not installed: the wait cannot be done, which stops the backup
    as a failure (63, not retried) instead of stepping aside (62) into a green night."""
    values = {"PGHOST": "127.0.0.1", "BACKUP_STAGING_DIR": tmp_path / "staging",
              "BACKUP_REPORT": tmp_path / "report.log"}
    tree = migration_copy(tmp_path, "barman", values)
    set_hookrun_key(tree / "hookrun.conf", "path", bin_without(tmp_path, "pg_isready"))
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun("run", "--notify-url", checker.url, "--", "true")

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    retry = tasks_by_key(record)["pre/20-wait-for-server"]
    assert (retry["status"], retry["exit_code"], retry["attempts"]) == ("failed", 63, 1)
    assert "pg_isready is not installed" in retry["output"]
    assert tasks_by_key(record)["command/true"]["status"] == "skipped"
    assert ping_paths(checker) == ["/start", "/fail"]


# Borgitory: a critical pre-job hook, a run_on_job_failure post-job hook, a prune task

def borgitory_tree(tmp_path, values):
    staging = tmp_path / "staging"
    values = {"BACKUP_STAGING_DIR": staging, "BACKUP_REPORT": tmp_path / "report.log",
              **values}
    return Hookrun(migration_copy(tmp_path, "borgitory", values), tmp_path,
                   hermetic_env()), staging


def test_borgitory_critical_hook_failing_skips_the_job_but_the_run_on_failure_hook_runs(
        tmp_path, postgres, restic_repo, checker):
    hookrun, staging = borgitory_tree(tmp_path, {**pg_connection(postgres),
                                                 "PGDATABASE": "no_such_db", **restic_repo})

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    assert task_statuses(record) == [
        ("pre", "10-dump-database", "failed"),
        ("pre", "20-stop-web", "skipped"),
        ("command", "restic", "skipped"),
        ("post", "10-start-web", "ok"),
        ("post", "20-cleanup-staging", "skipped"),
        ("on-error", "10-notify", "ok"),
        ("on-error", "20-prune-failed", "skipped"),
    ]
    tasks = tasks_by_key(record)
    assert 'database "no_such_db" does not exist' in tasks["pre/10-dump-database"]["output"]
    assert record["error"].startswith("pre hook 10-dump-database failed (exit 1)")
    assert record["error"].endswith('database "no_such_db" does not exist'), record["error"]
    assert "event backup not in events=prune" in tasks["on-error/20-prune-failed"]["reason"]
    whole = hookrun("show", record["id"], "--output", "pre/10-dump-database")
    assert whole.returncode == 0, outcome(whole)
    assert 'database "no_such_db" does not exist' in whole.stdout
    lines = report_lines(tmp_path / "report.log")
    assert len(lines) == 2, lines
    assert lines[0].endswith(" restart after: not-run")
    assert " backup failed: pre hook 10-dump-database failed" in lines[1]
    assert ping_paths(checker) == ["/start", "/fail"]
    assert snapshots(restic_repo) == []


def borg_repo(tmp_path):
    """An unencrypted borg repository of the test's own; returns the variables borg needs
    (its base directory in tmp_path too, so no cache or key lands in the runner's HOME)."""
    require(shutil.which("borg"), "borg (Debian package borgbackup)")
    values = {"BORG_REPO": str(tmp_path / "borg-repo"),
              "BORG_BASE_DIR": str(tmp_path / "borg-base")}
    execute(["borg", "init", "-e", "none"], env={**hermetic_env(), **values})
    return values


def borg(values, *args):
    return execute(["borg", *args], env={**hermetic_env(), **values}).stdout


def borg_archives(values):
    return borg(values, "list", "--format", "{archive}{NL}").splitlines()


def borgitory_app(postgres):
    exists = psql(postgres, "postgres",
                  "SELECT 1 FROM pg_database WHERE datname = 'borgitory_app'")
    if not exists:
        psql(postgres, "postgres", "CREATE DATABASE borgitory_app")
    return {**pg_connection(postgres), "PGDATABASE": "borgitory_app"}


def test_borgitory_non_critical_hook_failing_is_a_warning_and_the_backup_is_made(
        tmp_path, postgres, checker):
    repository = borg_repo(tmp_path)
    hookrun, staging = borgitory_tree(tmp_path, {
        **borgitory_app(postgres), **repository, "WEB_SERVICE": "hookrun-test-no-such-unit"})

    result = hookrun("run", "--notify-url", checker.url, "--", "borg", "create", "::{now}",
                     str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "warning"
    assert task_statuses(record) == [
        ("pre", "10-dump-database", "ok"),
        ("pre", "20-stop-web", "failed"),
        ("command", "borg", "ok"),
        ("post", "10-start-web", "failed"),
        ("post", "20-cleanup-staging", "ok"),
    ]
    assert len(borg_archives(repository)) == 1
    assert not (staging / "db.dump").exists()
    assert report_lines(tmp_path / "report.log")[0].endswith(" restart after: success")
    assert ping_paths(checker) == ["/start", ""]


BORGITORY_WAYS = {
    "::{now} and BORG_REPO": lambda repo: (["::{now}"], True),
    "REPO::night-{now}": lambda repo: ([f"{repo}::night-{{now}}"], False),
    "--json ::{now} (HOOKRUN_SNAPSHOT_ID)": lambda repo: (["--json", "::{now}"], True),
}


@pytest.mark.parametrize("way", BORGITORY_WAYS)
def test_borgitory_cleanup_removes_the_dump_once_the_archive_holds_it(tmp_path, postgres,
                                                                      checker, way):
    repository = borg_repo(tmp_path)
    arguments, in_env = BORGITORY_WAYS[way](repository["BORG_REPO"])
    values = repository if in_env else {k: v for k, v in repository.items() if k != "BORG_REPO"}
    hookrun, staging = borgitory_tree(tmp_path, {**borgitory_app(postgres), **values})

    result = hookrun("run", "--notify-url", checker.url, "--", "borg", "create", *arguments,
                     str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success", task_statuses(record)
    if "--json" in arguments:
        assert record["stats"]["snapshot_id"]
    cleanup = tasks_by_key(record)["post/20-cleanup-staging"]
    assert cleanup["status"] == "ok"
    [archive] = borg_archives(repository)
    assert f"removed {staging / 'db.dump'}: archive {archive} holds it" in cleanup["output"]
    assert not (staging / "db.dump").exists()
    held = borg(repository, "list", "--format", "{path}{NL}", f"::{archive}").splitlines()
    assert str(staging / "db.dump").lstrip("/") in held
    assert ping_paths(checker) == ["/start", ""]


@pytest.mark.parametrize("json_output", [False, True], ids=["::{now}", "--json ::{now}"])
def test_borgitory_cleanup_keeps_a_dump_the_archive_does_not_hold_and_the_run_is_a_warning(
        tmp_path, postgres, checker, json_output):
    """``borg create ::{now} /srv``, the staging directory left out: the dump was deleted and
    the run ended ``success``. An older archive that holds a dump of that path vouches for
    nothing: the archive of this run is the one that counts."""
    repository = borg_repo(tmp_path)
    hookrun, staging = borgitory_tree(tmp_path, {**borgitory_app(postgres), **repository})
    staging.mkdir(mode=0o700)
    dump = staging / "db.dump"
    dump.write_text("last week's dump\n")
    borg(repository, "create", "--timestamp", "2020-01-01T00:00:00", "::last-week",
         str(staging))
    options = ["--json"] if json_output else []

    result = hookrun("run", "--notify-url", checker.url, "--", "borg", "create", *options,
                     "::{now}", str(srv_directory(tmp_path)))

    record, cleanup = kept_with_a_warning(hookrun, result, "post/20-cleanup-staging")
    assert tasks_by_key(record)["command/borg"]["status"] == "ok"
    assert f"kept {dump}: archive " in cleanup["output"]
    assert "does not hold it" in cleanup["output"]
    assert str(dump) in record["error"], record["error"]
    assert dump.is_file() and dump.read_text() != "last week's dump\n", "tonight's dump kept"
    assert len(borg_archives(repository)) == 2
    assert ping_paths(checker) == ["/start", ""]


@pytest.mark.parametrize("options", [["--dry-run"], ["--timestamp", "2000-01-01T00:00:00"]],
                         ids=["--dry-run", "--timestamp before the first archive"])
def test_borgitory_cleanup_keeps_a_dump_only_an_older_archive_holds_and_the_run_is_a_warning(
        tmp_path, postgres, options):
    """The dump's name is the same every night. A second run whose command made no newer
    archive (``borg create --dry-run``; --timestamp in the past, so that the newest archive
    is the first) found the first night's db.dump in the newest archive: tonight's dump was
    deleted and the run ended ``success``."""
    repository = borg_repo(tmp_path)
    hookrun, staging = borgitory_tree(tmp_path, {**borgitory_app(postgres), **repository})
    dump = staging / "db.dump"
    # Every night's archive is named by the time (microseconds: two runs within a second).
    name = "::{now:%Y-%m-%dT%H:%M:%S.%f}"
    first = hookrun("run", "--", "borg", "create", name, str(staging))
    assert first.returncode == 0, outcome(first)
    assert hookrun.last()["status"] == "success"
    assert not dump.exists(), "the first night's dump is backed up and removed"
    [first_archive] = borg_archives(repository)
    # borg keeps an archive's time in whole seconds: within the second the first archive was
    # made, tonight's dump cannot be told from an older one. A night later it can.
    time.sleep(1.05 - time.time() % 1.0)

    result = hookrun("run", "--", "borg", "create", *options, name, str(staging))

    record, cleanup = kept_with_a_warning(hookrun, result, "post/20-cleanup-staging")
    assert tasks_by_key(record)["command/borg"]["status"] == "ok"
    said = f"kept {dump}: archive {first_archive} was made at "
    assert said in cleanup["output"], cleanup["output"]
    assert str(dump) in record["error"], record["error"]
    assert dump.is_file(), "tonight's dump is kept"
    assert len(borg_archives(repository)) == (1 if "--dry-run" in options else 2)


@pytest.mark.parametrize("case", ["no repository found", "borg is not installed"])
def test_borgitory_cleanup_keeps_a_dump_it_cannot_check_and_the_run_is_a_warning(
        tmp_path, postgres, checker, case):
    repository = borg_repo(tmp_path)
    borg_path = shutil.which("borg")
    if case == "no repository found":
        # The repository only inside a shell command: nothing the hook can read.
        values = {k: v for k, v in repository.items() if k != "BORG_REPO"}
        hookrun, staging = borgitory_tree(tmp_path, {**borgitory_app(postgres), **values})
        command = ["sh", "-c", 'borg create "$1::{now}" "$2"', "sh", repository["BORG_REPO"],
                   str(staging)]
    else:
        hookrun, staging = borgitory_tree(tmp_path, {**borgitory_app(postgres), **repository})
        set_hookrun_key(hookrun.tree / "hookrun.conf", "path", bin_without(tmp_path, "borg"))
        command = [borg_path, "create", "::{now}", str(staging)]

    result = hookrun("run", "--notify-url", checker.url, "--", *command)

    record, cleanup = kept_with_a_warning(hookrun, result, "post/20-cleanup-staging")
    assert f"kept {staging / 'db.dump'}: {case}" in cleanup["output"]
    assert case in record["error"], record["error"]
    assert (staging / "db.dump").is_file(), "a dump that cannot be checked is kept"
    assert len(borg_archives(repository)) == 1


def test_borgitory_prune_task_is_an_event_whose_failure_runs_the_prune_only_error_hook(
        tmp_path, restic_repo, checker):
    hookrun, _staging = borgitory_tree(tmp_path, restic_repo)
    restic(restic_repo, "backup", str(tmp_path / "hooks"))

    pruned = hookrun("run", "-e", "prune", "--notify-url", checker.url, "--", "restic",
                     "forget", "--prune", "--keep-last", "1")
    assert pruned.returncode == 0, outcome(pruned)
    assert task_statuses(hookrun.last()) == [("pre", "10-check-repository", "ok"),
                                             ("command", "restic", "ok")]

    set_env_section(hookrun.tree / "hookrun.conf", {
        **restic_repo, "RESTIC_REPOSITORY": tmp_path / "no-such-repo",
        "BACKUP_REPORT": tmp_path / "report.log"})
    failed = hookrun("run", "-e", "prune", "--notify-url", checker.url, "--", "restic",
                     "forget", "--prune", "--keep-last", "1")

    assert failed.returncode == 1, outcome(failed)
    record = hookrun.last()
    assert (record["event"], record["status"]) == ("prune", "failure")
    tasks = tasks_by_key(record)
    assert tasks["on-error/10-notify"]["status"] == "ok"
    assert tasks["on-error/20-prune-failed"]["status"] == "ok"
    assert "no-such-repo" in tasks["command/restic"]["output"]
    lines = report_lines(tmp_path / "report.log")
    assert " prune failed, the repository keeps growing: command restic failed" in lines[-1]
    history = json.loads(hookrun("history", "--json", "-e", "prune").stdout)
    assert [run["status"] for run in history] == ["failure", "success"]
    assert ping_paths(checker) == ["/start", "", "/start", "/fail"]


# resticm: pre_backup, post_backup, on_error, on_success; BACKUP_STATUS, BACKUP_ERROR

def resticm_tree(tmp_path, postgres, restic_values, database):
    staging = tmp_path / "staging"
    values = {**pg_connection(postgres), "PGDATABASE": database, **restic_values,
              "BACKUP_STAGING_DIR": staging, "BACKUP_REPORT": tmp_path / "report.log"}
    return Hookrun(migration_copy(tmp_path, "resticm", values), tmp_path,
                   hermetic_env()), staging


def resticm_database(postgres):
    exists = psql(postgres, "postgres", "SELECT 1 FROM pg_database WHERE datname = 'resticm'")
    if not exists:
        psql(postgres, "postgres", "CREATE DATABASE resticm")
        psql(postgres, "resticm", "CREATE TABLE notes (id serial PRIMARY KEY, body text); "
                                  "INSERT INTO notes (body) VALUES ('kept by resticm')")
    return "resticm"


def test_resticm_four_hooks_dump_postgres_back_it_up_and_report_success(
        tmp_path, postgres, restic_repo, checker):
    hookrun, staging = resticm_tree(tmp_path, postgres, restic_repo, resticm_database(postgres))

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    assert task_statuses(record) == [
        ("pre", "10-dump-postgres", "ok"),
        ("command", "restic", "ok"),
        ("post", "10-report", "ok"),
        ("on-success", "10-on-success", "ok"),
    ]
    tasks = tasks_by_key(record)
    assert "dumped resticm to" in tasks["pre/10-dump-postgres"]["output"]
    assert "snapshot" in tasks["command/restic"]["output"]
    lines = report_lines(tmp_path / "report.log")
    assert [line.split(" ", 2)[2] for line in lines] == [
        "post_backup: success", f"on_success: {record['id']}"]
    assert list(staging.iterdir()) == [], "on_success removes the dump"
    listing = restic(restic_repo, "ls", "latest")
    assert "postgres-resticm.dump" in listing
    assert ping_paths(checker) == ["/start", ""]


def test_resticm_failed_backup_gives_post_backup_and_on_error_restics_own_error_line(
        tmp_path, postgres, restic_repo, checker):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    hookrun, staging = resticm_tree(tmp_path, postgres,
                                    dict(restic_repo, RESTIC_PASSWORD_FILE=wrong),
                                    resticm_database(postgres))

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == 1, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    assert task_statuses(record) == [
        ("pre", "10-dump-postgres", "ok"),
        ("command", "restic", "failed"),
        ("post", "10-report", "ok"),
        ("on-error", "10-on-error", "ok"),
    ]
    expected = f"command restic failed (exit 1): {WRONG_PASSWORD}"
    assert record["error"] == expected
    assert WRONG_PASSWORD in tasks_by_key(record)["command/restic"]["output"]
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines == [f"post_backup: failure: {expected}", f"on_error: {expected}"]
    assert "backup failed, keeping the dumps" in tasks_by_key(record)["post/10-report"]["output"]
    assert (staging / "postgres-resticm.dump").is_file(), "kept for investigation"
    assert ping_paths(checker) == ["/start", "/fail"]
    assert WRONG_PASSWORD in ping_body(checker, "/fail")


def test_resticm_failed_pre_backup_hook_runs_on_error_but_not_post_backup(
        tmp_path, postgres, restic_repo, checker):
    hookrun, staging = resticm_tree(tmp_path, postgres, restic_repo, "no_such_db")

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert task_statuses(record) == [
        ("pre", "10-dump-postgres", "failed"),
        ("command", "restic", "skipped"),
        ("post", "10-report", "skipped"),
        ("on-error", "10-on-error", "ok"),
    ]
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert len(lines) == 1 and lines[0].startswith("on_error: pre hook 10-dump-postgres failed")
    assert lines[0].endswith('database "no_such_db" does not exist')
    assert list(staging.iterdir()) == [], "no partial dump left"
    assert snapshots(restic_repo) == []


def test_resticm_failed_post_backup_hook_is_only_logged_and_on_success_still_runs(
        tmp_path, postgres, restic_repo, checker):
    hookrun, staging = resticm_tree(tmp_path, postgres, restic_repo, resticm_database(postgres))
    # post_backup cannot write its report (a directory where the file should be): it fails.
    (tmp_path / "report.log").mkdir()

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "warning"
    assert task_statuses(record) == [
        ("pre", "10-dump-postgres", "ok"),
        ("command", "restic", "ok"),
        ("post", "10-report", "failed"),
        ("on-success", "10-on-success", "failed"),
    ]
    assert list(staging.iterdir()) == [], "on_success ran: it removed the dump first"
    assert len(snapshots(restic_repo)) == 1
    assert ping_paths(checker) == ["/start", ""]


RESTICM_WAYS = {
    "RESTIC_REPOSITORY": lambda repo: ([], True),
    "-r REPO": lambda repo: (["-r", repo], False),
    "--json -r REPO (HOOKRUN_SNAPSHOT_ID)": lambda repo: (["--json", "-r", repo], False),
}


@pytest.mark.parametrize("way", RESTICM_WAYS)
def test_resticm_on_success_keeps_a_dump_the_snapshot_does_not_hold_and_the_run_is_a_warning(
        tmp_path, postgres, restic_repo, checker, way):
    """``restic backup /srv``, the staging directory left out: on_success deleted the dump
    and the run ended ``success``. Now the dump is kept and named, the run is a warning."""
    options, in_env = RESTICM_WAYS[way](restic_repo["RESTIC_REPOSITORY"])
    values = restic_repo if in_env else without_repository(restic_repo)
    hookrun, staging = resticm_tree(tmp_path, postgres, values, resticm_database(postgres))
    dump = staging / "postgres-resticm.dump"

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", *options, "backup",
                     str(srv_directory(tmp_path)))

    record, on_success = kept_with_a_warning(hookrun, result, "on-success/10-on-success")
    assert tasks_by_key(record)["command/restic"]["status"] == "ok"
    assert f"kept {dump}: the snapshot does not hold it" in on_success["output"]
    assert str(dump) in record["error"], record["error"]
    assert dump.is_file(), "a dump the snapshot does not hold is kept"
    assert len(snapshots(restic_repo)) == 1
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines == ["post_backup: success", f"on_success: {record['id']}"]


@pytest.mark.parametrize("options", [["--dry-run"], ["--time", "2000-01-01 00:00:00"]],
                         ids=["--dry-run", "--time before the first snapshot"])
def test_resticm_on_success_keeps_a_dump_only_an_older_snapshot_holds_and_the_run_is_a_warning(
        tmp_path, postgres, restic_repo, options):
    """The dump's name is the same every night. A second run whose command made no newer
    snapshot (``restic backup --dry-run``; --time in the past, so that "latest" is the first
    snapshot) found the first night's file in the latest snapshot: tonight's dump was deleted
    and the run ended ``success``."""
    hookrun, staging = resticm_tree(tmp_path, postgres, restic_repo, resticm_database(postgres))
    dump = staging / "postgres-resticm.dump"
    first = hookrun("run", "--", "restic", "backup", str(staging))
    assert first.returncode == 0, outcome(first)
    assert hookrun.last()["status"] == "success"
    assert not dump.exists(), "the first night's dump is backed up and removed"

    result = hookrun("run", "--", "restic", "backup", *options, str(staging))

    record, on_success = kept_with_a_warning(hookrun, result, "on-success/10-on-success")
    assert f"kept {dump}: the snapshot was made at " in on_success["output"], on_success
    assert str(dump) in record["error"], record["error"]
    assert dump.is_file(), "tonight's dump is kept"
    assert len(snapshots(restic_repo)) == (1 if "--dry-run" in options else 2)


@pytest.mark.parametrize("way", ["-r REPO", "-rREPO after the subcommand",
                                 "-r REPO --host NAME", "-r REPO, RESTIC_HOST in [env]",
                                 "--json --repository-file FILE -p PASSWORD_FILE"])
def test_resticm_on_success_finds_the_repository_where_restic_does_and_removes_the_dump(
        tmp_path, postgres, restic_repo, checker, way):
    repo = restic_repo["RESTIC_REPOSITORY"]
    values = without_repository(restic_repo)
    if way == "-r REPO":
        before, after = ["-r", repo], []
    elif way == "-rREPO after the subcommand":
        before, after = [], [f"-r{repo}"]
    elif way == "-r REPO --host NAME":
        # The latest snapshot of that host, not of this one.
        before, after = ["-r", repo], ["--host", "db-primary"]
    elif way == "-r REPO, RESTIC_HOST in [env]":
        # restic 0.17 and later back up under it, older ones (Debian 12's 0.14) under this
        # host's name: either way a good night is found, not failed every night.
        before, after = ["-r", repo], []
        values = dict(values, RESTIC_HOST="db-primary")
    else:
        repository_file = tmp_path / "repository"
        repository_file.write_text(repo + "\n")
        before = ["--json", "--repository-file", str(repository_file),
                  "-p", restic_repo["RESTIC_PASSWORD_FILE"]]
        after = []
        del values["RESTIC_PASSWORD_FILE"]
    hookrun, staging = resticm_tree(tmp_path, postgres, values, resticm_database(postgres))
    dump = staging / "postgres-resticm.dump"

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", *before, "backup",
                     *after, str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success", task_statuses(record)
    on_success = tasks_by_key(record)["on-success/10-on-success"]
    assert on_success["status"] == "ok"
    assert f"removed {dump}: the snapshot holds it" in on_success["output"]
    assert not dump.exists()
    assert str(dump) in restic(restic_repo, "ls", "latest").splitlines()
    assert ping_paths(checker) == ["/start", ""]


@pytest.mark.parametrize("case", ["no repository found", "restic is not installed"])
def test_resticm_on_success_keeps_the_dumps_it_cannot_check_and_the_run_is_a_warning(
        tmp_path, postgres, restic_repo, checker, case):
    restic_path = require(shutil.which("restic"), "restic")
    if case == "no repository found":
        # The repository only inside a shell command: nothing the hook can read.
        hookrun, staging = resticm_tree(tmp_path, postgres, without_repository(restic_repo),
                                        resticm_database(postgres))
        command = ["sh", "-c", 'restic -r "$1" backup "$2"', "sh",
                   restic_repo["RESTIC_REPOSITORY"], str(staging)]
    else:
        hookrun, staging = resticm_tree(tmp_path, postgres, restic_repo,
                                        resticm_database(postgres))
        set_hookrun_key(hookrun.tree / "hookrun.conf", "path",
                        bin_without(tmp_path, "restic"))
        command = [restic_path, "backup", str(staging)]
    dump = staging / "postgres-resticm.dump"

    result = hookrun("run", "--notify-url", checker.url, "--", *command)

    record, on_success = kept_with_a_warning(hookrun, result, "on-success/10-on-success")
    assert f"kept {dump}: {case}" in on_success["output"]
    assert str(dump) in record["error"] and case in record["error"], record["error"]
    assert dump.is_file(), "a dump that cannot be checked is kept"
    assert len(snapshots(restic_repo)) == 1


def test_resticm_no_hooks_runs_restic_alone_and_still_notifies(tmp_path, postgres,
                                                               restic_repo, checker):
    hookrun, staging = resticm_tree(tmp_path, postgres, restic_repo, "no_such_db")
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("emergency\n")
    hookrun.env = {**hookrun.env, **{k: str(v) for k, v in restic_repo.items()}}

    result = hookrun("run", "--no-hooks", "--notify-url", checker.url, "--", "restic",
                     "backup", str(data))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["no_hooks"] is True and record["status"] == "success"
    assert task_statuses(record) == [("command", "restic", "ok")]
    assert not (tmp_path / "report.log").exists()
    assert not staging.exists()
    assert len(snapshots(restic_repo)) == 1
    assert ping_paths(checker) == ["/start", ""]


# borgmatic: soft failure (exit 75), before_backup / after_backup / on_error

def borgmatic_tree(tmp_path, drive):
    staging = tmp_path / "staging"
    values = {"BACKUP_DRIVE": drive, "BACKUP_STAGING_DIR": staging,
              "BACKUP_REPORT": tmp_path / "report.log"}
    return Hookrun(migration_copy(tmp_path, "borgmatic", values), tmp_path,
                   hermetic_env()), staging


def test_borgmatic_soft_failure_skips_the_backup_without_error_hooks(tmp_path, checker):
    require(shutil.which("findmnt"), "findmnt")
    unplugged = tmp_path / "removable"
    unplugged.mkdir()
    marker = tmp_path / "command-ran"
    hookrun, _staging = borgmatic_tree(tmp_path, unplugged)

    result = hookrun("run", "--notify-url", checker.url, "--", "touch", str(marker))

    assert result.returncode == 0, outcome(result)
    assert not marker.exists()
    record = hookrun.last()
    assert record["status"] == "skipped" and record["error"] is None
    assert task_statuses(record) == [
        ("pre", "10-require-drive", "aborted"),
        ("pre", "20-before-backup", "skipped"),
        ("command", "touch", "skipped"),
        ("post", "10-after-backup", "skipped"),
        ("post", "90-after-backup-always", "skipped"),
        ("finally", "90-after-everything", "ok"),
    ]
    assert "is not mounted" in tasks_by_key(record)["pre/10-require-drive"]["output"]
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines == ["after_everything: skipped"]
    assert ping_paths(checker) == ["/start", "/log"]


def test_borgmatic_soft_failure_check_without_findmnt_fails_the_run_instead_of_skipping_it(
        tmp_path, checker):
    """``findmnt`` missing made ``! findmnt`` true: every night a skip, exit 0."""
    marker = tmp_path / "command-ran"
    hookrun, _staging = borgmatic_tree(tmp_path, "/")
    set_hookrun_key(hookrun.tree / "hookrun.conf", "path", bin_without(tmp_path, "findmnt"))

    result = hookrun("run", "--notify-url", checker.url, "--", "touch", str(marker))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    assert not marker.exists()
    record = hookrun.last()
    assert record["status"] == "failure"
    drive = tasks_by_key(record)["pre/10-require-drive"]
    assert (drive["status"], drive["exit_code"]) == ("failed", 1)
    assert "findmnt is not installed" in drive["output"]
    assert ping_paths(checker) == ["/start", "/fail"]


def test_borgmatic_before_and_after_backup_hooks_around_a_successful_backup(tmp_path, checker):
    require(shutil.which("findmnt"), "findmnt")
    archive = tmp_path / "archive.tar"
    hookrun, staging = borgmatic_tree(tmp_path, "/")

    result = hookrun("run", "--notify-url", checker.url, "--", "tar", "-cf", str(archive),
                     "-C", str(staging), ".")

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert task_statuses(record) == [
        ("pre", "10-require-drive", "ok"),
        ("pre", "20-before-backup", "ok"),
        ("command", "tar", "ok"),
        ("post", "10-after-backup", "ok"),
        ("post", "90-after-backup-always", "ok"),
        ("finally", "90-after-everything", "ok"),
    ]
    listing = execute(["tar", "-tf", str(archive)]).stdout.split()
    assert "./packages.txt" in listing
    assert not (staging / "packages.txt").exists()
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines == ["after_backup: success", "after_everything: success"]
    assert ping_paths(checker) == ["/start", ""]


def test_borgmatic_on_error_gets_the_error_and_the_output_of_the_failed_command(
        tmp_path, checker):
    require(shutil.which("findmnt"), "findmnt")
    hookrun, _staging = borgmatic_tree(tmp_path, "/")
    borg_like = 'echo "Repository /mnt/removable/borg does not exist." >&2; exit 2'

    result = hookrun("run", "--notify-url", checker.url, "--", "sh", "-c", borg_like)

    assert result.returncode == 2, outcome(result)
    record = hookrun.last()
    statuses = task_statuses(record)
    assert ("post", "10-after-backup", "skipped") in statuses
    assert ("post", "90-after-backup-always", "ok") in statuses
    assert ("on-error", "10-on-error", "ok") in statuses
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines == ["on_error: command sh failed (exit 2): Repository /mnt/removable/borg "
                     "does not exist.", "after_everything: failure"]
    assert ping_paths(checker) == ["/start", "/fail"]


# resticprofile: run-before, run-after, run-after-fail, run-finally

def resticprofile_tree(tmp_path, restic_repo):
    """Two backup disks, the second holding an initialised repository (the test's own)."""
    disks = [tmp_path / "usb-1", tmp_path / "usb-2"]
    disks[0].mkdir()
    disks[1].mkdir()
    repository = disks[1] / "restic"
    shutil.move(restic_repo["RESTIC_REPOSITORY"], repository)
    values = {"RESTIC_PASSWORD_FILE": restic_repo["RESTIC_PASSWORD_FILE"],
              "RESTIC_CACHE_DIR": restic_repo["RESTIC_CACHE_DIR"],
              "BACKUP_DISKS": " ".join(map(str, disks)), "BACKUP_REPORT": tmp_path / "report.log"}
    tree = migration_copy(tmp_path, "resticprofile", values)
    return Hookrun(tree, tmp_path, hermetic_env()), dict(restic_repo,
                                                          RESTIC_REPOSITORY=repository)


def test_resticprofile_run_before_hands_the_repository_to_restic_and_run_after_checks_it(
        tmp_path, restic_repo, checker):
    hookrun, repository = resticprofile_tree(tmp_path, restic_repo)

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(tmp_path / "hooks"))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert task_statuses(record) == [
        ("pre", "10-run-before", "ok"),
        ("command", "restic", "ok"),
        ("post", "10-run-after", "ok"),
        ("finally", "10-run-finally", "ok"),
    ]
    assert "no errors were found" in tasks_by_key(record)["post/10-run-after"]["output"]
    assert len(snapshots(repository)) == 1
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines == ["run-finally: success"]
    assert ping_paths(checker) == ["/start", ""]


@pytest.mark.parametrize("way", ["-r REPO", "--repo=REPO after the subcommand",
                                 "--repository-file FILE --password-file FILE"])
def test_resticprofile_run_after_checks_the_repository_the_backup_command_names(
        tmp_path, restic_repo, checker, way):
    """No run-before and no RESTIC_REPOSITORY: the repository (and its password) only in the
    command. A bare ``restic check`` found no repository and failed the run every night."""
    repo = restic_repo["RESTIC_REPOSITORY"]
    values = {"RESTIC_CACHE_DIR": restic_repo["RESTIC_CACHE_DIR"],
              "RESTIC_PASSWORD_FILE": restic_repo["RESTIC_PASSWORD_FILE"],
              "BACKUP_REPORT": tmp_path / "report.log"}
    if way == "-r REPO":
        before, after = ["-r", repo], []
    elif way == "--repo=REPO after the subcommand":
        before, after = [], [f"--repo={repo}"]
    else:
        repository_file = tmp_path / "repository"
        repository_file.write_text(repo + "\n")
        before = ["--repository-file", str(repository_file),
                  "--password-file", values.pop("RESTIC_PASSWORD_FILE")]
        after = []
    tree = migration_copy(tmp_path, "resticprofile", values)
    (tree / "pre-backup.d" / "10-run-before").unlink()
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", *before, "backup",
                     *after, str(tmp_path / "hooks"))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    assert task_statuses(record) == [
        ("command", "restic", "ok"),
        ("post", "10-run-after", "ok"),
        ("finally", "10-run-finally", "ok"),
    ]
    assert "no errors were found" in tasks_by_key(record)["post/10-run-after"]["output"]
    assert len(snapshots(restic_repo)) == 1
    assert ping_paths(checker) == ["/start", ""]


def test_resticprofile_failed_run_after_goes_to_run_after_fail_and_run_finally(
        tmp_path, restic_repo, checker):
    hookrun, repository = resticprofile_tree(tmp_path, restic_repo)
    # The backup succeeds, then the disk goes away: restic check, run-after, fails.
    damage = 'restic backup "$1" && mv "$RESTIC_REPOSITORY" "$RESTIC_REPOSITORY.unplugged"'

    result = hookrun("run", "--notify-url", checker.url, "--", "sh", "-c", damage, "sh",
                     str(tmp_path / "hooks"))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    assert task_statuses(record) == [
        ("pre", "10-run-before", "ok"),
        ("command", "sh", "ok"),
        ("post", "10-run-after", "failed"),
        ("on-error", "10-run-after-fail", "ok"),
        ("finally", "10-run-finally", "ok"),
    ]
    assert record["error"].startswith("post hook 10-run-after failed (exit 1)")
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines[0].startswith("run-after-fail: post hook 10-run-after failed (exit 1)")
    assert lines[0].endswith("(exit 0)"), "the command itself exited 0"
    assert lines[1] == "run-finally: failure"
    assert "unable to open config file" in tasks_by_key(record)["post/10-run-after"]["output"]
    moved = dict(repository, RESTIC_REPOSITORY=f"{repository['RESTIC_REPOSITORY']}.unplugged")
    assert len(snapshots(moved)) == 1
    assert ping_paths(checker) == ["/start", "/fail"]


def test_resticprofile_failed_backup_skips_run_after_and_gives_run_after_fail_its_exit_code(
        tmp_path, restic_repo, checker):
    hookrun, repository = resticprofile_tree(tmp_path, restic_repo)
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not the password\n")
    conf = hookrun.tree / "hookrun.conf"
    conf.write_text(conf.read_text().replace(restic_repo["RESTIC_PASSWORD_FILE"], str(wrong)))

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(tmp_path / "hooks"))

    assert result.returncode == 1, outcome(result)
    record = hookrun.last()
    assert task_statuses(record) == [
        ("pre", "10-run-before", "ok"),
        ("command", "restic", "failed"),
        ("post", "10-run-after", "skipped"),
        ("on-error", "10-run-after-fail", "ok"),
        ("finally", "10-run-finally", "ok"),
    ]
    lines = [line.split(" ", 2)[2] for line in report_lines(tmp_path / "report.log")]
    assert lines == [f"run-after-fail: command restic failed (exit 1): {WRONG_PASSWORD} "
                     "(exit 1)", "run-finally: failure"]
    assert snapshots(repository) == []


def test_resticprofile_run_before_failing_goes_to_run_after_fail(tmp_path, restic_repo, checker):
    hookrun, _repository = resticprofile_tree(tmp_path, restic_repo)
    shutil.rmtree(tmp_path / "usb-2")

    result = hookrun("run", "--notify-url", checker.url, "--", "restic", "backup",
                     str(tmp_path / "hooks"))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert task_statuses(record) == [
        ("pre", "10-run-before", "failed"),
        ("command", "restic", "skipped"),
        ("post", "10-run-after", "skipped"),
        ("on-error", "10-run-after-fail", "ok"),
        ("finally", "10-run-finally", "ok"),
    ]
    assert record["error"].endswith("/usb-2"), record["error"]
    assert ping_paths(checker) == ["/start", "/fail"]


# run-parts: which names run

RUN_PARTS_NAMES = ("10-a", "20-b.sh", "30-c.old", "x.y", "A_b-9", "a+b", "50-e.dpkg-old",
                   "60-f~", ".70-hidden", "#80-g#", "90_h")


def run_parts_dir(tmp_path):
    """HOOKS/pre-backup.d holding a script for each of RUN_PARTS_NAMES; each appends its own
    name to MARKS/order."""
    hooks, marks = tmp_path / "hooks", tmp_path / "marks"
    phase = hooks / "pre-backup.d"
    phase.mkdir(parents=True)
    marks.mkdir()
    for name in RUN_PARTS_NAMES:
        script = phase / name
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "${{0##*/}}" >>"{marks}/order"\n')
        script.chmod(0o755)
    remove_group_other_write(tmp_path)
    return hooks, phase, marks / "order"


def hookrun_runs(hooks):
    listing = execute([hookrun_path(), "list", "--json", "-d", str(hooks)], env=hermetic_env())
    return [item["name"] for item in json.loads(listing.stdout) if item["runs"]]


def test_hookrun_runs_names_that_run_parts_skips(tmp_path):
    run_parts = require(shutil.which("run-parts"), "run-parts (Debian's debianutils)")
    hooks, phase, _order = run_parts_dir(tmp_path)

    theirs = [Path(line).name for line in
              execute([run_parts, "--test", str(phase)]).stdout.splitlines()]
    ours = hookrun_runs(hooks)

    assert theirs == ["10-a", "90_h", "A_b-9"]
    assert ours == ["10-a", "20-b.sh", "30-c.old", "90_h", "A_b-9", "a+b", "x.y"]


def test_hookignore_line_gives_run_parts_exact_set_and_order(tmp_path):
    run_parts = require(shutil.which("run-parts"), "run-parts (Debian's debianutils)")
    hooks, phase, order = run_parts_dir(tmp_path)
    ignore = hooks / ".hookignore"
    ignore.write_text(f"# run-parts' names only: [A-Za-z0-9_-]\n{RUN_PARTS_IGNORE}\n")
    ignore.chmod(0o644)

    listed = execute([run_parts, "--test", str(phase)]).stdout.splitlines()
    assert [Path(line).name for line in listed] == hookrun_runs(hooks)

    execute([run_parts, str(phase)])
    by_run_parts = order.read_text().splitlines()
    order.unlink()
    ran = execute([hookrun_path(), "phase", "pre-backup", "-d", str(hooks), "--state-dir",
                   str(tmp_path / "state")], env=hermetic_env(), check=False)
    assert ran.returncode == 0, outcome(ran)
    assert order.read_text().splitlines() == by_run_parts == ["10-a", "90_h", "A_b-9"]


def test_a_bare_star_dot_star_hookignore_line_would_hide_every_hook(tmp_path):
    hooks, _phase, _order = run_parts_dir(tmp_path)
    (hooks / ".hookignore").write_text("*.*\n")
    (hooks / ".hookignore").chmod(0o644)

    assert hookrun_runs(hooks) == [], "pre-backup.d itself has a dot: *.* matches it"


def test_readme_gives_the_run_parts_hookignore_line_this_test_proves():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Migrating", 1)[1]
    assert RUN_PARTS_IGNORE in section
    assert re.search(r"`20-b\.sh`", section) and re.search(r"`30-c\.old`", section)
