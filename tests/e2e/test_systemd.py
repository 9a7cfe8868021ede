"""orchestrator/contrib/systemd: the units that install-units writes pass ``systemd-analyze
verify`` and run a command line hookrun accepts.

``systemd-analyze verify`` works without systemd as PID 1 (as in a container): it loads the
given unit files with a manager of its own. It checks that ExecStart's program exists and is
executable, so it verifies the installed copy, with the real path of hookrun substituted.
``--man=no`` skips checking that the Documentation= man pages are installed on this machine
(tests/e2e/test_manpages.py checks the pages themselves).
"""

import configparser
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_hookrun
from tests.e2e import test_example_tree as example_tree
from tests.e2e.conftest import plant
from tests.e2e.test_example_tree import hookrun_path, require

UNITS = Path(__file__).resolve().parents[2] / "orchestrator" / "contrib" / "systemd"
INSTALL = UNITS / "install-units"
DEFAULT_KILL_GRACE = 10
# The environment systemd gives a system service without User=: a fixed PATH, no HOME.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

restic_repo = example_tree.restic_repo


def install_units(*args):
    return subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True,
                          timeout=60)


def verify(*paths):
    analyze = require(shutil.which("systemd-analyze"), "systemd-analyze (Debian package systemd)")
    return subprocess.run([analyze, "verify", "--man=no", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def unit_settings(path):
    """The unit file as {section: {key: value}} (each key of these units is set once)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return {name: dict(parser[name]) for name in parser.sections()}


@pytest.fixture
def installed(tmp_path):
    """The units as install-units writes them for the hookrun under test, in tmp_path."""
    result = install_units(hookrun_path(), str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_installed_units_pass_systemd_analyze_verify_without_a_word(installed):
    result = verify(installed / "hookrun@backup.service", installed / "hookrun@backup.timer")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_the_template_itself_fails_verify_until_its_placeholder_is_replaced(tmp_path):
    shutil.copy(UNITS / "hookrun@.service", tmp_path)
    result = verify(tmp_path / "hookrun@backup.service")
    assert result.returncode != 0 and "__HOOKRUN__" in result.stdout + result.stderr


def test_the_service_runs_the_installed_hookrun_for_the_event_named_by_the_instance(installed):
    service = unit_settings(installed / "hookrun@.service")["Service"]
    assert shlex.split(service["ExecStart"]) == [
        hookrun_path(), "run", "-e", "%i", "--trigger", "timer", "--",
        "/etc/hookrun/%i.command"]


def test_the_units_stop_gently_and_catch_up_on_missed_runs(installed):
    service = unit_settings(installed / "hookrun@.service")["Service"]
    timer = unit_settings(installed / "hookrun@.timer")["Timer"]
    assert service["Type"] == "oneshot" and service["KillMode"] == "mixed"
    assert service["IOSchedulingClass"] == "idle" and int(service["Nice"]) > 0
    assert service["TimeoutStopSec"].endswith("min")
    assert int(service["TimeoutStopSec"][:-3]) * 60 > 6 * DEFAULT_KILL_GRACE
    assert timer["Persistent"] == "true" and timer["RandomizedDelaySec"]


def test_the_services_command_line_is_one_hookrun_runs(installed, tree):
    """ExecStart as systemd would run it for the event "nightly", with /etc/hookrun moved to
    the test's hooks directory (the default hooks directory of root)."""
    command = tree.hooks / "nightly.command"
    command.write_text(f'#!/bin/sh\necho "$HOOKRUN_EVENT" > "{tree.mark("ran")}"\n')
    command.chmod(0o755)
    tree.hook("pre-nightly.d/10-first", f'touch "{tree.mark("pre")}"')
    line = unit_settings(installed / "hookrun@.service")["Service"]["ExecStart"]
    argv = shlex.split(line.replace("%i", "nightly").replace("/etc/hookrun", str(tree.hooks)))
    # Before the subcommand: after it, the option would be one of the command's arguments.
    result = run_hookrun("--state-dir", str(tree.state), *argv[1:],
                         env={"HOOKRUN_DIR": str(tree.hooks)})
    assert result.returncode == 0, result.stderr
    assert tree.read("ran") == "nightly\n" and tree.read("pre") is not None


def service_run(installed, tree, environment, repo):
    """hookrun@nightly.service's command line run with the environment systemd gives the
    service (``environment`` for its Environment= and CacheDirectory=), the event's command
    being a restic backup of the hooks directory."""
    tree.events("nightly")
    command = tree.hooks / "nightly.command"
    command.write_text(f'#!/bin/sh\nexec restic backup --quiet "{tree.hooks}"\n')
    command.chmod(0o755)
    line = unit_settings(installed / "hookrun@.service")["Service"]["ExecStart"]
    argv = shlex.split(line.replace("%i", "nightly").replace("/etc/hookrun", str(tree.hooks)))
    env = {"PATH": SYSTEMD_PATH, "HOOKRUN_DIR": str(tree.hooks), **environment,
           **{name: value for name, value in repo.items() if name != "RESTIC_CACHE_DIR"}}
    return subprocess.run([argv[0], "--state-dir", str(tree.state), *argv[1:]],
                          capture_output=True, text=True, env=env, timeout=300)


def test_the_service_gives_restic_a_home_for_its_cache(installed, tree, restic_repo):
    """systemd sets no HOME for a system service: restic then keeps no cache (and borg none).
    The unit's Environment= puts the caches in its CacheDirectory=; $CACHE_DIRECTORY, which is
    all that CacheDirectory= sets, is read by neither."""
    service = unit_settings(installed / "hookrun@.service")["Service"]
    cache_dir = "/var/cache/" + service["CacheDirectory"]
    environment = dict(pair.split("=", 1) for pair in shlex.split(service["Environment"]))
    assert environment["HOME"] == "/root"
    assert environment["XDG_CACHE_HOME"] == cache_dir
    assert environment["RESTIC_CACHE_DIR"].startswith(cache_dir + "/")
    assert service["CacheDirectoryMode"] == "0700"

    cache = tree.base / "cache"
    cache.mkdir()
    given = {name: value.replace(cache_dir, str(cache)) for name, value in environment.items()
             if name != "HOME"}
    given["CACHE_DIRECTORY"] = str(cache)
    result = service_run(installed, tree, given, restic_repo)
    assert result.returncode == 0, result.stderr
    assert "cache" not in result.stderr
    assert list((cache / "restic").iterdir()), "restic left no cache"

    # CacheDirectory= alone: restic runs without a cache.
    bare = tree.base / "bare-cache"
    bare.mkdir()
    result = service_run(installed, tree, {"CACHE_DIRECTORY": str(bare)}, restic_repo)
    assert result.returncode == 0 and "unable to open cache" in result.stderr, result.stderr
    assert not list(bare.iterdir())


def test_install_units_refuses_a_hookrun_it_cannot_put_in_execstart(tmp_path):
    spaced = tmp_path / "with space"
    spaced.mkdir()
    (spaced / "hookrun").write_text("#!/bin/sh\n")
    (spaced / "hookrun").chmod(0o755)
    for hookrun in ("hookrun", str(tmp_path / "missing"), str(spaced / "hookrun")):
        result = install_units(hookrun, str(tmp_path))
        assert result.returncode == 1 and result.stderr.startswith("install-units: ")
    assert not [name for name in os.listdir(tmp_path) if name.startswith("hookrun@")]


def test_install_units_is_shellcheck_clean():
    shellcheck = require(shutil.which("shellcheck"), "shellcheck")
    result = subprocess.run([shellcheck, "-s", "sh", str(INSTALL)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout


# install-units and another user (design.md section 8, "Directories that others can write")

EXIT_UNSAFE = 77


def units_in(directory):
    return sorted(name for name in os.listdir(directory) if "hookrun@" in name)


@pytest.mark.parametrize("whose", ["the attacker's file", "root's file in the attacker's "
                                   "directory", "root's file run by the attacker's interpreter"])
def test_install_units_refuses_a_hookrun_another_user_can_change(attacker, sticky_dir,
                                                                 tmp_path, whose):
    den = sticky_dir / "mallory"
    plant(attacker, 'mkdir -m 0755 "$1"; printf "#!/bin/sh\\nid -u > %s/ran\\n" "$1" '
                    '> "$1/hookrun"; chmod 755 "$1/hookrun"', den)
    hookrun = den / "hookrun"
    if whose == "root's file in the attacker's directory":
        hookrun = den / "roots-hookrun"
        hookrun.write_text("#!/bin/sh\nexit 0\n")
        hookrun.chmod(0o755)
    elif whose == "root's file run by the attacker's interpreter":
        hookrun = tmp_path / "hookrun"
        hookrun.write_text(f"#!{den / 'hookrun'}\n")
        hookrun.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    result = install_units(str(hookrun), str(units))
    assert result.returncode == EXIT_UNSAFE, result.stdout + result.stderr
    assert str(den) in result.stderr and result.stderr.startswith("install-units: ")
    assert units_in(units) == [] and not (den / "ran").exists()


def test_install_units_refuses_a_unit_directory_anyone_can_write_and_writes_through_nothing(
        attacker, sticky_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    units = sticky_dir / "units"
    units.mkdir()
    units.chmod(0o777)
    plant(attacker, 'for unit in hookrun@.service hookrun@.timer; do '
                    'ln -s "$2" "$1/.$unit.tmp"; done', units, victim)
    result = install_units(hookrun_path(), str(units))
    assert result.returncode == EXIT_UNSAFE, result.stdout + result.stderr
    assert f"{units} is writable by group or others" in result.stderr
    assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert units_in(units) == [".hookrun@.service.tmp", ".hookrun@.timer.tmp"]


def test_install_units_writes_into_a_sticky_directory_through_nothing_planted_there(
        attacker, sticky_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    plant(attacker, 'for unit in hookrun@.service hookrun@.timer; do '
                    'ln -s "$2" "$1/.$unit.tmp"; done; ln -s "$2" "$1/hookrun@.service"',
          sticky_dir, victim)
    result = install_units(hookrun_path(), str(sticky_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    for unit in ("hookrun@.service", "hookrun@.timer"):
        info = (sticky_dir / unit).lstat()
        assert stat.S_ISREG(info.st_mode) and info.st_uid == 0
        assert stat.S_IMODE(info.st_mode) == 0o644
        assert (sticky_dir / f".{unit}.tmp").is_symlink()
    assert hookrun_path() in (sticky_dir / "hookrun@.service").read_text()
    assert units_in(sticky_dir) == [".hookrun@.service.tmp", ".hookrun@.timer.tmp",
                                    "hookrun@.service", "hookrun@.timer"]


def test_install_units_works_where_the_package_installs_it_away_from_the_python_code(tmp_path):
    shared = tmp_path / "share" / "hookrun" / "systemd"
    shared.mkdir(parents=True)
    for name in ("hookrun@.service", "hookrun@.timer", "install-units"):
        shutil.copy(UNITS / name, shared)
    # A python3 that has no hookrun installed (the tests' own has, in editable mode).
    result = subprocess.run(["sh", str(shared / "install-units"), hookrun_path(),
                             str(tmp_path)], capture_output=True, text=True, timeout=60,
                            cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert units_in(tmp_path) == ["hookrun@.service", "hookrun@.timer"]
