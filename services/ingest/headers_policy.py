"""Which extra headers a request may set."""

from __future__ import annotations

import re

# RFC 5322 ftext: printable ASCII 33-126 except the colon; at most 76 so "Name: " fits in 78.
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
_ALLOWED_EXACT = {"list-unsubscribe", "list-unsubscribe-post"}


def header_allowed(name: str) -> bool:
    # fullmatch: with match and "$", a name ending in one LF ("X-Tag\n") would pass.
    lowered = name.lower()
    return bool(_HEADER_NAME.fullmatch(name)) and (
        lowered.startswith("x-") or lowered in _ALLOWED_EXACT
    )
