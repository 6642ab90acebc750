"""The pure half of the feedback loop: what a status code means, flufl's crashes contained,
what is and is not a message, and every ``digest bounces`` command's help."""

from __future__ import annotations

import email
from pathlib import Path

import flufl.bounce
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.feedback.legacy import legacy_findings
from digest.feedback.parse import NotAMessage, parse_message, read_message
from digest.feedback.report import Kind
from digest.feedback.status import classify

DATA = Path(__file__).parent / "data" / "bounces"


@pytest.mark.parametrize(("status", "words", "kind"), [
    ("5.1.1", "550 5.1.1 user unknown", Kind.HARD),
    ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound", Kind.HARD),
    ("5.2.1", "mailbox disabled", Kind.HARD),
    ("5.4.4", "no route to host", Kind.HARD),
    ("5.0.0", "550 unrouteable address", Kind.HARD),
    ("5.0.0", "552 recipient reached disk quota", Kind.SOFT),
    ("5.0.0", "550 rejected: listed at spamhaus", Kind.POLICY),
    ("5.2.2", "552 5.2.2 mailbox full", Kind.SOFT),
    ("4.2.2", "452 4.2.2 over quota", Kind.SOFT),
    ("4.4.1", "connection timed out", Kind.SOFT),
    ("5.7.1", "550 5.7.1 message rejected as spam", Kind.POLICY),
    ("5.7.26", "unauthenticated email from example.ro is not accepted (DMARC)", Kind.POLICY),
    ("5.6.0", "content rejected", Kind.POLICY),
    ("5.1.8", "sender address rejected", Kind.POLICY),
    ("5.3.4", "message too big", Kind.POLICY),
    ("5.3.0", "553 5.3.0 Addressee unknown", Kind.HARD),
    ("2.0.0", "250 ok", None),
    (None, "550 No such user here", Kind.HARD),
    (None, "421 try again later", Kind.SOFT),
])
def test_status_codes_decide_not_the_word_permanent(status: str | None, words: str,
                                                    kind: Kind | None) -> None:
    assert classify(status, words, permanent=True) is kind


def test_a_crashing_flufl_detector_does_not_hide_the_others() -> None:
    # Without From, flufl's Yale detector raises IndexError and all_failures re-raises it.
    # Its qmail detector, which runs later, still finds this qmail bounce.
    msg = email.message_from_bytes((DATA / "qmail__flufl.bounce__qmail_01.eml").read_bytes())
    del msg["From"]
    with pytest.raises(IndexError):
        flufl.bounce.all_failures(msg)
    [finding] = legacy_findings(msg)
    assert finding.recipient == "userx@example.de" and finding.kind is Kind.HARD


def test_what_is_not_a_message() -> None:
    for junk in (b"", b"\n\n", b"\x89PNG\r\n\x1a\n\x00\x00", b"just some words\nand more\n",
                 b'{"json": true}'):
        with pytest.raises(NotAMessage):
            read_message(junk)
    report = parse_message(b"From: ana@example.ro\r\nSubject: hello\r\n\r\nHi!\r\n")
    assert report.kind is Kind.UNRECOGNIZED and report.findings == ()


def test_every_bounces_command_has_help_with_an_example() -> None:
    for argv in (["bounces"], ["bounces", "process"], ["bounces", "fetch"],
                 ["bounces", "list"], ["report"]):
        result = CliRunner().invoke(main, [*argv, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, argv


def test_dry_run_says_what_it_is_without_a_database(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)  # no .env, and no database here
    dsn = DATA / "postfix__flufl.bounce__postfix_01.eml"
    result = CliRunner().invoke(main, ["bounces", "process", "--dry-run", "--format", "json",
                                       str(dsn)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["kind"] == "hard" and answer["recipient"] == "xxxxx@local.ie"
    assert answer["action"] == "none" and answer["source"] in ("dsn", "flufl")
    assert not list(tmp_path.iterdir())  # touched nothing
