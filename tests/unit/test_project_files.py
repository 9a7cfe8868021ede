"""The README's promises about CI, packaging and the benchmarks hold."""

import configparser
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def readme_commands():
    text = (TOP / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", quick, re.S)


def test_the_quick_start_has_exactly_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert "hooks.d.example" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readmes_test_command_verbatim():
    assert readme_commands()[1] in (TOP / ".ci" / "run").read_text()


def test_runtime_dependencies_are_exactly_the_three_allowed():
    config = configparser.ConfigParser()
    config.read(TOP / "setup.cfg")
    requires = config["options"]["install_requires"].split()
    assert sorted(requires) == ["colorama", "pathspec", "psutil"]
    (script,) = config["options"]["scripts"].split()
    assert (TOP / script).read_text().startswith("#!python\n")
    assert "from orchestrator.cli import command" in (TOP / script).read_text()


def test_pyproject_holds_the_build_system_and_the_lint_settings_only():
    """The metadata stays in setup.cfg; pyproject.toml has the build system and the settings
    of the tools that read only it (ruff, mypy), which .ci/run uses as they are."""
    text = (TOP / "pyproject.toml").read_text()
    assert re.findall(r"^\[(.+)\]", text, re.M) == ["build-system", "tool.ruff",
                                                     "tool.ruff.lint", "tool.mypy"]
    ci = (TOP / ".ci" / "run").read_text()
    assert "ruff check orchestrator tests" in ci and "--select" not in ci
    assert re.search(r"^mypy$", ci, re.M), "CI runs mypy with pyproject.toml's settings"
    assert re.search(r"^strict = true$", text, re.M)


def test_every_data_file_to_install_exists():
    config = configparser.ConfigParser()
    config.read(TOP / "setup.cfg")
    for _target, files in config["options.data_files"].items():
        for name in files.split():
            assert (TOP / name).is_file(), name


def test_the_benchmarks_floor_runs_hooks_in_order_and_stops_at_the_first_failure(tmp_path):
    """The floor bench.py sets beside hookrun really runs the hooks, logs and records them:
    a floor that skipped work would flatter every ratio to it."""
    hooks = tmp_path / "pre-backup.d"
    hooks.mkdir()
    order = tmp_path / "order"
    for name, status in (("10-a", 0), ("20-b", 3), ("30-c", 0)):
        script = hooks / name
        script.write_text(f"#!/bin/sh\necho {name} >> '{order}'\necho out; echo err >&2\n"
                          f"exit {status}\n")
        script.chmod(0o755)
    (hooks / "40-not-executable").write_text("#!/bin/sh\nexit 9\n")
    log, db = tmp_path / "floor.log", tmp_path / "floor.db"
    floor = TOP / "tests" / "benchmarks" / "floor.py"
    result = subprocess.run([sys.executable, str(floor), str(hooks), str(log), str(db)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert order.read_text() == "10-a\n20-b\n"
    assert [line.split(" ", 1)[1] for line in log.read_text().splitlines()] == [
        "b'10-a' end exit=0", "b'20-b' end exit=3"]
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT name, exit FROM tasks").fetchall()
    connection.close()
    assert rows == [(b"10-a", 0), (b"20-b", 3)]
