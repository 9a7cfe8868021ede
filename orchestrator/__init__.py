"""hookrun: a directory-based hook orchestrator for backup jobs."""

__version__ = "0.1.0"
