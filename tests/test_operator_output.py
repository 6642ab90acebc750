"""What the operator sees (issue 10): failed feeds named by `digest run`, exit 1 while the
edition still has deferred or pending deliveries, the true "left pending" count, configuration
problems on exit 2, no dry-run totals in a real send's JSON, and no empty database created by a
command run from the wrong folder. Real CLI, real SMTP servers, real files."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import click
import pytest
import trustme
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.articles.feed_registry import add_feed
from digest.cli import main
from digest.cli.exit_codes import EXIT_CODES
from digest.config.settings import Settings, SmtpSecurity
from digest.store.models import Delivery, DeliveryState
from tests.conftest import SmtpServer, cli_env, free_port
from tests.forked_cli import run_digest
from tests.sending_data import add_articles, add_readers
from tests.smtp_faults import FaultHandler, fault_server

# The trustme CA and the server's TLS context of the transport's own TLS tests (fixtures).
from tests.test_send_tls import PASSWORD, USER, ca, server_context  # noqa: F401

READERS = [f"cititor{i:02d}@example.ro" for i in range(40)]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    monkeypatch.chdir(tmp_path)  # no stray .env

    def run(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), env={**cli_env(settings), **env})
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exception
        return result.exit_code, result.stdout, result.stderr

    yield run


def _count(sessions: sessionmaker[Session], state: DeliveryState) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.state == state)) or 0


def test_run_names_each_failed_feed_and_its_reason(  # type: ignore[no-untyped-def]
        invoke, smtp_settings: Settings, smtp_server: SmtpServer,
        sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:1])
    dead = [f"http://127.0.0.1:{free_port()}/rss", f"http://127.0.0.1:{free_port()}/atom.xml"]
    with sessions.begin() as session:
        for url in dead:
            add_feed(session, url)
    code, out, err = invoke(smtp_settings, "run")
    assert code == 1
    for url in dead:
        [line] = [ln for ln in err.splitlines() if ln.startswith(f"FAIL {url}  ")]
        assert len(line) > len(f"FAIL {url}  ") + 5  # with its reason
    assert f"2 feed(s) failed: {dead[0]}, {dead[1]}" in out
    code, out, _ = invoke(smtp_settings, "run", "--format", "json")
    report = json.loads(out)
    assert report["feeds_failed"] == 2
    assert [f["url"] for f in report["failed_feeds"]] == dead
    assert all(f["error"] for f in report["failed_feeds"])


def test_a_rerun_with_deferred_deliveries_not_yet_due_exits_1_and_says_so(  # type: ignore[no-untyped-def]
        invoke, settings: Settings, sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:4])
    handler = FaultHandler(script={r: ["451 4.3.0 try later"] for r in READERS[:2]})
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port)
        code, out, _ = invoke(s, "send")
        assert code == 1 and "deferred 2" in out
        code, out, _ = invoke(s, "send")  # the outage is over, but the retry is not due yet
        assert "sent 0, deferred 0" in out
        assert code == 1 and "2 of this edition still deferred, next retry " in out
        code, out, _ = invoke(s, "send", "--format", "json")
        report = json.loads(out)
        assert (report["deferred"], report["left_deferred"], report["exit_code"]) == (0, 2, 1)
        assert report["next_retry_at"] is not None
        code, out, _ = invoke(s, "send", "--retry-deferred")
        assert code == 0 and "sent 2" in out and "still deferred" not in out


def test_left_pending_counts_every_pending_delivery_not_just_the_claimed_ones(  # type: ignore[no-untyped-def]
        invoke, settings: Settings, sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS)
    handler = FaultHandler(script={READERS[0]: ["550 5.7.1 relaying denied for this sender"]})
    with fault_server(handler) as (_, port):
        s = replace(settings, smtp_port=port)
        code, out, err = invoke(s, "send", DIGEST_BATCH_SIZE="5", DIGEST_SEND_CONCURRENCY="1")
    pending = _count(sessions, DeliveryState.PENDING)
    assert pending == len(READERS)  # the run stopped at once: nobody was sent or failed
    assert code == 1 and "5.7.1" in err
    assert f"; {pending} left pending" in out
    code, out, _ = invoke(s, "status", "--format", "json")
    assert json.loads(out)["editions"][0]["counts"]["pending"] == pending


def test_a_real_send_reports_no_dry_run_totals(  # type: ignore[no-untyped-def]
        invoke, smtp_settings: Settings, smtp_server: SmtpServer,
        sessions: sessionmaker[Session]) -> None:
    add_articles(sessions)
    add_readers(sessions, READERS[:3])
    code, out, _ = invoke(smtp_settings, "send", "--dry-run", "--format", "json")
    dry = json.loads(out)
    assert code == 0 and (dry["composed"], dry["distinct_digests"]) == (3, 1)
    code, out, _ = invoke(smtp_settings, "send", "--format", "json")
    real = json.loads(out)
    assert code == 0 and real["sent"] == 3
    assert "composed" not in real and "distinct_digests" not in real


# --- configuration problems: exit 2 ------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_bad_credentials_untrusted_certificate_and_no_starttls_exit_2(  # type: ignore[no-untyped-def]
        invoke, settings: Settings, sessions: sessionmaker[Session], ca: trustme.CA,  # noqa: F811
        server_context: ssl.SSLContext, tmp_path: Path) -> None:  # noqa: F811
    add_articles(sessions)
    add_readers(sessions, READERS[:2])
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    starttls = replace(settings, smtp_security=SmtpSecurity.STARTTLS)
    auth = {"DIGEST_SMTP_USERNAME": USER, "DIGEST_SMTP_PASSWORD": "wrong",
            "DIGEST_SMTP_CA_FILE": str(ca_file)}
    with fault_server(auth=(USER, PASSWORD), starttls=server_context) as (handler, port):
        code, _, err = invoke(replace(starttls, smtp_port=port), "send", **auth)
        assert code == 2 and "authentication failed" in err and "Hint:" in err
    with fault_server(tls=server_context) as (handler, port):  # our CA file not given
        code, _, err = invoke(replace(settings, smtp_port=port,
                                      smtp_security=SmtpSecurity.TLS), "send")
        assert code == 2 and "not trusted" in err
    with fault_server() as (handler, port):
        code, _, err = invoke(replace(starttls, smtp_port=port), "send")
        assert code == 2 and "does not offer STARTTLS" in err
    assert not handler.accepted
    assert _count(sessions, DeliveryState.PENDING) == 2  # nothing marked failed


# --- the wrong folder ----------------------------------------------------------------------

def _clean_env() -> dict[str, str | None]:
    return {k: None for k in os.environ if k.startswith("DIGEST_")}


@pytest.mark.parametrize("args", [
    ["run"], ["send"], ["send", "--dry-run"], ["status"], ["fetch"], ["subscribers", "list"],
    ["subscribers", "add", "ana@exemplu.ro"], ["feeds", "list"], ["articles", "list"],
    ["preview"], ["serve", "--port", "1"],
])
def test_no_command_but_init_creates_a_database(args: list[str], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {**_clean_env(), "DIGEST_SECRET_KEY": "k" * 32, "DIGEST_POSTAL_ADDRESS": "Str. A 1"}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2, result.output
    assert f"No database at {tmp_path / 'digest.db'}" in result.stderr
    assert f"no .env in {tmp_path}" in result.stderr and "digest init" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_error_says_which_env_was_read_and_init_creates_the_database(
        tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DIGEST_DATABASE_URL=sqlite:///news.db\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}

    def digest(*args: str) -> tuple[int, str]:
        """``digest ARGS`` in a process of its own, from that folder (tests/forked_cli.py)."""
        process = run_digest(*args, env=env, cwd=tmp_path)
        _, err = process.communicate(timeout=60)
        return process.wait(), err

    code, err = digest("status")
    assert code == 2 and "Traceback" not in err
    assert f"No database at {tmp_path / 'news.db'} (settings from {tmp_path / '.env'})" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]
    assert digest("init")[0] == 0
    assert digest("status")[0] == 0


def test_a_database_other_than_sqlite_or_postgresql_is_refused_before_any_connection(
        tmp_path: Path) -> None:
    """MariaDB answers on this machine, and SQLAlchemy would drive it: the refusal must come
    from digest, at once, not from the send's own SQL half-way through an edition."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_DATABASE_URL"] = "mysql+pymysql://root@127.0.0.1:3306/digest"
    process = run_digest("init", env=env, cwd=tmp_path)
    _, err = process.communicate(timeout=60)
    assert process.wait() == 2 and "Traceback" not in err, err
    assert "names a mysql database; digest runs on SQLite or PostgreSQL only" in err, err
    assert "postgresql+psycopg://user@host/db" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    env["DIGEST_DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/test"
    process = run_digest("status", env=env, cwd=tmp_path)
    _, err = process.communicate(timeout=60)
    assert process.wait() == 2 and "Traceback" not in err, err
    assert "write postgresql+psycopg:// instead" in err, err


# --- exit codes, documented --------------------------------------------------------------

def _leaf_commands(group: click.Group, prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += _leaf_commands(command, f"{prefix}{name} ")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def test_every_command_lists_its_exit_codes_in_help_and_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    paths = _leaf_commands(main)
    assert sorted(paths) == sorted(EXIT_CODES)
    for path in paths:
        result = CliRunner().invoke(main, [*path.split(), "--help"], terminal_width=100)
        assert result.exit_code == 0, path
        help_text = result.output.split("Exit codes:", 1)[1]
        for code, _text in EXIT_CODES[path]:
            assert f"\n    {int(code):<3} " in help_text, (path, code)
        row = f"| `digest {path}` | " + "; ".join(
            f"`{int(code)}` {text}" for code, text in EXIT_CODES[path]) + " |"
        assert row in readme, f"README's exit-code table lacks: {row}"
    assert "`1` some rows were bad or repeated" in readme  # import exits 1 on bad rows
