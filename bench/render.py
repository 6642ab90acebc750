"""Benchmark the renderer: one render() per digest, then message_for() per reader.

    .venv/bin/python bench/render.py [--readers 20000] [--dkim-readers 300]

Prints the one-off render time and the per-message cost with and without DKIM. The digest has
DIGEST_MAX_ITEMS (10) articles with long excerpts and images, half the readers have non-ASCII
names (RFC 2047 To headers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.compose import ArticleView, Digest, EditionView, ReaderView
from digest.config.settings import Settings
from digest.render.message import Renderer
from digest.store.models import Frequency

CUTOFF = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
TEXT = "Consiliul Județean Argeș a aprobat miercuri bugetul pentru drumurile din zonă. " * 20


def digest() -> Digest:
    articles = tuple(
        ArticleView(i, f"https://stiri.example.ro/articol/{i}", f"Știrea {i}: „titlu” lung " * 3,
                    TEXT, "", CUTOFF - dt.timedelta(hours=i),
                    image_url=f"https://stiri.example.ro/img/{i}.jpg")
        for i in range(10))
    return Digest(EditionView(7, Frequency.DAILY, dt.date(2026, 11, 28), CUTOFF), articles)


def readers(count: int) -> list[ReaderView]:
    return [ReaderView(i, f"cititor{i}@example.ro", "Ștefan Mureșan" if i % 2 else "Ana Pop")
            for i in range(1, count + 1)]


def per_message(renderer: Renderer, count: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    rendered = renderer.render(digest())
    render_ms = (time.perf_counter() - start) * 1000
    people = readers(count)
    start = time.perf_counter()
    size = 0
    for reader in people:
        size = len(rendered.message_for(reader).data)
    return render_ms, (time.perf_counter() - start) / count * 1e6, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20000)
    parser.add_argument("--dkim-readers", type=int, default=300)
    args = parser.parse_args()
    settings = Settings(site_name="Știri de Argeș", base_url="https://stiri.example.ro/digest",
                        from_addr="Știri de Argeș <stiri@example.ro>", secret_key="bench" * 8,
                        postal_address="Str. Exemplului 1, Pitești")
    render_ms, us, size = per_message(Renderer(settings), args.readers)
    print(f"render() once: {render_ms:.1f} ms; message_for(): {us:.1f} µs/message "
          f"({args.readers} readers, {size} bytes each, no DKIM)")

    with tempfile.TemporaryDirectory() as tmp:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path = Path(tmp) / "dkim.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
        signing = Settings(**{**settings.__dict__, "dkim_domain": "example.ro",
                              "dkim_selector": "bench", "dkim_private_key_file": path})
        _, us, size = per_message(Renderer(signing), args.dkim_readers)
        print(f"message_for() with DKIM (rsa-sha256, 2048-bit): {us:.0f} µs/message "
              f"({args.dkim_readers} readers, {size} bytes each)")


if __name__ == "__main__":
    main()
