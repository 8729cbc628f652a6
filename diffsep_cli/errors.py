"""Errors a user can cause or fix, shown as one line by the CLI (exit codes documented)."""

from __future__ import annotations

EXIT_ERROR = 1  # a runtime error the user can fix (bad file, unknown name, ...)
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_OFFLINE = 3  # a prior is not cached and the Hub cannot be reached (offline)
EXIT_INTERRUPTED = 130  # Ctrl-C


class DiffsepError(Exception):
    """A problem the user can fix; the message is one line, ``exit_code`` the process status."""

    exit_code = EXIT_ERROR


class PriorUnavailable(DiffsepError):
    """A prior is neither bundled, nor a folder, nor in the Hub cache, and we are offline."""

    exit_code = EXIT_OFFLINE


class InputError(DiffsepError):
    """One input cannot be separated (unreadable, truncated, not finite, diverged): a run over
    several inputs reports it in one line and goes on with the others."""
