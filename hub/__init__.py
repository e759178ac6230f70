"""omnihub's core: intake, identities, history, complaints, the gate and the outbox."""

from hub.values import Attachment, Inbound, Outbound

__all__ = ["Attachment", "Inbound", "Outbound"]
