"""Backup statistics (design.md section 11): what the command reports of the backup it made,
read from restic's ``backup --json`` summary, borg's ``create --json`` document, or
``key=value`` lines in the file named by ``$HOOKRUN_STATS``. Reading them never changes what
the command prints."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    # A run's statistics: snapshot_id text, the others whole numbers.
    Stats = dict[str, str | int]

# Every statistic a run keeps; snapshot_id is text, the others whole numbers.
KEYS = ("snapshot_id", "files_new", "files_changed", "files_unmodified", "dirs_new",
        "bytes_added", "bytes_processed", "total_files", "total_bytes")
MAX_ID = 128
ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
# restic's summary fields -> ours
RESTIC = {"snapshot_id": "snapshot_id", "files_new": "files_new",
          "files_changed": "files_changed", "files_unmodified": "files_unmodified",
          "dirs_new": "dirs_new", "data_added": "bytes_added",
          "total_bytes_processed": "bytes_processed", "total_files_processed": "total_files"}
# borg's archive stats -> ours
BORG = {"deduplicated_size": "bytes_added", "original_size": "bytes_processed",
        "nfiles": "total_files"}
MAX_FILE = 65536  # a $HOOKRUN_STATS file is a few lines; more is not read
# A count is a 64-bit number at most: a longer string of digits is no statistic (and Python
# refuses to read one of over 4,300 digits).
MAX_COUNT = (1 << 64) - 1
MAX_DIGITS = len(str(MAX_COUNT))


def valid(key: str, value: object) -> str | int | None:
    """``value`` as the statistic ``key`` keeps it, or None when it is not one."""
    if key == "snapshot_id":
        text = str(value)
        ok = 0 < len(text) <= MAX_ID and all(ch in ID_CHARACTERS for ch in text)
        return text if ok else None
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and \
            len(value) <= MAX_DIGITS:
        value = int(value)
    if isinstance(value, int):
        return value if 0 <= value <= MAX_COUNT else None
    return None


def from_output(data: bytes) -> Stats:
    """The statistics in a command's standard output (bytes, its last part): restic's
    ``backup --json`` summary line or borg's ``create --json`` document; {} if neither."""
    text = data.decode("utf-8", "replace")
    if "{" not in text:
        return {}  # no JSON, and no json module to import: most commands print none
    import json

    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and '"summary"' in line:
            try:
                summary = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, or nested past json's reach
                continue
            if isinstance(summary, dict) and summary.get("message_type") == "summary":
                found = mapped(summary, RESTIC)
                if summary.get("dry_run") is True:
                    # It names the snapshot a backup would have made: there is none.
                    found.pop("snapshot_id", None)
                return found
    document = last_document(text)
    archive = document.get("archive") if isinstance(document, dict) else None
    if not isinstance(archive, dict):
        return {}
    found = mapped(archive.get("stats") or {}, BORG)
    identifier = valid("snapshot_id", archive.get("id", ""))
    if identifier:
        found["snapshot_id"] = identifier
    return found


def last_document(text: str) -> object:
    """The JSON document that ``text`` is, or that its last line starting with ``{`` starts
    (borg prints one, indented, after nothing or after other output); None if none."""
    import json

    for start in (0, text.rfind("\n{") + 1):
        try:
            return json.loads(text[start:])
        except (ValueError, RecursionError):
            continue
    return None


def mapped(fields: object, names: Mapping[str, str]) -> Stats:
    """Of the dict ``fields``, the statistics ``names`` maps to ours, where valid."""
    found: Stats = {}
    if not isinstance(fields, dict):
        return found
    for theirs, ours in names.items():
        value = valid(ours, fields.get(theirs)) if theirs in fields else None
        if value is not None:
            found[ours] = value
    return found


def from_file(path: str) -> tuple[Stats, list[str]]:
    """(statistics, warnings) from the ``key=value`` lines of the file at ``path`` (a
    missing or empty file, or one that is not a regular file: none). A line that is not a
    known key with a valid value is a warning, named by its number (never its text), and
    ignored."""
    import os

    from orchestrator.files import open_regular

    try:
        fd = open_regular(path, os.O_RDONLY)
    except OSError:  # NotRegularFile too: a FIFO or a directory there holds no statistics
        return {}, []
    try:
        data = os.read(fd, MAX_FILE)
    except OSError:
        return {}, []
    finally:
        os.close(fd)
    found: Stats = {}
    warnings: list[str] = []
    for number, line in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        parsed = valid(key, value.strip()) if sep and key in KEYS else None
        if parsed is None:
            warnings.append(f"line {number} is not KEY=VALUE with a known statistic "
                            f"({', '.join(KEYS)}): ignored")
            continue
        found[key] = parsed
    return found, warnings


# The variable each statistic is handed to post- and later hooks in.
VARIABLES = {"snapshot_id": "HOOKRUN_SNAPSHOT_ID", "files_new": "HOOKRUN_STAT_FILES_NEW",
             "files_changed": "HOOKRUN_STAT_FILES_CHANGED",
             "files_unmodified": "HOOKRUN_STAT_FILES_UNMODIFIED",
             "dirs_new": "HOOKRUN_STAT_DIRS_NEW", "bytes_added": "HOOKRUN_STAT_BYTES_ADDED",
             "bytes_processed": "HOOKRUN_STAT_BYTES_PROCESSED",
             "total_files": "HOOKRUN_STAT_TOTAL_FILES",
             "total_bytes": "HOOKRUN_STAT_TOTAL_BYTES"}


def environment(stats: Mapping[str, object]) -> dict[str, str]:
    """The variables post- and later hooks get (VARIABLES), each empty where the run has no
    such statistic."""
    return {name: str(stats.get(key, "")) for key, name in VARIABLES.items()}


def text(stats: Mapping[str, object]) -> str:
    """``snapshot_id=... bytes_added=...``: the statistics of ``stats`` in KEYS order."""
    return " ".join(f"{key}={stats[key]}" for key in KEYS if key in stats)


def summary_line(stats: Mapping[str, object]) -> str:
    """``stats: snapshot_id=... bytes_added=...`` for notifications; "" if none."""
    return f"stats: {text(stats)}" if stats else ""
