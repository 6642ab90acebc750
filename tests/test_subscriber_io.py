"""CSV import/export through the CLI, on a real database file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from digest.cli import main
from digest.config.settings import Settings
from digest.readers import lifecycle as subs
from digest.store.models import SubscriberStatus
from tests.conftest import cli_env


@pytest.fixture
def run(settings: Settings, sessions: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(main, list(args), env=cli_env(settings), input=input)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def test_import_reports_bad_rows_keeps_good_ones_and_is_rerunnable(run, tmp_path: Path) -> None:
    people = write(tmp_path / "people.csv",
                   "Email;Name;Topics;Frequency\n"
                   "ana@exemplu.ro;Ana Bălan;sport,local;daily\n"
                   "not-an-address;X;;\n"
                   "ion@bücher.de;Ștefan Mureșan;;weekly\n"
                   "ANA@exemplu.ro;Ana Bălan;sport,local;daily\n"
                   "maria@exemplu.ro;Maria;;monthly\n"
                   "\n", bom=True)
    code, out, err = run("subscribers", "import", str(people))
    assert code == 1  # some rows were bad: scripts can tell
    assert out.strip() == "imported 2, updated 0, unchanged 0, invalid 2, duplicate 1, suppressed 0"
    assert "line 3: 'not-an-address' is not a valid email address" in err
    assert "line 6: unknown frequency 'monthly'" in err
    assert "line 5: ana@exemplu.ro repeats line 2" in err
    code, out, _ = run("subscribers", "import", str(people))
    assert out.strip() == "imported 0, updated 0, unchanged 2, invalid 2, duplicate 1, suppressed 0"
    code, out, _ = run("subscribers", "list", "--format", "json")
    rows = json.loads(out)
    assert [r["email"] for r in rows] == ["ana@exemplu.ro", "ion@bücher.de"]
    assert rows[0]["topics"] == ["local", "sport"] and rows[1]["frequency"] == "weekly"
    assert set(rows[0]) >= {"email", "name", "status", "topics", "frequency", "timezone",
                            "locale", "created_at"}


def test_import_updates_fields_but_never_resubscribes(run, tmp_path: Path,
                                                      sessions: sessionmaker[Session]) -> None:
    write(tmp_path / "a.csv", "email,name,status\nana@exemplu.ro,Ana,active\n")
    assert run("subscribers", "import", str(tmp_path / "a.csv"))[0] == 0
    assert run("subscribers", "unsubscribe", "ana@exemplu.ro")[0] == 0
    write(tmp_path / "b.csv", "email,name,status\nana@exemplu.ro,Ana Bălan,active\n")
    code, out, _ = run("subscribers", "import", str(tmp_path / "b.csv"))
    assert code == 0
    assert out.strip() == "imported 0, updated 1, unchanged 0, invalid 0, duplicate 0, suppressed 0"
    with sessions() as s:
        sub = subs.get_subscriber(s, "ana@exemplu.ro")
        assert sub.name == "Ana Bălan" and sub.status is SubscriberStatus.UNSUBSCRIBED


def test_deleted_address_is_reported_as_suppressed(run, tmp_path: Path) -> None:
    people = write(tmp_path / "p.csv", "email\nana@exemplu.ro\nion@exemplu.ro\n")
    run("subscribers", "import", str(people))
    code, out, _ = run("subscribers", "delete", "ana@exemplu.ro", "--yes")
    assert code == 0 and "suppressed" in out
    code, out, err = run("subscribers", "import", str(people))
    assert out.strip() == "imported 0, updated 0, unchanged 1, invalid 0, duplicate 0, suppressed 1"
    assert "ana@exemplu.ro is suppressed" in err


def test_export_round_trips_through_import(run, tmp_path: Path) -> None:
    run("subscribers", "add", "ana@exemplu.ro", "--name", "Ana Bălan", "--topics", "sport,cultura",
        "--timezone", "Europe/Bucharest", "--locale", "ro")
    run("subscribers", "add", "ion@bücher.de", "--name", 'Ion "Nelu" Pop, jr.',
        "--frequency", "weekly", "--pending")
    code, exported, _ = run("subscribers", "export")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert rows[1]["name"] == 'Ion "Nelu" Pop, jr.' and rows[0]["topics"] == "cultura,sport"
    target = tmp_path / "out.csv"
    assert run("subscribers", "export", str(target))[0] == 0
    assert target.read_text(encoding="utf-8") == exported
    # Re-importing the export into the same store changes nothing.
    code, out, _ = run("subscribers", "import", str(target))
    assert out.strip() == "imported 0, updated 0, unchanged 2, invalid 0, duplicate 0, suppressed 0"
    code, out, _ = run("subscribers", "export", "--format", "json")
    assert json.loads(out)[1]["status"] == "pending"


def test_import_into_a_fresh_store_reproduces_the_export(tmp_path: Path, run,
                                                         settings: Settings) -> None:
    run("subscribers", "add", "ana@exemplu.ro", "--name", "Ana Bălan", "--topics", "sport")
    run("subscribers", "add", "ion@bücher.de", "--frequency", "weekly", "--pending")
    _, exported, _ = run("subscribers", "export")
    (tmp_path / "x.csv").write_text(exported, encoding="utf-8")
    run("subscribers", "delete", "ana@exemplu.ro", "--yes")
    run("subscribers", "delete", "ion@bücher.de", "--yes")
    _, out, _ = run("subscribers", "import", str(tmp_path / "x.csv"))
    assert "suppressed 2" in out  # erased addresses stay out, even from a backup


def test_header_without_email_and_non_utf8_are_clear_errors(run, tmp_path: Path) -> None:
    code, _, err = run("subscribers", "import", str(write(tmp_path / "h.csv", "mail,name\nx,y\n")))
    assert code == 2 and "no `email` column" in err and "Hint:" in err
    latin = tmp_path / "l.csv"
    latin.write_bytes("email,name\nana@exemplu.ro,Bălan\n".encode("cp1250"))
    code, _, err = run("subscribers", "import", str(latin))
    assert code == 1 and "line 2: not UTF-8" in err and "CSV UTF-8" in err
    latin.write_bytes("email,nume de familie\n".encode("cp1250").replace(b"e", b"\xe9"))
    code, _, err = run("subscribers", "import", str(latin))
    assert code == 2 and "header (line 1)" in err and "CSV UTF-8" in err


def test_send_hour_on_add_import_and_export(run, tmp_path: Path,
                                            sessions: sessionmaker[Session]) -> None:
    assert run("subscribers", "add", "kenji@example.jp", "--timezone", "Asia/Tokyo",
               "--send-hour", "6")[0] == 0
    code, _, err = run("subscribers", "add", "x@example.jp", "--send-hour", "24")
    assert code == 2 and "0 to 23" in err
    source = write(tmp_path / "hours.csv", "email,timezone,send_hour\n"
                   "ana@exemplu.ro,Europe/Bucharest,18\n"
                   "bob@example.com,America/New_York,\n"
                   "rau@exemplu.ro,,25\n"
                   "kenji@example.jp,Asia/Tokyo,7\n")
    code, out, err = run("subscribers", "import", str(source))
    assert "line 4" in err and "25" in err
    assert out.strip() == "imported 2, updated 1, unchanged 0, invalid 1, duplicate 0, suppressed 0"
    with sessions() as session:
        hours = {e: subs.get_subscriber(session, e).send_hour
                 for e in ("ana@exemplu.ro", "bob@example.com", "kenji@example.jp")}
    assert hours == {"ana@exemplu.ro": 18, "bob@example.com": None, "kenji@example.jp": 7}
    _, exported, _ = run("subscribers", "export")
    rows = {r["email"]: r["send_hour"] for r in csv.DictReader(io.StringIO(exported))}
    assert rows == {"kenji@example.jp": "7", "ana@exemplu.ro": "18", "bob@example.com": ""}
    (tmp_path / "again.csv").write_text(exported, encoding="utf-8")
    assert "unchanged 3" in run("subscribers", "import", str(tmp_path / "again.csv"))[1]
