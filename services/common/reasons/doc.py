"""The reason-code reference, docs/reference/reason-codes.md, rendered from the Reason enum."""

from __future__ import annotations

from pathlib import Path

from services.common.reasons import Reason

DOC = Path("docs/reference/reason-codes.md")  # from the repository root
REGENERATE = "mailstream docs reasons -o docs/reference/reason-codes.md"

_INTRO = f"""\
# Reason codes

Generated from `services/common/reasons/__init__.py` by `{REGENERATE}`;
do not edit by hand. A unit test fails when this file and the enum disagree.

A reason code is the stable snake_case `reason` of an `EmailEvent`
(`schemas/mailstream.v1.EmailEvent.avsc`), or the reason of an entry on a tenant's suppression
list (`mailstream suppressions list`). The values are public: a code is never renamed. The SMTP
categories (`invalid_recipient` ... `other`) are both the `reason` and the `bounce.category` of
the sender's `DEFERRED` and `BOUNCED` events, and a HARD bounce's suppression-list entry has
its category as reason.

**Fate**: `DEFERRED` is retried (until the message expires, then `EXPIRED`); every other event
here is terminal for its recipient. **Suppresses**: what the event does to the recipient's
place on the suppression list, with the event-publisher's default settings
(`MAILSTREAM_SUPPRESSION__*`); `DEFERRED` never suppresses.
"""

_COLUMNS = ("Code", "Events", "Service", "Fate", "Suppresses", "Means", "What the sender should do")


def _row(reason: Reason) -> tuple[str, ...]:
    info = reason.info
    return (
        f"`{reason.value}`",
        ", ".join(f"`{e.value}`" for e in info.events) or "-",
        ", ".join(s.value for s in info.services),
        info.fate,
        info.suppresses.value,
        info.means,
        info.action,
    )


def render() -> str:
    lines = [_INTRO, "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(_row(r)).replace("\n", " ") + " |" for r in Reason]
    return "\n".join(lines) + "\n"
