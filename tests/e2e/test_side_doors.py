"""Side doors (design.md section 8): ways into root's hookrun other than the hooks tree and
the state directory. Each is attacked by the real second account; root's hookrun must run
none of its code, and still do its own work."""

import json
import os
import sqlite3
import stat
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
