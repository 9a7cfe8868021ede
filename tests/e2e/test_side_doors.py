"""Side doors (design.md section 8): ways into root's hookrun other than the hooks tree and
the state directory. Each is attacked by the real second account; root's hookrun must run
none of its code, and still do its own work."""

import json
import os
import subprocess

import pytest

from tests.conftest import run_hookrun
from tests.e2e.conftest import plant

EXIT_UNSAFE = 77
# A PATH without hookrun in it: the hooks reach "hookrun defer" through the run's own copy.
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Modules that hookrun imports when a hook calls "hookrun defer", one of them loaded by
# every Python at start-up where site-packages needs it (types), one never (fcntl).
PLANTED_MODULES = ("types", "fcntl", "errno", "shlex")


def plant_modules(attacker, place, mark):
    """The attacker's directory ``place``, whose Python modules append their name to
    ``mark`` when imported."""
    code = f"open({str(mark)!r}, 'a').write(__name__ + '\\n')"
    plant(attacker, 'd=$1; code=$2; shift 2; mkdir -m 0755 "$d"; '
                    'for name; do printf "%s\\n" "$code" > "$d/$name.py"; done',
          place, code, *PLANTED_MODULES)


# 1. No code from the working directory

@pytest.mark.parametrize("how", ["the hook changes into it", "hookrun starts in it"])
def test_hookrun_defer_never_imports_a_module_from_a_directory_another_user_writes(
        attacker, sticky_dir, tree, how):
    place, mark = sticky_dir / "mallory", sticky_dir / "imported"
    plant_modules(attacker, place, mark)
    change = f'cd "{place}" || exit 9\n' if how == "the hook changes into it" else ""
    tree.hook("pre-backup.d/10-defer", f"""
        {change}hookrun defer touch "{tree.mark('cleaned')}"
        """)
    result = run_hookrun("run", *tree.args(), "--", "true", env={"PATH": PLAIN_PATH},
                         cwd=place if how == "hookrun starts in it" else None)
    assert not mark.exists(), mark.read_text()
    assert result.returncode == 0, result.stderr
    assert tree.read("cleaned") == ""
    shown = run_hookrun("show", "last", "--json", *tree.args())
    assert json.loads(shown.stdout)["status"] == "success"


# 2. Root via recover: a config another user wrote never reaches a recovery

def crashed_run(state, line):
    """A root state directory holding a run that died with the cleanup ``line`` pending."""
    assert run_hookrun("run", "--no-hooks", "--state-dir", str(state), "--", "true").returncode \
        == 0
    run_dir = state / "runs" / "20200101T000000-abcdef"
    run_dir.mkdir(mode=0o700)
    (run_dir / "owner.lock").write_bytes(b"")
    (run_dir / "cleanup").write_text(line + "\n")
    (run_dir / "cleanup").chmod(0o600)
    return run_dir


def fake_docker(directory, mark):
    """A ``docker`` in ``directory`` that writes who ran it into ``mark``."""
    return f'mkdir -m 0755 "{directory}"; printf "#!/bin/sh\\nid -u >> {mark}\\n" ' \
           f'> "{directory}/docker"; chmod 755 "{directory}/docker"'


@pytest.mark.parametrize("how", ["0666 config in root's tree", "-c a file of the attacker's",
                                 "HOOKRUN_DIR of the attacker's"])
def test_recover_never_replays_roots_cleanups_with_a_path_another_user_wrote(
        attacker, sticky_dir, tmp_path, how):
    state, mark = tmp_path / "state", sticky_dir / "pwned"
    run_dir = crashed_run(state, "docker start webapp")
    evil = sticky_dir / "mallory-bin"
    plant(attacker, fake_docker(evil, mark))
    text = f"[hookrun]\\npath = {evil}:/usr/bin:/bin\\nstrict_permissions = no\\n"
    # Where the attacker can reach root's config: below the sticky directory.
    hooks, env = sticky_dir / "hooks", {}
    hooks.mkdir(mode=0o755)
    if how == "0666 config in root's tree":
        (hooks / "hookrun.conf").write_text("[hookrun]\ntimeout = 1m\n")
        (hooks / "hookrun.conf").chmod(0o666)
        plant(attacker, 'printf "$2" > "$1"', hooks / "hookrun.conf", text)
        argv = ["-d", str(hooks)]
    elif how == "-c a file of the attacker's":
        plant(attacker, 'printf "$2" > "$1"', sticky_dir / "hookrun.conf", text)
        argv = ["-d", str(hooks), "-c", str(sticky_dir / "hookrun.conf")]
    else:
        plant(attacker, 'mkdir -m 0755 "$1"; printf "$2" > "$1/hookrun.conf"',
              sticky_dir / "mallory-hooks", text)
        argv, env = [], {"HOOKRUN_DIR": str(sticky_dir / "mallory-hooks")}
    for command in ("recover", "run"):
        result = run_hookrun(command, *argv, "--state-dir", str(state), "--", "true",
                             env=env) if command == "run" else \
            run_hookrun(command, *argv, "--state-dir", str(state), env=env)
        assert result.returncode == EXIT_UNSAFE, (command, result.stderr)
        assert "hookrun.conf" in result.stderr and "Traceback" not in result.stderr
    assert not mark.exists(), mark.read_text()
    assert (run_dir / "cleanup").exists()
    # Root's own config, safe: the same recovery runs root's own docker.
    own = tmp_path / "bin"
    plant_root = fake_docker(own, tmp_path / "own-docker")
    assert subprocess.run(["/bin/sh", "-c", plant_root], timeout=60).returncode == 0
    (hooks / "hookrun.conf").write_text(f"[hookrun]\npath = {own}:/usr/bin:/bin\n")
    (hooks / "hookrun.conf").chmod(0o644)
    result = run_hookrun("recover", "-d", str(hooks), "--state-dir", str(state),
                         env={"HOOKRUN_DIR": ""})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "own-docker").read_text() == "0\n" and not mark.exists()
    assert not run_dir.exists()


# 7. Every command hookrun runs is trusted like a hook

def test_an_event_command_others_can_write_and_a_notify_command_of_another_user_are_refused(
        attacker, sticky_dir):
    # Root's tree, where the attacker can reach a file that anyone may write.
    base, marks = sticky_dir / "root", sticky_dir / "marks"
    hooks = base / "hooks"
    (hooks / "pre-backup.d").mkdir(parents=True)
    base.chmod(0o755)
    marks.mkdir(mode=0o1777)
    marks.chmod(0o1777)
    (hooks / "pre-backup.d" / "10-pre").write_text(f"#!/bin/sh\ntouch {marks}/pre\n")
    (hooks / "pre-backup.d" / "10-pre").chmod(0o755)
    command = hooks / "backup.command"
    command.write_text("#!/bin/sh\nexec true\n")
    command.chmod(0o777)
    notifier = sticky_dir / "mallory" / "notify"
    plant(attacker, 'mkdir -m 0755 "$1"; printf "#!/bin/sh\\nid -u > %s/notified\\n" "$3" '
                    '> "$2"; chmod 755 "$2"', notifier.parent, notifier, marks)
    (hooks / "hookrun.conf").write_text(f"[hookrun]\nnotify_command = {notifier} --all\n")
    # What a 0777 command is to the attacker: a script that root will run.
    plant(attacker, 'printf "#!/bin/sh\\nid -u > %s/command\\n" "$2" > "$1"', command, marks)
    args = ["--state-dir", str(base / "state")]
    env = {"HOOKRUN_DIR": str(hooks)}
    for extra in ([], ["--no-hooks"]):
        result = run_hookrun("run", *args, *extra, "--", str(command), env=env)
        assert result.returncode == EXIT_UNSAFE, (extra, result.stderr)
        assert str(command) in result.stderr and str(notifier) in result.stderr
    check = run_hookrun("check", *args, env=env)
    assert check.returncode == EXIT_UNSAFE, check.stderr
    assert f"{command} is writable by group or others" in check.stderr
    assert f"{notifier} is owned by uid {attacker.pw_uid}" in check.stderr
    assert sorted(os.listdir(marks)) == []
    # The same commands made root's own and safe: the run runs both.
    command.chmod(0o755)
    own = base / "notify"
    own.write_text(notifier.read_text())
    own.chmod(0o755)
    (hooks / "hookrun.conf").write_text(f"[hookrun]\nnotify_command = {own}\n")
    assert run_hookrun("check", *args, env=env).returncode == 0
    result = run_hookrun("run", *args, "--", str(command), env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(marks)) == ["command", "notified", "pre"]
