"""Which text is safe to put into a header line, RFC 2047 encoded words included."""

from __future__ import annotations

import base64
import binascii
import codecs
import re

# Control characters (tab aside) and line separators, wherever they appear: CR, LF and NUL end
# a header line, and the email package also splits on what str.splitlines() does (\x0b, \x0c,
# \x1c-\x1e, \x85, U+2028, U+2029), refusing such a value at build time.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# charset, an optional RFC 2231 language suffix, the encoding and the text.
_ENCODED_WORD = re.compile(r"=\?([^?*\s]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")


def unsafe_text(value: str) -> bool:
    """True when value, or anything its RFC 2047 encoded words decode to, holds a line break,
    NUL or another separator. The stdlib of Python 3.11.7 would serialize an encoded newline as
    a new header line (CVE-2024-6923), so encoded words are decoded and checked here, by this
    module's own decoder: any word it cannot decode (an unknown or non-text charset, bad
    base64) counts as unsafe, never as an error."""
    if _UNSAFE.search(value):
        return True
    if "=?" not in value:
        return False
    return any(_word_unsafe(*word) for word in _ENCODED_WORD.findall(value))


def _word_unsafe(charset: str, encoding: str, text: str) -> bool:
    try:
        if encoding in "bB":
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
        else:
            raw = _q_decode(text)
        info = codecs.lookup(charset)
        if not getattr(info, "_is_text_encoding", True):
            return True  # rot13, zlib, base64 and other byte transforms are not charsets
        decoded = raw.decode(info.name, "replace")
    except (LookupError, ValueError, binascii.Error, TypeError):
        return True  # covers UnicodeError, which the idna codec raises for any bad input
    return bool(_UNSAFE.search(decoded))


def _q_decode(text: str) -> bytes:
    """RFC 2047 Q encoding: '_' is a space, =XX a byte."""
    out = bytearray()
    i = 0
    data = text.encode("ascii", "replace")
    while i < len(data):
        byte = data[i]
        if byte == ord("=") and i + 2 < len(data):
            out += bytes.fromhex(data[i + 1 : i + 3].decode("ascii", "replace"))
            i += 3
            continue
        out.append(0x20 if byte == ord("_") else byte)
        i += 1
    return bytes(out)
