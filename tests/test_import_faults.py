"""Subscriber CSV files as real exports come (issue 10): over-long fields and lines, unclosed
quotes, bad UTF-8 in the middle, control characters, rows repeated inside one file; the status
an import gives recorded as consent evidence; one address rule for every way in; reserved
domains for staging. Real files in a temp folder, the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.errors import InvalidInput
from digest.config.settings import Settings
from digest.readers import lifecycle as subs
from digest.readers.addresses import accept_address
from digest.store.models import ConsentEvent, ConsentKind, Subscriber
from tests.conftest import cli_env


@pytest.fixture
def run(settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, **env: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), env={**cli_env(settings), **env})
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exception
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _emails(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Subscriber.email).order_by(Subscriber.id)))


def test_huge_field_huge_line_and_unclosed_quote_cost_one_row_each(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(
        b"email,name\n"
        b"ana@exemplu.ro,Ana\n"
        b"ion@exemplu.ro,\"" + b"x" * (130 * 1024) + b"\"\n"  # a 130 KiB field
        + b"maria@exemplu.ro," + b"y" * 1_000_000 + b"\n"  # a 1M-character line
        b"dan@exemplu.ro,\"Dan Pop\n"  # the quote is never closed
        b"elena@exemplu.ro,Elena\n"
        b"radu@exemplu.ro,Radu\n")
    code, out, err = run("subscribers", "import", str(path))
    assert code == 1 and "Traceback" not in err
    assert "line 3: the line is longer than 128 KiB; skipped" in err
    assert "line 4: the line is longer than 128 KiB; skipped" in err
    assert "line 5: a quoted field starts here and is not closed" in err
    assert out.strip() == ("imported 3, updated 0, unchanged 0, invalid 3, duplicate 0, "
                           "suppressed 0")
    assert _emails(sessions) == ["ana@exemplu.ro", "elena@exemplu.ro", "radu@exemplu.ro"]


def test_bad_utf8_in_the_middle_skips_that_line_only(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes("email,name\nana@exemplu.ro,Ana Bălan\n".encode()
                     + "ion@exemplu.ro,Ion Bălan\n".encode("cp1250")
                     + "maria@exemplu.ro,Maria Șerban\n".encode())
    code, out, err = run("subscribers", "import", str(path), "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["imported"] == 2 and report["invalid"] == 1
    assert report["problems"] == [
        "line 3: not UTF-8 text (byte 0xE3 at column 21); skipped: save the file as CSV UTF-8 "
        "and import it again (rows already imported stay as they are)"]
    assert "rows before" not in err  # the old hint claimed only earlier rows were kept
    assert _emails(sessions) == ["ana@exemplu.ro", "maria@exemplu.ro"]
    # The hint is true: the fixed file imports the missing row and leaves the others alone.
    path.write_text("email,name\nana@exemplu.ro,Ana Bălan\nion@exemplu.ro,Ion Bălan\n"
                    "maria@exemplu.ro,Maria Șerban\n", encoding="utf-8")
    code, out, _ = run("subscribers", "import", str(path))
    assert code == 0 and out.startswith("imported 1, updated 0, unchanged 2")


def test_control_characters_are_stripped_the_same_on_every_database(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"email,name,topics,locale\n"
                     b"ana@exemplu.ro,Ana\x00 B\x07\xc2\x85lan,sp\x00ort,r\x1bo\n"
                     b"ion@exemplu.ro,Ion\tPop,local,en\n"
                     b"dan@exemplu.ro,\x00\x01,,\n")
    code, out, err = run("subscribers", "import", str(path))
    assert code == 0, err
    assert out.startswith("imported 3,")
    with sessions() as session:
        rows = {s.email: (s.name, s.topics, s.locale) for s in session.scalars(select(Subscriber))}
    assert rows == {"ana@exemplu.ro": ("Ana B lan", ["sport"], "ro"),
                    "ion@exemplu.ro": ("Ion Pop", ["local"], "en"),
                    "dan@exemplu.ro": (None, [], None)}
    with sessions.begin() as session:  # the Python API (and so the web form) alike
        sub = subs.add_subscriber(session, "eva@exemplu.ro", name="E\x00va", locale="r\x00o",
                                  topics=["cul\x00tura"])
        assert (sub.name, sub.locale, sub.topics) == ("Eva", "ro", ["cultura"])


def test_a_row_repeated_in_one_file_is_reported_with_the_line_it_repeats(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("email,name\nana@exemplu.ro,Ana\nion@exemplu.ro,Ion\n"
                    "ANA@exemplu.ro,Ana Bălan\n", encoding="utf-8")
    code, out, err = run("subscribers", "import", str(path))
    assert code == 1
    assert "line 4: ana@exemplu.ro repeats line 2; skipped (the first row is kept)" in err
    assert out.strip() == ("imported 2, updated 0, unchanged 0, invalid 0, duplicate 1, "
                           "suppressed 0")
    with sessions() as session:
        assert subs.get_subscriber(session, "ana@exemplu.ro").name == "Ana"


def test_repeats_are_found_across_chunks(run, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("digest.readers.csv_io.CHUNK", 2)
    path = tmp_path / "far.csv"
    path.write_text("email\na@exemplu.ro\nb@exemplu.ro\nc@exemplu.ro\na@exemplu.ro\n",
                    encoding="utf-8")
    code, out, err = run("subscribers", "import", str(path))
    assert code == 1 and "line 5: a@exemplu.ro repeats line 2" in err and "duplicate 1" in out


def test_the_import_event_records_the_status_it_gave(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    (tmp_path / "optin.csv").write_text("email\nana@exemplu.ro\n", encoding="utf-8")
    (tmp_path / "wait.csv").write_text("email\nion@exemplu.ro\n", encoding="utf-8")
    (tmp_path / "col.csv").write_text("email,status\ndan@exemplu.ro,pending\n",
                                      encoding="utf-8")
    assert run("subscribers", "import", str(tmp_path / "optin.csv"))[0] == 0
    assert run("subscribers", "import", str(tmp_path / "wait.csv"), "--status", "pending")[0] == 0
    assert run("subscribers", "import", str(tmp_path / "col.csv"))[0] == 0
    with sessions() as session:
        details = {sub.email: event.detail for sub, event in session.execute(
            select(Subscriber, ConsentEvent).join(ConsentEvent)
            .where(ConsentEvent.kind == ConsentKind.IMPORT))}
    assert details == {
        "ana@exemplu.ro": "file=optin.csv; status=active (from --status); line 2",
        "ion@exemplu.ro": "file=wait.csv; status=pending (from --status); line 2",
        "dan@exemplu.ro": "file=col.csv; status=pending (from column); line 2"}
    assert "status=pending" in run("subscribers", "show", "ion@exemplu.ro")[1]


LONG_LOCAL = "a" * 70 + "@exemplu.ro"


@pytest.mark.parametrize("address, reason", [
    (LONG_LOCAL, "more than 64"),
    ("ștefan@exemplu.ro", "non-Latin letters before the @"),
    ("ana@redactie.test", "special-use or reserved name"),
])
def test_one_address_rule_for_cli_and_csv(run, tmp_path: Path, address: str,  # type: ignore[no-untyped-def]
                                          reason: str, sessions: sessionmaker[Session]) -> None:
    code, _, err = run("subscribers", "add", address)
    assert code == 2 and reason in err and "Hint:" in err
    (tmp_path / "one.csv").write_text(f"email\n{address}\nok@exemplu.ro\n", encoding="utf-8")
    code, _, err = run("subscribers", "import", str(tmp_path / "one.csv"))
    assert code == 1 and f"line 2: {address!r}" in err and reason in err
    assert _emails(sessions) == ["ok@exemplu.ro"]
    with pytest.raises(InvalidInput, match=reason):
        accept_address(address)


def test_reserved_domains_are_allowed_for_staging_only_when_asked(  # type: ignore[no-untyped-def]
        run, tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    staging = ["ana@redactie.test", "ion@stiri.internal", "dan@exemplu.example",
               "eva@nowhere.invalid", "radu@localhost"]
    path = tmp_path / "staging.csv"
    path.write_text("email\n" + "\n".join(staging) + "\n", encoding="utf-8")
    code, out, err = run("subscribers", "import", str(path))
    assert code == 1 and "invalid 5" in out and err.count("special-use or reserved name") == 5
    assert "DIGEST_ALLOW_RESERVED_DOMAINS=true" in err
    code, out, _ = run("subscribers", "import", str(path), DIGEST_ALLOW_RESERVED_DOMAINS="true")
    assert code == 0 and out.startswith("imported 5,")
    code, _, _ = run("subscribers", "add", "nou@redactie.test", DIGEST_ALLOW_RESERVED_DOMAINS="1")
    assert code == 0
    assert _emails(sessions) == [*staging, "nou@redactie.test"]
    code, _, err = run("subscribers", "list", DIGEST_ALLOW_RESERVED_DOMAINS="maybe")
    assert code == 2 and "DIGEST_ALLOW_RESERVED_DOMAINS='maybe' is invalid" in err
