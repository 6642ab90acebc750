"""``digest demo``: the whole job on this machine with nothing configured.

It ignores ``.env`` and ``DIGEST_*`` on purpose (a demo must never mail real people through a
real server): a SQLite file in the folder, sample articles (written for this demo) and a few
readers, a local sink on a free port, today's digest sent through it, and where to look.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from digest.config.settings import Settings, SmtpSecurity
from digest.readers.lifecycle import add_subscriber, find_subscriber
from digest.run.commands import send_digest
from digest.run.report import RunReport
from digest.store.engine import make_engine, make_sessionmaker, upgrade
from digest.store.models import Article, Frequency, utcnow
from digest.transport.sink import Sink, free_port

__all__ = ["DemoResult", "run_demo"]

DATABASE = "digest-demo.db"
OUTBOX = "outbox"

# (title, summary, topics, hours before now). Original sample text for the demo.
ARTICLES = [
    ("Piața Centrală din Pitești se mută pentru o lună, pe durata lucrărilor",
     "Tarabele producătorilor locali vor fi amenajate în parcarea Stadionului Nicolae "
     "Dobrin, iar primăria promite că lucrările la acoperiș se încheie până la sărbători.",
     ["local"], 1.0),
    ("Curtea de Argeș: mănăstirea primește vizitatori și după-amiaza",
     "Programul de vizitare se prelungește până la ora 19:00, iar ghizii voluntari oferă "
     "tururi gratuite în fiecare sâmbătă.", ["cultura", "turism"], 2.5),
    ("Elevii din Câmpulung au câștigat concursul național de robotică",
     "Echipa liceului „Dinicu Golescu” a construit un robot care sortează deșeurile și a "
     "obținut locul întâi la etapa de la Iași.", ["educatie"], 4.0),
    ("Drumul spre Transfăgărășan se închide la noapte pentru curățarea zăpezii",
     "Drumarii avertizează că circulația va fi oprită între Arefu și Bâlea Lac de la ora "
     "22:00 până dimineață; șoferii sunt rugați să folosească echipament de iarnă.",
     ["local", "trafic"], 6.0),
    ("Meciul de baschet BCM Pitești – CSM Oradea se joacă fără spectatori în deplasare",
     "Clubul argeșean le mulțumește suporterilor și anunță transmisiune în direct pe "
     "pagina oficială.", ["sport"], 9.0),
]

READERS = [
    ("ana.popescu@example.ro", "Ana Popescu", []),
    ("ion.ionescu@example.ro", "Ion Ionescu", ["sport", "local"]),
    ("elena.bratianu@example.ro", "Elena Brătianu", ["cultura", "educatie"]),
]


@dataclass(frozen=True)
class DemoResult:
    report: RunReport
    outbox: Path
    database: Path
    files: list[Path]
    port: int


def demo_settings(folder: Path, port: int) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder / DATABASE}",
        site_name="Știri de Argeș (demo)",
        site_url="https://stiri.example.ro",
        base_url="http://localhost:8000",
        postal_address="Str. Victoriei 1, Pitești 110017, România",
        from_addr="Știri de Argeș <stiri@example.ro>",
        secret_key=secrets.token_urlsafe(32),
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security=SmtpSecurity.NONE,  # the sink is on this machine only
        smtp_timeout=10.0,
        send_concurrency=2,
    )


def _seed(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    now = utcnow()
    with sessions() as session:
        known = set(session.scalars(select(Article.url)))
        for i, (title, summary, topics, hours) in enumerate(ARTICLES, start=1):
            url = f"https://stiri.example.ro/demo/{i}"
            if url in known:
                continue
            session.add(Article(url=url, guid=url, title=title, summary_text=summary,
                                summary_html=f"<p>{summary}</p>", topics=topics,
                                published_at=now - dt.timedelta(hours=hours)))
        for address, name, topics in READERS:
            if find_subscriber(session, address) is None:
                add_subscriber(session, address, name=name, topics=topics,
                               frequency=Frequency.DAILY)
        session.commit()
    engine.dispose()


def run_demo(folder: Path, on_message: Callable[[str], None] | None = None) -> DemoResult:
    """Seed, start a sink, send today's digest through it, stop the sink."""
    folder = folder.resolve()
    outbox = folder / OUTBOX
    port = free_port()
    settings = demo_settings(folder, port)
    _seed(settings)
    before = set(outbox.glob("*.eml")) if outbox.exists() else set()
    engine = make_engine(settings.database_url)
    try:
        with Sink(outbox, port=port, on_message=on_message):
            report = send_digest(engine, settings)
    finally:
        engine.dispose()
    files = sorted(set(outbox.glob("*.eml")) - before)
    return DemoResult(report, outbox, folder / DATABASE, files, port)
