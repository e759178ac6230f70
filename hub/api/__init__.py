"""The hub's JSON API, one router per resource."""

from hub.api import (
    agents,
    blocks,
    complaints,
    consents,
    conversations,
    customers,
    dead_letters,
    interactions,
    ops,
)

ROUTERS = (
    ops.router,
    customers.router,
    interactions.router,
    complaints.router,
    conversations.router,
    agents.router,
    blocks.router,
    consents.router,
    consents.public,
    dead_letters.router,
)
