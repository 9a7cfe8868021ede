"""The README's promises about CI and packaging hold."""

import configparser
import re
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


def test_pyproject_holds_only_the_build_system():
    text = (TOP / "pyproject.toml").read_text()
    assert re.findall(r"^\[(.+)\]", text, re.M) == ["build-system"]


def test_every_data_file_to_install_exists():
    config = configparser.ConfigParser()
    config.read(TOP / "setup.cfg")
    for _target, files in config["options.data_files"].items():
        for name in files.split():
            assert (TOP / name).is_file(), name
