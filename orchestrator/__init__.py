"""hookrun: a directory-based hook orchestrator for backup jobs.

Where each step of a run (design.md section 2) lives:

1. checks: cli (arguments) -> commands (one function per subcommand) -> context (config,
   hooks tree, plan), with discovery (which files run), settings (headers, config), safety
   (trust rules) and refusal (a refused run made seen);
2. the lock and the run directory: session, lock, statedir;
3. recovery of crashed runs: session.recover, cleanup (journals), statedir (dead runs);
4-8. pre-, the command, post-, on-error/on-success, cleanups and finally.d: run.Lifecycle,
   deciding through outcome.RunState, each phase through phases.run_phase, each task through
   engine.Engine.run_task, each process through process (the only module that spawns and
   kills);
9. the record: history, metrics, pushgateway, notify and channels (through web), printer for
   the terminal, logfile for the log, stats for the backup's statistics, trends for stats.

The outcome nouns: a TaskRecord is one task's row (status, exit code, reason); a Judgement is
what one attempt of a task means (outcome.judge); a Verdict is what the run does after a
task's last attempt; a Failure is the failure HOOKRUN_ERROR tells of; RunState holds what has
happened in a run and decides its status and exit status.
"""

__version__ = "0.1.0"
