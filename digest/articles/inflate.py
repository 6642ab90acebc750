"""Undoing ``Content-Encoding`` as a stream, a bounded piece at a time.

httpx's own decoders inflate each network chunk in one call, so a few hundred compressed bytes
can become hundreds of megabytes before a size cap sees them -- and ``gzip, gzip`` multiplies
that. Here every layer hands on at most ``STEP`` decoded bytes per step (zlib's ``max_length``),
so the caller, who counts the bytes as they come, stops a bomb a piece past its cap.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

__all__ = ["STEP", "UnsupportedEncoding", "decoded_stream", "encodings"]

STEP = 64 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_IDENTITY = frozenset({"", "identity"})
_KNOWN = frozenset({"gzip", "x-gzip", "deflate"})


class UnsupportedEncoding(ValueError):
    """The server used a Content-Encoding we did not ask for and cannot undo."""


def encodings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding header, in the order they were applied."""
    found = [part.strip().lower() for part in (header or "").split(",")]
    codings = [c for c in found if c not in _IDENTITY]
    for coding in codings:
        if coding not in _KNOWN:
            raise UnsupportedEncoding(coding)
    return codings


def _inflate(chunks: Iterable[bytes], coding: str) -> Iterator[bytes]:
    first = True
    raw_deflate = False
    inflater = zlib.decompressobj(_GZIP_WBITS if coding != "deflate" else zlib.MAX_WBITS)
    for chunk in chunks:
        data = chunk
        while data:
            try:
                out = inflater.decompress(data, STEP)
            except zlib.error:
                # "deflate" is sent both zlib-wrapped (as the RFC says) and raw (as IIS did).
                if coding == "deflate" and first and not raw_deflate:
                    raw_deflate = True
                    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            first = False
            data = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data and coding != "deflate":
                # Concatenated gzip members are one body (RFC 1952): start the next member.
                data = inflater.unused_data
                inflater = zlib.decompressobj(_GZIP_WBITS)
            if out:
                yield out
            # A full step may leave more output inside zlib even with no input left.
            while not data and len(out) == STEP and not inflater.eof:
                out = inflater.decompress(b"", STEP)
                if out:
                    yield out
    tail = inflater.flush()
    if tail:
        yield tail


def decoded_stream(chunks: Iterable[bytes], codings: list[str]) -> Iterator[bytes]:
    """``chunks`` as received, with each coding undone (the last applied is undone first)."""
    stream: Iterable[bytes] = chunks
    for coding in reversed(codings):
        stream = _inflate(stream, coding)
    yield from stream
