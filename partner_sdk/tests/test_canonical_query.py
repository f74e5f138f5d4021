"""CANONICAL_QUERY edge cases: each expectation worked out by hand from the document."""

from __future__ import annotations

import pytest

from openbank_partner import canonical_query


@pytest.mark.parametrize(("query", "canonical"), [
    ("", ""),
    ("a=1", "a=1"),
    ("date=2026-11-30&b=x%20y&a=1", "a=1&b=x%20y&date=2026-11-30"),
    # repeated names: sorted by value too, as strings ("10" < "2")
    ("a=2&a=1&a=10", "a=1&a=10&a=2"),
    ("b=1&a=2&a=1", "a=1&a=2&b=1"),
    # `+` is a space, written back as %20; a literal plus arrives as %2B and stays escaped
    ("q=a+b", "q=a%20b"),
    ("q=a%20b", "q=a%20b"),
    ("q=a%2Bb", "q=a%2Bb"),
    ("a+b=1", "a%20b=1"),
    # UTF-8, upper-case escapes whatever the input's case, raw non-ASCII encoded
    ("city=%e4%ba%ac", "city=%E4%BA%AC"),
    ("city=京", "city=%E4%BA%AC"),
    # empty values, no `=`, empty name
    ("a=&b=", "a=&b="),
    ("flag", "flag="),
    ("a=&a", "a=&a="),
    ("=1", "=1"),
    # only the first `=` splits
    ("a=b=c", "a=b%3Dc"),
    # empty parts are skipped
    ("a=1&&b=2&", "a=1&b=2"),
    ("&", ""),
    # unreserved characters stay, everything else is escaped
    ("k=-_.~", "k=-_.~"),
    ("k=%21*'()", "k=%21%2A%27%28%29"),
    ("next=http://x/y?z=1", "next=http%3A%2F%2Fx%2Fy%3Fz%3D1"),
    ("k=%7e", "k=~"),
    # sorted decoded, by code point: "~" (U+007E) before "é" (U+00E9), though "%C3..." < "~" encoded
    ("%C3%A9=1&~=2", "~=2&%C3%A9=1"),
    # U+FFFD before U+1F600 (UTF-16 order would put the astral one first)
    ("%F0%9F%98%80=1&%EF%BF%BD=2", "%EF%BF%BD=2&%F0%9F%98%80=1"),
    # bytes that are not UTF-8 decode to U+FFFD; a malformed escape is a literal "%"
    ("x=%FF", "x=%EF%BF%BD"),
    ("x=%zz", "x=%25zz"),
])
def test_canonical_query(query: str, canonical: str) -> None:
    assert canonical_query(query) == canonical


def test_canonical_query_is_idempotent() -> None:
    once = canonical_query("z=%E4%BA%AC+x&a=~&a=%2B&m")
    assert canonical_query(once) == once
