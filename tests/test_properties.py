"""Property tests (hypothesis) for the hand-written encoders of ``digest.render`` and the
reply journal's lines (``run.journal``: the exact JSON a reconcile reads back).

For arbitrary Unicode: quoted-printable bodies with per-reader values, RFC 2047 header words and
their folding, and DKIM relaxed canonicalization (checked against dkimpy's own implementation)
round-trip through ``email.message_from_bytes(..., policy=email.policy.default)`` unchanged,
stay 7-bit and keep every line within 998 octets.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest
from dkim.canonicalization import Relaxed
from hypothesis import example, given, settings
from hypothesis import strategies as st

from digest.delivery.claims import Claim
from digest.render.dkim import relaxed_body, relaxed_header
from digest.render.mime import (
    QpTemplate,
    clean_header_text,
    encode_phrase,
    format_mailbox,
    header_line,
)
from digest.run.journal import Journal
from digest.transport.replies import Outcome, Reply

MAX_LINE = 998
# Text a reader could be shown: any Unicode but lone surrogates (not encodable as UTF-8).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=400)
# Per-reader values are single-line (URLs, addresses): a CR or LF in them is never rendered.
VALUE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"),
                max_size=120)
HEADER_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def assert_wire_safe(raw: bytes) -> None:
    assert raw.isascii(), "the raw message must be 7-bit clean"
    assert max(len(line) for line in raw.split(b"\r\n")) <= MAX_LINE


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(TEXT, min_size=1, max_size=4), values=st.lists(VALUE, min_size=3,
                                                                      max_size=3))
@example(parts=["a" * 200 + "é", " =\n.", "x"], values=["=", " ", "https://x/" + "é" * 90])
def test_quoted_printable_body_round_trips_with_values(parts: list[str],
                                                      values: list[str]) -> None:
    names = [f"v{i}" for i in range(len(parts) - 1)]
    markers = {name: f"\x00MARK{i}\x00" for i, name in enumerate(names)}
    text = "".join(p + (markers[names[i]] if i < len(names) else "")
                   for i, p in enumerate(parts))
    template = QpTemplate(text, markers)
    filled = {name: values[i % len(values)] for i, name in enumerate(names)}
    body = template.fill(filled)
    raw = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body)
    assert_wire_safe(raw)
    # Text parts are CRLF on the wire; compare lines, as a mail client shows them.
    decoded = parse(raw).get_content().replace("\r\n", "\n")
    expected = template.text_for(filled).replace("\r\n", "\n").replace("\r", "\n")
    assert decoded == expected


@settings(max_examples=200, deadline=None)
@given(subject=HEADER_TEXT, name=HEADER_TEXT)
@example(subject="Știri de Argeș: " + "ă" * 60, name="Ana-Maria Bălan-Popescu din Câmpulung")
@example(subject="a  b\tc", name='"quoted" \\ name')
def test_rfc2047_words_and_folding_round_trip(subject: str, name: str) -> None:
    raw = (header_line("Subject", encode_phrase(subject, quote_specials=False))
           + header_line("To", format_mailbox(name, "ana@example.org"))
           + b"MIME-Version: 1.0\r\n\r\nbody\r\n")
    assert_wire_safe(raw)
    message = parse(raw)
    assert str(message["Subject"]) == clean_header_text(subject)
    to = message["To"].addresses[0]
    assert to.addr_spec == "ana@example.org"  # never an encoded word inside the address
    want = clean_header_text(name)
    if not any(len(run.encode()) > 39 for run in non_ascii_runs(want)):
        assert to.display_name == want
    # RFC 2047 decoders join adjacent encoded words; CPython's address parser puts a space
    # between them. The encoder keeps them apart (ASCII words between), so both agree, except
    # for a run of non-ASCII words too long for one encoded word: there only spaces differ.
    if not want.isascii():
        phrase = raw.split(b"\r\nMIME-Version")[0].split(b"To: ", 1)[1].rsplit(b" <", 1)[0]
        decoded = str(make_header(decode_header(phrase.decode().replace("\r\n ", " "))))
        unquoted = re.sub(r'"((?:[^"\\]|\\.)*)"',
                          lambda m: re.sub(r"\\(.)", r"\1", m[1]), decoded)
        assert unquoted == want
        assert to.display_name.replace(" ", "") == want.replace(" ", "")


def non_ascii_runs(text: str) -> list[str]:
    """The runs of consecutive words with non-ASCII characters, as the encoder groups them."""
    return [run.strip() for run in re.split(r"(?:^| )[\x00-\x7f]+(?= |$)", text) if run.strip()]


WSP_LINE = st.text(st.sampled_from("ab \t.=-"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(WSP_LINE, max_size=8))
def test_relaxed_body_matches_dkimpy(lines: list[str]) -> None:
    # Bodies as we sign them: CRLF line ends, the last one included. (Without that final CRLF
    # dkimpy keeps a lone trailing space that RFC 6376 section 3.4.4 removes; ours follows the
    # RFC, and we never sign such a body.)
    body = b"".join(line.encode("ascii") + b"\r\n" for line in lines)
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.sampled_from("ABcd-"), min_size=1, max_size=10).map(str.strip)
       .filter(bool),
       pieces=st.lists(st.text(st.sampled_from("xy \t=;"), max_size=12), min_size=1,
                       max_size=4))
def test_relaxed_header_matches_dkimpy(name: str, pieces: list[str]) -> None:
    # A folded field: pieces joined by CRLF + WSP, as on the wire.
    value = "\r\n ".join(pieces).encode("ascii")
    ((want_name, want_value),) = Relaxed.canonicalize_headers([(name.encode(), value)])
    assert relaxed_header(name.encode(), value) == want_name + b":" + want_value[:-2]


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60), message_id=st.text(max_size=40),
       code=st.one_of(st.none(), st.integers(200, 599)),
       article_ids=st.lists(st.integers(1, 10**9), max_size=12),
       ids=st.tuples(*(st.integers(0, 2**62) for _ in range(4))))
@example(text='say "hi"\\\n\t\0é', message_id="<1.2@example.ro>", code=None, article_ids=[],
         ids=(1, 2, 3, 0))
def test_journal_lines_are_the_json_the_reconcile_reads(
        tmp_path_factory: pytest.TempPathFactory, text: str, message_id: str,
        code: int | None, article_ids: list[int], ids: tuple[int, int, int, int]) -> None:
    """The journal writes each line with an f-string and cached pieces; it must be exactly the
    JSON document ``json.dumps`` would write, whatever the reply text or Message-ID."""
    folder = tmp_path_factory.mktemp("journal")
    journal = Journal(folder, "w")
    cutoff = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
    for outcome in (Outcome.SENT, Outcome.DEFERRED):  # the second line reuses the cached parts
        journal.write(Claim(*ids), Reply(outcome, code, text), cutoff, message_id,
                      tuple(article_ids))
    journal.close(remove=False)
    lines = (folder / "w.1.jsonl").read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [
        [*ids, outcome.value, code, text, cutoff.isoformat(), message_id, article_ids]
        for outcome in (Outcome.SENT, Outcome.DEFERRED)]
    assert lines[0] == json.dumps([*ids, "sent", code, text, cutoff.isoformat(), message_id,
                                   article_ids], ensure_ascii=False,
                                  separators=(",", ":")).encode()
