"""terminal: make text from untrusted evidence safe to print.

Control characters, escape sequences and invisible format characters (bidirectional overrides)
are shown as visible escapes, so nothing an archive holds can move the cursor or hide a line.
"""

from __future__ import annotations


def escape(text: str) -> str:
    """`text` with every non-printable character written as a Python-style escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
