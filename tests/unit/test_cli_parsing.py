"""Argument handling that must not swallow the command's own arguments."""

import pytest

from orchestrator.cli import build_parser, main, prepare, strip_separator


def test_a_bare_wait_before_the_command_waits_for_ever():
    assert prepare(["run", "--wait", "restic", "backup"]) == \
        ["run", "--wait=inf", "restic", "backup"]


def test_wait_inside_the_command_is_left_alone():
    assert prepare(["run", "-e", "x", "cmd", "--wait"]) == ["run", "-e", "x", "cmd", "--wait"]
    assert prepare(["run", "--", "cmd", "--wait"]) == ["run", "--", "cmd", "--wait"]


def test_command_options_after_the_command_belong_to_the_command():
    args = build_parser().parse_args(["run", "-e", "prune", "restic", "forget", "-d", "x"])
    assert args.event == "prune"
    assert args.command == ["restic", "forget", "-d", "x"]
    args = build_parser().parse_args(["run", "--", "ls", "-l"])
    assert strip_separator(args.command) == ["ls", "-l"]


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["run", "--color", "pink"],
                                  ["history", "-n", "many"], ["show"]])
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.startswith("hookrun ")
