"""What the second account can do to root's metrics file from the directory it is written in
(design.md section 8, "Side doors"): swap names while root writes there, and hold a lock on it.
Each attack is made by a real unprivileged account."""

import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import require, run_hookrun, show_last
from tests.e2e.conftest import plant, user_env

ATTEMPTS = 400  # root's writes of the metrics file while the attacker races them
# The metrics lock is waited for METRICS_LOCK_WAIT (5 s): the run, that wait and slack.
LOCKED_RUN_BOUND = 30.0

# The attacker's loop: every temporary file of root's that appears in its directory is
# replaced at once by a symbolic link to root's secret, until the file "stop" appears.
SWAPPER = textwrap.dedent("""
    import os, sys
    directory, secret = sys.argv[1], sys.argv[2]
    swaps = 0
    while not os.path.exists(os.path.join(directory, "stop")):
        for name in os.listdir(directory):
            if name.startswith(".hookrun-"):
                path = os.path.join(directory, name)
                try:
                    os.unlink(path)
                    os.symlink(secret, path)
                    swaps += 1
                except OSError:
                    pass
    print(swaps)
""")

# Root's side: write the metrics file ATTEMPTS times, as a run's end does, putting back the
# file each time the attacker's link was renamed over it.
WRITER = textwrap.dedent("""
    import os, sys
    from orchestrator.report.metrics import write_metrics
    path, attempts = sys.argv[1], int(sys.argv[2])
    for _ in range(attempts):
        if os.path.islink(path):
            os.unlink(path)
        try:
            write_metrics(path, "backup", status="failure", exit_code=1, finished=1.0,
                          duration=1.0, last_success=None, tasks=[])
        except OSError:
            pass
""")


def setpriv(user, argv):
    return [require(shutil_which("setpriv"), "setpriv"), f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}", "--clear-groups", "--", *argv]


def shutil_which(name):
    import shutil

    return shutil.which(name)


@pytest.fixture
def secret(tmp_path):
    """A file only root may read: mode 0600 in a directory of root's."""
    path = tmp_path / "secret"
    path.write_text("root's secret\n")
    path.chmod(0o600)
    return path


def test_root_never_chmods_a_file_through_a_name_the_attacker_swaps(attacker, sticky_dir,
                                                                   secret):
    """In a metrics directory the attacker owns, each temporary file root creates is replaced
    by a link to root's secret as soon as it appears: the secret stays 0600."""
    directory = sticky_dir / "textfile"
    plant(attacker, 'mkdir -m 0755 "$1"', directory)
    python = "/usr/bin/python3"
    swapper = subprocess.Popen(setpriv(attacker, [python, "-c", SWAPPER, str(directory),
                                                  str(secret)]),
                               stdout=subprocess.PIPE, text=True, env=user_env(attacker))
    try:
        subprocess.run([sys.executable, "-c", WRITER, str(directory / "hookrun.prom"),
                        str(ATTEMPTS)], check=True, timeout=300)
    finally:
        plant(attacker, 'touch "$1/stop"', directory)
        swaps = int(swapper.communicate(timeout=60)[0])
    assert swaps > 0  # the race was run
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text() == "root's secret\n"


@pytest.mark.parametrize("locked", ["directory", "file", "both"])
def test_a_lock_held_by_another_user_does_not_keep_a_failed_run_showing_success(
        attacker, sticky_dir, tree, locked):
    """The attacker holds an flock on the metrics directory (root's, 0755: anyone may open it)
    or the file: a failing run ends in bounded time with its own status and exit code, and
    the file says it failed."""
    directory = sticky_dir / "textfile"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    metrics = directory / "hookrun.prom"
    tree.hook("pre-backup.d/10-x", "true")
    assert run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--",
                       "true").returncode == 0
    assert 'hookrun_last_run_status{event="backup",status="success"} 1' in metrics.read_text()
    flock = require(shutil_which("flock"), "flock")
    targets = {"directory": [directory], "file": [metrics], "both": [directory, metrics]}
    holders = [subprocess.Popen(setpriv(attacker, [flock, "-x", str(path), "sleep", "120"]),
                                env=user_env(attacker)) for path in targets[locked]]
    try:
        time.sleep(0.5)
        assert all(holder.poll() is None for holder in holders)  # the locks are held
        began = time.monotonic()
        result = run_hookrun("run", *tree.args("--metrics-file", str(metrics)), "--",
                             "sh", "-c", "exit 5", timeout=120)
        elapsed = time.monotonic() - began
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert elapsed < LOCKED_RUN_BOUND, (elapsed, result.stderr)
    assert result.returncode == 5, result.stderr
    record = show_last(tree)
    assert (record["status"], record["exit_code"]) == ("failure", 5)
    text = metrics.read_text()
    assert 'hookrun_last_run_status{event="backup",status="success"} 1' not in text
    assert 'hookrun_last_run_status{event="backup",status="failure"} 1' in text
    assert 'hookrun_last_run_exit_code{event="backup"} 5' in text
    assert os.stat(metrics).st_uid == 0
