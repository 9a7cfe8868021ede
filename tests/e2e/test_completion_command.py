"""``hookrun completion bash``: the installed hookrun prints the completion script (package
data, also in a virtualenv), and what it prints completes in a plain bash, one without
bash-completion's helpers, as the README tells a virtualenv user to use it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import hookrun_cmd, run_hookrun
from tests.e2e.test_completion import bash
from tests.e2e.test_manpages import help_text, subcommands_in_help

ROOT = Path(__file__).resolve().parents[2]
COMPLETION = ROOT / "orchestrator" / "contrib" / "completion" / "hookrun"
# A bash that reads no start-up file: no bash-completion (no _init_completion, no
# __load_completion), as on a machine without it. It loads the printed script as the README
# says, checks that no helper of bash-completion is there, then completes the words given.
PLAIN_BASH = r'''
hookrun=$1; shift
eval "$("$hookrun" completion bash)" || exit 3
for helper in _init_completion _get_comp_words_by_ref __load_completion _filedir; do
    if type "$helper" >/dev/null 2>&1; then echo "bash-completion helper $helper"; exit 4; fi
done
complete -p hookrun
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_hookrun
printf '%s\n' "${COMPREPLY[@]}"
'''


def plain_bash(*words):
    """What the printed script offers for ``words`` in a bash without start-up files."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "LC_ALL": "C"}
    result = subprocess.run([bash(), "--norc", "--noprofile", "-c", PLAIN_BASH, "bash",
                             hookrun_cmd()[0] if len(hookrun_cmd()) == 1 else "hookrun",
                             *words], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "complete -F _hookrun hookrun"
    return [line for line in lines[1:] if line]


def test_completion_bash_prints_the_completion_script_byte_for_byte():
    result = subprocess.run(hookrun_cmd() + ["completion", "bash"], capture_output=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == b""
    assert result.stdout == COMPLETION.read_bytes()


def test_the_printed_script_completes_in_plain_bash_without_bash_completion(tree):
    assert plain_bash("hookrun", "") == subcommands_in_help(help_text())
    assert plain_bash("hookrun", "completion", "") == ["bash"]
    assert plain_bash("hookrun", "completion", "-") == ["-h", "--help"]
    (tree.hooks / "pre-nightly.d").mkdir()
    assert plain_bash("hookrun", "run", "-d", str(tree.hooks), "-e", "n") == ["nightly"]


def test_a_shell_other_than_bash_is_a_usage_error_in_one_line():
    for argv in (("completion", "zsh"), ("completion",), ("completion", "bash", "extra")):
        result = run_hookrun(*argv)
        assert result.returncode == 2, argv
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("hookrun: ") and "Traceback" not in result.stderr
    assert "invalid choice: 'zsh'" in run_hookrun("completion", "zsh").stderr


def test_an_installation_without_the_script_says_so_in_one_line(tmp_path):
    """A copy of the package without its data (as a broken install would be): exit 1 and one
    line naming the file, no traceback."""
    shutil.copytree(ROOT / "orchestrator", tmp_path / "orchestrator",
                    ignore=shutil.ignore_patterns("__pycache__", "contrib"))
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from orchestrator.cli import command; command()")
    result = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path), "completion",
                             "bash"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("hookrun: completion: cannot read ")
    assert str(tmp_path / "orchestrator" / "contrib" / "completion" / "hookrun") in result.stderr
    assert len(result.stderr.splitlines()) == 1
