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


def test_the_package_ships_every_example_the_readme_points_to():
    """dh_installexamples installs what debian/hookrun.examples lists (globs expanded): every
    file of hooks.d.example/ and examples/ (the systemd and cron examples of
    examples/README.md, the trees of examples/migrations/) is among them."""
    readme = (TOP / "README.md").read_text()
    assert "examples/README.md" in readme and "examples/migrations/" in readme
    listed = [line.strip() for line in (DEBIAN / "hookrun.examples").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    shipped = {path for line in listed for path in TOP.glob(line)}
    files = [path for top in ("hooks.d.example", "examples")
             for path in (TOP / top).rglob("*") if path.is_file()]
    assert files
    missing = [str(path.relative_to(TOP)) for path in files
               if not shipped & ({path} | set(path.parents))]
    assert missing == []
