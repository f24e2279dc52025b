"""Which extra headers a request may set, and which header text is safe to put on the wire."""

from __future__ import annotations

import re
from email.header import decode_header

# Characters that end or fold a header line, or confuse parsers, wherever they appear.
_UNSAFE = re.compile("[\r\n\x00\u2028\u2029\x85\x0b\x0c]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext
_ALLOWED_EXACT = {"list-unsubscribe", "list-unsubscribe-post"}


def header_allowed(name: str) -> bool:
    lowered = name.lower()
    return bool(_HEADER_NAME.match(name)) and (
        lowered.startswith("x-") or lowered in _ALLOWED_EXACT
    )


def unsafe_text(value: str) -> bool:
    """True when value, or anything its RFC 2047 encoded words decode to, holds a line break,
    NUL or another separator. The stdlib of Python 3.11.7 would serialize an encoded newline as
    a new header line (CVE-2024-6923), so encoded words are decoded and checked here."""
    if _UNSAFE.search(value):
        return True
    if "=?" not in value:
        return False
    for word in _ENCODED_WORD.findall(value):
        try:
            parts = decode_header(word)
        except Exception:
            return True  # an encoded word we cannot decode is not safe to pass on
        for raw, charset in parts:
            text = raw.decode(charset or "ascii", "replace") if isinstance(raw, bytes) else raw
            if _UNSAFE.search(text):
                return True
    return False
