"""The first hour, third pass (the project's issue 26), through the installed ``hookrun``:
fix advice that never harms, messages that say what is so, and each run's output kept
whatever another run prints. The README's own blocks are run by test_readme.py."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require, run_hookrun
from tests.e2e.conftest import ACCOUNTS_LOCK, as_user, locked, user_env

TIMEOUT = 120
ALICE = "hookrun-alice"
HOME_OF_ALICE = "/home/hookrun-alice"


@pytest.fixture(scope="session")
def alice(attacker):
    """A second unprivileged account that, unlike the attacker, has a home directory, as the
    users whose trees root is asked to run do: made once and kept, as the attacker is."""
    import pwd

    useradd = require(shutil.which("useradd"), "useradd")
    with locked(ACCOUNTS_LOCK):
        try:
            entry = pwd.getpwnam(ALICE)
        except KeyError:
            subprocess.run([useradd, "--system", "--user-group", "--create-home",
                            "--home-dir", HOME_OF_ALICE, "--shell", "/usr/sbin/nologin",
                            ALICE], check=True, timeout=TIMEOUT)
            entry = pwd.getpwnam(ALICE)
        if not os.path.isdir(entry.pw_dir):
            os.mkdir(entry.pw_dir, 0o750)
            os.chown(entry.pw_dir, entry.pw_uid, entry.pw_gid)
    return entry


@pytest.fixture
def alices_tree(alice):
    """A hooks tree of alice's in her home (two hooks), removed after the test."""
    base = Path(tempfile.mkdtemp(prefix="tree-", dir=alice.pw_dir))
    hooks = base / "hooks"
    for phase in ("pre-backup.d", "finally.d"):
        (hooks / phase).mkdir(parents=True)
        (hooks / phase / "10-x").write_text("#!/bin/sh\ntrue\n")
        (hooks / phase / "10-x").chmod(0o755)
    subprocess.run(["chmod", "-R", "go-w", str(base)], check=True, timeout=TIMEOUT)
    subprocess.run(["chown", "-R", f"{alice.pw_uid}:{alice.pw_gid}", str(base)], check=True,
                   timeout=TIMEOUT)
    yield hooks
    shutil.rmtree(base, ignore_errors=True)


# Item 5: fix advice never changes the owner of a home or system directory, and is said once.

def test_root_refusing_alices_tree_never_advises_a_chown_of_her_home(alice, alices_tree,
                                                                    tmp_path):
    home = alice.pw_dir
    for argv in (["run", "--state-dir", str(tmp_path / "state"), "--", "true"], ["check"]):
        result = run_hookrun(*argv[:1], "-d", str(alices_tree), *argv[1:])
        assert result.returncode == 77, result.stderr
        assert "Traceback" not in result.stderr
        assert f"chown root {home}" not in result.stderr
        assert f"chown -R root {home}" not in result.stderr
        assert "chown" not in result.stderr.replace("do not chown", ""), result.stderr
        advice = [line for line in result.stderr.splitlines() if "(fix:" in line]
        assert len(advice) == 1, result.stderr
        assert "tree of your own" in advice[0] and "--insecure" in advice[0]
        # Every path is still named, each once.
        assert result.stderr.count(f"{home} is owned by") == 1
        assert f"{alices_tree}/pre-backup.d/10-x is owned by" in result.stderr
    assert not (tmp_path / "state").exists() or not list((tmp_path / "state").glob("runs/*"))


def test_one_stray_file_of_another_user_still_gets_its_chown(tree, attacker):
    tree.hook("pre-backup.d/10-x", "true")
    os.chown(tree.hooks / "pre-backup.d" / "10-x", attacker.pw_uid, -1)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 77, result.stderr
    assert f"chown root {tree.hooks}/pre-backup.d/10-x" in result.stderr


def test_in_a_user_namespace_no_chown_of_the_system_directories(attacker, user_hookrun,
                                                                  sticky_dir):
    base = sticky_dir / "tree"
    script = 'mkdir -p "$1/pre-backup.d" && printf "#!/bin/sh\\ntrue\\n" > "$1/pre-backup.d/10-x"' \
        ' && chmod 755 "$1/pre-backup.d/10-x" && chmod -R go-w "$1"'
    result = as_user(attacker, ["/bin/sh", "-euc", script, "sh", str(base)])
    assert result.returncode == 0, result.stderr
    unshare = require(shutil.which("unshare"), "unshare")
    probe = as_user(attacker, [unshare, "-r", "true"])
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are off here: {probe.stderr.strip()}")
    result = as_user(attacker, [unshare, "-r", user_hookrun, "check", "-d", str(base)],
                     env=user_env(attacker, HOME=str(sticky_dir)))
    assert result.returncode == 77, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for system in ("/", "/usr", "/usr/bin", "/tmp"):
        assert f"chown root {system} " not in result.stderr + " ", result.stderr
        assert f"chown -R root {system} " not in result.stderr + " ", result.stderr
    advice = [line for line in result.stderr.splitlines() if "(fix:" in line]
    assert len(advice) == 1 and "outside the user namespace" in advice[0], result.stderr
