"""The Python API (``digest.api``) as an integrator uses it, end to end, and type-checked.

This file is itself checked with ``mypy --strict`` (the last test), so a change that breaks the
API's types for callers fails here, not in an integrator's CI.
"""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from digest import api
from tests.conftest import SmtpServer

HERE = Path(__file__)


def test_an_integrator_adds_imports_and_sends(smtp_settings: api.Settings,
                                             smtp_server: SmtpServer, tmp_path: Path) -> None:
    store = api.open_store(smtp_settings)
    ana = api.add_subscriber(store, "ana@exemplu.ro", name="Ana Bălan", topics=["Sport"])
    assert isinstance(ana, int)
    people = tmp_path / "people.csv"
    people.write_text("email,name\nion@exemplu.ro,Ion\nnot-an-address,X\n", encoding="utf-8")
    imported = api.import_subscribers(store, people)
    assert (imported.imported, imported.invalid) == (1, 1)
    articles = tmp_path / "articles.jsonl"
    articles.write_text(json.dumps({"url": "https://stiri.example.ro/a/1", "title": "Meci",
                                    "topics": ["sport"]}) + "\n", encoding="utf-8")
    assert api.import_articles(store, articles).new == 1

    report = api.send_edition(store)

    assert (report.sent, report.exit_code) == (2, 0)
    got = set()
    for received in smtp_server.handler.received:
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        got.add(message["To"].addresses[0].addr_spec)
    assert got == {"ana@exemplu.ro", "ion@exemplu.ro"}
    assert api.send_edition(store).sent == 0  # a rerun sends nothing twice


def test_errors_are_digest_errors_with_a_hint(settings: api.Settings) -> None:
    store = api.open_store(settings)
    api.add_subscriber(store, "ana@exemplu.ro")
    with pytest.raises(api.DigestError) as raised:
        api.add_subscriber(store, "ana@exemplu.ro")
    assert "already a subscriber" in raised.value.message
    assert raised.value.hint  # every error says how to fix it


def test_the_api_is_typed_for_callers() -> None:
    mypy_api = pytest.importorskip("mypy.api")
    package = Path(api.__file__).parent
    assert (package / "py.typed").is_file()  # PEP 561: installed copies are checked too
    out, err, status = mypy_api.run(["--strict", "--follow-imports=silent", str(HERE)])
    assert status == 0, out + err
