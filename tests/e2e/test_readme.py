"""The README's examples, run as written: every ```sh block that a ``<!-- test: ... -->``
line marks, taken from README.md and examples/README.md themselves, so an example that
breaks fails CI.

Marks: ``root`` runs the block as root in a sandbox, a mount namespace where /etc and
/var/lib are overlays (what the block writes there vanishes with it), with a real PostgreSQL
server and restic repository configured as the README's prose says (the ``[env]`` section of
/etc/hookrun/hookrun.conf, the repository and password files in /etc/restic), never through
the shell's environment; ``anyone`` runs it unconfigured, as root and as a real unprivileged
account, each in a copy of the checkout that is its home; ``quickstart`` runs it in a copy of
the checkout with a virtualenv's pip first on PATH; ``hook PHASE-DIR/NAME`` installs the block
as that hook. A file's ``anyone`` and ``root`` blocks run in order, as a reader pastes them:
in ONE shell (``set -eu``), so what a block exports (``HOOKRUN_DIR``) reaches every later one
unless the README itself unsets it; as root all of them, in one sandbox; as the second account
its ``anyone`` blocks. No block run in one shell may ``exit``: pasted, it would close the
reader's shell.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import installed_hookrun, needs_root, require
from tests.e2e.conftest import as_user, user_env
from tests.e2e.test_example_tree import hermetic_env, pg_connection, psql

ROOT = Path(__file__).resolve().parents[2]
READMES = {"README.md": ROOT / "README.md",
           "examples/README.md": ROOT / "examples" / "README.md"}
MARKED_BLOCK = re.compile(r"<!-- test: ([^>]*?) -->\n```sh\n(.*?)```", re.S)
TIMEOUT = 600
SANDBOX = r"""
set -eu
base=$1; shift
for top in etc var/lib; do
    mkdir -p "$base/upper/$top" "$base/work/$top"
    options="lowerdir=/$top,upperdir=$base/upper/$top,workdir=$base/work/$top"
    mount -t overlay overlay -o "$options" "/$top"
done
exec sh -c "$ONE_SHELL" one-shell "$@"
"""
# The blocks, one after the other in one shell, as a reader pastes them; -e and -u make a
# failed or mistyped line stop it, and the last line proves that no block ended the shell.
ONE_SHELL = r"""
set -eu
number=0
trap 'echo "=== stopped in block $number" >&2' EXIT
for block in "$@"; do
    number=$((number + 1))
    echo "=== block $number"
    eval "$block"
done
trap - EXIT
echo "=== all $number blocks ran"
"""
# What the README's prose asks of the reader after the example tree is in /etc/hookrun:
# "Set the databases and the repository in the [env] section of /etc/hookrun/hookrun.conf".
CONFIGURE = r"""
mkdir -p /etc/restic
printf '%s\n' "$README_RESTIC_REPOSITORY" > /etc/restic/repository
install -m 0600 "$README_RESTIC_PASSWORD_FILE" /etc/restic/password
printf '%s\n' "RESTIC_REPOSITORY_FILE = /etc/restic/repository" \
    "RESTIC_PASSWORD_FILE = /etc/restic/password" "PGHOST = $README_PGHOST" \
    "PGPORT = $README_PGPORT" "PGUSER = $README_PGUSER" "PGDATABASE = readme" > "$HOME/env"
sed -i "/^\[env\]\$/r $HOME/env" /etc/hookrun/hookrun.conf
"""
INSTALLS_THE_TREE = "cp -a hooks.d.example/. /etc/hookrun/"


def marked_blocks(name):
    """[(marks, code)] of the blocks marked to run in the README ``name``."""
    return [(marks.split(), code) for marks, code in
            MARKED_BLOCK.findall(READMES[name].read_text(encoding="utf-8"))]


def pasted(name, marks):
    """The blocks of README ``name`` with one of ``marks``, in order, as one shell runs them;
    after the block that installs the example tree in /etc/hookrun, the configuration its
    prose asks for. No block may leave the shell."""
    blocks = []
    for block_marks, code in marked_blocks(name):
        if set(block_marks) & set(marks):
            assert not re.search(r"(^|[;&|]\s*)exit\b", code, re.M), \
                f"{name}: a pasted block must not exit the reader's shell:\n{code}"
            blocks.append(code)
            if INSTALLS_THE_TREE in code:
                blocks.append(CONFIGURE)
    return blocks


def copy_of_checkout(target):
    """The files git tracks, copied to ``target`` (as a fresh clone has them)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True, timeout=60).stdout.split(b"\0")
    for name in filter(None, listed):
        source, copy = ROOT / os.fsdecode(name), target / os.fsdecode(name)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy, follow_symlinks=False)
    subprocess.run(["chmod", "-R", "go-w", str(target)], check=True, timeout=60)
    return target


@pytest.fixture
def workspace():
    """A directory of the test's own, outside root's 0700 temporary ones."""
    path = Path(tempfile.mkdtemp(prefix="hookrun-readme-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def restic_env(base, template):
    """A restic repository of the test's own in ``base``: a copy of the session's template,
    whose initialisation costs seconds of CPU."""
    shutil.copytree(template["RESTIC_REPOSITORY"], base / "repo")
    password = base / "restic-password"
    shutil.copy2(template["RESTIC_PASSWORD_FILE"], password)
    return {"RESTIC_REPOSITORY": str(base / "repo"), "RESTIC_PASSWORD_FILE": str(password)}


def hookrun_bin():
    found = installed_hookrun()
    assert found, "the hookrun command is not installed (pip install '.[test]')"
    return os.path.dirname(found)


def in_sandbox(blocks, env, cwd, workspace):
    """Run ``blocks`` in order as root in a mount namespace whose /etc and /var/lib are
    overlays kept in ``workspace``; the CompletedProcess (text)."""
    require(shutil.which("unshare"), "unshare")
    needs_root("unshare --mount (/etc and /var/lib as overlays)")
    overlay = Path(tempfile.mkdtemp(prefix="overlay-", dir=workspace))
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           SANDBOX, "sandbox", str(overlay), *blocks],
                          cwd=cwd, env={**env, "ONE_SHELL": ONE_SHELL}, capture_output=True,
                          text=True, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def as_root():
    """Skips, saying so, before the servers start, a test whose blocks need root."""
    needs_root("unshare --mount (/etc and /var/lib as overlays)")


@pytest.mark.parametrize("readme", sorted(READMES))
def test_the_root_examples_run_as_written_in_one_shell(as_root, readme, workspace, postgres,
                                                        restic_template):
    blocks = pasted(readme, ("root", "anyone"))
    assert any(INSTALLS_THE_TREE in block for block in blocks), readme
    psql(postgres, "postgres", "DROP DATABASE IF EXISTS readme")
    psql(postgres, "postgres", "CREATE DATABASE readme")
    psql(postgres, "readme", "CREATE TABLE notes (body text); INSERT INTO notes "
                             "VALUES ('backed up from the README')")
    checkout = copy_of_checkout(workspace / "checkout")
    home = workspace / "home"
    home.mkdir(mode=0o700)
    repository = restic_env(workspace, restic_template)
    env = {**hermetic_env(extra_path=hookrun_bin()), "HOME": str(home),
           **{f"README_{name}": value for name, value in
              {**pg_connection(postgres), **repository}.items()}}
    result = in_sandbox(blocks, env, checkout, workspace)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"=== all {len(blocks)} blocks ran" in result.stdout
    assert "Traceback" not in result.stderr
    env.update(repository)
    # The tree in /etc backed up the dump its hook wrote: the commands name the staging
    # directory, and 10-verify checked it.
    found = subprocess.run(["restic", "find", "postgres-readme.dump"],
                           env={**hermetic_env(), **env}, capture_output=True, text=True,
                           timeout=120).stdout
    assert "/var/lib/hookrun/staging/postgres-readme.dump" in found, found
    if readme == "README.md":
        # The wrapper's restic backup found the repository: three snapshots of the
        # staging directory (the run, the wrapper, --no-hooks), each after a dump.
        snapshots = subprocess.run(["restic", "snapshots", "--json"], env={**hermetic_env(),
                                   **env}, capture_output=True, text=True, timeout=120).stdout
        assert len(json.loads(snapshots)) == 3, snapshots


@pytest.mark.parametrize("readme", sorted(READMES))
def test_the_user_examples_run_as_written_for_root_and_for_an_ordinary_user(
        readme, workspace, attacker, user_hookrun):
    blocks = pasted(readme, ("anyone",))
    assert blocks, f"{readme} has no block marked to run as anyone"
    root_copy = copy_of_checkout(workspace / "root")
    env = {**hermetic_env(extra_path=hookrun_bin()), "HOME": str(root_copy)}
    # In the sandbox: as root, hookrun keeps its state in /var/lib/hookrun.
    result = in_sandbox(blocks, env, root_copy, workspace)
    assert result.returncode == 0, result.stdout + result.stderr

    user_copy = copy_of_checkout(workspace / "user")
    subprocess.run(["chown", "-R", f"{attacker.pw_uid}:{attacker.pw_gid}", str(user_copy)],
                   check=True, timeout=60)
    venv_bin = os.path.dirname(user_hookrun)
    result = as_user(attacker, ["/bin/sh", "-c", ONE_SHELL, "one-shell", *blocks],
                     cwd=str(user_copy), env=user_env(attacker, HOME=str(user_copy),
                                                      PATH=f"{venv_bin}:/usr/bin:/bin"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"=== all {len(blocks)} blocks ran" in result.stdout
    for home in (root_copy, user_copy):
        backups = [home / "backup.tar.gz", home / ".demo" / "backup.tar.gz"]
        assert any(path.exists() and path.stat().st_size > 0 for path in backups)


def test_the_quick_start_installs_and_runs_the_example_tree(workspace):
    (block,) = [code for marks, code in marked_blocks("README.md") if "quickstart" in marks]
    checkout = copy_of_checkout(workspace / "checkout")
    venv = workspace / "venv"
    # A fresh virtualenv with a pip of its own: pip put in by this Python's pip, uncompiled
    # (ensurepip would spend five seconds of CPU compiling a pip that runs once).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=TIMEOUT)
    subprocess.run([sys.executable, "-m", "pip", "-q", "--python", str(venv / "bin" / "python"),
                    "install", "--no-compile", "pip"], check=True, timeout=TIMEOUT)
    env = {**hermetic_env(), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    result = subprocess.run(["sh", "-eu", "-c", block], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "run success, exit 0" in result.stdout
    listing = subprocess.run(["tar", "-tzf", str(checkout / ".demo" / "backup.tar.gz")],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    assert ".demo/state/staging/" in listing and "hooks.d.example/hookrun.conf" in listing
    man_page = venv / "share" / "man" / "man8" / "hookrun.8"
    assert man_page.exists(), "pip install . installs the man pages"


def test_the_cleanup_example_brings_the_container_back_whatever_the_path(workspace):
    ((marks, block),) = [(m, code) for m, code in marked_blocks("README.md") if m[0] == "hook"]
    hooks = workspace / "hooks"
    hook = hooks / marks[1]
    hook.parent.mkdir(parents=True)
    hook.write_text(block)
    hook.chmod(0o755)
    # No docker engine runs here: a stand-in for the docker client records its calls.
    stand_in = workspace / "bin"
    stand_in.mkdir()
    (stand_in / "docker").write_text(f'#!/bin/sh\necho "$*" >> "{workspace}/docker-calls"\n')
    (stand_in / "docker").chmod(0o755)
    hookrun = installed_hookrun()
    env = {"PATH": f"{stand_in}:/usr/bin:/bin", "HOME": str(workspace)}
    assert not shutil.which("hookrun", path=env["PATH"])
    result = subprocess.run([hookrun, "run", "-d", str(hooks), "--state-dir",
                             str(workspace / "state"), "--", "false"], env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1, result.stderr
    assert (workspace / "docker-calls").read_text() == "stop webapp\nstart webapp\n"
    record = json.loads(subprocess.run(
        [hookrun, "show", "last", "--json", "--state-dir", str(workspace / "state")],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    assert [(t["phase"], t["name"], t["status"]) for t in record["tasks"]][-1] == \
        ("cleanup", "docker start webapp", "ok")


def test_the_30_second_example_fails_fast_and_says_so_without_syslog(workspace, attacker,
                                                                      user_hookrun):
    """With no syslog (/dev/log) to hear it, the alert still reaches stderr; and a dump that
    cannot be written fails the run in seconds, not after minutes of retries."""
    (block,) = [code for marks, code in marked_blocks("README.md")
                if "anyone" in marks and "HOOKRUN_DIR" in code]
    user_copy = copy_of_checkout(workspace / "user")
    subprocess.run(["chown", "-R", f"{attacker.pw_uid}:{attacker.pw_gid}", str(user_copy)],
                   check=True, timeout=60)
    env = user_env(attacker, HOME=str(user_copy),
                   PATH=f"{os.path.dirname(user_hookrun)}:/usr/bin:/bin")
    breaks_the_dump = 'chmod a-w "$HOME/dumps" "$HOME/dumps/os-release"\n' \
        'started=$(date +%s)\n' \
        'if hookrun run -- tar -czf ~/backup.tar.gz -C ~ dumps; then exit 1; fi\n' \
        'echo "took $(($(date +%s) - started))s"\n'
    result = as_user(attacker, ["/bin/sh", "-c", ONE_SHELL, "one-shell", block,
                                breaks_the_dump], cwd=str(user_copy), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "=== all 2 blocks ran" in result.stdout
    assert "backup failed: " in result.stderr, result.stderr
    took = int(re.search(r"took (\d+)s", result.stdout).group(1))
    assert took < 30, result.stdout
