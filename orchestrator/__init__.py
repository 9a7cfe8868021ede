"""hookrun: a directory-based hook orchestrator for backup jobs.

Where each step of a run (design.md section 2) lives. The lifecycle core is flat at the top;
three wings hold what it uses: plan/ (what will run), state/ (what stays on disk), report/
(what is told); the base serves them all: constants, errors, files, shell, text (what makes
text safe to show, log or publish), timestamps, speed (the cheaper stand-ins for standard
modules), accounts (whom a process runs as), environment (what a task is given, and the
HOOKRUN_ENV hand-off: TaskEnvironment). No import
runs from a lower floor to a higher one: base < outcome < plan < state < report < the core.

1. checks: cli (arguments) -> commands (one function per subcommand) -> plan.context (config,
   hooks tree, plan), with plan.discovery (which files run), plan.settings (headers, config,
   precedence), plan.values (the spellings of values), plan.channel_config (the [notify]
   sections), plan.safety (trust rules) and report.refusal (a refused run made seen);
2. the lock and the run directory: session, state.lock, state.statedir;
3. recovery of crashed runs: state.cleanup (the whole cleanup feature: journals, their
   replay, dead runs, recovery), on state.statedir's run directories;
4-8. pre-, the command, post-, on-error/on-success, cleanups and finally.d: run.Lifecycle,
   deciding through outcome.RunState, each phase through phases.run_phase, each task through
   engine.Engine.run_task, each process through process (the only module that spawns and
   kills);
9. the record: one state.history.RunRecord, built once, from which derive the history row
   and --json (state.history), the terminal's summary (report.printer), report.metrics,
   report.pushgateway, report.notify and report.channels (through report.web); besides,
   report.logfile for the log, report.stats for the backup's statistics, report.trends for
   ``hookrun stats``.

The words: a phase is one step of a run's hooks or tasks (pre, post, on-error, on-success,
finally, and command, cleanup, recover for the tasks that are not hooks); a PhaseDir is a phase
directory (pre-backup.d: its phase and its name); a task's ``where`` is its label in output
and log (``pre/10-dump``); a Task is what the engine runs.

The outcome nouns: a TaskRecord is one finished task: its row (status, exit code, reason), its
Verdict, and what it said last (for HOOKRUN_ERROR and the error log); a Judgement is
what one attempt of a task means (outcome.judge: its status, the exit status its record keeps,
what to warn of); a Verdict is what the run does after a task's last attempt; a Failure is the
failure HOOKRUN_ERROR tells of; RunState is the run's state machine: its one state field is the
run's status so far, moved only by the facts the lifecycle tells it (pre_finished,
command_finished, ...), and it decides what follows; a ProcessResult is how one process ended;
a WatchState is the state machine of a process being watched.
"""

__version__ = "0.1.0"
