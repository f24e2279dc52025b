"""The producer client upstream services use to request an email.

from services.client import EmailClient, EmailRequested, Recipient, Priority
with EmailClient(bootstrap_servers="kafka:9092") as client:
    client.send(EmailRequested(...), priority=Priority.CRITICAL)
"""

from services.client.producer import EmailClient, new_request
from services.common.avro.records import Attachment, EmailRequested, Recipient, TemplateRef
from services.common.priority import Priority

__all__ = [
    "Attachment",
    "EmailClient",
    "EmailRequested",
    "Priority",
    "Recipient",
    "TemplateRef",
    "new_request",
]
