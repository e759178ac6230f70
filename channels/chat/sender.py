"""The outbox's sender for channel `chat`: an agent's reply into its session's log.

`send` appends the reply to the log (in the database, `hub.chat_log`) of the
session whose chat id is the outbound's recipient (`hub.replies` picks the chat
identity the customer last wrote from), and offers it to every socket of this
process attached to that session. A customer who is not connected gets it from
the log on reconnecting, even after a restart, so the reply counts as sent
either way; the receipt names the frame:
`chat:<session>:<seq>`. The outbox key makes a re-sent row (a dispatcher that
died after sending) one frame, not two.
"""

from __future__ import annotations

from channels.chat.protocol import render_agent_message
from channels.chat.sessions import ChatRegistry
from hub.delivery import Receipt
from hub.values import Outbound


class ChatSender:
    def __init__(self, registry: ChatRegistry) -> None:
        self.registry = registry

    async def send(self, outbound: Outbound) -> Receipt:
        session = outbound.recipient
        frame = render_agent_message(outbound.text)
        seq = await self.registry.record_agent_message(session, outbound.idempotency_key, frame)
        return Receipt(f"chat:{session}:{seq}")
