"""What hooks and the command are given: their environment (design.md section 2) and the
``HOOKRUN_ENV`` hand-off of values from one hook to everything after it (TaskEnvironment)."""

from __future__ import annotations

import os

from orchestrator import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from orchestrator.plan.context import Context
    from orchestrator.report.output import Reporter
    from orchestrator.state.statedir import RunDir

    # A task's environment, given its attempt and its cookie.
    EnvFunction = Callable[[int, str], dict[str, str]]

MAX_HANDOFF_FILE = 1 << 20  # a larger HOOKRUN_ENV file is ignored, with a warning
# Linux refuses to execute a program one of whose environment strings is longer than this
# (MAX_ARG_STRLEN): such a value would make every later hook fail, blamed on the hook.
MAX_VALUE = 128 * 1024 - 1


def base_environment(config_env: Mapping[str, str], path: str | None) -> dict[str, str]:
    """hookrun's own environment plus config ``[env]`` and the ``path`` setting."""
    env = dict(os.environ)
    env.update(config_env)
    if path:
        env["PATH"] = path
    return env


def parse_handoff(data: bytes, path_fixed: bool = False) -> tuple[dict[str, str], list[str]]:
    """``NAME=value`` lines written to ``$HOOKRUN_ENV`` -> (values, warnings).

    Names must match [A-Za-z_][A-Za-z0-9_]*; HOOKRUN_* names, malformed lines and values too
    long for an environment are warned about and ignored, as is PATH when ``path_fixed`` (the
    config's ``path`` setting decides it). A warning names the line by its number, never its
    text, which may hold a secret. Blank lines are ignored; a value may contain '='.
    """
    values: dict[str, str] = {}
    warnings: list[str] = []
    text = data.decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not c.is_env_name(name):
            warnings.append(f"line {number}: not NAME=value, ignored")
        elif name.startswith("HOOKRUN_"):
            warnings.append(f"line {number}: {name}: HOOKRUN_* names cannot be handed on")
        elif "\0" in value:
            warnings.append(f"line {number}: {name}: value holds a NUL byte, ignored")
        elif len(line.encode("utf-8", "surrogateescape")) > MAX_VALUE:
            warnings.append(f"line {number}: {name}: value longer than {MAX_VALUE} bytes, "
                            "ignored")
        elif name == "PATH" and path_fixed:
            warnings.append(f"line {number}: PATH: not handed on, since the config's 'path' "
                            "setting fixes it")
        else:
            values[name] = value
    return values, warnings


def read_handoff(path: str, path_fixed: bool = False) -> tuple[dict[str, str], list[str]]:

    """parse_handoff of the file at ``path`` (missing, unreadable or not a regular file:
    nothing; larger than MAX_HANDOFF_FILE: nothing, and a warning)."""
    from orchestrator.files import open_regular

    try:
        fd = open_regular(path, os.O_RDONLY)
    except OSError:
        return {}, []
    try:
        size = os.fstat(fd).st_size
        if size > MAX_HANDOFF_FILE:
            return {}, [f"is {size} bytes, over {MAX_HANDOFF_FILE >> 20} MiB: ignored"]
        return parse_handoff(os.read(fd, MAX_HANDOFF_FILE), path_fixed)
    except OSError:
        return {}, []
    finally:
        os.close(fd)


class TaskEnvironment:
    """The environment of a run's tasks, and the ``HOOKRUN_ENV`` hand-off between them: what
    every hook is given (hookrun's environment, config ``[env]``, what earlier hooks handed
    on, the run's own variables, those the lifecycle adds from post- on), each hook's own
    variables, the command's environment, and the reading of each hook's hand-off file.
    ``reporter`` is told what a hand-off warns of or notes."""

    def __init__(self, ctx: Context, reporter: Reporter, run_id: str, run_dir: RunDir,
                 journal_path: str, command: Sequence[str], own_bin: str) -> None:
        from orchestrator import shell

        self.reporter = reporter
        self.run_id = run_id
        self.event = ctx.event
        self.path_fixed = bool(ctx.path)
        self.own_bin = own_bin
        self.env_file = run_dir.file(c.RUN_ENV_FILE)
        self.stats_file = run_dir.file(c.RUN_STATS_FILE)
        self.base = base_environment(ctx.config.env, ctx.path)
        self.handoff: dict[str, str] = {}
        self.later_env: dict[str, str] = {}
        self.fixed: dict[str, str] = {
            "HOOKRUN_EVENT": ctx.event, "HOOKRUN_RUN_ID": run_id,
            "HOOKRUN_HOOKS_DIR": os.path.abspath(ctx.hooks_dir),
            "HOOKRUN_STATE_DIR": os.path.abspath(ctx.state_dir),
            "HOOKRUN_CLEANUP": journal_path, "HOOKRUN_ENV": self.env_file,
            "HOOKRUN_COMMAND": shell.join(command) if command else "",
            "HOOKRUN_PREVIOUS_RUN_ID": "", "HOOKRUN_PREVIOUS_STATUS": "",
            "HOOKRUN_TRIGGER": ctx.trigger or "", "HOOKRUN_STATS": self.stats_file,
            # Set here, empty, so that one inherited from hookrun's own environment can
            # never make the hooks of a real run believe they are in a dry run.
            "HOOKRUN_DRY_RUN": "",
        }
        self.shared: dict[str, str] | None = None
        self.empty_env_file()
        self.empty_file(self.stats_file)

    def set_previous(self, run_id: str | None, status: str | None) -> None:
        self.fixed["HOOKRUN_PREVIOUS_RUN_ID"] = run_id or ""
        self.fixed["HOOKRUN_PREVIOUS_STATUS"] = status or ""
        self.shared = None

    def set_dry_run(self) -> None:
        """Tell every hook and cleanup from now on that this is a dry run."""
        self.fixed["HOOKRUN_DRY_RUN"] = "1"
        self.shared = None

    def set_later_env(self, values: dict[str, str]) -> None:
        self.later_env = values
        self.shared = None

    def shared_env(self) -> dict[str, str]:
        """What every hook's environment holds until the next hand-off or phase change; built
        once, not once per hook."""
        if self.shared is None:
            env = dict(self.base)
            env.update(self.handoff)
            env.update(self.fixed)
            env.update(self.later_env)
            # Last, so it shadows nothing: "hookrun defer" works whatever the PATH, also for
            # a hookrun started by its absolute path from a virtualenv.
            env["PATH"] = f"{env.get('PATH') or os.defpath}{os.pathsep}{self.own_bin}"
            self.shared = env
        return self.shared

    def hook_env(self, phase: str, name: str, path: str, index: int, count: int
                 ) -> EnvFunction:
        """A function of (attempt, cookie) giving a hook's environment."""
        def env(attempt: int, cookie: str) -> dict[str, str]:
            found = dict(self.shared_env())
            found.update({"HOOKRUN_PHASE": phase, "HOOKRUN_HOOK": name, "HOOKRUN_HOOK_PATH": path,
                          "HOOKRUN_INDEX": str(index), "HOOKRUN_COUNT": str(count),
                          "HOOKRUN_ATTEMPT": str(attempt), c.TASK_COOKIE: cookie})
            return found
        return env

    def command_env(self, _attempt: int, cookie: str) -> dict[str, str]:
        env = dict(self.base)
        env.update(self.handoff)
        env["HOOKRUN_RUN_ID"] = self.run_id
        env["HOOKRUN_EVENT"] = self.event
        env["HOOKRUN_STATS"] = self.stats_file
        env[c.TASK_COOKIE] = cookie
        return env

    def empty_env_file(self) -> None:
        self.empty_file(self.env_file)

    def empty_file(self, path: str) -> None:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600))
        except OSError as error:
            self.reporter.cannot_empty(path, error.strerror)

    def collect_handoff(self, where: str, succeeded: bool) -> None:
        """After a task: hand on what a successful hook wrote to ``$HOOKRUN_ENV``, and leave
        the file empty for the next one (a stat, not a rewrite, when nothing was written)."""
        try:
            if not os.stat(self.env_file).st_size:
                return
        except FileNotFoundError:
            self.empty_env_file()
            return
        if succeeded:
            self.take_handoff(where, *read_handoff(self.env_file,
                                                   path_fixed=self.path_fixed))
        self.empty_env_file()

    def take_handoff(self, where: str, values: dict[str, str], warnings: list[str]) -> None:
        """Hand on what a hook wrote to its HOOKRUN_ENV (``values``), warning of the lines
        that were not taken."""
        for warning in warnings:
            self.reporter.handoff_refused(where, warning)
        for name in values:
            self.reporter.hands_on(where, name)
        self.handoff.update(values)
        self.shared = None

    def collect_user_handoff(self, where: str, path: str, succeeded: bool) -> None:
        """collect_handoff() for the HOOKRUN_ENV file of a hook run as another user: read,
        never through a link, and emptied through the descriptor for a next attempt."""
        fd: int | None = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            if os.fstat(fd).st_size > MAX_HANDOFF_FILE:
                self.reporter.handoff_too_large(where, MAX_HANDOFF_FILE)
            elif succeeded:
                data = os.pread(fd, MAX_HANDOFF_FILE, 0)
                self.take_handoff(where, *parse_handoff(data, path_fixed=self.path_fixed))
            os.ftruncate(fd, 0)
        except OSError as error:
            self.reporter.cannot_read_handoff(where, error)
        finally:
            if fd is not None:
                os.close(fd)
