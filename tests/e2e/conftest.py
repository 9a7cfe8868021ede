"""A real second user for the security tests: an unprivileged account that plants files
where root's hookrun will look, and that runs hookrun itself from a virtualenv made with
Debian's /usr/bin/python3 (an interpreter under root's 0700 home is out of its reach)."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
ATTACKER = "hookrun-mallory"
SYSTEM_PYTHON = "/usr/bin/python3"
TIMEOUT = 120


@pytest.fixture(scope="session")
def attacker():
    """The pwd entry of an unprivileged account, created if missing (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("the security tests create a second user: run them as root")
    try:
        return pwd.getpwnam(ATTACKER)
    except KeyError:
        pass
    useradd = require(shutil.which("useradd"), "useradd")
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
def user_hookrun(attacker):
    """The path of a ``hookrun`` command the second user can run: this checkout installed
    into a virtualenv of Debian's Python, in a directory made for the session."""
    require(os.access(SYSTEM_PYTHON, os.X_OK) and SYSTEM_PYTHON, "Debian's python3")
    base = Path(tempfile.mkdtemp(prefix="hookrun-user-venv-"))
    base.chmod(0o755)
    venv = base / "venv"
    try:
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=TIMEOUT,
                       capture_output=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)],
                       check=True, timeout=600, capture_output=True)
        yield str(venv / "bin" / "hookrun")
    finally:
        shutil.rmtree(base, ignore_errors=True)
