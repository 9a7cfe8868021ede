"""End-to-end tests of hooks.d.example/ through the installed ``hookrun`` command, against a
real PostgreSQL server (started here with initdb and pg_ctl) and a real restic repository.

Each test runs a copy of the example tree in ``tmp_path`` whose ``[env]`` section is rewritten
for the test. Missing tools skip the tests that need them, unless HOOKRUN_REQUIRE_TOOLS=1 (CI),
which makes them fail.
"""

import glob
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import installed_hookrun, require

EXAMPLE = Path(__file__).resolve().parents[2] / "hooks.d.example"
PHASE_DIRS = ("pre-backup.d", "post-backup.d", "on-error.d", "on-success.d", "finally.d")
# Generous upper bound for one subprocess: a slow CI must not flake, a hang must not hang.
TIMEOUT = 120
EXIT_HOOK_STOPPED = 69
# Hooks of the example tree that have nothing to do in a PostgreSQL + restic test: they would
# step aside (exit 62) and print warnings on every run.
NOT_USED_HERE = ("pre-backup.d/30-dump-mariadb", "pre-backup.d/40-stop-container")
# What the hooks and hookrun must not pick up from the environment the tests run in.
FOREIGN_ENV = re.compile(r"(PG|MYSQL|RESTIC_|HOOKRUN_|BACKUP_|HEALTHCHECK|MIN_FREE|NO_COLOR)"
                         r"|.*_proxy\Z", re.IGNORECASE)


# Tools

def hookrun_path():
    found = installed_hookrun()
    if not found:
        pytest.fail("the hookrun command is not installed (pip install -e .)")
    return found


def postgres_bindir():
    """The newest /usr/lib/postgresql/*/bin holding initdb, else the directory of initdb on
    PATH; None when there is none."""
    def version(path):
        return [int(part) for part in re.findall(r"\d+", path)]

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return os.path.dirname(found[-1])
    on_path = shutil.which("initdb")
    return os.path.dirname(on_path) if on_path else None


def hermetic_env(extra_path=None):
    """The environment hookrun runs with: the test runner's, without database, restic, hookrun
    and proxy variables, in the C locale."""
    env = {k: v for k, v in os.environ.items() if not FOREIGN_ENV.match(k)}
    env["LC_ALL"] = "C"
    env["NO_COLOR"] = "1"
    if extra_path:
        env["PATH"] = f"{extra_path}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def execute(argv, env=None, cwd=None, check=True):
    """Run ``argv`` (output captured, stdin /dev/null); with ``check`` a failure fails the
    test, showing the output."""
    result = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{argv} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


# The example tree, copied

def remove_group_other_write(top):
    """chmod -R go-w: a checkout made with umask 002 is group-writable, which hookrun refuses."""
    for directory, _dirs, files in os.walk(top):
        for path in [directory] + [os.path.join(directory, name) for name in files]:
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o022)


def set_env_section(config, values):
    """Replace the [env] section of the config file ``config`` with ``values``."""
    body = "".join(f"{name} = {value}\n" for name, value in values.items())
    text, count = re.subn(r"^\[env\]\n.*?(?=^\[|\Z)", lambda _m: f"[env]\n{body}\n",
                          config.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert count == 1, f"no [env] section in {config}"
    config.write_text(text)


def example_copy(tmp_path, env_values, ignore=(), extra_hooks=None):
    """A copy of hooks.d.example/ in ``tmp_path`` with ``env_values`` as its [env] section,
    ``ignore`` patterns in a .hookignore and ``extra_hooks`` ({"phase.d/name": script})."""
    tree = tmp_path / "hooks"
    shutil.copytree(EXAMPLE, tree, symlinks=True)
    for key, script in (extra_hooks or {}).items():
        (tree / key).write_text(script)
        (tree / key).chmod(0o755)
    if ignore:
        (tree / ".hookignore").write_text("".join(f"{pattern}\n" for pattern in ignore))
    remove_group_other_write(tree)
    set_env_section(tree / "hookrun.conf", env_values)
    return tree


class Hookrun:
    """The installed hookrun command on one tree, with its state and log in ``tmp_path``."""

    def __init__(self, tree, tmp_path, env):
        self.tree = tree
        self.state_dir = tmp_path / "state"
        self.log_file = tmp_path / "hookrun.log"
        self.env = env

    def __call__(self, subcommand, *args):
        return execute([hookrun_path(), subcommand, "-d", str(self.tree), "--state-dir",
                        str(self.state_dir), "--log-file", str(self.log_file), *args],
                       env=self.env, check=False)

    def run(self, *command):
        return self("run", "--", *command)

    def last(self):
        """The JSON record of the last run (``hookrun show last --json``)."""
        result = self("show", "last", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def task_statuses(record):
    return [(task["phase"], task["name"], task["status"]) for task in record["tasks"]]


def verify_stopped_the_run(hookrun, result):
    """The run's record, once it is sure that 10-verify failed it (exit 69, status failure)
    and 90-clean-staging removed nothing."""
    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    statuses = task_statuses(record)
    assert ("post", "10-verify", "failed") in statuses
    assert ("post", "90-clean-staging", "skipped") in statuses
    return record


def outcome(result):
    """What a failed assertion on a run shows."""
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


# PostgreSQL

def postgres_server():
    """A PostgreSQL server of its own: trust authentication, 127.0.0.1 and a free port only,
    its socket in its temporary directory. Run as the postgres user when the tests run as root
    (initdb refuses root). Yields the connection settings and the binary directory; the
    ``postgres`` fixture (tests/e2e/conftest.py) serves it."""
    bindir = require(postgres_bindir(), "PostgreSQL server (initdb)")
    require(shutil.which("pg_dump"), "pg_dump")
    as_root = os.geteuid() == 0
    as_owner, owner = [], None
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            require(None, "the postgres system user (needed to run initdb as root)")
        as_owner = [require(shutil.which("runuser"), "runuser"), "-u", "postgres", "--"]
    # As root the server runs as postgres, which cannot enter pytest's 0700 temporary
    # directories (nor a $TMPDIR under /root): its directory goes in /tmp.
    base = tempfile.mkdtemp(prefix="hookrun-e2e-pg-", dir="/tmp" if as_root else None)
    if owner:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, sockets = os.path.join(base, "data"), os.path.join(base, "sockets")
    log = os.path.join(base, "server.log")
    port = None

    def pg_ctl(*args, check=True):
        return execute([*as_owner, os.path.join(bindir, "pg_ctl"), "-D", data, *args],
                       cwd=base, check=check)

    try:
        execute([*as_owner, "mkdir", "-m", "0700", sockets], cwd=base)
        execute([*as_owner, os.path.join(bindir, "initdb"), "-D", data, "--auth=trust",
                 "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync"],
                cwd=base)
        for attempt in range(1, PG_START_ATTEMPTS + 1):
            # A port found free may be taken before the server binds it (other workers'
            # servers and clients use the same range): then another one is tried.
            port = free_port()
            options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off")
            started = pg_ctl("-l", log, "-w", "-t", "60", "-o", options, "start", check=False)
            if started.returncode == 0:
                break
            if attempt == PG_START_ATTEMPTS or not port_taken(log):
                pytest.fail(f"pg_ctl start exited {started.returncode}\n{started.stdout}\n"
                            f"{started.stderr}\n{open(log, errors='replace').read()[-2000:]}")
        yield {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres",
               "bindir": bindir}
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            pg_ctl("-w", "-t", "60", "-m", "fast", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


PG_START_ATTEMPTS = 3


def port_taken(log):
    """Whether the PostgreSQL server log ``log`` says its port was in use."""
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            return "Address already in use" in handle.read()
    except OSError:
        return False


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pg_connection(pg):
    return {name: pg[name] for name in ("PGHOST", "PGPORT", "PGUSER")}


def psql(pg, database, sql):
    """The unaligned output of ``sql`` run on ``database``; any error fails the test."""
    result = execute([os.path.join(pg["bindir"], "psql"), "-X", "-q", "-A", "-t", "-v",
                      "ON_ERROR_STOP=1", "-d", database, "-c", sql],
                     env={**hermetic_env(), **pg_connection(pg)})
    return result.stdout.strip()


def table_digest(pg, database):
    """Row count and an md5 of every row in id order of the test table."""
    return psql(pg, database, "SELECT count(*) || ' ' || md5(string_agg(id || ':' || body, "
                              "E'\\n' ORDER BY id)) FROM samples")


# restic

@pytest.fixture
def restic_repo(tmp_path, restic_template):
    """An initialised restic repository of the test's own (a copy of the session's); returns
    the variables restic needs."""
    password = tmp_path / "restic-password"
    shutil.copy2(restic_template["RESTIC_PASSWORD_FILE"], password)
    shutil.copytree(restic_template["RESTIC_REPOSITORY"], tmp_path / "repo")
    return {"RESTIC_REPOSITORY": str(tmp_path / "repo"), "RESTIC_PASSWORD_FILE": str(password),
            "RESTIC_CACHE_DIR": str(tmp_path / "restic-cache")}


def restic(values, *args):
    return execute(["restic", *args], env={**hermetic_env(), **values}).stdout


def snapshots(values):
    return json.loads(restic(values, "snapshots", "--json") or "[]")


# A healthchecks.io-style checker

@pytest.fixture
def checker():
    """A local HTTP server that records each request as (method, path, body); yields its base
    URL and the list of requests."""
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            requests.append((self.command, self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = do_HEAD = answer

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/check", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# The tests

def test_example_scripts_are_executable_posix_sh_and_shellcheck_clean():
    scripts = sorted(path for name in PHASE_DIRS for path in (EXAMPLE / name).iterdir())
    assert len(scripts) >= 9
    for script in scripts:
        assert script.read_text().startswith("#!/bin/sh\n"), script
        assert stat.S_IMODE(script.stat().st_mode) & 0o111 == 0o111, f"{script}: chmod 0755"
    shellcheck = require(shutil.which("shellcheck"), "shellcheck")
    result = execute([shellcheck, "-s", "sh", *map(str, scripts)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_tree_passes_check_and_lists_every_hook_with_its_settings(tmp_path):
    tree = tmp_path / "hooks"
    shutil.copytree(EXAMPLE, tree, symlinks=True)
    remove_group_other_write(tree)
    env = hermetic_env()

    check = execute([hookrun_path(), "check", "-d", str(tree)], env=env, check=False)
    assert check.returncode == 0, outcome(check)

    listing = execute([hookrun_path(), "list", "--json", "-d", str(tree)], env=env)
    plan = {f"{item['dir']}/{item['name']}": item for item in json.loads(listing.stdout)}
    scripts = {f"{name}/{path.name}" for name in PHASE_DIRS for path in (EXAMPLE / name).iterdir()}
    assert set(plan) == scripts
    assert all(item["runs"] for item in plan.values())
    assert plan["pre-backup.d/10-check-free-space"]["critical"] is True
    assert plan["pre-backup.d/20-dump-postgres"]["timeout"] == 30 * 60
    assert plan["post-backup.d/10-verify"]["when"] == "success"
    assert plan["post-backup.d/10-verify"]["critical"] is True
    assert plan["post-backup.d/90-clean-staging"]["when"] == "success"


def test_example_tree_runs_anywhere_with_unconfigured_hooks_stepping_aside(tmp_path):
    tree = example_copy(tmp_path, {"MIN_FREE_MB": 1})
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("true")

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    assert task_statuses(record) == [
        ("pre", "10-check-free-space", "ok"),
        ("pre", "20-dump-postgres", "aborted"),
        ("pre", "30-dump-mariadb", "aborted"),
        ("pre", "40-stop-container", "aborted"),
        ("command", "true", "ok"),
        ("post", "10-verify", "aborted"),
        ("post", "90-clean-staging", "ok"),
        ("on-success", "10-ping", "aborted"),
        ("finally", "90-report", "ok"),
    ]
    staging = hookrun.state_dir / "staging"
    assert staging.is_dir()
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700


def test_too_little_free_space_stops_the_run_before_the_command(tmp_path):
    marker = tmp_path / "command-ran"
    tree = example_copy(tmp_path, {"MIN_FREE_MB": 10 ** 12,
                                   "BACKUP_STAGING_DIR": tmp_path / "staging"})
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("touch", str(marker))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    assert not marker.exists()
    statuses = task_statuses(hookrun.last())
    assert ("pre", "10-check-free-space", "failed") in statuses
    assert ("pre", "20-dump-postgres", "skipped") in statuses
    assert ("command", "touch", "skipped") in statuses


def test_the_test_repository_opens_with_its_password_only_and_cheaply(tmp_path, restic_repo):
    """The repository every restic test copies has its key re-wrapped (restic_keys): restic
    opens it with the password and no key derivation worth measuring, and refuses another."""
    (key,) = (Path(restic_repo["RESTIC_REPOSITORY"]) / "keys").iterdir()
    assert json.loads(key.read_text())["N"] == 1024
    restic(restic_repo, "cat", "config")
    wrong = tmp_path / "wrong-password"
    wrong.write_text("incorrect horse\n")
    result = execute(["restic", "cat", "config"], check=False,
                     env={**hermetic_env(), **restic_repo, "RESTIC_PASSWORD_FILE": str(wrong)})
    assert result.returncode != 0 and "wrong password" in result.stderr


def test_backup_of_postgres_with_restic_restores_the_same_rows(tmp_path, postgres, restic_repo,
                                                               checker):
    url, requests = checker
    psql(postgres, "postgres", "CREATE DATABASE shop")
    psql(postgres, "shop", "CREATE TABLE samples (id serial PRIMARY KEY, body text NOT NULL); "
                           "INSERT INTO samples (body) SELECT md5(random()::text) || ' ä€ ' "
                           "|| repeat(chr(65 + (random() * 25)::int), (random() * 300)::int) "
                           "FROM generate_series(1, 1000)")
    source = table_digest(postgres, "shop")
    assert source.startswith("1000 ")
    staging = tmp_path / "staging"
    tree = example_copy(tmp_path, {
        **pg_connection(postgres), "PGDATABASE": "shop", "BACKUP_STAGING_DIR": staging,
        "MIN_FREE_MB": 1, "HEALTHCHECK_URL": url, **restic_repo,
    }, ignore=NOT_USED_HERE)
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("restic", "backup", str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    assert task_statuses(record) == [
        ("pre", "10-check-free-space", "ok"),
        ("pre", "20-dump-postgres", "ok"),
        ("command", "restic", "ok"),
        ("post", "10-verify", "ok"),
        ("post", "90-clean-staging", "ok"),
        ("on-success", "10-ping", "ok"),
        ("finally", "90-report", "ok"),
    ]
    assert len(snapshots(restic_repo)) == 1
    assert staging.is_dir() and list(staging.iterdir()) == []
    assert [(method, path) for method, path, _body in requests] == [("POST", "/check")]

    restored = tmp_path / "restored"
    restic(restic_repo, "restore", "latest", "--target", str(restored))
    dumps = list(restored.rglob("postgres-shop.dump"))
    assert len(dumps) == 1
    psql(postgres, "postgres", "CREATE DATABASE shop_restored")
    execute([os.path.join(postgres["bindir"], "pg_restore"), "--no-owner", "--exit-on-error",
             "-d", "shop_restored", str(dumps[0])],
            env={**hermetic_env(), **pg_connection(postgres)})
    assert table_digest(postgres, "shop_restored") == source


def test_a_backup_that_leaves_the_staging_directory_out_never_ends_in_success(
        tmp_path, postgres, restic_repo):
    psql(postgres, "postgres", "CREATE DATABASE trap")
    staging, srv = tmp_path / "staging", tmp_path / "srv"
    srv.mkdir()
    (srv / "site.txt").write_text("the web site\n")
    tree = example_copy(tmp_path, {
        **pg_connection(postgres), "PGDATABASE": "trap", "BACKUP_STAGING_DIR": staging,
        "MIN_FREE_MB": 1, **restic_repo,
    }, ignore=NOT_USED_HERE)
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("restic", "backup", str(srv))  # the trap: /srv only

    record = verify_stopped_the_run(hookrun, result)
    assert "does not contain" in record["error"] and "postgres-trap.dump" in record["error"]
    assert (staging / "postgres-trap.dump").exists(), "the dump is kept for a second try"

    result = hookrun.run("restic", "backup", str(srv), str(staging))  # as the README says

    assert result.returncode == 0, outcome(result)
    assert hookrun.last()["status"] == "success"
    assert list(staging.iterdir()) == []


CAPTURE_HOOK = """#!/bin/sh
cp "$HOOKRUN_ERROR_LOG" "$CAPTURE_DIR/error.log"
printf '%s\\n' "$ERROR" >"$CAPTURE_DIR/error.txt"
"""


def test_failed_dump_stops_the_run_before_restic_and_hands_its_output_to_on_error(
        tmp_path, postgres, restic_repo, checker):
    url, requests = checker
    staging, captured = tmp_path / "staging", tmp_path / "captured"
    captured.mkdir()
    tree = example_copy(tmp_path, {
        **pg_connection(postgres), "PGDATABASE": "no_such_database",
        "BACKUP_STAGING_DIR": staging, "MIN_FREE_MB": 1, "HEALTHCHECK_URL": url,
        "CAPTURE_DIR": captured, **restic_repo,
    }, ignore=NOT_USED_HERE, extra_hooks={"on-error.d/50-capture": CAPTURE_HOOK})
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("restic", "backup", str(staging))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    assert snapshots(restic_repo) == []
    record = hookrun.last()
    assert record["status"] == "failure"
    statuses = task_statuses(record)
    assert ("pre", "20-dump-postgres", "failed") in statuses
    assert ("command", "restic", "skipped") in statuses
    assert ("on-error", "10-alert", "ok") in statuses
    assert ("on-error", "50-capture", "ok") in statuses
    assert "does not exist" in (captured / "error.log").read_text()
    assert "20-dump-postgres" in (captured / "error.txt").read_text()
    assert list(staging.iterdir()) == [], "the partial dump must be removed"
    failures = [body for method, path, body in requests if path == "/check/fail"]
    assert len(failures) == 1 and "does not exist" in failures[0]
    assert all(path != "/check" for _method, path, _body in requests)


SLOW_PG_DUMP = """#!/bin/sh
for arg; do
    case $arg in --file=*) file=${arg#--file=} ;; esac
done
echo "half a dump" >"$file"
sleep 60
"""


def test_dump_cut_off_by_its_timeout_leaves_no_partial_file_and_keeps_the_last_good_dump(
        tmp_path):
    fake_bin, staging = tmp_path / "bin", tmp_path / "staging"
    fake_bin.mkdir()
    (fake_bin / "pg_dump").write_text(SLOW_PG_DUMP)
    (fake_bin / "pg_dump").chmod(0o755)
    staging.mkdir(mode=0o700)
    (staging / "postgres-shop.dump").write_text("last night's dump\n")
    tree = example_copy(tmp_path, {"PGDATABASE": "shop", "BACKUP_STAGING_DIR": staging,
                                   "MIN_FREE_MB": 1})
    hookrun = Hookrun(tree, tmp_path, hermetic_env(extra_path=fake_bin))

    result = hookrun("run", "--timeout", "2s", "--kill-grace", "5s", "--", "true")

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    statuses = task_statuses(hookrun.last())
    assert ("pre", "20-dump-postgres", "timeout") in statuses
    assert ("command", "true", "skipped") in statuses
    assert sorted(path.name for path in staging.iterdir()) == ["postgres-shop.dump"]
    assert (staging / "postgres-shop.dump").read_text() == "last night's dump\n"


FAKE_DOCKER = """#!/bin/sh
printf '%s\\n' "$*" >>"$DOCKER_LOG"
if [ "$1" = inspect ]; then
    echo true
fi
"""


def test_container_stopped_by_40_stop_container_is_started_again_after_a_failed_command(
        tmp_path):
    fake_bin, calls = tmp_path / "bin", tmp_path / "docker-calls"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(FAKE_DOCKER)
    (fake_bin / "docker").chmod(0o755)
    tree = example_copy(tmp_path, {
        "BACKUP_CONTAINER": "webapp", "DOCKER_LOG": calls, "MIN_FREE_MB": 1,
        "BACKUP_STAGING_DIR": tmp_path / "staging",
    })
    hookrun = Hookrun(tree, tmp_path, hermetic_env(extra_path=fake_bin))

    result = hookrun.run("sh", "-c", 'echo command >>"$DOCKER_LOG"; exit 1')

    assert result.returncode == 1, outcome(result)
    seen = [line for line in calls.read_text().splitlines() if not line.startswith("inspect")]
    assert seen == ["stop webapp", "command", "start webapp"]
    record = hookrun.last()
    assert record["status"] == "failure"
    assert ("cleanup", "docker start webapp", "ok") in task_statuses(record)


# Where 10-verify finds the repository, and what it does when it cannot verify

def set_hookrun_key(config, key, value):
    """Add ``key = value`` to the [hookrun] section of the config file ``config``."""
    text = config.read_text()
    assert "\n[hookrun]\n" in text, f"no [hookrun] section in {config}"
    config.write_text(text.replace("\n[hookrun]\n", f"\n[hookrun]\n{key} = {value}\n", 1))


def bin_without(tmp_path, *names):
    """A directory of links to every program in the usual bin directories but ``names``: a
    PATH on which those are not installed."""
    found = tmp_path / f"bin-without-{'-'.join(names)}"
    found.mkdir()
    for directory in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin",
                      "/bin"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if name in names or (found / name).exists() or not os.access(path, os.X_OK):
                continue
            (found / name).symlink_to(path)
    return found


def postgres_dump_tree(tmp_path, postgres, restic_repo, database, **values):
    """A copy of the example tree that dumps a new database named ``database`` and a unique
    suffix into its staging directory, with ``values`` in [env] as well (the restic repository
    only when given); returns the tree, the staging directory and the dump's name (the
    server serves the whole session)."""
    database = f"{database}_{uuid.uuid4().hex[:12]}"
    psql(postgres, "postgres", f"CREATE DATABASE {database}")
    staging = tmp_path / "staging"
    tree = example_copy(tmp_path, {
        **pg_connection(postgres), "PGDATABASE": database, "BACKUP_STAGING_DIR": staging,
        "MIN_FREE_MB": 1, "RESTIC_PASSWORD_FILE": restic_repo["RESTIC_PASSWORD_FILE"],
        "RESTIC_CACHE_DIR": restic_repo["RESTIC_CACHE_DIR"], **values,
    }, ignore=NOT_USED_HERE)
    return tree, staging, f"postgres-{database}.dump"


def snapshot_listing(restic_repo):
    return restic(restic_repo, "ls", "latest").splitlines()


REPOSITORY_WAYS = {
    "-r REPO": lambda repo, _file: ({}, ["-r", repo]),
    "--repo=REPO": lambda repo, _file: ({}, [f"--repo={repo}"]),
    "-rREPO after the subcommand": lambda repo, _file: ({}, ["backup", f"-r{repo}"]),
    "--repository-file FILE": lambda _repo, file: ({}, ["--repository-file", file]),
    "--json -r REPO (HOOKRUN_SNAPSHOT_ID)": lambda repo, _file: ({}, ["--json", "-r", repo]),
    "RESTIC_REPOSITORY_FILE": lambda _repo, file: ({"RESTIC_REPOSITORY_FILE": file}, []),
    # restic 0.17 and later back up under RESTIC_HOST, older ones (Debian 12's 0.14) under
    # this host's name: either way a good night is found, not failed every night.
    "-r REPO, RESTIC_HOST in [env]": lambda repo, _file: ({"RESTIC_HOST": "db-primary"},
                                                          ["-r", repo]),
}


@pytest.mark.parametrize("way", REPOSITORY_WAYS)
def test_verify_finds_the_repository_where_the_backup_command_names_it(
        tmp_path, postgres, restic_repo, way):
    """The most common restic usage, ``restic -r REPO backup ...`` with no RESTIC_REPOSITORY:
    10-verify checks the snapshot against that repository, and only then do the dumps go."""
    repository_file = tmp_path / "repository"
    repository_file.write_text(restic_repo["RESTIC_REPOSITORY"] + "\n")
    env_values, options = REPOSITORY_WAYS[way](restic_repo["RESTIC_REPOSITORY"],
                                               str(repository_file))
    tree, staging, dump = postgres_dump_tree(tmp_path, postgres, restic_repo, "ways", **env_values)
    hookrun = Hookrun(tree, tmp_path, hermetic_env())
    if options and options[0] == "backup":
        command = ["restic", *options, str(staging)]
    else:
        command = ["restic", *options, "backup", str(staging)]

    result = hookrun.run(*command)

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "success"
    tasks = {f"{task['phase']}/{task['name']}": task for task in record["tasks"]}
    assert tasks["post/10-verify"]["status"] == "ok", tasks["post/10-verify"]
    assert "the snapshot contains" in tasks["post/10-verify"]["output"]
    if "--json" in options:  # 10-verify lists the snapshot the command reported
        assert record["stats"]["snapshot_id"]
    assert tasks["post/90-clean-staging"]["status"] == "ok"
    assert "removed 1 verified dump" in tasks["post/90-clean-staging"]["output"]
    assert list(staging.iterdir()) == []
    assert str(staging / dump) in snapshot_listing(restic_repo)


def test_verify_with_r_fails_a_backup_that_left_the_staging_directory_out(
        tmp_path, postgres, restic_repo):
    """The reviewer's case 2: ``restic -r REPO backup /srv``, no RESTIC_REPOSITORY in [env]."""
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "site.txt").write_text("the web site\n")
    tree, staging, dump = postgres_dump_tree(tmp_path, postgres, restic_repo, "left_out")
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("restic", "-r", restic_repo["RESTIC_REPOSITORY"], "backup", str(srv))

    record = verify_stopped_the_run(hookrun, result)
    assert "does not contain" in record["error"] and dump in record["error"]
    assert (staging / dump).exists(), "the dump is kept"
    assert len(snapshots(restic_repo)) == 1


def test_dumps_that_10_verify_cannot_verify_fail_the_run_and_are_kept(
        tmp_path, postgres, restic_repo):
    """No repository it can find (the command is not restic and [env] names none): the run
    fails with the reason, never a green night that deleted the dump."""
    archive = tmp_path / "backup.tar"
    tree, staging, dump = postgres_dump_tree(tmp_path, postgres, restic_repo, "unverifiable")
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("tar", "-cf", str(archive), str(staging))

    record = verify_stopped_the_run(hookrun, result)
    statuses = task_statuses(record)
    assert ("pre", "20-dump-postgres", "ok") in statuses
    assert ("command", "tar", "ok") in statuses
    assert "cannot verify the 1 dump(s)" in record["error"]
    assert "no repository found" in record["error"]
    assert (staging / dump).exists(), "the dump is kept"


def test_dumps_fail_the_run_and_are_kept_when_restic_is_not_on_the_hooks_path(
        tmp_path, postgres, restic_repo):
    restic_path = require(shutil.which("restic"), "restic")
    tree, staging, dump = postgres_dump_tree(tmp_path, postgres, restic_repo, "no_restic",
                                       RESTIC_REPOSITORY=restic_repo["RESTIC_REPOSITORY"])
    set_hookrun_key(tree / "hookrun.conf", "path", bin_without(tmp_path, "restic"))
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run(restic_path, "backup", str(staging))

    record = verify_stopped_the_run(hookrun, result)
    assert "restic is not installed" in record["error"]
    assert (staging / dump).exists(), "the dump is kept"


OLDER_SNAPSHOT_WAYS = {
    "--dry-run": ["--dry-run"],
    "--time before the first snapshot": ["--time", "2000-01-01 00:00:00"],
}


@pytest.mark.parametrize("way", OLDER_SNAPSHOT_WAYS)
def test_verify_fails_a_run_whose_snapshot_holds_only_an_older_dump_of_that_name(
        tmp_path, postgres, restic_repo, way):
    """Dump names are the same every night. A second run whose command made no newer snapshot
    ("restic backup --dry-run"; --time in the past, so that "latest" is the first snapshot)
    found the first night's file of that name in the latest snapshot: 10-verify passed,
    tonight's dump was deleted and the run ended success."""
    tree, staging, dump = postgres_dump_tree(tmp_path, postgres, restic_repo, "nightly",
                                             RESTIC_REPOSITORY=restic_repo["RESTIC_REPOSITORY"])
    hookrun = Hookrun(tree, tmp_path, hermetic_env())
    first = hookrun.run("restic", "backup", str(staging))
    assert first.returncode == 0, outcome(first)
    assert hookrun.last()["status"] == "success"
    assert not (staging / dump).exists(), "the first night's dump is backed up and removed"
    [first_snapshot] = snapshots(restic_repo)

    result = hookrun.run("restic", "backup", *OLDER_SNAPSHOT_WAYS[way], str(staging))

    record = verify_stopped_the_run(hookrun, result)
    statuses = task_statuses(record)
    assert ("command", "restic", "ok") in statuses
    said = f"snapshot {first_snapshot['short_id']} was made at"
    assert said in record["error"] and dump in record["error"], record["error"]
    assert (staging / dump).is_file(), "tonight's dump is kept"
    assert len(snapshots(restic_repo)) == (1 if way == "--dry-run" else 2)


@pytest.mark.parametrize("case", ["no repository found", "restic is not installed"])
def test_configured_repository_check_that_cannot_run_fails_the_run_without_dumps(tmp_path,
                                                                                 case):
    """RESTIC_CHECK_READ_DATA_SUBSET set and no dump to verify: 10-verify stepped aside
    (exit 62) when it found no repository or no restic, and the configured check never ran
    while the run ended success."""
    values = {"MIN_FREE_MB": 1, "BACKUP_STAGING_DIR": tmp_path / "staging",
              "RESTIC_CHECK_READ_DATA_SUBSET": "5%"}
    if case == "restic is not installed":
        values["RESTIC_REPOSITORY"] = tmp_path / "repo"
    tree = example_copy(tmp_path, values, ignore=NOT_USED_HERE)
    if case == "restic is not installed":
        set_hookrun_key(tree / "hookrun.conf", "path", bin_without(tmp_path, "restic"))
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("true")

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    record = hookrun.last()
    assert record["status"] == "failure"
    verify = {task["name"]: task for task in record["tasks"]}["10-verify"]
    assert (verify["status"], verify["exit_code"]) == ("failed", 1), verify
    assert "RESTIC_CHECK_READ_DATA_SUBSET is set" in verify["output"]
    assert case in verify["output"]
    assert ("post", "90-clean-staging", "skipped") in task_statuses(record)


@pytest.mark.parametrize("marker", [None, "an earlier run"])
def test_clean_staging_keeps_dumps_10_verify_did_not_verify_and_the_run_is_a_warning(
        tmp_path, postgres, restic_repo, marker):
    """With 10-verify switched off (or only a marker of another run left in staging),
    90-clean-staging removes no dump: it names what it kept and exits 3, its warning code."""
    tree, staging, dump = postgres_dump_tree(tmp_path, postgres, restic_repo, "unchecked",
                                       RESTIC_REPOSITORY=restic_repo["RESTIC_REPOSITORY"])
    (tree / ".hookignore").write_text("".join(f"{pattern}\n" for pattern in NOT_USED_HERE)
                                      + "post-backup.d/10-verify\n")
    if marker:
        staging.mkdir(mode=0o700)
        (staging / ".verified").write_text(f"20200101T000000-1\n{dump}\n")
    hookrun = Hookrun(tree, tmp_path, hermetic_env())

    result = hookrun.run("restic", "backup", str(staging))

    assert result.returncode == 0, outcome(result)
    record = hookrun.last()
    assert record["status"] == "warning"
    clean = {task["name"]: task for task in record["tasks"]}["90-clean-staging"]
    assert (clean["status"], clean["exit_code"]) == ("warning", 3)
    assert "kept " in clean["output"] and dump in clean["output"]
    assert (staging / dump).exists(), "an unverified dump is kept"
    assert not (staging / ".verified").exists()


# A pre- hook whose target is configured but cannot be reached fails; it never steps aside

MISSING_DOCKER_CONTAINER = """#!/bin/sh
echo "Error: No such object: $3" >&2
exit 1
"""


@pytest.mark.parametrize("case", ["postgres without pg_dump", "mariadb without a dump tool",
                                  "container without docker", "container that does not exist"])
def test_configured_pre_hook_that_cannot_do_its_job_stops_the_run(tmp_path, case):
    marker = tmp_path / "command-ran"
    values = {"MIN_FREE_MB": 1, "BACKUP_STAGING_DIR": tmp_path / "staging"}
    path = None
    if case == "postgres without pg_dump":
        hook, said = "20-dump-postgres", "pg_dump is not installed"
        values["PGDATABASE"] = "shop"
        path = bin_without(tmp_path, "pg_dump")
    elif case == "mariadb without a dump tool":
        hook, said = "30-dump-mariadb", "neither mariadb-dump nor mysqldump"
        values["MYSQL_DATABASE"] = "shop"
        path = bin_without(tmp_path, "mariadb-dump", "mysqldump")
    elif case == "container without docker":
        hook, said = "40-stop-container", "neither docker nor podman"
        values["BACKUP_CONTAINER"] = "webapp"
        path = bin_without(tmp_path, "docker", "podman")
    else:
        hook, said = "40-stop-container", "cannot inspect container webapp"
        values["BACKUP_CONTAINER"] = "webapp"
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(MISSING_DOCKER_CONTAINER)
    (fake_bin / "docker").chmod(0o755)
    tree = example_copy(tmp_path, values)
    if path:
        set_hookrun_key(tree / "hookrun.conf", "path", path)
    hookrun = Hookrun(tree, tmp_path, hermetic_env(extra_path=None if path else fake_bin))

    result = hookrun.run("touch", str(marker))

    assert result.returncode == EXIT_HOOK_STOPPED, outcome(result)
    assert not marker.exists()
    record = hookrun.last()
    assert record["status"] == "failure"
    task = {t["name"]: t for t in record["tasks"]}[hook]
    assert (task["status"], task["exit_code"]) == ("failed", 1), task
    assert said in task["output"]
    assert ("command", "touch", "skipped") in task_statuses(record)
