"""The first hour, third pass (the project's issue 26), through the installed ``hookrun``:
fix advice that never harms, messages that say what is so, and each run's output kept
whatever another run prints. The README's own blocks are run by test_readme.py."""

import json
import os
import re
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


# Item 6: messages that say what is so.

def test_history_of_a_state_directory_you_cannot_read_says_permission_denied(
        attacker, user_hookrun, tree):
    tree.hook("pre-backup.d/10-x", "true")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    tree.state.chmod(0o700)  # root's, as hookrun makes it
    result = as_user(attacker, [user_hookrun, "history", "--state-dir", str(tree.state)],
                     env=user_env(attacker, HOME="/nonexistent"))
    assert result.returncode == 1, result.stderr
    assert "permission denied" in result.stderr and "no history yet" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_show_output_of_a_task_that_is_not_there_lists_the_tasks_there_are(tree):
    tree.hook("pre-backup.d/10-dump", "echo dumped")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0
    result = run_hookrun("show", "last", "--output", "pre/10-dmp", *tree.args())
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "pre/10-dump" in result.stderr and "command/true" in result.stderr
    shown = run_hookrun("show", "last", "--output", "pre/10-dump", *tree.args())
    assert shown.returncode == 0 and "dumped" in shown.stdout


def test_a_timeout_says_the_limit(tree):
    tree.hook("pre-backup.d/10-slow", "sleep 30", header="timeout=1s")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 69, result.stderr
    record = json.loads(run_hookrun("show", "last", "--json", *tree.args()).stdout)
    (task,) = [t for t in record["tasks"] if t["name"] == "10-slow"]
    assert task["status"] == "timeout" and task["reason"] == "timed out after 1s", task
    assert "timed out after 1s" in result.stdout + result.stderr


@pytest.mark.parametrize("quoted", ['"a b"', "'secret'"])
def test_a_quoted_env_value_is_warned_about_and_not_shown(tree, quoted):
    tree.hook("pre-backup.d/10-x", f'printf %s "$PW" > "{tree.marks}/seen"')
    tree.config(f"[env]\nPW = {quoted}\n")
    for argv in (["run", *tree.args(), "--", "true"], ["check", *tree.args()]):
        result = run_hookrun(*argv)
        assert result.returncode == 0, result.stderr
        warned = [line for line in result.stderr.splitlines() if "[env] PW" in line]
        assert len(warned) == 1 and "quotes" in warned[0], result.stderr
        assert quoted not in result.stderr
    # Kept literally, as documented: the warning changes nothing of the value.
    assert tree.read("seen") == quoted


def test_install_units_as_an_ordinary_user_is_one_line_and_77(attacker, user_hookrun):
    contrib = Path(__file__).resolve().parents[2] / "orchestrator" / "contrib" / "systemd"
    copy = Path(tempfile.mkdtemp(prefix="install-units-"))
    try:
        copy.chmod(0o755)
        for name in ("install-units", "hookrun@.service", "hookrun@.timer"):
            shutil.copy2(contrib / name, copy / name)
        units = copy / "system"  # root's, as /etc/systemd/system is
        units.mkdir(mode=0o755)
        result = as_user(attacker, ["/bin/sh", str(copy / "install-units"), user_hookrun,
                                    str(units)], env=user_env(attacker, PATH="/usr/bin:/bin"))
        assert list(units.iterdir()) == []
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    assert result.returncode == 77, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and "run it as root" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_say_subcommand_not_command():
    result = run_hookrun("bogus")
    assert result.returncode == 2 and "argument SUBCOMMAND" in result.stderr
    assert "COMMAND:" not in result.stderr.replace("SUBCOMMAND", "")


@pytest.mark.parametrize("typed", ["--dryrun", "--dry", "--dry_run"])
def test_an_unknown_or_abbreviated_option_is_refused_with_a_suggestion(tree, typed):
    tree.hook("pre-backup.d/10-x", f'touch "{tree.marks}/ran"')
    result = run_hookrun("run", typed, *tree.args(), "--", "true")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "did you mean --dry-run?" in result.stderr
    assert tree.read("ran") is None
    assert not tree.state.exists() or not list(tree.state.glob("runs/*"))


# Item 4: a noisy night keeps every earlier night's output.

NOISY = 'head -c 30000000 /dev/zero | tr "\\0" x | fold -w 99\necho "the last line"'


def test_a_noisy_hook_never_rotates_an_earlier_runs_output_away(tree):
    tree.hook("pre-backup.d/10-quiet", 'echo "quiet night $HOOKRUN_RUN_ID"')
    assert run_hookrun("run", "-q", *tree.args(), "--", "true").returncode == 0
    first = json.loads(run_hookrun("show", "last", "--json", *tree.args()).stdout)["id"]
    tree.hook("pre-backup.d/20-noisy", NOISY)
    tree.config("[hookrun]\nlog_task_max_bytes = 1M\n")
    for _night in range(2):  # 60 MB of output: every log file, uncapped
        noisy = run_hookrun("run", "-q", *tree.args(), "--", "true")
        assert noisy.returncode == 0, noisy.stderr
    shown = run_hookrun("show", first, "--output", "pre/10-quiet", *tree.args())
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"quiet night {first}\n"
    # The noisy run: its log says what it left out, its history keeps the last lines.
    log = (tree.state / "hookrun.log").read_bytes()
    assert b"pre/20-noisy output truncated after 1048576 bytes" in log
    assert b"pre/20-noisy output truncated, " in log and b" bytes more" in log
    assert not (tree.state / "hookrun.log.1").exists()
    record = json.loads(run_hookrun("show", "last", "--json", *tree.args()).stdout)
    (task,) = [t for t in record["tasks"] if t["name"] == "20-noisy"]
    assert task["status"] == "ok" and task["output"].endswith("the last line")
    logged = run_hookrun("show", "last", "--output", "pre/20-noisy", *tree.args()).stdout
    assert 1_000_000 < len(logged) <= 1_048_576 and "the last line" not in logged


def test_log_task_max_bytes_takes_sizes_and_refuses_others(tree):
    tree.hook("pre-backup.d/10-x", "true")
    tree.config("[hookrun]\nlog_task_max_bytes = lots\n")
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 78 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "log_task_max_bytes" in result.stderr
    tree.config("[hookrun]\nlog_task_max_bytes = 0\n")
    assert run_hookrun("run", *tree.args(), "--", "true").returncode == 0


# Item 7: the example tree is a hooks tree only, and its config names every [hook] key.

EXAMPLE = Path(__file__).resolve().parents[2] / "hooks.d.example"


def test_the_example_tree_holds_a_hooks_tree_and_nothing_else(tmp_path):
    extra = [entry.name for entry in EXAMPLE.iterdir()
             if entry.name not in ("hookrun.conf", ".hookignore")
             and not (entry.is_dir() and entry.name.endswith(".d"))]
    assert extra == [], f"cp -a hooks.d.example/. /etc/hookrun/ would copy {extra}"
    copy = tmp_path / "etc-hookrun"
    subprocess.run(["cp", "-a", f"{EXAMPLE}/.", str(copy)], check=True, timeout=TIMEOUT)
    subprocess.run(["chmod", "-R", "go-w", str(copy)], check=True, timeout=TIMEOUT)
    result = run_hookrun("check", "-d", str(copy))
    assert result.returncode == 0, result.stderr
    assert "names no file" not in result.stderr and "looks like" not in result.stderr


def test_the_example_config_names_every_hook_key():
    from orchestrator.plan.settings import HOOK_KEYS

    text = (EXAMPLE / "hookrun.conf").read_text()
    comment = text[text.index("# Settings of one hook"):]
    comment = " ".join(comment.replace("#", " ").split()).replace("-", "_")
    missing = [key for key in HOOK_KEYS if key not in comment]
    assert not missing, f"hooks.d.example/hookrun.conf does not name the [hook] keys {missing}"


def test_every_install_units_path_the_docs_give_exists():
    root = EXAMPLE.parent
    named = {}
    for doc in [root / "README.md", root / "examples" / "README.md",
                *(root / "orchestrator" / "contrib").rglob("*")]:
        if doc.is_file():
            for path in re.findall(r"\bsh (\S*install-units)\b", doc.read_text()):
                named.setdefault(path, doc.name)
    assert named, "no doc names install-units"
    wrong = {path: doc for path, doc in named.items() if not (root / path).is_file()}
    assert not wrong, f"paths of install-units that do not exist (from the checkout): {wrong}"
