"""Shared by the end-to-end tests: a real second user for the security tests (an
unprivileged account that plants files where root's hookrun looks, and runs hookrun itself from
a virtualenv of Debian's /usr/bin/python3, since an interpreter under root's 0700 home is out
of its reach); and the real Prometheus programs for the fleet tests (node_exporter, Prometheus
and the Pushgateway, each on 127.0.0.1 with a free port, its output in a log file, stopped when
the test ends). A missing program skips a test, or fails it under HOOKRUN_REQUIRE_TOOLS=1."""

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import needs_root, require
from tests.e2e import restic_keys
from tests.e2e.test_example_tree import free_port, postgres_server, restic

ROOT = Path(__file__).resolve().parents[2]
ATTACKER = "hookrun-mallory"
ACCOUNTS_LOCK = os.path.join(tempfile.gettempdir(), "hookrun-tests-accounts.lock")
SYSTEM_PYTHON = "/usr/bin/python3"
TIMEOUT = 120


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server (see postgres_server), one per test worker for every module that
    needs one: each test makes databases of names of its own."""
    yield from postgres_server()


def shared_dir(tmp_path_factory, worker_id):
    """A directory every test worker of this run sees: the parent of the workers' own base
    temporary directories (pytest's, closed to other users)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive flock on ``path`` (made if missing): one test worker at a time."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def restic_template(tmp_path_factory, worker_id):
    """An initialised restic repository, made once per test run and shared by the test
    workers (``restic init`` calibrates and runs its key derivation: three seconds of CPU);
    each test works on a copy, restic_repo. Its key is re-wrapped to open in a millisecond
    instead of half a second of CPU (see restic_keys); a command that opens it proves the
    key is sound."""
    require(shutil.which("restic"), "restic")
    shared = shared_dir(tmp_path_factory, worker_id)
    base = shared / "restic-template"
    password = base / "restic-password"
    values = {"RESTIC_REPOSITORY": str(base / "repo"), "RESTIC_PASSWORD_FILE": str(password),
              "RESTIC_CACHE_DIR": str(base / "restic-cache")}
    with locked(shared / "restic-template.lock"):
        if not (base / "ready").exists():
            base.mkdir(exist_ok=True)
            password.write_text("correct horse battery staple\n")
            password.chmod(0o600)
            restic(values, "init")
            restic_keys.cheapen(values["RESTIC_REPOSITORY"], password.read_bytes().strip())
            restic(values, "cat", "config")
            (base / "ready").touch()
    return values


@pytest.fixture(scope="session")
def attacker():
    """The pwd entry of an unprivileged account, created if missing (CI runs as root)."""
    needs_root("creates a second account (useradd) and runs as it (setpriv)")
    useradd = require(shutil.which("useradd"), "useradd")
    # Test workers running side by side each ask for the account: one creates it.
    with locked(ACCOUNTS_LOCK):
        try:
            return pwd.getpwnam(ATTACKER)
        except KeyError:
            pass
        subprocess.run([useradd, "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", ATTACKER], check=True, timeout=TIMEOUT)
        return pwd.getpwnam(ATTACKER)


def user_env(user, **extra):
    """A small environment for ``user``: no variable of root's session leaks in."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
           "USER": user.pw_name, "LOGNAME": user.pw_name}
    env.update(extra)
    return env


def as_user(user, argv, env=None, **kwargs):
    """Run ``argv`` as ``user`` (setpriv: real and effective ids, no supplementary groups);
    returns the CompletedProcess (text)."""
    setpriv = require(shutil.which("setpriv"), "setpriv")
    return subprocess.run([setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                           "--clear-groups", "--", *argv], capture_output=True, text=True,
                          env=env or user_env(user), timeout=TIMEOUT, **kwargs)


def plant(user, script, *args):
    """Run the shell ``script`` (``$1``... are ``args``) as ``user``; it must succeed."""
    result = as_user(user, ["/bin/sh", "-euc", script, "sh", *map(str, args)])
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def sticky_dir():
    """A directory like /tmp (mode 1777, root's), where any user may create names: made
    for the test and removed after it."""
    path = Path(tempfile.mkdtemp(prefix="hookrun-sticky-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def user_hookrun(attacker, tmp_path_factory, worker_id):
    """The path of a ``hookrun`` command the second user can run: this checkout installed
    into a virtualenv of Debian's Python, in a directory of its own under /tmp (the second
    user cannot enter pytest's). Made once per test run and shared by the test workers: each
    counts itself in, and the last one out removes it. One build at a time also keeps two
    pip runs from building in the checkout at once."""
    require(os.access(SYSTEM_PYTHON, os.X_OK) and SYSTEM_PYTHON, "Debian's python3")
    shared = shared_dir(tmp_path_factory, worker_id)
    record, users = shared / "user-venv", shared / "user-venv.users"
    with locked(shared / "user-venv.lock"):
        if not record.exists():
            record.write_text(build_user_venv())
            users.write_text("0")
        base = Path(record.read_text())
        users.write_text(str(int(users.read_text()) + 1))
    try:
        yield str(base / "venv" / "bin" / "hookrun")
    finally:
        with locked(shared / "user-venv.lock"):
            left = int(users.read_text()) - 1
            users.write_text(str(left))
            if not left:
                record.unlink()
                shutil.rmtree(base, ignore_errors=True)


def build_user_venv():
    """Make the second user's virtualenv (see user_hookrun); returns its directory."""
    base = Path(tempfile.mkdtemp(prefix="hookrun-user-venv-"))
    base.chmod(0o755)
    venv = base / "venv"
    try:
        # No pip of its own (ensurepip costs seconds): the tests' pip installs into it.
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=TIMEOUT, capture_output=True)
        installed = subprocess.run([sys.executable, "-m", "pip", "--python",
                                    str(venv / "bin" / "python"), "install", "--quiet",
                                    str(ROOT)], timeout=600, capture_output=True, text=True)
        assert installed.returncode == 0, installed.stdout + installed.stderr
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return str(base)


# Generous upper bounds: a slow CI must not flake, a hang must not hang.
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0
POLL_DEADLINE = 60.0
POLL_INTERVAL = 0.2
# Debian names the programs after their packages.
PROGRAMS = {"node_exporter": ("prometheus-node-exporter", "prometheus-node-exporter"),
            "prometheus": ("prometheus", "prometheus"),
            "pushgateway": ("prometheus-pushgateway", "prometheus-pushgateway")}


def program(name):
    """The path of a Prometheus program, or a skip (a failure under HOOKRUN_REQUIRE_TOOLS=1)."""
    command, package = PROGRAMS[name]
    return require(shutil.which(command), f"{command} (Debian package {package})")


def http_get(url, params=None, timeout=10):
    """(status, body text) of a GET; (None, reason) when nothing answers."""
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def poll(what, check, deadline=POLL_DEADLINE):
    """``check()``'s first truthy result, trying every POLL_INTERVAL; fails the test after
    ``deadline`` seconds naming ``what`` (a text, or a function returning one)."""
    give_up = time.monotonic() + deadline
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > give_up:
            pytest.fail(f"{what() if callable(what) else what}: not seen within {deadline:.0f}s")
        time.sleep(POLL_INTERVAL)


class Server:
    """One program listening on 127.0.0.1:``port``; ``url`` is its base URL."""

    def __init__(self, name, argv, port, log_path, ready_path):
        self.name = name
        self.argv = argv
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.ready_path = ready_path
        self.process = None

    def start(self):
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        poll(lambda: f"{self.name} ready at {self.url}{self.ready_path}\n{self.log()}",
             self.ready, START_DEADLINE)
        return self

    def ready(self):
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
        return http_get(self.url + self.ready_path, timeout=2)[0] == 200

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()[-3000:]
        except OSError:
            return ""

    def get_json(self, path, **params):
        status, body = http_get(self.url + path, params)
        assert status == 200, f"{self.name} {path} {params}: {status} {body}"
        return json.loads(body)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_DEADLINE)


class Servers:
    """Starts the programs a test asks for, in ``base``; all stopped at the test's end."""

    def __init__(self, base):
        self.base = base
        self.started = []

    def start(self, name, argv, port, ready_path):
        server = Server(name, argv, port, self.base / f"{name}.log", ready_path)
        self.started.append(server)
        return server.start()

    def node_exporter(self, textfile_dir):
        """node_exporter with only the textfile collector, reading ``textfile_dir``."""
        port = free_port()
        return self.start("node_exporter", [
            program("node_exporter"), "--collector.disable-defaults", "--collector.textfile",
            f"--collector.textfile.directory={textfile_dir}",
            f"--web.listen-address=127.0.0.1:{port}"], port, "/metrics")

    def pushgateway(self):
        """A Pushgateway persisting into the test's directory (Debian's default is a file in
        /var/lib/prometheus, which would carry groups over from one test to the next)."""
        port = free_port()
        return self.start("pushgateway", [
            program("pushgateway"), f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={self.base / 'pushgateway.data'}"], port, "/-/ready")

    def prometheus(self, scrape_configs, rules=None):
        """Prometheus scraping and evaluating every second; ``rules`` is the path of a rules
        file or None. Its configuration is written as JSON, which is YAML too."""
        port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": scrape_configs}
        if rules:
            config["rule_files"] = [str(rules)]
        path = self.base / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2))
        return self.start("prometheus", [
            program("prometheus"), f"--config.file={path}",
            f"--storage.tsdb.path={self.base / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}"], port, "/-/ready")

    def stop_all(self):
        for server in reversed(self.started):
            server.stop()


@pytest.fixture
def servers(tmp_path):
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def scrape_config(job, server, honor_labels=False):
    return {"job_name": job, "honor_labels": honor_labels,
            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}


def query(prometheus, promql):
    """The instant vector of ``promql`` as [(labels, value)]."""
    answer = prometheus.get_json("/api/v1/query", query=promql)
    return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]
