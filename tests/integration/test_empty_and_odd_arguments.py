"""Empty is not a value, and any input gets a usage error rather than an internal one (design.md
section 8, "Side doors"), through the installed command: an empty --state-dir, -e, -d or -c,
and an empty state_dir or path in hookrun.conf, never silently mean the current directory or
the default; Unicode digits and bytes that are not UTF-8 in numbers and run ids are usage
errors (2), one line, no traceback. An empty --log-file or --metrics-file still means none."""

import os

import pytest

from tests.conftest import run_hookrun, show_last

USAGE = 2
CONFIG = 78
NOT_UTF8 = os.fsdecode(b"\xff")  # the argument the command line gets from $'\xff'


def one_clear_line(result, status):
    """``result`` exited ``status`` with one line on stderr and no traceback."""
    assert result.returncode == status, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hookrun: "), result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def recorded(tree):
    """A tree whose pre- hook leaves a mark, with one run recorded."""
    tree.hook("pre-backup.d/10-mark", f'echo x >> "{tree.marks}/ran"')
    first = run_hookrun("run", *tree.args(), "--", "true")
    assert first.returncode == 0, first.stderr
    assert tree.read("ran") == "x\n"
    return tree


@pytest.mark.parametrize("value", ["²", "٣", "1" + "0" * 5000, NOT_UTF8, "-1", ""])
def test_history_n_takes_ascii_digits_only(recorded, value):
    for argv in (["-n", value], [f"-n={value}"]):
        result = run_hookrun("history", *argv, *recorded.args())
        one_clear_line(result, USAGE)
        assert result.stdout == ""
    assert len(run_hookrun("history", "-n", "1", *recorded.args()).stdout.splitlines()) == 2


@pytest.mark.parametrize("run_id", [NOT_UTF8, "20261207T162922-" + NOT_UTF8, ""])
def test_show_of_a_run_id_that_is_empty_or_not_utf8_is_a_usage_error(recorded, run_id):
    result = run_hookrun("show", run_id, *recorded.args())
    one_clear_line(result, USAGE)
    assert result.stdout == ""


def test_show_of_an_unknown_run_id_is_still_not_found(recorded):
    one_clear_line(run_hookrun("show", "nope", *recorded.args()), 1)
    assert show_last(recorded)["status"] == "success"


def test_an_empty_output_of_show_is_a_usage_error(recorded):
    for argv in (["--output", ""], ["--output="]):
        result = run_hookrun("show", "last", *argv, *recorded.args())
        one_clear_line(result, USAGE)
        assert result.stdout == ""


@pytest.mark.parametrize("argv", [["--state-dir", ""], ["--state-dir="], ["-e", ""],
                                  ["--event="], ["-d", ""], ["-c", ""], ["--config="]],
                         ids=["state-dir", "state-dir=", "e", "event=", "d", "c", "config="])
def test_an_empty_option_that_would_mean_a_default_is_a_usage_error(tree, argv, tmp_path):
    tree.hook("pre-backup.d/10-mark", f'touch "{tree.marks}/ran"')
    here = tmp_path / "cwd"
    here.mkdir()
    # The tree's own options come first: the empty one given after them is the one that counts.
    result = run_hookrun("run", *tree.args(), *argv, "--", "true", cwd=here)
    one_clear_line(result, USAGE)
    assert tree.read("ran") is None, "nothing runs"
    assert list(here.iterdir()) == [], "nothing is written to the current directory"
    assert not tree.state.exists()


@pytest.mark.parametrize("subcommand", [["list"], ["check"], ["history"], ["show", "last"],
                                        ["recover"], ["phase", "pre-backup"]])
def test_every_subcommand_refuses_an_empty_event_and_state_dir(recorded, subcommand):
    here = recorded.base / "cwd"
    here.mkdir()
    for empty in (["-e", ""], ["--state-dir", ""]):
        result = run_hookrun(*subcommand, *recorded.args(), *empty, cwd=here)
        one_clear_line(result, USAGE)
    assert recorded.read("ran") == "x\n"
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("lines", [["state_dir ="], ["state_dir=   "], ["STATE_DIR", "path ="]],
                         ids=["state_dir", "state_dir-spaces", "path"])
def test_an_empty_state_dir_or_path_in_the_config_is_a_config_error(tree, lines, tmp_path):
    tree.hook("pre-backup.d/10-mark", f'touch "{tree.marks}/ran"')
    lines = [f"state_dir = {tree.state}" if line == "STATE_DIR" else line for line in lines]
    config = tree.config("\n".join(["[hookrun]"] + lines) + "\n")
    here = tmp_path / "cwd"
    here.mkdir()
    result = run_hookrun("run", "-d", str(tree.hooks), "--", "true", cwd=here)
    message = one_clear_line(result, CONFIG)
    assert f"{config}:{len(lines) + 1}:" in message
    assert tree.read("ran") is None
    assert list(here.iterdir()) == []


def test_an_empty_log_file_and_metrics_file_still_mean_none(tree):
    tree.hook("pre-backup.d/10-mark", f'touch "{tree.marks}/ran"')
    result = run_hookrun("run", *tree.args("--log-file", "", "--metrics-file", ""),
                         "--", "true")
    assert result.returncode == 0, result.stderr
    assert tree.read("ran") == ""
    assert not (tree.state / "hookrun.log").exists()
    assert show_last(tree)["status"] == "success"


def test_an_empty_log_file_in_the_config_still_means_none(tree):
    tree.config(f"[hookrun]\nstate_dir = {tree.state}\nlog_file =\nmetrics_file =\n")
    result = run_hookrun("run", "-d", str(tree.hooks), "--", "true")
    assert result.returncode == 0, result.stderr
    assert not (tree.state / "hookrun.log").exists()
    assert show_last(tree)["status"] == "success"


def test_an_empty_command_name_is_a_usage_error_before_any_hook_runs(tree):
    tree.hook("pre-backup.d/10-mark", f'touch "{tree.marks}/ran"')
    result = run_hookrun("run", *tree.args(), "--", "", "arg")
    one_clear_line(result, USAGE)
    assert tree.read("ran") is None
    assert not tree.state.exists()


def test_deferring_an_empty_command_name_fails_in_the_hook_not_at_the_wind_down(tree):
    tree.hook("pre-backup.d/10-defer", f"""
        hookrun defer '' x
        echo "$?" > "{tree.marks}/status"
        hookrun defer touch "{tree.marks}/cleaned"
        """)
    result = run_hookrun("run", *tree.args(), "--", "true")
    assert result.returncode == 0, result.stderr
    assert tree.read("status") == f"{USAGE}\n"
    assert tree.read("cleaned") == ""
    record = show_last(tree)
    assert record["status"] == "success"
    assert [(t["phase"], t["status"]) for t in record["tasks"]] == [
        ("pre", "ok"), ("command", "ok"), ("cleanup", "ok")]


def test_a_url_that_is_not_ascii_is_refused_before_the_run(tree):
    tree.hook("pre-backup.d/10-mark", f'touch "{tree.marks}/ran"')
    result = run_hookrun("run", *tree.args("--notify-url", "http://127.0.0.1:9/" + NOT_UTF8),
                         "--", "true")
    one_clear_line(result, USAGE)
    assert tree.read("ran") is None


@pytest.mark.parametrize("value", ["²", "٣"])
def test_unicode_digits_in_retries_are_a_config_error_naming_file_and_line(tree, value):
    hook = tree.hook("pre-backup.d/10-mark", f'touch "{tree.marks}/ran"',
                     header=f"retries={value}")
    result = run_hookrun("run", *tree.args(), "--", "true")
    message = one_clear_line(result, CONFIG)
    assert f"{hook}:2:" in message and "bad retries" in message
    assert tree.read("ran") is None


def test_a_newline_typed_on_the_command_line_stays_in_its_one_line(recorded, tmp_path):
    """design.md section 8: a name or argument with a newline cannot forge a line. Each value
    below used to split its error in two, the second a forged ``hookrun: ...`` line."""
    forged = "x\nhookrun: all is well"
    message = one_clear_line(run_hookrun("phase", "pre-backup", "--only", forged,
                                         *recorded.args("--log-file", "")), USAGE)
    assert "x\\x0ahookrun: all is well" in message
    message = one_clear_line(run_hookrun("show", "last", "--output", forged,
                                         *recorded.args()), 1)
    assert "x\\x0ahookrun: all is well" in message
    config = tmp_path / forged
    config.write_text("[hookrun]\nbogus = 1\n")
    message = one_clear_line(run_hookrun("list", *recorded.args("-c", str(config))), CONFIG)
    assert "x\\x0ahookrun: all is well" in message and "bogus" in message


def test_a_hook_named_with_a_newline_and_a_bad_header_is_one_config_line(tree):
    hook = tree.hook("pre-backup.d/10-x\nhookrun: all is well", f'touch "{tree.marks}/ran"',
                     header="retries=many")
    result = run_hookrun("run", *tree.args(), "--", "true")
    message = one_clear_line(result, CONFIG)
    assert "10-x\\x0ahookrun: all is well" in message and "bad retries" in message, hook
    assert tree.read("ran") is None
