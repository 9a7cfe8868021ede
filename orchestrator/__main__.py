"""Allow ``python -m orchestrator``."""

from orchestrator.cli import command

command()
