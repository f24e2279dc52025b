"""The error kinds of mailstream, each with one fate (see STYLE.md, habit 5)."""

from __future__ import annotations


class MailstreamError(Exception):
    """Base of every error mailstream raises on purpose."""


class InvalidData(MailstreamError):
    """A record that can never be processed: it goes to a dead-letter topic and is skipped."""


class UndecodableRecord(InvalidData):
    """Bytes that are not a record of any schema version we know."""


class TransientError(MailstreamError):
    """Infrastructure is unavailable for now (Kafka, Cassandra, DNS): the call is retried a
    bounded number of times, then the runner's lane waits and retries the record without
    limit: nothing is skipped and the process does not exit."""


class DeliveryFailed(TransientError):
    """Kafka did not acknowledge an output; the input must not be committed."""


class ConfigError(MailstreamError):
    """The service cannot start with the configuration it was given."""


class Fenced(MailstreamError):
    """This process no longer owns the record (its partition was revoked in a rebalance):
    it must start nothing more for it; the new owner redoes it from the committed offset."""


class OutputRefused(MailstreamError):
    """Kafka refused an output for good (too large, invalid): retrying the same record cannot
    help, so it counts as a failure of that record's handling."""


class FatalError(MailstreamError):
    """The process cannot go on (e.g. the idempotent producer fenced): stop without committing
    what is in flight, and let the supervisor restart it."""


class KeyspaceMissing(TransientError):
    """Cassandra answers but the keyspace is not there: `mailstream db migrate` has not run
    yet (under Kubernetes it may run after the services start), so they wait for it."""
