"""Which extra headers a request may set."""

from __future__ import annotations

import re

_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext
_ALLOWED_EXACT = {"list-unsubscribe", "list-unsubscribe-post"}


def header_allowed(name: str) -> bool:
    lowered = name.lower()
    return bool(_HEADER_NAME.match(name)) and (
        lowered.startswith("x-") or lowered in _ALLOWED_EXACT
    )
