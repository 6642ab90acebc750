"""Errors that carry a hint telling the operator how to fix the problem.

Only ``digest.cli`` turns these into exit codes; library code raises them and lets callers decide.
Each subclass also derives from a stdlib exception so ``except ValueError`` style handling works.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseFault",
    "DigestError",
    "InvalidInput",
    "LockHeld",
    "NotFound",
    "SendAborted",
    "SmtpConfigError",
    "Suppressed",
]


class DigestError(Exception):
    """Base error: ``message`` says what went wrong, ``hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message


class ConfigError(DigestError, ValueError):
    """A setting is missing or invalid (exit code 2)."""

    exit_code = 2


class InvalidInput(DigestError, ValueError):
    """Input from the operator or a reader could not be used (exit code 2)."""

    exit_code = 2


class NotFound(DigestError, LookupError):
    """The named subscriber, feed or article does not exist."""

    exit_code = 1


class Suppressed(DigestError, ValueError):
    """The address was erased or suppressed and must not be re-added."""

    exit_code = 1


class LockHeld(DigestError, RuntimeError):
    """Another run holds the lock (exit code 75, EX_TEMPFAIL, so cron can tell)."""

    exit_code = 75


class SendAborted(DigestError, RuntimeError):
    """The run had to stop: a 5.7.x policy refusal, an unreachable server (exit code 1; bad
    credentials and certificates are ``SmtpConfigError``, exit code 2)."""

    exit_code = 1


class SmtpConfigError(ConfigError, SendAborted):
    """The SMTP server refused our settings -- credentials, its certificate: a configuration
    error (exit code 2, so cron can tell it from a run that only deferred), raised where the
    run is stopped (a ``SendAborted``)."""

    exit_code = 2


class DatabaseFault(DigestError, RuntimeError):
    """The database failed under us: disk full, server restarted, connection terminated
    (exit code 1: nothing is lost, the next run finishes the job)."""

    exit_code = 1
