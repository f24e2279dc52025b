"""Kafka header names; defined only here."""

from __future__ import annotations

ERROR_CLASS = "error.class"
ERROR_MESSAGE = "error.message"
ORIGINAL_TOPIC = "original.topic"
ORIGINAL_PARTITION = "original.partition"
ORIGINAL_OFFSET = "original.offset"
# On a quarantined record (mailstream.internal.dlq) besides the ones above: the lane that gave
# up on it, how many times it was tried, and a digest of the traceback (the full one is logged
# once, with the message_id).
LANE = "mailstream.lane"
ATTEMPTS = "mailstream.attempts"
TRACEBACK_DIGEST = "error.traceback-digest"

# Epoch ms before which a record on a delay topic must not be processed; read by the delay
# lane without decoding the record.
DUE_AT = "mailstream.due-at"

# On a record `mailstream dlq replay` republished: "<dlq topic>:<partition>:<offset>".
REPLAYED_FROM = "mailstream.replayed-from"

# On a status update whose public event its stage has published itself: the event-publisher
# keeps the timeline and applies suppression, and does not publish it again. A status update
# without it (from a version before direct publishing) is published by the event-publisher.
PUBLISHED = "mailstream.published"
