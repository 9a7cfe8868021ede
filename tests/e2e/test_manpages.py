"""The man pages: lint-clean, and complete with respect to the code.

(a) ``mandoc -Tlint -W warning`` prints nothing on hookrun(8) and hookrun(5);
(b) every subcommand of ``hookrun --help`` has a SYNOPSIS line in hookrun(8), and every
    option string that ``hookrun [SUB] --help`` prints appears in hookrun(8);
(c) every ``HOOKRUN_*`` variable named in the strings of orchestrator/*.py appears in
    hookrun(5).

The pages are compared as source, with roff escapes undone and mdoc ``Fl`` arguments given
their dash (``.Fl -hooks-dir`` reads as ``--hooks-dir``), so (b) and (c) need no mandoc.
"""

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import hookrun_cmd

ROOT = Path(__file__).resolve().parents[2]
MAN8 = ROOT / "man" / "hookrun.8"
MAN5 = ROOT / "man" / "hookrun.5"
PACKAGE = ROOT / "orchestrator"

# mdoc macros that may be called on a macro line: any of them ends the arguments of Fl.
MDOC_CALLABLE = frozenset({
    "Ac", "Ad", "An", "Ao", "Ap", "Aq", "Ar", "At", "Bc", "Bo", "Bq", "Brc", "Bro", "Brq",
    "Bsx", "Bx", "Cm", "Dc", "Do", "Dq", "Dv", "Dx", "Ec", "Em", "En", "Eo", "Er", "Es", "Ev",
    "Fa", "Fc", "Fl", "Fn", "Fo", "Fr", "Fx", "Ic", "Li", "Lk", "Ms", "No", "Ns", "Nm", "Nx",
    "Oc", "Oo", "Op", "Ox", "Pa", "Pc", "Pf", "Po", "Pq", "Qc", "Ql", "Qo", "Qq", "Sc", "So",
    "Sq", "Sx", "Sy", "Ta", "Tn", "Ux", "Va", "Vt", "Xc", "Xo", "Xr",
})
DELIMITERS = set(",;:.|()[]?!")
ROFF_ESCAPES = [(r"\-", "-"), (r"\&", ""), (r"\(aq", "'"), (r"\(dq", '"'), (r"\e", "\\"),
                (r"\(em", "--"), (r"\(en", "-"), (r"\ ", " ")]
FONT_ESCAPE = re.compile(r"\\f(?:\[[A-Z]*\]|\([A-Z]{2}|[A-Z1-4P])")
OPTION_IN_HELP = re.compile(r"(?:^|[\s,])(-{1,2}[A-Za-z][A-Za-z0-9-]*)")
SUBCOMMAND_IN_HELP = re.compile(r"^ {4}([a-z][a-z0-9-]*)(?: {2,}|$)")
VARIABLE = re.compile(r"HOOKRUN_[A-Z0-9_]*[A-Z0-9]")


# --- the page source, made comparable ----------------------------------------------------

def unescape(text):
    text = FONT_ESCAPE.sub("", text)
    for escape, plain in ROFF_ESCAPES:
        text = text.replace(escape, plain)
    return text


def expand_macro_line(line):
    """A macro line with the dash that mdoc's Fl adds written out: ``.It Fl d , Fl -config``
    becomes ``It Fl -d , Fl --config``. Other tokens are kept as they are."""
    tokens = line[1:].split()
    out, in_fl = [], False
    for position, token in enumerate(tokens):
        if position == 0 or token in MDOC_CALLABLE:
            in_fl = token == "Fl"
            out.append(token)
            if in_fl and position == len(tokens) - 1:
                out.append("-")  # a bare Fl is a lone dash
        elif in_fl and not set(token) <= DELIMITERS:
            out.append("-" + token)
        else:
            out.append(token)
    return " ".join(out)


def normalised(path):
    """The page source as comparable text, without comment lines."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith(('.\\"', "'\\\"", '.\\#')) or raw.strip() in (".", "'"):
            continue
        line = unescape(raw)
        if line.startswith((".", "'")):
            line = expand_macro_line(line)
        lines.append(line)
    return "\n".join(lines)


def section(text, name):
    """The lines of ``.Sh NAME`` (mdoc) or ``.SH NAME`` (man) up to the next section."""
    match = re.search(rf"^S[hH] \"?{re.escape(name)}\"?\s*$(.*?)(?=^S[hH] |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"no section {name}"
    return match.group(1)


def mentions(text, word):
    """``word`` appears as a whole token (an option, a variable name, ...)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# --- what the code offers ----------------------------------------------------------------

def help_text(*subcommand):
    env = dict(os.environ, COLUMNS="100", LC_ALL="C.UTF-8")
    env.pop("HOOKRUN_CLEANUP", None)
    result = subprocess.run(hookrun_cmd() + [*subcommand, "--help"], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def options_in_help(text):
    """Every ``-x`` and ``--long`` of the option lines of an argparse help text (the lines
    indented by two spaces; descriptions are indented further)."""
    found = set()
    for line in text.splitlines():
        if not line.startswith("  -"):
            continue
        names = re.split(r" {2,}", line.strip())[0]
        found.update(OPTION_IN_HELP.findall(names))
    return found


def subcommands_in_help(text):
    found = []
    for line in text.splitlines():
        match = SUBCOMMAND_IN_HELP.match(line)
        if match:
            found.append(match.group(1))
    return found


def variables_in_code():
    """``HOOKRUN_*`` names in the string literals (docstrings and f-strings included) of the
    package: the environment variables it reads or sets, not its Python identifiers."""
    found = set()
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(VARIABLE.findall(node.value))
    return found


@pytest.fixture(scope="module")
def page8():
    return normalised(MAN8)


@pytest.fixture(scope="module")
def page5():
    return normalised(MAN5)


@pytest.fixture(scope="module")
def top_help():
    return help_text()


# --- (a) lint ----------------------------------------------------------------------------

@pytest.mark.parametrize("page", [MAN8, MAN5], ids=lambda p: p.name)
def test_mandoc_lint_is_clean(page):
    mandoc = shutil.which("mandoc")
    if mandoc is None:
        if os.environ.get("HOOKRUN_REQUIRE_TOOLS") == "1":
            pytest.fail("mandoc is not installed and HOOKRUN_REQUIRE_TOOLS=1")
        pytest.skip("mandoc is not installed")
    assert page.stat().st_size > 0, f"{page} is empty"
    result = subprocess.run([mandoc, "-Tlint", "-W", "warning", str(page)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# A double quote in a macro line's argument ends or starts an argument: mandoc and groff both
# drop it, so ``.Ql ENTRYPOINT ["hookrun", "run"]`` renders as ["hookrun", run]. Inside
# macro lines a quote is written \(dq; only .Bl's -width and -column take quoted words.
QUOTED_ARGUMENTS = re.compile(r'^\.(?!Bl |\\")\S+ .*"', re.M)


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=lambda p: p.name)
def test_no_macro_line_holds_a_bare_double_quote(page):
    lines = [line for line in page.read_text().splitlines() if QUOTED_ARGUMENTS.match(line)]
    assert not lines, f"write \\(dq in these macro lines of {page.name}: {lines}"


@pytest.mark.parametrize("renderer", ["mandoc", "groff"])
def test_quoted_examples_render_with_their_quotes(renderer):
    program = shutil.which(renderer)
    if program is None:
        if os.environ.get("HOOKRUN_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{renderer} is not installed and HOOKRUN_REQUIRE_TOOLS=1")
        pytest.skip(f"{renderer} is not installed")
    argv = [program, "-Tutf8"] if renderer == "mandoc" else [program, "-mdoc", "-Tutf8",
                                                                "-rLL=200n"]
    shown = {}
    for page in (MAN8, MAN5):
        result = subprocess.run(argv + [str(page)], capture_output=True, timeout=60,
                                check=True, env={**os.environ, "MANWIDTH": "200"})
        text = re.sub(r".\x08", "", result.stdout.decode("utf-8", "replace"))
        shown[page.name] = " ".join(text.split())
    assert 'ENTRYPOINT ["hookrun", "run"]' in shown["hookrun.8"]
    assert '{"ok", "problems": [{"path", "what", "fix"}], "warnings": [...]}' \
        in shown["hookrun.8"].replace("‐ ", "").replace("- ", "-")
    assert 'Volume group "vg0" not found' in shown["hookrun.5"]


# --- (b) hookrun(8) against --help -------------------------------------------------------

def test_help_parsing_finds_something(top_help):
    subcommands = subcommands_in_help(top_help)
    assert {"run", "defer", "show"} <= set(subcommands), subcommands
    assert {"-h", "--help", "--version"} <= options_in_help(top_help)
    assert {"-d", "--hooks-dir", "--color", "--no-hooks"} <= options_in_help(help_text("run"))


def test_every_subcommand_has_a_synopsis(page8, top_help):
    synopsis = section(page8, "SYNOPSIS")
    missing = [sub for sub in subcommands_in_help(top_help)
               if not re.search(rf"(?:\bCm|\bNm|\bhookrun)\s+{re.escape(sub)}\b", synopsis)]
    assert not missing, f"subcommands without a SYNOPSIS line in hookrun(8): {missing}"
    assert mentions(synopsis, "--version")


def test_top_level_options_are_documented(page8, top_help):
    missing = sorted(o for o in options_in_help(top_help) if not mentions(page8, o))
    assert not missing, f"options of 'hookrun --help' missing from hookrun(8): {missing}"


def test_subcommand_options_are_documented(page8, top_help):
    missing = {}
    for subcommand in subcommands_in_help(top_help):
        options = options_in_help(help_text(subcommand))
        assert "--help" in options, f"no options parsed from 'hookrun {subcommand} --help'"
        absent = sorted(o for o in options if not mentions(page8, o))
        if absent:
            missing[subcommand] = absent
    assert not missing, f"options of 'hookrun SUB --help' missing from hookrun(8): {missing}"


# --- (c) hookrun(5) against the code -----------------------------------------------------

def test_every_hookrun_variable_is_documented(page5):
    variables = variables_in_code()
    assert {"HOOKRUN_ENV", "HOOKRUN_CLEANUP", "HOOKRUN_DIR"} <= variables, variables
    missing = sorted(v for v in variables if not mentions(page5, v))
    assert not missing, f"variables used in orchestrator/*.py missing from hookrun(5): {missing}"


def test_hook_sections_list_every_key_they_accept_and_say_that_run_warns_too(page5):
    """The [hook PHASE-DIR/NAME] subsection names every key such a section accepts
    (settings.HOOK_KEYS, in either spelling), and says that a section naming no file is a
    warning in ``hookrun run`` too (design section 10), not only in ``check``."""
    from orchestrator.plan.settings import HOOK_KEYS

    match = re.search(r"^Ss The \[hook PHASE-DIR/NAME\] sections\s*$(.*?)(?=^S[sh] )", page5,
                      re.MULTILINE | re.DOTALL)
    assert match, "no subsection 'The [hook PHASE-DIR/NAME] sections' in hookrun(5)"
    text = match.group(1)
    missing = sorted(key for key in HOOK_KEYS
                     if not (mentions(text, key) or mentions(text, key.replace("_", "-"))))
    assert not missing, f"[hook] keys missing from hookrun(5)'s [hook] subsection: {missing}"
    flat = " ".join(text.split())
    assert "names no file" in flat
    assert re.search(r"hookrun run\b", flat), "hookrun(5) must say that run warns too"


# --- the comparison itself ---------------------------------------------------------------

def test_normalisation_reads_mdoc_and_man_options():
    assert expand_macro_line(".It Fl d Ar dir , Fl -hooks-dir Ar dir") == \
        "It Fl -d Ar dir , Fl --hooks-dir Ar dir"
    assert expand_macro_line(".Fl h | -help") == "Fl -h | --help"
    assert expand_macro_line(".Op Fl -wait Ns Op = Ns Ar duration") == \
        "Op Fl --wait Ns Op = Ns Ar duration"
    assert unescape(r"\fB\-\-no\-hooks\fR") == "--no-hooks"
    assert mentions("Fl -h | --help", "-h") and not mentions("--hooks-dir", "-h")
