"""debian/ agrees with the Python package: the version dpkg installs is the one
``hookrun --version`` prints, and the package depends on every runtime dependency. The
package itself is built, linted and installed by .ci/debian (not here: it writes /etc)."""

import configparser
import re
import subprocess
from pathlib import Path

from orchestrator import __version__
from tests.conftest import hookrun_cmd

TOP = Path(__file__).resolve().parents[2]
DEBIAN = TOP / "debian"


def changelog_version():
    """The version of the newest debian/changelog entry, as dpkg-parsechangelog reads it."""
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    match = re.match(r"hookrun \(([^()\s]+)\) ", first)
    assert match, first
    return match.group(1)


def test_the_package_version_is_hookruns_version():
    assert changelog_version() == __version__
    result = subprocess.run(hookrun_cmd() + ["--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == f"hookrun {changelog_version()}"


def test_the_package_depends_on_debians_package_of_every_runtime_dependency():
    config = configparser.ConfigParser()
    config.read(TOP / "setup.cfg")
    requires = config["options"]["install_requires"].split()
    control = (DEBIAN / "control").read_text()
    depends = re.search(r"^Depends:(.*?)(?=^\S)", control, re.M | re.S).group(1)
    names = {word.strip().split()[0] for word in depends.split(",") if word.strip()}
    assert {f"python3-{name}" for name in requires} <= names


def test_ci_builds_and_installs_the_package_after_the_tests():
    run = (TOP / ".ci" / "run").read_text()
    assert ".ci/debian" in run
    assert run.index("python -m pytest") < run.index(".ci/debian") < run.index("CI: passed")
