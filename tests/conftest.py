"""Shared fixtures: a hooks tree in tmp_path with scripts written by the test."""

import http.server
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest


class Tree:
    """A hooks directory, a state directory and a scratch directory for marker files."""

    def __init__(self, base):
        self.base = base
        self.hooks = base / "hooks"
        self.state = base / "state"
        self.marks = base / "marks"
        for path in (self.hooks, self.marks):
            path.mkdir(mode=0o755)
            path.chmod(0o755)

    def hook(self, relative, body="", header=None, mode=0o755, shebang="#!/bin/sh"):
        """Write an executable script at HOOKS/relative; ``body`` is dedented shell."""
        path = self.hooks / relative
        path.parent.mkdir(mode=0o755, exist_ok=True)
        path.parent.chmod(0o755)
        lines = [shebang] if shebang else []
        if header:
            lines.append(f"# hookrun: {header}")
        lines.append(textwrap.dedent(body).strip("\n"))
        path.write_text("\n".join(lines) + "\n")
        path.chmod(mode)
        return path

    def config(self, text):
        path = self.hooks / "hookrun.conf"
        path.write_text(textwrap.dedent(text))
        path.chmod(0o644)
        return path

    def events(self, *names):
        """Make the events ``names`` known to the tree (an empty pre-EVENT.d each): an event
        nothing knows is refused (design.md 10)."""
        for name in names:
            (self.hooks / f"pre-{name}.d").mkdir(mode=0o755, exist_ok=True)

    def mark(self, name):
        return self.marks / name

    def read(self, name):
        path = self.marks / name
        return path.read_text() if path.exists() else None

    def args(self, *extra):
        return ["-d", str(self.hooks), "--state-dir", str(self.state), *extra]


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path)


def pytest_collection_modifyitems(items):
    """The end-to-end tests first: they are the longest (real PostgreSQL, restic, pip and
    Prometheus), and started first they leave no worker running one alone at the end of a
    parallel run. Otherwise the order is the files'."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/e2e/"))


SYSTEM_PATHS = ("/etc/hookrun", "/var/lib/hookrun", "/etc/systemd/system/hookrun@.service")


@pytest.fixture(scope="session", autouse=True)
def system_paths_untouched():
    """No test may write hookrun's default directories of the machine it runs on: one that
    forgets --state-dir, or runs a README example outside its sandbox, fails the session."""
    before = {path: os.path.lexists(path) for path in SYSTEM_PATHS}
    yield
    created = [path for path, existed in before.items() if os.path.lexists(path) and not existed]
    assert not created, f"the tests wrote to the machine's own {', '.join(created)}"


def marker_hook(tree, relative, name=None, code=0, header=None, extra=""):
    """A hook that appends its phase/name to marks/order and exits ``code``."""
    name = name or relative.replace("/", "_")
    return tree.hook(relative, f"""
        echo "$HOOKRUN_PHASE/$HOOKRUN_HOOK" >> "{tree.marks}/order"
        {extra}
        exit {code}
        """, header=header)


def order(tree):
    text = tree.read("order")
    return text.split() if text else []


@pytest.fixture
def reaper():
    """Kill, at the end of the test, any pid the test registers."""
    pids = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def hookrun_main(capsys):
    """Run hookrun in-process through orchestrator.cli.main; returns (status, out, err)."""
    from orchestrator.cli import main

    def run(*argv):
        status = main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def installed_hookrun():
    """The installed ``hookrun`` command: the one pip put beside the interpreter running the
    tests, else the one on PATH (a version manager's shim there, such as pyenv's, would add a
    bash start-up of some 60 ms to each of the suite's hundreds of calls); None if none."""
    import shutil

    beside = os.path.join(os.path.dirname(sys.executable), "hookrun")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("hookrun")


def hookrun_cmd():
    """The installed command if there is one, else the module (same code)."""
    found = installed_hookrun()
    return [found] if found else [sys.executable, "-m", "orchestrator"]


def run_hookrun(*argv, env=None, timeout=120, **kwargs):
    """Run the ``hookrun`` command as a subprocess; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.pop("HOOKRUN_CLEANUP", None)
    full_env.update(env or {})
    return subprocess.run(hookrun_cmd() + list(argv), capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kwargs)


def show_last(tree, *extra):
    result = run_hookrun("show", "last", "--json", *tree.args(*extra))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def require(found, what, missing="is not installed"):
    """``found`` if it is truthy; else skip the test, or fail it under HOOKRUN_REQUIRE_TOOLS=1.
    ``missing`` says what is wrong with ``what`` (a probe that failed: "does not work here")."""
    if found:
        return found
    message = f"{what} {missing}"
    if os.environ.get("HOOKRUN_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message} (HOOKRUN_REQUIRE_TOOLS=1)")
    pytest.skip(message)


def needs_root(why):
    """Skip the test, saying so, unless it runs as root: ``why`` names what only root may do
    (mount, chown to another user, create an account). Never a failure, even under
    HOOKRUN_REQUIRE_TOOLS=1: the tools are there, the permission is not."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")


def make_unwritable_for_others(path):
    path.chmod(path.stat().st_mode & ~(stat.S_IWGRP | stat.S_IWOTH))


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records (path without the query, body) in ``requests``, the query in ``queries``."""

    requests = None
    queries = None
    delay = 0.0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay)
        path, _mark, query = self.path.partition("?")
        self.queries.append(query)
        self.requests.append((path, body.decode("utf-8", "replace")))
        try:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")
        except (BrokenPipeError, ConnectionResetError):
            pass  # hookrun gave up waiting, as the slow-server tests want it to

    do_GET = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def checker():
    """A healthchecks-style server on 127.0.0.1 recording (path, body) of each request."""
    handler = type("Handler", (Recorder,), {"requests": [], "queries": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/ping/abc"
    server.requests = handler.requests
    server.queries = handler.queries
    server.handler = handler
    yield server
    server.shutdown()
    server.server_close()
