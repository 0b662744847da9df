"""How a failure reads to a person, written once for every front end (the CLI, the studio, the batch
runner): one line, and the CLI's exit status.

Exit status: 0 done, 1 a problem with an input, a file or a backend, 2 a usage error, 130
interrupted. A failure class may say its own with an ``exit_status`` attribute (``SettingsError``
2, ``ImageError`` 1); otherwise any ``OSError`` or ``RuntimeError`` is 1 (a file, a backend, the
weights, an export) and any other ``ValueError`` 2. Anything else is a bug, whose traceback is
worth more than a line: ``exit_status`` answers None for it."""
from __future__ import annotations

LONGEST = 500   # characters: a line, not a page (a backend's message can quote a whole graph)


class UsageError(Exception):
    """Arguments that cannot work together."""
    exit_status = 2


class Stopped(Exception):
    """Stopped by the person (Ctrl-C) with something to say about what was kept."""
    exit_status = 130


def one_line(exc: BaseException) -> str:
    """The first line of what ``exc`` says, whitespace collapsed; its class name when it says nothing."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    return text if len(text) <= LONGEST else text[:LONGEST - 1] + "…"


def exit_status(exc: BaseException) -> int | None:
    """The CLI's exit status for ``exc``; None for a failure no one foresaw."""
    if isinstance(exc, KeyboardInterrupt):
        return 130
    status = getattr(exc, "exit_status", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, (OSError, RuntimeError)):
        return 1
    if isinstance(exc, ValueError):
        return 2
    return None


def cli_line(exc: BaseException) -> str:
    """``one_line`` as the CLI says it: a setting is named by its flag (``--size must be ...``)."""
    from .settings import SettingsError, flag_for
    if isinstance(exc, SettingsError):
        return one_line(f"{flag_for(exc.field)} {exc.problem}")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return one_line(exc)
