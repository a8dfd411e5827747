"""Logging into the host's log, tagged with the agent's name (WIT `log`;
granted to every agent). Long messages are truncated by the host."""
from __future__ import annotations

from ._wit import call

LEVELS = ("trace", "debug", "info", "warn", "error")


class WitBackend:
    def write(self, level: str, message: str) -> None:
        from wit_world.imports.log import Level

        call("log", "write", Level[level.upper()], message)


# Where the calls go; `agentkernel.testing` swaps in a recorder.
backend = WitBackend()


def write(level: str, message: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {LEVELS}")
    backend.write(level, str(message))


def trace(message: str) -> None:
    write("trace", message)


def debug(message: str) -> None:
    write("debug", message)


def info(message: str) -> None:
    write("info", message)


def warn(message: str) -> None:
    write("warn", message)


def error(message: str) -> None:
    write("error", message)
