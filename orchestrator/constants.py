"""Exit statuses, hook exit codes, phase and directory names, defaults: one place for each."""

from __future__ import annotations

# Exit statuses of hookrun itself (design.md section 2).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # hookrun check: a hook would fail to start (design.md 10)
EXIT_USAGE = 2
EXIT_HOOK_STOPPED = 69
EXIT_INTERNAL = 70  # an internal error
EXIT_CANT_CREATE = 73
EXIT_LOCKED = 75
EXIT_UNSAFE = 77
EXIT_CONFIG = 78
EXIT_COMMAND_TIMEOUT = 124
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
SIGNAL_EXIT_BASE = 128

# Exit codes with a meaning when a hook returns them (design.md section 1).
HOOK_ABORT_CONTINUE = 62
HOOK_ABORT_STOP = 63
HOOK_SOFT_SKIP = 75

# Phases as they appear in records, environment and JSON.
PHASE_PRE = "pre"
PHASE_COMMAND = "command"
PHASE_POST = "post"
PHASE_ON_ERROR = "on-error"
PHASE_ON_SUCCESS = "on-success"
PHASE_CLEANUP = "cleanup"
PHASE_FINALLY = "finally"
PHASE_RECOVER = "recover"

DEFAULT_EVENT = "backup"
TRIGGER_MANUAL = "manual"  # --trigger when stdin is a terminal
TRIGGER_SCHEDULED = "scheduled"  # --trigger otherwise
MAX_EVENT_LENGTH = 64
EVENT_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
EVENT_REST = EVENT_FIRST | frozenset("_-")
ENV_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
ENV_REST = ENV_FIRST | frozenset("0123456789")

CONFIG_NAME = "hookrun.conf"
IGNORE_NAME = ".hookignore"
LOG_NAME = "hookrun.log"
HISTORY_NAME = "history.sqlite3"
ROOT_HOOKS_DIR = "/etc/hookrun"
ROOT_LIB_HOOKS_DIR = "/usr/lib/hookrun"  # hooks that packages ship, below the admin's
ROOT_STATE_DIR = "/var/lib/hookrun"

# The files of a run directory (STATE_DIR/runs/RUN_ID/), named here only.
RUN_META = "meta.json"  # run id, event, pid, for recovery
RUN_OWNER_LOCK = "owner.lock"  # flocked by the run for its whole life
JOURNAL_NAME = "cleanup"  # the cleanup journal ($HOOKRUN_CLEANUP)
JOURNAL_MARKS = "cleanup.marks"  # one byte per journal line, set once it has run
SUB_JOURNAL_PREFIX = "cleanup.task-"  # cleanup.task-N: a user= hook's journal (marks: .marks)
RUN_ENV_FILE = "env"  # $HOOKRUN_ENV (a user= hook's: env.task-N)
RUN_STATS_FILE = "stats"  # $HOOKRUN_STATS (a user= hook's: stats.task-N)
RUN_ERROR_LOG = "error.log"  # $HOOKRUN_ERROR_LOG: the last output of what failed
RUN_RECORD = "record.json"  # the record notify_command reads on stdin
RUN_BIN = "bin"  # hookrun's own command, first on the hooks' PATH
# The variable that marks every process of a task (run id/task number), for finding them.
TASK_COOKIE = "HOOKRUN_TASK"

# Defaults (design.md sections 1, 3, 4, 7).
DEFAULT_TIMEOUT = 300.0
DEFAULT_RETRY_DELAY = 5.0
MAX_RETRY_DELAY = 300.0
MAX_RETRIES = 100
DEFAULT_KILL_GRACE = 10.0
HEADER_LINES = 30
# An editor may start a text file with one; hookrun.conf and .hookignore are read without it.
BOM = "\ufeff"
HEAD_BYTES = 8192  # what is read of a hook for its shebang and header directives
MAX_DURATION = 100 * 86400.0  # longer is surely a typo (and past what poll() can wait)
MAX_SINCE = 999_999 * 86400  # the longest --since: 999,999 days
STRAY_DRAIN_SECONDS = 2.0
# A cleanup journal that cannot be read at the wind-down (an I/O error) is tried again.
JOURNAL_READ_ATTEMPTS = 3
JOURNAL_RETRY_DELAY = 0.2
ERROR_LOG_LINES = 200
SUMMARY_OUTPUT_LINES = 20
SUMMARY_OUTPUT_BYTES = 4096
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
# What one task may write to the log file (log_task_max_bytes): one hook printing 100 MB must
# not rotate every earlier run's output away. The rest is counted, and its tail kept in the
# history.
LOG_TASK_MAX_BYTES = 4 * 1024 * 1024
MAX_LOG_TASK_BYTES = LOG_MAX_BYTES * (LOG_BACKUPS + 1)
NOTIFY_TIMEOUT = 10.0  # all told: connect, send and receive of one request
# A run holds the metrics directory's lock for one read and one write of a small file; a lock
# held longer is someone else's, and the file is written without it.
METRICS_LOCK_WAIT = 5.0
NOTIFY_MAX_BODY = 100_000
NOTIFY_COMMAND_TIMEOUT = 60.0
LIVE_AFTER = 1.0

# File names run-parts and package managers leave behind: skipped without a word.
SKIP_SUFFIXES = (
    ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".ucf-old", ".ucf-new", ".ucf-dist",
    ".rpmnew", ".rpmsave", ".rpmorig", ".swp", ".bak", ".orig", ".disabled",
)


def is_event(name: str) -> bool:
    """Whether ``name`` is an event name: [a-z0-9][a-z0-9_-]* (any length; see
    MAX_EVENT_LENGTH). Checked with sets, not a regular expression: ``re`` costs start-up."""
    return bool(name) and name[0] in EVENT_FIRST and all(ch in EVENT_REST for ch in name)


def is_env_name(name: str) -> bool:
    """Whether ``name`` is an environment variable name: [A-Za-z_][A-Za-z0-9_]*."""
    return bool(name) and name[0] in ENV_FIRST and all(ch in ENV_REST for ch in name)
