"""Argument handling that must not swallow the command's own arguments."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.cli import SUBCOMMANDS, build_parser, main, parse, prepare
from orchestrator.commands import strip_separator
from orchestrator.errors import UsageError


def argv_of(argv):
    return prepare(argv)[1]


def test_a_bare_wait_before_the_command_waits_for_ever():
    assert argv_of(["run", "--wait", "restic", "backup"]) == \
        ["run", "--wait=inf", "restic", "backup"]


@pytest.mark.parametrize("spelling", [["--wait", "1s"], ["--wait=1s"]])
def test_wait_with_a_duration_takes_it_either_way(spelling):
    args = build_parser().parse_args(argv_of(["run", *spelling, "--", "true"]))
    assert args.wait == "1s" and strip_separator(args.command) == ["true"]


@pytest.mark.parametrize("spelling", [["--wait", "1s"], ["--wait=1s"]])
def test_wait_with_a_duration_before_the_subcommand_takes_it_either_way(spelling):
    args = build_parser().parse_args(argv_of([*spelling, "run", "--", "true"]))
    assert args.wait == "1s" and strip_separator(args.command) == ["true"]


def test_a_bare_wait_before_the_subcommand_waits_for_ever():
    args = build_parser().parse_args(argv_of(["--wait", "run", "restic", "backup"]))
    assert args.wait == "inf" and args.command == ["restic", "backup"]


def test_wait_inside_the_command_is_left_alone():
    assert argv_of(["run", "-e", "x", "cmd", "--wait"]) == ["run", "-e", "x", "cmd", "--wait"]
    assert argv_of(["run", "--", "cmd", "--wait"]) == ["run", "--", "cmd", "--wait"]


def test_options_may_come_before_the_subcommand():
    assert argv_of(["-d", "DIR", "-q", "run", "--", "true"]) == \
        ["run", "-d", "DIR", "-q", "--", "true"]
    args = build_parser().parse_args(argv_of(["--state-dir=S", "history", "-n", "3"]))
    assert (args.state_dir, args.n) == ("S", 3)


def test_debug_among_the_commands_arguments_is_the_commands():
    assert prepare(["run", "--", "tool", "--debug"])[2] is False
    assert prepare(["run", "tool", "--debug"])[2] is False
    assert prepare(["--debug", "run", "tool"])[2] is True
    assert prepare(["run", "--debug", "tool"])[2] is True


def test_command_options_after_the_command_belong_to_the_command():
    args = build_parser().parse_args(["run", "-e", "prune", "restic", "forget", "-d", "x"])
    assert args.event == "prune"
    assert args.command == ["restic", "forget", "-d", "x"]
    args = build_parser().parse_args(["run", "--", "ls", "-l"])
    assert strip_separator(args.command) == ["ls", "-l"]


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["run", "--color", "pink"],
                                  ["history", "-n", "many"], ["history", "-n", "-1"], ["show"],
                                  ["run", "--no-hooks"], ["-d", "x", "defer", "true"]])
def test_usage_errors_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_version(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--version"])
    assert raised.value.code == 0
    assert capsys.readouterr().out.startswith("hookrun ")


ORDINARY = [["run", "--", "true"], ["-d", "x", "run", "--wait", "1s", "restic", "b"],
            ["history", "-n", "3", "--json"], ["show", "last", "--output", "pre-backup/10-x"],
            ["phase", "pre-backup", "--status", "failure"], ["defer", "--", "rm", "-f", "x"],
            ["list", "--all"], ["run", "--color=never", "--log-file", "", "true"],
            ["--state-dir=S", "recover", "-q"], ["check", "-v", "--insecure", "-e", "prune"]]


@pytest.mark.parametrize("argv", ORDINARY)
def test_an_ordinary_command_line_is_read_without_argparse(argv):
    sub, prepared, _debug = prepare(argv)
    args = parse(prepared)
    assert args is not None
    assert vars(args) == vars(build_parser(only=sub).parse_args(prepared))


FLAGS = sorted({flag for _help, options, _pos in SUBCOMMANDS.values()
                for flags, _kw in options for flag in flags})
TOKENS = st.sampled_from(FLAGS + list(SUBCOMMANDS) + [
    "--", "-", "x", "-x", "3", "-1", "1s", "never", "pink", "failure", "", "last", "=", "-h",
    "--hooks", "--stat", "--event=-x", "--json=1", "--color=always", "-dX", "-qv", "restic"])


COMMAND_LINES = st.one_of(
    st.lists(TOKENS, max_size=8),
    st.tuples(st.sampled_from(list(SUBCOMMANDS)), st.lists(TOKENS, max_size=6)).map(
        lambda pair: [pair[0], *pair[1]]))


@settings(max_examples=800, deadline=None)
@given(argv=COMMAND_LINES)
@example(argv=["run", "-", "-q"])
@example(argv=["run", "-", "--debug"])
def test_whatever_the_fast_parser_reads_argparse_reads_the_same(argv):
    """The fast parser either declines (argparse then decides) or agrees with argparse."""
    try:
        sub, prepared, _debug = prepare(argv)
    except UsageError:
        return
    args = parse(prepared)
    if args is not None:
        assert vars(build_parser(only=sub).parse_args(prepared)) == vars(args)
