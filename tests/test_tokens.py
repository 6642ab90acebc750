"""Link tokens: signed, purpose-bound, opaque; unsubscribe never expires, confirm does."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from digest.render.tokens import (
    CONFIRM_MAX_AGE_DAYS,
    InvalidToken,
    Purpose,
    make_bounce_token,
    make_token,
    read_bounce_token,
    read_token,
)

SECRET = "token-test-secret-0123456789"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("purpose", [Purpose.UNSUBSCRIBE, Purpose.PREFERENCES])
def test_round_trip_for_links_that_never_expire(purpose: Purpose) -> None:
    for subscriber_id in (1, 42, 2**40):
        token = make_token(SECRET, purpose, subscriber_id)
        assert read_token(SECRET, purpose, token) == subscriber_id
        assert make_token(SECRET, purpose, subscriber_id) == token  # deterministic


def test_unsubscribe_token_still_works_years_later() -> None:
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, 7, now=NOW)
    far = NOW + dt.timedelta(days=3650)
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, token, now=far) == 7


def test_confirm_token_expires() -> None:
    token = make_token(SECRET, Purpose.CONFIRM, 7, now=NOW)
    ok = NOW + dt.timedelta(days=CONFIRM_MAX_AGE_DAYS)
    assert read_token(SECRET, Purpose.CONFIRM, token, now=ok) == 7
    with pytest.raises(InvalidToken, match="expired"):
        read_token(SECRET, Purpose.CONFIRM, token, now=ok + dt.timedelta(days=1))
    with pytest.raises(ValueError):
        make_token(SECRET, Purpose.CONFIRM, 7)  # an expiring token needs now=
    with pytest.raises(ValueError):
        read_token(SECRET, Purpose.CONFIRM, token)


@pytest.mark.parametrize("wrong", [Purpose.CONFIRM, Purpose.PREFERENCES])
def test_wrong_purpose_is_rejected(wrong: Purpose) -> None:
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, 7)
    with pytest.raises(InvalidToken):
        read_token(SECRET, wrong, token, now=NOW)
    assert make_token(SECRET, Purpose.PREFERENCES, 7) != token


def test_every_single_character_change_is_rejected() -> None:
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, 7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(token):
        replacement = alphabet[(alphabet.index(ch) + 1) % len(alphabet)]
        tampered = token[:i] + replacement + token[i + 1:]
        with pytest.raises(InvalidToken):
            read_token(SECRET, Purpose.UNSUBSCRIBE, tampered)


@pytest.mark.parametrize("garbage", ["", "x", "!!!!", "a" * 48, "a" * 500, "é" * 10])
def test_malformed_tokens_are_rejected(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(SECRET, Purpose.UNSUBSCRIBE, garbage)


def test_another_secret_rejects_the_token() -> None:
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, 7)
    with pytest.raises(InvalidToken):
        read_token("another-secret", Purpose.UNSUBSCRIBE, token)


def test_tokens_are_opaque_and_url_safe() -> None:
    tokens = [make_token(SECRET, Purpose.UNSUBSCRIBE, i) for i in (1, 2, 3, 256)]
    assert len(set(tokens)) == 4
    for token in tokens:
        assert token.isascii() and all(c.isalnum() or c in "-_" for c in token)
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # The id is masked: neither its bytes nor small numbers appear in the clear.
        assert (1).to_bytes(8, "big") not in raw and b"\x00" * 6 not in raw
    # Consecutive ids share no common prefix beyond chance (no visible counter).
    assert tokens[0][:6] != tokens[1][:6]


def test_bounce_tokens_fit_a_local_part_and_survive_lower_casing() -> None:
    from digest.render.tokens import make_bounce_token, read_bounce_token

    token = make_bounce_token(SECRET, 2**32 - 1, 2**48 - 1)
    assert len(token) == 32 and token == token.lower() and token.isalnum()
    assert read_bounce_token(SECRET, token.upper()) == (2**32 - 1, 2**48 - 1)
    assert make_bounce_token(SECRET, 1, 2) != make_bounce_token(SECRET, 2, 1)
    flipped = token[:5] + ("a" if token[5] != "a" else "b") + token[6:]
    for bad in (flipped, token[:-1], token + "a", "not base32!", ""):
        with pytest.raises(InvalidToken):
            read_bounce_token(SECRET, bad)
    with pytest.raises(InvalidToken):
        read_bounce_token("another secret", token)


def test_tokens_made_by_earlier_versions_still_read_and_are_made_alike() -> None:
    """Links already in readers' inboxes: whatever changes in how tokens are computed, these
    (made by the first release) must still be read, and made identically."""
    secret = "test-secret-key-0123456789abcdef"
    made = [(Purpose.UNSUBSCRIBE, 42, None, "HJ9c5fhp-oYtR1-4bYCPLUW-AzNgHplcmQIzyQiEP-JgKK67"),
            (Purpose.PREFERENCES, 2**40 + 3, None,
             "b0qk-YhP4Zcb0LQ2af51niiHS4F6ACeLDZ8nvh61W9B4bLI_"),
            (Purpose.CONFIRM, 7, dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
             "ouzxmkZUC5xijcku3BWkFXp9l-NB5QEQ5peugacvC3I4CrMe")]
    for purpose, subscriber_id, now, token in made:
        assert make_token(secret, purpose, subscriber_id, now=now) == token
        assert read_token(secret, purpose, token, now=now) == subscriber_id
    assert make_bounce_token(secret, 12, 34567) == "jtzjfnafzuis3ki2zsbpbgtpuhhbvtuf"
    assert read_bounce_token(secret, "JTZJFNAFZUIS3KI2ZSBPBGTPUHHBVTUF") == (12, 34567)
