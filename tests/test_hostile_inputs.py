"""A hostile network, config or server gets nowhere: no key sent astray, no secret shown.

Each test here failed before the fix it covers.
"""

from __future__ import annotations

import pytest

from tap_nylas.errors import quote_server_text

# Server text in a log line: one line, bounded, escapes visible.


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("Grant not found", "Grant not found"),
        ("Accès refusé", "Accès refusé"),  # printable non-ASCII stays readable
        ("bad\nINFO forged line", "bad\\nINFO forged line"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[2Jcleared", "\\x1b[2Jcleared"),
        ("one\u2028two\u2029three\x85four", "one\\u2028two\\u2029three\\x85four"),
        ("\u202egnp.exe", "\\u202egnp.exe"),  # a bidi override
        ("\ud800", "\\ud800"),  # a lone surrogate, which a UTF-8 log cannot encode
        ("C:\\n", "C:\\\\n"),  # a literal backslash cannot pass for an escape
        ("", ""),
    ],
)
def test_server_text_is_one_printable_line(text: str, quoted: str) -> None:
    assert quote_server_text(text) == quoted
    assert quote_server_text(text).isprintable()


def test_long_server_text_is_cut_with_its_length() -> None:
    quoted = quote_server_text("x" * 5000)
    assert quoted == "x" * 200 + "… (5,000 characters)"
    assert quote_server_text("y" * 200) == "y" * 200  # at the limit: whole


def test_the_limit_counts_escapes_and_never_splits_one() -> None:
    quoted = quote_server_text("ab\n" * 10, limit=7)  # a 2nd `\n` would end past 7
    assert quoted == "ab\\nab… (30 characters)"
    assert quote_server_text("\n" * 1000, limit=5) == "\\n\\n… (1,000 characters)"
