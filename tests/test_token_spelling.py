"""A token has one spelling: canonical base32 as issued now, or canonical base64url as tokens
were issued before (issue 18); any other text is refused (one URL, one cache entry)."""

from __future__ import annotations

import base64
import binascii
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certissuer.errors import TokenError
from certissuer.token import TokenKey, make_token, read_token

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
KEY = TokenKey.generate()


def lenient(text: str) -> bytes | None:
    """What a forgiving decoder (Python's, before tokens had one spelling) makes of `text`."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def legacy(token: str) -> str:
    """A base32 token from `make_token` spelled as tokens were before: base64url."""
    data = base64.b32decode(token + "=" * (-len(token) % 8))
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_with(length_mod_4: int, *, need: str = "") -> str:
    """A genuine token whose length is `length_mod_4` modulo 4 and that contains `need`."""
    for i in range(10_000):
        number = "KĐ-2026-" + "0" * (i % 3) + f"{i:06d}"
        tok = legacy(make_token(KEY, number=number, issued=date(2026, 11, 27), digest=f"{i:064x}"))
        if len(tok) % 4 == length_mod_4 and all(c in tok for c in need):
            return tok
    raise AssertionError("no such token")


def with_unused_bits(tok: str) -> str:
    """`tok` with the last character's unused low bits set: the same bytes, another spelling."""
    unused = {2: 4, 3: 2}[len(tok) % 4]
    last = ALPHABET.index(tok[-1])
    return tok[:-1] + ALPHABET[last | ((1 << unused) - 1)]


@pytest.mark.parametrize("mod", [2, 3])
def test_canonical_token_is_accepted(mod: int) -> None:
    tok = token_with(mod)
    assert read_token(tok, [KEY.public]).issued == date(2026, 11, 27)


def _variants() -> list[tuple[str, str, str]]:
    """(name, canonical token, another spelling of the same bytes)."""
    two, three = token_with(2, need="-_"), token_with(3, need="-_")
    return [
        ("one '=' of padding", three, three + "="),
        ("two '=' of padding", two, two + "=="),
        ("too much padding", three, three + "==="),
        ("'+' and '/' of standard base64", three, three.replace("-", "+").replace("_", "/")),
        ("only '+'", two, two.replace("-", "+")),
        ("spaces inside", two, two[:40] + "   " + two[40:]),
        ("a line break inside", three, three[:64] + "\r\n" + three[64:]),
        ("tabs and newlines", two, two[:10] + "\t\n\t\n" + two[10:]),
        ("a dot inside", three, three[:30] + ".." + three[30:]),
        ("non-zero trailing bits (4 unused)", two, with_unused_bits(two)),
        ("non-zero trailing bits (2 unused)", three, with_unused_bits(three)),
    ]


@pytest.mark.parametrize(
    ("name", "canonical", "variant"), [pytest.param(*v, id=v[0]) for v in _variants()]
)
def test_other_spellings_of_a_genuine_token_are_refused(
    name: str, canonical: str, variant: str
) -> None:
    # Each variant carries the genuine token's very bytes (a lenient decoder accepts it) ...
    assert variant != canonical and lenient(variant) == raw(canonical), name
    # ... and is still refused: only the canonical spelling is a token.
    with pytest.raises(TokenError, match=r"padding|only A-Z|canonical|base64url"):
        read_token(variant, [KEY.public])
    assert read_token(canonical, [KEY.public]).number.startswith("KĐ-2026-")


def test_refusals_say_what_is_wrong() -> None:
    tok = token_with(3, need="-")
    with pytest.raises(TokenError, match="'=' padding"):
        read_token(tok + "=", [KEY.public])
    with pytest.raises(TokenError, match=r"contains '\+' at position \d+"):
        read_token(tok.replace("-", "+"), [KEY.public])
    with pytest.raises(TokenError, match=r"contains '\\n'"):
        read_token(tok[:5] + "\n" + tok[5:], [KEY.public])
    with pytest.raises(TokenError, match="unused bits are set"):
        read_token(with_unused_bits(tok), [KEY.public])


# -- properties ---------------------------------------------------------------------------

_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "replace", "delete", "append"]),
        st.integers(min_value=0, max_value=200),
        st.sampled_from([*ALPHABET, "=", "+", "/", " ", "\n", "\r", "\t", ".", "%", "\x00", "é"]),
    ),
    min_size=1,
    max_size=4,
)


def _edit(tok: str, edits: list[tuple[str, int, str]]) -> str:
    for what, at, char in edits:
        at %= len(tok) + 1
        if what == "insert":
            tok = tok[:at] + char + tok[at:]
        elif what == "replace" and at < len(tok):
            tok = tok[:at] + char + tok[at + 1 :]
        elif what == "delete" and len(tok) > 1:
            tok = tok[: at % len(tok)] + tok[at % len(tok) + 1 :]
        else:
            tok += char
    return tok


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    number=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
    ),
    days=st.integers(min_value=0, max_value=2**16 - 1),
    digest=st.binary(min_size=32, max_size=32),
    edits=_EDITS,
)
def test_every_accepted_token_re_encodes_to_itself(
    number: str, days: int, digest: bytes, edits: list[tuple[str, int, str]]
) -> None:
    issued = make_token(
        KEY, number=number, issued=date(2000, 1, 1) + timedelta(days=days), digest=digest.hex()
    )
    claims = read_token(issued, [KEY.public])  # what make_token writes is always read back
    assert claims.number == number
    tok = legacy(issued)  # and so is the older spelling of the same bytes
    assert read_token(tok, [KEY.public]) == claims and raw(tok).startswith(b"\x01")
    assert base64.urlsafe_b64encode(raw(tok)).rstrip(b"=").decode() == tok

    # Any other text is accepted only if it is the canonical spelling of its own bytes; as the
    # signature binds the bytes, that means it is the very same token.
    variant = _edit(tok, edits)
    try:
        read_token(variant, [KEY.public])
    except TokenError:
        return
    assert base64.urlsafe_b64encode(raw(variant)).rstrip(b"=").decode() == variant
    assert variant == tok


_SPELLING = (
    "padding",
    "only A-Z",
    "not valid base64url",
    "not valid base32",
    "canonical",
    "empty or too long",
)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from([*ALPHABET] * 8 + ["=", "+", "/", " ", "\n", "."]),
        min_size=100,
        max_size=200,
    )
)
def test_text_that_gets_past_the_spelling_check_is_canonical(text: str) -> None:
    # Random text never carries a valid signature; what matters is how far it got. Past the
    # spelling check (refused for its contents: version, key, signature), it must be canonical.
    with pytest.raises(TokenError) as refused:
        read_token(text, [KEY.public])
    if any(word in str(refused.value) for word in _SPELLING):
        return
    decoded = lenient(text)
    assert decoded is not None
    assert base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() == text


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def b32raw(token: str) -> bytes | None:
    """What a forgiving base32 decoder makes of `token` (case folded, padding added)."""
    try:
        return base64.b32decode(token + "=" * (-len(token) % 8), casefold=True)
    except (binascii.Error, ValueError):
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    number=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
    ),
    days=st.integers(min_value=0, max_value=2**16 - 1),
    digest=st.binary(min_size=32, max_size=32),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["insert", "replace", "delete", "append"]),
            st.integers(min_value=0, max_value=200),
            st.sampled_from([*_BASE32, *_BASE32.lower(), "=", "0", "1", "8", "-", "_", " "]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_every_accepted_base32_token_is_the_issued_one(
    number: str, days: int, digest: bytes, edits: list[tuple[str, int, str]]
) -> None:
    tok = make_token(
        KEY, number=number, issued=date(2000, 1, 1) + timedelta(days=days), digest=digest.hex()
    )
    assert base64.b32encode(b32raw(tok) or b"").rstrip(b"=").decode() == tok
    assert read_token(tok, [KEY.public]).number == number
    variant = _edit(tok, edits)
    try:
        read_token(variant, [KEY.public])
    except TokenError:
        return
    assert variant in (tok, legacy(tok))


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("lower case", lambda t: t[:2] + t[2:].lower()),
        ("one '=' of padding", lambda t: t + "="),
        ("padding to a multiple of 8", lambda t: t + "=" * (-len(t) % 8 or 8)),
        ("a space inside", lambda t: t[:40] + " " + t[40:]),
        ("a digit outside base32", lambda t: t[:40] + "8" + t[41:]),
    ],
)
def test_other_spellings_of_a_base32_token_are_refused(name: str, change: Any) -> None:
    tok = make_token(KEY, number="KĐ-2026-000001", issued=date(2026, 11, 27), digest="ab" * 32)
    variant = change(tok)
    assert variant != tok, name
    with pytest.raises(TokenError, match=r"padding|only A-Z and 2-7|base32|canonical"):
        read_token(variant, [KEY.public])


def test_a_base32_token_with_unused_bits_set_is_refused() -> None:
    for i in range(50):
        tok = make_token(
            KEY, number=f"KĐ-2026-{i:06d}", issued=date(2026, 11, 27), digest="ab" * 32
        )
        unused = {2: 2, 4: 4, 5: 1, 7: 3}.get(len(tok) % 8)
        if unused:
            last = _BASE32.index(tok[-1])
            variant = tok[:-1] + _BASE32[last | ((1 << unused) - 1)]
            if variant != tok:
                assert b32raw(variant) == b32raw(tok)  # the same bytes to a lenient decoder
                with pytest.raises(TokenError, match="unused bits are set"):
                    read_token(variant, [KEY.public])
                return
    raise AssertionError("no token with unused bits found")
