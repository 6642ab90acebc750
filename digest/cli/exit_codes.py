"""Every command's exit codes, in one place: appended to each command's ``--help`` and listed in
the README's "Exit codes" table (a test keeps the three in step).

Common to all: 2 is a usage or configuration error -- a bad option, a missing or invalid
setting, a database that ``digest init`` never created, bad SMTP credentials, an untrusted
certificate, a server without STARTTLS. A cron job can tell those (fix the setup) from 1 (look
at what the run reports; the next run carries on).
"""

from __future__ import annotations

import enum
import inspect
import textwrap

import click

__all__ = ["EXIT_CODES", "ExitCode", "document_exit_codes", "exit_code_help"]


class ExitCode(enum.IntEnum):
    OK = 0
    SOME_FAILED = 1  # some work failed or is left over; the report says which
    CONFIG = 2  # usage or configuration error (click's usage errors are 2 as well)
    LOCKED = 75  # EX_TEMPFAIL: another run holds the lock


_CONFIG = (ExitCode.CONFIG, "usage or configuration error")
_NOT_FOUND = (ExitCode.SOME_FAILED, "no such subscriber")
_SEND = [
    (ExitCode.OK, "every due delivery of the edition was sent or skipped"),
    (ExitCode.SOME_FAILED, "some deliveries failed or were deferred, the edition still has "
                           "pending or deferred ones, or the run stopped (5.7.x policy "
                           "refusal, unreachable server, SIGTERM)"),
    (ExitCode.CONFIG, "usage or configuration error (settings, database, SMTP credentials, "
                      "certificate, STARTTLS, a template override missing what every digest "
                      "must carry)"),
    (ExitCode.LOCKED, "another run holds the lock; nothing was done"),
]

# Command path (without "digest") -> its codes, in the order shown.
EXIT_CODES: dict[str, list[tuple[ExitCode, str]]] = {
    "init": [(ExitCode.OK, "the database is ready"), _CONFIG],
    "subscribers add": [(ExitCode.OK, "added"),
                        (ExitCode.SOME_FAILED, "the address was erased or suppressed"),
                        (ExitCode.CONFIG, "invalid address, already a subscriber, or a "
                                          "configuration error")],
    "subscribers list": [(ExitCode.OK, "listed"), _CONFIG],
    "subscribers show": [(ExitCode.OK, "shown"), _NOT_FOUND, _CONFIG],
    "subscribers unsubscribe": [(ExitCode.OK, "unsubscribed, or already out"), _NOT_FOUND,
                                _CONFIG],
    "subscribers delete": [(ExitCode.OK, "erased"), _NOT_FOUND, _CONFIG],
    "subscribers import": [
        (ExitCode.OK, "every row was imported, updated or unchanged (suppressed addresses are "
                      "reported and skipped)"),
        (ExitCode.SOME_FAILED, "some rows were bad or repeated: reported on stderr with their "
                               "line numbers; every other row was imported"),
        (ExitCode.CONFIG, "the file cannot be used (no header, no email column) or a "
                          "configuration error"),
    ],
    "subscribers export": [(ExitCode.OK, "exported"), _CONFIG],
    "feeds add": [(ExitCode.OK, "added or updated"), _CONFIG],
    "feeds list": [(ExitCode.OK, "listed"), _CONFIG],
    "feeds remove": [(ExitCode.OK, "removed"), (ExitCode.SOME_FAILED, "no such feed"), _CONFIG],
    "fetch": [(ExitCode.OK, "every feed was fetched"),
              (ExitCode.SOME_FAILED, "some feed failed (each named, with its reason); the "
                                     "others were fetched"), _CONFIG],
    "articles add": [(ExitCode.OK, "added or updated"), _CONFIG],
    "articles import": [(ExitCode.OK, "every record was imported"),
                        (ExitCode.SOME_FAILED, "some records were refused (reported); the "
                                               "others were imported"), _CONFIG],
    "articles list": [(ExitCode.OK, "listed"), _CONFIG],
    "preview": [(ExitCode.OK, "written"),
                (ExitCode.SOME_FAILED, "no such subscriber, or nothing new for this reader"),
                _CONFIG],
    "send": _SEND,
    "run": [_SEND[0], (ExitCode.SOME_FAILED, _SEND[1][1] + "; or a feed failed (each is "
                                                           "named, with its reason)"),
            *_SEND[2:]],
    "status": [(ExitCode.OK, "shown"), _CONFIG],
    "bounces process": [(ExitCode.OK, "the message was read, recognized or not (so the MTA never "
                                      "re-queues it); what it concluded is printed"),
                        (ExitCode.CONFIG, "the input is not a mail message at all, or a "
                                          "usage or configuration error")],
    "bounces fetch": [(ExitCode.OK, "every new message was processed and moved"),
                      (ExitCode.SOME_FAILED, "the mailbox could not be read to the end (the "
                                             "message says why); what was processed stays so"),
                      _CONFIG],
    "bounces list": [(ExitCode.OK, "listed"), _CONFIG],
    "report": [(ExitCode.OK, "the page was written"), _CONFIG],
    "check": [(ExitCode.OK, "every sample message meets the checklist"),
              (ExitCode.SOME_FAILED, "a sample message fails the checklist (each failure is "
                                     "printed)"), _CONFIG],
    "serve": [(ExitCode.OK, "stopped"), _CONFIG],
    "sink": [(ExitCode.OK, "stopped"), (ExitCode.CONFIG, "cannot listen on that port, or a "
                                                        "usage error")],
    "demo": [(ExitCode.OK, "the demo digest was sent to the local sink"),
             (ExitCode.SOME_FAILED, "the demo run failed (the message says why)"), _CONFIG],
}


def exit_code_help(path: str) -> str:
    """The ``--help`` paragraph for one command (``\\b``: click keeps its lines)."""
    lines = [textwrap.fill(text, 72, initial_indent=f"  {int(code):<3} ",
                           subsequent_indent=" " * 6) for code, text in EXIT_CODES[path]]
    return "\n\n\b\nExit codes:\n" + "\n".join(lines)


def document_exit_codes(group: click.Group, prefix: str = "") -> None:
    """Append each command's exit codes to its help (every command must have an entry)."""
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            document_exit_codes(command, f"{path} ")
            continue
        command.help = inspect.cleandoc(command.help or "") + exit_code_help(path)
