"""The error kinds of mailstream, each with one fate (see STYLE.md, habit 5)."""

from __future__ import annotations


class MailstreamError(Exception):
    """Base of every error mailstream raises on purpose."""


class InvalidData(MailstreamError):
    """A record that can never be processed: it goes to a dead-letter topic and is skipped."""


class UndecodableRecord(InvalidData):
    """Bytes that are not a record of any schema version we know."""


class TransientError(MailstreamError):
    """Infrastructure is unavailable for now: retry a bounded number of times, then crash."""


class DeliveryFailed(TransientError):
    """Kafka did not acknowledge an output; the input must not be committed."""


class ConfigError(MailstreamError):
    """The service cannot start with the configuration it was given."""
